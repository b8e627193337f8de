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
//!
//! ```text
//!   mod.rs     run(): the world (disk, faults, host, cache), the timeline
//!   steps.rs   host steps: boot, configure, advance, backup, upgrade...
//!   faults.rs  `fault` and `corrupt` steps: arming the fault layer, damaging the medium
//!   medium.rs  the fault layer, watched: which cached writes a power cut lost, and where
//!   expect.rs  `expect` steps: what is checked and how a mismatch reads
//!   error.rs   RunError: why a scenario could not run at all
//! ```

mod error;
mod expect;
mod faults;
mod medium;
mod steps;

use std::fmt;
use std::path::Path;

use serde::Serialize;
use visorsim_boot::boot::{BootReport, ModuleCache};
use visorsim_disk::{FaultPlan, Faulty, MemDisk, SectorSize};
use visorsim_host::clock::SimTime;
use visorsim_host::host::{bank_summaries, Host};
use visorsim_image::install::{install_fresh, InstallOptions};
use visorsim_image::payload::default_cache_dir;
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};

use crate::input::{ImageInput, InputError};
use crate::model::{DiskSpec, Scenario, Step, StepErrorKind};
use crate::size::parse_size;

pub use error::{RunError, RunErrorKind};
use expect::check;
use medium::Medium;
use steps::play;

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

/// How the last step failed (for `error_contains`, `error_kind`, `step_ok`).
struct StepFailure {
    kind: StepErrorKind,
    message: String,
}

struct World {
    dev: Medium,
    host: Host,
    cache: ModuleCache,
    last_boot: Option<BootReport>,
    last_error: Option<StepFailure>,
    spec: DiskSpec,
}

/// Runs a scenario. `base` is the directory relative image paths start from.
pub fn run(scenario: &Scenario, base: &Path) -> Result<RunResult, RunError> {
    let disk = build_disk(&scenario.disk, base)?;
    let fault_seed = scenario.faults.seed.unwrap_or(scenario.disk.seed);
    let mut world = World {
        dev: Medium::new(Faulty::new(disk, FaultPlan { seed: fault_seed, ..FaultPlan::default() })),
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
        let (what, mut result) = match step {
            Step::Expect(expect) => {
                let found = check(&mut world, expect, n);
                let result = if found.is_empty() { "ok".to_owned() } else { format!("{} mismatch(es)", found.len()) };
                mismatches.extend(found);
                ("expect".to_owned(), result)
            }
            other => play(&mut world, other).map_err(|e| e.at_step(n))?,
        };
        // The write cache's choices at a cut this step caused, in the step's row.
        if let Some(cut) = world.dev.take_cut() {
            result = format!("{result}; {cut}");
        }
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
        // Any format (vmdk/qcow2/vhdx through a sparse raw temporary), read
        // by data extents: a mostly empty 8 GiB image loads in its data's time.
        let input = ImageInput::open(&path).map_err(|e| unreadable(&e).with_source(e))?;
        // The sector size from where the GPT header lies, as every command
        // finds it (512 when the bytes do not tell): a 4Kn image loads as one.
        let sector_size = std::fs::File::open(input.raw_path())
            .and_then(|mut f| visorsim_media::sector::detect_sector_size(&mut f))
            .ok()
            .flatten()
            .unwrap_or_default();
        return input.load(sector_size).map_err(|e| {
            let lba = match &e {
                InputError::Disk { source, .. } => source.lba(),
                _ => 0,
            };
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
