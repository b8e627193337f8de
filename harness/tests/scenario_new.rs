//! `visorsim scenario new --from IMAGE --out DIR/name.json`: a customer's
//! disk becomes a scenario that passes when run as it is written, on a
//! `visorsim build` raw image, its qcow2 and vmdk, a disk with an
//! unconfirmed upgrade, a disk whose booted bank lacks a module and a disk
//! made by standard tools (read by the 6.7u1 loader); the input never
//! changes; small images are copied beside the scenario (sparse), large
//! ones referenced; an existing `--out` is kept without `--force`.

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::Value;
use visorsim_testkit::require_tool;

use crate::util::*;

/// A private copy of the esxi6 fixture at `dir/name`.
fn copy_fixture(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let src = &esxi6().image;
    extract(src, 0, fs::metadata(src).unwrap().len(), &path);
    path
}

/// `visorsim scenario new --from image --out out extra...`, which must succeed.
fn scenario_new(image: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["scenario", "new", "--from", image.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let run = visorsim(&args);
    assert!(run.status.success(), "scenario new failed: {}", stderr(&run));
    assert!(stdout(&run).contains("it passes on the image now"), "{}", stdout(&run));
    serde_json::from_str(&fs::read_to_string(out).unwrap()).expect("the scenario is JSON")
}

/// `visorsim run out` passes.
fn assert_passes(out: &Path) {
    let run = visorsim(&["run", out.to_str().unwrap()]);
    assert!(run.status.success(), "visorsim run failed ({:?}): {}{}", run.status, stdout(&run), stderr(&run));
    assert!(stdout(&run).contains("scenarios: 1 passed, 0 failed"), "{}", stdout(&run));
}

/// The expectations of step `n` (1-based).
fn expect(v: &Value, n: usize) -> &Value {
    &v["steps"][n - 1]["expect"]
}

fn host(image: &Path, step: &[&str]) {
    let mut args = vec!["host", image.to_str().unwrap()];
    args.extend_from_slice(step);
    let out = visorsim(&args);
    assert!(out.status.success(), "host {step:?}: {}", stderr(&out));
}

#[test]
fn scenario_new_from_a_built_image_copies_it_sparse_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let image = &esxi6().image;
    let before = sparse_hash(image);
    let out = dir.path().join("bug.json");
    let v = scenario_new(image, &out, &[]);
    assert_eq!(sparse_hash(image), before, "the input is unchanged");

    assert_eq!(v["disk"]["image"], "bug.img", "copied beside the scenario, by a relative name");
    let copy = dir.path().join("bug.img");
    assert_eq!(sparse_hash(&copy), before, "the copy holds the image's bytes");
    let meta = fs::metadata(&copy).unwrap();
    assert!(meta.blocks() * 512 < 64 << 20, "the copy of a {} B disk is sparse ({} blocks)", meta.len(), meta.blocks());

    let description = v["description"].as_str().unwrap();
    let origin = image.canonicalize().unwrap();
    assert!(description.contains(&format!("From the image {} (raw, ", origin.display())), "{description}");
    assert!(description.contains("what `visorsim explain` says"), "{description}");
    assert!(v["references"].as_array().unwrap().iter().any(|r| r == "docs/bootloader.md#selection"));
    assert!(v["steps"][1]["boot"].is_object(), "step 2 boots: {}", v["steps"][1]);

    let received = expect(&v, 1);
    assert_eq!(received["running"], false);
    assert_eq!(received["bank_states"], serde_json::json!({"5": "valid", "6": "empty"}));
    assert_eq!(received["bootstate_chars"]["5"], "0");
    assert_eq!(received["fat_clean"], serde_json::json!([5, 6]));
    let now = expect(&v, 3);
    assert_eq!((now["outcome"].as_str(), now["booted_bank"].as_u64()), (Some("booted"), Some(5)));
    assert_eq!(now["booted_build"], esxi6().manifest["boot_cfg"]["build"]);
    assert_eq!(now["config"]["hostname"], "esxi-01", "the host name state.tgz restores");
    assert_passes(&out);
}

