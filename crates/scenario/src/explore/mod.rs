//! Crash-point exploration: record every write and flush of one operation,
//! then for every crash point (each prefix of the writes, the last write
//! torn, losses inside an unflushed epoch) fork the disk, check its FAT
//! volumes, boot it, bring the host up and check the invariants:
//!
//! - a bank is bootable;
//! - the build that boots is one that was fully written (the old one, or the
//!   new one for operations that install it);
//! - the configuration is the old or the new one, never a mix, never the
//!   defaults when one was saved.
//!
//! Every crash state's banks go through the in-process FAT checker
//! ([`visorsim_media::fat::check_volume`], what `fsck.fat -n` reports): a
//! state with FAT damage is a *finding* with its classes. Whether it is also
//! a *violation* is decided by what it leads to (depth 2, below). `fsck.fat
//! -n` itself runs on a sample (`fsck_every`) as a cross-check; a
//! disagreement is recorded on the state ([`StateResult::fsck_disagrees`]).
//!
//! ```text
//!   setup ─► base disk (pre-op) ──fork──► WriteLog ─► op ─► log of writes/flushes
//!                    │
//!                    └──fork──► crash state k ─► FAT check ─► boot ─► host up ─► judge   (depth 1)
//!                                    │
//!                                    └─► boot ─► next operation (WriteLog) ─► its crash
//!                                        states ─► FAT check ─► boot ─► judge          (depth 2)
//! ```
//!
//! The base disk is a fresh install, or a customer's disk
//! ([`ExploreOptions::disk`], `visorsim explore --disk`): the setup then
//! starts by booting it as the loader decides and restoring its
//! `state.tgz`, and a disk that does not boot is an error that says why
//! ([`ExploreError::Boot`]); see [`Exploration::prepare`].
//!
//! Depth 2 (*follow-through*): a crash state is booted, the host comes up
//! and does the next thing a host does ([`Operation::next`]: the next
//! hourly backup, with a changed configuration so it writes; after an
//! upgrade, the trial reboot), and that operation's crash points are judged
//! the same way. A depth-1 state from which a depth-2 state violates an
//! invariant is itself a violation ([`StateResult::leads_to`]).
//!
//! Cost bounds: states are deduplicated by content (the bytes their writes
//! leave, [`judge::ContentKeys`]); a duplicate takes its twin's verdict.
//! Depth 2 follows at most `max_follow` distinct depth-1 states, the most
//! suspicious first (FAT damage by class, then the rest, taking one of each
//! outcome in turn); how many were left unfollowed is reported
//! ([`FollowSummary`]), never dropped silently. Only banks a crash state
//! wrote are checked again; the others keep the base disk's verdict.
//!
//! A violation the real ESXi design shares (the emulation follows the real
//! scripts' and Linux vfat's write sequences) is a finding about ESXi; each
//! distinct one is also written out as a scenario file that reproduces it
//! ([`write_reproducers`]).
//!
//! ```text
//!   mod.rs        options, results, prepare (the base disk and the log), run
//!   judge.rs      one crash state: content key, FAT verdict, boot, invariants, fsck.fat
//!   follow.rs     depth 2: boot a state, record the next operation, judge its states
//!   reproduce.rs  scenario files that replay a violation
//! ```

mod follow;
mod judge;
mod reproduce;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use visorsim_boot::boot::ModuleCache;
use visorsim_boot::safeboot::LoaderVersion;
use visorsim_disk::SectorSize;
use visorsim_disk::{crash_states, BlockDevice, CrashSpace, CrashState, DiskError, LoggedIo, MemDisk, WriteLog};
use visorsim_host::bank::{Bank, BankLocation};
use visorsim_host::clock::SimTime;
use visorsim_host::etc::EtcTree;
use visorsim_host::host::{EventKind, Host, HostBootOptions, HostError, HostState};
use visorsim_image::archive::{read_state_tgz, ArchiveLimits};
use visorsim_image::install::{install_fresh, InstallError, InstallOptions};
use visorsim_image::payload::default_cache_dir;
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};
use visorsim_media::layout::Layout;

