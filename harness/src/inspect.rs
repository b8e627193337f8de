//! `visorsim inspect`: the partition table in `partedUtil getptbl` style,
//! then each FAT volume with its VMware UUID, boot.cfg and modules.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use visorsim_boot::gzip::ModuleForm;
use visorsim_boot::load::DEFAULT_MEMORY_BUDGET;
use visorsim_disk::{BlockDevice, FileDisk, SectorSize};
use visorsim_image::inspect::{inspect_within, DiskReport};
use visorsim_media::fat::Severity;

use visorsim_tools::ImageFormat;

use crate::args::SectorSizeArg;
use crate::failure::{Context, Failure, Status};
use crate::image_open::open_image;

/// Arguments of `visorsim inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Disk image: raw, vmdk, qcow2 or vhdx (only read; never modified).
    image: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Logical sector size of the image [default: detected from its GPT header, else 512].
    #[arg(long, value_enum)]
    sector_size: Option<SectorSizeArg>,
    /// Memory inspect's reads may hold (64M to 1T): a file larger than this is reported, not read.
    #[arg(long, value_parser = crate::args::parse_ram, default_value = "4G")]
    ram: u64,
}

/// Runs `visorsim inspect`: exit 0 when clean, 3 when problems were found.
pub fn run(args: InspectArgs) -> Result<Status, Failure> {
    let image = open_image(&args.image, args.sector_size)?;
    let report = inspect_raw(image.raw_path(), image.path(), image.sector_size(), args.ram)?;
    if args.json {
        let mut value = serde_json::to_value(&report).expect("serialisable");
        value["format"] = serde_json::Value::String(image.format().name().to_owned());
        println!("{}", serde_json::to_string_pretty(&value).expect("serialisable"));
    } else {
        print!("{}", render(&args.image, &report));
        if image.format() != ImageFormat::Raw {
            println!("(a {} image, read through a temporary raw copy; the file was not changed)", image.format());
        }
    }
    if report.problems.is_empty() {
        Ok(Status::Success)
    } else {
        if !args.json {
            eprintln!("visorsim: {} problem(s) found in {}", report.problems.len(), args.image.display());
        }
        Ok(Status::Problems)
    }
}

/// Inspects a raw image file, read-only.
pub fn inspect_file(path: &Path, sector_size: SectorSize) -> Result<DiskReport, Failure> {
    inspect_raw(path, path, sector_size, DEFAULT_MEMORY_BUDGET)
}

/// Inspects the raw image `raw`, read-only, naming it `name` in messages
/// (the user's file when `raw` is its converted temporary).
fn inspect_raw(raw: &Path, name: &Path, sector_size: SectorSize, ram: u64) -> Result<DiskReport, Failure> {
    let path = name;
    if raw.is_dir() {
        return Err(Failure::msg(format!("{} is a directory, not a disk image", path.display())));
    }
    let mut disk = FileDisk::open_read_only(raw, sector_size).context(|| format!("Opening {}", path.display()))?;
    let mut report = inspect_within(&mut disk, ram);
    if disk.trailing_bytes() != 0 {
        // The report's size is the file's, the one this problem names (the
        // device itself ends at the last whole sector).
        report.size = disk.sector_count() * sector_size.bytes_u64() + disk.trailing_bytes();
        report.problems.push(format!(
            "{} is {} bytes, not a whole number of {}-byte sectors: the image looks truncated",
            path.display(),
            report.size,
            sector_size.bytes()
        ));
    }
    Ok(report)
}

