//! `visorsim boot --qemu` end to end: the selected bank's kernel really runs
//! under qemu-system-x86_64 (TCG, small payloads: about a second each), and
//! its report of what it received is compared with what mboot loaded. Each
//! test skips without qemu-system-x86_64, or fails under
//! `VISORSIM_REQUIRE_TOOLS` (the test kit's rule). Also: a broken system
//! partition boots nothing (no qemu needed).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

use crate::util::*;

/// Whether qemu-system-x86_64 is installed (else the calling test skips).
fn have_qemu() -> bool {
    visorsim_testkit::require_tool!("qemu-system-x86_64", "qemu-system-x86").is_some()
}

/// A private copy of the ESXi 6.x fixture.
struct Copy {
    _dir: tempfile::TempDir,
    image: PathBuf,
}

impl Copy {
    fn new() -> Copy {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("q.img");
        let src = &esxi6().image;
        extract(src, 0, fs::metadata(src).unwrap().len(), &image);
        Copy { _dir: dir, image }
    }

    fn path(&self) -> &str {
        self.image.to_str().unwrap()
    }

    /// `visorsim host IMAGE args...`, which must succeed.
    fn host(&self, args: &[&str]) {
        let mut full = vec!["host", self.path()];
        full.extend_from_slice(args);
        let out = visorsim(&full);
        assert!(out.status.success(), "{args:?}: {}{}", stdout(&out), stderr(&out));
    }

    /// `visorsim boot IMAGE --qemu --qemu-accel tcg --json extra...`: exit code and report.
    fn boot_qemu(&self, extra: &[&str]) -> (i32, Value, Output) {
        let mut args = vec!["boot", self.path(), "--qemu", "--qemu-accel", "tcg", "--json"];
        args.extend_from_slice(extra);
        let out = visorsim(&args);
        let report = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("boot --json: {e}: {}{}", stdout(&out), stderr(&out)));
        (out.status.code().unwrap_or(-1), report, out)
    }
}

/// Modules as (boot.cfg name, CRC32 as `0x%08x`).
type Crcs = Vec<(String, String)>;

/// The names and CRC32s mboot loaded after the kernel, and the guest's.
fn modules_of(report: &Value) -> (Crcs, Crcs) {
    let mboot = report["modules"].as_array().unwrap()[1..]
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_owned(), format!("{:#010x}", m["crc32"].as_u64().unwrap())))
        .collect();
    let guest = report["handoff"]["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_owned(), m["crc32"].as_str().unwrap().to_owned()))
        .collect();
    (mboot, guest)
}

/// Asserts that the guest confirmed `report`'s boot: every module, the
/// command line and the bootUUID of the booted bank.
fn assert_confirmed(code: i32, report: &Value, out: &Output) {
    assert_eq!(code, 0, "{}{}", stdout(out), stderr(out));
    assert_eq!(report["outcome"], "booted");
    let handoff = &report["handoff"];
    assert_eq!(handoff["result"], "confirmed", "{handoff}");
    assert_eq!(handoff["accel"], "tcg");
    let (mboot, guest) = modules_of(report);
    assert!(mboot.len() >= 10, "an ESXi image has a dozen modules: {mboot:?}");
    assert_eq!(guest, mboot, "the guest got mboot's modules, in mboot's order");
    assert_eq!(handoff["cmdline"], report["kernel_cmdline"]);
    let uuid = report["boot_uuid"].as_str().unwrap();
    let guest_cmdline = handoff["guest_cmdline"].as_str().unwrap();
    assert!(guest_cmdline.ends_with(report["kernel_cmdline"].as_str().unwrap()), "{guest_cmdline}");
    assert!(guest_cmdline.contains(&format!("bootUUID={uuid}")), "{guest_cmdline} has bank {uuid}");
}

