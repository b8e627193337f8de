//! safeboot's decision, as a pure function of what the bank scan found.
//!
//! Inputs are plain facts per partition, in ascending partition number (the
//! I/O side in `boot` gathers them); the one effect, writing a bootstate
//! digit, goes through an injected writer so property tests can drive this
//! directly. Output: every bank's state before and after, the writes, the
//! rollback flag, the verdict and the log lines in esx-boot's words.
//!
//! Semantics (docs/bootloader.md: Bank scan, Bootstate, Selection, Rollback), quirks kept:
//! - at most 3 banks; the scan stops once 3 partitions scanned successfully,
//!   so higher partitions are never read (or written);
//! - transitions: 1 → 2 (trial boot), 2 → 3 (the trial never confirmed),
//!   other numbers → 3; quickboot banks → 3 and never bootable;
//! - the rollback flag is set by the scan only for an UPGRADING/DIRTY bank
//!   that is not "ok" (updated 0 or no build), and Shift+R *assigns* it;
//! - a write the writer cannot place drops the partition (with the
//!   10-second countdown); a write that fails on disk is logged and ignored,
//!   and the in-memory state becomes the target anyway;
//! - selection: first bootable bank in scan order, replaced only by a
//!   strictly greater `updated` (ties go to the lowest partition number);
//! - a selected bank whose build does not start with a digit fails to
//!   chainload, and safeboot does not try another bank.
//!
//! Two loader versions decide ([`LoaderVersion`]; docs/bootloader.md:
//! Older loader). The one shipped with ESXi 6.7u1 and 6.7u2 differs from
//! the current one exactly in: it looks at partitions 5 and 6 only (so at
//! most two banks, and no partition-type check: the I/O side probes those
//! two for the VMware UUID whatever their type); it has no `quickboot` key;
//! it does not reset the options between the two parses, so a key bank 6
//! lacks keeps bank 5's value; Shift+R needs both banks bootable and lists
//! them as `HYPERVISOR1`/`HYPERVISOR2`; a partition without the magic logs
//! "BANK<n>: not a VMware boot bank" and a rejected boot.cfg "BANK<n>:
//! invalid configuration.", both at error level.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use visorsim_media::vmfat::VmfatUuid;

use crate::bootcfg::{locate_bootstate, Carried, SafebootConfig, WriterSlot};
use crate::status::{self, EsxStatus};

/// At most this many banks are scanned (`BOOTBANKS_NR`).
pub const MAX_BANKS: usize = 3;

/// Which esx-boot release decides (docs/bootloader.md: Older loader).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LoaderVersion {
    /// The loader of ESXi 7.0 to 9.0 (and 6.7u3): every partition scanned,
    /// up to three banks, `quickboot`, options reset per bank.
    #[default]
    #[serde(rename = "current")]
    Current,
    /// The loader of ESXi 6.7u1 and 6.7u2: partitions 5 and 6 only, no
    /// `quickboot`, options carried from bank 5 into bank 6.
    #[serde(rename = "6.7u1")]
    V67u1,
}

impl LoaderVersion {
    /// Both versions, the default first.
    pub const ALL: [LoaderVersion; 2] = [LoaderVersion::Current, LoaderVersion::V67u1];

    /// The name used on the command line and in scenario files.
    pub const fn name(self) -> &'static str {
        match self {
            LoaderVersion::Current => "current",
            LoaderVersion::V67u1 => "6.7u1",
        }
    }

    /// Whether safeboot checks the partition type before looking for the
    /// VMware UUID (the 6.7u1 loader does not).
    pub const fn checks_partition_type(self) -> bool {
        matches!(self, LoaderVersion::Current)
    }

    /// Whether safeboot looks at partition `number` at all (the 6.7u1
    /// loader: 5 and 6 only).
    pub const fn scans_partition(self, number: u32) -> bool {
        match self {
            LoaderVersion::Current => true,
            LoaderVersion::V67u1 => number == 5 || number == 6,
        }
    }
}

impl fmt::Display for LoaderVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LoaderVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<LoaderVersion, String> {
        match s {
            "current" => Ok(LoaderVersion::Current),
            // 6.7u2 shipped the same loader as 6.7u1.
            "6.7u1" | "6.7u2" => Ok(LoaderVersion::V67u1),
            other => Err(format!("unknown loader {other:?} (expected current or 6.7u1)")),
        }
    }
}

