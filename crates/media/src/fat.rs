//! FAT16 volumes: our own formatter, `fatfs` for everything else.
//!
//! Why a formatter of our own: `fatfs::format_volume` reserves exactly one
//! sector on FAT16, which puts the first FAT in sector 1 — where ESXi keeps
//! the VMware FAT UUID. ESXi's banks reserve more; with 4 reserved sectors a
//! real 250 MB bank gets exactly the 63,929 clusters of 4 KiB that real banks
//! have. Files are then written and read with `fatfs`.
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

use std::io;

use fatfs::{Date, DateTime, FileSystem, FsOptions, Time, TimeProvider};
use serde::Serialize;
use visorsim_disk::{BlockDevice, ByteIo, DiskError};

/// Reserved sectors before the first FAT (boot sector, VMware UUID, two spare).
pub const RESERVED_SECTORS: u32 = 4;
/// Root directory entries.
pub const ROOT_ENTRIES: u32 = 512;
const MIN_FAT16_CLUSTERS: u64 = 4085;
const MAX_FAT16_CLUSTERS: u64 = 65524;
const PREFERRED_CLUSTER: u64 = 4096;
/// Largest cluster Linux, mtools and dosfstools accept (128 sectors of 512).
const MAX_CLUSTER: u64 = 65536;

/// The shape of a FAT16 volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Geometry {
    /// Bytes per sector (512 or 4096).
    pub bytes_per_sector: u32,
    /// Sectors per cluster.
    pub sectors_per_cluster: u32,
    /// Reserved sectors.
    pub reserved_sectors: u32,
    /// Number of FATs.
    pub fats: u32,
    /// Root directory entries.
    pub root_entries: u32,
    /// Sectors per FAT.
    pub fat_sectors: u32,
    /// FAT entry width: 16, or 12 for a volume too small for FAT16.
    pub fat_bits: u32,
    /// Sectors in the volume.
    pub total_sectors: u32,
    /// Data clusters.
    pub clusters: u32,
}

impl Geometry {
    /// Bytes per cluster.
    pub fn cluster_bytes(&self) -> u64 {
        u64::from(self.bytes_per_sector) * u64::from(self.sectors_per_cluster)
    }

    fn root_dir_sectors(&self) -> u32 {
        (self.root_entries * 32).div_ceil(self.bytes_per_sector)
    }

    /// First sector of the data area, relative to the volume.
    pub fn first_data_sector(&self) -> u32 {
        self.reserved_sectors + self.fats * self.fat_sectors + self.root_dir_sectors()
    }

    /// Computes the FAT16 geometry of a volume of `total_sectors` sectors
    /// (FAT12 when it is too small for FAT16).
    pub fn fat16(total_sectors: u64, bytes_per_sector: u32) -> Result<Geometry, FatError> {
        let too = |what: &str| {
            FatError::Geometry(format!("{total_sectors} sectors of {bytes_per_sector} bytes are {what} for FAT16"))
        };
        let total = u32::try_from(total_sectors).map_err(|_| too("too many"))?;
        let mut cluster = PREFERRED_CLUSTER.max(u64::from(bytes_per_sector));
        loop {
            let spc = (cluster / u64::from(bytes_per_sector)) as u32;
            let geometry =
                Geometry::with_cluster(total, bytes_per_sector, spc, RESERVED_SECTORS).ok_or_else(|| too("too few"))?;
            let clusters = u64::from(geometry.clusters);
            if clusters > MAX_FAT16_CLUSTERS {
                if cluster < MAX_CLUSTER {
                    cluster *= 2;
                    continue;
                }
                // Largest clusters and still too many: ESXi 7's 4 GiB banks
                // are just past what FAT16 can address. Their exact geometry
                // is not public; we keep the real partition size and leave
                // the excess unused in the reserved area.
                let excess = (clusters - MAX_FAT16_CLUSTERS) as u32 * spc;
                let mut g = geometry;
                for _ in 0..4 {
                    g = Geometry::with_cluster(
                        total,
                        bytes_per_sector,
                        spc,
                        RESERVED_SECTORS + excess + g.fat_sectors.saturating_sub(geometry.fat_sectors),
                    )
                    .ok_or_else(|| too("too many"))?;
                    if u64::from(g.clusters) <= MAX_FAT16_CLUSTERS {
                        return Ok(g);
                    }
                }
                return Err(too("too many"));
            } else if clusters < MIN_FAT16_CLUSTERS {
                if spc == 1 {
                    // Too small for FAT16 even with one-sector clusters: the
                    // 4 MB system partition of the ESXi 6.x layout on 4Kn
                    // media. Such a volume can only be FAT12.
                    let mut g = geometry;
                    g.fat_bits = 12;
                    g.fat_sectors = 1;
                    let g = g.settle().ok_or_else(|| too("too few"))?;
                    return if g.clusters > 0 { Ok(g) } else { Err(too("too few")) };
                }
                cluster /= 2;
            } else {
                return Ok(geometry);
            }
        }
    }

