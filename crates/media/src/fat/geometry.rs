//! Boot-sector geometry: the shape of a FAT12/16 volume, computed for the
//! formatter ([`Geometry::fat16`]), written as a BPB ([`Geometry::boot_sector`]),
//! read back from one with every field checked ([`Geometry::from_boot_sector`]),
//! and placed on the device ([`Regions`]).
//!
//! ```text
//!   boot sector (BPB), the fields used:
//!   0  jump (3)   3 OEM name (8)   11 BytsPerSec (2)   13 SecPerClus (1)
//!   14 RsvdSecCnt (2)   16 NumFATs (1)   17 RootEntCnt (2)   19 TotSec16 (2)
//!   21 Media (1)   22 FATSz16 (2)   24 SecPerTrk (2)   26 NumHeads (2)
//!   28 HiddSec (4)   32 TotSec32 (4)   36 DrvNum   38 BootSig 0x29
//!   39 VolID (4)   43 VolLab (11)   54 FilSysType (8)   510 0x55 0xAA
//!
//!   volume:  reserved | FAT #1 .. FAT #n | root directory | clusters 2, 3, ..
//!            ^first_lba ^fat_lba           ^root_lba        ^data_lba   ^end_lba
//! ```
//!
//! Contract: nothing here panics or overflows on any bytes. The FAT type is
//! decided by cluster count (Microsoft's rule, also `libfat_open`'s): fewer
//! than [`MIN_FAT16_CLUSTERS`] is FAT12, up to [`MAX_FAT16_CLUSTERS`] FAT16;
//! FAT32 is refused. A [`Geometry`] from [`Geometry::from_boot_sector`] has
//! all its sums below 2^32 and its regions inside the partition.

use serde::Serialize;

use super::dirent::ENTRY_BYTES;
use crate::le::{le16, le32, put16, put32};

/// Reserved sectors before the first FAT (boot sector, VMware UUID, two spare).
pub const RESERVED_SECTORS: u32 = 4;
/// Root directory entries.
pub const ROOT_ENTRIES: u32 = 512;
/// Fewest clusters of a FAT16 volume (fewer make a FAT12).
pub const MIN_FAT16_CLUSTERS: u64 = 4085;
/// Most clusters of a FAT16 volume (more make a FAT32).
pub const MAX_FAT16_CLUSTERS: u64 = 65524;
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

/// Why a boot sector does not describe a FAT12/16 volume this crate reads.
#[derive(Debug, thiserror::Error)]
pub enum BootSectorError {
    /// A field is out of range.
    #[error("{field} = {value} {why}")]
    BadField {
        /// The field, by its name in Microsoft's FAT specification.
        field: &'static str,
        /// Its value.
        value: u64,
        /// What is wrong with it.
        why: String,
    },
    /// A FAT32 volume, or one neither FAT16 nor FAT32.
    #[error("{what}")]
    Unsupported {
        /// What it is.
        what: String,
    },
}

impl Geometry {
    /// Bytes per cluster.
    pub fn cluster_bytes(&self) -> u64 {
        u64::from(self.bytes_per_sector) * u64::from(self.sectors_per_cluster)
    }

    /// Sectors of the root directory.
    pub(crate) fn root_dir_sectors(&self) -> u32 {
        self.root_entries.saturating_mul(ENTRY_BYTES as u32).div_ceil(self.bytes_per_sector.max(1))
    }

    /// First sector of the data area, relative to the volume.
    pub fn first_data_sector(&self) -> u32 {
        self.reserved_sectors
            .saturating_add(self.fats.saturating_mul(self.fat_sectors))
            .saturating_add(self.root_dir_sectors())
    }

    /// Highest valid cluster number (clusters are numbered from 2).
    pub(crate) fn max_cluster(&self) -> u32 {
        self.clusters.saturating_add(1)
    }

    /// Bytes of a FAT holding an entry for every cluster (and the two
    /// reserved ones), 1.5 bytes per entry rounded up on FAT12.
    pub(crate) fn used_fat_bytes(&self) -> u64 {
        let entries = u64::from(self.clusters) + 2;
        if self.fat_bits == 12 {
            (entries * 3).div_ceil(2)
        } else {
            entries * 2
        }
    }