/// What the scan found at one partition number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// No such entry (or the GPT entry array fails its CRC): skipped silently.
    NotFound,
    /// An empty entry (zero type GUID): skipped silently.
    Empty,
    /// A type safeboot does not accept (VMFS, vmkDiagnostic, ...).
    WrongType,
    /// No `VMWARE FAT16    ` magic in the partition's second sector.
    NoUuid,
    /// boot.cfg missing, unreadable or rejected by the parser.
    NoConfig {
        /// Why, for the report (the loader only logs a debug line).
        reason: String,
        /// The boot.cfg bytes when the file was read but the parser
        /// rejected it (the 6.7u1 loader carries the lines before the error
        /// into the next bank); `None` when it could not be read.
        text: Option<Vec<u8>>,
    },
    /// A bank: its UUID, safeboot's view of boot.cfg, and where the writer
    /// would put a new bootstate digit.
    Bank {
        /// The VMware FAT UUID.
        uuid: VmfatUuid,
        /// boot.cfg as safeboot parsed it.
        config: SafebootConfig,
        /// The writer's slot in boot.cfg's first 512 bytes.
        writer: WriterSlot,
        /// The boot.cfg bytes as read (the 6.7u1 loader parses them again
        /// over the options carried from the previous bank).
        text: Vec<u8>,
    },
}

impl Probe {
    /// The probe of a partition that has the VMware UUID and this boot.cfg:
    /// safeboot's parse (a syntax error rejects the file) and the writer's
    /// slot in the first 512 bytes.
    pub fn from_boot_cfg(uuid: VmfatUuid, text: &[u8]) -> Probe {
        match SafebootConfig::parse(text) {
            Ok(config) => Probe::Bank { uuid, config, writer: locate_bootstate(text), text: text.to_vec() },
            Err(e) => Probe::NoConfig { reason: e.to_string(), text: Some(text.to_vec()) },
        }
    }
}

/// The facts of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionFacts {
    /// Partition number.
    pub number: u32,
    /// What the probe found.
    pub probe: Probe,
}

/// The user's answer to "DO YOU REALLY WANT TO ROLL BACK?".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    /// Y: roll back.
    Yes,
    /// N: "Roll back cancelled by user."
    No,
}

/// How safeboot was started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SafebootOptions {
    /// `-r` or the second pass after Shift+R: roll back, answering this.
    pub rollback: Option<Answer>,
    /// `-f`: skip every disk write and treat it as failed.
    pub fake_write_error: bool,
}

/// Log levels of esx-boot's `Log()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// LOG_ERR.
    Error,
    /// LOG_WARNING.
    Warning,
    /// LOG_INFO / prompts.
    Info,
    /// LOG_DEBUG (verbose only).
    Debug,
}

/// One log line, in esx-boot's wording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Level.
    pub level: Level,
    /// Text.
    pub text: String,
}

/// Why a digit is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteReason {
    /// The scan's state transition.
    Scan,
    /// Shift+R / `-r` invalidating the default bank.
    Rollback,
}

/// A one-byte write into a bank's boot.cfg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StateWrite {
    /// Partition number.
    pub number: u32,
    /// Byte offset in boot.cfg (< 512).
    pub offset: usize,
    /// The new state (0–3); the byte written is `b'0' + state`.
    pub state: u8,
    /// Why.
    pub reason: WriteReason,
}

/// A scanned bank, before and after this boot's transition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BankState {
    /// Partition number.
    pub number: u32,
    /// VMware FAT UUID.
    pub uuid: VmfatUuid,
    /// `build`.
    pub build: Option<String>,
    /// `updated`.
    pub updated: u32,
    /// `quickboot`.
    pub quickboot: bool,
    /// updated ≠ 0 and build set and non-empty.
    pub ok: bool,
    /// bootstate as parsed.
    pub state_before: i32,
    /// In-memory state after the scan (and rollback).
    pub state_after: i32,
    /// Whether this boot is the bank's first (UPGRADING → DIRTY) or failed trial.
    pub upgrading: bool,
    /// Whether it may be selected.
    pub bootable: bool,
}

