//! The host's life, end to end on a memory disk: configuration is lost or
//! kept exactly when a real host would lose or keep it; upgrades, trial
//! boots, rollbacks; a lost boot device; hostile state archives.

use visorsim_boot::boot::{BootOptions, Outcome, ShiftR};
use visorsim_boot::safeboot::Answer;
use visorsim_disk::{MemDisk, SectorSize};
use visorsim_host::bank::{Bank, BankLocation};
use visorsim_host::clock::SimTime;
use visorsim_host::host::{bank_summaries, EventKind, Host, HostBootOptions, HostErrorKind};
use visorsim_image::install::{install_fresh, InstallOptions};
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};
use visorsim_media::layout::Layout;

pub(crate) fn image(build_number: u32, seed: u64) -> SystemImage {
    let spec = ImageSpec {
        version: "6.7.0".into(),
        build_number,
        seed,
        payload: PayloadSize::Compressed(200_000),
        hostname: "h".into(),
    };
    SystemImage::build(&spec, None, &mut |_, _| {}).unwrap()
}

pub(crate) fn installed() -> MemDisk {
    let options = InstallOptions { layout: Layout::Esxi6, size: None, sector_size: SectorSize::S512, seed: 3 };
    install_fresh(&image(1000, 3), &options).unwrap().0
}

pub(crate) fn up() -> (MemDisk, Host) {
    let mut disk = installed();
    let mut host = Host::new(3, SimTime::default());
    let report = host.boot(&mut disk, &HostBootOptions::default(), None);
    assert_eq!(report.outcome, Outcome::Booted);
    (disk, host)
}

fn states(disk: &mut MemDisk) -> Vec<(u32, Option<i32>, Option<u32>)> {
    bank_summaries(disk).into_iter().map(|b| (b.number, b.bootstate, b.updated)).collect()
}

pub(crate) fn events(host: &Host, kind: EventKind) -> Vec<String> {
    host.timeline().iter().filter(|e| e.kind == kind).map(|e| e.text.clone()).collect()
}

#[test]
fn change_then_power_loss_before_the_hourly_backup_is_lost() {
    // KB 2001780: a change at minute 2, power lost at minute 59.
    let (mut disk, mut host) = up();
    host.advance(&mut disk, 2 * 60);
    host.set_hostname("changed").unwrap();
    host.advance(&mut disk, 57 * 60);
    host.power_off();
    host.boot(&mut disk, &HostBootOptions::default(), None);
    assert_ne!(host.etc().hostname().as_deref(), Some("changed"));
}

#[test]
fn change_saved_by_the_hourly_backup_survives_power_loss() {
    let (mut disk, mut host) = up();
    host.advance(&mut disk, 2 * 60);
    host.set_hostname("changed").unwrap();
    host.advance(&mut disk, 60 * 60); // passes 01:01
    assert!(events(&host, EventKind::Backup).iter().any(|e| e.contains("state.tgz saved")));
    host.power_off();
    host.boot(&mut disk, &HostBootOptions::default(), None);
    assert_eq!(host.etc().hostname().as_deref(), Some("changed"));
    assert_eq!(host.etc().backup_counter(), Some(1));
}

#[test]
fn unchanged_configuration_is_not_written_again() {
    let (mut disk, mut host) = up();
    host.set_hostname("once").unwrap();
    host.advance(&mut disk, 3 * 3600);
    assert_eq!(
        events(&host, EventKind::Backup).len(),
        1,
        "the first auto-backup saves, the next ones find no difference"
    );
    assert_eq!(events(&host, EventKind::AutoBackup).len(), 2);
}

#[test]
fn orderly_reboot_keeps_the_configuration() {
    let (mut disk, mut host) = up();
    host.set_hostname("kept").unwrap();
    host.reboot(&mut disk, &HostBootOptions::default(), None);
    assert_eq!(host.etc().hostname().as_deref(), Some("kept"));
}