    /// Computes the FAT16 geometry of a volume of `total_sectors` sectors
    /// (FAT12 when it is too small for FAT16).
    ///
    /// Cluster size: 4 KiB like real banks, doubled while the volume would
    /// have more than 65,524 clusters, halved (down to one sector) while it
    /// would have fewer than 4,085.
    pub fn fat16(total_sectors: u64, bytes_per_sector: u32) -> Result<Geometry, super::FatError> {
        let too = |what: &str| {
            super::FatError::Geometry(format!(
                "{total_sectors} sectors of {bytes_per_sector} bytes are {what} for FAT16"
            ))
        };
        let total = u32::try_from(total_sectors).map_err(|_| too("too many"))?;
        if bytes_per_sector == 0 {
            return Err(too("too few"));
        }
        let mut cluster = PREFERRED_CLUSTER.max(u64::from(bytes_per_sector));
        loop {
            let spc = u32::try_from(cluster / u64::from(bytes_per_sector)).map_err(|_| too("too many"))?;
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
                // the excess unused in the reserved area. (`clusters` is at
                // most `total / spc`, so the excess is below `total`.)
                let excess = (clusters - MAX_FAT16_CLUSTERS) as u32 * spc;
                let mut g = geometry;
                for _ in 0..4 {
                    let reserved = RESERVED_SECTORS
                        .checked_add(excess)
                        .and_then(|r| r.checked_add(g.fat_sectors.saturating_sub(geometry.fat_sectors)))
                        .ok_or_else(|| too("too many"))?;
                    g = Geometry::with_cluster(total, bytes_per_sector, spc, reserved)
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
        let spc = self.sectors_per_cluster.max(1);
        for _ in 0..8 {
            let data = self.total_sectors.checked_sub(self.first_data_sector())?;
            self.clusters = data / spc;
            let fat_sectors = u32::try_from(self.used_fat_bytes().div_ceil(u64::from(self.bytes_per_sector))).ok()?;
            if fat_sectors == self.fat_sectors {
                return Some(self);
            }
            self.fat_sectors = fat_sectors;
        }
        let data = self.total_sectors.checked_sub(self.first_data_sector())?;
        self.clusters = data / spc;
        Some(self)
    }

    /// The boot sector of this volume (one sector of `bytes_per_sector`),
    /// as the formatter writes it: "MSDOS5.0", media 0xF8, 32 sectors per
    /// track and 64 heads (CHS is unused), `hidden_sectors` = the partition's
    /// first LBA (0 when it does not fit), drive 0x80, label "NO NAME".
    pub fn boot_sector(&self, hidden_sectors: u64, volume_id: u32) -> Vec<u8> {
        // The formatter's geometries fit the BPB's fields: sectors of 512 or
        // 4096 bytes, at most 128 sectors per cluster, 2 FATs, FAT16 sizes.
        let narrow = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        let mut boot = vec![0u8; self.bytes_per_sector.max(512) as usize];
        boot[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
        boot[3..11].copy_from_slice(b"MSDOS5.0");
        put16(&mut boot, 11, narrow(self.bytes_per_sector));
        boot[13] = u8::try_from(self.sectors_per_cluster).unwrap_or(0);
        put16(&mut boot, 14, narrow(self.reserved_sectors));
        boot[16] = u8::try_from(self.fats).unwrap_or(u8::MAX);
        put16(&mut boot, 17, narrow(self.root_entries));
        match u16::try_from(self.total_sectors) {
            Ok(total) => put16(&mut boot, 19, total),
            Err(_) => put32(&mut boot, 32, self.total_sectors),
        }
        boot[21] = 0xF8; // fixed disk
        put16(&mut boot, 22, narrow(self.fat_sectors));
        put16(&mut boot, 24, 32); // sectors per track (CHS geometry is unused)
        put16(&mut boot, 26, 64); // heads
        put32(&mut boot, 28, u32::try_from(hidden_sectors).unwrap_or(0)); // hidden sectors
        boot[36] = 0x80; // drive number
        boot[38] = 0x29; // extended boot signature
        put32(&mut boot, 39, volume_id);
        boot[43..54].copy_from_slice(b"NO NAME    ");
        boot[54..62].copy_from_slice(if self.fat_bits == 12 { b"FAT12   " } else { b"FAT16   " });
        boot[510] = 0x55;
        boot[511] = 0xAA;
        boot
    }

    /// Parses and validates the boot sector `boot` of a partition of
    /// `sectors` sectors of `sector_bytes` bytes.
    ///
    /// Checked, in order:
    /// - BPB_BytsPerSec equals the device's sector size;
    /// - BPB_SecPerClus is a power of two;
    /// - BPB_RsvdSecCnt and BPB_NumFATs are at least 1;
    /// - BPB_FATSz16 is nonzero (zero means FAT32: unsupported);
    /// - BPB_RootEntCnt is at least 1;
    /// - the total (BPB_TotSec16, else BPB_TotSec32) is nonzero, within the
    ///   partition and past the root directory;
    /// - the cluster count is within FAT16's range (more is unsupported);
    /// - BPB_FATSz16 is large enough for every cluster.
    ///
    /// The 0x55AA signature, the jump and the media byte are not checked
    /// (esx-boot does not check them either).
    pub fn from_boot_sector(boot: &[u8], sector_bytes: u64, sectors: u64) -> Result<Geometry, BootSectorError> {
        let ss = sector_bytes;
        let bad = |field: &'static str, value: u64, why: String| BootSectorError::BadField { field, value, why };
        let byte = |at: usize| boot.get(at).copied().unwrap_or(0);

        let bps = u64::from(le16(boot, 11));
        if bps != ss || ss == 0 {
            return Err(bad("BPB_BytsPerSec", bps, format!("differs from the device's {ss}-byte sectors")));
        }
        let spc = byte(13);
        if !spc.is_power_of_two() {
            return Err(bad("BPB_SecPerClus", spc.into(), "is not a power of two".into()));
        }
        let reserved = le16(boot, 14);
        if reserved == 0 {
            return Err(bad("BPB_RsvdSecCnt", 0, "leaves no room for the boot sector".into()));
        }
        let fats = byte(16);
        if fats == 0 {
            return Err(bad("BPB_NumFATs", 0, "leaves the volume without a FAT".into()));
        }
        let fat_sectors = le16(boot, 22);
        if fat_sectors == 0 {
            return Err(BootSectorError::Unsupported {
                what: "BPB_FATSz16 is 0: a FAT32 volume, which this reader does not read".into(),
            });
        }
        let root_entries = le16(boot, 17);
        if root_entries == 0 {
            return Err(bad("BPB_RootEntCnt", 0, "leaves a FAT12/16 volume without a root directory".into()));
        }
        let (total_field, total) = match le16(boot, 19) {
            0 => ("BPB_TotSec32", le32(boot, 32)),
            n => ("BPB_TotSec16", u32::from(n)),
        };
        if total == 0 {
            return Err(bad(total_field, 0, "and BPB_TotSec16 is 0 too: the volume has no sectors".into()));
        }
        if u64::from(total) > sectors {
            return Err(bad(total_field, total.into(), format!("exceeds the partition's {sectors} sectors")));
        }
        // All u16/u8 fields: these products and sums stay far below 2^40.
        let root_sectors = (u64::from(root_entries) * ENTRY_BYTES as u64).div_ceil(ss);
        let meta = u64::from(reserved) + u64::from(fats) * u64::from(fat_sectors) + root_sectors;
        if meta >= u64::from(total) {
            return Err(bad(
                total_field,
                total.into(),
                format!("leaves no data area after {meta} sectors of reserved area, FATs and root directory"),
            ));
        }
        let clusters = (u64::from(total) - meta) / u64::from(spc);
        let fat_bits = if clusters < MIN_FAT16_CLUSTERS {
            12
        } else if clusters <= MAX_FAT16_CLUSTERS {
            16
        } else {
            return Err(BootSectorError::Unsupported {
                what: format!(
                    "{clusters} clusters make a FAT32 volume by count, but BPB_FATSz16 is {fat_sectors}: \
                     neither a FAT16 nor a FAT32"
                ),
            });
        };
        // As `libfat_open`: FAT12 needs 1.5 bytes per entry (rounded down,
        // so the last odd entry's high byte may lie one byte past the FAT,
        // in the next region, where the FAT cache reads it from), FAT16 two.
        let entries = clusters + 2;
        let min_fat_bytes = if fat_bits == 12 { entries + entries / 2 } else { entries * 2 };
        let min_fat_sectors = min_fat_bytes.div_ceil(ss);
        if min_fat_sectors > u64::from(fat_sectors) {
            return Err(bad(
                "BPB_FATSz16",
                fat_sectors.into(),
                format!("is smaller than the {min_fat_sectors} sectors {clusters} clusters need"),
            ));
        }
        Ok(Geometry {
            // `bps` came from a u16 field.
            bytes_per_sector: bps as u32,
            sectors_per_cluster: spc.into(),
            reserved_sectors: reserved.into(),
            fats: fats.into(),
            root_entries: root_entries.into(),
            fat_sectors: fat_sectors.into(),
            fat_bits,
            total_sectors: total,
            // At most MAX_FAT16_CLUSTERS.
            clusters: clusters as u32,
        })
    }
}

/// Where a volume's regions lie on the device: absolute LBAs computed once,
/// with checked arithmetic, from a [`Geometry`] and the partition's first LBA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regions {
    /// The volume's shape.
    pub geometry: Geometry,
    /// The boot sector.
    pub first_lba: u64,
    /// FAT #1 (FAT #k at `fat_lba + k * fat_sectors`).
    pub fat_lba: u64,
    /// The root directory.
    pub root_lba: u64,
    /// Cluster 2.
    pub data_lba: u64,
    /// One past the volume's last sector.
    pub end_lba: u64,
}

impl Regions {
    /// The regions of `geometry` on a partition starting at `first_lba`;
    /// `None` when they would lie past LBA 2^64 or the data area would
    /// start past the volume's end.
    pub fn new(geometry: Geometry, first_lba: u64) -> Option<Regions> {
        let g = &geometry;
        let fat_lba = first_lba.checked_add(g.reserved_sectors.into())?;
        let root_lba = fat_lba.checked_add(u64::from(g.fats).checked_mul(g.fat_sectors.into())?)?;
        let data_lba = root_lba.checked_add(g.root_dir_sectors().into())?;
        let end_lba = first_lba.checked_add(g.total_sectors.into())?;
        let data_end = data_lba.checked_add(u64::from(g.clusters).checked_mul(g.sectors_per_cluster.into())?)?;
        if data_end > end_lba {
            return None;
        }
        Some(Regions { geometry, first_lba, fat_lba, root_lba, data_lba, end_lba })
    }

    /// Bytes per sector.
    pub fn sector_bytes(&self) -> u64 {
        self.geometry.bytes_per_sector.into()
    }

    /// Sectors of the root directory.
    pub fn root_sectors(&self) -> u64 {
        self.data_lba - self.root_lba
    }

    /// Highest valid cluster number.
    pub fn max_cluster(&self) -> u32 {
        self.geometry.max_cluster()
    }

    /// First sector of `cluster`; `None` outside 2..=max.
    pub fn cluster_lba(&self, cluster: u32) -> Option<u64> {
        if !(2..=self.max_cluster()).contains(&cluster) {
            return None;
        }
        // Inside the data area, which `new` checked ends within the volume.
        Some(self.data_lba + u64::from(cluster - 2) * u64::from(self.geometry.sectors_per_cluster))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Geometry::fat16(1 << 20, 0).is_err());
        let small_4kn = Geometry::fat16(1016, 4096).unwrap();
        assert_eq!((small_4kn.fat_bits, small_4kn.sectors_per_cluster), (12, 1));
    }

    #[test]
    fn a_written_boot_sector_reads_back_as_the_same_geometry() {
        for (sectors, ss) in [(8128u64, 512u32), (511968, 512), (8388608, 512), (1016, 4096), (65536, 4096)] {
            let g = Geometry::fat16(sectors, ss).unwrap();
            let boot = g.boot_sector(2048, 7);
            assert_eq!(Geometry::from_boot_sector(&boot, ss.into(), sectors).unwrap(), g, "{sectors} x {ss}");
            let r = Regions::new(g, 2048).unwrap();
            assert_eq!(r.data_lba, 2048 + u64::from(g.first_data_sector()));
            assert_eq!(r.cluster_lba(1), None);
            assert_eq!(r.cluster_lba(g.clusters + 2), None);
            assert_eq!(r.cluster_lba(2), Some(r.data_lba));
        }
    }

    #[test]
    fn short_or_garbage_boot_sectors_are_errors() {
        assert!(Geometry::from_boot_sector(&[], 512, 100).is_err());
        assert!(Geometry::from_boot_sector(&[0xFF; 512], 512, u64::MAX).is_err());
        let g = Geometry::fat16(8128, 512).unwrap();
        assert!(Regions::new(g, u64::MAX - 10).is_none());
    }
}
