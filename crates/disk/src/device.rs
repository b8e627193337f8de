//! The [`BlockDevice`] trait and the sector sizes it supports.

use crate::error::{DiskError, DiskErrorKind};

/// Logical sector size of a device: 512 bytes (the common case, and what
/// every ESXi layout table assumes) or 4096 bytes (4Kn media).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SectorSize {
    /// 512-byte sectors.
    #[default]
    S512,
    /// 4096-byte sectors (4Kn).
    S4096,
}

impl SectorSize {
    /// Size in bytes.
    pub const fn bytes(self) -> u32 {
        match self {
            SectorSize::S512 => 512,
            SectorSize::S4096 => 4096,
        }
    }

    /// Size in bytes as `usize`, for buffer arithmetic.
    #[allow(clippy::len_without_is_empty)] // a size, not a container
    pub const fn len(self) -> usize {
        self.bytes() as usize
    }

    /// Size in bytes as `u64`, for offset arithmetic.
    pub const fn bytes_u64(self) -> u64 {
        self.bytes() as u64
    }

    /// The size with this many bytes, if it is a supported one.
    pub fn from_bytes(bytes: u32) -> Option<SectorSize> {
        match bytes {
            512 => Some(SectorSize::S512),
            4096 => Some(SectorSize::S4096),
            _ => None,
        }
    }
}

/// A disk addressed in whole sectors.
///
/// Reads and writes take a buffer of one or more whole sectors starting at
/// `lba`. Implementations must reject out-of-range and misaligned requests
/// with an error (see [`BlockDevice::check_range`]) and never panic on them.
pub trait BlockDevice {
    /// Logical sector size.
    fn sector_size(&self) -> SectorSize;

    /// Number of sectors on the device.
    fn sector_count(&self) -> u64;

    /// Reads `buf.len() / sector_size` sectors starting at `lba`.
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError>;

    /// Writes `buf.len() / sector_size` sectors starting at `lba`.
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), DiskError>;

    /// Makes every earlier write durable.
    fn flush(&mut self) -> Result<(), DiskError>;

    /// An identity of the bytes of `count` sectors at `lba`, when the device
    /// can give one without reading them: two equal tokens mean equal bytes.
    /// `None` (the default) means "unknown; read and compare the bytes".
    /// Caches of expensive results (inflated modules) key on it.
    fn content_token(&self, lba: u64, count: u64) -> Option<ContentToken> {
        let _ = (lba, count);
        None
    }

    /// Size of the device in bytes.
    fn size_bytes(&self) -> u64 {
        self.sector_count().saturating_mul(self.sector_size().bytes_u64())
    }

    /// Checks that `len` bytes at `lba` are whole sectors inside the device
    /// and returns the number of sectors.
    fn check_range(&self, lba: u64, len: usize) -> Result<u64, DiskError> {
        let sector = self.sector_size().len();
        if !len.is_multiple_of(sector) {
            return Err(DiskError::new(DiskErrorKind::Misaligned, lba)
                .with_detail(format!("buffer of {len} bytes is not a multiple of {sector}")));
        }
        let count = (len / sector) as u64;
        match lba.checked_add(count) {
            Some(end) if end <= self.sector_count() => Ok(count),
            _ => Err(DiskError::new(DiskErrorKind::OutOfRange, lba).with_detail(format!(
                "{count} sector(s) at LBA {lba} pass the end of a {}-sector device",
                self.sector_count()
            ))),
        }
    }
}

/// See [`BlockDevice::content_token`]. Holds the shared storage it names, so
/// the identity cannot be recycled while the token lives.
#[derive(Clone, Debug)]
pub struct ContentToken {
    pub(crate) lba: u64,
    pub(crate) count: u64,
    pub(crate) parts: Vec<Option<std::sync::Arc<[u8; crate::mem::CHUNK]>>>,
}

impl PartialEq for ContentToken {
    fn eq(&self, other: &ContentToken) -> bool {
        self.lba == other.lba
            && self.count == other.count
            && self.parts.len() == other.parts.len()
            && self.parts.iter().zip(&other.parts).all(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            })
    }
}

impl Eq for ContentToken {}

impl<D: BlockDevice + ?Sized> BlockDevice for &mut D {
    fn sector_size(&self) -> SectorSize {
        (**self).sector_size()
    }
    fn sector_count(&self) -> u64 {
        (**self).sector_count()
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        (**self).read_sectors(lba, buf)
    }
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), DiskError> {
        (**self).write_sectors(lba, buf)
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        (**self).flush()
    }
    fn content_token(&self, lba: u64, count: u64) -> Option<ContentToken> {
        (**self).content_token(lba, count)
    }
}

impl<D: BlockDevice + ?Sized> BlockDevice for Box<D> {
    fn sector_size(&self) -> SectorSize {
        (**self).sector_size()
    }
    fn sector_count(&self) -> u64 {
        (**self).sector_count()
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        (**self).read_sectors(lba, buf)
    }
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), DiskError> {
        (**self).write_sectors(lba, buf)
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        (**self).flush()
    }
    fn content_token(&self, lba: u64, count: u64) -> Option<ContentToken> {
        (**self).content_token(lba, count)
    }
}
