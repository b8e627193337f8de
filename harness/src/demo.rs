//! `visorsim demo`: a narrated life of an ESXi host on a realistic disk.
//!
//! install → boot → set the host name → the hourly auto-backup saves it →
//! upgrade → the trial boot, confirmed → upgrade again with a broken
//! `s.v00` → the trial fails, the next boot rolls back by itself → Shift+R,
//! refused because only one level of rollback exists. Each step prints a
//! line of the timeline: simulated time, what happened, both banks' states
//! and the build that runs.

use std::path::PathBuf;

use clap::Args;
use visorsim_boot::boot::{BootOptions, BootReport, ModuleCache, ShiftR};
use visorsim_boot::safeboot::Answer;
use visorsim_disk::{BlockDevice, FileDisk, SectorSize};
use visorsim_host::clock::SimTime;
use visorsim_host::host::{bank_summaries, Host, HostBootOptions};
use visorsim_image::install::{install_fresh, InstallOptions};
use visorsim_image::payload::default_cache_dir;
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};
use visorsim_media::layout::Layout;

use crate::failure::{Context, Failure, Status};
use crate::host::break_module;

/// Arguments of `visorsim demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the disk image in this directory (default: a new temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Compressed size of s.v00 in MB (default: the realistic ~124 MB).
    #[arg(long)]
    payload_mb: Option<u64>,
    /// Seed of the whole run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Replace a previous demo's image in --dir.
    #[arg(long)]
    force: bool,
}

struct Narrator<'a> {
    host: &'a Host,
}

impl Narrator<'_> {
    fn line<D: BlockDevice>(&self, dev: &mut D, event: &str) {
        let banks = bank_summaries(dev).iter().map(|b| b.short()).collect::<Vec<_>>().join("  ");
        let running = match self.host.running() {
            Some(r) => format!("BANK{} {}", r.bank, r.build),
            None => "-".to_owned(),
        };
        println!("{}  {:<62} {:<36} {}", &self.host.now().rfc3339()[11..19], event, banks, running);
    }
}

