//! The scenario runner: builds the disk, plays the steps on a host over the
//! fault layer, checks expectations, and records a readable timeline.
//!
//! ```text
//!   MemDisk (fresh install or imported image)
//!     └─ Faulty (armed by `fault` steps; a power cut powers the host off)
//!          └─ Host (boot, configure, advance, backup, upgrade, reboot...)
//! ```
//!
//! Expectations look at the medium itself (below the faults) and at the
//! host; a mismatch names the step, what was expected and what was found.

use std::collections::BTreeSet;
use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use visorsim_boot::boot::{BootOptions, BootReport, ModuleCache, Outcome, ShiftR};
use visorsim_boot::safeboot::Answer;
use visorsim_disk::{BitFlip, BlockDevice, FaultPlan, Faulty, FileDisk, MemDisk, SectorSize, Tearing};
use visorsim_host::bank::Bank;
use visorsim_host::clock::SimTime;
use visorsim_host::host::{bank_summaries, EventKind, Host, HostBootOptions, HostError, HostErrorKind};
use visorsim_image::install::{install_fresh, InstallOptions};
use visorsim_image::payload::default_cache_dir;
use visorsim_image::system::{ImageFile, ImageSpec, PayloadSize, SystemImage};
use visorsim_media::fatread::FatReader;

use crate::model::{
    BankStateName, BootOutcome, BootStep, CorruptStep, DiskSpec, Expect, FaultStep, FileRef, Scenario, ShiftRWhen,
    Step, StepErrorKind, UpgradeStep,
};
use crate::size::parse_size;

/// One line of the timeline.
#[derive(Clone, Debug, Serialize)]
pub struct TimelineRow {
    /// Step number (1-based).
    pub step: usize,
    /// Simulated time.
    pub time: String,
    /// What the step was.
    pub what: String,
    /// What happened.
    pub result: String,
    /// Both banks, e.g. `5:VALID/1 6:UPGRADING/2`.
    pub banks: String,
    /// The running build, if any.
    pub running: Option<String>,
}

/// An unmet expectation.
#[derive(Clone, Debug, Serialize)]
pub struct Mismatch {
    /// Step number (1-based).
    pub step: usize,
    /// What was checked.
    pub what: String,
    /// Expected.
    pub expected: String,
    /// Found.
    pub actual: String,
}

/// The result of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// The timeline.
    pub timeline: Vec<TimelineRow>,
    /// Unmet expectations (empty: the scenario passed).
    pub mismatches: Vec<Mismatch>,
    /// The host's own event log.
    pub host_events: Vec<visorsim_host::host::Event>,
}

impl RunResult {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }

    /// The timeline and mismatches as text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for r in &self.timeline {
            s.push_str(&format!(
                "{:>3} {}  {:<34} {:<44} {:<30} {}\n",
                r.step,
                &r.time[11..19],
                r.what,
                r.result,
                r.banks,
                r.running.as_deref().unwrap_or("-")
            ));
        }
        for m in &self.mismatches {
            s.push_str(&format!("step {}: {}: expected {}, found {}\n", m.step, m.what, m.expected, m.actual));
        }
        s
    }
}

/// What a [`RunError`] is about, for callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunErrorKind {
    /// The starting disk cannot be built (`disk.size`, the install).
    Disk,
    /// A system image cannot be built (payload generation or its cache), or
    /// has no module the step names (`upgrade.broken`).
    Image,
    /// A step is invalid as written (a duration, a `corrupt` without target).
    Step,
    /// A `fault` step's target (a bank's file) is not on the medium.
    Fault,
    /// A `corrupt` step's target is not on the medium, or cannot be read or
    /// written.
    Corrupt,
    /// The raw image named by `disk.image` cannot be read.
    Io,
}

