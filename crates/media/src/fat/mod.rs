//! FAT16 volumes: our own formatter, `fatfs` for files, and the FAT core
//! the reader and the write operations share.
//!
//! Why a formatter of our own: `fatfs::format_volume` reserves exactly one
//! sector on FAT16, which puts the first FAT in sector 1 — where ESXi keeps
//! the VMware FAT UUID. ESXi's banks reserve more; with 4 reserved sectors a
//! real 250 MB bank gets exactly the 63,929 clusters of 4 KiB that real banks
//! have. Files are then written and read with `fatfs` ([`mount`]).
//!
//! ```text
//!   sector 0          boot sector (BPB, 0x55AA)
//!   sector 1          VMware FAT UUID (written by `vmfat`, ignored by FAT)
//!   sectors 2..R      reserved, zero
//!   R ..              FAT #1, FAT #2 (FAT[0] = 0xFFF8, FAT[1] = 0xFFFF: clean)
//!   ..                root directory (512 entries)
//!   ..                data clusters
//! ```
//!
//! Cluster size: 4 KiB like real banks, doubled while the volume would have
//! more than 65,524 clusters, halved (down to one sector) while it would have
//! fewer than 4,085, so the result is a FAT16 that `fsck.fat` accepts. Only a
//! volume too small for FAT16 even with one-sector clusters (the 4 MB system
//! partition on 4Kn media) becomes a FAT12.
//!
//! The modules, each owning one part of the on-disk format:
//!
//! ```text
//!   geometry  boot sector <-> Geometry; Regions (absolute LBAs)
//!   dirent    32-byte directory entries and LFN slots; FatFile
//!   table     FAT12/16 entry decode/encode, bounded chain walks
//!   names     8.3 short names, display, LFN checksum, Linux name rules
//!   read      esx-boot's read-only view (FatReader)        (was `fatread`)
//!   dir       long-name listings and lookups (DirSlot)
//!   ops       Linux vfat's mkdir fix-up and `mv -f`        (was `fatops`)
//!   check     what `fsck.fat -n` finds, and `fsck.fat -a`'s repairs
//! ```
//!
//! Only `geometry`, `read`, `dir`, `ops` and `check` items are public API (through
//! this module, [`crate::fatread`] and [`crate::fatops`]); the rest is the
//! crate's shared core.

use std::io;

use fatfs::{Date, DateTime, FileSystem, FsOptions, Time, TimeProvider};
use visorsim_disk::{BlockDevice, ByteIo, DiskError};

pub mod check;
pub(crate) mod dir;
pub(crate) mod dirent;
pub(crate) mod geometry;
pub(crate) mod names;
pub mod ops;
pub mod read;
pub(crate) mod table;

pub use check::{
    check_volume, repair_volume, FatCheck, FatKind, Finding, FindingClass, RepairError, RepairReport, Severity,
};
pub use geometry::{BootSectorError, Geometry, RESERVED_SECTORS, ROOT_ENTRIES};

/// Why a FAT volume could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum FatError {
    /// The partition cannot hold a FAT16 volume.
    #[error("Cannot make a FAT16 volume: {0}")]
    Geometry(String),
    /// The device failed.
    #[error("Writing the FAT16 volume")]
    Disk(#[from] DiskError),
}

