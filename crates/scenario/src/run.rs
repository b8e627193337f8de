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
use std::path::Path;

use serde::Serialize;
use visorsim_boot::boot::{BootOptions, BootReport, ModuleCache, Outcome, ShiftR};
use visorsim_boot::safeboot::{state_name, Answer};
use visorsim_disk::{BitFlip, BlockDevice, FaultPlan, Faulty, FileDisk, MemDisk, SectorSize, Tearing};
use visorsim_host::clock::SimTime;
use visorsim_host::host::{bank_summaries, Host, HostBootOptions};
use visorsim_image::install::{install_fresh, InstallOptions};
use visorsim_image::payload::default_cache_dir;
use visorsim_image::system::{ImageFile, ImageSpec, PayloadSize, SystemImage};
use visorsim_media::fatread::FatReader;
use visorsim_media::layout::Layout;

use crate::model::{
    BootStep, CorruptStep, DiskSpec, Expect, FaultStep, FileRef, Scenario, ShiftRWhen, Step, UpgradeStep,
};

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

/// Why a scenario could not run at all (as opposed to failing an expectation).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RunError(pub String);

struct World {
    dev: Faulty<MemDisk>,
    host: Host,
    cache: ModuleCache,
    last_boot: Option<BootReport>,
    last_error: Option<String>,
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
            other => play(&mut world, other)?,
        };
        if world.dev.power_lost() {
            world.host.power_off();
            world.dev.restore_power();
        }
        let banks = bank_summaries(world.dev.inner_mut()).iter().map(|b| b.short()).collect::<Vec<_>>().join(" ");
        timeline.push(TimelineRow {
            step: n,
            time: world.host.clock.now().rfc3339(),
            what,
            result,
            banks,
            running: world.host.running.as_ref().map(|r| format!("BANK{} {}", r.bank, r.build)),
        });
    }
    Ok(RunResult { timeline, mismatches, host_events: world.host.timeline.clone() })
}

fn build_disk(spec: &DiskSpec, base: &Path) -> Result<MemDisk, RunError> {
    if let Some(image) = &spec.image {
        let path = base.join(image);
        let mut file = FileDisk::open_read_only(&path, SectorSize::S512)
            .map_err(|e| RunError(format!("{}: {e}", path.display())))?;
        return file.load().map_err(|e| RunError(format!("{}: {e}", path.display())));
    }
    let layout = Layout::from_name(&spec.layout)
        .ok_or_else(|| RunError(format!("disk.layout: unknown layout {:?} (esxi6 or esxi7)", spec.layout)))?;
    let size = match &spec.size {
        Some(s) => Some(parse_size(s).ok_or_else(|| RunError(format!("disk.size: {s:?} is not a size such as 16G")))?),
        None => None,
    };
    let image = system_image(spec, spec.build, spec.seed)?;
    let options = InstallOptions { layout, size, sector_size: SectorSize::S512, seed: spec.seed };
    install_fresh(&image, &options).map(|(d, _)| d).map_err(|e| RunError(format!("installing: {e}")))
}

