//! Crash-point exploration: record every write and flush of one operation,
//! then for every crash point (each prefix of the writes, the last write
//! torn, reorderings inside an unflushed epoch) fork the disk, boot it,
//! bring the host up and check the invariants:
//!
//! - a bank is bootable;
//! - the build that boots is one that was fully written (the old one, or the
//!   new one for operations that install it);
//! - the configuration is the old or the new one, never a mix, never the
//!   defaults when one was saved;
//!
//! and, on a sample, runs `fsck.fat -n` on the banks: what it reports is a
//! *finding* (repairable FAT damage, [`StateResult::finding`]), not a
//! violation.
//!
//! ```text
//!   setup ─► base disk (pre-op) ──fork──► WriteLog ─► op ─► log of writes/flushes
//!                    │
//!                    └──fork──► apply crash state k ─► boot ─► host up ─► check
//! ```
//!
//! A violation the real ESXi design shares (the emulation follows the real
//! scripts' and Linux vfat's write sequences) is a *finding* about ESXi,
//! listed as a data-loss window; each distinct one is also written out as a
//! minimal scenario file that reproduces it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use visorsim_boot::boot::{ModuleCache, Outcome};
use visorsim_disk::SectorSize;
use visorsim_disk::{
    apply_crash_state, crash_states, BlockDevice, CrashSpace, CrashState, CrashWrite, DiskError, LoggedIo, MemDisk,
    WriteLog,
};
use visorsim_host::bank::{Bank, BankLocation};
use visorsim_host::clock::SimTime;
use visorsim_host::etc::EtcTree;
use visorsim_host::host::{Host, HostBootOptions, HostError};
use visorsim_image::archive::{read_state_tgz, ArchiveLimits};
use visorsim_image::install::{install_fresh, InstallError, InstallOptions};
use visorsim_image::payload::default_cache_dir;
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};
use visorsim_media::layout::Layout;

/// The operation whose crash points are explored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `backup.sh 0` with a changed configuration.
    Backup,
    /// An upgrade into the alt bank.
    Upgrade,
    /// An orderly shutdown with an upgrade staged (backup.sh 1 + alt bank refresh).
    Shutdown,
    /// The trial boot of a staged upgrade (bootstate write + jumpstart confirm).
    Boot,
}

impl Operation {
    /// Parses `backup|upgrade|shutdown|boot`.
    pub fn from_name(name: &str) -> Option<Operation> {
        match name {
            "backup" => Some(Operation::Backup),
            "upgrade" => Some(Operation::Upgrade),
            "shutdown" => Some(Operation::Shutdown),
            "boot" => Some(Operation::Boot),
            _ => None,
        }
    }

    /// The name.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Upgrade => "upgrade",
            Operation::Shutdown => "shutdown",
            Operation::Boot => "boot",
        }
    }
}

/// How to explore.
#[derive(Clone, Debug)]
pub struct ExploreOptions {
    /// The operation.
    pub op: Operation,
    /// Seed of the disk and host.
    pub seed: u64,
    /// Compressed size of s.v00 in MB.
    pub payload_mb: f64,
    /// At most this many writes of an unflushed epoch lost at a cut.
    pub reorder: usize,
    /// Tear points per write.
    pub max_tears: usize,
    /// Only states with `id % count == index`.
    pub shard: Option<(u64, u64)>,
    /// Run `fsck.fat -n` on every n-th state (0: never).
    pub fsck_every: u64,
}

impl Default for ExploreOptions {
    fn default() -> ExploreOptions {
        ExploreOptions {
            op: Operation::Backup,
            seed: 1,
            payload_mb: 0.3,
            reorder: 1,
            max_tears: 2,
            shard: None,
            fsck_every: 0,
        }
    }
}

/// The verdict on one crash state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateResult {
    /// Crash state id.
    pub id: u64,
    /// What reached the medium.
    pub description: String,
    /// The outcome class, e.g. `ok: old build, old config`.
    pub outcome: String,
    /// Whether an invariant is violated.
    pub violation: bool,
    /// The number of whole writes that landed (for reproduction).
    pub writes_landed: usize,
    /// Whether the last write was torn.
    pub torn: bool,
    /// Whether `fsck.fat -n` checked this state's banks (sampled by
    /// `fsck_every`, and only when fsck.fat answered).
    #[serde(default)]
    pub fsck_checked: bool,
    /// A repairable FAT finding of `fsck.fat -n` (its first complaint,
    /// `bank N: ...`): not an invariant violation by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
}

