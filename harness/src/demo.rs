//! `visorsim demo`: a narrated life of an ESXi host on a realistic disk.
//!
//! install → boot → set the host name → the hourly auto-backup saves it →
//! upgrade → the trial boot, confirmed → upgrade again with a broken
//! `s.v00` → the trial fails, the next boot rolls back by itself → Shift+R,
//! refused because only one level of rollback exists. Each step prints a
//! line of the timeline: simulated time, what happened, both banks' states
//! and the build that runs.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use indicatif::HumanBytes;
use visorsim_boot::boot::{BootOptions, BootReport, ModuleCache, ShiftR};
use visorsim_boot::safeboot::Answer;
use visorsim_disk::{BlockDevice, FileDisk, SectorSize};
use visorsim_host::clock::SimTime;
use visorsim_host::host::{bank_summaries, Host, HostBootOptions};
use visorsim_image::install::{install_fresh, InstallOptions};
use visorsim_image::payload::{cache_files, default_cache_dir};
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};
use visorsim_media::layout::Layout;

use crate::failure::{Context, Failure, Status};
use crate::handoff::{run_handoff, HandoffResult, QemuFlags};
use crate::host::break_module;
use crate::progress::Progress;

/// The file that marks a directory as a demo's: its image may be replaced.
const MARKER: &str = "visorsim-demo.txt";

/// Arguments of `visorsim demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the disk image in this directory (default: visorsim-demo in the temporary directory); a previous demo's image there is replaced.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Compressed size of s.v00 in MB, for a quick run (default: --realistic).
    #[arg(long, conflicts_with = "realistic")]
    payload_mb: Option<u64>,
    /// s.v00 of about 124 MB compressed, like a real ESXi 5.0 image (the default).
    #[arg(long)]
    realistic: bool,
    /// Cache compressed payloads here (default: $VISORSIM_CACHE_DIR or ~/.cache/visorsim).
    #[arg(long, conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Do not cache compressed payloads (each run generates them again).
    #[arg(long)]
    no_cache: bool,
    /// No progress bar or progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Seed of the whole run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Replace an esxi6.img in --dir that no demo made (a previous demo's is replaced anyway).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    qemu: QemuFlags,
}

struct Narrator<'a> {
    host: &'a Host,
}

