//! `/sbin/auto-backup.sh` and `/sbin/backup.sh` (docs/host.md: auto-backup.sh, backup.sh),
//! step by step on the banks.
//!
//! Invariants:
//! - auto-backup.sh writes only when the live saved files differ from those
//!   in `/bootbank/state.tgz` (or there is none); an archive it cannot
//!   extract is left as it is.
//! - backup.sh bumps `.backup.counter` before archiving, removes leftovers,
//!   then makes at most two tries of `local.tgz.$$ → state.$$/local.tgz →
//!   state.tgz.$$ → mv -f state.tgz`, one `sync`, `rm -rf state.$$`.
//! - At shutdown a staged upgrade's bank gets the same state.tgz and is
//!   checked; boot.cfg's `modules=` is made to end with `--- state.tgz`.
//! - At shutdown, when a check is due ([`plan::fsck_due`] on the counter
//!   just bumped), `dosfsck -a` runs on partitions 5, 6 and 8 (those that
//!   are FAT partitions of the disk) through our checker's repair mode; a
//!   volume that did not check clean is the alert "Possible corruption on
//!   <disk>", every result is an `fsck` event.
//! - The banks the steps changed are kept (a RAM bank's files live in them).

use visorsim_boot::bootcfg::SafebootConfig;
use visorsim_boot::volume::{scan_volumes, PartKind};
use visorsim_disk::BlockDevice;
use visorsim_image::archive;
use visorsim_media::fat::repair_volume;

use super::boot::read_state;
use super::{EventKind, Host, HostError, MAX_BOOT_CFG};
use crate::bank::{Bank, BankError, BankLocation};
use crate::plan;

/// Largest file of a staged bank that backup.sh checks.
const MAX_CHECKED_FILE: u64 = 1 << 30;

impl Host {
    /// `/sbin/auto-backup.sh` (docs/host.md, auto-backup.sh): `Ok(true)` when it saved.
    pub fn auto_backup<D: BlockDevice>(&mut self, dev: &mut D) -> Result<bool, HostError> {
        let running = self.require_running()?.clone();
        if running.device_lost {
            return Err(self.alert(HostError::BootbankMissing { bank: "/bootbank" }));
        }
        let bootbank = &running.bootbank;
        if !bootbank.exists(dev, "state.tgz").unwrap_or(false) {
            self.backup(dev, false)?;
            return Ok(true);
        }
        let saved = match read_state(dev, bootbank) {
            Ok(etc) => etc,
            // auto-backup.sh exits here without regenerating the archive.
            Err(source) => return Err(self.alert(HostError::ExtractFailed { source })),
        };
        if self.etc.diff(&saved).is_empty() {
            self.event(EventKind::AutoBackup, "auto-backup.sh: configuration unchanged, nothing written");
            return Ok(false);
        }
        self.backup(dev, false)?;
        Ok(true)
    }

    /// `/sbin/backup.sh <is_shutdown>` (docs/host.md, backup.sh), step by step.
    pub fn backup<D: BlockDevice>(&mut self, dev: &mut D, is_shutdown: bool) -> Result<(), HostError> {
        let running = self.require_running()?.clone();
        // Steps 1–2: target /bootbank; lock; the bank must exist.
        if running.device_lost {
            return Err(self.alert(HostError::BootbankMissing { bank: "/bootbank" }));
        }
        let mut target = running.bootbank.clone();
        // Step 3: bump the counter before archiving.
        let counter = self.etc.bump_backup_counter(self.clock.now());
        let pid = self.pid();
        if let Err(source) = self.save_state(dev, &mut target, pid) {
            let rc = plan::save_rc(&source);
            return Err(self.alert(HostError::SaveFailed { bank: "/bootbank", rc, source }));
        }
        if let Some(r) = self.running.as_mut() {
            r.bootbank = target.clone();
        }
        let mut notes =
            format!("backup.sh {}: state.tgz saved to /bootbank (counter {counter})", u8::from(is_shutdown));
        // Step 5: at shutdown, an upgrade staged in the alt bank gets the configuration too.
        if is_shutdown {
            if let Some(mut alt) = running.altbootbank.clone() {
                if upgrade_staged(dev, &target, &alt) {
                    match self.save_state(dev, &mut alt, pid) {
                        Ok(()) => notes.push_str("; staged upgrade's state.tgz refreshed in /altbootbank"),
                        Err(e) => {
                            let text = format!("Error ({}) saving state to /altbootbank", plan::save_rc(&e));
                            self.event(EventKind::Alert, text);
                        }
                    }
                    self.verify_alt_bank(dev, &alt);
                    if let Some(r) = self.running.as_mut() {
                        r.altbootbank = Some(alt);
                    }
                }
            }
        }
        // Step 6: boot.cfg's module list must end with state.tgz.
        if let Err(e) = self.ensure_state_module(dev, pid) {
            self.event(EventKind::Alert, format!("backup.sh could not update boot.cfg: {e}"));
        }
        self.event(EventKind::Backup, notes);
        // Step 7: at shutdown, when a file-system check is due.
        if is_shutdown && plan::fsck_due(counter, running.fsck_every) {
            self.check_file_systems(dev, counter);
        }
        Ok(())
    }

