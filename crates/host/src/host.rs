//! The running ESXi-like host: booted from a bank, living in a RAM-disk,
//! saving its configuration with backup.sh, upgrading into the other bank.
//!
//! ```text
//!   boot ─► /bootbank = booted bank, /altbootbank = the other
//!        ─► /etc from /bootbank/state.tgz → local.tgz (defaults if unusable)
//!        ─► a DIRTY trial bank is confirmed: bootstate=0 ("jumpstart")
//!   configure ─► /etc in RAM only
//!   advance clock ─► cron `1 * * * *` → auto-backup.sh → backup.sh 0
//!   upgrade ─► new image into /altbootbank: updated+1, bootstate=1
//!   reboot / shutdown ─► backup.sh 1 (and the staged alt bank's state.tgz)
//!   power off / crash ─► nothing: configuration since the last backup is lost
//! ```
//!
//! The host holds no device: every operation takes the boot device, so the
//! fault layer (or a write log) can sit underneath. Each shell step of the
//! scripts is its own FAT operation (see [`crate::bank`]), each reaching the
//! disk as sector writes, with the script's `sync`s as flushes.

use serde::{Deserialize, Serialize};
use visorsim_boot::boot::{boot, BootOptions, BootReport, ModuleCache, Outcome};
use visorsim_boot::bootcfg::{BootCfg, SafebootConfig};
use visorsim_boot::volume::scan_volumes;
use visorsim_disk::BlockDevice;

use crate::bank::{self, BankLocation};
use crate::clock::{Clock, SimTime};
use crate::cron::{CronSchedule, AUTO_BACKUP};
use crate::etc::EtcTree;
use visorsim_image::archive::{self, ArchiveLimits};
use visorsim_image::system::SystemImage;

/// Largest state.tgz the host reads (local.tgz and its files are bounded
/// again by [`ArchiveLimits`]).
const MAX_STATE_TGZ: u64 = 64 << 20;

/// A line of the host's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When.
    pub time: SimTime,
    /// Short name of what happened (`boot`, `backup`, `alert`...).
    pub kind: String,
    /// What the host or its scripts said.
    pub text: String,
}

/// The system that is up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    /// The bank booted from.
    pub bank: u32,
    /// Its build.
    pub build: String,
    /// Its `updated`.
    pub updated: u32,
    /// `/bootbank`.
    pub bootbank: BankLocation,
    /// `/altbootbank` (none when the boot device is missing).
    pub altbootbank: Option<BankLocation>,
    /// The boot device disappeared while running: every bank path is gone.
    pub device_lost: bool,
}

/// How a boot of the host goes, beyond the bootloader's options.
#[derive(Clone, Debug, Default)]
pub struct HostBootOptions {
    /// The bootloader's options.
    pub loader: BootOptions,
    /// The boot device is claimed after `/bootbank` was set up (KB 2148321):
    /// the bank paths point into the RAM-disk.
    pub device_claimed_late: bool,
    /// The host crashes before jumpstart confirms a trial boot.
    pub crash_before_confirm: bool,
}

/// Why a host operation failed (its alert is also in the timeline).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The host is not running.
    #[error("The host is not running")]
    NotRunning,
    /// backup.sh / auto-backup.sh failed.
    #[error("{0}")]
    Backup(String),
    /// The upgrade failed.
    #[error("{0}")]
    Upgrade(String),
    /// A configuration change was refused (bad host name, key, user...).
    #[error("{0}")]
    Config(String),
}

/// The host: its clock, its RAM-disk `/etc`, what is running, the timeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Host {
    /// Simulated time.
    pub clock: Clock,
    /// `/etc` in the RAM-disk.
    pub etc: EtcTree,
    /// The running system, if up.
    pub running: Option<Running>,
    /// Seed of everything the host generates (defaults, password salts).
    pub seed: u64,
    /// Next process id, for the scripts' `$$`.
    pub next_pid: u32,
    /// Everything that happened.
    pub timeline: Vec<Event>,
}

impl Host {
    /// A powered-off host at `start`.
    pub fn new(seed: u64, start: SimTime) -> Host {
        let mut clock = Clock::default();
        clock.set(start);
        Host {
            clock,
            etc: EtcTree::defaults("localhost", seed, start),
            running: None,
            seed,
            next_pid: 1000,
            timeline: Vec::new(),
        }
    }

