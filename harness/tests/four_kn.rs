//! 4Kn images (`build --sector-size 4096`): `inspect`, `boot` and `host`
//! find the sector size in the image (its GPT header is at byte 4096, not
//! 512), as gdisk does; `--sector-size` still overrides.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::*;

/// The shared 4Kn ESXi 6.x image.
fn four_kn() -> &'static Path {
    &esxi6_4kn().image
}

/// A private copy of the 4Kn image.
fn copy(dir: &Path) -> PathBuf {
    let path = dir.join("4kn.img");
    extract(four_kn(), 0, fs::metadata(four_kn()).unwrap().len(), &path);
    path
}

#[test]
fn inspect_finds_4096_byte_sectors_without_the_flag() {
    let (code, report) = inspect_json(four_kn());
    assert_eq!(code, 0, "{}", report["problems"]);
    assert_eq!(report["sector_size"], 4096);
    assert_eq!(report["gpt_source"], "primary");
    let human = stdout(&visorsim(&["inspect", four_kn().to_str().unwrap()]));
    assert!(human.contains("4096-byte sectors, layout esxi6"), "{human}");
    // The flag overrides: read as 512-byte sectors, there is no GPT.
    let out = visorsim(&["inspect", "--json", "--sector-size", "512", four_kn().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["sector_size"], 512);
    // And a 512-byte image is still read as one.
    let (_, report) = inspect_json(&esxi6().image);
    assert_eq!(report["sector_size"], 512);
}

#[test]
fn boot_finds_4096_byte_sectors_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy(dir.path());
    let out = visorsim(&["boot", "--json", image.to_str().unwrap()]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!((out.status.code(), r["outcome"].as_str()), (Some(0), Some("booted")), "{r}");
    assert_eq!(r["selected"], 5);
    let out = visorsim(&["boot", "--dry-run", "--sector-size", "512", image.to_str().unwrap()]);
    // Read as 512-byte sectors there is no GPT, so the firmware finds no
    // system partition and never starts the loader (exit 9, loader_missing).
    assert_eq!(out.status.code(), Some(9), "read as 512-byte sectors: no loader: {}", stdout(&out));
}

#[test]
fn host_finds_4096_byte_sectors() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy(dir.path());
    let path = image.to_str().unwrap();
    let out = visorsim(&["host", path, "boot"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = visorsim(&["host", path, "status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let banks = status["banks"].as_array().unwrap();
    let bank5 = banks.iter().find(|b| b["number"] == 5).expect("bank 5");
    assert_eq!(bank5["bootstate"], 0, "{status}");
    assert_eq!(status["host"]["running"]["bank"], 5, "{status}");
}
