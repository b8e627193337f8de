//! End-to-end boots of images built by `visorsim build`, one per outcome,
//! following docs/bootloader.md: the image is changed in place like a real boot.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use visorsim_disk::{FileDisk, SectorSize};
use visorsim_image::install::write_files;
use visorsim_image::system::{ImageFile, ImageSpec, PayloadSize, SystemImage};
use visorsim_media::layout::Layout;

use crate::util::*;

/// The newer build staged into bank 6 by these tests.
fn new_build() -> SystemImage {
    let spec = ImageSpec {
        version: "6.7.0".into(),
        build_number: 9999999,
        seed: 8,
        payload: PayloadSize::Compressed(1_000_000),
        hostname: "esxi-01".into(),
    };
    SystemImage::build(&spec, Some(&cache_dir()), &mut |_, _| {}).unwrap()
}

/// A private copy of the esxi6 fixture.
fn copy_fixture(dir: &Path) -> PathBuf {
    let path = dir.join("disk.img");
    let src = &esxi6().image;
    extract(src, 0, fs::metadata(src).unwrap().len(), &path);
    path
}

/// Writes a new build into bank 6, as an upgrade would: its boot.cfg gets
/// `updated=2` and `bootstate=<state>`; `damage` may break a file first.
fn stage_bank6(image: &Path, state: u8, damage: impl FnOnce(&mut Vec<ImageFile>)) -> String {
    let image_files = new_build();
    let mut cfg = image_files.boot_cfg.clone();
    cfg.bootstate = i32::from(state);
    cfg.updated = 2;
    let mut files = image_files.files.clone();
    damage(&mut files);
    files.push(ImageFile { name: "boot.cfg".into(), data: cfg.render().into_bytes() });
    let plan = Layout::Esxi6.plan(None).unwrap();
    let mut disk = FileDisk::open(image, SectorSize::S512).unwrap();
    write_files(&mut disk, plan.partition(6).unwrap(), &files).unwrap();
    cfg.build
}

fn boot_json(image: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["boot", "--json", image.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = visorsim(&args);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    (out.status.code().unwrap(), report)
}

fn bootstate_on_disk(image: &Path, bank: u64) -> i64 {
    let (_, report) = inspect_json(image);
    let p = report["partitions"].as_array().unwrap().iter().find(|p| p["number"] == bank).unwrap().clone();
    p["fat"]["boot_cfg"]["bootstate"].as_i64().unwrap()
}

fn logged(report: &Value, text: &str) -> bool {
    report["log"].as_array().unwrap().iter().any(|l| l["text"].as_str().unwrap().contains(text))
}

#[test]
fn fresh_install_boots_bank5_and_loads_every_module() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    let (code, r) = boot_json(&image, &[]);
    assert_eq!((code, r["outcome"].as_str().unwrap()), (0, "booted"), "{r}");
    assert_eq!(r["selected"], 5);
    let uuid = esxi6().manifest["bank_uuids"][0][1].as_str().unwrap();
    assert_eq!(r["kernel_cmdline"], format!("no-auto-partition bootUUID={uuid}"));
    let modules = r["modules"].as_array().unwrap();
    assert_eq!(modules.len(), esxi6().manifest["modules"].as_array().unwrap().len());
    assert!(modules.iter().all(|m| m["md5"].as_str().unwrap().len() == 32));
    assert_eq!(bootstate_on_disk(&image, 5), 0);
}

#[test]
fn upgrade_trial_boot_then_unconfirmed_trial_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    let build = stage_bank6(&image, 1, |_| {});
    let (code, r) = boot_json(&image, &[]);
    assert_eq!((code, r["selected"].as_u64()), (0, Some(6)));
    assert_eq!(r["build"], build);
    assert_eq!(r["title"], "Loading VMware ESXi", "boot.cfg's title wins over safeboot's");
    assert_eq!(bootstate_on_disk(&image, 6), 2, "UPGRADING -> DIRTY written in place");
    // Nobody confirmed the trial (the host would reset it to 0): the next
    // boot invalidates it and falls back, without the rollback flag.
    let (code, r) = boot_json(&image, &[]);
    assert_eq!((code, r["selected"].as_u64()), (0, Some(5)));
    assert!(!r["kernel_cmdline"].as_str().unwrap().ends_with("rollback"));
    assert_eq!(bootstate_on_disk(&image, 6), 3);
}