#[test]
fn upgrade_trial_confirmed_keeps_configuration() {
    let (mut disk, mut host) = up();
    host.set_hostname("carried").unwrap();
    host.backup(&mut disk, false).unwrap();
    host.upgrade(&mut disk, &image(2000, 4)).unwrap();
    assert_eq!(states(&mut disk), [(5, Some(0), Some(1)), (6, Some(1), Some(2))]);
    let report = host.reboot(&mut disk, &HostBootOptions::default(), None);
    assert_eq!(report.selected, Some(6));
    assert_eq!(states(&mut disk), [(5, Some(0), Some(1)), (6, Some(0), Some(2))], "confirmed: VALID");
    assert_eq!(host.etc().hostname().as_deref(), Some("carried"));
    assert_eq!(host.running().unwrap().build, "6.7.0-1.0.2000");
}

#[test]
fn broken_trial_rolls_back_on_the_next_boot_with_the_old_configuration() {
    let (mut disk, mut host) = up();
    host.set_hostname("old-config").unwrap();
    host.backup(&mut disk, false).unwrap();
    let mut broken = image(2000, 4);
    let sv00 = broken.files.iter_mut().find(|f| f.name == "s.v00").unwrap();
    let n = sv00.data.len();
    sv00.data[n - 8] ^= 1;
    host.upgrade(&mut disk, &broken).unwrap();
    let report = host.reboot(&mut disk, &HostBootOptions::default(), None);
    assert!(matches!(report.outcome, Outcome::LoadFailed { .. }));
    assert!(host.running().is_none());
    assert_eq!(states(&mut disk)[1], (6, Some(2), Some(2)), "DIRTY after the failed trial");
    let report = host.boot(&mut disk, &HostBootOptions::default(), None);
    assert_eq!(report.selected, Some(5));
    assert_eq!(states(&mut disk)[1], (6, Some(3), Some(2)));
    assert_eq!(host.etc().hostname().as_deref(), Some("old-config"));
}

#[test]
fn crash_during_the_trial_boot_loses_what_was_saved_into_the_new_bank() {
    // Field bug 1 (docs/field-bugs.md#1), its variant: the trial bank never gets confirmed.
    let (mut disk, mut host) = up();
    host.upgrade(&mut disk, &image(2000, 4)).unwrap();
    let crash = HostBootOptions { crash_before_confirm: true, ..Default::default() };
    host.reboot(&mut disk, &crash, None);
    assert_eq!(states(&mut disk)[1].1, Some(2), "still DIRTY");
    let report = host.boot(&mut disk, &HostBootOptions::default(), None);
    assert_eq!(report.selected, Some(5), "DIRTY becomes INVALID, the old bank boots");
}

#[test]
fn shutdown_after_upgrade_refreshes_the_staged_bank() {
    let (mut disk, mut host) = up();
    host.upgrade(&mut disk, &image(2000, 4)).unwrap();
    host.set_hostname("after-upgrade").unwrap();
    host.shutdown(&mut disk).unwrap();
    assert!(events(&host, EventKind::Backup).iter().any(|e| e.contains("refreshed in /altbootbank")));
    host.boot(&mut disk, &HostBootOptions::default(), None);
    assert_eq!(host.running().unwrap().bank, 6);
    assert_eq!(
        host.etc().hostname().as_deref(),
        Some("after-upgrade"),
        "the change made after the upgrade reached the new bank"
    );
}

#[test]
fn backup_with_the_boot_device_gone_fails_and_keeps_ram_state() {
    let (mut disk, mut host) = up();
    host.set_hostname("ram-only").unwrap();
    host.lose_boot_device();
    let err = host.backup(&mut disk, false).unwrap_err();
    assert_eq!(err.to_string(), "Bootbank cannot be found at path '/bootbank'");
    assert_eq!(err.kind(), HostErrorKind::BootbankMissing);
    host.advance(&mut disk, 3600);
    assert!(events(&host, EventKind::Alert).iter().filter(|e| e.contains("Bootbank cannot be found")).count() >= 2);
    assert_eq!(host.etc().hostname().as_deref(), Some("ram-only"));
    host.power_off();
    host.boot(&mut disk, &HostBootOptions::default(), None);
    assert_ne!(host.etc().hostname().as_deref(), Some("ram-only"), "the next boot finds the old state");
}