#[test]
fn a_fresh_install_boots_and_the_guest_reports_mboots_modules() {
    if !have_qemu() {
        return;
    }
    let disk = Copy::new();
    let (code, report, out) = disk.boot_qemu(&["--dry-run"]);
    assert_confirmed(code, &report, &out);
    assert_eq!(report["selected"], 5);
    assert!(!report["kernel_cmdline"].as_str().unwrap().contains("rollback"));
    let text = visorsim(&["boot", disk.path(), "--dry-run", "--qemu", "--qemu-accel", "tcg"]);
    let text = stdout(&text);
    assert!(
        text.contains("handoff: the guest (tcg, ") && text.contains("as mboot loaded them"),
        "the text report says what the guest confirmed: {text}"
    );
}

#[test]
fn after_an_upgrade_the_trial_banks_modules_arrive() {
    if !have_qemu() {
        return;
    }
    let disk = Copy::new();
    disk.host(&["boot"]);
    disk.host(&["upgrade", "--payload-mb", "1", "--build-number", "2000", "--seed", "99"]);
    disk.host(&["shutdown"]);
    let (code, report, out) = disk.boot_qemu(&[]);
    assert_confirmed(code, &report, &out);
    assert_eq!(report["selected"], 6, "the upgraded bank's trial boot");
    assert_eq!(report["build"], "6.7.0-1.0.2000");
    // Bank 5's modules differ from bank 6's (other seed): the guest got bank 6's.
    let first = Copy::new();
    let (_, fresh, _) = first.boot_qemu(&["--dry-run"]);
    let s_v00 = |r: &Value| modules_of(r).1.into_iter().find(|(n, _)| n == "s.v00").unwrap().1;
    assert_ne!(s_v00(&report), s_v00(&fresh), "bank 6's s.v00 is not bank 5's");
}

#[test]
fn shift_r_puts_rollback_on_the_guests_command_line() {
    if !have_qemu() {
        return;
    }
    let disk = Copy::new();
    disk.host(&["boot"]);
    disk.host(&["upgrade", "--payload-mb", "1", "--build-number", "2000"]);
    disk.host(&["reboot"]);
    disk.host(&["shutdown"]);
    let (code, report, out) = disk.boot_qemu(&["--shift-r", "--answer", "yes"]);
    assert_confirmed(code, &report, &out);
    assert_eq!(report["selected"], 5, "rolled back to bank 5");
    let guest = report["handoff"]["guest_cmdline"].as_str().unwrap();
    assert!(guest.split(' ').any(|w| w == "rollback"), "the guest saw the rollback flag: {guest}");
}

#[test]
fn a_module_changed_after_mboots_check_is_caught() {
    if !have_qemu() {
        return;
    }
    let disk = Copy::new();
    let (code, report, out) = disk.boot_qemu(&["--dry-run", "--qemu-tamper", "s.v00"]);
    assert_eq!(code, 8, "a mismatch fails the boot with exit 8: {}{}", stdout(&out), stderr(&out));
    assert_eq!(report["handoff"]["result"], "mismatch");
    let detail = report["handoff"]["detail"].as_str().unwrap();
    let crc = format!(
        "{:#010x}",
        report["modules"].as_array().unwrap().iter().find(|m| m["name"] == "s.v00").unwrap()["crc32"].as_u64().unwrap()
    );
    assert!(detail.starts_with("module s.v00: crc32 differs: mboot loaded "), "{detail}");
    assert!(detail.contains(&format!("mboot loaded {crc}, the guest received 0x")), "{detail} names both values");
    let text = visorsim(&["boot", disk.path(), "--dry-run", "--qemu", "--qemu-accel", "tcg", "--qemu-tamper", "s.v00"]);
    assert_eq!(text.status.code(), Some(8));
    assert!(stdout(&text).contains("handoff FAILED: module s.v00: crc32 differs"), "{}", stdout(&text));
}

/// Patches `image` at the first occurrence of `from` (searched in its first
/// 8 MiB, where the system partition lies) with `to`.
fn patch(image: &std::path::Path, from: &[u8], to: &[u8]) {
    let file = fs::OpenOptions::new().read(true).write(true).open(image).unwrap();
    let mut head = vec![0u8; 8 << 20];
    file.read_at(&mut head, 0).unwrap();
    let at = head.windows(from.len()).position(|w| w == from).expect("pattern in the system partition");
    file.write_all_at(to, at as u64).unwrap();
}

