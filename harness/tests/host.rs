//! `visorsim host` and `visorsim demo` end to end.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::util::*;

/// A copy of `fixture`'s image in a new directory, and a runner of
/// `visorsim host IMAGE ...` on it.
struct HostImage {
    _dir: tempfile::TempDir,
    image: PathBuf,
}

impl HostImage {
    fn copy_of(fixture: &Fixture) -> HostImage {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("h.img");
        extract(&fixture.image, 0, fs::metadata(&fixture.image).unwrap().len(), &image);
        HostImage { _dir: dir, image }
    }

    fn path(&self) -> &str {
        self.image.to_str().unwrap()
    }

    /// `visorsim host IMAGE args...`, whatever its exit code.
    fn try_step(&self, args: &[&str]) -> Output {
        let mut full = vec!["host", self.path()];
        full.extend_from_slice(args);
        visorsim(&full)
    }

    /// `visorsim host IMAGE args...`, which must succeed; its stdout.
    fn step(&self, args: &[&str]) -> String {
        let out = self.try_step(args);
        assert!(out.status.success(), "{args:?}: {}{}", stdout(&out), stderr(&out));
        stdout(&out)
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.step(&["status", "--json"])).unwrap()
    }
}

fn sidecar_of(image: &Path) -> PathBuf {
    image.with_file_name(format!("{}.host.json", image.file_name().unwrap().to_str().unwrap()))
}