#[test]
fn scenario_new_from_qcow2_and_vmdk_passes_and_leaves_them_unchanged() {
    let Some(_) = require_tool!("qemu-img", "qemu-utils") else { return };
    let dir = tempfile::tempdir().unwrap();
    let raw = scenario_new(&esxi6().image, &dir.path().join("raw.json"), &[]);
    for ext in ["qcow2", "vmdk"] {
        let image = dir.path().join(format!("customer.{ext}"));
        let out = visorsim(&["export", esxi6().image.to_str().unwrap(), "--out", image.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        let bytes = fs::read(&image).unwrap();
        let scenario = dir.path().join(format!("{ext}.json"));
        let v = scenario_new(&image, &scenario, &[]);
        assert_eq!(fs::read(&image).unwrap(), bytes, "{ext} unchanged");
        assert_eq!(v["disk"]["image"], format!("{ext}.img"), "a raw copy");
        assert_eq!(sparse_hash(&dir.path().join(format!("{ext}.img"))), sparse_hash(&esxi6().image));
        let description = v["description"].as_str().unwrap();
        assert!(description.contains(&format!("({ext}, {} bytes", bytes.len())), "{description}");
        assert!(description.contains("SHA-256 "), "a small file is hashed: {description}");
        assert_eq!(v["steps"], raw["steps"], "{ext}: the same steps as from the raw image");
        assert_passes(&scenario);
        // Referenced instead (a tiny threshold): the qcow2/vmdk itself, by path.
        let v = scenario_new(&image, &scenario, &["--force", "--copy-threshold", "1K"]);
        assert_eq!(v["disk"]["image"], format!("customer.{ext}"), "inside the scenario's directory: relative");
        assert_passes(&scenario);
        assert_eq!(fs::read(&image).unwrap(), bytes, "{ext} unchanged");
    }
}

#[test]
fn scenario_new_from_a_staged_and_an_unconfirmed_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path(), "disk.img");
    host(&image, &["boot"]);
    host(&image, &["upgrade", "--payload-mb", "1", "--build-number", "2000"]);

    // Staged: the next boot is bank 6's trial, which the host confirms.
    let staged = dir.path().join("staged.json");
    let v = scenario_new(&image, &staged, &[]);
    assert_eq!(expect(&v, 1)["bank_states"]["6"], "upgrading");
    assert_eq!(expect(&v, 1)["bootstate_chars"]["6"], "1");
    let now = expect(&v, 3);
    assert_eq!(now["booted_bank"], 6);
    assert_eq!(now["bank_states"]["6"], "valid", "jumpstart confirms the trial");
    assert!(now["timeline_contains"].as_array().unwrap().iter().any(|t| t == "jumpstart: the trial boot succeeded"));
    assert!(v["description"].as_str().unwrap().contains("staged in BANK6"), "explain's risks are in the description");
    assert_passes(&staged);

    // The trial boot crashed before the confirmation: bank 6 is DIRTY and
    // the next boot invalidates it and boots bank 5.
    host(&image, &["reboot", "--crash-before-confirm"]);
    let before = sparse_hash(&image);
    let dirty = dir.path().join("dirty.json");
    let v = scenario_new(&image, &dirty, &[]);
    assert_eq!(sparse_hash(&image), before, "the input is unchanged");
    assert_eq!(expect(&v, 1)["bank_states"]["6"], "dirty");
    let now = expect(&v, 3);
    assert_eq!(now["booted_bank"], 5);
    assert_eq!(now["bank_states"], serde_json::json!({"5": "valid", "6": "invalid"}));
    assert_eq!(now["bootstate_chars"]["6"], "3");
    assert!(v["description"].as_str().unwrap().contains("unconfirmed trial (DIRTY)"));
    assert_passes(&dirty);
}

#[test]
fn scenario_new_from_a_disk_whose_booted_bank_lacks_a_module() {
    let Some(mdel) = require_tool!("mdel", "mtools") else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path(), "customer.img");
    let (_, report) = inspect_json(&image);
    let (offset, _) = partition_extent(&report, 5);
    let (ok, out) = run_tool(&mdel, &["-i", &format!("{}@@{offset}", image.display()), "::/sb.v00"]);
    assert!(ok, "{out}");
    let before = sparse_hash(&image);
    let sub = dir.path().join("scenarios");
    fs::create_dir(&sub).unwrap();
    let scenario = sub.join("missing.json");
    // Above the (tiny) threshold: referenced, by an absolute path since it
    // lies outside the scenario's directory; nothing is copied.
    let v = scenario_new(&image, &scenario, &["--copy-threshold", "4K"]);
    assert_eq!(v["disk"]["image"], image.canonicalize().unwrap().display().to_string());
    assert!(!sub.join("missing.img").exists(), "no copy of a referenced image");
    assert!(v["description"].as_str().unwrap().contains("referenced in place"));
    assert_eq!(expect(&v, 1)["files"]["5"]["sb.v00"]["exists"], false);
    let now = expect(&v, 3);
    assert_eq!((now["outcome"].as_str(), now["running"].as_bool()), (Some("load_failed"), Some(false)));
    assert!(now["log_contains"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("sb.v00")), "{now}");
    assert!(now.get("config").is_none(), "no host comes up to restore a configuration");
    assert_passes(&scenario);
    assert_eq!(sparse_hash(&image), before, "the input is unchanged");
}

