//! `visorsim explain`: why a disk image boots what it boots, told for a
//! support engineer, each point with the rule that decides it (the logic is
//! `visorsim_host::explain`). The image may be raw, vmdk, qcow2 or vhdx; it
//! is only read (non-raw images through a sparse raw temporary).

use std::path::PathBuf;

use clap::Args;
use visorsim_host::explain::explain;

use crate::args::{LoaderArg, SectorSizeArg};
use crate::failure::{Failure, Status};
use crate::image_open::open_image;

/// Arguments of `visorsim explain`.
#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Disk image: raw, vmdk, qcow2 or vhdx (only read; never modified).
    image: PathBuf,
    /// Print the same facts as JSON.
    #[arg(long)]
    json: bool,
    /// Which bootloader decides: current (ESXi 7.0 to 9.0) or 6.7u1 (ESXi 6.7u1/6.7u2).
    #[arg(long, value_enum, default_value_t = LoaderArg::Current)]
    loader: LoaderArg,
    /// Logical sector size of the image [default: detected from its GPT header, else 512].
    #[arg(long, value_enum)]
    sector_size: Option<SectorSizeArg>,
}

/// Runs `visorsim explain`: exit 0 whenever the disk could be read.
pub fn run(args: ExplainArgs) -> Result<Status, Failure> {
    if args.image.is_dir() {
        return Err(Failure::msg(format!("{} is a directory, not a disk image", args.image.display())));
    }
    let input = open_image(&args.image, args.sector_size)?;
    let disk = input.load()?;
    let story = explain(&disk, args.loader.loader());
    if args.json {
        let mut value = serde_json::to_value(&story).expect("serialisable");
        value["image"] = serde_json::Value::String(args.image.display().to_string());
        value["format"] = serde_json::Value::String(input.format().name().to_owned());
        println!("{}", serde_json::to_string_pretty(&value).expect("serialisable"));
    } else {
        println!("{} ({})", args.image.display(), input.format().name());
        print!("{}", story.render());
    }
    Ok(Status::Success)
}