#[test]
fn device_claimed_late_backs_up_into_ram() {
    // KB 2148321.
    let mut disk = installed();
    let mut host = Host::new(3, SimTime::default());
    let late = HostBootOptions { device_claimed_late: true, ..Default::default() };
    host.boot(&mut disk, &late, None);
    assert!(matches!(host.running().unwrap().bootbank, BankLocation::Ram(_)));
    host.set_hostname("lost-at-reboot").unwrap();
    host.advance(&mut disk, 3600);
    assert!(events(&host, EventKind::Backup).iter().any(|e| e.contains("state.tgz saved")), "the backup \"succeeds\"");
    host.reboot(&mut disk, &HostBootOptions::default(), None);
    assert_ne!(host.etc().hostname().as_deref(), Some("lost-at-reboot"));
}

#[test]
fn image_that_does_not_fit_fails_the_upgrade_cleanly() {
    let (mut disk, mut host) = up();
    let mut huge = image(2000, 4);
    huge.files.push(visorsim_image::system::ImageFile { name: "tools.t00".into(), data: vec![1u8; 300_000_000] });
    let before = states(&mut disk);
    let err = host.upgrade(&mut disk, &huge).unwrap_err();
    assert_eq!(err.kind(), HostErrorKind::UpgradeTooLarge);
    let err = err.to_string();
    assert!(err.starts_with("The pending transaction requires 30"), "{err}");
    assert!(err.contains("however the maximum supported size is 262 MB."), "{err}");
    assert_eq!(states(&mut disk), before, "nothing written");
    let report = host.reboot(&mut disk, &HostBootOptions::default(), None);
    assert_eq!(report.selected, Some(5));
}

#[test]
fn shift_r_after_a_confirmed_upgrade_returns_to_the_old_build() {
    let (mut disk, mut host) = up();
    host.upgrade(&mut disk, &image(2000, 4)).unwrap();
    host.reboot(&mut disk, &HostBootOptions::default(), None);
    let shift = HostBootOptions {
        loader: BootOptions { shift_r: ShiftR::AtSafeboot(Answer::Yes), ..Default::default() },
        ..Default::default()
    };
    let report = host.reboot(&mut disk, &shift, None);
    assert_eq!(report.selected, Some(5));
    assert_eq!(states(&mut disk)[1].1, Some(3));
}

#[test]
fn archives_are_readable_by_tar() {
    let (mut disk, mut host) = up();
    host.backup(&mut disk, false).unwrap();
    let Some(tar) = visorsim_testkit::require_tool!("tar", "tar") else { return };
    let state = host.running().unwrap().bootbank.read(&mut disk, "state.tgz", 1 << 20).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.tgz"), &state).unwrap();
    let out = std::process::Command::new(&tar).args(["xzf", "state.tgz"]).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(&tar).args(["tzf", "local.tgz"]).current_dir(dir.path()).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && listing.contains("etc/vmware/esx.conf")
            && listing.contains("etc/vmware/.backup.counter"),
        "{listing}"
    );
}

fn boot_with_state(state: Vec<u8>) -> Host {
    let (mut disk, host) = up();
    let mut bootbank = host.running().unwrap().bootbank.clone();
    bootbank.write(&mut disk, "state.tgz", &state).unwrap();
    let mut host = Host::new(3, SimTime::default());
    let report = host.boot(&mut disk, &HostBootOptions::default(), None);
    assert_eq!(report.outcome, Outcome::Booted, "a bad state.tgz never stops the boot");
    host
}