/// Why a scenario could not run at all (as opposed to failing an
/// expectation): a kind to match on, where it happened (the step, the
/// scenario field, the image file, the bank, the file, the LBA) and the
/// cause.
///
/// The message (`Display`) already includes the cause's own message;
/// [`Error::source`] gives the cause itself, to match on or downcast.
#[derive(Debug)]
pub struct RunError {
    // Boxed: a `Result<_, RunError>` stays one pointer wide on the error side.
    inner: Box<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: RunErrorKind,
    step: Option<usize>,
    field: &'static str,
    path: Option<PathBuf>,
    bank: Option<u32>,
    file: Option<String>,
    lba: Option<u64>,
    message: String,
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
}

impl RunError {
    fn new(kind: RunErrorKind, field: &'static str, message: impl Into<String>) -> RunError {
        let inner = Inner {
            kind,
            step: None,
            field,
            path: None,
            bank: None,
            file: None,
            lba: None,
            message: message.into(),
            source: None,
        };
        RunError { inner: Box::new(inner) }
    }

    /// `message: cause` (the cause and its own causes), for errors whose
    /// cause does not say where it happened on its own.
    fn caused(
        kind: RunErrorKind,
        field: &'static str,
        message: String,
        source: impl Error + Send + Sync + 'static,
    ) -> RunError {
        let mut text = message;
        let mut next: Option<&(dyn Error + 'static)> = Some(&source);
        while let Some(e) = next {
            let part = e.to_string();
            if !text.ends_with(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            next = e.source();
        }
        RunError::new(kind, field, text).with_source(source)
    }

    fn with_source(mut self, source: impl Error + Send + Sync + 'static) -> RunError {
        self.inner.source = Some(Box::new(source));
        self
    }

    fn with_path(mut self, path: &Path) -> RunError {
        self.inner.path = Some(path.to_owned());
        self
    }

    fn with_bank(mut self, bank: u32) -> RunError {
        self.inner.bank = Some(bank);
        self
    }

    fn with_file(mut self, file: &str) -> RunError {
        self.inner.file = Some(file.to_owned());
        self
    }

    fn with_lba(mut self, lba: u64) -> RunError {
        self.inner.lba = Some(lba);
        self
    }

    fn at_step(mut self, step: usize) -> RunError {
        self.inner.step = Some(step);
        self
    }

    /// What the error is about.
    pub fn kind(&self) -> RunErrorKind {
        self.inner.kind
    }

    /// The step (1-based) that failed; `None` while building the disk.
    pub fn step(&self) -> Option<usize> {
        self.inner.step
    }

    /// The scenario field that led to it: `disk.image`, `disk.size`, `disk`,
    /// `advance`, `upgrade`, `upgrade.broken`, `fault.bad_file`,
    /// `fault.bit_rot` or `corrupt`.
    pub fn field(&self) -> &'static str {
        self.inner.field
    }

    /// The image file (`disk.image`), resolved against the scenario's directory.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The bank (partition number).
    pub fn bank(&self) -> Option<u32> {
        self.inner.bank
    }

    /// The file of the bank, or the module of the image.
    pub fn file(&self) -> Option<&str> {
        self.inner.file.as_deref()
    }

    /// The LBA on the medium.
    pub fn lba(&self) -> Option<u64> {
        self.inner.lba
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl Error for RunError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.inner.source.as_deref().map(|e| e as _)
    }
}

/// How the last step failed (for `error_contains`, `error_kind`, `step_ok`).
struct StepFailure {
    kind: StepErrorKind,
    message: String,
}

/// The kind of a host step's error, as scenario files name it.
fn step_error_kind(e: &HostError) -> StepErrorKind {
    match e.kind() {
        HostErrorKind::NotRunning => StepErrorKind::NotRunning,
        HostErrorKind::BootbankMissing => StepErrorKind::BootbankMissing,
        HostErrorKind::ExtractFailed => StepErrorKind::ExtractFailed,
        HostErrorKind::SaveFailed => StepErrorKind::SaveFailed,
        HostErrorKind::NoAltBank => StepErrorKind::NoAltBank,
        HostErrorKind::UpgradeTooLarge => StepErrorKind::UpgradeTooLarge,
        HostErrorKind::UpgradeNoSpace => StepErrorKind::UpgradeNoSpace,
        HostErrorKind::UpgradeIo => StepErrorKind::UpgradeIo,
        HostErrorKind::Config => StepErrorKind::Config,
    }
}

struct World {
    dev: Faulty<MemDisk>,
    host: Host,
    cache: ModuleCache,
    last_boot: Option<BootReport>,
    last_error: Option<StepFailure>,
    spec: DiskSpec,
}

/// Runs a scenario. `base` is the directory relative image paths start from.
pub fn run(scenario: &Scenario, base: &Path) -> Result<RunResult, RunError> {
    let disk = build_disk(&scenario.disk, base)?;
    let mut world = World {
        dev: Faulty::new(disk, FaultPlan { seed: scenario.disk.seed, ..FaultPlan::default() }),
        host: Host::new(scenario.disk.seed, SimTime::default()),
        cache: ModuleCache::new(64),
        last_boot: None,
        last_error: None,
        spec: scenario.disk.clone(),
    };
    let mut timeline = Vec::new();
    let mut mismatches = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        let n = i + 1;
        let (what, result) = match step {
            Step::Expect(expect) => {
                let found = check(&mut world, expect, n);
                let result = if found.is_empty() { "ok".to_owned() } else { format!("{} mismatch(es)", found.len()) };
                mismatches.extend(found);
                ("expect".to_owned(), result)
            }
            other => play(&mut world, other).map_err(|e| e.at_step(n))?,
        };
        if world.dev.power_lost() {
            world.host.power_off();
            world.dev.restore_power();
        }
        let banks = bank_summaries(world.dev.inner_mut()).iter().map(|b| b.short()).collect::<Vec<_>>().join(" ");
        timeline.push(TimelineRow {
            step: n,
            time: world.host.now().rfc3339(),
            what,
            result,
            banks,
            running: world.host.running().map(|r| format!("BANK{} {}", r.bank, r.build)),
        });
    }
    Ok(RunResult { timeline, mismatches, host_events: world.host.timeline().to_vec() })
}

