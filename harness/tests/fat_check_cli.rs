//! Where a user sees the in-process FAT check: `inspect` lists each FAT
//! volume's findings (text and `--json`), `boot` notes them per bank.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::util::*;

fn copy_fixture(dir: &Path) -> PathBuf {
    let path = dir.join("disk.img");
    let src = &esxi6().image;
    extract(src, 0, fs::metadata(src).unwrap().len(), &path);
    path
}

/// Sets the dirty flag (boot sector byte 37, bit 0) of bank 5's FAT16 and
/// gives bank 5 a lost cluster (the last cluster's FAT entry set to end of
/// chain, in both FATs).
fn damage_bank5(image: &Path) -> u64 {
    let (_, report) = inspect_json(image);
    let (start, _) = partition_extent(&report, 5);
    let file = fs::OpenOptions::new().read(true).write(true).open(image).unwrap();
    let mut boot = [0u8; 512];
    file.read_exact_at(&mut boot, start).unwrap();
    boot[37] |= 1;
    file.write_all_at(&boot, start).unwrap();
    let reserved = u64::from(u16::from_le_bytes([boot[14], boot[15]]));
    let fat_sectors = u64::from(u16::from_le_bytes([boot[22], boot[23]]));
    let p = report["partitions"].as_array().unwrap().iter().find(|p| p["number"] == 5).unwrap();
    let clusters = p["fat"]["clusters"].as_u64().unwrap();
    for k in 0..2 {
        let at = start + (reserved + k * fat_sectors) * 512 + 2 * (clusters + 1);
        file.write_all_at(&0xFFFFu16.to_le_bytes(), at).unwrap();
    }
    start
}

#[test]
fn inspect_lists_fat_findings_per_volume() {
    let (code, clean) = inspect_json(&esxi6().image);
    assert_eq!(code, 0);
    for p in clean["partitions"].as_array().unwrap().iter().filter(|p| !p["fat"].is_null()) {
        assert_eq!(p["fat"]["check"]["findings"], serde_json::json!([]), "partition {}", p["number"]);
    }
    let text = stdout(&visorsim(&["inspect", esxi6().image.to_str().unwrap()]));
    assert!(text.contains("FAT check        clean"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    let start = damage_bank5(&image);
    let (code, report) = inspect_json(&image);
    assert_ne!(code, 0, "FAT damage is a problem");
    let bank5 = report["partitions"].as_array().unwrap().iter().find(|p| p["number"] == 5).unwrap();
    let findings = bank5["fat"]["check"]["findings"].as_array().unwrap();
    let classes: Vec<&str> = findings.iter().map(|f| f["class"].as_str().unwrap()).collect();
    assert_eq!(classes, ["lost_clusters", "dirty_bit"], "{findings:?}");
    assert_eq!(findings[1]["offset"], start + 37);
    assert_eq!(findings[1]["severity"], "damage");
    let bank6 = report["partitions"].as_array().unwrap().iter().find(|p| p["number"] == 6).unwrap();
    assert_eq!(bank6["fat"]["check"]["findings"], serde_json::json!([]));
    let problems = report["problems"].as_array().unwrap();
    assert!(problems.iter().any(|p| p.as_str().unwrap().contains("dirty_bit")), "{problems:?}");

    let out = visorsim(&["inspect", image.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(text.contains("FAT check        2 findings: dirty_bit, lost_clusters"), "{text}");
    assert!(text.contains(&format!("damage   dirty_bit at byte {}", start + 37)), "{text}");
}

#[test]
fn boot_notes_fat_findings_per_bank() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    damage_bank5(&image);
    let out = visorsim(&["boot", "--dry-run", image.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(text.contains("note: bank 5: FAT check (as fsck.fat -n): 2 findings: dirty_bit, lost_clusters"), "{text}");
    assert!(!text.contains("note: bank 6: FAT check"), "{text}");
    let out = visorsim(&["boot", "--dry-run", "--json", image.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = report["fat_checks"].as_array().unwrap();
    let bank5 = checks.iter().find(|c| c["bank"] == 5).unwrap();
    assert_eq!(bank5["check"]["findings"].as_array().unwrap().len(), 2);
    for other in checks.iter().filter(|c| c["bank"] != 5) {
        assert_eq!(other["check"]["findings"], serde_json::json!([]), "{other}");
    }
}
