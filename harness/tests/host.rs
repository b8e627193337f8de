//! `visorsim host` and `visorsim demo` end to end.

use std::fs;

use crate::util::*;

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
    step(&["power-off"]);
    let out = visorsim(&["host", img, "set-hostname", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not running"));
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
    assert!(stdout(&out).contains("step 2: booted_bank: expected 6, found Some(5)"), "{}", stdout(&out));
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
