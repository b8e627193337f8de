//! `Sgdisk::verify` against the real `sgdisk` (Debian package gdisk), on a
//! GPT made by sgdisk itself.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use visorsim_tools::sgdisk::Sgdisk;
use visorsim_tools::ToolError;

/// An 8 MiB image with a GPT and one partition; `None` when the test
/// should skip.
fn gpt_image(dir: &Path) -> Option<(Sgdisk, PathBuf)> {
    let program = visorsim_testkit::require_tool!("sgdisk", "gdisk")?;
    let image = dir.join("disk.img");
    fs::File::create(&image).unwrap().set_len(8 << 20).unwrap();
    let out = Command::new(&program).args(["-o", "-n", "1:2048:+1M"]).arg(&image).output().unwrap();
    assert!(out.status.success(), "sgdisk: {}", String::from_utf8_lossy(&out.stderr));
    Some((Sgdisk::with_program(program), image))
}

#[test]
fn a_fresh_gpt_verifies_clean() {
    let dir = tempfile::tempdir().unwrap();
    let Some((sgdisk, image)) = gpt_image(dir.path()) else { return };
    let before = fs::read(&image).unwrap();
    let report = sgdisk.verify(&image).unwrap();
    assert!(report.is_clean(), "{}", report.text());
    assert!(report.problems().is_empty(), "{report:?}");
    assert_eq!(fs::read(&image).unwrap(), before, "-v changes nothing");
}

#[test]
fn a_truncated_disk_has_problems() {
    let dir = tempfile::tempdir().unwrap();
    let Some((sgdisk, image)) = gpt_image(dir.path()) else { return };
    fs::OpenOptions::new().write(true).open(&image).unwrap().set_len(6 << 20).unwrap();
    let report = sgdisk.verify(&image).unwrap();
    assert!(!report.is_clean(), "{}", report.text());
    let problems = report.problems();
    assert!(problems.iter().any(|p| p.contains("Disk is too small")), "{problems:?}");
}

#[test]
fn errors_name_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    fs::write(&image, [0u8; 512]).unwrap();
    let err = Sgdisk::with_program("/nonexistent/sgdisk").verify(&image).unwrap_err();
    assert!(matches!(err, ToolError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains("apt-get install gdisk"), "{err}");
    let err = Sgdisk::new().verify(&dir.path().join("none.img")).unwrap_err();
    assert!(matches!(err, ToolError::Io { .. }), "{err:?}");
}