fn system_image(spec: &DiskSpec, build: u32, seed: u64) -> Result<SystemImage, RunError> {
    let image_spec = ImageSpec {
        version: if spec.layout == "esxi7" { "7.0.3".into() } else { "6.7.0".into() },
        build_number: build,
        seed,
        payload: PayloadSize::Compressed((spec.payload_mb * 1_000_000.0) as u64),
        hostname: "localhost".into(),
    };
    SystemImage::build(&image_spec, default_cache_dir().as_deref(), &mut |_, _| {})
        .map_err(|e| RunError(format!("building build {build}: {e}")))
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'G' | 'g' => (&s[..s.len() - 1], 1u64 << 30),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
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
    let done = |r: Result<(), String>, w: &mut World| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            w.last_error = Some(e.clone());
            format!("failed: {e}")
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
            let r = w.host.set_hostname(name).map_err(|e| e.to_string());
            (format!("set hostname {name}"), done(r, w))
        }
        Step::Configure { key, value } => {
            let r = w.host.config_set(key, value).map_err(|e| e.to_string());
            (format!("configure {key}"), done(r, w))
        }
        Step::Password { user, password } => {
            let r = w.host.set_password(user, password).map_err(|e| e.to_string());
            (format!("password {user}"), done(r, w))
        }
        Step::Advance(d) => {
            let secs = SimTime::parse_duration(d).map_err(|e| RunError(format!("advance: {e}")))?;
            let before = w.host.timeline.len();
            w.host.advance(&mut w.dev, secs);
            let backups = w.host.timeline[before..].iter().filter(|e| e.kind == "backup").count();
            let alerts = w.host.timeline[before..].iter().filter(|e| e.kind == "alert").count();
            (format!("advance {d}"), format!("{backups} backup(s), {alerts} alert(s)"))
        }
        Step::Backup => {
            let r = w.host.backup(&mut w.dev, false).map_err(|e| e.to_string());
            ("backup.sh 0".into(), done(r, w))
        }
        Step::Upgrade(u) => {
            let image = upgrade_image(&w.spec, u)?;
            let r = w.host.upgrade(&mut w.dev, &image).map_err(|e| e.to_string());
            (format!("upgrade to build {}", u.build), done(r, w))
        }
        Step::Shutdown => {
            let r = w.host.shutdown(&mut w.dev).map_err(|e| e.to_string());
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
    let mut image = system_image(spec, u.build, u.seed.unwrap_or(u64::from(u.build)))?;
    if let Some(name) = &u.broken {
        let file = image
            .files
            .iter_mut()
            .find(|f| &f.name == name)
            .ok_or_else(|| RunError(format!("upgrade.broken: the image has no module {name}")))?;
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

/// The LBAs of a bank file's clusters, read from the medium.
fn file_sectors(dev: &mut MemDisk, f: &FileRef) -> Result<Vec<u64>, RunError> {
    let volumes = visorsim_boot::volume::scan_volumes(dev).volumes;
    let v =
        volumes.iter().find(|v| v.number == f.bank).ok_or_else(|| RunError(format!("bank {} not found", f.bank)))?;
    let reader = FatReader::open(dev, v.first_lba, v.sectors).map_err(|e| RunError(e.to_string()))?;
    let file = reader
        .find(dev, &f.file)
        .map_err(|e| RunError(e.to_string()))?
        .ok_or_else(|| RunError(format!("{} not found in bank {}", f.file, f.bank)))?;
    let runs = reader.runs(dev, &file).map_err(|e| RunError(e.to_string()))?;
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
        let sectors: BTreeSet<u64> = file_sectors(w.dev.inner_mut(), file)?.into_iter().collect();
        armed.push(format!("{} unreadable ({} sectors)", file.file, sectors.len()));
        w.dev.plan_mut().bad_sectors.extend(sectors);
    }
    if let Some(file) = &f.bit_rot {
        let sectors = file_sectors(w.dev.inner_mut(), file)?;
        let lba = sectors[sectors.len() / 2];
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
    if let Some(fill) = &c.fill {
        let data = vec![fill.byte; ss * fill.count as usize];
        dev.write_sectors(fill.lba, &data).map_err(|e| RunError(e.to_string()))?;
        return Ok((format!("fill LBA {}+{}", fill.lba, fill.count), format!("0x{:02x}", fill.byte)));
    }
    if let Some(lba) = c.lba {
        let mut sector = vec![0u8; ss];
        dev.read_sectors(lba, &mut sector).map_err(|e| RunError(e.to_string()))?;
        let at = c.offset.unwrap_or(0) as usize % ss;
        sector[at] ^= 0xFF;
        dev.write_sectors(lba, &sector).map_err(|e| RunError(e.to_string()))?;
        return Ok((format!("corrupt LBA {lba}"), "byte flipped".into()));
    }
    let Some(f) = &c.file else { return Err(RunError("corrupt: give `file` or `lba`".into())) };
    let volumes = visorsim_boot::volume::scan_volumes(dev).volumes;
    let v =
        volumes.iter().find(|v| v.number == f.bank).ok_or_else(|| RunError(format!("bank {} not found", f.bank)))?;
    let mut location =
        visorsim_host::bank::BankLocation::Partition { number: f.bank, first_lba: v.first_lba, sectors: v.sectors };
    if c.delete {
        visorsim_host::bank::remove(dev, &mut location, &f.file).map_err(|e| RunError(e.to_string()))?;
        return Ok((format!("delete {}", f.file), "ok".into()));
    }
    let mut data = visorsim_host::bank::read(dev, &location, &f.file, 1 << 30)
        .map_err(|e| RunError(format!("{}: {e}", f.file)))?;
    if let Some(len) = c.truncate_to {
        data.truncate(len as usize);
    } else if !data.is_empty() {
        let at = c.offset.map_or(data.len() / 2, |o| o as usize % data.len());
        data[at] ^= 0xFF;
    }
    visorsim_host::bank::write(dev, &mut location, &f.file, &data).map_err(|e| RunError(e.to_string()))?;
    Ok((format!("corrupt {}/{}", f.bank, f.file), "ok".into()))
}

fn check(w: &mut World, e: &Expect, step: usize) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut mismatch = |what: &str, expected: String, actual: String| {
        out.push(Mismatch { step, what: what.to_owned(), expected, actual });
    };
    let running = w.host.running.as_ref();
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
    if let Some(outcome) = &e.outcome {
        let actual = w.last_boot.as_ref().map(|b| match b.outcome {
            Outcome::Booted => "booted",
            Outcome::NoHypervisor => "no_hypervisor",
            Outcome::LoadFailed { .. } => "load_failed",
            Outcome::ChainloadFailed => "chainload_failed",
        });
        if actual != Some(outcome.as_str()) {
            mismatch("outcome", outcome.clone(), format!("{actual:?}"));
        }
    }
    if !e.bank_states.is_empty() {
        let banks = bank_summaries(w.dev.inner_mut());
        for (bank, want) in &e.bank_states {
            let actual = banks
                .iter()
                .find(|b| b.number.to_string() == *bank)
                .map(|b| b.bootstate.map_or("empty".to_owned(), |s| state_name(s).to_lowercase()))
                .unwrap_or_else(|| "missing".into());
            if actual != want.to_lowercase() {
                mismatch(&format!("bank {bank} state"), want.clone(), actual);
            }
        }
    }
    let lookup =
        |host: &Host, key: &str| if key == "hostname" { host.etc.hostname() } else { host.etc.esx_conf_get(key) };
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
        if !w.host.timeline.iter().any(|ev| ev.text.contains(text.as_str())) {
            mismatch("timeline_contains", text.clone(), "not in the host's timeline".into());
        }
    }
    if let Some(text) = &e.error_contains {
        match &w.last_error {
            Some(err) if err.contains(text.as_str()) => {}
            other => mismatch("error_contains", text.clone(), format!("{other:?}")),
        }
    }
    if let Some(ok) = e.step_ok {
        if ok != w.last_error.is_none() {
            mismatch("step_ok", ok.to_string(), format!("{:?}", w.last_error));
        }
    }
    out
}