fn outcome(report: &BootReport) -> String {
    match &report.outcome {
        visorsim_boot::boot::Outcome::Booted => format!("booted BANK{}", report.selected.unwrap_or(0)),
        visorsim_boot::boot::Outcome::LoadFailed { status, module } => {
            format!("Fatal error: {status} ({})", module.as_deref().unwrap_or("?"))
        }
        other => format!("{other:?}"),
    }
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<Status, Failure> {
    let dir = match args.dir {
        Some(d) => {
            std::fs::create_dir_all(&d).context(|| format!("Creating {}", d.display()))?;
            d
        }
        None => std::env::temp_dir().join(format!("visorsim-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).context(|| format!("Creating {}", dir.display()))?;
    let path = dir.join("esxi6.img");
    crate::convert::refuse_existing(&path, args.force)?;
    let payload = match args.payload_mb {
        Some(mb) => PayloadSize::Compressed(mb * 1_000_000),
        None => PayloadSize::Realistic,
    };
    let cache = default_cache_dir();
    let spec = |build_number, seed| ImageSpec {
        version: "6.7.0".into(),
        build_number,
        seed,
        payload,
        hostname: "localhost".into(),
    };
    println!("visorsim demo: an ESXi 6.x host's life on {} (seed {})", path.display(), args.seed);
    println!("building the images (the first run generates ~370 MB of system modules; later runs use the cache)...");
    let image1 = SystemImage::build(&spec(8169922, args.seed), cache.as_deref(), &mut |_, _| {})
        .context(|| "Building build 8169922".into())?;
    let image2 = SystemImage::build(&spec(9214924, args.seed + 1), cache.as_deref(), &mut |_, _| {})
        .context(|| "Building build 9214924".into())?;
    let mut image3 = SystemImage::build(&spec(9484548, args.seed + 2), cache.as_deref(), &mut |_, _| {})
        .context(|| "Building build 9484548".into())?;
    break_module(&mut image3, "s.v00")?;
    let options = InstallOptions { layout: Layout::Esxi6, size: None, sector_size: SectorSize::S512, seed: args.seed };
    let (mem, _) = install_fresh(&image1, &options).context(|| "Installing".into())?;
    FileDisk::save_sparse(&mem, &path).context(|| format!("Writing {}", path.display()))?;
    drop(mem);
    let mut disk = FileDisk::open(&path, SectorSize::S512).context(|| format!("Opening {}", path.display()))?;
    let mut host = Host::new(args.seed, SimTime::default());
    let mut modules = ModuleCache::new(64);
    let normal = HostBootOptions::default();

    println!();
    println!("{:<8}  {:<62} {:<36} running", "time", "event", "banks (number:state/updated)");
    Narrator { host: &host }.line(&mut disk, "fresh install: build 8169922 in bank 5, bank 6 empty");
    let r = host.boot(&mut disk, &normal, Some(&mut modules));
    Narrator { host: &host }.line(&mut disk, &format!("power on: {}", outcome(&r)));
    host.advance(&mut disk, 120);
    host.set_hostname("esxi-prod-07").map_err(|e| Failure::msg(e.to_string()))?;
    Narrator { host: &host }.line(&mut disk, "hostname set to esxi-prod-07 (in RAM only)");
    host.advance(&mut disk, 59 * 60);
    let counter = host.etc().backup_counter().unwrap_or(0);
    Narrator { host: &host }.line(&mut disk, &format!("cron 01:01 auto-backup.sh saved state.tgz (#{counter})"));
    host.upgrade(&mut disk, &image2).map_err(|e| Failure::msg(e.to_string()))?;
    Narrator { host: &host }.line(&mut disk, "upgrade: build 9214924 staged in bank 6");
    let r = host.reboot(&mut disk, &normal, Some(&mut modules));
    Narrator { host: &host }.line(&mut disk, &format!("reboot: trial boot, {}, jumpstart confirms", outcome(&r)));
    let hostname = host.etc().hostname().unwrap_or_default();
    Narrator { host: &host }.line(&mut disk, &format!("configuration carried over: hostname {hostname}"));
    host.advance(&mut disk, 3600);
    host.upgrade(&mut disk, &image3).map_err(|e| Failure::msg(e.to_string()))?;
    Narrator { host: &host }.line(&mut disk, "upgrade: build 9484548 (broken s.v00) staged in bank 5");
    let r = host.reboot(&mut disk, &normal, Some(&mut modules));
    Narrator { host: &host }.line(&mut disk, &format!("reboot: trial boot fails: {}", outcome(&r)));
    host.advance(&mut disk, 600);
    let r = host.boot(&mut disk, &normal, Some(&mut modules));
    Narrator { host: &host }.line(&mut disk, &format!("power cycle: DIRTY bank 5 invalidated, {}", outcome(&r)));
    let shift = HostBootOptions {
        loader: BootOptions { shift_r: ShiftR::AtSafeboot(Answer::Yes), ..Default::default() },
        ..Default::default()
    };
    let r = host.reboot(&mut disk, &shift, Some(&mut modules));
    let refused = r.log.iter().any(|l| l.text == "No alternate hypervisor to roll back to.");
    let what = if refused { "Shift+R: \"No alternate hypervisor to roll back to.\"" } else { "Shift+R: rolled back" };
    Narrator { host: &host }.line(&mut disk, &format!("{what}, {}", outcome(&r)));
    disk.flush().context(|| format!("Syncing {}", path.display()))?;
    println!();
    println!("Only one level of rollback exists: bank 5's broken build was invalidated, so Shift+R had nothing to go back to.");
    println!("The disk image is kept at {}", path.display());
    println!("Look at it with: visorsim inspect {}", path.display());
    Ok(Status::Success)
}
