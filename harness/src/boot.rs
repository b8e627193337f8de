//! `visorsim boot`: boot a disk image as ESXi's bootloader would, writing
//! bootstate digits into the image in place (unless `--dry-run`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::Args;
use visorsim_boot::boot::{boot, BootOptions, BootReport, Outcome};
use visorsim_boot::safeboot::{state_name, Level, Verdict, WriteReason};
use visorsim_boot::volume::{scan_volumes, PartKind};
use visorsim_disk::{BlockDevice, Overlay};
use visorsim_media::fat::{check_volume, FatCheck};

use crate::args::{LoaderFlags, SectorSizeArg};
use crate::failure::{Context, Failure, Status};
use crate::handoff::{run_handoff, HandoffResult, QemuFlags};
use crate::image_open::open_image;

/// Arguments of `visorsim boot`.
#[derive(Args, Debug)]
pub struct BootArgs {
    /// Disk image: raw (changed in place like a real boot, unless --dry-run), or vmdk, qcow2, vhdx (booted on a temporary raw copy, never changed).
    image: PathBuf,
    #[command(flatten)]
    loader: LoaderFlags,
    /// Boot without changing the image (writes are kept in memory).
    #[arg(long)]
    dry_run: bool,
    /// Print the boot report as JSON.
    #[arg(long)]
    json: bool,
    /// Show debug-level loader lines too.
    #[arg(long, short)]
    verbose: bool,
    /// Logical sector size of the image [default: detected from its GPT header, else 512].
    #[arg(long, value_enum)]
    sector_size: Option<SectorSizeArg>,
    #[command(flatten)]
    qemu: QemuFlags,
}

/// Runs `visorsim boot`. Exit codes: 0 booted, 4 no hypervisor, 5 a module
/// (or boot.cfg for mboot) failed to load, 6 chainload failed (unknown ESX
/// version), 8 `--qemu`: the guest received something else than mboot
/// loaded, 9 the firmware could not start the loader (system partition).
pub fn run(args: BootArgs) -> Result<Status, Failure> {
    let image = open_image(&args.image, args.sector_size)?;
    let options = BootOptions {
        // The report shows the module load's wall time: the CLI is the edge
        // where the real clock is read.
        clock: Some(since_start),
        ..args.loader.boot_options()
    };
    let (report, handoff, checks) = if args.dry_run {
        let mut disk = Overlay::new(image.read_only()?);
        let report = boot(&mut disk, &options, None);
        let handoff = run_handoff(&mut disk, &report, &args.qemu)?;
        let checks = bank_checks(&mut disk, &report);
        (report, handoff, checks)
    } else {
        let mut disk = image.writable()?;
        let report = boot(&mut disk, &options, None);
        disk.flush().context(|| format!("Syncing {}", args.image.display()))?;
        let handoff = run_handoff(&mut disk, &report, &args.qemu)?;
        let checks = bank_checks(&mut disk, &report);
        (report, handoff, checks)
    };
    let mut notes: Vec<String> = trial_note(&report, args.dry_run).into_iter().collect();
    // A vmdk, qcow2 or vhdx booted on its temporary raw copy: say the writes are gone.
    let writes_kept = !args.dry_run && image.writes_kept();
    if !args.dry_run {
        notes.extend(image.unkept_note("this boot"));
    }
    notes.extend(
        checks
            .iter()
            .filter(|(_, c)| !c.findings.is_empty())
            .map(|(bank, c)| format!("bank {bank}: FAT check (as fsck.fat -n): {}", c.summary())),
    );
    if args.json {
        let mut value = serde_json::to_value(&report).expect("serialisable");
        if let Some(object) = value.as_object_mut() {
            object.insert("notes".to_owned(), serde_json::json!(notes));
            object.insert("format".to_owned(), serde_json::json!(image.format().name()));
            object.insert("writes_kept".to_owned(), serde_json::json!(writes_kept));
            let fat_checks: Vec<serde_json::Value> =
                checks.iter().map(|(bank, c)| serde_json::json!({ "bank": bank, "check": c })).collect();
            object.insert("fat_checks".to_owned(), serde_json::json!(fat_checks));
            if let Some(h) = &handoff {
                object.insert("handoff".to_owned(), h.json());
            }
        }
        println!("{}", serde_json::to_string_pretty(&value).expect("serialisable"));
    } else {
        print!("{}", render(&report, args.verbose));
        for note in &notes {
            println!("note: {note}");
        }
        if let Some(h) = &handoff {
            println!("{}", h.line());
        }
    }
    if let Some(HandoffResult::Mismatch(_)) = handoff {
        return Ok(Status::HandoffMismatch);
    }
    Ok(Status::of_boot(&report.outcome))
}

/// The in-process FAT check of each bank the last safeboot pass looked
/// at, as the image is now (after the boot's own writes).
fn bank_checks<D: BlockDevice>(disk: &mut D, report: &BootReport) -> Vec<(u32, FatCheck)> {
    let Some(pass) = report.passes.last() else { return Vec::new() };
    let table = scan_volumes(disk);
    pass.decision
        .banks
        .iter()
        .filter_map(|b| table.volumes.iter().find(|v| v.number == b.number))
        .map(|v| (v.number, check_volume(disk, v.first_lba, v.sectors)))
        .collect()
}

