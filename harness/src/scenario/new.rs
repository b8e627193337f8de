//! `visorsim scenario new --from IMAGE --out DIR/name.json`: a field bug
//! becomes a test. The scenario starts from the image (a sparse raw copy
//! beside the file when it holds little data, else the image by path), and
//! holds one boot with what `explain` says that boot does
//! (`visorsim_scenario::from_image` builds it). The image is only read.
//!
//! ```text
//!   IMAGE ─ ImageInput (raw in place; vmdk/qcow2/vhdx via a sparse temporary)
//!     └─ MemDisk ─ explain ─ from_image::scenario ─ run once (must pass)
//!          └─ write DIR/name.img (sparse, only when copied), then DIR/name.json
//! ```
//!
//! Promises: nothing is written unless the scenario passes when run on the
//! image as it is now; an existing `--out` (or copy) is replaced only with
//! `--force`; both files are written atomically (a temporary, then a rename).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use visorsim_disk::FileDisk;
use visorsim_host::explain::explain;
use visorsim_scenario::from_image::{self, ImageOrigin, Placement};
use visorsim_scenario::input::ImageInput;

use crate::args::{LoaderArg, SectorSizeArg};
use crate::convert::refuse_existing;
use crate::failure::{Context, Failure, Status};

/// Arguments of `visorsim scenario new`.
#[derive(Args, Debug)]
pub struct NewArgs {
    /// The customer's disk image: raw, vmdk, qcow2 or vhdx (only read; never modified).
    #[arg(long, value_name = "IMAGE")]
    from: PathBuf,
    /// The scenario file to write (DIR/name.json; a copy of the image goes beside it as DIR/name.img).
    #[arg(long, value_name = "FILE", value_parser = json_path)]
    out: PathBuf,
    /// Which bootloader the scenario boots with (its `disk.loader`): current (ESXi 7.0 to 9.0) or 6.7u1.
    #[arg(long, value_enum, default_value_t = LoaderArg::Current)]
    loader: LoaderArg,
    /// Images with more data than this (not counting holes) are referenced by path, not copied beside the scenario.
    #[arg(long, value_name = "SIZE", value_parser = parse_threshold, default_value = "16M")]
    copy_threshold: u64,
    /// Replace --out (and its copy of the image) if they exist.
    #[arg(long)]
    force: bool,
}

/// `--out`: a path ending in `.json` (what `visorsim run` and `cargo test` pick up).
fn json_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    match (path.extension(), path.file_stem()) {
        (Some(ext), Some(_)) if ext == "json" => Ok(path),
        _ => Err(format!("{text} does not end in .json: scenario files are DIR/name.json")),
    }
}

/// `--copy-threshold`: a size such as `16M` (`visorsim build --size`'s syntax).
fn parse_threshold(text: &str) -> Result<u64, String> {
    visorsim_scenario::size::parse_size(text).map_err(|e| e.to_string())
}

/// Runs `visorsim scenario new`.
pub fn run(args: NewArgs) -> Result<Status, Failure> {
    if args.from.is_dir() {
        return Err(Failure::msg(format!("{} is a directory, not a disk image", args.from.display())));
    }
    let dir = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let dir =
        dir.canonicalize().context(|| format!("--out {}: its directory {}", args.out.display(), dir.display()))?;
    let stem = args.out.file_stem().expect("json_path checked it").to_string_lossy().into_owned();
    let out = dir.join(format!("{stem}.json"));
    refuse_existing(&args.out, args.force)?;

    let input = ImageInput::open(&args.from).context(|| format!("Opening {}", args.from.display()))?;
    // The runner reads a disk.image with the sector size its GPT header
    // shows, as every command does; so a 4Kn image is read the same way here.
    let sector_size = SectorSizeArg::resolve(None, input.raw_path());
    let disk = input.load(sector_size).context(|| format!("Reading {}", args.from.display()))?;
    let origin = ImageOrigin::read(&input, &disk).context(|| format!("Reading {}", args.from.display()))?;
    if origin.path == out {
        return Err(Failure::msg(format!("--out {} is the image itself: not replacing it", args.out.display())));
    }
    let story = explain(&disk, args.loader.loader());
    let copy_name = format!("{stem}.img");
    let placement = from_image::placement(&origin.path, origin.data_bytes, args.copy_threshold, &dir, &copy_name);
    let copy = dir.join(&copy_name);
    if matches!(placement, Placement::Copy { .. }) {
        refuse_existing(&copy, args.force)?;
    }
    let scenario = from_image::scenario(&story, &origin, &placement);
    let text = from_image::to_json(&scenario).context(|| format!("Writing {}", args.out.display()))?;

    // The scenario must pass on the image as it is now: run it on the
    // image's raw form (the bytes its copy would hold) before writing.
    let mut check = scenario.clone();
    let raw = input.raw_path().canonicalize().context(|| format!("Reading {}", args.from.display()))?;
    check.disk.image = Some(raw.display().to_string());
    let result = visorsim_scenario::run(&check, Path::new("/"))
        .context(|| format!("Running the scenario made from {}", args.from.display()))?;
    if !result.passed() {
        return Err(Failure::msg(format!(
            "the scenario made from {} does not pass on it (explain and the scenario runner disagree about this disk: a visorsim bug); nothing written:\n{}",
            args.from.display(),
            result.render().trim_end()
        )));
    }

    if matches!(placement, Placement::Copy { .. }) {
        FileDisk::save_sparse(&disk, &copy).context(|| format!("Writing {}", copy.display()))?;
    }
    if let Err(e) = write_atomically(&out, text.as_bytes()) {
        if matches!(placement, Placement::Copy { .. }) {
            let _ = std::fs::remove_file(&copy);
        }
        return Err(Failure::with(format!("Writing {}", args.out.display()), e));
    }

    let mib = |b: u64| format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20));
    println!(
        "wrote {} from {} ({}, {} of data), {} steps; it passes on the image now",
        args.out.display(),
        args.from.display(),
        origin.format.name(),
        mib(origin.data_bytes),
        scenario.steps.len()
    );
    match &placement {
        Placement::Copy { file_name } => println!(
            "disk.image: {file_name}, a sparse copy beside it ({} of data, within the {} copy threshold)",
            mib(origin.data_bytes),
            mib(args.copy_threshold)
        ),
        Placement::Reference { path } => println!(
            "disk.image: {path}, the image itself ({} of data, above the {} copy threshold)",
            mib(origin.data_bytes),
            mib(args.copy_threshold)
        ),
    }
    println!("next boot: {}", story.next_boot.outcome);
    println!(
        "next: add the field bug's steps after step 3, then `visorsim run {}` (under scenarios/, `cargo test` runs it too)",
        args.out.display()
    );
    Ok(Status::Success)
}

/// Writes `bytes` to `path` through a temporary file in its directory
/// (created with the umask's permissions, as any file the user writes),
/// synced, then renamed over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use visorsim_scenario::from_image::DEFAULT_COPY_THRESHOLD;

    use super::*;

    #[test]
    fn the_flags_default_is_the_librarys_threshold() {
        assert_eq!(parse_threshold("16M"), Ok(DEFAULT_COPY_THRESHOLD));
        assert!(json_path("dir/bug.json").is_ok());
        assert!(json_path("dir/bug.img").unwrap_err().contains("does not end in .json"));
    }
}
