//! The running ESXi-like host: booted from a bank, living in a RAM-disk,
//! saving its configuration with backup.sh, upgrading into the other bank.
//!
//! ```text
//!   boot ─► /bootbank = booted bank, /altbootbank = the other        boot.rs
//!        ─► /etc from /bootbank/state.tgz → local.tgz (defaults if unusable)
//!        ─► a DIRTY trial bank is confirmed: bootstate=0 ("jumpstart")
//!   configure ─► /etc in RAM only                                    mod.rs
//!   advance clock ─► cron `1 * * * *` → auto-backup.sh → backup.sh 0 backup.rs
//!   upgrade ─► new image into /altbootbank: updated+1, bootstate=1   upgrade.rs
//!   reboot / shutdown ─► backup.sh 1 (and the staged alt bank's state.tgz)
//!   power off / crash ─► nothing: configuration since the last backup is lost
//! ```
//!
//! The contract:
//! - The host holds no device: every operation takes the boot device, so
//!   the fault layer (or a write log) can sit underneath. Each shell step of
//!   the scripts is its own bank step (see [`crate::bank`]), each reaching
//!   the disk as sector writes. The scripts' `sync`s are flushes, and with
//!   the default [`CacheMode::WriteBack`] the only ones (an orderly
//!   shutdown's unmount flushes too); [`HostBootOptions::cache`] picks
//!   write-through instead.
//! - What the scripts decide is in [`crate::plan`]; this module and its
//!   children only sequence the I/O.
//! - Every alert a failing operation returns (as [`HostError`]) is also in
//!   the timeline, word for word.
//! - The live [`Host`] keeps its fields private; [`HostState`] is the same
//!   data as plain values (serde), and `Host::restore(&host.save())` is the
//!   same host.

mod backup;
mod boot;
mod error;
mod identity;
mod summary;
mod upgrade;

use std::fmt;

use serde::{Deserialize, Serialize};
use visorsim_boot::boot::BootOptions;
use visorsim_disk::BlockDevice;

use crate::bank::{BankLocation, CacheMode};
use crate::clock::{Clock, SimTime};
use crate::cron::{CronSchedule, AUTO_BACKUP};
use crate::etc::EtcTree;

pub use error::{HostError, HostErrorKind, StateError, ETC_RAMDISK_BYTES};
pub use identity::{BankIdentity, DiskIdentity};
pub use summary::{bank_summaries, BankSummary};

/// Largest state.tgz the host reads (local.tgz and its files are bounded
/// again by `ArchiveLimits`).
const MAX_STATE_TGZ: u64 = 64 << 20;

/// Largest boot.cfg the host reads.
const MAX_BOOT_CFG: u64 = 1 << 20;

/// What a line of the timeline is about; serialised (and shown) as its
/// lower-case name (`boot`, `auto-backup`, `power-off`...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The bootloader ran.
    Boot,
    /// The host came up.
    Up,
    /// `/etc` was restored from state.tgz.
    Restore,
    /// jumpstart confirmed a trial boot.
    Confirm,
    /// The host crashed.
    Crash,
    /// A configuration change (in RAM).
    Config,
    /// auto-backup.sh found nothing to save.
    AutoBackup,
    /// backup.sh saved state.tgz.
    Backup,
    /// An upgrade was staged.
    Upgrade,
    /// Orderly shutdown.
    Shutdown,
    /// Power lost.
    PowerOff,
    /// An alert (ESXi's own message).
    Alert,
    /// A file-system check the host ran itself (backup.sh's `dosfsck -a`,
    /// the upgrade's check of `/altbootbank`).
    Fsck,
}