use crate::checked::MAX_PAYLOAD_MB;

pub use follow::FollowSummary;
pub use judge::{fsck_banks, ContentKeys};
pub use reproduce::write_reproducers;

use judge::{BankVerdicts, Expected, Judge};

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

/// What a host does next, after coming up from a crash state (depth 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NextOperation {
    /// The next hourly `backup.sh 0`, after a configuration change (so it
    /// writes: auto-backup.sh skips an unchanged configuration).
    Backup,
    /// An orderly reboot (backup.sh 1, then the boot): after an upgrade,
    /// the trial boot of the new build.
    Reboot,
}

impl NextOperation {
    /// `next backup` or `trial reboot`, for tables.
    pub fn label(self) -> &'static str {
        match self {
            NextOperation::Backup => "next backup",
            NextOperation::Reboot => "trial reboot",
        }
    }
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

    /// What the host does after coming up from one of this operation's crash
    /// states: after an upgrade, the trial reboot; otherwise the next
    /// hourly backup.
    pub fn next(self) -> NextOperation {
        match self {
            Operation::Upgrade => NextOperation::Reboot,
            Operation::Backup | Operation::Shutdown | Operation::Boot => NextOperation::Backup,
        }
    }

    /// The default exploration depth: 2 for backup, upgrade and shutdown
    /// (their crash states are followed into the next operation), 1 for a
    /// trial boot (whose next step is an ordinary backup, explored as `backup`).
    pub fn default_depth(self) -> u8 {
        match self {
            Operation::Boot => 1,
            Operation::Backup | Operation::Upgrade | Operation::Shutdown => 2,
        }
    }
}

/// The default of [`ExploreOptions::max_follow`].
pub const DEFAULT_MAX_FOLLOW: usize = 24;

/// How to explore.
#[derive(Clone, Debug)]
pub struct ExploreOptions {
    /// The operation.
    pub op: Operation,
    /// Seed of the disk and host.
    pub seed: u64,
    /// Compressed size of s.v00 in MB of the builds the exploration makes:
    /// the fresh install's and the upgrade's. On a customer's disk
    /// ([`ExploreOptions::disk`]) the upgrade's s.v00 is as large as the
    /// running one's instead (this only when the booted bank has none).
    pub payload_mb: f64,
    /// At most this many writes of an unflushed epoch lost at a cut.
    pub reorder: usize,
    /// Tear points per write.
    pub max_tears: usize,
    /// Only states with `id % count == index`.
    pub shard: Option<(u64, u64)>,
    /// Run `fsck.fat -n` on every n-th state (0: never), as a cross-check of
    /// the in-process checker.
    pub fsck_every: u64,
    /// 1: judge the operation's crash states; 2: also follow them into the
    /// next operation ([`Operation::next`]) and judge its crash states.
    pub depth: u8,
    /// At most this many distinct depth-1 states are followed at depth 2.
    pub max_follow: usize,
    /// How the host boots: the loader release (`boot.loader.loader`), how
    /// its banks' vfat caches between `sync`s.
    pub boot: HostBootOptions,
    /// A customer's disk to start from instead of a fresh install of build
    /// 1000 (it must boot; see [`Exploration::prepare`] for the setup).
    pub disk: Option<CustomerDisk>,
}

/// A customer's disk to explore (`visorsim explore --disk`).
#[derive(Clone, Debug)]
pub struct CustomerDisk {
    /// The disk as loaded from the image (explored on forks; the image
    /// itself is never written).
    pub disk: MemDisk,
    /// The image the user named, as reproducers name it in `disk.image`
    /// (the scenario runner reads any format; make it absolute, since a
    /// relative `disk.image` is taken from the scenario file's directory).
    pub image: String,
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
            depth: 1,
            max_follow: DEFAULT_MAX_FOLLOW,
            boot: HostBootOptions::default(),
            disk: None,
        }
    }
}

