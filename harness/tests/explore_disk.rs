//! `visorsim explore --disk IMAGE` (issue 12, point 3): crash-point
//! exploration starting from a customer's disk — a raw image from `visorsim
//! build`, the same as qcow2 and vmdk made by `qemu-img convert`, one built
//! by standard tools only (which does not boot), one whose `state.tgz` the
//! host cannot restore — and `--loader` on explore.
//!
//! Each checks that the input is byte-identical afterwards, and where the
//! exploration finds a violation, that its reproducer names the image (the
//! absolute path, never a copy) and that `visorsim run` replays it to the
//! explored outcome. The crash space is kept small (`--reorder 0
//! --max-tears 0`, one state followed at depth 2): seconds per run.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use visorsim_testkit::require_tool;

use crate::util::*;

/// A raw esxi6 image from `visorsim build` (seed 1, the smallest payload
/// `build` takes), built once per test binary; tests read it or copy it.
fn built() -> &'static (tempfile::TempDir, PathBuf) {
    static IMAGE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("customer.img");
        let out = visorsim(&["build", "--out", image.to_str().unwrap(), "--seed", "1", "--payload-mb", "1"]);
        assert!(out.status.success(), "build: {}", stderr(&out));
        (dir, image)
    })
}

/// A private copy of [`built`] in `dir`.
fn copy_built(dir: &Path) -> PathBuf {
    let path = dir.join("customer.img");
    let src = &built().1;
    extract(src, 0, fs::metadata(src).unwrap().len(), &path);
    path
}

/// The small crash space of these tests.
const SMALL: [&str; 8] = ["--reorder", "0", "--max-tears", "0", "--max-follow", "1", "--quiet", "--json"];

/// `explore --op backup --disk IMAGE` with the small crash space and
/// reproducers into `reproducers`: (exit code, the per-state lines, the
/// summary, the reproducer files written).
fn explore_disk(image: &Path, reproducers: &Path, extra: &[&str]) -> (Option<i32>, Vec<Value>, Value, Vec<PathBuf>) {
    let mut args = vec![
        "explore",
        "--op",
        "backup",
        "--disk",
        image.to_str().unwrap(),
        "--reproducers",
        reproducers.to_str().unwrap(),
    ];
    args.extend_from_slice(&SMALL);
    args.extend_from_slice(extra);
    let out = visorsim(&args);
    let lines: Vec<Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).expect("explore --json prints JSON lines")).collect();
    let (summary, states) = lines.split_last().expect("a summary line");
    let mut files: Vec<PathBuf> =
        fs::read_dir(reproducers).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    files.sort();
    (out.status.code(), states.to_vec(), summary["summary"].clone(), files)
}