fn build_disk(spec: &DiskSpec, base: &Path) -> Result<MemDisk, RunError> {
    if let Some(image) = &spec.image {
        let path = base.join(image);
        let unreadable = |e: &dyn fmt::Display| {
            RunError::new(RunErrorKind::Io, "disk.image", format!("{}: {e}", path.display())).with_path(&path)
        };
        let mut file = FileDisk::open_read_only(&path, SectorSize::S512).map_err(|e| unreadable(&e).with_source(e))?;
        return file.load().map_err(|e| {
            let lba = e.lba();
            unreadable(&e).with_lba(lba).with_source(e)
        });
    }
    let size = match &spec.size {
        Some(s) => Some(parse_size(s).map_err(|e| {
            RunError::new(RunErrorKind::Disk, "disk.size", format!("disk.size: {s:?} is not a size such as 16G"))
                .with_source(e)
        })?),
        None => None,
    };
    let image = system_image(spec, spec.build, spec.seed, "disk")?;
    let options = InstallOptions { layout: spec.layout.layout(), size, sector_size: SectorSize::S512, seed: spec.seed };
    install_fresh(&image, &options)
        .map(|(d, _)| d)
        .map_err(|e| RunError::new(RunErrorKind::Disk, "disk", format!("installing: {e}")).with_source(e))
}

fn system_image(spec: &DiskSpec, build: u32, seed: u64, field: &'static str) -> Result<SystemImage, RunError> {
    let image_spec = ImageSpec {
        version: spec.layout.version().into(),
        build_number: build,
        seed,
        payload: PayloadSize::Compressed((spec.payload_mb * 1_000_000.0) as u64),
        hostname: "localhost".into(),
    };
    SystemImage::build(&image_spec, default_cache_dir().as_deref(), &mut |_, _| {})
        .map_err(|e| RunError::new(RunErrorKind::Image, field, format!("building build {build}: {e}")).with_source(e))
}

