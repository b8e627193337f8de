//! A disk image as a user hands it over: raw, or a vmdk, qcow2 or vhdx of a
//! customer's boot device, opened for reading without ever being modified.
//!
//! ```text
//!   ImageInput::open(path)
//!     ├─ raw (no known magic)   → read in place, by data extents
//!     └─ vmdk / qcow2 / vhdx    → checked first (a vmdk descriptor's
//!                                 extents exist; qemu-img check finds no
//!                                 corruption, no truncation, no backing
//!                                 loop), then qemu-img convert -O raw into
//!                                 a sparse temporary directory, removed on
//!                                 drop (and on SIGINT/SIGTERM under the
//!                                 CLI: visorsim_tools::cleanup)
//! ```
//!
//! Promises:
//! - the user's file is only ever read (raw images are opened read-only;
//!   qemu-img reads the others with `convert`, which never writes its input);
//! - the format is decided by the file's magic ([`ImageFormat::sniff`]), not
//!   by its name, so `customer.img` that is really a qcow2 is still read right;
//! - loading costs the data, not the virtual size: the raw file (given or
//!   converted, both sparse) is read by its data extents
//!   ([`FileDisk::load`]);
//! - an image that would read as another disk is refused with its name: a
//!   truncated qcow2 (qemu-img would read its missing clusters as zeros), a
//!   vmdk descriptor whose extent files are missing, a file qemu-img cannot
//!   open; qemu-img runs under its time limit ([`QemuImg::new`]).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use visorsim_disk::{DiskError, FileDisk, MemDisk, SectorSize};
use visorsim_tools::cleanup::{remove_on_signal, Registered};
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
    /// A directory where an image was expected.
    #[error("{} is a directory, not a disk image", path.display())]
    Directory {
        /// The path.
        path: PathBuf,
    },
    /// A vmdk descriptor names an extent file that is not there.
    #[error(
        "{} is a vmdk descriptor whose extent {extent:?} (line {line}) does not exist{}: \
         the descriptor holds no data itself; copy its extent files beside it",
        path.display(),
        if extent_path != &path.with_file_name(extent) { format!(" ({})", extent_path.display()) } else { String::new() }
    )]
    MissingExtent {
        /// The descriptor.
        path: PathBuf,
        /// The extent's file name as the descriptor gives it.
        extent: String,
        /// Where it was looked for.
        extent_path: PathBuf,
        /// The descriptor's line that names it (from 1).
        line: usize,
    },
    /// qemu-img could not convert it.
    #[error("Cannot read the {format} image {} through qemu-img", path.display())]
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
    // Removes it on SIGINT/SIGTERM meanwhile (when the CLI's handler runs).
    _on_signal: Option<Registered>,
}

impl ImageInput {
    /// Opens `path`: a raw image is used in place, any other format is
    /// checked and converted to a sparse raw temporary through qemu-img
    /// ([`QemuImg::new`]: `VISORSIM_QEMU_IMG`, `VISORSIM_QEMU_IMG_TIMEOUT`).
    pub fn open(path: &Path) -> Result<ImageInput, InputError> {
        ImageInput::open_with(path, &QemuImg::new())
    }

    /// [`ImageInput::open`] with this qemu-img (its program and time limit).
    pub fn open_with(path: &Path, qemu: &QemuImg) -> Result<ImageInput, InputError> {
        let format = ImageInput::sniff(path)?;
        if format == ImageFormat::Raw {
            return Ok(ImageInput {
                original: path.to_owned(),
                format,
                raw: path.to_owned(),
                _temp: None,
                _on_signal: None,
            });
        }
        let convert_error = |source| InputError::Convert { path: path.to_owned(), format, source };
        ImageInput::verify(path, format, qemu)?;
        let io_error = |source| InputError::Io { path: path.to_owned(), source };
        let temp = tempfile::Builder::new().prefix("visorsim-input.").tempdir().map_err(io_error)?;
        let on_signal = remove_on_signal(temp.path());
        let raw = temp.path().join("disk.img");
        qemu.convert(path, Some(format), &raw, ImageFormat::Raw).map_err(convert_error)?;
        Ok(ImageInput { original: path.to_owned(), format, raw, _temp: Some(temp), _on_signal: Some(on_signal) })
    }

    /// Refuses an image of `format` that would read as another disk, or
    /// not at all, before it is converted: a vmdk descriptor's missing
    /// extent ([`InputError::MissingExtent`]), damage or truncation that
    /// `qemu-img check` finds, a file qemu-img cannot open (a backing file
    /// that loops included: [`InputError::Convert`]). Raw passes.
    pub fn verify(path: &Path, format: ImageFormat, qemu: &QemuImg) -> Result<(), InputError> {
        if format == ImageFormat::Vmdk {
            check_descriptor_extents(path)?;
        }
        qemu.verify(path, format).map_err(|source| InputError::Convert { path: path.to_owned(), format, source })
    }

