//! The host steps of a scenario (boot, reboot, configure, advanced, advance, backup,
//! upgrade, shutdown, power cut, losing the boot device) and the timeline
//! text each one leaves.

use visorsim_boot::boot::{BootOptions, BootReport, Outcome, ShiftR};
use visorsim_boot::handoff::{hand_over, HandoffOptions};
use visorsim_boot::load::{LoadOptions, DEFAULT_MEMORY_BUDGET};
use visorsim_boot::safeboot::Answer;
use visorsim_host::clock::SimTime;
use visorsim_host::host::{EventKind, HostBootOptions, HostError, HostErrorKind};
use visorsim_image::system::{ImageFile, SystemImage};
use visorsim_tools::qemu_system::{Accel, QemuSystem};

use super::faults::{arm, corrupt};
use super::{system_image, RunError, RunErrorKind, StepFailure, World};
use crate::model::{BootStep, DiskSpec, ShiftRWhen, Step, StepErrorKind, UpgradeStep};

/// The kind of a host step's error, as scenario files name it.
fn step_error_kind(e: &HostError) -> StepErrorKind {
    match e.kind() {
        HostErrorKind::NotRunning => StepErrorKind::NotRunning,
        HostErrorKind::BootbankMissing => StepErrorKind::BootbankMissing,
        HostErrorKind::ExtractFailed => StepErrorKind::ExtractFailed,
        HostErrorKind::SaveFailed => StepErrorKind::SaveFailed,
        HostErrorKind::NoAltBank => StepErrorKind::NoAltBank,
        HostErrorKind::UpgradeTooLarge => StepErrorKind::UpgradeTooLarge,
        HostErrorKind::UpgradeNoSpace => StepErrorKind::UpgradeNoSpace,
        HostErrorKind::UpgradeIo => StepErrorKind::UpgradeIo,
        HostErrorKind::AltBankUnclean => StepErrorKind::AltBankUnclean,
        HostErrorKind::Config => StepErrorKind::Config,
    }
}

/// A boot step's options, with the disk's `cache` and `fsck_every`.
fn boot_options(b: &BootStep, disk: &DiskSpec) -> HostBootOptions {
    let answer = if b.answer_no { Answer::No } else { Answer::Yes };
    HostBootOptions {
        loader: BootOptions {
            shift_r: match b.shift_r {
                None => ShiftR::None,
                Some(ShiftRWhen::Safeboot) => ShiftR::AtSafeboot(answer),
                Some(ShiftRWhen::Mboot) => ShiftR::InMboot(answer),
            },
            fake_write_error: b.fake_write_error,
            load: LoadOptions { memory_budget: disk.ram.unwrap_or(DEFAULT_MEMORY_BUDGET), ..LoadOptions::default() },
            loader: disk.loader,
            ..Default::default()
        },
        device_claimed_late: b.device_late,
        crash_before_confirm: b.crash_before_confirm,
        cache: disk.cache,
        fsck_every: disk.fsck_every,
    }
}

fn boot_summary(report: &BootReport) -> String {
    let said = loader_summary(report);
    // Where it failed, in visorsim's words (BootReport::reason), beside the
    // loader's own line: the table and field, the partition, the bank and file.
    match &report.reason {
        Some(reason) if report.outcome != Outcome::Booted => format!("{said} (why: {reason})"),
        _ => said,
    }
}

/// The loader's own words for the boot's outcome.
fn loader_summary(report: &BootReport) -> String {
    match &report.outcome {
        Outcome::Booted => format!("booted BANK{}", report.selected.unwrap_or(0)),
        Outcome::NoHypervisor => "No hypervisor found.".to_owned(),
        Outcome::ChainloadFailed => format!("Failed to chainload BANK{}.", report.selected.unwrap_or(0)),
        Outcome::LoadFailed { status, module } => format!("Fatal error: {status} {}", module.as_deref().unwrap_or("")),
        Outcome::LoaderMissing { reason } => format!("The firmware could not start the loader: {reason}"),
    }
}

/// `qemu: true`: the boot handed to qemu-system-x86_64, under TCG (a
/// scenario is a test; TCG's start-up does not depend on nested
/// virtualisation the way KVM's does). A difference or a machine that
/// cannot run is the step's error `handoff`; the timeline says which.
fn hand_over_step(w: &mut World, b: &BootStep, report: &BootReport, text: String) -> String {
    if !b.qemu || report.outcome != Outcome::Booted {
        return text;
    }
    let options = HandoffOptions { qemu: QemuSystem::new().with_accel(Accel::Tcg), ..Default::default() };
    match hand_over(&mut w.dev, report, &options) {
        Ok(h) => format!("{text}; the guest confirmed {} modules and \"{}\"", h.modules.len(), h.cmdline),
        Err(e) => {
            let mut message = e.to_string();
            let mut next = std::error::Error::source(&e);
            while let Some(cause) = next {
                message.push_str(&format!(": {cause}"));
                next = cause.source();
            }
            w.last_error = Some(StepFailure { kind: StepErrorKind::Handoff, message: message.clone() });
            format!("{text}; handoff failed: {message}")
        }
    }
}