fn boot_options(b: &BootStep) -> HostBootOptions {
    let answer = if b.answer_no { Answer::No } else { Answer::Yes };
    HostBootOptions {
        loader: BootOptions {
            shift_r: match b.shift_r {
                None => ShiftR::None,
                Some(ShiftRWhen::Safeboot) => ShiftR::AtSafeboot(answer),
                Some(ShiftRWhen::Mboot) => ShiftR::InMboot(answer),
            },
            fake_write_error: b.fake_write_error,
            ..Default::default()
        },
        device_claimed_late: b.device_late,
        crash_before_confirm: b.crash_before_confirm,
    }
}

fn boot_summary(report: &BootReport) -> String {
    match &report.outcome {
        Outcome::Booted => format!("booted BANK{}", report.selected.unwrap_or(0)),
        Outcome::NoHypervisor => "No hypervisor found.".to_owned(),
        Outcome::ChainloadFailed => format!("Failed to chainload BANK{}.", report.selected.unwrap_or(0)),
        Outcome::LoadFailed { status, module } => format!("Fatal error: {status} {}", module.as_deref().unwrap_or("")),
    }
}

fn play(w: &mut World, step: &Step) -> Result<(String, String), RunError> {
    w.last_error = None;
    let done = |r: Result<(), HostError>, w: &mut World| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            let result = format!("failed: {e}");
            w.last_error = Some(StepFailure { kind: step_error_kind(&e), message: e.to_string() });
            result
        }
    };
    Ok(match step {
        Step::Boot(b) => {
            let report = w.host.boot(&mut w.dev, &boot_options(b), Some(&mut w.cache));
            let text = boot_summary(&report);
            w.last_boot = Some(report);
            ("boot".into(), text)
        }
        Step::Reboot(b) => {
            let report = w.host.reboot(&mut w.dev, &boot_options(b), Some(&mut w.cache));
            let text = boot_summary(&report);
            w.last_boot = Some(report);
            ("reboot".into(), text)
        }
        Step::SetHostname(name) => {
            let r = w.host.set_hostname(name);
            (format!("set hostname {name}"), done(r, w))
        }
        Step::Configure { key, value } => {
            let r = w.host.config_set(key, value);
            (format!("configure {key}"), done(r, w))
        }
        Step::Password { user, password } => {
            let r = w.host.set_password(user, password);
            (format!("password {user}"), done(r, w))
        }
        Step::Advance(d) => {
            let secs = SimTime::parse_duration(d)
                .map_err(|e| RunError::new(RunErrorKind::Step, "advance", format!("advance: {e}")).with_source(e))?;
            let before = w.host.timeline().len();
            w.host.advance(&mut w.dev, secs);
            let backups = w.host.timeline()[before..].iter().filter(|e| e.kind == EventKind::Backup).count();
            let alerts = w.host.timeline()[before..].iter().filter(|e| e.kind == EventKind::Alert).count();
            (format!("advance {d}"), format!("{backups} backup(s), {alerts} alert(s)"))
        }
        Step::Backup => {
            let r = w.host.backup(&mut w.dev, false);
            ("backup.sh 0".into(), done(r, w))
        }
        Step::Upgrade(u) => {
            let image = upgrade_image(&w.spec, u)?;
            let r = w.host.upgrade(&mut w.dev, &image);
            (format!("upgrade to build {}", u.build), done(r, w))
        }
        Step::Shutdown => {
            let r = w.host.shutdown(&mut w.dev);
            ("shutdown".into(), done(r, w))
        }
        Step::PowerCut => {
            w.dev.cut_power();
            ("power cut".into(), "host off".into())
        }
        Step::LoseDevice => {
            let ios = w.dev.ios();
            w.dev.plan_mut().gone_after_ios = Some(ios);
            w.host.lose_boot_device();
            ("boot device lost".into(), "every I/O fails from now on".into())
        }
        Step::RestoreDevice => {
            w.dev.plan_mut().gone_after_ios = None;
            ("boot device back".into(), "ok".into())
        }
        Step::Fault(f) => arm(w, f)?,
        Step::Corrupt(c) => corrupt(w, c)?,
        Step::Expect(_) => unreachable!("handled by run"),
    })
}