impl StateResult {
    /// What kind of result this is: `violation` (an invariant is violated),
    /// `finding` (only a repairable FAT finding) or `ok`.
    pub fn kind(&self) -> &'static str {
        if self.violation {
            "violation"
        } else if self.finding.is_some() || self.outcome.starts_with("finding:") {
            "finding"
        } else {
            "ok"
        }
    }
}

/// A prepared exploration: the base disk, the operation's log and the
/// expected before/after facts.
pub struct Exploration {
    base: MemDisk,
    log: Vec<LoggedIo>,
    states: Vec<CrashState>,
    old_build: String,
    new_build: Option<String>,
    old_saved: Vec<(String, Vec<u8>)>,
    new_saved: Vec<(String, Vec<u8>)>,
    seed: u64,
    payload_mb: f64,
    /// Setup steps (as scenario JSON) that reproduce the pre-operation state.
    pub setup_steps: Vec<serde_json::Value>,
    /// The operation's step (as scenario JSON).
    pub op_step: serde_json::Value,
    op: Operation,
}

/// What an [`ExploreError`] is about, for callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExploreErrorKind {
    /// A system image cannot be built (payload generation or its cache).
    Image,
    /// The fresh install of the base disk failed.
    Install,
    /// A host step bringing the host to the state before the operation failed.
    Setup,
    /// The recorded operation itself failed.
    Operation,
    /// A crash state cannot be applied to the base disk.
    CrashState,
}

/// Why an exploration cannot be prepared, or a crash state's disk made;
/// each names where: the build, the setup step, the operation, the state.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    /// See [`ExploreErrorKind::Image`].
    #[error("building build {build}: {source}")]
    Image {
        /// The build number.
        build: u32,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// See [`ExploreErrorKind::Install`].
    #[error("installing build {build}: {source}")]
    Install {
        /// The build number.
        build: u32,
        /// What failed.
        #[source]
        source: InstallError,
    },
    /// See [`ExploreErrorKind::Setup`].
    #[error("setup step {step} ({what}): {source}")]
    Setup {
        /// The step (1-based) of the setup, as in a reproducer's steps.
        step: usize,
        /// The step, e.g. `backup`.
        what: String,
        /// The host's error.
        #[source]
        source: HostError,
    },
    /// See [`ExploreErrorKind::Operation`].
    #[error("the {op} itself: {source}", op = op.name())]
    Operation {
        /// The operation.
        op: Operation,
        /// The host's error.
        #[source]
        source: HostError,
    },
    /// See [`ExploreErrorKind::CrashState`].
    #[error("crash state {id}: {source}")]
    CrashState {
        /// The crash state's id.
        id: u64,
        /// The base disk's error (it names the LBA).
        #[source]
        source: DiskError,
    },
}

impl ExploreError {
    /// What the error is about.
    pub fn kind(&self) -> ExploreErrorKind {
        match self {
            ExploreError::Image { .. } => ExploreErrorKind::Image,
            ExploreError::Install { .. } => ExploreErrorKind::Install,
            ExploreError::Setup { .. } => ExploreErrorKind::Setup,
            ExploreError::Operation { .. } => ExploreErrorKind::Operation,
            ExploreError::CrashState { .. } => ExploreErrorKind::CrashState,
        }
    }
}

/// The error of setup step `step`, the next after `done`.
fn setup_failed(done: &[serde_json::Value], step: &serde_json::Value) -> impl FnOnce(HostError) -> ExploreError {
    let (step, what) = (done.len() + 1, step.to_string());
    move |source| ExploreError::Setup { step, what, source }
}

fn image(seed: u64, build: u32, payload_mb: f64) -> Result<SystemImage, ExploreError> {
    let spec = ImageSpec {
        version: "6.7.0".into(),
        build_number: build,
        seed,
        payload: PayloadSize::Compressed((payload_mb * 1_000_000.0) as u64),
        hostname: "localhost".into(),
    };
    SystemImage::build(&spec, default_cache_dir().as_deref(), &mut |_, _| {})
        .map_err(|source| ExploreError::Image { build, source })
}

/// The saved configuration in a bank's state.tgz, as (path, bytes) pairs.
fn saved_config(dev: &mut MemDisk, bank_number: u32) -> Vec<(String, Vec<u8>)> {
    let volumes = visorsim_boot::volume::scan_volumes(dev).volumes;
    let Some(v) = volumes.iter().find(|v| v.number == bank_number) else { return Vec::new() };
    let location = BankLocation::fat(bank_number, v.first_lba, v.sectors);
    location
        .read(dev, "state.tgz", 64 << 20)
        .ok()
        .and_then(|b| read_state_tgz(&b, &ArchiveLimits::default()).ok())
        .map(|files| files.into_iter().map(|f| (f.path, f.data)).collect())
        .unwrap_or_default()
}