    fn event(&mut self, kind: &str, text: impl Into<String>) {
        self.timeline.push(Event { time: self.clock.now(), kind: kind.to_owned(), text: text.into() });
    }

    fn pid(&mut self) -> u32 {
        self.next_pid += 1;
        self.next_pid
    }

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
        let summary = match &report.outcome {
            Outcome::Booted => format!(
                "bootloader chose BANK{} build {}",
                report.selected.unwrap_or(0),
                report.build.as_deref().unwrap_or("?")
            ),
            Outcome::NoHypervisor => "No hypervisor found.".to_owned(),
            Outcome::ChainloadFailed => format!("Failed to chainload BANK{}.", report.selected.unwrap_or(0)),
            Outcome::LoadFailed { status, module } => {
                format!("Fatal error: {status}{}", module.as_ref().map(|m| format!(" loading {m}")).unwrap_or_default())
            }
        };
        self.event("boot", summary);
        if report.outcome != Outcome::Booted {
            return report;
        }
        let number = report.selected.expect("booted");
        let volumes = scan_volumes(dev).volumes;
        let location = |n: u32| {
            volumes.iter().find(|v| v.number == n).map(|v| BankLocation::Partition {
                number: n,
                first_lba: v.first_lba,
                sectors: v.sectors,
            })
        };
        let last = report.passes.last().expect("a pass");
        let state = last.decision.banks.iter().find(|b| b.number == number).expect("selected bank").clone();
        let (bootbank, altbootbank) = if options.device_claimed_late {
            self.event("alert", "The boot device was claimed late: /bootbank and /altbootbank point to /tmp (RAM)");
            (BankLocation::Ram(Default::default()), Some(BankLocation::Ram(Default::default())))
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
        });
        self.restore_etc(dev, &bootbank);
        if state.state_after == 2 {
            if options.crash_before_confirm {
                self.event("crash", "the host crashed before jumpstart confirmed the trial boot");
                self.running = None;
                return report;
            }
            self.confirm_boot(dev);
        }
        self.event(
            "up",
            format!("host {} up on build {}", self.etc.hostname().unwrap_or_default(), state.build.unwrap_or_default()),
        );
        report
    }

    /// Restores `/etc` from `/bootbank/state.tgz`, or boots with defaults
    /// (and says why) when it is missing, corrupt or hostile.
    fn restore_etc<D: BlockDevice>(&mut self, dev: &mut D, bootbank: &BankLocation) {
        let restored = bank::read(dev, bootbank, "state.tgz", MAX_STATE_TGZ)
            .map_err(|e| format!("cannot read /bootbank/state.tgz: {e}"))
            .and_then(|bytes| archive::read_state_tgz(&bytes, &ArchiveLimits::default()).map_err(|e| e.to_string()));
        match restored {
            Ok(files) => {
                self.etc = EtcTree::from_files(files);
                self.event(
                    "restore",
                    format!(
                        "/etc restored from /bootbank/state.tgz (backup counter {})",
                        self.etc.backup_counter().unwrap_or(0)
                    ),
                );
            }
            Err(why) => {
                self.etc = EtcTree::defaults("localhost", self.seed, self.clock.now());
                self.event("alert", format!("Configuration not restored ({why}): booting with defaults"));
            }
        }
    }

    /// jumpstart's "reset the bootstate to 0" at the end of a trial boot
    /// (KB 306902). Done like backup.sh's boot.cfg update: a new file, then
    /// `mv -f` over boot.cfg, then `sync`.
    fn confirm_boot<D: BlockDevice>(&mut self, dev: &mut D) {
        let Some(running) = self.running.as_mut() else { return };
        let mut bootbank = running.bootbank.clone();
        let result = (|| -> std::io::Result<()> {
            let text = bank::read(dev, &bootbank, "boot.cfg", 1 << 20)?;
            let new = set_bootstate_zero(&String::from_utf8_lossy(&text));
            let pid = self.next_pid + 1;
            let tmp = format!("boot.cfg.{pid}");
            bank::write(dev, &mut bootbank, &tmp, new.as_bytes())?;
            bank::rename_replace(dev, &mut bootbank, &tmp, "boot.cfg")?;
            bank::sync(dev, &bootbank)
        })();
        self.next_pid += 1;
        match result {
            Ok(()) => self.event("confirm", "jumpstart: the trial boot succeeded, bootstate reset to 0 (VALID)"),
            Err(e) => self.event("alert", format!("jumpstart could not reset the bootstate: {e}")),
        }
    }

    fn running(&self) -> Result<&Running, HostError> {
        self.running.as_ref().ok_or(HostError::NotRunning)
    }

    /// Sets the host name (in RAM until the next backup).
    pub fn set_hostname(&mut self, name: &str) -> Result<(), HostError> {
        self.running()?;
        self.etc.set_hostname(name).map_err(|e| HostError::Config(e.to_string()))?;
        self.event("config", format!("hostname set to {name}"));
        Ok(())
    }

    /// Sets an `/etc/vmware/esx.conf` key (in RAM until the next backup).
    pub fn config_set(&mut self, key: &str, value: &str) -> Result<(), HostError> {
        self.running()?;
        self.etc.esx_conf_set(key, value).map_err(|e| HostError::Config(e.to_string()))?;
        self.event("config", format!("esx.conf {key} = \"{value}\""));
        Ok(())
    }

    /// Sets an advanced option such as `Misc.HostName` (in RAM until the next backup).
    pub fn advanced_set(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.running()?;
        self.etc.advanced_option_set(name, value).map_err(|e| HostError::Config(e.to_string()))?;
        self.event("config", format!("advanced option {name} = {value}"));
        Ok(())
    }

    /// Sets a user's password in `/etc/shadow` (in RAM until the next backup).
    pub fn set_password(&mut self, user: &str, password: &str) -> Result<(), HostError> {
        self.running()?;
        let salt = self.seed ^ self.clock.now().0;
        self.etc.set_password(user, password, salt).map_err(|e| HostError::Config(e.to_string()))?;
        self.event("config", format!("password of {user} changed"));
        Ok(())
    }

    /// The boot device disappears (USB/SD stick gone): the bank paths vanish.
    pub fn lose_boot_device(&mut self) {
        if let Some(r) = self.running.as_mut() {
            r.device_lost = true;
        }
        self.event(
            "alert",
            "Lost connectivity to the device backing the boot filesystem. As a result, host configuration changes will not be saved to persistent storage.",
        );
    }

    /// Advances the clock by `seconds`, running every auto-backup that falls due, in order.
    pub fn advance<D: BlockDevice>(&mut self, dev: &mut D, seconds: u64) {
        let from = self.clock.now();
        let to = SimTime(from.0.saturating_add(seconds));
        let schedule = CronSchedule::parse(AUTO_BACKUP).expect("valid cron line");
        for at in schedule.firings_between(from, to).collect::<Vec<_>>() {
            self.clock.set(at);
            if self.running.is_some() {
                let _ = self.auto_backup(dev);
            }
        }
        self.clock.set(to);
    }

    /// `/sbin/auto-backup.sh` (ESXI-BOOT.md 9.4).
    pub fn auto_backup<D: BlockDevice>(&mut self, dev: &mut D) -> Result<bool, HostError> {
        let running = self.running()?.clone();
        if running.device_lost {
            return Err(self.alert_backup("Bootbank cannot be found at path '/bootbank'".to_owned()));
        }
        let bootbank = &running.bootbank;
        if !bank::exists(dev, bootbank, "state.tgz").unwrap_or(false) {
            self.backup(dev, false)?;
            return Ok(true);
        }
        let saved = bank::read(dev, bootbank, "state.tgz", MAX_STATE_TGZ)
            .map_err(|e| e.to_string())
            .and_then(|b| archive::read_state_tgz(&b, &ArchiveLimits::default()).map_err(|e| e.to_string()));
        let saved = match saved {
            Ok(files) => EtcTree::from_files(files),
            Err(_) => {
                // auto-backup.sh exits here without regenerating the archive.
                return Err(
                    self.alert_backup("Unable to extract system configuration.  Are you out of disk space?".to_owned())
                );
            }
        };
        if self.etc.diff(&saved).is_empty() {
            self.event("auto-backup", "auto-backup.sh: configuration unchanged, nothing written");
            return Ok(false);
        }
        self.backup(dev, false)?;
        Ok(true)
    }

    fn alert_backup(&mut self, text: String) -> HostError {
        self.event("alert", text.clone());
        HostError::Backup(text)
    }

    /// `/sbin/backup.sh <is_shutdown>` (ESXI-BOOT.md 9.5), step by step.
    pub fn backup<D: BlockDevice>(&mut self, dev: &mut D, is_shutdown: bool) -> Result<(), HostError> {
        let running = self.running()?.clone();
        // Steps 1–2: target /bootbank; lock; the bank must exist.
        if running.device_lost {
            return Err(self.alert_backup("Bootbank cannot be found at path '/bootbank'".to_owned()));
        }
        let mut target = running.bootbank.clone();
        // Step 3: bump the counter before archiving.
        let counter = self.etc.bump_backup_counter(self.clock.now());
        let pid = self.pid();
        let result = self.save_state(dev, &mut target, pid);
        if let Err(rc) = result {
            return Err(self.alert_backup(format!("Error ({rc}) saving state to /bootbank")));
        }
        self.set_running_bootbank(target.clone());
        let mut notes =
            format!("backup.sh {}: state.tgz saved to /bootbank (counter {counter})", u8::from(is_shutdown));
        // Step 5: at shutdown, an upgrade staged in the alt bank gets the configuration too.
        if is_shutdown {
            if let Some(mut alt) = running.altbootbank.clone() {
                if self.upgrade_staged(dev, &target, &alt) {
                    match self.save_state(dev, &mut alt, pid) {
                        Ok(()) => notes.push_str("; staged upgrade's state.tgz refreshed in /altbootbank"),
                        Err(rc) => {
                            let text = format!("Error ({rc}) saving state to /altbootbank");
                            self.event("alert", text);
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
            self.event("alert", format!("backup.sh could not update boot.cfg: {e}"));
        }
        self.event("backup", notes);
        Ok(())
    }

    fn set_running_bootbank(&mut self, bank: BankLocation) {
        if let Some(r) = self.running.as_mut() {
            r.bootbank = bank;
        }
    }

    /// Step 4: leftovers removed, then at most two tries of
    /// local.tgz.$$ → state.$$/local.tgz → state.tgz.$$ → mv -f state.tgz, sync.
    fn save_state<D: BlockDevice>(&mut self, dev: &mut D, bank: &mut BankLocation, pid: u32) -> Result<(), i32> {
        if let Ok(entries) = bank::list(dev, bank, None) {
            for e in entries
                .iter()
                .filter(|e| !e.is_dir && (e.name.starts_with("local.tgz.") || e.name.starts_with("state.tgz.")))
            {
                let _ = bank::remove(dev, bank, &e.name);
            }
        }
        let local = archive::local_tgz(&self.etc.saved_files(), self.clock.now().0 as u32);
        let mut rc = 0;
        for _ in 0..2 {
            let attempt = (|| -> std::io::Result<()> {
                let local_name = format!("local.tgz.{pid}");
                let dir = format!("state.{pid}");
                let state_name = format!("state.tgz.{pid}");
                bank::write(dev, bank, &local_name, &local)?;
                bank::mkdir(dev, bank, &dir)?;
                bank::move_into(dev, bank, &local_name, &dir, "local.tgz")?;
                let state = archive::state_tgz(&local, self.clock.now().0 as u32);
                bank::write(dev, bank, &state_name, &state)?;
                bank::rename_replace(dev, bank, &state_name, "state.tgz")?;
                bank::sync(dev, bank)?;
                bank::remove_dir(dev, bank, &dir)
            })();
            match attempt {
                Ok(()) => return Ok(()),
                Err(e) => rc = e.raw_os_error().unwrap_or(1),
            }
        }
        Err(rc)
    }

    /// Whether the alt bank holds a staged upgrade: its boot.cfg exists,
    /// its `updated` is higher than the boot bank's and its bootstate is below 2.
    fn upgrade_staged<D: BlockDevice>(&self, dev: &mut D, boot: &BankLocation, alt: &BankLocation) -> bool {
        let read = |dev: &mut D, b: &BankLocation| {
            bank::read(dev, b, "boot.cfg", 1 << 20).ok().and_then(|t| SafebootConfig::parse(&t).ok())
        };
        match (read(dev, boot), read(dev, alt)) {
            (Some(b), Some(a)) => b.updated < a.updated && a.bootstate < 2,
            _ => false,
        }
    }

    /// backup.sh's check of the staged bank: `tar tzf` each .tgz, `gunzip -t`
    /// each gzip module; alerts on a failure.
    fn verify_alt_bank<D: BlockDevice>(&mut self, dev: &mut D, alt: &BankLocation) {
        let Ok(entries) = bank::list(dev, alt, None) else { return };
        let mut corrupt = false;
        for e in entries.iter().filter(|e| !e.is_dir && e.name != "boot.cfg") {
            let Ok(data) = bank::read(dev, alt, &e.name, 1 << 30) else { continue };
            let sound = visorsim_boot::gzip::check_module(&data).is_sound();
            if !sound {
                corrupt = true;
                self.event("alert", format!("New version of {} appears corrupt, upgrade may fail", e.name));
            }
        }
        if corrupt {
            self.event("alert", "New upgrade image appears corrupted, upgrade may fail");
        }
    }

    /// Step 6: `modules=` must end with `--- state.tgz`.
    fn ensure_state_module<D: BlockDevice>(&mut self, dev: &mut D, pid: u32) -> std::io::Result<()> {
        let Some(running) = self.running.as_ref() else { return Ok(()) };
        let mut bootbank = running.bootbank.clone();
        let text = String::from_utf8_lossy(&bank::read(dev, &bootbank, "boot.cfg", 1 << 20)?).into_owned();
        let Ok(cfg) = BootCfg::parse(text.as_bytes()) else { return Ok(()) };
        if cfg.modules.last().map(String::as_str) == Some("state.tgz") {
            return Ok(());
        }
        let new: String =
            text.lines()
                .map(|l| {
                    if l.starts_with("modules=") {
                        format!("{} --- state.tgz\n", l.trim_end())
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
        let tmp = format!("boot.cfg.{pid}");
        bank::write(dev, &mut bootbank, &tmp, new.as_bytes())?;
        bank::rename_replace(dev, &mut bootbank, &tmp, "boot.cfg")?;
        bank::sync(dev, &bootbank)
    }

    /// `esxcli software profile update`: the new image goes into
    /// `/altbootbank` with `updated` = the booted bank's + 1 and
    /// `bootstate=1`, with the configuration; the next boot tries it.
    pub fn upgrade<D: BlockDevice>(&mut self, dev: &mut D, image: &SystemImage) -> Result<(), HostError> {
        let running = self.running()?.clone();
        let fail = |host: &mut Host, text: String| {
            host.event("alert", text.clone());
            HostError::Upgrade(text)
        };
        let Some(mut alt) = running.altbootbank.clone() else {
            return Err(fail(self, "No alternate boot bank to install into".to_owned()));
        };
        if running.device_lost {
            return Err(fail(self, "[Errno 5] Input/output error: '/altbootbank'".to_owned()));
        }
        let local = archive::local_tgz(&self.etc.saved_files(), self.clock.now().0 as u32);
        let state = archive::state_tgz(&local, self.clock.now().0 as u32);
        let mut cfg = image.boot_cfg.clone();
        cfg.updated = running.updated.wrapping_add(1);
        cfg.bootstate = 1;
        let cfg_text = cfg.render();
        // Refuse before writing anything when the image does not fit.
        let (capacity, cluster) = bank::capacity(dev, &alt).unwrap_or((0, 4096));
        let needed: u64 = image
            .files
            .iter()
            .filter(|f| f.name != "state.tgz")
            .map(|f| f.data.len() as u64)
            .chain([state.len() as u64, cfg_text.len() as u64])
            .map(|n| n.div_ceil(cluster) * cluster)
            .sum();
        if needed > capacity {
            let mb = |b: u64| b.div_ceil(1_000_000);
            return Err(fail(
                self,
                format!(
                    "The pending transaction requires {} MB free space, however the maximum supported size is {} MB.",
                    mb(needed),
                    mb(capacity)
                ),
            ));
        }
        // Clear the alt bank, write the modules, the configuration, and
        // boot.cfg last, so a bank without boot.cfg is never selected.
        let written = (|| -> Result<(), (String, std::io::Error)> {
            for e in bank::list(dev, &alt, None).map_err(|e| ("/altbootbank".to_owned(), e))? {
                if e.is_dir {
                    bank::remove_dir(dev, &mut alt, &e.name).map_err(|err| (e.name.clone(), err))?;
                } else {
                    bank::remove(dev, &mut alt, &e.name).map_err(|err| (e.name.clone(), err))?;
                }
            }
            for f in image.files.iter().filter(|f| f.name != "state.tgz") {
                bank::write(dev, &mut alt, &f.name, &f.data).map_err(|e| (f.name.clone(), e))?;
            }
            bank::write(dev, &mut alt, "state.tgz", &state).map_err(|e| ("state.tgz".to_owned(), e))?;
            bank::write(dev, &mut alt, "boot.cfg", cfg_text.as_bytes()).map_err(|e| ("boot.cfg".to_owned(), e))?;
            bank::sync(dev, &alt).map_err(|e| ("/altbootbank".to_owned(), e))
        })();
        if let Err((file, e)) = written {
            let errno = if e.kind() == std::io::ErrorKind::StorageFull || e.to_string().contains("space") {
                "[Errno 28] No space left on device"
            } else {
                "[Errno 5] Input/output error"
            };
            return Err(fail(self, format!("{errno}: '/altbootbank/{file}'")));
        }
        if let Some(r) = self.running.as_mut() {
            r.altbootbank = Some(alt);
        }
        self.event(
            "upgrade",
            format!("build {} staged in /altbootbank (updated={}, bootstate=1)", cfg.build, cfg.updated),
        );
        Ok(())
    }

    /// Orderly shutdown: `shutdown.sh` runs `backup.sh 1`, then the host is off.
    pub fn shutdown<D: BlockDevice>(&mut self, dev: &mut D) -> Result<(), HostError> {
        self.running()?;
        let result = self.backup(dev, true);
        self.running = None;
        self.event("shutdown", "orderly shutdown");
        result
    }

    /// Orderly reboot: shutdown (with its backup), then boot.
    pub fn reboot<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        options: &HostBootOptions,
        cache: Option<&mut ModuleCache>,
    ) -> BootReport {
        let _ = self.shutdown(dev);
        self.boot(dev, options, cache)
    }

    /// Power loss or crash: nothing runs, the RAM-disk is gone.
    pub fn power_off(&mut self) {
        self.running = None;
        self.event("power-off", "power lost: configuration since the last backup is gone");
    }
}

/// boot.cfg with its (first) `bootstate=` line set to 0.
fn set_bootstate_zero(text: &str) -> String {
    let mut done = false;
    text.lines()
        .map(|l| {
            if !done && l.trim_start().to_ascii_lowercase().starts_with("bootstate") {
                done = true;
                "bootstate=0\n".to_owned()
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

/// What a bank's boot.cfg says, for timelines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankSummary {
    /// Partition number.
    pub number: u32,
    /// bootstate, `None` when the bank has no parsable boot.cfg.
    pub bootstate: Option<i32>,
    /// updated.
    pub updated: Option<u32>,
    /// build.
    pub build: Option<String>,
}

impl BankSummary {
    /// `5:VALID 2` style text.
    pub fn short(&self) -> String {
        match (self.bootstate, self.updated) {
            (Some(s), Some(u)) => format!("{}:{}/{}", self.number, visorsim_boot::safeboot::state_name(s), u),
            _ => format!("{}:empty", self.number),
        }
    }
}

/// Reads banks 5 and 6 the way safeboot would (primary GPT, short names).
pub fn bank_summaries<D: BlockDevice>(dev: &mut D) -> Vec<BankSummary> {
    let volumes = scan_volumes(dev).volumes;
    [5u32, 6]
        .into_iter()
        .map(|number| {
            let cfg = volumes.iter().find(|v| v.number == number).and_then(|v| {
                let reader = visorsim_media::fatread::FatReader::open(dev, v.first_lba, v.sectors).ok()?;
                let file = reader.find(dev, "boot.cfg").ok()??;
                let text = reader.read(dev, &file, 1 << 20).ok()?;
                SafebootConfig::parse(&text).ok()
            });
            BankSummary {
                number,
                bootstate: cfg.as_ref().map(|c| c.bootstate),
                updated: cfg.as_ref().map(|c| c.updated),
                build: cfg.and_then(|c| c.build),
            }
        })
        .collect()
}