fn upgrade_image(spec: &DiskSpec, u: &UpgradeStep) -> Result<SystemImage, RunError> {
    let mut image = system_image(spec, u.build, u.seed.unwrap_or(u64::from(u.build)), "upgrade")?;
    if let Some(name) = &u.broken {
        let file = image.files.iter_mut().find(|f| &f.name == name).ok_or_else(|| {
            RunError::new(
                RunErrorKind::Image,
                "upgrade.broken",
                format!("upgrade.broken: the image has no module {name}"),
            )
            .with_file(name)
        })?;
        let n = file.data.len();
        file.data[n / 2] ^= 0xFF;
        file.data[n - 8] ^= 0xFF;
    }
    if u.extra_mb > 0 {
        let bytes = (u.extra_mb * 1_000_000) as usize;
        image.files.push(ImageFile { name: "tools.t00".into(), data: vec![0x5A; bytes] });
        image.boot_cfg.modules.insert(image.boot_cfg.modules.len() - 1, "tools.t00".into());
    }
    Ok(image)
}

/// The LBAs of a bank file's clusters, read from the medium (for the
/// `fault` field `field`).
fn file_sectors(dev: &mut MemDisk, f: &FileRef, field: &'static str) -> Result<Vec<u64>, RunError> {
    let fault = |message: String| RunError::new(RunErrorKind::Fault, field, message).with_bank(f.bank);
    let unreadable = |e| {
        RunError::caused(RunErrorKind::Fault, field, format!("{field}: bank {}: {}", f.bank, f.file), e)
            .with_bank(f.bank)
            .with_file(&f.file)
    };
    let volumes = visorsim_boot::volume::scan_volumes(dev).volumes;
    let v = volumes.iter().find(|v| v.number == f.bank).ok_or_else(|| fault(format!("bank {} not found", f.bank)))?;
    let reader = FatReader::open(dev, v.first_lba, v.sectors).map_err(unreadable)?;
    let file = reader
        .find(dev, &f.file)
        .map_err(unreadable)?
        .ok_or_else(|| fault(format!("{} not found in bank {}", f.file, f.bank)).with_file(&f.file))?;
    let runs = reader.runs(dev, &file).map_err(unreadable)?;
    Ok(runs.iter().flat_map(|r| r.lba..r.lba + r.sectors).collect())
}

fn arm(w: &mut World, f: &FaultStep) -> Result<(String, String), RunError> {
    let mut armed = Vec::new();
    if f.clear {
        let seed = w.dev.plan_mut().seed;
        *w.dev.plan_mut() = FaultPlan { seed, ..FaultPlan::default() };
        armed.push("cleared".to_owned());
    }
    if let Some(n) = f.power_cut_after_writes {
        let writes = w.dev.writes();
        w.dev.plan_mut().power_cut_after_writes = Some(writes + n);
        armed.push(format!("power cut after {n} more write(s)"));
    }
    if let Some(k) = f.torn_sectors {
        w.dev.plan_mut().torn_last_write = Some(Tearing::Prefix { sectors: k });
        armed.push(format!("last write torn after {k} sector(s)"));
    }
    if let Some(r) = f.volatile_cache_reorder {
        w.dev.plan_mut().volatile_cache =
            Some(visorsim_disk::CacheModel { max_reorder: r, drop_probability_percent: 50 });
        armed.push(format!("volatile cache (reorder {r})"));
    }
    if !f.bad_sectors.is_empty() {
        w.dev.plan_mut().bad_sectors.extend(f.bad_sectors.iter().copied());
        armed.push(format!("{} bad sector(s)", f.bad_sectors.len()));
    }
    if let Some(file) = &f.bad_file {
        let sectors: BTreeSet<u64> = file_sectors(w.dev.inner_mut(), file, "fault.bad_file")?.into_iter().collect();
        armed.push(format!("{} unreadable ({} sectors)", file.file, sectors.len()));
        w.dev.plan_mut().bad_sectors.extend(sectors);
    }
    if let Some(file) = &f.bit_rot {
        let sectors = file_sectors(w.dev.inner_mut(), file, "fault.bit_rot")?;
        let Some(&lba) = sectors.get(sectors.len() / 2) else {
            let message = format!("fault.bit_rot: bank {}: {} has no data to rot", file.bank, file.file);
            return Err(RunError::new(RunErrorKind::Fault, "fault.bit_rot", message)
                .with_bank(file.bank)
                .with_file(&file.file));
        };
        w.dev.plan_mut().bit_flips.push(BitFlip { lba, byte: 100, bit: 3 });
        armed.push(format!("bit rot in {}", file.file));
    }
    if let Some(ro) = f.read_only {
        w.dev.plan_mut().read_only = ro;
        armed.push(if ro { "read-only medium".into() } else { "writable medium".into() });
    }
    if let Some(n) = f.full_after_sectors {
        w.dev.plan_mut().full_after_sectors = Some(n);
        armed.push(format!("device full after {n} new sector(s)"));
    }
    Ok(("fault".into(), armed.join(", ")))
}

