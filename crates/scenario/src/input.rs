//! A disk image as a user hands it over: raw, or a vmdk, qcow2 or vhdx of a
//! customer's boot device, opened for reading without ever being modified.
//!
//! ```text
//!   ImageInput::open(path)
//!     ├─ raw (no known magic)   → read in place, by data extents
//!     └─ vmdk / qcow2 / vhdx    → qemu-img convert -O raw into a sparse
//!                                 temporary directory, removed on drop
//! ```
//!
//! Promises:
//! - the user's file is only ever read (raw images are opened read-only;
//!   qemu-img reads the others with `convert`, which never writes its input);
//! - the format is decided by the file's magic ([`ImageFormat::sniff`]), not
//!   by its name, so `customer.img` that is really a qcow2 is still read right;
//! - loading costs the data, not the virtual size: the raw file (given or
//!   converted, both sparse) is read by its data extents
//!   ([`FileDisk::load`]).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use visorsim_disk::{DiskError, FileDisk, MemDisk, SectorSize};
use visorsim_tools::{ImageFormat, QemuError, QemuImg};

/// Why an image could not be opened or loaded.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read.
    #[error("Cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// qemu-img could not convert it.
    #[error("Cannot convert the {format} image {} to raw", path.display())]
    Convert {
        /// The file.
        path: PathBuf,
        /// Its format by magic.
        format: ImageFormat,
        /// The cause.
        #[source]
        source: QemuError,
    },
    /// Reading the (raw) disk failed at a sector.
    #[error("Cannot load {}", path.display())]
    Disk {
        /// The file.
        path: PathBuf,
        /// The cause, with the LBA.
        #[source]
        source: DiskError,
    },
}

/// An image opened for reading: its raw form, which is the file itself or
/// a converted temporary that lives as long as this value.
#[derive(Debug)]
pub struct ImageInput {
    original: PathBuf,
    format: ImageFormat,
    raw: PathBuf,
    // Holds the converted raw file; removed on drop.
    _temp: Option<tempfile::TempDir>,
}

impl ImageInput {
    /// Opens `path`: a raw image is used in place, any other format is
    /// converted to a sparse raw temporary through qemu-img.
    pub fn open(path: &Path) -> Result<ImageInput, InputError> {
        let io_error = |source| InputError::Io { path: path.to_owned(), source };
        let mut head = Vec::with_capacity(512);
        File::open(path).and_then(|f| f.take(512).read_to_end(&mut head)).map_err(io_error)?;
        let format = ImageFormat::sniff(&head);
        if format == ImageFormat::Raw {
            return Ok(ImageInput { original: path.to_owned(), format, raw: path.to_owned(), _temp: None });
        }
        let temp = tempfile::Builder::new().prefix("visorsim-input.").tempdir().map_err(io_error)?;
        let raw = temp.path().join("disk.img");
        QemuImg::new().convert(path, Some(format), &raw, ImageFormat::Raw).map_err(|source| InputError::Convert {
            path: path.to_owned(),
            format,
            source,
        })?;
        Ok(ImageInput { original: path.to_owned(), format, raw, _temp: Some(temp) })
    }

    /// The file the user named.
    pub fn original(&self) -> &Path {
        &self.original
    }

    /// Its format, by magic.
    pub fn format(&self) -> ImageFormat {
        self.format
    }

    /// The raw image to read: the original for a raw input, else the
    /// converted temporary (valid while `self` lives). Never write to it
    /// when it is the original.
    pub fn raw_path(&self) -> &Path {
        &self.raw
    }

    /// Whether the raw image is a temporary conversion (so writes to it
    /// never reach the user's file).
    pub fn is_converted(&self) -> bool {
        self._temp.is_some()
    }

    /// Opens the raw image read-only.
    pub fn file_disk(&self, sector_size: SectorSize) -> Result<FileDisk, InputError> {
        FileDisk::open_read_only(&self.raw, sector_size)
            .map_err(|source| InputError::Io { path: self.original.clone(), source })
    }

    /// Loads the image into a sparse memory disk, reading only its data.
    pub fn load(&self, sector_size: SectorSize) -> Result<MemDisk, InputError> {
        self.file_disk(sector_size)?.load().map_err(|source| InputError::Disk { path: self.original.clone(), source })
    }
}
