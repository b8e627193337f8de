//! Shared helpers of the CLI tests: running `visorsim`, building fixture
//! images once per test binary, running real tools (found with
//! `visorsim_testkit::require_tool!`), and hashing sparse files by their
//! data extents (an 8 GiB image is mostly holes).

#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::Hasher;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Runs the visorsim binary with `args`.
pub fn visorsim(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_visorsim"))
        .args(args)
        .env("VISORSIM_CACHE_DIR", cache_dir())
        .output()
        .expect("run visorsim");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "visorsim panicked: {stderr}");
    out
}

/// The payload cache shared by the tests of this run.
pub fn cache_dir() -> PathBuf {
    std::env::temp_dir().join("visorsim-test-cache")
}

/// Stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A built fixture image and its `build --json` manifest.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub image: PathBuf,
    pub manifest: serde_json::Value,
}

fn build_fixture(layout: &str, extra: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join(format!("{layout}.img"));
    let mut args = vec![
        "build",
        "--layout",
        layout,
        "--out",
        image.to_str().unwrap(),
        "--seed",
        "7",
        "--payload-mb",
        "1",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = visorsim(&args);
    assert!(out.status.success(), "build failed: {}", stderr(&out));
    let manifest = serde_json::from_slice(&out.stdout).expect("build --json prints JSON");
    Fixture { dir, image, manifest }
}

/// An ESXi 6.x image with 4096-byte sectors, seed 7, 1 MB payload, built
/// once per test binary.
pub fn esxi6_4kn() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| build_fixture("esxi6", &["--sector-size", "4096"]))
}

/// An ESXi 6.x image, seed 7, 1 MB payload, built once per test binary.
pub fn esxi6() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| build_fixture("esxi6", &[]))
}

/// An ESXi 7.x image, seed 7, 1 MB payload, built once per test binary.
pub fn esxi7() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| build_fixture("esxi7", &[]))
}

/// Data extents `(offset, len)` of a sparse file, by SEEK_DATA/SEEK_HOLE.
#[allow(unsafe_code)]
pub fn data_extents(file: &File) -> Vec<(u64, u64)> {
    let len = file.metadata().unwrap().len() as i64;
    let fd = file.as_raw_fd();
    let mut extents = Vec::new();
    let mut at = 0i64;
    while at < len {
        // SAFETY: lseek on a file descriptor we own; no memory is involved.
        let data = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
        if data < 0 {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let end = if hole < 0 { len } else { hole };
        extents.push((data as u64, (end - data) as u64));
        at = end;
    }
    extents
}

/// Hash of a file's size and the non-zero 4 KiB blocks of its data extents,
/// with their offsets: equal hashes mean equal bytes (holes read as zeros).
pub fn sparse_hash(path: &Path) -> u64 {
    let file = File::open(path).expect("open");
    let mut h = DefaultHasher::new();
    h.write_u64(file.metadata().unwrap().len());
    let mut buf = vec![0u8; 1 << 20];
    for (offset, len) in data_extents(&file) {
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], offset + done).unwrap();
            for (i, block) in buf[..n].chunks(4096).enumerate() {
                if block.iter().any(|&b| b != 0) {
                    h.write_u64(offset + done + (i * 4096) as u64);
                    h.write(block);
                }
            }
            done += n as u64;
        }
    }
    h.finish()
}

/// Copies `len` bytes at `offset` of `image` into a new sparse file.
pub fn extract(image: &Path, offset: u64, len: u64, out: &Path) {
    let src = File::open(image).unwrap();
    let dst = File::create(out).unwrap();
    dst.set_len(len).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    for (ext_off, ext_len) in data_extents(&src) {
        let start = ext_off.max(offset);
        let end = (ext_off + ext_len).min(offset + len);
        let mut at = start;
        while at < end {
            let n = (end - at).min(buf.len() as u64) as usize;
            src.read_exact_at(&mut buf[..n], at).unwrap();
            dst.write_all_at(&buf[..n], at - offset).unwrap();
            at += n as u64;
        }
    }
}

/// Runs a real tool (a path from `visorsim_testkit::require_tool!`),
/// returning (success, stdout + stderr).
pub fn run_tool(program: &Path, args: &[&str]) -> (bool, String) {
    let out =
        Command::new(program).args(args).output().unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    (out.status.success(), format!("{}{}", stdout(&out), stderr(&out)))
}

/// Byte offset and length of partition `number` from an `inspect --json` report.
pub fn partition_extent(report: &serde_json::Value, number: u64) -> (u64, u64) {
    let p = report["partitions"].as_array().unwrap().iter().find(|p| p["number"] == number).expect("partition");
    let start = p["start"].as_u64().unwrap();
    let end = p["end"].as_u64().unwrap();
    (start * 512, (end - start + 1) * 512)
}

/// `inspect --json` of an image (any exit code), parsed.
pub fn inspect_json(image: &Path) -> (i32, serde_json::Value) {
    let out = visorsim(&["inspect", "--json", image.to_str().unwrap()]);
    (out.status.code().unwrap_or(-1), serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON"))
}