fn corrupt(w: &mut World, c: &CorruptStep) -> Result<(String, String), RunError> {
    let dev = w.dev.inner_mut();
    let ss = dev.sector_size().len();
    let sectors_error = |what: String, lba: u64, e| {
        RunError::caused(RunErrorKind::Corrupt, "corrupt", format!("corrupt: {what}"), e).with_lba(lba)
    };
    if let Some(fill) = &c.fill {
        let what = format!("fill LBA {}+{}", fill.lba, fill.count);
        let end = fill.lba.checked_add(fill.count);
        if end.is_none_or(|end| end > dev.sector_count()) {
            let message = format!("corrupt: {what}: past the end of the disk ({} sectors)", dev.sector_count());
            return Err(RunError::new(RunErrorKind::Corrupt, "corrupt", message).with_lba(fill.lba));
        }
        let data = vec![fill.byte; ss * fill.count as usize];
        dev.write_sectors(fill.lba, &data).map_err(|e| sectors_error(what, fill.lba, e))?;
        return Ok((format!("fill LBA {}+{}", fill.lba, fill.count), format!("0x{:02x}", fill.byte)));
    }
    if let Some(lba) = c.lba {
        let mut sector = vec![0u8; ss];
        dev.read_sectors(lba, &mut sector).map_err(|e| sectors_error(format!("LBA {lba}"), lba, e))?;
        let at = c.offset.unwrap_or(0) as usize % ss;
        sector[at] ^= 0xFF;
        dev.write_sectors(lba, &sector).map_err(|e| sectors_error(format!("LBA {lba}"), lba, e))?;
        return Ok((format!("corrupt LBA {lba}"), "byte flipped".into()));
    }
    let Some(f) = &c.file else {
        return Err(RunError::new(RunErrorKind::Step, "corrupt", "corrupt: give `file` or `lba`"));
    };
    let file_error = |e| {
        RunError::caused(RunErrorKind::Corrupt, "corrupt", format!("corrupt: bank {}: {}", f.bank, f.file), e)
            .with_bank(f.bank)
            .with_file(&f.file)
    };
    let volumes = visorsim_boot::volume::scan_volumes(dev).volumes;
    let v = volumes.iter().find(|v| v.number == f.bank).ok_or_else(|| {
        RunError::new(RunErrorKind::Corrupt, "corrupt", format!("bank {} not found", f.bank)).with_bank(f.bank)
    })?;
    let mut location = visorsim_host::bank::BankLocation::fat(f.bank, v.first_lba, v.sectors);
    if c.delete {
        location.remove(dev, &f.file).map_err(file_error)?;
        return Ok((format!("delete {}", f.file), "ok".into()));
    }
    let mut data = location.read(dev, &f.file, 1 << 30).map_err(|e| {
        RunError::new(RunErrorKind::Corrupt, "corrupt", format!("{}: {e}", f.file))
            .with_bank(f.bank)
            .with_file(&f.file)
            .with_source(e)
    })?;
    if let Some(len) = c.truncate_to {
        data.truncate(len as usize);
    } else if !data.is_empty() {
        let at = c.offset.map_or(data.len() / 2, |o| o as usize % data.len());
        data[at] ^= 0xFF;
    }
    location.write(dev, &f.file, &data).map_err(file_error)?;
    Ok((format!("corrupt {}/{}", f.bank, f.file), "ok".into()))
}