fn etc_pairs(etc: &EtcTree) -> Vec<(String, Vec<u8>)> {
    etc.saved_files().into_iter().map(|f| (f.path, f.data)).collect()
}

impl Exploration {
    /// Builds the disk, brings the host to the state before the operation,
    /// records the operation and enumerates its crash states.
    ///
    /// # Errors
    /// [`ExploreError`] naming the build, the setup step or the operation
    /// that failed.
    pub fn prepare(options: &ExploreOptions) -> Result<Exploration, ExploreError> {
        let seed = options.seed;
        let old = image(seed, 1000, options.payload_mb)?;
        let install = InstallOptions { layout: Layout::Esxi6, size: None, sector_size: SectorSize::S512, seed };
        let (mut disk, _) =
            install_fresh(&old, &install).map_err(|source| ExploreError::Install { build: 1000, source })?;
        let mut host = Host::new(seed, SimTime::default());
        let normal = HostBootOptions::default();
        let mut setup_steps = vec![serde_json::json!({ "boot": {} })];
        host.boot(&mut disk, &normal, None);
        let step = serde_json::json!({ "set_hostname": "old-config" });
        host.set_hostname("old-config").map_err(setup_failed(&setup_steps, &step))?;
        setup_steps.push(step);
        let step = serde_json::json!("backup");
        host.backup(&mut disk, false).map_err(setup_failed(&setup_steps, &step))?;
        setup_steps.push(step);
        let new = image(seed + 1, 2000, options.payload_mb)?;
        let mut new_build = None;
        if matches!(options.op, Operation::Shutdown | Operation::Boot) {
            let step = serde_json::json!({ "upgrade": { "build": 2000, "seed": seed + 1 } });
            host.upgrade(&mut disk, &new).map_err(setup_failed(&setup_steps, &step))?;
            setup_steps.push(step);
            new_build = Some(new.boot_cfg.build.clone());
        }
        let step = serde_json::json!({ "set_hostname": "new-config" });
        host.set_hostname("new-config").map_err(setup_failed(&setup_steps, &step))?;
        setup_steps.push(step);
        if options.op == Operation::Boot {
            let step = serde_json::json!("shutdown");
            host.shutdown(&mut disk).map_err(setup_failed(&setup_steps, &step))?;
            setup_steps.push(step);
        }
        let old_saved = saved_config(&mut disk, 5);
        let base = disk.fork();
        let mut recorder = WriteLog::new(disk);
        let op_failed = |source| ExploreError::Operation { op: options.op, source };
        let op_step = match options.op {
            Operation::Backup => {
                host.backup(&mut recorder, false).map_err(op_failed)?;
                serde_json::json!("backup")
            }
            Operation::Upgrade => {
                host.upgrade(&mut recorder, &new).map_err(op_failed)?;
                new_build = Some(new.boot_cfg.build.clone());
                serde_json::json!({ "upgrade": { "build": 2000, "seed": seed + 1 } })
            }
            Operation::Shutdown => {
                host.shutdown(&mut recorder).map_err(op_failed)?;
                serde_json::json!("shutdown")
            }
            Operation::Boot => {
                host.boot(&mut recorder, &normal, None);
                serde_json::json!({ "boot": {} })
            }
        };
        // What a completed operation leaves saved: backup and shutdown save
        // the live /etc; an upgrade copies it into the new bank; a boot
        // restores it.
        let new_saved = etc_pairs(host.etc());
        let (_, log) = recorder.into_parts();
        let space = CrashSpace {
            reorder: options.reorder,
            max_tears: options.max_tears,
            max_states_per_cut: 64,
            sector_atomic: true,
        };
        let states = crash_states(&log, base.sector_size().len(), &space);
        Ok(Exploration {
            base,
            log,
            states,
            old_build: old.boot_cfg.build.clone(),
            new_build,
            old_saved,
            new_saved,
            seed,
            payload_mb: options.payload_mb,
            setup_steps,
            op_step,
            op: options.op,
        })
    }

    /// Writes and flushes the operation issued.
    pub fn log(&self) -> &[LoggedIo] {
        &self.log
    }

    /// Every crash state.
    pub fn states(&self) -> &[CrashState] {
        &self.states
    }

