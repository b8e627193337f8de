//! Judging one crash state: its content key (for deduplication), the FAT
//! verdict of the banks it wrote, the boot, the invariants, and on a sample
//! the `fsck.fat -n` cross-check.
//!
//! Contract:
//! - two states with the same [`ContentKeys::key`] leave the same bytes on
//!   the disk (up to a 64-bit hash collision), so they get the same verdict;
//! - a bank none of a state's writes touch keeps the base disk's FAT
//!   verdict ([`BankVerdicts`]), a bank it touched is checked again;
//! - the FAT is checked as the cut left it, before the boot writes anything.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use visorsim_boot::boot::{ModuleCache, Outcome};
use visorsim_disk::{apply_crash_state, BlockDevice, CrashState, CrashWrite, LoggedIo, MemDisk, Tearing};
use visorsim_host::clock::SimTime;
use visorsim_host::host::{EventKind, Host, HostBootOptions};
use visorsim_media::fat::check_volume;

use super::{came_up_with_defaults, etc_pairs, parallel, StateResult};
use crate::model::BootOutcome;

/// Hashes of every sector of every write of a log: what a crash state's
/// content key is made of.
pub struct ContentKeys {
    /// Per log entry: the hash of each sector it writes (empty for a flush).
    sectors: Vec<Vec<u64>>,
}

