//! [`FileDisk`]: a raw disk image file, read and written with positional I/O.
//!
//! A new image is created sparse (`set_len`, no data written), and
//! [`FileDisk::save_sparse`] writes a [`MemDisk`] out by writing only its
//! stored chunks, so an 8 GiB image holding 300 MB costs about 300 MB of
//! disk. An image opened read-only can never be modified: writes fail with
//! [`DiskErrorKind::ReadOnly`] before reaching the file.
//!
//! [`FileDisk::load`] costs the data, not the virtual size: it asks the file
//! system for the file's data extents (`lseek` with `SEEK_DATA` and
//! `SEEK_HOLE`, through `rustix`, so no `unsafe` here) and reads only those.
//! Where the file system cannot say (`EINVAL`/`EOPNOTSUPP`), the whole file
//! is one extent and zero chunks are still skipped after reading.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::device::{BlockDevice, SectorSize};
use crate::error::{DiskError, DiskErrorKind};
use crate::mem::MemDisk;

/// A raw image file used as a block device.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    path: PathBuf,
    sector_size: SectorSize,
    sectors: u64,
    trailing_bytes: u64,
    writable: bool,
}

impl FileDisk {
    /// Opens an existing image read-only. A size that is not a whole number
    /// of sectors is allowed: the partial last sector is not addressable
    /// (see [`FileDisk::trailing_bytes`]).
    pub fn open_read_only(path: impl AsRef<Path>, sector_size: SectorSize) -> io::Result<FileDisk> {
        let path = path.as_ref();
        let file = File::open(path)?;
        FileDisk::from_file(file, path, sector_size, false)
    }

    /// Opens an existing image for reading and writing.
    pub fn open(path: impl AsRef<Path>, sector_size: SectorSize) -> io::Result<FileDisk> {
        let path = path.as_ref();
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        FileDisk::from_file(file, path, sector_size, true)
    }

    /// Creates (or truncates) a sparse all-zero image of `sectors` sectors.
    pub fn create(path: impl AsRef<Path>, sectors: u64, sector_size: SectorSize) -> io::Result<FileDisk> {
        let path = path.as_ref();
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        let bytes = sectors
            .checked_mul(sector_size.bytes_u64())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "disk size overflows"))?;
        file.set_len(bytes)?;
        FileDisk::from_file(file, path, sector_size, true)
    }

    fn from_file(file: File, path: &Path, sector_size: SectorSize, writable: bool) -> io::Result<FileDisk> {
        let len = file.metadata()?.len();
        Ok(FileDisk {
            file,
            path: path.to_owned(),
            sector_size,
            sectors: len / sector_size.bytes_u64(),
            trailing_bytes: len % sector_size.bytes_u64(),
            writable,
        })
    }

    /// Path of the image.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes after the last whole sector (non-zero for a truncated image).
    pub fn trailing_bytes(&self) -> u64 {
        self.trailing_bytes
    }

    /// Writes `disk` to `path` as a sparse raw image, atomically: the data
    /// goes to a temporary file in the same directory, is synced, and is
    /// renamed over `path`. Only stored chunks are written.
    pub fn save_sparse(disk: &MemDisk, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "output path has no file name"))?;
        let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
        let result = (|| {
            let file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            file.set_len(disk.size_bytes())?;
            for (offset, data) in disk.stored_chunks() {
                file.write_all_at(data, offset)?;
            }
            file.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// The byte ranges `(start, end)` of the file that hold data, in file
    /// order, as the file system reports them (`SEEK_DATA`/`SEEK_HOLE`).
    /// Everything outside them reads as zeros. A file system that cannot
    /// tell gives one range over the whole file.
    pub fn data_extents(&self) -> io::Result<Vec<(u64, u64)>> {
        let len = self.file.metadata()?.len();
        let mut extents = Vec::new();
        let mut pos = 0u64;
        while pos < len {
            let start = match rustix::fs::seek(&self.file, rustix::fs::SeekFrom::Data(pos)) {
                Ok(start) => start,
                // No data at or after `pos`: the rest is a hole.
                Err(rustix::io::Errno::NXIO) => break,
                Err(rustix::io::Errno::INVAL | rustix::io::Errno::OPNOTSUPP) if pos == 0 => {
                    return Ok(vec![(0, len)]);
                }
                Err(e) => return Err(e.into()),
            };
            if start >= len {
                break;
            }
            let end = match rustix::fs::seek(&self.file, rustix::fs::SeekFrom::Hole(start)) {
                Ok(end) => end.min(len),
                Err(e) => return Err(e.into()),
            };
            if end <= start {
                // A file system that reports no progress: read the rest.
                extents.push((start, len));
                break;
            }
            extents.push((start, end));
            pos = end;
        }
        Ok(extents)
    }

    /// Reads the image into a sparse [`MemDisk`]: only the file's data
    /// extents are read (see [`FileDisk::data_extents`]), and zero chunks
    /// inside them are not stored. Time and memory follow the data, not the
    /// virtual size.
    pub fn load(&mut self) -> Result<MemDisk, DiskError> {
        let mut disk = MemDisk::new(self.sectors, self.sector_size);
        let extents = self.data_extents().map_err(|e| {
            DiskError::new(DiskErrorKind::Io, 0)
                .with_detail(format!("finding the data extents of {}", self.path.display()))
                .with_source(e)
        })?;
        let step = 1u64 << 20;
        let sector = self.sector_size.bytes_u64();
        let mut buf = vec![0u8; step as usize];
        // Extents are in file order; `done` keeps a sector shared by two
        // extents (file-system blocks smaller than a sector) from being read twice.
        let mut done = 0u64;
        for (start, end) in extents {
            let mut lba = (start / sector).max(done);
            let last = end.div_ceil(sector).min(self.sectors);
            while lba < last {
                let count = (last - lba).min(step / sector);
                let len = (count * sector) as usize;
                self.read_sectors(lba, &mut buf[..len])?;
                if !is_zero(&buf[..len]) {
                    disk.write_sectors(lba, &buf[..len])?;
                }
                lba += count;
            }
            done = done.max(last);
        }
        Ok(disk)
    }
}

/// Whether `buf` is all zeros. OR-folding each 4 KiB piece vectorises;
/// `iter().any()` with its early exit does not, and costs as much as the
/// read itself when loading a large sparse image.
fn is_zero(buf: &[u8]) -> bool {
    buf.chunks(4096).all(|piece| piece.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

impl BlockDevice for FileDisk {
    fn sector_size(&self) -> SectorSize {
        self.sector_size
    }

    fn sector_count(&self) -> u64 {
        self.sectors
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.check_range(lba, buf.len())?;
        self.file.read_exact_at(buf, lba * self.sector_size.bytes_u64()).map_err(|e| {
            DiskError::new(DiskErrorKind::Io, lba)
                .with_detail(format!("reading {}", self.path.display()))
                .with_source(e)
        })
    }

    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), DiskError> {
        self.check_range(lba, buf.len())?;
        if !self.writable {
            return Err(DiskError::new(DiskErrorKind::ReadOnly, lba)
                .with_detail(format!("{} is open read-only", self.path.display())));
        }
        self.file.write_all_at(buf, lba * self.sector_size.bytes_u64()).map_err(|e| {
            DiskError::new(DiskErrorKind::Io, lba)
                .with_detail(format!("writing {}", self.path.display()))
                .with_source(e)
        })
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        if !self.writable {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| {
            DiskError::new(DiskErrorKind::Io, 0).with_detail(format!("syncing {}", self.path.display())).with_source(e)
        })
    }
}