    /// Step 7: `dosfsck -a` on each of [`plan::FSCK_PARTITIONS`] that is a
    /// FAT partition of the disk, as our checker's repair mode does it
    /// (`fsck.fat -a`'s repairs). fsck.fat exits non-zero when it repaired
    /// something or gave up, and that is when backup.sh logs "Possible
    /// corruption on <disk>". (Like the script, it runs on the banks while
    /// they are mounted; the host has no write pending at this point.)
    fn check_file_systems<D: BlockDevice>(&mut self, dev: &mut D, counter: u64) {
        let volumes = scan_volumes(dev).volumes;
        for number in plan::FSCK_PARTITIONS {
            let Some(v) = volumes.iter().find(|v| v.number == number && v.kind == PartKind::Fat) else { continue };
            match repair_volume(dev, v.first_lba, v.sectors) {
                Ok(report) if report.before.is_clean() => self.event(
                    EventKind::Fsck,
                    format!("dosfsck -a partition {number} (check due at backup {counter}): clean"),
                ),
                Ok(report) => {
                    let what = if report.changed { "repaired" } else { "not repaired" };
                    self.event(
                        EventKind::Fsck,
                        format!(
                            "dosfsck -a partition {number} (check due at backup {counter}): {}; {what}",
                            report.before.summary()
                        ),
                    );
                    self.event(EventKind::Alert, plan::possible_corruption(number));
                }
                Err(e) => {
                    self.event(EventKind::Fsck, format!("dosfsck -a partition {number}: {e}"));
                    self.event(EventKind::Alert, plan::possible_corruption(number));
                }
            }
        }
    }

    /// Step 4: leftovers removed, then at most two tries of
    /// local.tgz.$$ → state.$$/local.tgz → state.tgz.$$ → mv -f state.tgz, sync.
    /// The error is the last try's.
    fn save_state<D: BlockDevice>(&self, dev: &mut D, bank: &mut BankLocation, pid: u32) -> Result<(), BankError> {
        if let Ok(entries) = bank.list(dev, None) {
            for e in entries.iter().filter(|e| !e.is_dir && plan::is_leftover(&e.name)) {
                let _ = bank.remove(dev, &e.name);
            }
        }
        let mtime = self.clock.now().0 as u32;
        let local = archive::local_tgz(&self.etc.saved_files(), mtime);
        let local_name = format!("local.tgz.{pid}");
        let dir = format!("state.{pid}");
        let state_name = format!("state.tgz.{pid}");
        let mut attempt = || -> Result<(), BankError> {
            bank.write(dev, &local_name, &local)?;
            bank.mkdir(dev, &dir)?;
            bank.move_into(dev, &local_name, &dir, "local.tgz")?;
            let state = archive::state_tgz(&local, mtime);
            bank.write(dev, &state_name, &state)?;
            bank.rename_replace(dev, &state_name, "state.tgz")?;
            bank.sync(dev)?;
            bank.remove_dir(dev, &dir)
        };
        attempt().or_else(|_| attempt())
    }

    /// backup.sh's check of the staged bank: `tar tzf` each .tgz, `gunzip -t`
    /// each gzip module; alerts on a failure.
    fn verify_alt_bank<D: BlockDevice>(&mut self, dev: &mut D, alt: &BankLocation) {
        let Ok(entries) = alt.list(dev, None) else { return };
        let mut corrupt = false;
        for e in entries.iter().filter(|e| !e.is_dir && e.name != "boot.cfg") {
            let Ok(data) = alt.read(dev, &e.name, MAX_CHECKED_FILE) else { continue };
            if !visorsim_boot::gzip::check_module(&data).is_sound() {
                corrupt = true;
                self.event(EventKind::Alert, format!("New version of {} appears corrupt, upgrade may fail", e.name));
            }
        }
        if corrupt {
            self.event(EventKind::Alert, "New upgrade image appears corrupted, upgrade may fail");
        }
    }

    /// Step 6: `modules=` must end with `--- state.tgz` (through
    /// `boot.cfg.$$`, `mv -f`, `sync`).
    fn ensure_state_module<D: BlockDevice>(&mut self, dev: &mut D, pid: u32) -> Result<(), BankError> {
        let Some(running) = self.running.as_ref() else { return Ok(()) };
        let mut bootbank = running.bootbank.clone();
        let text = String::from_utf8_lossy(&bootbank.read(dev, "boot.cfg", MAX_BOOT_CFG)?).into_owned();
        let Some(new) = plan::with_state_module(&text) else { return Ok(()) };
        let tmp = format!("boot.cfg.{pid}");
        bootbank.write(dev, &tmp, new.as_bytes())?;
        bootbank.rename_replace(dev, &tmp, "boot.cfg")?;
        bootbank.sync(dev)
    }
}

/// Whether the alt bank holds a staged upgrade ([`plan::upgrade_staged`]
/// over the two boot.cfg files).
fn upgrade_staged<D: BlockDevice>(dev: &mut D, boot: &BankLocation, alt: &BankLocation) -> bool {
    let mut read =
        |b: &BankLocation| b.read(dev, "boot.cfg", MAX_BOOT_CFG).ok().and_then(|t| SafebootConfig::parse(&t).ok());
    let (b, a) = (read(boot), read(alt));
    plan::upgrade_staged(b.as_ref(), a.as_ref())
}