fn hash_of(data: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

impl ContentKeys {
    /// The sector hashes of `log`'s writes.
    pub fn new(log: &[LoggedIo], sector_size: usize) -> ContentKeys {
        let sectors = log
            .iter()
            .map(|e| match e {
                LoggedIo::Write { data, .. } => data.chunks(sector_size.max(1)).map(hash_of).collect(),
                LoggedIo::Flush => Vec::new(),
            })
            .collect();
        ContentKeys { sectors }
    }

    /// A hash of the bytes `state` leaves on the sectors its writes reach
    /// (the last write of each sector wins, as on the medium).
    pub fn key(&self, log: &[LoggedIo], state: &CrashState) -> u64 {
        let mut landed: Vec<(u64, usize, u64)> = Vec::new();
        for (order, write) in state.writes.iter().enumerate() {
            let (index, tearing) = match *write {
                CrashWrite::Whole(index) => (index, None),
                CrashWrite::Torn { index, tearing } => (index, Some(tearing)),
            };
            let (Some(LoggedIo::Write { lba, .. }), Some(hashes)) = (log.get(index), self.sectors.get(index)) else {
                continue;
            };
            let whole = match tearing {
                None => hashes.len(),
                Some(Tearing::Prefix { sectors }) => (sectors as usize).min(hashes.len()),
                Some(Tearing::TornSector { sectors, .. }) => (sectors as usize).min(hashes.len()),
            };
            for (s, &h) in hashes.iter().enumerate().take(whole) {
                landed.push((lba + s as u64, order, h));
            }
            if let Some(Tearing::TornSector { sectors, bytes }) = tearing {
                if let Some(&h) = hashes.get(sectors as usize) {
                    // Half-new sector: its bytes depend on the old content
                    // too; keyed by what landed of the new data.
                    landed.push((lba + sectors, order, h ^ (bytes as u64).rotate_left(32) ^ 0x5bd1_e995));
                }
            }
        }
        landed.sort_unstable_by_key(|&(lba, order, _)| (lba, order));
        let mut h = DefaultHasher::new();
        for (i, &(lba, _, sector)) in landed.iter().enumerate() {
            let last_of_lba = landed.get(i + 1).is_none_or(|next| next.0 != lba);
            if last_of_lba {
                (lba, sector).hash(&mut h);
            }
        }
        h.finish()
    }
}

/// The FAT verdict on one bank: its damage classes, in the checker's order
/// (empty: clean), and the first finding.
#[derive(Clone, Debug, Default)]
pub(super) struct BankVerdict {
    number: u32,
    first_lba: u64,
    sectors: u64,
    classes: Vec<String>,
    first: Option<String>,
}

/// The FAT verdicts of a disk's banks (5 and 6).
#[derive(Clone, Debug, Default)]
pub(super) struct BankVerdicts {
    banks: Vec<BankVerdict>,
}

/// The one place the in-process FAT checker is called: the damage classes
/// (`fsck.fat -a` would change something) of the volume and its first
/// damage finding.
fn check_bank(disk: &mut MemDisk, number: u32, first_lba: u64, sectors: u64) -> BankVerdict {
    let check = check_volume(disk, first_lba, sectors);
    let mut classes: Vec<String> = Vec::new();
    for finding in check.damage() {
        let name = finding.class.name();
        if !classes.iter().any(|c| c == name) {
            classes.push(name.to_owned());
        }
    }
    if check.gave_up && classes.is_empty() {
        classes.push("boot_sector".to_owned());
    }
    let first = check.damage().next().map(|f| format!("bank {number}: {f}"));
    BankVerdict { number, first_lba, sectors, classes, first }
}

impl BankVerdicts {
    /// Checks banks 5 and 6 of `disk` (a bank that is not found is left out).
    pub(super) fn of(disk: &mut MemDisk) -> BankVerdicts {
        let volumes = visorsim_boot::volume::scan_volumes(disk).volumes;
        let banks = [5u32, 6]
            .into_iter()
            .filter_map(|n| volumes.iter().find(|v| v.number == n).map(|v| (n, v.first_lba, v.sectors)))
            .map(|(n, first, sectors)| check_bank(disk, n, first, sectors))
            .collect();
        BankVerdicts { banks }
    }

    /// The verdicts after `state`: banks it wrote are checked again on
    /// `disk` (the crash state), the others keep this verdict.
    fn after(&self, disk: &mut MemDisk, log: &[LoggedIo], state: &CrashState) -> BankVerdicts {
        let ss = disk.sector_size().bytes_u64();
        let banks = self
            .banks
            .iter()
            .map(|b| {
                let touched = state.writes.iter().any(|w| {
                    let index = match *w {
                        CrashWrite::Whole(index) | CrashWrite::Torn { index, .. } => index,
                    };
                    matches!(log.get(index), Some(LoggedIo::Write { lba, data })
                        if *lba < b.first_lba + b.sectors && lba + (data.len() as u64).div_ceil(ss) > b.first_lba)
                });
                if touched {
                    check_bank(disk, b.number, b.first_lba, b.sectors)
                } else {
                    b.clone()
                }
            })
            .collect();
        BankVerdicts { banks }
    }

    /// Damage classes by bank (`"5"`), damaged banks only.
    fn classes(&self) -> BTreeMap<String, Vec<String>> {
        self.banks.iter().filter(|b| !b.classes.is_empty()).map(|b| (b.number.to_string(), b.classes.clone())).collect()
    }

    fn first(&self) -> Option<String> {
        self.banks.iter().find_map(|b| b.first.clone())
    }

    /// Where `fsck.fat -n`'s per-bank answers disagree with these verdicts.
    fn disagreement(&self, fsck: &[(u32, Option<String>)]) -> Option<String> {
        let mut out = Vec::new();
        for (number, complaint) in fsck {
            let ours = self.banks.iter().find(|b| b.number == *number).map(|b| b.classes.clone()).unwrap_or_default();
            match (complaint, ours.is_empty()) {
                (Some(c), true) => out.push(format!("bank {number}: fsck.fat -n: {c}; checker: clean")),
                (None, false) => out.push(format!("bank {number}: checker: {}; fsck.fat -n: clean", ours.join(", "))),
                _ => {}
            }
        }
        (!out.is_empty()).then(|| out.join("; "))
    }
}

/// A saved configuration, as (path, bytes) pairs.
pub(super) type SavedFiles = Vec<(String, Vec<u8>)>;

/// What may be found after a crash: the builds that were fully written and
/// the configurations that were saved, with their labels.
pub(super) struct Expected {
    pub(super) builds: Vec<(&'static str, String)>,
    pub(super) configs: Vec<(&'static str, SavedFiles)>,
    /// The host came up with defaults before the operation (a customer's
    /// disk whose `state.tgz` was not usable): coming up with defaults
    /// again loses nothing.
    pub(super) defaults_before: bool,
}

/// Judges crash states of one recorded operation over one base disk.
pub(super) struct Judge<'a> {
    pub(super) base: &'a MemDisk,
    pub(super) log: &'a [LoggedIo],
    pub(super) base_verdicts: &'a BankVerdicts,
    pub(super) seed: u64,
    pub(super) boot: &'a HostBootOptions,
    pub(super) depth: u8,
    pub(super) parent: Option<u64>,
    pub(super) expected: Expected,
    /// Per log entry, the 1-based number of the write among the log's
    /// writes ([`write_numbers`]).
    pub(super) numbers: Vec<usize>,
}

/// Per log entry, how many writes the log has up to and including it: the
/// 1-based number of a write, as `power_cut_after_writes` counts.
pub(super) fn write_numbers(log: &[LoggedIo]) -> Vec<usize> {
    let mut n = 0;
    log.iter()
        .map(|e| {
            n += usize::from(matches!(e, LoggedIo::Write { .. }));
            n
        })
        .collect()
}

impl Judge<'_> {
    /// The result fields that only depend on the state: ids, what landed,
    /// how to reproduce it.
    fn blank(&self, state: &CrashState) -> StateResult {
        let number = |index: usize| self.numbers.get(index).copied().unwrap_or(0);
        let mut landed = Vec::new();
        let mut torn_sectors = None;
        for w in &state.writes {
            match *w {
                CrashWrite::Whole(index) => landed.push(number(index)),
                CrashWrite::Torn { index, tearing } => {
                    landed.push(number(index));
                    torn_sectors = Some(match tearing {
                        Tearing::Prefix { sectors } | Tearing::TornSector { sectors, .. } => sectors,
                    });
                }
            }
        }
        let cut_after = landed.last().copied().unwrap_or(0);
        let lost = (1..=cut_after).filter(|n| landed.binary_search(n).is_err()).collect();
        StateResult {
            id: state.id,
            depth: self.depth,
            parent: self.parent,
            description: state.description.clone(),
            outcome: String::new(),
            violation: false,
            cause: None,
            writes_landed: state.writes.iter().filter(|w| matches!(w, CrashWrite::Whole(_))).count(),
            torn: torn_sectors.is_some(),
            cut_after,
            lost,
            torn_sectors,
            fat: BTreeMap::new(),
            finding: None,
            fsck_checked: false,
            fsck_disagrees: None,
            boot: None,
            build: None,
            hostname: None,
            leads_to: None,
            same_as: None,
        }
    }

    /// Judges one crash state (`fsck`: cross-check it with `fsck.fat -n`).
    pub(super) fn check(&self, state: &CrashState, cache: &mut ModuleCache, fsck: bool) -> StateResult {
        let mut r = self.blank(state);
        let mut disk = self.base.fork();
        let violation = |mut r: StateResult, cause: &str, outcome: String| {
            r.violation = true;
            r.cause = Some(cause.to_owned());
            r.outcome = format!("violation: {outcome}");
            r
        };
        if let Err(e) = apply_crash_state(&mut disk, self.log, state) {
            return violation(r, "error", format!("cannot apply the crash state: {e}"));
        }
        // Violations name their cause only (the FAT classes are in `fat`
        // and the class table); findings and passes name their FAT damage.
        let verdicts = self.base_verdicts.after(&mut disk, self.log, state);
        r.fat = verdicts.classes();
        r.finding = verdicts.first();
        if fsck {
            if let Some(answers) = fsck_each(&mut disk) {
                r.fsck_checked = true;
                r.fsck_disagrees = verdicts.disagreement(&answers);
            }
        }
        let fat = if r.fat.is_empty() {
            String::new()
        } else {
            let banks: Vec<String> =
                r.fat.iter().map(|(bank, classes)| format!("bank {bank} {}", classes.join("+"))).collect();
            format!("; FAT: {}", banks.join(", "))
        };
        let mut host = Host::new(self.seed, SimTime::default());
        let report = host.boot(&mut disk, self.boot, Some(cache));
        r.boot =
            serde_json::to_value(BootOutcome::of(&report.outcome)).ok().and_then(|v| v.as_str().map(str::to_owned));
        if report.outcome != Outcome::Booted {
            let said = host.timeline().iter().rev().find(|e| e.kind == EventKind::Boot).map(|e| e.text.clone());
            return violation(r, "unbootable", format!("unbootable: {}", said.unwrap_or_default()));
        }
        let Some(running) = host.running().cloned() else {
            return violation(r, "host down", "the host did not come up".to_owned());
        };
        r.build = Some(running.build.clone());
        r.hostname = host.etc().hostname();
        let Some((build, _)) = self.expected.builds.iter().find(|(_, b)| *b == running.build) else {
            return violation(r, "half-written build", format!("booted unexpected build {}", running.build));
        };
        let saved = etc_pairs(host.etc());
        let defaults = came_up_with_defaults(&host);
        let config = if defaults {
            self.expected.defaults_before.then_some("defaults as before")
        } else {
            self.expected.configs.iter().find(|(_, c)| *c == saved).map(|(label, _)| *label)
        };
        match (defaults, config) {
            (true, None) => violation(r, "config lost", format!("{build}, config lost (defaults)")),
            (false, None) => violation(r, "mixed config", format!("{build}, mixed config")),
            (_, Some(config)) => {
                let prefix = if fat.is_empty() { "ok" } else { "finding" };
                r.outcome = format!("{prefix}: {build}, {config}{fat}");
                r
            }
        }
    }

    /// Judges `states`: each distinct content once (in parallel), a
    /// duplicate taking its twin's verdict (`same_as`). `fsck_every`: the
    /// states cross-checked with `fsck.fat -n`. Adds 1 to `checked` per state.
    pub(super) fn judge_all(
        &self,
        states: &[&CrashState],
        keys: &ContentKeys,
        fsck_every: u64,
        checked: &AtomicUsize,
    ) -> Vec<StateResult> {
        let content: Vec<u64> = parallel(states, |s, _| keys.key(self.log, s));
        let mut first: HashMap<u64, usize> = HashMap::new();
        let mut distinct = Vec::new();
        for (i, key) in content.iter().enumerate() {
            first.entry(*key).or_insert_with(|| {
                distinct.push(i);
                i
            });
        }
        let judged = parallel(&distinct, |&i, cache| {
            let state = states[i];
            let result = self.check(state, cache, fsck_every > 0 && state.id.is_multiple_of(fsck_every));
            checked.fetch_add(1, Ordering::Relaxed);
            result
        });
        let by_index: HashMap<usize, &StateResult> = distinct.iter().copied().zip(judged.iter()).collect();
        let mut out = Vec::with_capacity(states.len());
        for (i, state) in states.iter().enumerate() {
            let twin = first[&content[i]];
            if let Some(result) = by_index.get(&i).filter(|_| twin == i) {
                out.push((*result).clone());
                continue;
            }
            let twin_result = by_index[&twin];
            let mut shared = twin_result.clone().with_state_of(self.blank(state));
            shared.same_as = Some(twin_result.id);
            shared.fsck_checked = false;
            shared.fsck_disagrees = None;
            out.push(shared);
            checked.fetch_add(1, Ordering::Relaxed);
        }
        out
    }
}

impl StateResult {
    /// This verdict on another state: `own`'s ids and what landed.
    fn with_state_of(self, own: StateResult) -> StateResult {
        StateResult {
            id: own.id,
            description: own.description,
            writes_landed: own.writes_landed,
            torn: own.torn,
            cut_after: own.cut_after,
            lost: own.lost,
            torn_sectors: own.torn_sectors,
            ..self
        }
    }
}

/// Runs `fsck.fat -n` on banks 5 and 6 (through `visorsim_tools::fsck_fat`);
/// the first complaint, if any. `None` also when fsck.fat is not installed
/// or gives no answer (its temporary file cannot be written, or it runs past
/// its time limit). Each bank is written to a sparse temporary file holding
/// only its stored chunks.
pub fn fsck_banks(disk: &mut MemDisk) -> Option<String> {
    fsck_each(disk)?.into_iter().find_map(|(_, complaint)| complaint)
}

/// `fsck.fat -n`'s answer for banks 5 and 6: per bank its first complaint
/// (`None`: clean), `bank N: ...`. `None` when fsck.fat gave no answer for
/// a bank (missing, failed to run) or a bank is not found.
fn fsck_each(disk: &mut MemDisk) -> Option<Vec<(u32, Option<String>)>> {
    use visorsim_tools::fsck_fat::{Complaint, FsckFat};
    let ss = disk.sector_size().bytes_u64();
    let volumes = visorsim_boot::volume::scan_volumes(disk).volumes;
    let fsck = FsckFat::new();
    let mut out = Vec::new();
    for number in [5u32, 6] {
        let v = volumes.iter().find(|v| v.number == number)?;
        let (start, len) = (v.first_lba * ss, v.sectors * ss);
        let chunks = disk
            .stored_chunks()
            .filter(|&(offset, data)| offset >= start && offset + data.len() as u64 <= start + len)
            .map(|(offset, data)| (offset - start, data));
        let report = fsck.check_extents(len, chunks).ok()?;
        let complaint = report.damage().map(|damage| {
            // fsck.fat prints its version, then "<path>" / "  <what>" pairs
            // or a one-line complaint: keep the first complaint, without the
            // per-run file names (backup.sh's $$) so states group by kind.
            let what = match damage.first_complaint() {
                Some(Complaint { file: Some(path), message }) => format!("{}: {message}", generic_name(path)),
                Some(Complaint { file: None, message }) => message.to_owned(),
                None => "fsck.fat failed".to_owned(),
            };
            format!("bank {number}: {what}")
        });
        out.push((number, complaint));
    }
    Some(out)
}

/// `/state.1002/LOCAL.TGZ` -> `/state.$$/local.tgz`: names made by backup.sh
/// with its process id, case folded, so crash states group by kind.
fn generic_name(path: &str) -> String {
    let lower = path.to_ascii_lowercase();
    let mut out = String::new();
    let mut digits = false;
    for c in lower.chars() {
        if c.is_ascii_digit() {
            if !digits {
                out.push_str("$$");
            }
            digits = true;
        } else {
            digits = false;
            out.push(c);
        }
    }
    out
}