#[test]
fn scenario_new_from_a_disk_whose_primary_gpt_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path(), "customer.img");
    let file = fs::OpenOptions::new().write(true).open(&image).unwrap();
    file.write_all_at(b"XXXX", 512 + 16).unwrap(); // the primary header's CRC field
    drop(file);
    let out = dir.path().join("gpt.json");
    let v = scenario_new(&image, &out, &[]);
    // The loader reads the primary only: no bank, nothing boots.
    assert_eq!(expect(&v, 1)["bank_states"], serde_json::json!({"5": "missing", "6": "missing"}));
    let now = expect(&v, 3);
    assert_eq!((now["outcome"].as_str(), now["running"].as_bool()), (Some("no_hypervisor"), Some(false)));
    assert_eq!(now["log_contains"], serde_json::json!(["No hypervisor found."]));
    assert!(v["description"].as_str().unwrap().contains("primary GPT is damaged"), "explain's risk is named");
    assert_passes(&out);
}

#[test]
fn scenario_new_from_a_disk_made_by_standard_tools_with_the_older_loader() {
    let dir = tempfile::tempdir().unwrap();
    // Bank 6 has a Linux partition type: the current loader skips it, the
    // 6.7u1 loader has no type check and boots it (its kernel is not one).
    let Some(image) = crate::explain::standard_tools_disk(dir.path(), "8300") else { return };
    let current = scenario_new(&image, &dir.path().join("current.json"), &[]);
    assert_eq!(expect(&current, 3)["booted_bank"], 5);
    assert!(current["disk"].get("loader").is_none(), "the current loader is the default");
    let old = scenario_new(&image, &dir.path().join("old.json"), &["--loader", "6.7u1"]);
    assert_eq!(old["disk"]["loader"], "6.7u1");
    let now = expect(&old, 3);
    assert_eq!((now["booted_bank"].as_u64(), now["outcome"].as_str()), (Some(6), Some("load_failed")));
    assert_eq!(now["bank_states"]["6"], "dirty", "the trial's DIRTY is written before the kernel fails");
    for name in ["current.json", "old.json"] {
        assert_passes(&dir.path().join(name));
    }
}

#[test]
fn scenario_new_from_a_4kn_image_reads_its_sector_size_and_passes() {
    // The runner reads a disk.image with the sector size its GPT header
    // shows, so a 4 KiB-sector image becomes a scenario like any other.
    let dir = tempfile::tempdir().unwrap();
    let image = &esxi6_4kn().image;
    let before = sparse_hash(image);
    let out = dir.path().join("bug4k.json");
    let v = scenario_new(image, &out, &[]);
    assert_eq!(sparse_hash(image), before, "the input is unchanged");
    assert_eq!(expect(&v, 1)["bank_states"]["5"], "valid", "{}", expect(&v, 1));
    assert_eq!(expect(&v, 3)["outcome"], "booted", "{}", expect(&v, 3));
    assert_passes(&out);
}

#[test]
fn scenario_new_refuses_what_it_cannot_do_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let image = esxi6().image.to_str().unwrap();
    let out = dir.path().join("bug.json");
    let out_str = out.to_str().unwrap();
    // An existing --out, as `build` and `import` refuse it.
    fs::write(&out, "{}").unwrap();
    let run = visorsim(&["scenario", "new", "--from", image, "--out", out_str]);
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("already exists: not replacing it without --force"), "{}", stderr(&run));
    assert_eq!(fs::read_to_string(&out).unwrap(), "{}");
    assert!(!dir.path().join("bug.img").exists());
    // Not a .json: a usage error.
    let run = visorsim(&["scenario", "new", "--from", image, "--out", dir.path().join("bug.txt").to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(stderr(&run).contains("does not end in .json"), "{}", stderr(&run));
    // No such directory, no such image, a directory as the image.
    let missing_dir = dir.path().join("nowhere/bug.json");
    for (from, to, wanted) in [
        (image, missing_dir.to_str().unwrap(), "its directory"),
        ("/nonexistent/disk.img", out_str, "/nonexistent/disk.img"),
        (dir.path().to_str().unwrap(), out_str, "is a directory, not a disk image"),
    ] {
        let run = visorsim(&["scenario", "new", "--from", from, "--out", to, "--force"]);
        assert_eq!(run.status.code(), Some(1), "{from}: {}", stderr(&run));
        assert!(stderr(&run).contains(wanted), "{from}: {}", stderr(&run));
    }
    assert_eq!(fs::read_to_string(&out).unwrap(), "{}", "nothing written");
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["bug.json"], "no copy, no temporary left behind");
}