    /// The disk as it is after crash state `state` (a fork of the base).
    ///
    /// # Errors
    /// [`ExploreError::CrashState`] naming the state (its cause names the LBA).
    pub fn crash_disk(&self, state: &CrashState) -> Result<MemDisk, ExploreError> {
        let mut disk = self.base.fork();
        apply_crash_state(&mut disk, &self.log, state)
            .map_err(|source| ExploreError::CrashState { id: state.id, source })?;
        Ok(disk)
    }

    /// Checks one crash state with a shared module cache.
    pub fn check(&self, state: &CrashState, cache: &mut ModuleCache, fsck: bool) -> StateResult {
        let mut disk = self.base.fork();
        let torn = state.writes.iter().any(|w| matches!(w, CrashWrite::Torn { .. }));
        let writes_landed = state.writes.iter().filter(|w| matches!(w, CrashWrite::Whole(_))).count();
        let result = |outcome: String, violation: bool| StateResult {
            id: state.id,
            description: state.description.clone(),
            outcome,
            violation,
            writes_landed,
            torn,
            fsck_checked: false,
            finding: None,
        };
        if let Err(e) = apply_crash_state(&mut disk, &self.log, state) {
            return result(format!("error: cannot apply the crash state: {e}"), true);
        }
        let mut host = Host::new(self.seed, SimTime::default());
        let report = host.boot(&mut disk, &HostBootOptions::default(), Some(cache));
        if report.outcome != Outcome::Booted {
            return result(format!("violation: unbootable ({:?})", report.outcome), true);
        }
        let Some(running) = host.running().cloned() else {
            return result("violation: the host did not come up".into(), true);
        };
        let build_ok = running.build == self.old_build || self.new_build.as_deref() == Some(running.build.as_str());
        if !build_ok {
            return result(format!("violation: booted unexpected build {}", running.build), true);
        }
        let which_build = if running.build == self.old_build { "old build" } else { "new build" };
        let saved = etc_pairs(host.etc());
        let defaults = host.timeline().iter().any(|e| e.text.contains("booting with defaults"));
        let config = if defaults {
            "config lost (defaults)"
        } else if saved == self.new_saved {
            "new config"
        } else if saved == self.old_saved {
            "old config"
        } else {
            "mixed config"
        };
        let violation = matches!(config, "config lost (defaults)" | "mixed config");
        let mut outcome = format!("{which_build}, {config}");
        let answer = if fsck { fsck_answer(&mut disk) } else { None };
        let finding = answer.clone().flatten();
        if let Some(complaint) = &finding {
            outcome.push_str(&format!(", fsck: {complaint}"));
        }
        // A FAT finding alone is repairable (`fsck.fat -a`): a finding, not
        // a violation.
        let prefix = if violation {
            "violation"
        } else if finding.is_some() {
            "finding"
        } else {
            "ok"
        };
        StateResult { fsck_checked: answer.is_some(), finding, ..result(format!("{prefix}: {outcome}"), violation) }
    }

    /// Checks every state of this shard (in parallel on all cores).
    pub fn run(&self, options: &ExploreOptions) -> Vec<StateResult> {
        self.run_counting(options, &AtomicUsize::new(0))
    }

    /// The number of crash states of this shard ([`Exploration::run`] checks them).
    pub fn selected(&self, options: &ExploreOptions) -> usize {
        self.states.iter().filter(|s| options.shard.is_none_or(|(index, count)| s.id % count == index)).count()
    }

