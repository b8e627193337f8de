//! `visorsim export` and `visorsim import`: format conversion through
//! `qemu-img` (crate `visorsim-tools`). Both write atomically: the output
//! appears whole or not at all, and the input is never modified. Each
//! qemu-img call runs under `--timeout` (else `VISORSIM_QEMU_IMG_TIMEOUT`,
//! else 300 s); a failure, a timeout or a SIGINT/SIGTERM leaves no
//! temporary in the output directory (`visorsim_tools::cleanup`). `import`
//! checks its input first, as every command reading a customer's image
//! does (`ImageInput::verify`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use visorsim_scenario::input::ImageInput;
use visorsim_tools::qemu_img::parse_seconds;
use visorsim_tools::{cleanup, ImageFormat, QemuImg};

use crate::args::{FormatArg, SectorSizeArg};
use crate::failure::{Context, Failure, Status};
use crate::inspect::inspect_file;

/// Arguments of `visorsim export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Raw disk image to export (a vmdk, qcow2 or vhdx input is refused: import it first).
    image: PathBuf,
    /// Output format [default: from the extension of --out: .vmdk, .qcow2, .vhdx, .img or .raw].
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Time limit of each qemu-img call, in seconds [default: $VISORSIM_QEMU_IMG_TIMEOUT, else 300].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
}

/// Arguments of `visorsim import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Image to import (vmdk, qcow2, vhdx or raw; probed unless --format is given).
    image: PathBuf,
    /// Output raw disk image.
    #[arg(long)]
    out: PathBuf,
    /// Format of the input, when probing should not decide.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Logical sector size of the disk [default: detected from its GPT header, else 512].
    #[arg(long, value_enum)]
    sector_size: Option<SectorSizeArg>,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
    /// Time limit of each qemu-img call, in seconds [default: $VISORSIM_QEMU_IMG_TIMEOUT, else 300].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
}

/// Runs `visorsim export`.
pub fn export(args: ExportArgs) -> Result<Status, Failure> {
    let qemu = qemu_img(args.timeout);
    let out_format = match args.format {
        Some(format) => format.format(),
        None => format_of_extension(&args.out)?,
    };
    require_file(&args.image)?;
    // qemu-img would copy a qcow2 file byte for byte as "raw": probe first.
    let info = qemu.info(&args.image).context(|| format!("Probing the format of {}", args.image.display()))?;
    if info.format != ImageFormat::Raw.qemu_name() {
        return Err(Failure::msg(format!(
            "{} is a {} image, not a raw disk image: export takes a raw image (convert it first with `visorsim import {} --out <raw image>`)",
            args.image.display(),
            info.format,
            args.image.display()
        )));
    }
    qemu.convert(&args.image, Some(ImageFormat::Raw), &args.out, out_format)
        .context(|| format!("Exporting {} to {}", args.image.display(), args.out.display()))?;
    println!("Exported {} as {} to {}", args.image.display(), out_format.name(), args.out.display());
    Ok(Status::Success)
}

/// Runs `visorsim import`: converts to raw next to the output, checks that
/// the result is a disk with a partition table, then renames it into place.
pub fn import(args: ImportArgs) -> Result<Status, Failure> {
    let qemu = qemu_img(args.timeout);
    let in_format = args.format.map(FormatArg::format);
    require_file(&args.image)?;
    refuse_existing(&args.out, args.force)?;
    // Damage, truncation, a missing vmdk extent or a looping backing file
    // is refused before anything is written (the format qemu-img would
    // probe: by magic, unless --format says).
    let checked_format = match in_format {
        Some(format) => format,
        None => ImageInput::sniff(&args.image).context(|| format!("Opening {}", args.image.display()))?,
    };
    ImageInput::verify(&args.image, checked_format, &qemu)
        .context(|| format!("Checking {} before import", args.image.display()))?;
    let dir = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = args.out.file_name().ok_or_else(|| Failure::msg(format!("{} has no file name", args.out.display())))?;
    let staging = dir.join(format!(".{}.import{}", name.to_string_lossy(), std::process::id()));
    // Removed on a signal (the converted file, before its rename), and on
    // every failure below.
    let _on_signal = cleanup::remove_on_signal(&staging);
    let result = (|| {
        qemu.convert(&args.image, in_format, &staging, ImageFormat::Raw)
            .context(|| format!("Converting {} to raw", args.image.display()))?;
        let report = inspect_file(&staging, SectorSizeArg::resolve(args.sector_size, &staging))?;
        if report.gpt_source.is_none() {
            let why = report.problems.join("; ");
            return Err(Failure::msg(format!("{} is not an ESXi boot disk: {why}", args.image.display())));
        }
        fs::rename(&staging, &args.out).context(|| format!("Renaming into {}", args.out.display()))?;
        Ok(report)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&staging);
    }
    let report = result?;
    println!(
        "Imported {} into {} ({} bytes, {} partitions)",
        args.image.display(),
        args.out.display(),
        report.size,
        report.partitions.len()
    );
    for p in &report.problems {
        println!("  warning: {p}");
    }
    Ok(Status::Success)
}

/// qemu-img with `--timeout` when given, else as [`QemuImg::new`] sets it
/// up (`VISORSIM_QEMU_IMG`, `VISORSIM_QEMU_IMG_TIMEOUT`).
fn qemu_img(timeout: Option<Duration>) -> QemuImg {
    match timeout {
        Some(limit) => QemuImg::new().with_timeout(limit),
        None => QemuImg::new(),
    }
}

/// The output format an export's file name asks for.
fn format_of_extension(out: &Path) -> Result<ImageFormat, Failure> {
    ImageFormat::from_extension(out).ok_or_else(|| {
        Failure::msg(format!(
            "Cannot tell the output format from the name {} (not .vmdk, .qcow2, .vhdx, .img or .raw): give --format",
            out.display()
        ))
    })
}

/// Refuses to replace an existing `out` unless `force` (`--force`).
pub fn refuse_existing(out: &Path, force: bool) -> Result<(), Failure> {
    if !force && fs::symlink_metadata(out).is_ok() {
        return Err(Failure::msg(format!("{} already exists: not replacing it without --force", out.display())));
    }
    Ok(())
}

fn require_file(path: &Path) -> Result<(), Failure> {
    let meta = fs::metadata(path).context(|| format!("Opening {}", path.display()))?;
    if !meta.is_file() {
        return Err(Failure::msg(format!("{} is not a regular file", path.display())));
    }
    Ok(())
}