impl EventKind {
    /// The name: `boot`, `auto-backup`, `power-off`...
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Boot => "boot",
            EventKind::Up => "up",
            EventKind::Restore => "restore",
            EventKind::Confirm => "confirm",
            EventKind::Crash => "crash",
            EventKind::Config => "config",
            EventKind::AutoBackup => "auto-backup",
            EventKind::Backup => "backup",
            EventKind::Upgrade => "upgrade",
            EventKind::Shutdown => "shutdown",
            EventKind::PowerOff => "power-off",
            EventKind::Alert => "alert",
            EventKind::Fsck => "fsck",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A line of the host's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When.
    pub time: SimTime,
    /// What it is about.
    pub kind: EventKind,
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
    /// backup.sh 1's file-system check is due every this many backups
    /// ([`HostBootOptions::fsck_every`]).
    #[serde(default = "default_fsck_every")]
    pub fsck_every: u64,
}

fn default_fsck_every() -> u64 {
    crate::plan::DEFAULT_FSCK_EVERY
}

impl Running {
    /// The version part of the running build (`7.0.3` of `7.0.3-1.0.1000`),
    /// `None` when the build string has none.
    pub fn version(&self) -> Option<&str> {
        let version = self.build.split('-').next().unwrap_or_default();
        (!version.is_empty()).then_some(version)
    }
}

/// How a boot of the host goes, beyond the bootloader's options, and how
/// the system it brings up treats its boot banks.
#[derive(Clone, Debug)]
pub struct HostBootOptions {
    /// The bootloader's options.
    pub loader: BootOptions,
    /// The boot device is claimed after `/bootbank` was set up (KB 2148321):
    /// the bank paths point into the RAM-disk.
    pub device_claimed_late: bool,
    /// The host crashes before jumpstart confirms a trial boot.
    pub crash_before_confirm: bool,
    /// What the banks' vfat does between `sync`s (default write-back; see
    /// [`CacheMode`]).
    pub cache: CacheMode,
    /// backup.sh 1 runs `dosfsck -a` on partitions 5, 6 and 8 when the
    /// backup counter it just bumped is a multiple of this (0: never;
    /// default [`crate::plan::DEFAULT_FSCK_EVERY`]; see [`crate::plan::fsck_due`]).
    pub fsck_every: u64,
}

impl Default for HostBootOptions {
    fn default() -> HostBootOptions {
        HostBootOptions {
            loader: BootOptions::default(),
            device_claimed_late: false,
            crash_before_confirm: false,
            cache: CacheMode::default(),
            fsck_every: crate::plan::DEFAULT_FSCK_EVERY,
        }
    }
}

/// How many consecutive auto-backups with the same read-only result
/// [`Host::advance`] runs before it fast-forwards over the rest (a day of
/// hourly runs, so that short advances log every run).
pub const REPEATS_BEFORE_FAST_FORWARD: usize = 24;

/// Everything a host is, as plain data: what a snapshot saves
/// (`<image>.host.json`) and [`Host::restore`] brings back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// Simulated time.
    pub clock: Clock,
    /// `/etc` in the RAM-disk.
    pub etc: EtcTree,
    /// The running system, if up.
    pub running: Option<Running>,
    /// Seed of everything the host generates (defaults, password salts).
    pub seed: u64,
    /// Last process id handed out, for the scripts' `$$`.
    pub next_pid: u32,
    /// Everything that happened.
    pub timeline: Vec<Event>,
}

/// The live host: its clock, its RAM-disk `/etc`, what is running, the
/// timeline. Changed only through its operations.
#[derive(Clone, Debug)]
pub struct Host {
    clock: Clock,
    etc: EtcTree,
    running: Option<Running>,
    seed: u64,
    next_pid: u32,
    timeline: Vec<Event>,
}

impl Host {
    /// A powered-off host at `start`.
    pub fn new(seed: u64, start: SimTime) -> Host {
        Host {
            clock: Clock::new(start),
            etc: EtcTree::defaults("localhost", seed, start),
            running: None,
            seed,
            next_pid: 1000,
            timeline: Vec::new(),
        }
    }

    /// The host as plain data.
    pub fn save(&self) -> HostState {
        HostState {
            clock: self.clock.clone(),
            etc: self.etc.clone(),
            running: self.running.clone(),
            seed: self.seed,
            next_pid: self.next_pid,
            timeline: self.timeline.clone(),
        }
    }