/// What safeboot does in the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// Chainload mboot for this bank.
    Chainload {
        /// Partition number.
        bank: u32,
        /// Title passed with `-t`.
        title: String,
        /// Whether `rollback` is appended to the kernel options.
        rollback: bool,
        /// ESX major version below 5: safeboot passes `-a`.
        legacy: bool,
    },
    /// "No hypervisor found."
    NoHypervisor,
    /// "ESX version is unknown." / "Failed to chainload `BANK<n>`."
    UnknownVersion {
        /// The selected bank.
        bank: u32,
    },
}

/// Everything one safeboot pass decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Banks that scanned, in scan order (at most 3).
    pub banks: Vec<BankState>,
    /// Partitions skipped, with why (numbers in scan order).
    pub skipped: Vec<(u32, String)>,
    /// Writes attempted on disk, in order (none with `-f`).
    pub writes: Vec<StateWrite>,
    /// 10-second countdowns shown ("Booting default hypervisor in N seconds").
    pub countdowns: u32,
    /// The verdict.
    pub verdict: Verdict,
    /// The log.
    pub log: Vec<LogLine>,
}

/// esx-boot's `bootstate_to_str`.
pub fn state_name(state: i32) -> &'static str {
    match state {
        0 => "VALID",
        1 => "UPGRADING",
        2 => "DIRTY",
        3 => "INVALID",
        _ => "CORRUPTED",
    }
}

struct Pass<'w> {
    log: Vec<LogLine>,
    writes: Vec<StateWrite>,
    countdowns: u32,
    fake_write_error: bool,
    disk: &'w mut dyn FnMut(&StateWrite) -> Result<(), EsxStatus>,
}

impl Pass<'_> {
    fn log(&mut self, level: Level, text: String) {
        self.log.push(LogLine { level, text });
    }

    /// `bank_set_bootstate`: `Err(())` when the writer cannot place the
    /// digit (the caller drops the bank or fails the rollback); `Ok` also
    /// when the disk write failed, which is only logged.
    fn set_state(&mut self, number: u32, writer: WriterSlot, state: u8, reason: WriteReason) -> Result<(), ()> {
        let offset = match writer {
            WriterSlot::At { offset, .. } => offset,
            WriterSlot::NotFound => {
                self.log(Level::Error, format!("BANK{number}: boot state not found."));
                return Err(());
            }
            WriterSlot::BadDigit { .. } => {
                self.log(Level::Error, format!("BANK{number}: invalid boot state."));
                return Err(());
            }
        };
        let write = StateWrite { number, offset, state, reason };
        let result = if self.fake_write_error {
            Err(status::UNKNOWN)
        } else {
            self.writes.push(write);
            (self.disk)(&write)
        };
        if let Err(status) = result {
            self.log(Level::Warning, format!("BANK{number}: failed to overwrite /boot.cfg: {} (ignored)", status.code));
        }
        Ok(())
    }
}

/// Runs one pass of the current safeboot over `facts` (ascending partition
/// numbers). `disk` performs a write and reports esx-boot's status on failure.
pub fn decide(
    facts: &[PartitionFacts],
    options: SafebootOptions,
    disk: &mut dyn FnMut(&StateWrite) -> Result<(), EsxStatus>,
) -> Decision {
    decide_with(facts, options, LoaderVersion::Current, disk)
}