/// With `--qemu`, a boot that loaded a kernel is handed to the guest, and
/// the guest's confirmation (or the difference it found) is printed under
/// the timeline's line. `false` after a difference: the demo then stops
/// with exit code 8.
fn confirm<D: BlockDevice>(dev: &mut D, report: &BootReport, flags: &QemuFlags) -> Result<bool, Failure> {
    match run_handoff(dev, report, flags)? {
        None | Some(HandoffResult::NothingToStart) => Ok(true),
        Some(HandoffResult::Confirmed { handoff, millis }) => {
            println!(
                "          guest confirmed ({}, {millis} ms): {} modules, command line \"{}\"",
                handoff.run.accel.name(),
                handoff.modules.len(),
                handoff.cmdline
            );
            Ok(true)
        }
        Some(HandoffResult::Mismatch(why)) => {
            println!("          handoff FAILED: {why}");
            Ok(false)
        }
    }
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
        visorsim_boot::boot::Outcome::NoHypervisor => "No hypervisor found.".to_owned(),
        visorsim_boot::boot::Outcome::ChainloadFailed => {
            format!("Failed to chainload BANK{}.", report.selected.unwrap_or(0))
        }
        visorsim_boot::boot::Outcome::LoaderMissing { reason } => {
            format!("The firmware could not start the loader: {reason}")
        }
    }
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<Status, Failure> {
    let dir = args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join("visorsim-demo"));
    std::fs::create_dir_all(&dir).context(|| format!("Creating {}", dir.display()))?;
    let path = dir.join("esxi6.img");
    // A previous demo's directory (its marker file) is reused: its image is
    // replaced. Any other existing esxi6.img needs --force.
    let marker = dir.join(MARKER);
    crate::convert::refuse_existing(&path, args.force || marker.is_file())?;
    std::fs::write(
        &marker,
        format!(
            "This directory holds the disk image of `visorsim demo` (esxi6.img); the next demo with --dir {0} replaces it.\nRemove it with: rm -r {0}\n",
            dir.display()
        ),
    )
    .context(|| format!("Writing {}", marker.display()))?;
    let payload = match args.payload_mb {
        Some(mb) => PayloadSize::Compressed(mb * 1_000_000),
        None => PayloadSize::Realistic,
    };
    let cache = if args.no_cache { None } else { args.cache_dir.clone().or_else(default_cache_dir) };
    let spec = |build_number, seed| ImageSpec {
        version: "6.7.0".into(),
        build_number,
        seed,
        payload,
        hostname: "localhost".into(),
    };
    println!("visorsim demo: an ESXi 6.x host's life on {} (seed {})", path.display(), args.seed);
    match &cache {
        Some(c) => println!(
            "building three builds (the first run generates their system modules into the cache {}; later runs read them)...",
            c.display()
        ),
        None => println!("building three builds (--no-cache: their system modules are generated on every run)..."),
    }
    let build = |number: u32, seed: u64| -> Result<SystemImage, Failure> {
        let started = Instant::now();
        let mut progress = Progress::new(&format!("generating system modules of build {number}"), args.quiet);
        let mut total = 0;
        let image = SystemImage::build(&spec(number, seed), cache.as_deref(), &mut |d, t| {
            total = t;
            progress.update(d, t);
        })
        .context(|| format!("Building build {number}"))?;
        progress.finish();
        println!(
            "  build {number}: {} of system modules ({} gzip) in {:.1} s",
            HumanBytes(total),
            HumanBytes(image.size()),
            started.elapsed().as_secs_f64()
        );
        Ok(image)
    };
    let image1 = build(8169922, args.seed)?;
    let image2 = build(9214924, args.seed + 1)?;
    let mut image3 = build(9484548, args.seed + 2)?;
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
    if !confirm(&mut disk, &r, &args.qemu)? {
        return Ok(Status::HandoffMismatch);
    }
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
    if !confirm(&mut disk, &r, &args.qemu)? {
        return Ok(Status::HandoffMismatch);
    }
    let hostname = host.etc().hostname().unwrap_or_default();
    Narrator { host: &host }.line(&mut disk, &format!("configuration carried over: hostname {hostname}"));
    host.advance(&mut disk, 3600);
    host.upgrade(&mut disk, &image3).map_err(|e| Failure::msg(e.to_string()))?;
    Narrator { host: &host }.line(&mut disk, "upgrade: build 9484548 (broken s.v00) staged in bank 5");
    let r = host.reboot(&mut disk, &normal, Some(&mut modules));
    Narrator { host: &host }.line(&mut disk, &format!("reboot: trial boot fails: {}", outcome(&r)));
    if !confirm(&mut disk, &r, &args.qemu)? {
        return Ok(Status::HandoffMismatch);
    }
    host.advance(&mut disk, 600);
    let r = host.boot(&mut disk, &normal, Some(&mut modules));
    Narrator { host: &host }.line(&mut disk, &format!("power cycle: DIRTY bank 5 invalidated, {}", outcome(&r)));
    if !confirm(&mut disk, &r, &args.qemu)? {
        return Ok(Status::HandoffMismatch);
    }
    let shift = HostBootOptions {
        loader: BootOptions { shift_r: ShiftR::AtSafeboot(Answer::Yes), ..Default::default() },
        ..Default::default()
    };
    let r = host.reboot(&mut disk, &shift, Some(&mut modules));
    let refused = r.log.iter().any(|l| l.text == "No alternate hypervisor to roll back to.");
    let what = if refused { "Shift+R: \"No alternate hypervisor to roll back to.\"" } else { "Shift+R: rolled back" };
    Narrator { host: &host }.line(&mut disk, &format!("{what}, {}", outcome(&r)));
    if !confirm(&mut disk, &r, &args.qemu)? {
        return Ok(Status::HandoffMismatch);
    }
    disk.flush().context(|| format!("Syncing {}", path.display()))?;
    println!();
    println!("Only one level of rollback exists: bank 5's broken build was invalidated, so Shift+R had nothing to go back to.");
    let meta = std::fs::metadata(&path).context(|| format!("Reading {}", path.display()))?;
    println!(
        "The disk image is kept at {} ({} on disk, {} virtual); the next demo with --dir {} replaces it.",
        path.display(),
        HumanBytes(meta.blocks() * 512),
        HumanBytes(meta.len()),
        dir.display()
    );
    println!("Look at it with: visorsim inspect {}", path.display());
    // `rm -r` only for a directory that holds nothing but the demo's files.
    let only_ours = std::fs::read_dir(&dir)
        .map(|entries| entries.flatten().all(|e| e.file_name() == "esxi6.img" || e.file_name() == MARKER))
        .unwrap_or(false);
    if only_ours {
        println!("Remove it with: rm -r {}", dir.display());
    } else {
        println!("Remove it with: rm {} {}", path.display(), marker.display());
    }
    if let Some(c) = &cache {
        let bytes: u64 = cache_files(c).map(|f| f.iter().map(|(_, size)| size).sum()).unwrap_or(0);
        println!(
            "The payload cache {} holds {}: `visorsim cache clean` removes it (later demos then generate it again).",
            c.display(),
            HumanBytes(bytes)
        );
    }
    Ok(Status::Success)
}
