//! Bad input for `inspect` and `import`: every case gives a clear message
//! naming what is wrong and where, a non-zero exit, no panic, and leaves
//! the input file byte-for-byte unchanged.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::util::*;

/// Copies the fixture image (sparse) and applies `damage` to the copy.
fn damaged(name: &str, damage: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let src = &esxi6().image;
    extract(src, 0, fs::metadata(src).unwrap().len(), &path);
    damage(&path);
    (dir, path)
}

fn write_at(path: &Path, offset: u64, data: &[u8]) {
    fs::OpenOptions::new().write(true).open(path).unwrap().write_all_at(data, offset).unwrap();
}

/// Runs inspect (human and JSON) and import on `path`; checks exit codes,
/// that `expect` appears in what inspect says, and that the input is unchanged.
fn check(path: &Path, expect: &str, import_should_fail: bool) {
    let before = sparse_hash(path);
    let human = visorsim(&["inspect", path.to_str().unwrap()]);
    let text = format!("{}{}", stdout(&human), stderr(&human));
    assert!(!human.status.success(), "inspect must fail on {}: {text}", path.display());
    assert!(text.contains(expect), "inspect of {} should say {expect:?}: {text}", path.display());
    let (code, report) = inspect_json(path);
    assert_ne!(code, 0);
    assert!(
        report["problems"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().contains(expect)),
        "{}",
        report["problems"]
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("imported.img");
    let import = visorsim(&["import", path.to_str().unwrap(), "--out", out.to_str().unwrap(), "--format", "raw"]);
    if import_should_fail {
        assert_eq!(import.status.code(), Some(1), "import must fail: {}", stdout(&import));
        assert!(
            stderr(&import).contains(path.file_name().unwrap().to_str().unwrap()),
            "import names the file: {}",
            stderr(&import)
        );
        assert!(!out.exists(), "nothing is written on failure");
    } else {
        assert!(import.status.success(), "import: {}", stderr(&import));
        assert!(stdout(&import).contains("warning"), "import warns: {}", stdout(&import));
    }
    assert_eq!(
        fs::read_dir(out_dir.path()).unwrap().filter(|e| e.as_ref().unwrap().file_name() != "imported.img").count(),
        0,
        "no temp files left"
    );
    assert_eq!(sparse_hash(path), before, "the input was modified");
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.img");
    fs::write(&path, b"").unwrap();
    check(&path, "empty", true);
}

#[test]
fn zero_filled_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zeros.img");
    fs::write(&path, vec![0u8; 4 << 20]).unwrap();
    check(&path, "No usable GPT", true);
}

#[test]
fn random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.img");
    let mut state = 0x1234_5678_9abc_def0u64;
    let bytes: Vec<u8> = (0..(3 << 20) + 123)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fs::write(&path, bytes).unwrap();
    check(&path, "No usable GPT", true);
}

#[test]
fn truncated_image() {
    let (_dir, path) = damaged("truncated.img", |p| {
        fs::OpenOptions::new().write(true).open(p).unwrap().set_len(300 * 1024 * 1024 + 100).unwrap();
    });
    // The backup GPT is gone and partitions reach past the end.
    check(&path, "outside the disk", false);
    let (_, report) = inspect_json(&path);
    let text = report["problems"].to_string();
    assert!(text.contains("truncated"), "{text}");
    assert!(text.contains("Backup GPT"), "{text}");
}

#[test]
fn corrupt_primary_gpt_shows_the_backup() {
    let (_dir, path) = damaged("primary.img", |p| write_at(p, 512 + 16, &[0xDE, 0xAD, 0xBE, 0xEF]));
    check(&path, "backup GPT is intact", false);
    let (_, report) = inspect_json(&path);
    assert_eq!(report["gpt_source"], "backup");
    assert!(report["primary_gpt_error"].as_str().unwrap().contains("HeaderCRC32"));
    assert_eq!(report["partitions"].as_array().unwrap().len(), 8, "the backup's table is shown");
    let human = stdout(&visorsim(&["inspect", path.to_str().unwrap()]));
    assert!(human.contains("Backup header, primary is damaged"), "{human}");
}

#[test]
fn bank_fat_boot_sector_overwritten() {
    let (_dir, path) = damaged("bootsector.img", |p| write_at(p, 8224 * 512, &[0u8; 512]));
    check(&path, "Partition 5 (LBA 8224, byte 4210688): no readable FAT boot sector", false);
}

#[test]
fn bank_without_vmware_uuid() {
    let (_dir, path) = damaged("nouuid.img", |p| write_at(p, 8225 * 512, &[0u8; 32]));
    check(&path, "no VMware FAT UUID", false);
    let (_, report) = inspect_json(&path);
    let p5 = report["partitions"].as_array().unwrap().iter().find(|p| p["number"] == 5).unwrap();
    assert!(p5["fat"]["vmware_uuid"].is_null());
    assert!(report["problems"].to_string().contains("byte 4211200"), "names the offset: {}", report["problems"]);
}

#[test]
fn missing_file_and_directory() {
    let out = visorsim(&["inspect", "/nonexistent/disk.img"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent/disk.img"), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let out = visorsim(&["inspect", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("directory"));
}

#[test]
fn a_file_of_partial_sectors_is_reported_with_one_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.img");
    fs::write(&path, vec![0x5Au8; (1 << 20) + 123]).unwrap();
    let out = visorsim(&["inspect", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let text = stdout(&out);
    assert!(text.contains("odd.img: 1048699 bytes"), "the header gives the file's size: {text}");
    assert!(text.contains("odd.img is 1048699 bytes, not a whole number of 512-byte sectors"), "{text}");
    assert!(!text.contains("1048576"), "one size per report: {text}");
    let (_, report) = inspect_json(&path);
    assert_eq!(report["size"], 1048699);
}