/// The reproducer names `image` as its disk, absolute; `visorsim run`
/// replays it to the outcome the explorer saw (exit 0).
fn assert_replays(file: &Path, image: &Path) {
    let scenario: Value = serde_json::from_str(&fs::read_to_string(file).unwrap()).unwrap();
    let named = scenario["disk"]["image"].as_str().expect("disk.image");
    assert_eq!(Path::new(named), std::path::absolute(image).unwrap(), "{scenario}");
    let run = visorsim(&["run", file.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{} replays:\n{}{}", file.display(), stdout(&run), stderr(&run));
}

/// The backup explored from a fresh install's disk finds the window the
/// built-disk exploration documents (a crash leaving state.tgz cross-linked,
/// which the next backup turns into an unbootable host), leaves the image
/// as it was, and its reproducer replays from the image itself.
#[test]
fn explore_disk_on_a_raw_image_finds_the_backup_window_and_replays_it() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_built(dir.path());
    let before = sparse_hash(&image);
    let (code, states, summary, files) = explore_disk(&image, &dir.path().join("rep"), &[]);
    assert_eq!(code, Some(7), "{summary}");
    assert_eq!(sparse_hash(&image), before, "the image is unchanged");
    assert_eq!(summary["verdict"]["violated"], true, "{summary}");
    assert!(summary["command"].as_str().unwrap().contains(&format!("--disk {}", image.display())), "{summary}");
    assert!(!summary["command"].as_str().unwrap().contains("--payload-mb"), "{summary}");
    assert!(states.iter().any(|s| s["depth"] == 1 && s["outcome"].as_str().unwrap().contains("new config")));
    let bad: Vec<&Value> = states.iter().filter(|s| s["depth"] == 1 && s["violation"] == true).collect();
    assert!(!bad.is_empty(), "{summary}");
    assert!(bad.iter().all(|s| s["cause"] == "leads to: unbootable"), "{bad:?}");
    assert_eq!(files.len(), 1, "one reproducer per distinct violation: {files:?}");
    let scenario: Value = serde_json::from_str(&fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert!(scenario["disk"]["payload_mb"].is_null(), "a backup builds nothing: {scenario}");
    assert_eq!(scenario["steps"][0], serde_json::json!({ "boot": {} }), "the customer's disk is booted first");
    assert_replays(&files[0], &image);
    assert_eq!(sparse_hash(&image), before, "replaying leaves the image unchanged");
}

/// The same disk as qcow2 and vmdk: the same crash states with the same
/// verdicts as the raw image, the file byte-identical afterwards, and a
/// reproducer that names the qcow2 (or vmdk) and replays from it.
#[test]
fn explore_disk_reads_qcow2_and_vmdk_as_the_raw_image() {
    let Some(qemu_img) = require_tool!("qemu-img", "qemu-utils") else { return };
    let dir = tempfile::tempdir().unwrap();
    let raw = &built().1;
    let (_, raw_states, raw_summary, _) = explore_disk(raw, &dir.path().join("rep-raw"), &[]);
    for format in ["qcow2", "vmdk"] {
        let image = dir.path().join(format!("customer.{format}"));
        let (ok, said) =
            run_tool(&qemu_img, &["convert", "-O", format, raw.to_str().unwrap(), image.to_str().unwrap()]);
        assert!(ok, "qemu-img convert: {said}");
        let bytes = fs::read(&image).unwrap();
        let (code, states, summary, files) = explore_disk(&image, &dir.path().join(format!("rep-{format}")), &[]);
        assert_eq!(code, Some(7), "{format}: {summary}");
        assert_eq!(fs::read(&image).unwrap(), bytes, "{format}: the file is byte-identical afterwards");
        assert_eq!(states, raw_states, "{format}: the same crash states and verdicts as the raw image");
        assert_eq!(summary["verdict"], raw_summary["verdict"], "{format}");
        assert_eq!(files.len(), 1, "{format}: {files:?}");
        assert_replays(&files[0], &image);
        assert_eq!(fs::read(&image).unwrap(), bytes, "{format}: replaying leaves it unchanged");
    }
}

/// A disk made by sgdisk, mkfs.fat and mtools (explain's fixture) whose
/// banks hold no real kernel does not boot: explore says so, naming the
/// loader, the boot's fatal error and the module, exits 1 within seconds,
/// and leaves the file as it was. With `--loader 6.7u1` the bank that
/// loader picks is named instead.
#[test]
fn explore_disk_says_why_a_disk_that_does_not_boot_cannot_be_explored() {
    let dir = tempfile::tempdir().unwrap();
    let Some(image) = crate::explain::standard_tools_disk(dir.path(), "8300") else { return };
    let before = sparse_hash(&image);
    let img = image.to_str().unwrap();
    for (loader, bank) in [("current", 5), ("6.7u1", 6)] {
        let out = visorsim(&["explore", "--op", "backup", "--disk", img, "--loader", loader, "--quiet"]);
        let said = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains(&format!("Preparing the backup exploration on {img}")), "{said}");
        assert!(
            said.contains(&format!("the disk does not boot with the {loader} loader (it chose BANK{bank}): ")),
            "{said}"
        );
        assert!(said.contains("Fatal error: 36 (Bad type)"), "the boot's fatal error: {said}");
        assert!(said.contains("b.b00"), "the module that failed: {said}");
        assert_eq!(said.matches("Fatal error").count(), 1, "said once: {said}");
        assert_eq!(stdout(&out), "", "no table for a disk that was not explored");
    }
    assert_eq!(sparse_hash(&image), before, "the image is unchanged");
}

/// `--payload-mb` and `--realistic` size a built disk: with `--disk` they
/// are usage errors (exit 2), as is `--sector-size` without `--disk`; an
/// image that cannot be read is named (exit 1).
#[test]
fn explore_disk_refuses_what_only_a_built_disk_means() {
    let image = built().1.to_str().unwrap();
    for extra in [&["--payload-mb", "0.3"][..], &["--realistic"][..]] {
        let out = visorsim(&[&["explore", "--op", "backup", "--disk", image][..], extra].concat());
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("cannot be used with"), "{}", stderr(&out));
    }
    let out = visorsim(&["explore", "--op", "backup", "--sector-size", "4096"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.vmdk");
    let out = visorsim(&["explore", "--op", "backup", "--disk", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("Opening --disk {}", missing.display())), "{}", stderr(&out));
    let out = visorsim(&["explore", "--op", "backup", "--disk", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("a directory, not a disk image"), "{}", stderr(&out));
}

/// `--loader` applies to explore on built disks too (issue 12, point 5):
/// every boot of the exploration is the 6.7u1 loader's, the command line
/// says so, and the reproducer carries `disk.loader`, replaying the same.
#[test]
fn explore_loader_67u1_reaches_the_reproducers() {
    let dir = tempfile::tempdir().unwrap();
    let rep = dir.path().join("rep");
    let mut args = vec!["explore", "--op", "backup", "--payload-mb", "0.3", "--loader", "6.7u1"];
    args.extend_from_slice(&["--reproducers", rep.to_str().unwrap()]);
    args.extend_from_slice(&SMALL);
    let out = visorsim(&args);
    let text = stdout(&out);
    let summary: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(out.status.code(), Some(7), "{summary}");
    assert!(summary["summary"]["command"].as_str().unwrap().contains("--loader 6.7u1"), "{summary}");
    let files: Vec<PathBuf> = fs::read_dir(&rep).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!files.is_empty());
    for file in &files {
        let scenario: Value = serde_json::from_str(&fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(scenario["disk"]["loader"], "6.7u1", "{scenario}");
        assert!(scenario["disk"]["image"].is_null(), "a built disk is rebuilt from its seed: {scenario}");
        let run = visorsim(&["run", file.to_str().unwrap()]);
        assert_eq!(run.status.code(), Some(0), "{}:\n{}{}", file.display(), stdout(&run), stderr(&run));
    }
}

/// A customer's disk whose `state.tgz` is a gzip of something that is not
/// a tar archive: mboot loads it (the gzip is sound), the host cannot
/// restore it and comes up with defaults. Coming up with defaults after a
/// crash of the backup is then what the host did before, not a lost
/// configuration: no state is a violation for that.
#[test]
fn explore_disk_whose_state_tgz_is_unusable_counts_defaults_as_the_old_config() {
    let Some(mcopy) = require_tool!("mcopy", "mtools") else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = copy_built(dir.path());
    let (_, report) = inspect_json(&image);
    let (bank5, _) = partition_extent(&report, 5);
    let junk = dir.path().join("junk.tgz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"this is not a tar archive\n").unwrap();
    fs::write(&junk, gz.finish().unwrap()).unwrap();
    let target = format!("{}@@{bank5}", image.display());
    let (ok, said) = run_tool(&mcopy, &["-o", "-i", &target, junk.to_str().unwrap(), "::/state.tgz"]);
    assert!(ok, "mcopy: {said}");
    let before = sparse_hash(&image);
    let (code, states, summary, _) = explore_disk(&image, &dir.path().join("rep"), &[]);
    assert_eq!(sparse_hash(&image), before, "the image is unchanged");
    assert_eq!(code, Some(0), "{summary}");
    let outcome = |s: &Value| s["outcome"].as_str().unwrap().to_owned();
    assert!(states.iter().any(|s| outcome(s).contains("old build, defaults as before")), "{summary}");
    assert!(states.iter().any(|s| outcome(s).contains("old build, new config")), "{summary}");
    assert!(states.iter().all(|s| s["violation"] == false), "{summary}");
}

/// A 4Kn image from `visorsim build --sector-size 4096`: explored with the
/// sector size its GPT header shows, and its reproducer replays (the
/// scenario runner reads `disk.image` with that sector size too).
#[test]
fn explore_disk_on_a_4kn_image_replays_its_reproducer() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("customer-4kn.img");
    let args = ["build", "--out", image.to_str().unwrap(), "--seed", "1", "--payload-mb", "1", "--sector-size", "4096"];
    let out = visorsim(&args);
    assert!(out.status.success(), "build: {}", stderr(&out));
    let before = sparse_hash(&image);
    let (code, _, summary, files) = explore_disk(&image, &dir.path().join("rep"), &[]);
    assert_eq!(code, Some(7), "{summary}");
    assert_eq!(files.len(), 1, "{files:?}");
    assert_replays(&files[0], &image);
    assert_eq!(sparse_hash(&image), before, "the image is unchanged");
}