fn tar_with(entries: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
    // (name, typeflag, data, link target) as a raw ustar archive, gzip'd.
    let mut tar = Vec::new();
    for (name, kind, data, link) in entries {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = *kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        tar.extend_from_slice(&h);
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    visorsim_image::payload::gzip_bytes(None, &tar, 0)
}

#[test]
fn corrupt_gzip_state_tgz_fails_the_boot_in_mboot() {
    // state.tgz is a boot module: mboot checks its gzip like any other.
    let (mut disk, host) = up();
    let mut bootbank = host.running().unwrap().bootbank.clone();
    bootbank.write(&mut disk, "state.tgz", b"\x1f\x8b\x08\x00garbage and more garbage").unwrap();
    let mut host = Host::new(3, SimTime::default());
    let report = host.boot(&mut disk, &HostBootOptions::default(), None);
    assert!(matches!(report.outcome, Outcome::LoadFailed { ref module, .. } if module.as_deref() == Some("state.tgz")));
}

#[test]
fn hostile_or_broken_state_archives_boot_with_defaults_and_say_why() {
    let local = |entries: &[(&str, u8, &[u8], &str)]| tar_with(&[("local.tgz", b'0', &tar_with(entries), "")]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not a tar inside", visorsim_image::payload::gzip_bytes(None, b"not a tar archive at all", 0)),
        ("empty", Vec::new()),
        ("parent dir", local(&[("../etc/passwd", b'0', b"x", "")])),
        ("absolute", local(&[("/etc/shadow", b'0', b"x", "")])),
        ("symlink out", local(&[("etc/hosts", b'2', b"", "/etc/../../root")])),
        ("enormous member", local(&[("etc/big", b'0', &vec![0u8; 70 << 20], "")])),
    ];
    for (what, state) in cases {
        let host = boot_with_state(state);
        let alerts = events(&host, EventKind::Alert);
        assert!(alerts.iter().any(|a| a.contains("booting with defaults")), "{what}: {alerts:?}");
        assert_eq!(host.etc().hostname().as_deref(), Some("localhost"), "{what}");
    }
}

#[test]
fn a_restored_host_carries_on_where_the_saved_one_was() {
    let (mut disk, mut host) = up();
    host.set_hostname("saved").unwrap();
    let state = host.save();
    let mut restored = Host::restore(&state);
    assert_eq!(restored.save(), state);
    assert_eq!((restored.now(), restored.timeline().len()), (host.now(), host.timeline().len()));
    // Both take the same steps from here.
    let mut twin = disk.clone();
    host.advance(&mut disk, 3600);
    restored.advance(&mut twin, 3600);
    assert_eq!(restored.save(), host.save());
    assert_eq!(states(&mut twin), states(&mut disk));
}

#[test]
fn errors_have_kinds_to_match_on() {
    let mut disk = installed();
    let mut host = Host::new(3, SimTime::default());
    assert_eq!(host.backup(&mut disk, false).unwrap_err().kind(), HostErrorKind::NotRunning);
    host.boot(&mut disk, &HostBootOptions::default(), None);
    let err = host.set_hostname("-bad-").unwrap_err();
    assert_eq!(err.kind(), HostErrorKind::Config);
    assert!(err.to_string().starts_with("Invalid host name '-bad-'"), "{err}");
    host.lose_boot_device();
    let err = host.upgrade(&mut disk, &image(2000, 4)).unwrap_err();
    assert_eq!(err.kind(), HostErrorKind::UpgradeIo);
    assert_eq!(err.to_string(), "[Errno 5] Input/output error: '/altbootbank'");
    assert_eq!(host.timeline().last().unwrap().text, err.to_string(), "the alert is in the timeline");
}

#[test]
fn saved_state_keeps_the_json_shape_of_host_json() {
    use serde_json::json;
    use visorsim_host::host::HostState;
    // `<image>.host.json` files written before the bank trait and the event enum still read.
    let fat = BankLocation::fat(5, 2048, 512_000);
    assert_eq!(
        serde_json::to_value(&fat).unwrap(),
        json!({ "Partition": { "number": 5, "first_lba": 2048, "sectors": 512_000 } })
    );
    let mut ram = BankLocation::ram();
    ram.write(&mut installed(), "state.tgz", &[1, 2]).unwrap();
    assert_eq!(serde_json::to_value(&ram).unwrap(), json!({ "Ram": { "state.tgz": [1, 2] } }));
    assert_eq!(serde_json::to_value(EventKind::AutoBackup).unwrap(), json!("auto-backup"));
    assert_eq!(serde_json::to_value(EventKind::PowerOff).unwrap(), json!("power-off"));
    let (_, host) = up();
    let value = serde_json::to_value(host.save()).unwrap();
    let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["clock", "etc", "next_pid", "running", "seed", "timeline"]);
    assert_eq!(value["timeline"][0]["kind"], json!("boot"));
    let back: HostState = serde_json::from_value(value).unwrap();
    assert_eq!(back, host.save());
}