#[test]
fn broken_module_fails_this_boot_and_the_next_boot_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    stage_bank6(&image, 1, |files| {
        let s = files.iter_mut().find(|f| f.name == "s.v00").unwrap();
        let n = s.data.len();
        s.data[n / 2] ^= 0xFF; // corrupt deflate data or CRC
    });
    let (code, r) = boot_json(&image, &[]);
    assert_eq!(code, 5, "{r}");
    assert_eq!(r["outcome"], "load_failed");
    assert_eq!(r["module"], "s.v00");
    assert!(logged(&r, "Fatal error: "), "{r}");
    assert_eq!(bootstate_on_disk(&image, 6), 2, "the bank was already DIRTY before the load failed");
    let (code, r) = boot_json(&image, &[]);
    assert_eq!((code, r["selected"].as_u64()), (0, Some(5)));
    assert_eq!(bootstate_on_disk(&image, 6), 3);
}

#[test]
fn shift_r_with_two_valid_banks_makes_the_old_build_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    stage_bank6(&image, 0, |_| {});
    let (code, r) = boot_json(&image, &["--shift-r"]);
    assert_eq!((code, r["selected"].as_u64()), (0, Some(5)));
    assert!(r["kernel_cmdline"].as_str().unwrap().ends_with(" rollback"));
    assert_eq!(bootstate_on_disk(&image, 6), 3, "permanently");
    let (_, r) = boot_json(&image, &[]);
    assert_eq!(r["selected"], 5);
}

#[test]
fn shift_r_with_one_bank_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    let (code, r) = boot_json(&image, &["--shift-r"]);
    assert_eq!((code, r["selected"].as_u64()), (0, Some(5)));
    assert!(logged(&r, "No alternate hypervisor to roll back to."));
}

#[test]
fn shift_r_in_mboot_after_an_upgrade_is_refused_by_the_second_scan() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    stage_bank6(&image, 1, |_| {});
    let (code, r) = boot_json(&image, &["--shift-r-in-mboot"]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["passes"].as_array().unwrap().len(), 2);
    assert!(logged(&r, "No alternate hypervisor to roll back to."));
    assert_eq!(r["selected"], 5);
    assert_eq!(bootstate_on_disk(&image, 6), 3, "DIRTY after pass 1, INVALID after pass 2");
}

#[test]
fn corrupt_primary_gpt_boots_nothing_even_with_the_backup_intact() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    use std::os::unix::fs::FileExt;
    fs::OpenOptions::new().write(true).open(&image).unwrap().write_all_at(&[0xFF; 4], 512 + 16).unwrap();
    let (code, r) = boot_json(&image, &[]);
    assert_eq!((code, r["outcome"].as_str().unwrap()), (4, "no_hypervisor"));
    assert!(logged(&r, "No hypervisor found."));
    assert!(r["partition_error"].as_str().unwrap().contains("HeaderCRC32"));
}

#[test]
fn dry_run_leaves_the_image_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    stage_bank6(&image, 1, |_| {});
    let before = sparse_hash(&image);
    let (code, r) = boot_json(&image, &["--dry-run"]);
    assert_eq!((code, r["selected"].as_u64()), (0, Some(6)));
    assert_eq!(sparse_hash(&image), before);
}

#[test]
fn fake_write_error_keeps_the_trial_forever() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    stage_bank6(&image, 1, |_| {});
    for _ in 0..2 {
        let (_, r) = boot_json(&image, &["--fake-write-error"]);
        assert_eq!(r["selected"], 6);
        assert!(logged(&r, "BANK6: failed to overwrite /boot.cfg: 1 (ignored)"));
        assert_eq!(bootstate_on_disk(&image, 6), 1);
    }
}

