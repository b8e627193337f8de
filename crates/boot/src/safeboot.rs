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

use serde::Serialize;
use visorsim_media::vmfat::VmfatUuid;

use crate::bootcfg::{locate_bootstate, SafebootConfig, WriterSlot};
use crate::status::{self, EsxStatus};

/// At most this many banks are scanned (`BOOTBANKS_NR`).
pub const MAX_BANKS: usize = 3;

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
    },
}

impl Probe {
    /// The probe of a partition that has the VMware UUID and this boot.cfg:
    /// safeboot's parse (a syntax error rejects the file) and the writer's
    /// slot in the first 512 bytes.
    pub fn from_boot_cfg(uuid: VmfatUuid, text: &[u8]) -> Probe {
        match SafebootConfig::parse(text) {
            Ok(config) => Probe::Bank { uuid, config, writer: locate_bootstate(text) },
            Err(e) => Probe::NoConfig { reason: e.to_string() },
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

/// Runs one safeboot pass over `facts` (ascending partition numbers).
/// `disk` performs a write and reports esx-boot's status on failure.
pub fn decide(
    facts: &[PartitionFacts],
    options: SafebootOptions,
    disk: &mut dyn FnMut(&StateWrite) -> Result<(), EsxStatus>,
) -> Decision {
    let mut pass =
        Pass { log: Vec::new(), writes: Vec::new(), countdowns: 0, fake_write_error: options.fake_write_error, disk };
    let mut banks: Vec<(BankState, WriterSlot)> = Vec::new();
    let mut skipped = Vec::new();
    let mut rollback = false;

    for fact in facts {
        if banks.len() == MAX_BANKS {
            break;
        }
        let n = fact.number;
        let (uuid, config, writer) = match &fact.probe {
            Probe::NotFound | Probe::Empty => continue,
            Probe::WrongType => {
                skipped.push((n, "partition type is not FAT or EFI".to_owned()));
                continue;
            }
            Probe::NoUuid => {
                pass.log(Level::Debug, format!("BANK{n}: no bank UUID: Not found."));
                skipped.push((n, "no VMware FAT UUID".to_owned()));
                continue;
            }
            Probe::NoConfig { reason } => {
                pass.log(Level::Debug, format!("BANK{n}: no valid configuration file."));
                skipped.push((n, format!("no valid configuration file: {reason}")));
                continue;
            }
            Probe::Bank { uuid, config, writer } => (*uuid, config, *writer),
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
            if bootable < 2 {
                pass.log(Level::Error, "No alternate hypervisor to roll back to.".to_owned());
                pass.countdowns += 1;
                rollback = false;
            } else {
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