/// When the bank that booted is on its trial boot (DIRTY after this boot's
/// scan), what that means: the bootloader never confirms a trial, only the
/// host's jumpstart does (bootstate back to 0), so an image booted here
/// and booted again falls back.
fn trial_note(r: &BootReport, dry_run: bool) -> Option<String> {
    if r.outcome != Outcome::Booted {
        return None;
    }
    let selected = r.selected?;
    let bank = r.passes.last()?.decision.banks.iter().find(|b| b.number == selected)?;
    if bank.state_after != DIRTY {
        return None;
    }
    let mut note = format!(
        "bank {selected} is on its trial boot (DIRTY); unless the host confirms it, the next boot invalidates it"
    );
    if dry_run {
        note.push_str(" (--dry-run: the image itself was not changed)");
    }
    Some(note)
}

/// bootstate 2: the bank's trial boot has started.
const DIRTY: i32 = 2;

fn render(r: &BootReport, verbose: bool) -> String {
    let mut s = String::new();
    for (i, pass) in r.passes.iter().enumerate() {
        let _ = writeln!(s, "safeboot pass {} ({} partition table)", i + 1, r.partition_scheme);
        for p in &pass.partitions {
            let _ = writeln!(s, "  partition {:<2} {}: {}", p.number, kind_name(p.kind), p.result);
        }
        let _ = writeln!(
            s,
            "  {:<5} {:<34} {:<22} {:>10}  {:<22} bootable",
            "bank", "UUID", "build", "updated", "bootstate"
        );
        for b in &pass.decision.banks {
            let change = if b.state_before == b.state_after {
                state_name(b.state_before).to_owned()
            } else {
                format!("{} -> {}", state_name(b.state_before), state_name(b.state_after))
            };
            let _ = writeln!(
                s,
                "  {:<5} {:<34} {:<22} {:>10}  {:<22} {}",
                b.number,
                b.uuid.to_hex(),
                b.build.as_deref().unwrap_or("(none)"),
                b.updated,
                change,
                if b.bootable { "yes" } else { "no" }
            );
        }
        for w in &pass.decision.writes {
            let _ = writeln!(
                s,
                "  wrote bootstate={} into BANK{} boot.cfg (byte {}, {})",
                w.state,
                w.number,
                w.offset,
                match w.reason {
                    WriteReason::Scan => "Scan",
                    WriteReason::Rollback => "Rollback",
                }
            );
        }
        if let Verdict::Chainload { bank, rollback, .. } = &pass.decision.verdict {
            let _ = writeln!(s, "  -> chainload BANK{bank}{}", if *rollback { " (rollback)" } else { "" });
        }
    }
    let shown: Vec<_> = r.log.iter().filter(|l| verbose || l.level != Level::Debug).collect();
    if !shown.is_empty() {
        let _ = writeln!(s, "log:");
    }
    for line in shown {
        let _ = writeln!(s, "  [{}] {}", level_name(line.level), line.text);
    }
    if let Some(cmdline) = &r.kernel_cmdline {
        let _ = writeln!(s, "kernel command line: {cmdline}");
    }
    if !r.modules.is_empty() {
        let _ = writeln!(
            s,
            "modules loaded in {:.1} ms (in parallel; \"cached\": verified result reused):",
            r.load_micros.unwrap_or(0) as f64 / 1000.0
        );
        let _ = writeln!(s, "  {:<16} {:>12} {:>12} {:>10}  {:<32}", "module", "compressed", "size", "CRC32", "MD5");
        for m in &r.modules {
            let crc = m.crc32.map_or("-".to_owned(), |c| format!("{c:#010x}"));
            let cached = if m.cached { "  cached" } else { "" };
            let _ = writeln!(
                s,
                "  {:<16} {:>12} {:>12} {:>10}  {:<32}{cached}",
                m.name,
                m.compressed_size,
                m.size,
                crc,
                m.md5.as_deref().unwrap_or("-")
            );
        }
    }
    let _ = writeln!(
        s,
        "outcome: {}",
        match &r.outcome {
            Outcome::Booted =>
                format!("booted BANK{} build {}", r.selected.unwrap_or(0), r.build.as_deref().unwrap_or("?")),
            Outcome::NoHypervisor => "No hypervisor found.".to_owned(),
            Outcome::ChainloadFailed => format!("Failed to chainload BANK{}.", r.selected.unwrap_or(0)),
            Outcome::LoaderMissing { reason } => format!("The firmware could not start the loader: {reason}"),
            Outcome::LoadFailed { status, module } => format!(
                "Fatal error: {status}{} ({})",
                module.as_ref().map(|m| format!(" loading {m}")).unwrap_or_default(),
                match r.after_failure {
                    Some(visorsim_boot::mboot::AfterFailure::ReturnsAfter(n)) =>
                        format!("back to safeboot after {n} s; it waits for a key"),
                    _ => "mboot hangs".to_owned(),
                }
            ),
        }
    );
    // The loader's own words are above; this is where it failed.
    if let Some(why) = &r.reason {
        let _ = writeln!(s, "why (visorsim): {why}");
    }
    s
}

/// A log level as the report shows it.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "Error",
        Level::Warning => "Warning",
        Level::Info => "Info",
        Level::Debug => "Debug",
    }
}

/// A partition's type class as the report shows it.
fn kind_name(kind: PartKind) -> &'static str {
    match kind {
        PartKind::Fat => "Fat",
        PartKind::Efi => "Efi",
        PartKind::Empty => "Empty",
        PartKind::Other => "Other",
    }
}

/// Time since the first call: the monotonic clock the boot report's load
/// time is read from.
fn since_start() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}