fn render(path: &std::path::Path, r: &DiskReport) -> String {
    let mut s = String::new();
    let ss = u64::from(r.sector_size);
    let _ = writeln!(
        s,
        "{}: {} bytes ({:.2} GiB), {}-byte sectors, layout {}",
        path.display(),
        r.size,
        r.size as f64 / (1u64 << 30) as f64,
        r.sector_size,
        r.layout.map_or("unknown", |l| l.name())
    );
    match r.gpt_source {
        None => {
            let _ = writeln!(s, "no usable partition table");
        }
        Some(source) => {
            // partedUtil getptbl: label, then cylinders heads sectors total.
            let sectors = r.size / ss;
            let _ = writeln!(
                s,
                "\ngpt  ({source} header{})",
                if r.primary_gpt_error.is_some() { ", primary is damaged" } else { "" }
            );
            let _ = writeln!(s, "{} 255 63 {}", sectors / (255 * 63), sectors);
            for p in &r.partitions {
                let guid = p.type_guid.simple().to_string().to_uppercase();
                let _ = writeln!(s, "{} {} {} {} {} 0", p.number, p.start, p.end, guid, p.type_alias);
            }
        }
    }
    for p in r.partitions.iter().filter(|p| p.fat.is_some()) {
        let fat = p.fat.as_ref().expect("filtered");
        let _ = writeln!(
            s,
            "\npartition {}: {}, {} clusters of {} bytes, {} file(s)",
            p.number,
            fat.fat_type,
            fat.clusters,
            fat.cluster_bytes,
            fat.files.len()
        );
        let _ = writeln!(s, "  FAT check        {}", fat.check.summary());
        const SHOWN: usize = 20;
        for f in fat.check.findings.iter().take(SHOWN) {
            let severity = match f.severity {
                Severity::Damage => "damage",
                Severity::Warning => "warning",
            };
            let _ = writeln!(s, "    {severity:<7}  {f}");
        }
        if fat.check.findings.len() > SHOWN {
            let _ = writeln!(s, "    ... {} more (see --json)", fat.check.findings.len() - SHOWN);
        }
        match &fat.vmware_uuid {
            Some(u) => {
                let _ = writeln!(s, "  VMware FAT UUID  {}", u.to_hex());
            }
            None => {
                let _ = writeln!(s, "  VMware FAT UUID  none (not a boot bank)");
            }
        }
        if let Some(cfg) = &fat.boot_cfg {
            let _ = writeln!(
                s,
                "  boot.cfg         bootstate={} updated={} build={}",
                cfg.bootstate, cfg.updated, cfg.build
            );
            let _ = writeln!(s, "                   title={} timeout={} prefix={}", cfg.title, cfg.timeout, cfg.prefix);
            let _ = writeln!(s, "                   kernel={} kernelopt={}", cfg.kernel, cfg.kernelopt);
            let _ = writeln!(s, "  {:<16} {:>12} {:>12} {:>10}  gzip", "module", "size", "ISIZE", "CRC32");
            for m in &fat.modules {
                match &m.check {
                    Some(c) => {
                        let verdict = match &c.outcome {
                            Ok(form) => format!("sound ({})", form_name(*form)),
                            Err(e) => format!("BAD: {e}"),
                        };
                        let isize = c.isize.map_or("-".to_owned(), |v| v.to_string());
                        let crc = c.crc32.map_or("-".to_owned(), |v| format!("{v:#010x}"));
                        let _ =
                            writeln!(s, "  {:<16} {:>12} {:>12} {:>10}  {verdict}", m.name, c.file_size, isize, crc);
                    }
                    None => {
                        let _ = writeln!(s, "  {:<16} {:>12} {:>12} {:>10}  MISSING", m.name, "-", "-", "-");
                    }
                }
            }
        } else if !p.loader.is_empty() {
            let _ = writeln!(s, "  system partition: the loader");
            for f in &p.loader {
                let _ = writeln!(s, "  {:<28} {:>8}", f.path, f.size);
            }
        } else if fat.files.is_empty() {
            let _ = writeln!(s, "  (empty)");
        } else {
            for f in &fat.files {
                let _ = writeln!(s, "  {:<24} {:>12}", f.name, f.size);
            }
        }
    }
    if !r.problems.is_empty() {
        let _ = writeln!(s, "\nproblems:");
        for p in &r.problems {
            let _ = writeln!(s, "  - {p}");
        }
    }
    s
}

/// How a sound module loads, as the report shows it.
fn form_name(form: ModuleForm) -> &'static str {
    match form {
        ModuleForm::Gzip => "gzip",
        ModuleForm::Uncompressed => "uncompressed",
        ModuleForm::Empty => "empty",
    }
}
