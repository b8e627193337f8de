//! A closed stdout (`visorsim ... | head -1`): every command ends quietly,
//! exit 0, no "failed printing to stdout" panic (exit 101).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::*;

/// Runs visorsim with stdout a pipe whose read end is closed before the
/// command starts (as `head` closes it after its lines, only sooner, so
/// every write fails); returns (exit code, stderr).
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let child = Command::new(env!("CARGO_BIN_EXE_visorsim"))
        .args(args)
        .env("VISORSIM_CACHE_DIR", cache_dir())
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run visorsim");
    let out = child.wait_with_output().expect("wait");
    (out.status.code(), stderr(&out))
}

fn assert_quiet(args: &[&str]) {
    let (code, err) = with_closed_stdout(args);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
    assert_ne!(code, Some(101), "{args:?}: {err}");
    assert_eq!(code, Some(0), "{args:?} exits quietly with 0: {err}");
    assert_eq!(err, "", "{args:?}: nothing on stderr");
}

/// A private copy of the esxi6 fixture in `dir`.
fn copy(dir: &Path) -> String {
    let path = dir.join("h.img");
    let src = &esxi6().image;
    extract(src, 0, fs::metadata(src).unwrap().len(), &path);
    path.to_str().unwrap().to_owned()
}

#[test]
fn inspect_and_boot_exit_quietly_on_a_closed_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy(dir.path());
    assert_quiet(&["inspect", &image]);
    assert_quiet(&["inspect", "--json", &image]);
    assert_quiet(&["boot", "--dry-run", &image]);
    assert_quiet(&["boot", "--dry-run", "--json", &image]);
    assert_quiet(&["--help"]);
}

#[test]
fn host_status_exits_quietly_on_a_closed_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy(dir.path());
    assert!(visorsim(&["host", &image, "boot"]).status.success());
    assert_quiet(&["host", &image, "status"]);
    assert_quiet(&["host", &image, "status", "--json"]);
}

#[test]
fn report_exits_quietly_on_a_closed_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("shard.jsonl");
    fs::write(&empty, "").unwrap();
    assert_quiet(&["report", empty.to_str().unwrap()]);
}