#[test]
fn module_listed_but_missing_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    stage_bank6(&image, 0, |files| files.retain(|f| f.name != "state.tgz"));
    let (code, r) = boot_json(&image, &[]);
    assert_eq!((code, r["module"].as_str()), (5, Some("state.tgz")));
    assert!(logged(&r, "Fatal error: 15 (Not found)"), "{r}");
}

/// Stages bank 6 as a VALID newer build whose module `name` is replaced by
/// `bytes`, boots, and returns the report.
fn boot_with_module(name: &str, bytes: Vec<u8>) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    stage_bank6(&image, 0, |files| files.iter_mut().find(|f| f.name == name).unwrap().data = bytes);
    boot_json(&image, &[])
}

fn original(name: &str) -> Vec<u8> {
    new_build().files.into_iter().find(|f| f.name == name).unwrap().data
}

fn set_isize(data: &mut [u8], isize: u32) {
    let n = data.len();
    data[n - 4..].copy_from_slice(&isize.to_le_bytes());
}

#[test]
fn bad_modules_fail_as_the_real_loader_does() {
    let good = original("k.b00");
    let truth = u32::from_le_bytes(good[good.len() - 4..].try_into().unwrap());
    let mut cases: Vec<(&str, Vec<u8>, i32, Option<u64>)> = Vec::new();
    let mut bad_header = good.clone();
    bad_header[3] = 0xE0;
    cases.push(("reserved FLG bits", bad_header, 5, Some(37)));
    cases.push(("truncated", [&good[..good.len() / 2], &good[good.len() - 8..]].concat(), 5, None));
    let mut small = good.clone();
    set_isize(&mut small, truth - 1);
    cases.push(("ISIZE too small", small, 5, Some(6)));
    let mut large = good.clone();
    set_isize(&mut large, truth + 1000);
    cases.push(("ISIZE too large is accepted", large, 0, None));
    let mut crc = good.clone();
    let n = crc.len();
    crc[n - 8] ^= 0x55;
    cases.push(("wrong CRC", crc, 5, Some(28)));
    let mut huge = good[..1024.min(good.len() - 8)].to_vec();
    huge.extend_from_slice(&good[good.len() - 8..]);
    set_isize(&mut huge, u32::MAX);
    cases.push(("ISIZE claiming 4 GiB from 1 KiB", huge, 5, None));
    cases.push(("uncompressed module is accepted", b"plain bytes, not gzip".to_vec(), 0, None));
    for (what, bytes, want_code, want_status) in cases {
        let (code, r) = boot_with_module("k.b00", bytes);
        assert_eq!(code, want_code, "{what}: {r}");
        if let Some(status) = want_status {
            assert_eq!(r["status"]["code"], status, "{what}: {r}");
            assert_eq!(r["module"], "k.b00", "{what}");
        }
        if want_code == 0 {
            assert_eq!(r["selected"], 6, "{what}");
        }
    }
}

#[test]
fn uncompressed_module_is_loaded_with_warnings() {
    let (code, r) = boot_with_module("k.b00", b"plain bytes".to_vec());
    assert_eq!(code, 0);
    assert!(logged(&r, "Warning: uncompressed module k.b00"), "{r}");
    assert!(logged(&r, "MD5: "), "{r}");
}

#[test]
fn non_kernel_module_zero_is_rejected() {
    let not_elf = visorsim_image::payload::gzip_bytes(Some("b"), b"this is not a kernel", 0);
    let (code, r) = boot_with_module("b.b00", not_elf);
    assert_eq!(code, 5);
    assert!(logged(&r, "kernel is either invalid or corrupted."), "{r}");
}

