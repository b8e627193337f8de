//! `visorsim host` and `visorsim demo` end to end.

mod util;

use std::fs;

use util::*;

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