fn check(w: &mut World, e: &Expect, step: usize) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut mismatch = |what: &str, expected: String, actual: String| {
        out.push(Mismatch { step, what: what.to_owned(), expected, actual });
    };
    let running = w.host.running();
    if let Some(r) = e.running {
        if r != running.is_some() {
            mismatch("running", r.to_string(), running.is_some().to_string());
        }
    }
    if let Some(bank) = e.booted_bank {
        let actual = w.last_boot.as_ref().and_then(|b| b.selected);
        if actual != Some(bank) {
            mismatch("booted_bank", bank.to_string(), format!("{actual:?}"));
        }
    }
    if let Some(build) = &e.booted_build {
        let actual = running.map(|r| r.build.clone());
        if actual.as_deref() != Some(build.as_str()) {
            mismatch("booted_build", build.clone(), format!("{actual:?}"));
        }
    }
    if let Some(outcome) = e.outcome {
        let actual = w.last_boot.as_ref().map(|b| BootOutcome::of(&b.outcome));
        if actual != Some(outcome) {
            mismatch("outcome", outcome.name().to_owned(), format!("{:?}", actual.map(BootOutcome::name)));
        }
    }
    if !e.bank_states.is_empty() {
        let banks = bank_summaries(w.dev.inner_mut());
        for (bank, &want) in &e.bank_states {
            let actual = banks
                .iter()
                .find(|b| b.number.to_string() == *bank)
                .map_or(BankStateName::Missing, |b| BankStateName::of_bootstate(b.bootstate));
            if actual != want {
                mismatch(&format!("bank {bank} state"), want.name().to_owned(), actual.name().to_owned());
            }
        }
    }
    let lookup =
        |host: &Host, key: &str| if key == "hostname" { host.etc().hostname() } else { host.etc().esx_conf_get(key) };
    for (key, want) in &e.config {
        let actual = lookup(&w.host, key);
        if actual.as_deref() != Some(want.as_str()) {
            mismatch(&format!("config {key}"), want.clone(), format!("{actual:?}"));
        }
    }
    for (key, not) in &e.config_absent {
        let actual = lookup(&w.host, key);
        if actual.as_deref() == Some(not.as_str()) {
            mismatch(&format!("config {key} absent"), format!("anything but {not:?}"), format!("{actual:?}"));
        }
    }
    for text in &e.log_contains {
        let found = w.last_boot.as_ref().is_some_and(|b| b.log.iter().any(|l| l.text.contains(text.as_str())));
        if !found {
            mismatch("log_contains", text.clone(), "not in the last boot's log".into());
        }
    }
    for text in &e.timeline_contains {
        if !w.host.timeline().iter().any(|ev| ev.text.contains(text.as_str())) {
            mismatch("timeline_contains", text.clone(), "not in the host's timeline".into());
        }
    }
    let last_error = w.last_error.as_ref().map(|f| &f.message);
    if let Some(text) = &e.error_contains {
        match last_error {
            Some(err) if err.contains(text.as_str()) => {}
            other => mismatch("error_contains", text.clone(), format!("{other:?}")),
        }
    }
    if let Some(kind) = e.error_kind {
        let actual = w.last_error.as_ref().map(|f| f.kind);
        if !actual.is_some_and(|actual| kind.matches(actual)) {
            let found = match &w.last_error {
                Some(f) => format!("{} ({:?})", f.kind.name(), f.message),
                None => "no error".to_owned(),
            };
            mismatch("error_kind", kind.name().to_owned(), found);
        }
    }
    if let Some(ok) = e.step_ok {
        if ok != w.last_error.is_none() {
            mismatch("step_ok", ok.to_string(), format!("{last_error:?}"));
        }
    }
    out
}