    /// The host `state` describes.
    pub fn restore(state: &HostState) -> Host {
        let HostState { clock, etc, running, seed, next_pid, timeline } = state.clone();
        Host { clock, etc, running, seed, next_pid, timeline }
    }

    /// The host's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The current simulated time.
    pub fn now(&self) -> SimTime {
        self.clock.now()
    }

    /// `/etc` in the RAM-disk.
    pub fn etc(&self) -> &EtcTree {
        &self.etc
    }

    /// The running system, if up.
    pub fn running(&self) -> Option<&Running> {
        self.running.as_ref()
    }

    /// The seed of everything the host generates.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Everything that happened, in order.
    pub fn timeline(&self) -> &[Event] {
        &self.timeline
    }

    fn event(&mut self, kind: EventKind, text: impl Into<String>) {
        self.timeline.push(Event { time: self.clock.now(), kind, text: text.into() });
    }

    /// Logs `error`'s text as an alert and returns it.
    fn alert(&mut self, error: HostError) -> HostError {
        self.event(EventKind::Alert, error.with_causes());
        error
    }

    fn pid(&mut self) -> u32 {
        self.next_pid += 1;
        self.next_pid
    }

    fn require_running(&self) -> Result<&Running, HostError> {
        self.running.as_ref().ok_or(HostError::NotRunning)
    }

    /// Sets the host name (in RAM until the next backup).
    pub fn set_hostname(&mut self, name: &str) -> Result<(), HostError> {
        self.require_running()?;
        self.etc.set_hostname(name)?;
        self.event(EventKind::Config, format!("hostname set to {name}"));
        Ok(())
    }

    /// Sets an `/etc/vmware/esx.conf` key (in RAM until the next backup).
    pub fn config_set(&mut self, key: &str, value: &str) -> Result<(), HostError> {
        self.require_running()?;
        self.etc.esx_conf_set(key, value)?;
        self.event(EventKind::Config, format!("esx.conf {key} = \"{value}\""));
        Ok(())
    }

    /// Sets an advanced option such as `Misc.HostName` (in RAM until the next backup).
    pub fn advanced_set(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.require_running()?;
        self.etc.advanced_option_set(name, value)?;
        self.event(EventKind::Config, format!("advanced option {name} = {value}"));
        Ok(())
    }

    /// Sets a user's password in `/etc/shadow` (in RAM until the next backup).
    pub fn set_password(&mut self, user: &str, password: &str) -> Result<(), HostError> {
        self.require_running()?;
        let salt = self.seed ^ self.clock.now().0;
        self.etc.set_password(user, password, salt)?;
        self.event(EventKind::Config, format!("password of {user} changed"));
        Ok(())
    }

    /// The boot device disappears (USB/SD stick gone): the bank paths vanish.
    pub fn lose_boot_device(&mut self) {
        if let Some(r) = self.running.as_mut() {
            r.device_lost = true;
        }
        self.event(
            EventKind::Alert,
            "Lost connectivity to the device backing the boot filesystem. As a result, host configuration changes will not be saved to persistent storage.",
        );
    }