/// What one loader version makes of one partition before the state
/// machine: a bank to scan, or nothing (skips are logged into `pass`).
fn candidate(
    loader: LoaderVersion,
    fact: &PartitionFacts,
    carried: &mut Carried,
    pass: &mut Pass<'_>,
    skipped: &mut Vec<(u32, String)>,
) -> Option<(VmfatUuid, SafebootConfig, WriterSlot)> {
    let n = fact.number;
    match loader {
        LoaderVersion::Current => match &fact.probe {
            Probe::NotFound | Probe::Empty => None,
            Probe::WrongType => {
                skipped.push((n, "partition type is not FAT or EFI".to_owned()));
                None
            }
            Probe::NoUuid => {
                pass.log(Level::Debug, format!("BANK{n}: no bank UUID: Not found."));
                skipped.push((n, "no VMware FAT UUID".to_owned()));
                None
            }
            Probe::NoConfig { reason, .. } => {
                pass.log(Level::Debug, format!("BANK{n}: no valid configuration file."));
                skipped.push((n, format!("no valid configuration file: {reason}")));
                None
            }
            Probe::Bank { uuid, config, writer, .. } => Some((*uuid, config.clone(), *writer)),
        },
        LoaderVersion::V67u1 => match &fact.probe {
            // No partition at that number: nothing to read.
            Probe::NotFound | Probe::Empty => {
                skipped.push((n, "no such partition".to_owned()));
                None
            }
            // No type check: the I/O side probes partitions 5 and 6 for the
            // UUID whatever their type, so `WrongType` only comes from a
            // caller that did not; such a partition has no bank magic.
            Probe::WrongType | Probe::NoUuid => {
                pass.log(Level::Error, format!("BANK{n}: not a VMware boot bank"));
                skipped.push((n, "no VMware FAT UUID".to_owned()));
                None
            }
            Probe::NoConfig { reason, text } => {
                if let Some(text) = text {
                    // The lines before the syntax error stay applied.
                    let _ = SafebootConfig::parse_67u1(text, carried);
                }
                pass.log(Level::Error, format!("BANK{n}: invalid configuration."));
                skipped.push((n, format!("no valid configuration file: {reason}")));
                None
            }
            Probe::Bank { uuid, writer, text, .. } => match SafebootConfig::parse_67u1(text, carried) {
                Ok(config) => Some((*uuid, config, *writer)),
                Err(e) => {
                    pass.log(Level::Error, format!("BANK{n}: invalid configuration."));
                    skipped.push((n, format!("no valid configuration file: {e}")));
                    None
                }
            },
        },
    }
}