    /// [`Exploration::run`], adding 1 to `checked` for each state checked
    /// (for a progress display on another thread).
    pub fn run_counting(&self, options: &ExploreOptions, checked: &AtomicUsize) -> Vec<StateResult> {
        let selected: Vec<&CrashState> =
            self.states.iter().filter(|s| options.shard.is_none_or(|(index, count)| s.id % count == index)).collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(selected.len().max(1));
        let chunk = selected.len().div_ceil(threads.max(1)).max(1);
        let mut results: Vec<StateResult> = std::thread::scope(|scope| {
            let handles: Vec<_> = selected
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        let mut cache = ModuleCache::new(64);
                        part.iter()
                            .map(|s| {
                                let fsck = options.fsck_every > 0 && s.id % options.fsck_every == 0;
                                let result = self.check(s, &mut cache, fsck);
                                checked.fetch_add(1, Ordering::Relaxed);
                                result
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("checker thread")).collect()
        });
        results.sort_by_key(|r| r.id);
        results
    }

    /// A minimal scenario file reproducing a violation found in a prefix or
    /// torn crash state (reorderings need the cache model: not reproducible
    /// from a file, `None`).
    pub fn reproducer(&self, result: &StateResult) -> Option<serde_json::Value> {
        if result.description.contains("dropped") {
            return None;
        }
        let mut fault =
            serde_json::json!({ "power_cut_after_writes": result.writes_landed + usize::from(result.torn) });
        if result.torn {
            if let Some(CrashWrite::Torn { tearing: visorsim_disk::Tearing::Prefix { sectors }, .. }) =
                self.states.iter().find(|s| s.id == result.id).and_then(|s| s.writes.last().cloned())
            {
                fault["torn_sectors"] = serde_json::json!(sectors);
            }
        }
        let mut steps = self.setup_steps.clone();
        steps.push(serde_json::json!({ "fault": fault }));
        steps.push(self.op_step.clone());
        steps.push(serde_json::json!({ "fault": { "clear": true } }));
        if self.op != Operation::Boot {
            steps.push(serde_json::json!("power_cut"));
        }
        steps.push(serde_json::json!({ "boot": {} }));
        let mut expect = serde_json::json!({ "outcome": "booted" });
        if result.outcome.contains("config lost") {
            expect["config_absent"] = serde_json::json!({ "hostname": "localhost" });
        }
        steps.push(serde_json::json!({ "expect": expect }));
        Some(serde_json::json!({
            "description": format!("Crash-point exploration of {}: {} — {}", self.op.name(), result.description, result.outcome),
            "references": ["visorsim explore"],
            "disk": { "seed": self.seed, "payload_mb": self.payload_mb },
            "steps": steps,
        }))
    }
}

/// Runs `fsck.fat -n` on banks 5 and 6 (through `visorsim_tools::fsck_fat`);
/// the first complaint, if any. `None` also when fsck.fat is not installed
/// or gives no answer (its temporary file cannot be written, or it runs past
/// its time limit). Each bank is written to a sparse temporary file holding
/// only its stored chunks.
pub fn fsck_banks(disk: &mut MemDisk) -> Option<String> {
    fsck_answer(disk).flatten()
}

/// [`fsck_banks`], telling "no answer" (`None`: fsck.fat missing, failed to
/// run, or a bank not found) from "checked" (`Some`: the first complaint, if
/// any).
fn fsck_answer(disk: &mut MemDisk) -> Option<Option<String>> {
    use visorsim_tools::fsck_fat::{Complaint, FsckFat};
    let ss = disk.sector_size().bytes_u64();
    let volumes = visorsim_boot::volume::scan_volumes(disk).volumes;
    let fsck = FsckFat::new();
    for number in [5u32, 6] {
        let v = volumes.iter().find(|v| v.number == number)?;
        let (start, len) = (v.first_lba * ss, v.sectors * ss);
        let chunks = disk
            .stored_chunks()
            .filter(|&(offset, data)| offset >= start && offset + data.len() as u64 <= start + len)
            .map(|(offset, data)| (offset - start, data));
        let report = fsck.check_extents(len, chunks).ok()?;
        if let Some(damage) = report.damage() {
            // fsck.fat prints its version, then "<path>" / "  <what>" pairs
            // or a one-line complaint: keep the first complaint, without the
            // per-run file names (backup.sh's $$) so states group by kind.
            let what = match damage.first_complaint() {
                Some(Complaint { file: Some(path), message }) => format!("{}: {message}", generic_name(path)),
                Some(Complaint { file: None, message }) => message.to_owned(),
                None => "fsck.fat failed".to_owned(),
            };
            return Some(Some(format!("bank {number}: {what}")));
        }
    }
    Some(None)
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

/// Counts by outcome class, for the table.
pub fn tally(results: &[StateResult]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in results {
        *counts.entry(r.outcome.clone()).or_insert(0) += 1;
    }
    counts
}

/// Writes each distinct violation's reproducer into `dir`; returns the paths.
pub fn write_reproducers(
    exploration: &Exploration,
    results: &[StateResult],
    dir: &Path,
) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut seen = std::collections::BTreeSet::new();
    let mut written = Vec::new();
    // fsck findings need fsck to observe them, which scenario files do not
    // run: only boot and configuration violations get a reproducer.
    for r in results.iter().filter(|r| r.violation && !r.outcome.contains("fsck:")) {
        if !seen.insert(r.outcome.clone()) {
            continue;
        }
        let Some(scenario) = exploration.reproducer(r) else { continue };
        let name = format!("{}_crash_state_{}.json", exploration.op.name(), r.id);
        let path = dir.join(&name);
        std::fs::write(&path, serde_json::to_string_pretty(&scenario).expect("json"))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}