    /// Advances the clock by `seconds`, running every auto-backup that falls
    /// due, in order.
    ///
    /// Fast-forward: time passes without visiting every firing. While the
    /// host is off nothing runs, so the clock jumps. While it runs, once
    /// [`REPEATS_BEFORE_FAST_FORWARD`] consecutive auto-backups have had
    /// the same read-only result (configuration unchanged, or the same
    /// alert from a missing bootbank or an unreadable `state.tgz`), every
    /// later run in the window is provably the same run: it reads the same
    /// unchanged sectors and compares them with the same `/etc`, and nothing
    /// else happens in between. Those runs are counted
    /// ([`CronSchedule::count_between`]) and logged as one event, and the
    /// clock moves to the last of them. (The one device whose answers
    /// change with the number of reads, a fault plan's `gone_after_ios` set
    /// in the future, is not something the scenario runner or the CLI
    /// arms: losing the device takes effect at once.)
    pub fn advance<D: BlockDevice>(&mut self, dev: &mut D, seconds: u64) {
        let from = self.clock.now();
        let to = SimTime(from.0.saturating_add(seconds));
        let schedule = CronSchedule::parse(AUTO_BACKUP).expect("valid cron line");
        let mut same: Option<(Vec<(EventKind, String)>, usize)> = None;
        let mut firings = schedule.firings_between(from, to);
        while self.running.is_some() {
            let Some(at) = firings.next() else { break };
            self.clock.set(at);
            let before = self.timeline.len();
            let result = self.auto_backup(dev);
            let read_only = match &result {
                Ok(saved) => !saved,
                Err(e) => matches!(e.kind(), HostErrorKind::BootbankMissing | HostErrorKind::ExtractFailed),
            };
            let events: Vec<(EventKind, String)> =
                self.timeline[before..].iter().map(|e| (e.kind, e.text.clone())).collect();
            same = match same.take() {
                Some((previous, n)) if read_only && previous == events => Some((previous, n + 1)),
                _ if read_only => Some((events, 1)),
                _ => None,
            };
            if let Some((events, n)) = &same {
                if *n >= REPEATS_BEFORE_FAST_FORWARD {
                    let rest = schedule.count_between(at, to);
                    if rest > 0 {
                        let kind = events.last().map_or(EventKind::AutoBackup, |e| e.0);
                        self.clock.set(to);
                        self.event(
                            kind,
                            format!(
                                "auto-backup.sh: the same result at each of the next {rest} runs of '{schedule}' up to {}; not replayed one by one",
                                to.rfc3339()
                            ),
                        );
                    }
                    break;
                }
            }
        }
        self.clock.set(to);
    }

    /// Orderly shutdown: `shutdown.sh` runs `backup.sh 1`, the file systems
    /// are unmounted (a flush: what write-back held is durable), then the
    /// host is off.
    pub fn shutdown<D: BlockDevice>(&mut self, dev: &mut D) -> Result<(), HostError> {
        let running = self.require_running()?.clone();
        let result = self.backup(dev, true);
        if !running.device_lost {
            // The unmount at the end of an orderly shutdown; a device that
            // is gone or without power refuses it, and nothing more is lost.
            let _ = dev.flush();
        }
        self.running = None;
        self.event(EventKind::Shutdown, "orderly shutdown");
        result
    }

    /// Power loss or crash: nothing runs, the RAM-disk is gone.
    pub fn power_off(&mut self) {
        self.running = None;
        self.event(EventKind::PowerOff, "power lost: configuration since the last backup is gone");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_keep_their_names() {
        for (kind, name) in [
            (EventKind::Boot, "boot"),
            (EventKind::AutoBackup, "auto-backup"),
            (EventKind::PowerOff, "power-off"),
            (EventKind::Alert, "alert"),
        ] {
            assert_eq!(kind.to_string(), name);
            assert_eq!(format!("{kind:<6}|"), format!("{name:<6}|"), "padding works like a str");
        }
    }

    #[test]
    fn save_then_restore_is_the_same_host() {
        let mut host = Host::new(9, SimTime(3600));
        host.power_off();
        let state = host.save();
        assert_eq!(Host::restore(&state).save(), state);
        assert_eq!(state.next_pid, 1000);
        assert_eq!(state.timeline[0].kind, EventKind::PowerOff);
    }

    #[test]
    fn the_running_version_is_the_build_strings_first_part() {
        let running = |build: &str| Running {
            bank: 5,
            build: build.into(),
            updated: 1,
            bootbank: BankLocation::ram(),
            altbootbank: None,
            device_lost: false,
            fsck_every: 10,
        };
        assert_eq!(running("7.0.3-1.0.1000").version(), Some("7.0.3"));
        assert_eq!(running("6.7.0").version(), Some("6.7.0"));
        assert_eq!(running("").version(), None);
    }
}