    /// The format of the file at `path` by its magic, reading its first
    /// 512 bytes (nothing else is done: no conversion, no check).
    pub fn sniff(path: &Path) -> Result<ImageFormat, InputError> {
        let io_error = |source| InputError::Io { path: path.to_owned(), source };
        let meta = std::fs::metadata(path).map_err(io_error)?;
        if meta.is_dir() {
            return Err(InputError::Directory { path: path.to_owned() });
        }
        let mut head = Vec::with_capacity(512);
        File::open(path).and_then(|f| f.take(512).read_to_end(&mut head)).map_err(io_error)?;
        Ok(ImageFormat::sniff(&head))
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

/// The most of a vmdk descriptor read to find its extents: descriptors are
/// a few hundred bytes; one embedded in a sparse extent starts with `KDMV`
/// and is not read here (qemu-img reads it).
const DESCRIPTOR_LIMIT: u64 = 64 * 1024;

/// For a text vmdk descriptor (`# Disk DescriptorFile`), that every extent
/// file it names exists, beside the descriptor as qemu-img looks for a
/// relative name. qemu-img would say "Could not open" too; this names the
/// descriptor, the line and what to do. Any other vmdk passes unchecked.
fn check_descriptor_extents(path: &Path) -> Result<(), InputError> {
    let io_error = |source| InputError::Io { path: path.to_owned(), source };
    let mut text = Vec::new();
    File::open(path).and_then(|f| f.take(DESCRIPTOR_LIMIT).read_to_end(&mut text)).map_err(io_error)?;
    if !text.starts_with(b"# Disk DescriptorFile") {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    for (index, line) in String::from_utf8_lossy(&text).lines().enumerate() {
        let Some(extent) = extent_file(line) else { continue };
        let extent_path = dir.join(extent);
        if !extent_path.exists() {
            return Err(InputError::MissingExtent {
                path: path.to_owned(),
                extent: extent.to_owned(),
                extent_path,
                line: index + 1,
            });
        }
    }
    Ok(())
}

/// The file name of an extent line of a vmdk descriptor
/// (`RW 16777216 FLAT "disk-flat.vmdk" 0`): access, size in sectors, type,
/// then the quoted name. `ZERO` extents have no file.
fn extent_file(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    let access = words.next()?;
    if !matches!(access, "RW" | "RDONLY" | "NOACCESS") {
        return None;
    }
    words.next()?.parse::<u64>().ok()?;
    let kind = words.next()?;
    if kind == "ZERO" {
        return None;
    }
    let rest = line.split_once('"')?.1;
    let name = rest.split_once('"')?.0;
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_lines_name_their_files() {
        assert_eq!(extent_file(r#"RW 32768 FLAT "flat-flat.vmdk" 0"#), Some("flat-flat.vmdk"));
        assert_eq!(extent_file(r#"RDONLY 4192256 SPARSE "a b-s001.vmdk""#), Some("a b-s001.vmdk"));
        assert_eq!(extent_file("RW 32768 ZERO"), None);
        for other in ["# Extent description", r#"ddb.adapterType = "ide""#, r#"createType="monolithicFlat""#, ""] {
            assert_eq!(extent_file(other), None, "{other}");
        }
    }

    #[test]
    fn a_descriptor_with_a_missing_extent_names_it_and_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let descriptor = dir.path().join("cust.vmdk");
        let text = "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n\n\
                    # Extent description\nRW 32768 FLAT \"cust-flat.vmdk\" 0\n";
        std::fs::write(&descriptor, text).unwrap();
        let err = ImageInput::open(&descriptor).unwrap_err();
        let InputError::MissingExtent { line, ref extent, .. } = err else { panic!("{err:?}") };
        assert_eq!((line, extent.as_str()), (6, "cust-flat.vmdk"));
        let message = err.to_string();
        assert!(message.starts_with(&format!("{} is a vmdk descriptor", descriptor.display())), "{message}");
        assert!(message.contains("\"cust-flat.vmdk\" (line 6) does not exist"), "{message}");
        // Present, it passes this check (qemu-img reads it).
        std::fs::write(dir.path().join("cust-flat.vmdk"), vec![0u8; 32768 * 512]).unwrap();
        check_descriptor_extents(&descriptor).unwrap();
    }

    #[test]
    fn a_directory_is_not_an_image() {
        let dir = tempfile::tempdir().unwrap();
        let err = ImageInput::open(dir.path()).unwrap_err();
        assert!(matches!(err, InputError::Directory { .. }), "{err:?}");
        assert!(err.to_string().ends_with("is a directory, not a disk image"), "{err}");
    }
}
