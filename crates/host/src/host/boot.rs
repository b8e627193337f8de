//! Power-on: the bootloader runs, then the host comes up on the bank it
//! chose (docs/host.md, After the boot).
//!
//! Invariants:
//! - `/etc` always comes up: from `/bootbank/state.tgz` when it is usable,
//!   else with defaults and an alert saying why (a bad archive never stops
//!   the boot here; mboot may refuse it earlier, as a module).
//! - A trial boot (bootstate 2 after safeboot) is confirmed (bootstate 0,
//!   through `boot.cfg.$$` and `mv -f`, then `sync`) unless the host crashes
//!   first, which leaves the bank DIRTY.
//! - A late-claimed boot device (KB 2148321) puts both bank paths in RAM.
//! - The banks are mounted with the options' [`crate::bank::CacheMode`].

use visorsim_boot::boot::{boot, BootReport, ModuleCache, Outcome};
use visorsim_boot::volume::scan_volumes;
use visorsim_disk::BlockDevice;
use visorsim_image::archive::{self, ArchiveErrorKind, ArchiveLimits};

use super::{
    EventKind, Host, HostBootOptions, HostError, Running, StateError, ETC_RAMDISK_BYTES, MAX_BOOT_CFG, MAX_STATE_TGZ,
};
use crate::bank::{Bank, BankError, BankLocation};
use crate::etc::EtcTree;
use crate::plan;

