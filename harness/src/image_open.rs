//! How a command opens the disk image it is given: one path for `inspect`,
//! `boot`, `explain` and `host`, so every command takes the same formats
//! and says the same things about them.
//!
//! - [`open_image`]: raw is used in place; vmdk, qcow2 and vhdx are
//!   checked and converted into a sparse raw temporary
//!   ([`ImageInput`], which lives as long as the [`OpenImage`]). The
//!   user's file is only ever read, except a raw image opened with
//!   [`OpenImage::writable`], which is the file itself (`boot` without
//!   `--dry-run` writes its bootstate digits there, as a real boot does).
//! - A converted image is writable too, but what is written goes to the
//!   temporary and is gone when the command ends: [`OpenImage::unkept_note`]
//!   says so in the words the commands print (text and JSON), with how to
//!   keep the writes (`visorsim import`, then work on the raw image).
//! - [`require_raw`]: `host` keeps the host's state across invocations in
//!   the image itself, so writes that vanish would make every step lie;
//!   it refuses other formats, naming the format and the `import` command.

use std::path::{Path, PathBuf};

use visorsim_disk::{FileDisk, MemDisk, SectorSize};
use visorsim_scenario::input::ImageInput;
use visorsim_tools::ImageFormat;

use crate::args::SectorSizeArg;
use crate::failure::{Context, Failure};

/// A disk image opened for a command: the user's path, its format, the raw
/// image to read (the file itself, or a converted temporary) and the
/// sector size it is read with.
#[derive(Debug)]
pub struct OpenImage {
    input: ImageInput,
    sector_size: SectorSize,
}

/// Opens `path` for a command, in any format visorsim reads (raw, vmdk,
/// qcow2, vhdx: by magic, not by name). `sector_size` is `--sector-size`;
/// without it, what the raw image's GPT header says.
pub fn open_image(path: &Path, sector_size: Option<SectorSizeArg>) -> Result<OpenImage, Failure> {
    let input = ImageInput::open(path).context(|| format!("Opening {}", path.display()))?;
    let sector_size = SectorSizeArg::resolve(sector_size, input.raw_path());
    Ok(OpenImage { input, sector_size })
}

impl OpenImage {
    /// The path the user gave.
    pub fn path(&self) -> &Path {
        self.input.original()
    }

    /// Its format, by magic.
    pub fn format(&self) -> ImageFormat {
        self.input.format()
    }

    /// The raw image read: the user's file, or the converted temporary.
    pub fn raw_path(&self) -> &Path {
        self.input.raw_path()
    }

    /// The sector size the image is read with.
    pub fn sector_size(&self) -> SectorSize {
        self.sector_size
    }

    /// The raw image, read-only.
    pub fn read_only(&self) -> Result<FileDisk, Failure> {
        FileDisk::open_read_only(self.raw_path(), self.sector_size)
            .context(|| format!("Opening {}", self.path().display()))
    }

    /// The raw image for writing: the user's file when it is raw, else the
    /// converted temporary, whose writes are not kept
    /// ([`OpenImage::writes_kept`]).
    pub fn writable(&self) -> Result<FileDisk, Failure> {
        FileDisk::open(self.raw_path(), self.sector_size)
            .context(|| format!("Opening {} for writing", self.path().display()))
    }

    /// The whole image in memory, read by its data extents (sparse).
    pub fn load(&self) -> Result<MemDisk, Failure> {
        self.input.load(self.sector_size).context(|| format!("Reading {}", self.path().display()))
    }

    /// Whether writes through [`OpenImage::writable`] reach the user's file.
    pub fn writes_kept(&self) -> bool {
        !self.input.is_converted()
    }

    /// For a converted image, what a command that wrote to it must say:
    /// the writes went to a temporary raw copy and are gone, and how to
    /// keep them. `None` for a raw image.
    pub fn unkept_note(&self, what: &str) -> Option<String> {
        if self.writes_kept() {
            return None;
        }
        let path = self.path().display();
        Some(format!(
            "{path} is a {} image: {what} ran on a temporary raw copy and its writes were not kept ({path} is \
             unchanged); to keep them, `visorsim import {path} --out {}` and use that raw image",
            self.format(),
            raw_name(self.path()).display()
        ))
    }
}

/// Refuses an image that is not raw for a command that keeps state in it
/// across invocations (`host`): its writes would vanish with the
/// temporary. Names the format and the `import` command that makes a raw
/// image of it.
pub fn require_raw(path: &Path, command: &str) -> Result<(), Failure> {
    let format = ImageInput::sniff(path).context(|| format!("Opening {}", path.display()))?;
    if format == ImageFormat::Raw {
        return Ok(());
    }
    Err(Failure::msg(format!(
        "{} is a {format} image: `visorsim {command}` keeps the host's state in the image it boots, step after \
         step, so it needs a raw image it can write; make one with `visorsim import {} --out {}` and run \
         `visorsim {command}` on that",
        path.display(),
        path.display(),
        raw_name(path).display()
    )))
}

/// The raw image's name a note suggests for `import --out`: the same name
/// with `.img` for its extension (`.raw.img` when it already ends in `.img`).
fn raw_name(path: &Path) -> PathBuf {
    let raw = path.with_extension("img");
    if raw == path {
        path.with_extension("raw.img")
    } else {
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suggested_raw_name_replaces_the_extension() {
        assert_eq!(raw_name(Path::new("/cases/cust.qcow2")), PathBuf::from("/cases/cust.img"));
        assert_eq!(raw_name(Path::new("cust")), PathBuf::from("cust.img"));
        assert_eq!(raw_name(Path::new("cust.img")), PathBuf::from("cust.raw.img"));
    }
}
