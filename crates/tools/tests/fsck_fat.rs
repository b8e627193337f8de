//! `FsckFat` against the real `fsck.fat` on volumes made by `mkfs.fat`
//! (both Debian package dosfstools).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use visorsim_tools::fsck_fat::{FsckFat, FsckReport};
use visorsim_tools::ToolError;

/// A fresh 8 MiB FAT16 volume, in memory; `None` when the test should skip.
fn fresh_volume(dir: &Path) -> Option<Vec<u8>> {
    let mkfs = visorsim_testkit::require_tool!("mkfs.fat", "dosfstools")?;
    let path = dir.join("fresh.fat");
    fs::File::create(&path).unwrap().set_len(8 << 20).unwrap();
    let out = Command::new(mkfs).args(["-F", "16", "-s", "2", "-n", "TEST"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "mkfs.fat: {}", String::from_utf8_lossy(&out.stderr));
    Some(fs::read(&path).unwrap())
}

fn fsck() -> Option<FsckFat> {
    visorsim_testkit::require_tool!("fsck.fat", "dosfstools").map(FsckFat::with_program)
}

/// Sets the FAT16 dirty bit (boot sector byte 37, bit 0).
fn dirty(volume: &mut [u8]) {
    volume[37] |= 1;
}

#[test]
fn a_fresh_volume_is_clean_as_a_file_bytes_or_extents() {
    let Some(fsck) = fsck() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(volume) = fresh_volume(dir.path()) else { return };
    let path = dir.path().join("vol.fat");
    fs::write(&path, &volume).unwrap();
    assert_eq!(fsck.check_file(&path).unwrap(), FsckReport::Clean);
    assert!(fsck.check_bytes(&volume).unwrap().is_clean());
    // mkfs.fat writes only the first sectors (boot sector, FATs, root).
    let used = volume.iter().rposition(|&b| b != 0).unwrap() + 1;
    let report = fsck.check_extents(volume.len() as u64, [(0, &volume[..used])]).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.damage(), None);
    assert_eq!(fs::read(&path).unwrap(), volume, "-n changes nothing");
}

#[test]
fn a_dirty_volume_is_damaged_with_fsck_fat_s_complaint() {
    let Some(fsck) = fsck() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(mut volume) = fresh_volume(dir.path()) else { return };
    dirty(&mut volume);
    let report = fsck.check_bytes(&volume).unwrap();
    let damage = report.damage().unwrap_or_else(|| panic!("{report:?}"));
    assert_eq!(damage.exit_code, Some(1));
    let first = damage.first_complaint().unwrap();
    assert_eq!(first.file, None);
    assert!(first.message.starts_with("Dirty bit is set."), "{damage:?}");
    assert!(damage.to_string().starts_with("Dirty bit is set."), "{damage}");
}

#[test]
fn a_volume_fsck_fat_cannot_read_is_damaged_with_its_stderr() {
    let Some(fsck) = fsck() else { return };
    let report = fsck.check_bytes(&vec![0; 1 << 20]).unwrap();
    let damage = report.damage().unwrap_or_else(|| panic!("{report:?}"));
    assert!(damage.lines.is_empty(), "{damage:?}");
    assert!(damage.stderr.contains("sector size"), "{damage:?}");
}

#[test]
fn temporary_volumes_are_removed() {
    let Some(fsck) = fsck() else { return };
    let dir = tempfile::tempdir().unwrap();
    let fsck = fsck.with_temp_dir(dir.path());
    assert!(!fsck.check_bytes(&[0u8; 64 << 10]).unwrap().is_clean());
    let Some(volume) = fresh_volume(dir.path()) else { return };
    let used = volume.iter().rposition(|&b| b != 0).unwrap() + 1;
    assert!(fsck.check_extents(volume.len() as u64, [(0, &volume[..used])]).unwrap().is_clean());
    assert_eq!(crate::listing(dir.path()), ["fresh.fat"]);
    let err = fsck.with_temp_dir(dir.path().join("gone")).check_bytes(&volume).unwrap_err();
    assert!(matches!(err, ToolError::Io { .. }) && err.to_string().contains("gone"), "{err}");
}

#[test]
fn errors_name_what_is_missing() {
    let err = FsckFat::with_program("/nonexistent/fsck.fat").check_bytes(&[0; 512]).unwrap_err();
    assert!(matches!(err, ToolError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains("dosfstools"), "{err}");
    let err = FsckFat::new().check_file(Path::new("/nonexistent/volume.fat")).unwrap_err();
    assert!(matches!(err, ToolError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/volume.fat"), "{err}");
    let err = FsckFat::new().check_extents(512, [(500, &[1u8; 20][..])]).unwrap_err();
    assert!(matches!(err, ToolError::Io { .. }), "{err:?}");
    assert_eq!(FsckFat::new().timeout(), Duration::from_secs(30));
}