fn depth_one() -> u8 {
    1
}

/// The verdict on one crash state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateResult {
    /// Crash state id (among the states of its operation; at depth 2, of
    /// the next operation from `parent`).
    pub id: u64,
    /// 1: a crash state of the operation; 2: of the next operation.
    #[serde(default = "depth_one")]
    pub depth: u8,
    /// At depth 2, the depth-1 state it was reached from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
    /// What reached the medium.
    pub description: String,
    /// The outcome class, e.g. `ok: old build, old config`.
    pub outcome: String,
    /// Whether an invariant is violated (at depth 1 also: by a state it leads to).
    pub violation: bool,
    /// Why it is a violation: `unbootable`, `host down`, `half-written
    /// build`, `config lost`, `mixed config`, or `leads to: <cause>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The number of whole writes that landed.
    pub writes_landed: usize,
    /// Whether the last write was torn.
    pub torn: bool,
    /// The cut came right after this write of the operation (1-based; 0:
    /// before any write), for reproduction.
    #[serde(default)]
    pub cut_after: usize,
    /// Numbers (1-based) of the operation's writes that were issued before
    /// the cut and lost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<usize>,
    /// Of the torn last write, the sectors that landed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torn_sectors: Option<u64>,
    /// FAT damage per bank (`"5"`), as checker class names (`cross_link`),
    /// in the checker's order: what `fsck.fat -a` would repair.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fat: BTreeMap<String, Vec<String>>,
    /// The first FAT finding, `bank N: <class> <where>: <what>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
    /// Whether `fsck.fat -n` cross-checked this state's banks (sampled by
    /// `fsck_every`, and only when fsck.fat answered).
    #[serde(default)]
    pub fsck_checked: bool,
    /// Where `fsck.fat -n` and the in-process checker disagree on a bank
    /// (`None`: agreement, or not cross-checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsck_disagrees: Option<String>,
    /// The boot's outcome (`booted`, `load_failed`, ...), as scenarios name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// The build that came up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The host name the host came up with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// At depth 1, the first depth-2 state (its id) that violates an
    /// invariant, reached from this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leads_to: Option<u64>,
    /// The state of the same depth (and parent) with the same content,
    /// whose verdict this one shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_as: Option<u64>,
}

impl StateResult {
    /// What kind of result this is: `violation` (an invariant is violated),
    /// `finding` (only FAT damage) or `ok`.
    pub fn kind(&self) -> &'static str {
        if self.violation {
            "violation"
        } else if !self.fat.is_empty() || self.finding.is_some() || self.outcome.starts_with("finding:") {
            "finding"
        } else {
            "ok"
        }
    }

    /// The result's key among a run's results: (depth, parent, id).
    pub fn key(&self) -> (u8, u64, u64) {
        (self.depth, self.parent.unwrap_or(0), self.id)
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
    /// The host as the completed operation left it (depth 2 continues it:
    /// power lost, then the boot of the crash state).
    host_after: HostState,
    boot: HostBootOptions,
    seed: u64,
    /// The payload of the builds made (reproducers' `disk.payload_mb`).
    payload_mb: f64,
    /// The customer's image, when the disk is one (reproducers' `disk.image`).
    image: Option<String>,
    /// The host came up with defaults before the operation (the customer's
    /// `state.tgz` was not usable): defaults after a crash are then the old
    /// configuration, not a loss.
    defaults_before: bool,
    /// Setup steps (as scenario JSON) that reproduce the pre-operation state.
    pub setup_steps: Vec<serde_json::Value>,
    /// The operation's step (as scenario JSON).
    pub op_step: serde_json::Value,
    op: Operation,
    base_verdicts: BankVerdicts,
}