#[test]
fn garbage_and_huge_boot_cfg() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    let plan = Layout::Esxi6.plan(None).unwrap();
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    let mut disk = FileDisk::open(&image, SectorSize::S512).unwrap();
    write_files(&mut disk, plan.partition(6).unwrap(), &[ImageFile { name: "boot.cfg".into(), data: garbage }])
        .unwrap();
    drop(disk);
    let (code, r) = boot_json(&image, &[]);
    assert_eq!((code, r["selected"].as_u64()), (0, Some(5)), "a garbage boot.cfg drops that bank only: {r}");
    // A 10 MB boot.cfg: read and parsed whole; the settings at its end count.
    let mut big = format!(
        "bootstate=0\nkernel=b.b00\nmodules=k.b00\n{}",
        "# padding line of a very long boot.cfg\n".repeat(260_000)
    )
    .into_bytes();
    big.extend_from_slice(b"build=7.0.0-1\nupdated=9\n");
    assert!(big.len() > 10_000_000);
    let mut disk = FileDisk::open(&image, SectorSize::S512).unwrap();
    write_files(&mut disk, plan.partition(6).unwrap(), &[ImageFile { name: "boot.cfg".into(), data: big }]).unwrap();
    drop(disk);
    let (code, r) = boot_json(&image, &[]);
    assert_eq!(r["selected"], 6, "{}", r["log"]);
    assert_eq!(code, 5, "bank 6 has no modules besides boot.cfg: {}", r["log"]);
    assert_eq!(r["module"], "b.b00");
}

#[test]
fn build_that_does_not_start_with_a_digit_fails_to_chainload() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    let plan = Layout::Esxi6.plan(None).unwrap();
    let cfg = "bootstate=0\nkernel=b.b00\nbuild=ESXi-7.0\nupdated=9\n";
    let mut disk = FileDisk::open(&image, SectorSize::S512).unwrap();
    write_files(&mut disk, plan.partition(6).unwrap(), &[ImageFile { name: "boot.cfg".into(), data: cfg.into() }])
        .unwrap();
    drop(disk);
    let (code, r) = boot_json(&image, &[]);
    assert_eq!((code, r["outcome"].as_str()), (6, Some("chainload_failed")));
    assert!(logged(&r, "ESX version is unknown.") && logged(&r, "Failed to chainload BANK6."));
}

#[test]
fn a_trial_boot_says_that_only_the_host_confirms_it() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    stage_bank6(&image, 1, |_| {});
    let want = "bank 6 is on its trial boot (DIRTY); unless the host confirms it, the next boot invalidates it";
    let out = visorsim(&["boot", "--dry-run", image.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("outcome: booted BANK6") && text.contains(want), "{text}");
    let (code, r) = boot_json(&image, &[]);
    assert_eq!((code, r["selected"].as_u64()), (0, Some(6)));
    let notes = r["notes"].as_array().expect("notes");
    assert!(notes.iter().any(|n| n.as_str().unwrap().starts_with(want)), "{r}");
    assert_eq!(bootstate_on_disk(&image, 6), 2);
    // A bank that is already VALID (or the old bank, after the fallback) is
    // not on a trial: no note.
    let (_, r) = boot_json(&image, &[]);
    assert_eq!(r["selected"], 5);
    assert_eq!(r["notes"], serde_json::json!([]), "{r}");
    let text = stdout(&visorsim(&["boot", "--dry-run", image.to_str().unwrap()]));
    assert!(!text.contains("trial boot"), "{text}");
}

#[test]
fn an_empty_log_has_no_log_header() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    let text = stdout(&visorsim(&["boot", "--dry-run", image.to_str().unwrap()]));
    assert!(text.contains("outcome: booted BANK5"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if *line == "log:" {
            assert!(lines.get(i + 1).is_some_and(|next| next.starts_with("  [")), "empty log: header: {text}");
        }
    }
    // With debug lines shown, the log is not empty and has its header.
    let verbose = stdout(&visorsim(&["boot", "--dry-run", "--verbose", image.to_str().unwrap()]));
    let (code, r) = boot_json(&image, &["--dry-run", "--verbose"]);
    assert_eq!(code, 0);
    if !r["log"].as_array().unwrap().is_empty() {
        assert!(verbose.contains("log:\n  ["), "{verbose}");
    }
}
