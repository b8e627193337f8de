//! `visorsim export` and `visorsim import`: format conversion through
//! `qemu-img` (crate `visorsim-tools`). Both write atomically: the output
//! appears whole or not at all, and the input is never modified.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use visorsim_tools::{ImageFormat, QemuImg};

use crate::failure::{Context, Failure};
use crate::inspect::inspect_file;

/// Arguments of `visorsim export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Raw disk image to export.
    image: PathBuf,
    /// Output format.
    #[arg(long, value_parser = ["vmdk", "qcow2", "vhdx", "raw"])]
    format: String,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
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
    #[arg(long, value_parser = ["vmdk", "qcow2", "vhdx", "raw"])]
    format: Option<String>,
    /// Logical sector size of the disk.
    #[arg(long, value_parser = ["512", "4096"], default_value = "512")]
    sector_size: String,
}

fn format(name: &str) -> Result<ImageFormat, Failure> {
    name.parse().map_err(|_| Failure::msg(format!("unknown image format {name}")))
}

/// Runs `visorsim export`.
pub fn export(args: ExportArgs) -> Result<ExitCode, Failure> {
    let qemu = QemuImg::new();
    let out_format = format(&args.format)?;
    require_file(&args.image)?;
    qemu.convert(&args.image, Some(ImageFormat::Raw), &args.out, out_format)
        .context(|| format!("Exporting {} to {}", args.image.display(), args.out.display()))?;
    println!("Exported {} as {} to {}", args.image.display(), args.format, args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Runs `visorsim import`: converts to raw next to the output, checks that
/// the result is a disk with a partition table, then renames it into place.
pub fn import(args: ImportArgs) -> Result<ExitCode, Failure> {
    let qemu = QemuImg::new();
    let in_format = args.format.as_deref().map(format).transpose()?;
    require_file(&args.image)?;
    let dir = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = args.out.file_name().ok_or_else(|| Failure::msg(format!("{} has no file name", args.out.display())))?;
    let staging = dir.join(format!(".{}.import{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        qemu.convert(&args.image, in_format, &staging, ImageFormat::Raw)
            .context(|| format!("Converting {} to raw", args.image.display()))?;
        let report = inspect_file(&staging, &args.sector_size)?;
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
    Ok(ExitCode::SUCCESS)
}

fn require_file(path: &Path) -> Result<(), Failure> {
    let meta = fs::metadata(path).context(|| format!("Opening {}", path.display()))?;
    if !meta.is_file() {
        return Err(Failure::msg(format!("{} is not a regular file", path.display())));
    }
    Ok(())
}