/// What an [`ExploreError`] is about, for callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExploreErrorKind {
    /// A system image cannot be built (payload generation or its cache).
    Image,
    /// The disk does not boot, or the host does not come up on it.
    Boot,
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
    /// See [`ExploreErrorKind::Boot`].
    #[error("the disk does not boot with the {loader} loader{}: {said}", chose.map(|n| format!(" (it chose BANK{n})")).unwrap_or_default())]
    Boot {
        /// The loader release that booted it.
        loader: LoaderVersion,
        /// The bank it chose, if it chose one.
        chose: Option<u32>,
        /// What the boot said, as the host's timeline has it (`No
        /// hypervisor found.`, `Fatal error: ...` with the module).
        said: String,
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
        source: Box<HostError>,
    },
    /// See [`ExploreErrorKind::Operation`].
    #[error("the {op} itself: {source}", op = op.name())]
    Operation {
        /// The operation.
        op: Operation,
        /// The host's error.
        #[source]
        source: Box<HostError>,
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
            ExploreError::Boot { .. } => ExploreErrorKind::Boot,
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
    move |source| ExploreError::Setup { step, what, source: Box::new(source) }
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

/// The saved configuration in a bank's state.tgz, as (path, bytes) pairs,
/// as the host's restore takes it ([`EtcTree::from_files`]: paths
/// normalised, what tar could not create skipped), so that it compares with
/// a host's [`etc_pairs`] whoever wrote the archive.
fn saved_config(dev: &mut MemDisk, bank_number: u32) -> Vec<(String, Vec<u8>)> {
    let volumes = visorsim_boot::volume::scan_volumes(dev).volumes;
    let Some(v) = volumes.iter().find(|v| v.number == bank_number) else { return Vec::new() };
    let location = BankLocation::fat(bank_number, v.first_lba, v.sectors);
    location
        .read(dev, "state.tgz", 64 << 20)
        .ok()
        .and_then(|b| read_state_tgz(&b, &ArchiveLimits::default()).ok())
        .map(|files| etc_pairs(&EtcTree::from_files(files)))
        .unwrap_or_default()
}

/// Whether the host's last boot restored no configuration (its state.tgz
/// was missing or unusable) and it came up with defaults.
fn came_up_with_defaults(host: &Host) -> bool {
    host.timeline()
        .iter()
        .rev()
        .take_while(|e| e.kind != EventKind::Boot)
        .any(|e| e.kind == EventKind::Alert && e.text.contains("booting with defaults"))
}

fn etc_pairs(etc: &EtcTree) -> Vec<(String, Vec<u8>)> {
    etc.saved_files().into_iter().map(|f| (f.path, f.data)).collect()
}

/// Whether `state` is in the shard.
fn in_shard(options: &ExploreOptions, state: &CrashState) -> bool {
    options.shard.is_none_or(|(index, count)| state.id % count == index)
}

/// The crash space of the options.
fn space(options: &ExploreOptions) -> CrashSpace {
    CrashSpace { reorder: options.reorder, max_tears: options.max_tears, max_states_per_cut: 64, sector_atomic: true }
}

impl Exploration {
    /// Builds the disk (or takes the customer's, [`ExploreOptions::disk`]),
    /// boots it, brings the host to the state before the operation,
    /// records the operation and enumerates its crash states.
    ///
    /// The setup on a built disk: boot, `old-config` saved by a backup,
    /// (an upgrade staged,) `new-config` set (, a shutdown). On a customer's
    /// disk the host boots what the loader picks and restores that bank's
    /// `state.tgz`: that restored configuration *is* the old one, so nothing
    /// is saved before the operation (the disk's own `state.tgz`, its FAT
    /// and its leftovers stay as the customer sent them); then the same
    /// steps from the upgrade on.
    ///
    /// # Errors
    /// [`ExploreError`] naming the build, the boot, the setup step or the
    /// operation that failed.
    pub fn prepare(options: &ExploreOptions) -> Result<Exploration, ExploreError> {
        let seed = options.seed;
        let (mut disk, image_path) = match &options.disk {
            Some(customer) => (customer.disk.fork(), Some(customer.image.clone())),
            None => {
                let old = image(seed, 1000, options.payload_mb)?;
                let install = InstallOptions { layout: Layout::Esxi6, size: None, sector_size: SectorSize::S512, seed };
                let disk =
                    install_fresh(&old, &install).map_err(|source| ExploreError::Install { build: 1000, source })?.0;
                (disk, None)
            }
        };
        let mut host = Host::new(seed, SimTime::default());
        let normal = options.boot.clone();
        let mut setup_steps = vec![serde_json::json!({ "boot": {} })];
        let report = host.boot(&mut disk, &normal, None);
        let Some(running) = host.running().cloned() else {
            let said = host.timeline().iter().rev().find(|e| e.kind == EventKind::Boot).map(|e| e.text.clone());
            let said = said.unwrap_or_else(|| "the host did not come up".to_owned());
            return Err(ExploreError::Boot { loader: normal.loader.loader, chose: report.selected, said });
        };
        let old_build = running.build.clone();
        let defaults_before = came_up_with_defaults(&host);
        // The upgrade's build is as large as the one running on a customer's
        // disk (its s.v00, when the booted bank has one), so the upgrade
        // writes about what the customer's next upgrade would.
        let payload_mb = match &options.disk {
            Some(_) => report
                .modules
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case("s.v00") && m.compressed_size > 0)
                .map_or(options.payload_mb, |m| (m.compressed_size as f64 / 1_000_000.0).min(MAX_PAYLOAD_MB)),
            None => options.payload_mb,
        };
        if options.disk.is_none() {
            let step = serde_json::json!({ "set_hostname": "old-config" });
            host.set_hostname("old-config").map_err(setup_failed(&setup_steps, &step))?;
            setup_steps.push(step);
            let step = serde_json::json!("backup");
            host.backup(&mut disk, false).map_err(setup_failed(&setup_steps, &step))?;
            setup_steps.push(step);
        }
        // Built only by the operations that install it (once each).
        let new_image = || image(seed + 1, 2000, payload_mb);
        let upgrade_step = serde_json::json!({ "upgrade": { "build": 2000, "seed": seed + 1 } });
        let mut new_build = None;
        if matches!(options.op, Operation::Shutdown | Operation::Boot) {
            let new = new_image()?;
            host.upgrade(&mut disk, &new).map_err(setup_failed(&setup_steps, &upgrade_step))?;
            setup_steps.push(upgrade_step.clone());
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
        // The configuration saved before the operation, in the bank the
        // host booted from (its /bootbank; empty when its state.tgz is not
        // usable).
        let old_saved = saved_config(&mut disk, running.bank);
        let mut base = disk.fork();
        let mut recorder = WriteLog::new(disk);
        let op_failed = |source| ExploreError::Operation { op: options.op, source: Box::new(source) };
        let op_step = match options.op {
            Operation::Backup => {
                host.backup(&mut recorder, false).map_err(op_failed)?;
                serde_json::json!("backup")
            }
            Operation::Upgrade => {
                let new = new_image()?;
                host.upgrade(&mut recorder, &new).map_err(op_failed)?;
                new_build = Some(new.boot_cfg.build.clone());
                upgrade_step
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
        let states = crash_states(&log, base.sector_size().len(), &space(options));
        let base_verdicts = BankVerdicts::of(&mut base);
        Ok(Exploration {
            base,
            log,
            states,
            old_build,
            new_build,
            old_saved,
            new_saved,
            host_after: host.save(),
            boot: normal,
            seed,
            payload_mb,
            image: image_path,
            defaults_before,
            setup_steps,
            op_step,
            op: options.op,
            base_verdicts,
        })
    }

    /// The operation explored.
    pub fn op(&self) -> Operation {
        self.op
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
        visorsim_disk::apply_crash_state(&mut disk, &self.log, state)
            .map_err(|source| ExploreError::CrashState { id: state.id, source })?;
        Ok(disk)
    }

    /// The judge of this operation's (depth-1) crash states.
    fn judge(&self) -> Judge<'_> {
        let mut builds = vec![("old build", self.old_build.clone())];
        if let Some(new) = &self.new_build {
            builds.push(("new build", new.clone()));
        }
        Judge {
            base: &self.base,
            log: &self.log,
            base_verdicts: &self.base_verdicts,
            seed: self.seed,
            boot: &self.boot,
            depth: 1,
            parent: None,
            expected: Expected {
                builds,
                configs: vec![("new config", self.new_saved.clone()), ("old config", self.old_saved.clone())],
                defaults_before: self.defaults_before,
            },
            numbers: judge::write_numbers(&self.log),
        }
    }

    /// Judges one crash state with a shared module cache (`fsck`: also
    /// cross-check it with `fsck.fat -n`).
    pub fn check(&self, state: &CrashState, cache: &mut ModuleCache, fsck: bool) -> StateResult {
        self.judge().check(state, cache, fsck)
    }

    /// Every state of this shard, judged (in parallel on all cores), then,
    /// at depth 2, followed into the next operation.
    pub fn run(&self, options: &ExploreOptions) -> Vec<StateResult> {
        let mut results = self.run_counting(options, &AtomicUsize::new(0));
        if options.depth >= 2 {
            let (deeper, _) = self.follow(options, &mut results, &AtomicUsize::new(0));
            results.extend(deeper);
        }
        results
    }

    /// The number of crash states of this shard ([`Exploration::run_counting`] judges them).
    pub fn selected(&self, options: &ExploreOptions) -> usize {
        self.states.iter().filter(|s| in_shard(options, s)).count()
    }

    /// The depth-1 crash states of this shard, judged: each distinct content
    /// once (in parallel on all cores), a duplicate taking its twin's
    /// verdict. Adds 1 to `checked` per state (for a progress display).
    pub fn run_counting(&self, options: &ExploreOptions, checked: &AtomicUsize) -> Vec<StateResult> {
        let selected: Vec<&CrashState> = self.states.iter().filter(|s| in_shard(options, s)).collect();
        let keys = ContentKeys::new(&self.log, self.base.sector_size().len());
        self.judge().judge_all(&selected, &keys, options.fsck_every, checked)
    }

    /// Depth 2: follows distinct, non-violating depth-1 `results` into the
    /// next operation ([`Operation::next`]); marks each depth-1 result whose
    /// follow-through violates an invariant (`violation`, `cause`,
    /// `leads_to`) and returns the depth-2 results with what was followed.
    /// Adds 1 to `followed` per depth-1 state followed.
    pub fn follow(
        &self,
        options: &ExploreOptions,
        results: &mut [StateResult],
        followed: &AtomicUsize,
    ) -> (Vec<StateResult>, FollowSummary) {
        follow::follow(self, options, results, followed)
    }

    /// How many depth-1 states [`Exploration::follow`] would follow.
    pub fn to_follow(&self, options: &ExploreOptions, results: &[StateResult]) -> usize {
        follow::candidates(results).len().min(options.max_follow)
    }

    /// A scenario file reproducing the violation of `result` (at depth 2,
    /// through its parent), `None` for a result that is not a violation or
    /// whose states are unknown.
    pub fn reproducer(&self, result: &StateResult, results: &[StateResult]) -> Option<serde_json::Value> {
        reproduce::reproducer(self, result, results)
    }
}

/// Counts by outcome class, for the table.
pub fn tally(results: &[StateResult]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in results {
        *counts.entry(r.outcome.clone()).or_insert(0) += 1;
    }
    counts
}

/// Runs `work` over `items` on all cores (each thread taking the next item
/// as it finishes one), with a module cache per thread; the results come
/// back in `items`' order.
fn parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T, &mut ModuleCache) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut cache = ModuleCache::new(64);
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, work(item, &mut cache)));
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("explorer thread")).collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}