#[test]
fn a_broken_system_partition_boots_nothing_and_shift_r_cannot_help() {
    // No qemu needed: the firmware step fails before any bank is scanned.
    let disk = Copy::new();
    let boot = |extra: &[&str]| {
        let mut args = vec!["boot", disk.path(), "--dry-run", "--json"];
        args.extend_from_slice(extra);
        let out = visorsim(&args);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), report)
    };
    // The loader file renamed: the system partition lacks it.
    patch(&disk.image, b"BOOTX64 EFI", b"BOOTX65 EFI");
    for extra in [&[][..], &["--shift-r"][..]] {
        let (code, report) = boot(extra);
        assert_eq!(code, Some(9), "{report}");
        assert_eq!(report["outcome"], "loader_missing");
        let reason = report["reason"].as_str().unwrap();
        assert_eq!(reason, "/EFI/BOOT/BOOTX64.EFI is missing from the system partition (partition 1)");
        assert_eq!(report["passes"].as_array().unwrap().len(), 0, "no bank was scanned");
        assert!(report["selected"].is_null());
    }
    let text = stdout(&visorsim(&["boot", disk.path(), "--dry-run"]));
    assert!(
        text.contains("outcome: The firmware could not start the loader: /EFI/BOOT/BOOTX64.EFI is missing"),
        "{text}"
    );
    // The partition's FAT unreadable (bytes per sector of its boot sector).
    patch(&disk.image, b"BOOTX65 EFI", b"BOOTX64 EFI");
    assert_eq!(boot(&[]).0, Some(0), "the loader is back");
    let file = fs::OpenOptions::new().write(true).open(&disk.image).unwrap();
    file.write_all_at(&[0x00, 0x03], 64 * 512 + 11).unwrap();
    let (code, report) = boot(&[]);
    assert_eq!(code, Some(9));
    assert!(
        report["reason"].as_str().unwrap().starts_with("the system partition (partition 1) is unreadable"),
        "{report}"
    );
    // With --qemu nothing is started.
    let out = visorsim(&["boot", disk.path(), "--dry-run", "--qemu", "--qemu-accel", "tcg"]);
    assert_eq!(out.status.code(), Some(9));
    assert!(stdout(&out).contains("handoff: nothing to start"), "{}", stdout(&out));
}

#[test]
fn inspect_lists_the_loader_files() {
    let out = visorsim(&["inspect", esxi6().image.to_str().unwrap(), "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p1 = report["partitions"].as_array().unwrap().iter().find(|p| p["number"] == 1).unwrap();
    let loader: Vec<&str> = p1["loader"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(
        loader,
        [
            "/EFI/BOOT/BOOTX64.EFI",
            "/EFI/VMware/safeboot64.efi",
            "/EFI/VMware/mboot64.efi",
            "/mboot.c32",
            "/safeboot.c32"
        ]
    );
    let text = stdout(&visorsim(&["inspect", esxi6().image.to_str().unwrap()]));
    assert!(text.contains("/EFI/VMware/mboot64.efi"), "{text}");
}

#[test]
fn a_scenario_boot_with_qemu_is_confirmed_by_the_guest() {
    if !have_qemu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qemu.json");
    fs::write(
        &file,
        r#"{
  "description": "boot and the trial boot of an upgrade, each handed to qemu",
  "disk": { "seed": 3 },
  "steps": [
    { "boot": { "qemu": true } },
    { "expect": { "outcome": "booted", "booted_bank": 5, "step_ok": true } },
    { "upgrade": { "build_number": 2000 } },
    { "reboot": { "qemu": true } },
    { "expect": { "outcome": "booted", "booted_bank": 6, "step_ok": true } }
  ]
}"#,
    )
    .unwrap();
    let out = visorsim(&["run", file.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let result: Value = serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    assert_eq!(result["mismatches"].as_array().unwrap().len(), 0, "{result}");
    let timeline = result["timeline"].to_string();
    assert_eq!(timeline.matches("the guest confirmed").count(), 2, "{timeline}");
}
