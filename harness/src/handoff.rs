//! `--qemu` of `visorsim boot` and `visorsim demo`: after the bootloader
//! decided, start the selected bank's kernel with mboot's modules and
//! command line on `qemu-system-x86_64` and show what the guest confirmed
//! (visorsim_boot::handoff does the work).

use std::time::Instant;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use visorsim_boot::boot::{BootReport, Outcome};
use visorsim_boot::handoff::{hand_over, Handoff, HandoffError, HandoffOptions};
use visorsim_disk::BlockDevice;
use visorsim_tools::qemu_system::{Accel, QemuSystem};

use crate::failure::Failure;

/// The accelerator of `--qemu-accel`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    /// KVM when /dev/kvm is usable, else TCG.
    #[default]
    Auto,
    /// KVM.
    Kvm,
    /// TCG (QEMU's own emulator; under nested virtualisation often the quicker to start).
    Tcg,
}

impl AccelArg {
    fn accel(self) -> Accel {
        match self {
            AccelArg::Auto => Accel::Auto,
            AccelArg::Kvm => Accel::Kvm,
            AccelArg::Tcg => Accel::Tcg,
        }
    }
}

/// The `--qemu` flags, shared by `boot` and `demo`.
#[derive(Args, Debug, Clone, Default)]
pub struct QemuFlags {
    /// After a successful boot, start the selected bank's kernel with mboot's modules and command line on qemu-system-x86_64 (Debian package qemu-system-x86) and check what the guest received.
    #[arg(long)]
    pub qemu: bool,
    /// Accelerator for --qemu.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto, requires = "qemu")]
    pub qemu_accel: AccelArg,
    /// Test hook: invert the first byte of this module after mboot's check (the comparison must catch it).
    #[arg(long, hide = true, requires = "qemu")]
    pub qemu_tamper: Option<String>,
}

/// What the handoff gave.
pub enum HandoffResult {
    /// The guest received exactly what mboot loaded.
    Confirmed {
        /// The guest's run.
        handoff: Box<Handoff>,
        /// Wall time from starting QEMU (after the boot) to the guest's report.
        millis: u64,
    },
    /// The guest received something else: the boot fails.
    Mismatch(String),
    /// The boot loaded no kernel: nothing was started.
    NothingToStart,
}

impl HandoffResult {
    /// One line for the report.
    pub fn line(&self) -> String {
        match self {
            HandoffResult::Confirmed { handoff, millis } => format!(
                "handoff: the guest ({}, {} MiB) received {} modules and the command line \"{}\", as mboot loaded them ({} ms)",
                handoff.run.accel.name(),
                handoff.run.memory_mib,
                handoff.modules.len(),
                handoff.cmdline,
                millis
            ),
            HandoffResult::Mismatch(why) => format!("handoff FAILED: {why}"),
            HandoffResult::NothingToStart => "handoff: nothing to start (the boot loaded no kernel)".to_owned(),
        }
    }

    /// The report's `handoff` object.
    pub fn json(&self) -> Value {
        match self {
            HandoffResult::Confirmed { handoff, millis } => json!({
                "result": "confirmed",
                "accel": handoff.run.accel.name(),
                "memory_mib": handoff.run.memory_mib,
                "millis": millis,
                "cmdline": handoff.cmdline,
                "guest_cmdline": handoff.run.report.cmdline,
                "modules": handoff.run.report.modules.iter().zip(&handoff.modules).map(|(g, name)| json!({
                    "name": name,
                    "length": g.length,
                    "crc32": format!("{:#010x}", g.crc32),
                    "start": format!("{:#010x}", g.start),
                })).collect::<Vec<_>>(),
            }),
            HandoffResult::Mismatch(why) => json!({ "result": "mismatch", "detail": why }),
            HandoffResult::NothingToStart => json!({ "result": "nothing_to_start" }),
        }
    }
}

/// Runs the handoff of `report` on `dev` when `flags.qemu`; `None` without
/// it. QEMU that cannot run the guest to its report is a [`Failure`].
pub fn run_handoff<D: BlockDevice>(
    dev: &mut D,
    report: &BootReport,
    flags: &QemuFlags,
) -> Result<Option<HandoffResult>, Failure> {
    if !flags.qemu {
        return Ok(None);
    }
    if report.outcome != Outcome::Booted {
        return Ok(Some(HandoffResult::NothingToStart));
    }
    let options = HandoffOptions {
        qemu: QemuSystem::new().with_accel(flags.qemu_accel.accel()),
        tamper: flags.qemu_tamper.clone(),
        ..Default::default()
    };
    let started = Instant::now();
    match hand_over(dev, report, &options) {
        Ok(handoff) => Ok(Some(HandoffResult::Confirmed {
            handoff: Box::new(handoff),
            millis: started.elapsed().as_millis() as u64,
        })),
        Err(HandoffError::Mismatch(m)) => Ok(Some(HandoffResult::Mismatch(m.to_string()))),
        Err(e) => Err(Failure::with("Handing the boot over to qemu-system-x86_64", e)),
    }
}