    fn with_cluster(total: u32, bytes_per_sector: u32, spc: u32, reserved_sectors: u32) -> Option<Geometry> {
        let g = Geometry {
            bytes_per_sector,
            sectors_per_cluster: spc,
            reserved_sectors,
            fats: 2,
            root_entries: ROOT_ENTRIES,
            fat_sectors: 1,
            fat_bits: 16,
            total_sectors: total,
            clusters: 0,
        };
        g.settle()
    }

    /// The FAT size depends on the cluster count, which depends on the FAT
    /// size: iterate to the fixed point (two rounds in practice).
    fn settle(mut self) -> Option<Geometry> {
        for _ in 0..8 {
            let data = self.total_sectors.checked_sub(self.first_data_sector())?;
            self.clusters = data / self.sectors_per_cluster;
            let entries = self.clusters + 2;
            let fat_bytes = if self.fat_bits == 12 { (entries * 3).div_ceil(2) } else { entries * 2 };
            let fat_sectors = fat_bytes.div_ceil(self.bytes_per_sector);
            if fat_sectors == self.fat_sectors {
                return Some(self);
            }
            self.fat_sectors = fat_sectors;
        }
        let data = self.total_sectors.checked_sub(self.first_data_sector())?;
        self.clusters = data / self.sectors_per_cluster;
        Some(self)
    }
}

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
    let mut boot = vec![0u8; ss as usize];
    boot[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
    boot[3..11].copy_from_slice(b"MSDOS5.0");
    put16(&mut boot, 11, ss as u16);
    boot[13] = g.sectors_per_cluster as u8;
    put16(&mut boot, 14, g.reserved_sectors as u16);
    boot[16] = g.fats as u8;
    put16(&mut boot, 17, g.root_entries as u16);
    if g.total_sectors < 0x10000 {
        put16(&mut boot, 19, g.total_sectors as u16);
    } else {
        put32(&mut boot, 32, g.total_sectors);
    }
    boot[21] = 0xF8; // fixed disk
    put16(&mut boot, 22, g.fat_sectors as u16);
    put16(&mut boot, 24, 32); // sectors per track (CHS geometry is unused)
    put16(&mut boot, 26, 64); // heads
    put32(&mut boot, 28, u32::try_from(first_lba).unwrap_or(0)); // hidden sectors
    boot[36] = 0x80; // drive number
    boot[38] = 0x29; // extended boot signature
    put32(&mut boot, 39, volume_id);
    boot[43..54].copy_from_slice(b"NO NAME    ");
    boot[54..62].copy_from_slice(if g.fat_bits == 12 { b"FAT12   " } else { b"FAT16   " });
    boot[510] = 0x55;
    boot[511] = 0xAA;
    dev.write_sectors(first_lba, &boot)?;

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

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
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
    fn real_bank_size_gives_real_cluster_count() {
        let g = Geometry::fat16(511968, 512).unwrap();
        assert_eq!(g.cluster_bytes(), 4096);
        assert_eq!(g.clusters, 63929);
        assert_eq!(g.fat_sectors, 250);
    }

    #[test]
    fn every_layout_partition_size_is_a_fat16() {
        for sectors in [8128u64, 204800, 511968, 585696, 1024000, 8386560, 8388608] {
            let g = Geometry::fat16(sectors, 512).unwrap();
            assert!((4085..=65524).contains(&g.clusters), "{sectors}: {g:?}");
            assert!(g.first_data_sector() + g.clusters * g.sectors_per_cluster <= g.total_sectors);
        }
        assert!(Geometry::fat16(30, 512).is_err());
        let small_4kn = Geometry::fat16(1016, 4096).unwrap();
        assert_eq!((small_4kn.fat_bits, small_4kn.sectors_per_cluster), (12, 1));
    }

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