/// Formats the `total_sectors` sectors at `first_lba` as an empty FAT16
/// volume with serial number `volume_id`. Sector 1 is left zero for the
/// VMware UUID.
pub fn format<D: BlockDevice>(
    dev: &mut D,
    first_lba: u64,
    total_sectors: u64,
    volume_id: u32,
) -> Result<Geometry, FatError> {
    let ss = dev.sector_size().bytes();
    let g = Geometry::fat16(total_sectors, ss)?;
    dev.write_sectors(first_lba, &g.boot_sector(first_lba, volume_id))?;

    // Zero the rest of the reserved area, the FATs and the root directory
    // (a reformat must not leave old metadata behind).
    let meta_end = u64::from(g.first_data_sector());
    zero_sectors(dev, first_lba + 1, meta_end - 1)?;
    let mut fat_head = vec![0u8; ss as usize];
    if g.fat_bits == 12 {
        fat_head[..3].copy_from_slice(&[0xF8, 0xFF, 0xFF]);
    } else {
        fat_head[..4].copy_from_slice(&[0xF8, 0xFF, 0xFF, 0xFF]);
    }
    for fat in 0..g.fats {
        let lba = first_lba + u64::from(g.reserved_sectors + fat * g.fat_sectors);
        dev.write_sectors(lba, &fat_head)?;
    }
    dev.flush()?;
    Ok(g)
}

fn zero_sectors<D: BlockDevice>(dev: &mut D, mut lba: u64, mut count: u64) -> Result<(), DiskError> {
    let per_write = (1u64 << 20) / dev.sector_size().bytes_u64();
    let zeros = vec![0u8; (per_write * dev.sector_size().bytes_u64()) as usize];
    while count > 0 {
        let n = count.min(per_write);
        dev.write_sectors(lba, &zeros[..(n * dev.sector_size().bytes_u64()) as usize])?;
        lba += n;
        count -= n;
    }
    Ok(())
}

/// A FAT volume mounted with `fatfs` over a byte window of a device.
pub type Volume<D> = FileSystem<ByteIo<D>>;

/// Mounts the FAT volume of `total_sectors` sectors at `first_lba`.
/// Directory entries get the fixed time of `time` (deterministic output).
pub fn mount<D: BlockDevice>(
    dev: D,
    first_lba: u64,
    total_sectors: u64,
    time: &'static dyn TimeProvider,
) -> io::Result<Volume<D>> {
    let ss = dev.sector_size().bytes_u64();
    let io = ByteIo::window(dev, first_lba.saturating_mul(ss), total_sectors.saturating_mul(ss));
    FileSystem::new(io, FsOptions::new().update_accessed_date(false).time_provider(time))
}

/// A clock that always says the same time: what the image builder stamps on
/// every directory entry, so the same seed gives the same bytes.
#[derive(Debug)]
pub struct FixedTime {
    /// The date and time returned.
    pub at: DateTime,
}

impl TimeProvider for FixedTime {
    fn get_current_date(&self) -> Date {
        self.at.date
    }
    fn get_current_date_time(&self) -> DateTime {
        self.at
    }
}

/// The timestamp of synthetic images: 2026-01-01 00:00:00.
pub static IMAGE_TIME: FixedTime = FixedTime {
    at: DateTime { date: Date { year: 2026, month: 1, day: 1 }, time: Time { hour: 0, min: 0, sec: 0, millis: 0 } },
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use visorsim_disk::{MemDisk, SectorSize};

    #[test]
    fn format_then_write_and_read_a_file() {
        for size in [SectorSize::S512, SectorSize::S4096] {
            let sectors = 32 * 1024 * 1024 / size.bytes_u64();
            let mut disk = MemDisk::new(sectors + 100, size);
            format(&mut disk, 100, sectors, 0x1234_5678).unwrap();
            {
                let fs = mount(&mut disk, 100, sectors, &IMAGE_TIME).unwrap();
                assert_eq!(fs.fat_type(), fatfs::FatType::Fat16);
                fs.root_dir().create_file("boot.cfg").unwrap().write_all(b"bootstate=0\n").unwrap();
                fs.unmount().unwrap();
            }
            let fs = mount(&mut disk, 100, sectors, &IMAGE_TIME).unwrap();
            let mut text = String::new();
            fs.root_dir().open_file("BOOT.CFG").unwrap().read_to_string(&mut text).unwrap();
            assert_eq!(text, "bootstate=0\n");
            assert!(!fs.read_status_flags().unwrap().dirty());
        }
    }
}