/// Runs one safeboot pass of `loader` over `facts` (ascending partition
/// numbers). `disk` performs a write and reports esx-boot's status on failure.
pub fn decide_with(
    facts: &[PartitionFacts],
    options: SafebootOptions,
    loader: LoaderVersion,
    disk: &mut dyn FnMut(&StateWrite) -> Result<(), EsxStatus>,
) -> Decision {
    let max_banks = match loader {
        LoaderVersion::Current => MAX_BANKS,
        LoaderVersion::V67u1 => 2,
    };
    let mut carried = Carried::default();
    let mut pass =
        Pass { log: Vec::new(), writes: Vec::new(), countdowns: 0, fake_write_error: options.fake_write_error, disk };
    let mut banks: Vec<(BankState, WriterSlot)> = Vec::new();
    let mut skipped = Vec::new();
    let mut rollback = false;

    for fact in facts.iter().filter(|f| loader.scans_partition(f.number)) {
        if banks.len() == max_banks {
            break;
        }
        let n = fact.number;
        let Some((uuid, config, writer)) = candidate(loader, fact, &mut carried, &mut pass, &mut skipped) else {
            continue;
        };
        let build_set = config.build.as_deref().is_some_and(|b| !b.is_empty());
        let ok = config.updated != 0 && build_set;
        if config.updated == 0 {
            pass.log(Level::Error, format!("BANK{n}: invalid update counter."));
        }
        if !build_set {
            pass.log(Level::Error, format!("BANK{n}: invalid build number."));
        }
        let state = config.bootstate;
        let (mut upgrading, mut target) = match state {
            0 => (false, 0),
            1 => (true, 2),
            2 => (true, 3),
            3 => (false, 3),
            _ => {
                pass.log(Level::Error, format!("BANK{n}: invalid boot state."));
                (false, 3)
            }
        };
        if config.quickboot {
            upgrading = false;
            target = 3;
        }
        if upgrading && !ok {
            pass.log(Level::Error, format!("BANK{n}: system has failed to upgrade."));
            rollback = true;
            target = 3;
        }
        pass.log(
            Level::Debug,
            format!(
                "BANK{n}: state={} build={} updated={} quickboot={} UUID={}",
                state_name(state),
                config.build.as_deref().unwrap_or("(null)"),
                config.updated,
                u8::from(config.quickboot),
                uuid.to_hex()
            ),
        );
        if target != state {
            pass.log(
                Level::Debug,
                format!("BANK{n}: updating boot state from {} to {}.", state_name(state), state_name(target)),
            );
            if pass.set_state(n, writer, target as u8, WriteReason::Scan).is_err() {
                // `bank_scan` shows the countdown and drops the partition.
                pass.countdowns += 1;
                skipped.push((n, "the bootstate could not be written in place".to_owned()));
                continue;
            }
        }
        let bootable = ok && (target == 0 || target == 2) && !config.quickboot;
        let bank = BankState {
            number: n,
            uuid,
            build: config.build.clone(),
            updated: config.updated,
            quickboot: config.quickboot,
            ok,
            state_before: state,
            state_after: target,
            upgrading,
            bootable,
        };
        banks.push((bank, writer));
    }

    let mut default = auto_select(&banks);
    if let Some(answer) = options.rollback {
        if let Some(index) = default {
            let bootable = banks.iter().filter(|(b, _)| b.bootable).count();
            // The 6.7u1 loader needs both of its two banks bootable, which
            // with at most two banks is the same count.
            if bootable < 2 {
                pass.log(Level::Error, "No alternate hypervisor to roll back to.".to_owned());
                pass.countdowns += 1;
                rollback = false;
            } else {
                if loader == LoaderVersion::V67u1 {
                    // The old prompt lists the installed hypervisors first.
                    for (i, (bank, _)) in banks.iter().enumerate() {
                        let build = bank.build.as_deref().unwrap_or("(null)");
                        pass.log(Level::Info, format!("HYPERVISOR{}: BANK{} build {build}", i + 1, bank.number));
                    }
                }
                pass.log(Level::Warning, "CURRENT DEFAULT HYPERVISOR WILL BE REPLACED PERMANENTLY.".to_owned());
                pass.log(Level::Warning, "DO YOU REALLY WANT TO ROLL BACK?".to_owned());
                match answer {
                    Answer::No => {
                        pass.log(Level::Info, "Roll back cancelled by user.".to_owned());
                        rollback = false;
                    }
                    Answer::Yes => {
                        let (bank, writer) = &mut banks[index];
                        let number = bank.number;
                        pass.log(Level::Debug, format!("Rolling back (invalidating BANK{number})."));
                        if pass.set_state(number, *writer, 3, WriteReason::Rollback).is_err() {
                            pass.log(Level::Error, "System has failed to roll back.".to_owned());
                            pass.countdowns += 1;
                            rollback = false;
                        } else {
                            let bank = &mut banks[index].0;
                            bank.state_after = 3;
                            bank.bootable = false;
                            rollback = true;
                            default = auto_select(&banks);
                        }
                    }
                }
            }
        }
    }

    let verdict = match default {
        None => {
            pass.log(Level::Error, "No hypervisor found.".to_owned());
            Verdict::NoHypervisor
        }
        Some(index) => {
            let bank = &banks[index].0;
            pass.log(Level::Debug, format!("BANK{}: default boot bank.", bank.number));
            match esx_major(bank.build.as_deref().unwrap_or("")) {
                None => {
                    pass.log(Level::Error, "ESX version is unknown.".to_owned());
                    pass.log(Level::Error, format!("Failed to chainload BANK{}.", bank.number));
                    Verdict::UnknownVersion { bank: bank.number }
                }
                Some(major) => Verdict::Chainload {
                    bank: bank.number,
                    title: if bank.upgrading {
                        "Please wait while VMware Hypervisor is initializing...".to_owned()
                    } else {
                        "Loading VMware Hypervisor".to_owned()
                    },
                    rollback,
                    legacy: major < 5,
                },
            }
        }
    };
    Decision {
        banks: banks.into_iter().map(|(b, _)| b).collect(),
        skipped,
        writes: pass.writes,
        countdowns: pass.countdowns,
        verdict,
        log: pass.log,
    }
}

/// `bank_auto_select`: the first bootable bank, replaced only by a strictly
/// greater `updated`.
fn auto_select(banks: &[(BankState, WriterSlot)]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, (bank, _)) in banks.iter().enumerate() {
        if !bank.bootable {
            continue;
        }
        match best {
            Some(b) if banks[b].0.updated >= bank.updated => {}
            _ => best = Some(i),
        }
    }
    best
}

/// `get_ESX_version_major`: the leading digits of the build string.
fn esx_major(build: &str) -> Option<u64> {
    let digits: String = build.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}