#[test]
fn host_steps_across_invocations() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    let src = &esxi6().image;
    extract(src, 0, fs::metadata(src).unwrap().len(), &image);
    let img = image.to_str().unwrap();
    let step = |args: &[&str]| {
        let mut full = vec!["host", img];
        full.extend_from_slice(args);
        let out = visorsim(&full);
        assert!(out.status.success(), "{args:?}: {}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    assert!(step(&["boot"]).contains("bootloader chose BANK5"));
    step(&["set-hostname", "cli-host"]);
    assert!(step(&["advance", "1h"]).contains("state.tgz saved"));
    step(&["upgrade", "--payload-mb", "1"]);
    assert!(step(&["reboot"]).contains("bootloader chose BANK6"));
    let status = step(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["host"]["running"]["bank"], 6);
    assert_eq!(v["banks"][1]["bootstate"], 0, "trial confirmed");
    assert!(status.contains("cli-host"));
    step(&["power-cut"]);
    let out = visorsim(&["host", img, "set-hostname", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not running"));
}

/// Issue 14.1: a sidecar left beside an image rebuilt under it is refused
/// (naming both identities and the fix), while the host's own writes
/// (backups, upgrades, bootstate writes) never make it stale.
#[test]
fn host_state_of_another_image_is_refused() {
    let h = HostImage::copy_of(esxi6());
    h.step(&["boot"]);
    h.step(&["set-hostname", "before-rebuild"]);
    h.step(&["advance", "1h"]);
    h.step(&["upgrade", "--payload-mb", "1", "--build-number", "2000"]);
    h.step(&["reboot"]);
    assert_eq!(h.status()["host"]["running"]["build"], "6.7.0-1.0.2000", "the host's own writes are its own");
    let saved: serde_json::Value = serde_json::from_slice(&fs::read(sidecar_of(&h.image)).unwrap()).unwrap();
    assert!(saved["running"].is_object() && saved["timeline"].is_array(), "the old fields stay: {saved}");
    assert!(saved["image"]["partition_table"].is_string(), "{saved}");
    // Rebuilt: a new image (another build) renamed over the old one.
    let rebuilt = h.image.with_file_name("rebuilt.img");
    let rebuilt_path = rebuilt.to_str().unwrap();
    let out = visorsim(&["build", "--out", rebuilt_path, "--seed", "7", "--payload-mb", "1", "--build-number", "4242"]);
    assert!(out.status.success(), "{}", stderr(&out));
    fs::rename(&rebuilt, &h.image).unwrap();
    for step in [&["status"][..], &["set-hostname", "x"], &["advance", "1h"]] {
        let out = h.try_step(step);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{step:?}: {}{err}", stdout(&out));
        assert!(err.contains("h.img.host.json belongs to another image"), "{err}");
        assert!(err.contains("saved with size ") && err.contains("h.img is size "), "names both: {err}");
        assert!(
            err.contains("(BANK5 boot.cfg, BANK5 state.tgz, BANK6 boot.cfg, BANK6 state.tgz differ: "),
            "what differs: {err}"
        );
        assert!(err.contains("remove ") && err.contains("host.json or run `visorsim host "), "says the fix: {err}");
        assert!(err.contains("h.img boot`"), "{err}");
        assert!(!stdout(&out).contains("6.7.0-1.0.2000"), "no stale build shown");
    }
    // The fix the message names: a boot starts a new host on this image.
    let out = h.try_step(&["boot"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("belonged to another image"), "{}", stderr(&out));
    let status = h.status();
    assert_eq!(status["host"]["running"]["build"], "6.7.0-1.0.4242");
    assert!(!h.step(&["status"]).contains("before-rebuild"), "a new host");
    // A change by another tool is someone else's too: `visorsim boot`
    // writes a bootstate digit into the staged bank.
    h.step(&["upgrade", "--payload-mb", "1", "--build-number", "5000"]);
    h.step(&["shutdown"]);
    let out = visorsim(&["boot", h.path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = h.try_step(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("belongs to another image (BANK6 boot.cfg differs: "), "{}", stderr(&out));
}

/// Issue 14.2: `boot` on a running host is refused (nothing changes), and
/// `--power-cycle` records the power-off before booting.
#[test]
fn boot_while_running_needs_power_cycle() {
    let h = HostImage::copy_of(esxi6());
    h.step(&["boot"]);
    h.step(&["set-hostname", "ram-only"]);
    let sidecar = fs::read(sidecar_of(&h.image)).unwrap();
    let out = h.try_step(&["boot"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}{err}", stdout(&out));
    assert!(err.contains("the host is running"), "{err}");
    for name in ["--power-cycle", "power-cut", "reboot"] {
        assert!(err.contains(name), "names {name}: {err}");
    }
    assert_eq!(fs::read(sidecar_of(&h.image)).unwrap(), sidecar, "a refused boot changes nothing");
    assert!(h.step(&["status"]).contains("(hostname ram-only)"), "still running as it was");
    let out = h.step(&["boot", "--power-cycle"]);
    let power_off = out.lines().position(|l| l.contains("power-off")).expect(&out);
    let boot = out.lines().position(|l| l.contains("bootloader chose BANK5")).expect(&out);
    assert!(power_off < boot, "{out}");
    assert!(!h.step(&["status"]).contains("(hostname ram-only)"), "the RAM-only change is gone");
    // Off, a plain boot is a boot.
    h.step(&["power-cut"]);
    assert!(h.step(&["boot"]).contains("bootloader chose BANK5"));
}

/// Issue 14.3: the CLI's names are the scenario files' names; `host boot`
/// takes `visorsim boot`'s `--answer` and `--json`; the old names still
/// work, with a note.
#[test]
fn host_steps_use_the_scenario_vocabulary() {
    let h = HostImage::copy_of(esxi6());
    let report: serde_json::Value =
        serde_json::from_str(&h.step(&["boot", "--shift-r", "--answer", "no", "--json"])).unwrap();
    assert_eq!(report["selected"], 5, "{report}");
    assert_eq!(report["outcome"], "booted", "{report}");
    h.step(&["configure", "/net/vswitch/child[0000]/mtu", "9000"]);
    let out = h.try_step(&["config", "/adv/Misc/HostName", "old-name"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("`host IMAGE config` is deprecated; use `host IMAGE configure`"), "{}", stderr(&out));
    let status = h.step(&["status"]);
    assert!(status.contains(r#"esx.conf /net/vswitch/child[0000]/mtu = "9000""#), "{status}");
    assert!(status.contains(r#"esx.conf /adv/Misc/HostName = "old-name""#), "{status}");
    assert!(h.step(&["power-cut"]).contains("power-off"));
    h.step(&["boot"]);
    let out = h.try_step(&["power-off"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("use `host IMAGE power-cut`"), "{}", stderr(&out));
    assert!(h.status()["host"]["running"].is_null());
    let report: serde_json::Value =
        serde_json::from_str(&h.step(&["boot", "--shift-r-in-mboot", "--answer", "yes", "--json"])).unwrap();
    assert_eq!(report["outcome"], "booted", "{report}");
    // Scenario files: the old spellings load, with a warning naming the
    // file and the new spelling.
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.json");
    fs::write(
        &old,
        r#"{"disk": {"build": 1000}, "steps": [
            {"boot": {"shift_r": "safeboot", "answer_no": true}},
            {"upgrade": {"build": 2000}},
            {"reboot": {"shift_r": "mboot"}},
            {"expect": {"booted_bank": 5}}
        ]}"#,
    )
    .unwrap();
    let out = visorsim(&["run", old.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{}{err}", stdout(&out));
    for (line, new) in [
        ("old.json:1: ", "\"build_number\""),
        ("old.json:2: ", "\"shift_r\": true"),
        ("old.json:2: ", "\"answer\": \"no\""),
        ("old.json:3: ", "\"build_number\""),
        ("old.json:4: ", "\"shift_r_in_mboot\": true"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(line) && l.contains("deprecated") && l.contains(new)),
            "{line} {new}: {err}"
        );
    }
    let new = dir.path().join("new.json");
    fs::write(
        &new,
        r#"{"disk": {"build_number": 1000}, "steps": [
            {"boot": {"shift_r": true, "answer": "no"}},
            {"upgrade": {"build_number": 2000}},
            {"reboot": {"shift_r_in_mboot": true}},
            {"advanced": {"name": "Misc.HostName", "value": "adv"}},
            {"expect": {"booted_bank": 5, "config": {"/adv/Misc/HostName": "adv"}}}
        ]}"#,
    )
    .unwrap();
    let out = visorsim(&["run", new.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(!stderr(&out).contains("deprecated"), "{}", stderr(&out));
}

/// Issue 14.4: an upgrade follows the running version by default.
#[test]
fn upgrade_follows_the_running_version() {
    let h = HostImage::copy_of(esxi7());
    h.step(&["boot"]);
    let build = h.status()["host"]["running"]["build"].as_str().unwrap().to_owned();
    let version = build.split('-').next().unwrap();
    assert!(version.starts_with("7."), "{build}");
    h.step(&["upgrade", "--payload-mb", "1", "--build-number", "2000"]);
    h.step(&["reboot"]);
    assert_eq!(h.status()["host"]["running"]["build"], format!("{version}-1.0.2000"));
    h.step(&["upgrade", "--payload-mb", "1", "--build-number", "2001", "--version", "8.0.1"]);
    h.step(&["reboot"]);
    assert_eq!(h.status()["host"]["running"]["build"], "8.0.1-1.0.2001", "--version still wins");
}

/// Issue 14.5: bad arguments are usage errors (exit 2) naming the argument.
#[test]
fn bad_host_arguments_are_usage_errors() {
    let h = HostImage::copy_of(esxi6());
    h.step(&["boot"]);
    let sidecar = fs::read(sidecar_of(&h.image)).unwrap();
    for (args, names) in [
        (&["advance", "2x"][..], "'2x' for '<DURATION>'"),
        (&["advance", ""], "for '<DURATION>'"),
        (&["upgrade", "--build-number", "many"], "'many' for '--build-number <BUILD_NUMBER>'"),
        (&["boot", "--power-cycle", "--answer", "maybe"], "'maybe' for '--answer <ANSWER>'"),
    ] {
        let out = h.try_step(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}{err}", stdout(&out));
        assert!(err.starts_with("error: invalid value") && err.contains(names), "{args:?}: {err}");
        assert!(!err.contains("--duration"), "no flag that does not exist: {err}");
    }
    assert_eq!(fs::read(sidecar_of(&h.image)).unwrap(), sidecar, "nothing ran");
}

#[test]
fn demo_tells_the_whole_story() {
    let dir = tempfile::tempdir().unwrap();
    let out = visorsim(&["demo", "--payload-mb", "1", "--dir", dir.path().to_str().unwrap()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for line in [
        "power on: booted BANK5",
        "auto-backup.sh saved state.tgz",
        "reboot: trial boot, booted BANK6, jumpstart confirms",
        "configuration carried over: hostname esxi-prod-07",
        "reboot: trial boot fails: Fatal error: ",
        "power cycle: DIRTY bank 5 invalidated, booted BANK6",
        "No alternate hypervisor to roll back to.",
        "The disk image is kept at",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(dir.path().join("esxi6.img").exists());
}

#[test]
fn run_reports_bad_files_and_unmet_expectations() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    fs::write(&bad, "{\n  \"disk\": {},\n  \"steps\": [ { \"boot\": { \"shfit_r\": \"mboot\" } } ]\n}\n").unwrap();
    let out = visorsim(&["run", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("bad.json:3:") && err.contains("unknown field `shfit_r`") && err.contains("expected one of"),
        "{err}"
    );
    let unmet = dir.path().join("unmet.json");
    fs::write(&unmet, r#"{"disk": {}, "steps": [{"boot": {}}, {"expect": {"booted_bank": 6}}]}"#).unwrap();
    let out = visorsim(&["run", unmet.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(7));
    assert!(stdout(&out).contains("step 2: booted_bank: expected 6, found 5"), "{}", stdout(&out));
}

#[test]
fn explore_shards_merge_into_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for shard in ["0/2", "1/2"] {
        let out = visorsim(&["explore", "--op", "boot", "--json", "--fsck-every", "0", "--shard", shard]);
        assert!(out.status.success(), "{}", stderr(&out));
        let path = dir.path().join(format!("shard{}.jsonl", &shard[..1]));
        fs::write(&path, &out.stdout).unwrap();
        files.push(path);
    }
    let whole = visorsim(&["explore", "--op", "boot", "--fsck-every", "0"]);
    let merged = visorsim(&["report", files[0].to_str().unwrap(), files[1].to_str().unwrap()]);
    assert!(merged.status.success(), "{}", stderr(&merged));
    let table = |text: &str| {
        text.lines()
            .filter(|l| l.contains(": "))
            .filter(|l| l.trim_start().starts_with(char::is_numeric))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(table(&stdout(&merged)), table(&stdout(&whole)), "{}\n---\n{}", stdout(&merged), stdout(&whole));
}

#[test]
fn reboot_tells_a_failed_shutdown_backup_and_boots_anyway() {
    if visorsim_testkit::require_tool!("mcopy", "mtools").is_none() {
        return;
    }
    let h = HostImage::copy_of(esxi6());
    h.step(&["boot"]);
    // Bank 5 (LBA 8224 in the esxi6 layout) filled to its last cluster with
    // mtools, so backup.sh 1 cannot write state.tgz.
    let bank5 = format!("{}@@{}", h.path(), 8224 * 512);
    let mdir =
        std::process::Command::new("mdir").args(["-i", &bank5, "::"]).env("MTOOLS_SKIP_CHECK", "1").output().unwrap();
    let listing = String::from_utf8_lossy(&mdir.stdout).into_owned();
    let free: u64 = listing
        .lines()
        .find_map(|l| l.trim().strip_suffix("bytes free"))
        .map(|n| n.split_whitespace().collect::<String>().parse().unwrap())
        .unwrap_or_else(|| panic!("no free space in mdir's listing: {listing}"));
    let dir = tempfile::tempdir().unwrap();
    let fill = dir.path().join("fill");
    fs::write(&fill, vec![0u8; free as usize]).unwrap();
    let copy = std::process::Command::new("mcopy")
        .args(["-i", &bank5, fill.to_str().unwrap(), "::fill"])
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap();
    assert!(copy.status.success(), "mcopy: {}", String::from_utf8_lossy(&copy.stderr));

    let out = h.try_step(&["reboot"]);
    assert!(out.status.success(), "the host boots anyway: {}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains(
            "warning: the shutdown backup failed, the host rebooted anyway: Error (1) saving state to /bootbank"
        ),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("up on build"), "{}", stdout(&out));
}