impl Host {
    /// Powers on: the bootloader runs, then (if it booted) the host comes up.
    pub fn boot<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        options: &HostBootOptions,
        cache: Option<&mut ModuleCache>,
    ) -> BootReport {
        self.running = None;
        // The host's timeline shows no module MD5s, so they are not computed
        // (`visorsim boot`, whose report shows them, computes them).
        let mut loader = options.loader.clone();
        loader.load.md5 = false;
        let report = boot(dev, &loader, cache);
        // The loader's words, then where it failed (the report's reason
        // names the table, partition, bank or file).
        let why = |said: String| match &report.reason {
            Some(why) => format!("{said} ({why})"),
            None => said,
        };
        let summary = match &report.outcome {
            Outcome::Booted => format!(
                "bootloader chose BANK{} build {}",
                report.selected.unwrap_or(0),
                report.build.as_deref().unwrap_or("?")
            ),
            Outcome::NoHypervisor => why("No hypervisor found.".to_owned()),
            Outcome::ChainloadFailed => why(format!("Failed to chainload BANK{}.", report.selected.unwrap_or(0))),
            Outcome::LoaderMissing { reason } => {
                format!("The firmware could not start the loader: {}", report.reason.as_deref().unwrap_or(reason))
            }
            // "bank 5 s.v00: Fatal error: 28 (CRC error): <mboot's line>".
            Outcome::LoadFailed { status, module } => report.reason.clone().unwrap_or_else(|| {
                format!("Fatal error: {status}{}", module.as_ref().map(|m| format!(" loading {m}")).unwrap_or_default())
            }),
        };
        self.event(EventKind::Boot, summary);
        if report.outcome != Outcome::Booted {
            return report;
        }
        let number = report.selected.expect("booted");
        let volumes = scan_volumes(dev).volumes;
        let location = |n: u32| {
            volumes
                .iter()
                .find(|v| v.number == n)
                .map(|v| BankLocation::fat(n, v.first_lba, v.sectors).with_cache(options.cache))
        };
        let last = report.passes.last().expect("a pass");
        let state = last.decision.banks.iter().find(|b| b.number == number).expect("selected bank").clone();
        let (bootbank, altbootbank) = if options.device_claimed_late {
            self.event(
                EventKind::Alert,
                "The boot device was claimed late: /bootbank and /altbootbank point to /tmp (RAM)",
            );
            (BankLocation::ram(), Some(BankLocation::ram()))
        } else {
            let alt = match number {
                5 => location(6),
                6 => location(5),
                _ => None,
            };
            (location(number).expect("the booted bank is a partition"), alt)
        };
        self.running = Some(Running {
            bank: number,
            build: state.build.clone().unwrap_or_default(),
            updated: state.updated,
            bootbank: bootbank.clone(),
            altbootbank,
            device_lost: false,
            fsck_every: options.fsck_every,
        });
        self.restore_etc(dev, &bootbank);
        if state.state_after == 2 {
            if options.crash_before_confirm {
                self.event(EventKind::Crash, "the host crashed before jumpstart confirmed the trial boot");
                self.running = None;
                return report;
            }
            self.confirm_boot(dev);
        }
        self.event(
            EventKind::Up,
            format!("host {} up on build {}", self.etc.hostname().unwrap_or_default(), state.build.unwrap_or_default()),
        );
        report
    }

    /// Orderly reboot: shutdown (with its backup), then boot. The shutdown
    /// backup's failure is in the timeline only; [`Host::reboot_keeping_error`]
    /// returns it too.
    pub fn reboot<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        options: &HostBootOptions,
        cache: Option<&mut ModuleCache>,
    ) -> BootReport {
        self.reboot_keeping_error(dev, options, cache).0
    }

    /// [`Host::reboot`], also returning how the shutdown went: its backup's
    /// failure, or [`HostError::NotRunning`] when the host was off (then
    /// nothing ran before the boot). The host boots either way, as a real
    /// host does after `backup.sh 1` fails.
    pub fn reboot_keeping_error<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        options: &HostBootOptions,
        cache: Option<&mut ModuleCache>,
    ) -> (BootReport, Result<(), HostError>) {
        let shutdown = self.shutdown(dev);
        (self.boot(dev, options, cache), shutdown)
    }

    /// Restores `/etc` from `/bootbank/state.tgz`, or boots with defaults
    /// (and says why) when it is missing, corrupt or hostile.
    fn restore_etc<D: BlockDevice>(&mut self, dev: &mut D, bootbank: &BankLocation) {
        match read_state(dev, bootbank) {
            Ok(etc) => {
                self.etc = etc;
                self.event(
                    EventKind::Restore,
                    format!(
                        "/etc restored from /bootbank/state.tgz (backup counter {})",
                        self.etc.backup_counter().unwrap_or(0)
                    ),
                );
            }
            Err(why) => {
                self.etc = EtcTree::defaults("localhost", self.seed, self.clock.now());
                self.event(EventKind::Alert, format!("Configuration not restored ({why}): booting with defaults"));
            }
        }
    }

    /// jumpstart's "reset the bootstate to 0" at the end of a trial boot
    /// (KB 306902). Done like backup.sh's boot.cfg update: a new file, then
    /// `mv -f` over boot.cfg, then `sync`.
    fn confirm_boot<D: BlockDevice>(&mut self, dev: &mut D) {
        let Some(running) = self.running.as_ref() else { return };
        let mut bootbank = running.bootbank.clone();
        let tmp = format!("boot.cfg.{}", self.pid());
        let result = (|| -> Result<(), BankError> {
            let text = bootbank.read(dev, "boot.cfg", MAX_BOOT_CFG)?;
            let new = plan::set_bootstate_zero(&String::from_utf8_lossy(&text));
            bootbank.write(dev, &tmp, new.as_bytes())?;
            bootbank.rename_replace(dev, &tmp, "boot.cfg")?;
            bootbank.sync(dev)
        })();
        match result {
            Ok(()) => {
                self.event(EventKind::Confirm, "jumpstart: the trial boot succeeded, bootstate reset to 0 (VALID)")
            }
            Err(e) => self.event(EventKind::Alert, format!("jumpstart could not reset the bootstate: {e}")),
        }
    }
}

/// `/etc` as saved in `bank`'s state.tgz. Its files must fit in the `/etc`
/// RAM disk ([`ETC_RAMDISK_BYTES`]): the archives' data is bounded by that
/// (each level, so a small archive of zeros never inflates past it) and
/// past it the restore is refused with [`StateError::EtcFull`].
pub(super) fn read_state<D: BlockDevice>(dev: &mut D, bank: &BankLocation) -> Result<EtcTree, StateError> {
    let bytes = bank.read(dev, "state.tgz", MAX_STATE_TGZ).map_err(StateError::Read)?;
    let defaults = ArchiveLimits::default();
    let limit = ETC_RAMDISK_BYTES.min(defaults.max_total_bytes);
    let limits =
        ArchiveLimits { max_total_bytes: limit, max_member_bytes: defaults.max_member_bytes.min(limit), ..defaults };
    let bank_id = Bank::<D>::id(bank);
    let files = archive::read_state_tgz(&bytes, &limits).map_err(|e| match e.kind() {
        ArchiveErrorKind::TotalTooLarge | ArchiveErrorKind::MemberTooLarge => {
            StateError::EtcFull { bank: bank_id, source: e, limit }
        }
        _ => StateError::Extract { bank: bank_id, source: e },
    })?;
    Ok(EtcTree::from_files(files))
}