pub(super) fn play(w: &mut World, step: &Step) -> Result<(String, String), RunError> {
    w.last_error = None;
    let done = |r: Result<(), HostError>, w: &mut World| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            let result = format!("failed: {e}");
            w.last_error = Some(StepFailure { kind: step_error_kind(&e), message: e.to_string() });
            result
        }
    };
    Ok(match step {
        Step::Boot(b) => {
            let report = w.host.boot(&mut w.dev, &boot_options(b, &w.spec), Some(&mut w.cache));
            let text = hand_over_step(w, b, &report, boot_summary(&report));
            w.last_boot = Some(report);
            ("boot".into(), text)
        }
        Step::Reboot(b) => {
            let (report, shutdown) =
                w.host.reboot_keeping_error(&mut w.dev, &boot_options(b, &w.spec), Some(&mut w.cache));
            // The shutdown backup's failure is the step's error (what
            // `error_contains`, `error_kind` and `step_ok` see next); a host
            // that was off had no shutdown, and the reboot is a boot.
            let mut text = boot_summary(&report);
            match shutdown {
                Err(e) if e.kind() != HostErrorKind::NotRunning => {
                    text = format!("shutdown failed: {e}; {text}");
                    w.last_error = Some(StepFailure { kind: step_error_kind(&e), message: e.to_string() });
                }
                _ => {}
            }
            let text = hand_over_step(w, b, &report, text);
            w.last_boot = Some(report);
            ("reboot".into(), text)
        }
        Step::SetHostname(name) => {
            let r = w.host.set_hostname(name);
            (format!("set hostname {name}"), done(r, w))
        }
        Step::Configure { key, value } => {
            let r = w.host.config_set(key, value);
            (format!("configure {key}"), done(r, w))
        }
        Step::Advanced { name, value } => {
            let r = w.host.advanced_set(name, value);
            (format!("advanced {name}"), done(r, w))
        }
        Step::Password { user, password } => {
            let r = w.host.set_password(user, password);
            (format!("password {user}"), done(r, w))
        }
        Step::Advance(d) => {
            let secs = SimTime::parse_duration(d)
                .map_err(|e| RunError::new(RunErrorKind::Step, "advance", format!("advance: {e}")).with_source(e))?;
            let before = w.host.timeline().len();
            w.host.advance(&mut w.dev, secs);
            let backups = w.host.timeline()[before..].iter().filter(|e| e.kind == EventKind::Backup).count();
            let alerts = w.host.timeline()[before..].iter().filter(|e| e.kind == EventKind::Alert).count();
            (format!("advance {d}"), format!("{backups} backup(s), {alerts} alert(s)"))
        }
        Step::Backup => {
            let r = w.host.backup(&mut w.dev, false);
            ("backup.sh 0".into(), done(r, w))
        }
        Step::Upgrade(u) => {
            let image = upgrade_image(&w.spec, u)?;
            let r = w.host.upgrade(&mut w.dev, &image);
            (format!("upgrade to build {}", u.build), done(r, w))
        }
        Step::Shutdown => {
            let r = w.host.shutdown(&mut w.dev);
            ("shutdown".into(), done(r, w))
        }
        Step::PowerCut => {
            w.dev.cut_power();
            ("power cut".into(), "host off".into())
        }
        Step::LoseDevice => {
            let ios = w.dev.ios();
            w.dev.plan_mut().gone_after_ios = Some(ios);
            w.host.lose_boot_device();
            ("boot device lost".into(), "every I/O fails from now on".into())
        }
        Step::RestoreDevice => {
            w.dev.plan_mut().gone_after_ios = None;
            ("boot device back".into(), "ok".into())
        }
        Step::Fault(f) => arm(w, f)?,
        Step::Corrupt(c) => corrupt(w, c)?,
        Step::Expect(_) => unreachable!("handled by run"),
    })
}

fn upgrade_image(spec: &DiskSpec, u: &UpgradeStep) -> Result<SystemImage, RunError> {
    let mut image = system_image(spec, u.build, u.seed.unwrap_or(u64::from(u.build)), "upgrade")?;
    if let Some(name) = &u.broken {
        let file = image.files.iter_mut().find(|f| &f.name == name).ok_or_else(|| {
            RunError::new(
                RunErrorKind::Image,
                "upgrade.broken",
                format!("upgrade.broken: the image has no module {name}"),
            )
            .with_file(name)
        })?;
        // The middle of the deflate data and the trailer's CRC32 (the last
        // 8 bytes hold CRC32 and ISIZE); a module shorter than the trailer
        // has only its middle byte flipped.
        let n = file.data.len();
        for at in [Some(n / 2), n.checked_sub(8)].into_iter().flatten() {
            if let Some(byte) = file.data.get_mut(at) {
                *byte ^= 0xFF;
            }
        }
    }
    if u.extra_mb > 0 {
        // `extra_mb` is at most MAX_EXTRA_MB (checked when the file is read).
        let bytes = usize::try_from(u.extra_mb.saturating_mul(1_000_000)).unwrap_or(usize::MAX);
        image.files.push(ImageFile { name: "tools.t00".into(), data: vec![0x5A; bytes] });
        image.boot_cfg.modules.insert(image.boot_cfg.modules.len() - 1, "tools.t00".into());
    }
    Ok(image)
}
