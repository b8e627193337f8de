//! A minimal read-only FAT12/FAT16 reader with esx-boot's lookup semantics
//! (formerly `fatread`, which still names it).
//!
//! Why our own reader and not `fatfs`: esx-boot has its own FAT reader
//! (`bootlib/file.c` over syslinux's `libfat`), and the emulator must see
//! what it sees:
//! - `fat_file_open` looks the file up by its 8.3 **short name** in the
//!   **root directory only**, after upper-casing the wanted name, so the
//!   lookup ignores case and never consults long file names;
//! - `fat_file_load` reads exactly the directory entry's size;
//! - `file_overwrite` rewrites the first sector of the file's first cluster.
//!
//! `fatfs` exposes neither a file's first cluster nor its sectors, and it
//! resolves long names. This module is also the boot hot path: a 124 MB
//! module is read as one device read per run of contiguous clusters, into
//! one buffer allocated once, never cluster by cluster.
//!
//! ```text
//!   partition LBA + 0     boot sector (BPB)          validated field by field
//!   + reserved            FAT #1                     read lazily, 16 KiB at a time,
//!                                                    cached for one call only
//!   + fats * fat size     root directory             scanned 16 KiB at a time up to
//!                                                    the first 0x00 entry
//!   + root dir sectors    data: cluster 2, 3, ...    read as runs of sectors
//! ```
//!
//! Promises:
//! - no panic on any bytes: every BPB field is checked before use and every
//!   failure is a [`FatReadError`] naming the field or cluster;
//! - bounded work and memory: the root directory scan allocates at most
//!   16 KiB, a chain walk reads at most the FAT's used part (128 KiB on
//!   FAT16) and takes at most one step per cluster of the volume, and
//!   [`FatReader::read`] refuses a size above its caller's cap before it
//!   allocates;
//! - the FAT type is decided by cluster count (see [`super::geometry`]);
//!   FAT32 is refused.
//!
//! Where this reader is stricter than esx-boot on damaged volumes (see the
//! notes on [`FatReader::open`] and [`FatReader::runs`]), it reports an
//! error where esx-boot would read something odd; on sound volumes the two
//! agree byte for byte.

use std::ops::ControlFlow;

use serde::Serialize;
use visorsim_disk::{BlockDevice, DiskError};

pub use super::dirent::FatFile;
use super::dirent::{entry_at, is_label, is_lfn, name11, RawEntry, DELETED, ENTRY_BYTES};
use super::geometry::{BootSectorError, Geometry, Regions};
use super::names::short_name;
use super::table::{ChainError, ChainWalk, FatCache, Link};

/// Bytes read at once from the root directory.
const WINDOW_BYTES: u64 = 16 * 1024;

/// Why a FAT volume or one of its files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FatReadError {
    /// A boot sector (BPB) field is out of range.
    #[error("FAT boot sector at LBA {lba}: {field} = {value} {why}")]
    BadBootSector {
        /// First LBA of the partition (where the boot sector is).
        lba: u64,
        /// The field, by its name in Microsoft's FAT specification.
        field: &'static str,
        /// Its value.
        value: u64,
        /// What is wrong with it.
        why: String,
    },
    /// A volume this reader does not handle (FAT32).
    #[error("FAT volume at LBA {lba}: {what}")]
    Unsupported {
        /// First LBA of the partition.
        lba: u64,
        /// What it is.
        what: String,
    },
    /// A file's cluster chain is broken.
    #[error("FAT volume at LBA {lba}: {file}: cluster {cluster}: {what}")]
    BadChain {
        /// First LBA of the partition.
        lba: u64,
        /// The file's short name.
        file: String,
        /// The cluster at fault: the directory entry's first cluster, or
        /// the cluster whose FAT entry is wrong.
        cluster: u32,
        /// What is wrong.
        what: String,
    },
    /// A file is larger than the caller allows.
    #[error("FAT volume at LBA {lba}: {file} is {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// First LBA of the partition.
        lba: u64,
        /// The file's short name.
        file: String,
        /// Its size from the directory entry.
        size: u32,
        /// The caller's cap.
        max: u64,
    },
    /// The device failed (the error names the LBA).
    #[error("Cannot read the FAT volume")]
    Disk(#[from] DiskError),
}

/// Contiguous sectors of a file, at absolute LBAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SectorRun {
    /// First sector (absolute LBA on the device).
    pub lba: u64,
    /// Number of sectors.
    pub sectors: u64,
}

/// A FAT12/16 volume opened for reading: the validated geometry and where
/// its regions lie on the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FatReader {
    regions: Regions,
}

impl FatReader {
    /// Parses and validates the boot sector at `first_lba` of a partition of
    /// `sectors` sectors; the checks are [`Geometry::from_boot_sector`]'s
    /// (a zero BPB_FATSz16 or a FAT32 cluster count is
    /// [`FatReadError::Unsupported`], any other fault
    /// [`FatReadError::BadBootSector`]).
    ///
    /// esx-boot's `libfat_open` is laxer: it takes BPB_SecPerClus = 0 as
    /// 256, accepts zero reserved sectors, zero FATs or zero root entries,
    /// does not compare the total with the partition, and reads FAT32.
    pub fn open<D: BlockDevice>(dev: &mut D, first_lba: u64, sectors: u64) -> Result<FatReader, FatReadError> {
        let ss = dev.sector_size().bytes_u64();
        let mut boot = vec![0u8; dev.sector_size().len()];
        dev.read_sectors(first_lba, &mut boot)?;
        let geometry = Geometry::from_boot_sector(&boot, ss, sectors).map_err(|e| match e {
            BootSectorError::BadField { field, value, why } => {
                FatReadError::BadBootSector { lba: first_lba, field, value, why }
            }
            BootSectorError::Unsupported { what } => FatReadError::Unsupported { lba: first_lba, what },
        })?;
        // The boot sector was read at `first_lba`, so it is below the
        // device's sector count and the regions fit; `None` cannot happen
        // on a real device.
        let regions = Regions::new(geometry, first_lba).ok_or_else(|| FatReadError::Unsupported {
            lba: first_lba,
            what: "the volume's regions lie past the last addressable LBA".into(),
        })?;
        Ok(FatReader { regions })
    }

    /// The volume's geometry as read from the boot sector (the same struct
    /// [`crate::fat::format`] returns).
    pub fn geometry(&self) -> &Geometry {
        &self.regions.geometry
    }

    /// Where the volume's regions lie on the device.
    pub(crate) fn regions(&self) -> &Regions {
        &self.regions
    }

    /// First LBA of the partition.
    pub fn first_lba(&self) -> u64 {
        self.regions.first_lba
    }

    /// Bytes per cluster.
    pub fn cluster_bytes(&self) -> u64 {
        self.regions.geometry.cluster_bytes()
    }

    /// Looks `name` up in the root directory by its 8.3 short name, ignoring
    /// case: "boot.cfg", "/BOOT.CFG" and "Boot.Cfg" all find `BOOT    CFG`.
    /// Leading '/'s are dropped. A name that is not a valid 8.3 name (see
    /// [`short_name`]) is `Ok(None)`. Deleted, long-name, volume-label and
    /// directory entries are skipped; the scan stops at the first entry
    /// whose name starts with 0x00.
    ///
    /// esx-boot itself never refuses a name: it truncates it
    /// ([`super::names::esx_short_name`]). Use [`FatReader::find_short`]
    /// with that to look names up exactly as it does.
    pub fn find<D: BlockDevice>(&self, dev: &mut D, name: &str) -> Result<Option<FatFile>, FatReadError> {
        match short_name(name) {
            Some(short) => self.find_short(dev, &short),
            None => Ok(None),
        }
    }

    /// Looks up the entry whose 11 name bytes equal `short` exactly (a byte
    /// compare, as `libfat_searchdir`'s `memcmp`; pass upper-case names).
    /// Skips the same entries as [`FatReader::find`].
    pub fn find_short<D: BlockDevice>(&self, dev: &mut D, short: &[u8; 11]) -> Result<Option<FatFile>, FatReadError> {
        let mut found = None;
        self.scan_root(dev, |raw, file| {
            if &name11(raw) == short {
                found = Some(file);
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(found)
    }

    /// Every file of the root directory, in directory order (the entries
    /// [`FatReader::find`] considers).
    pub fn list_root<D: BlockDevice>(&self, dev: &mut D) -> Result<Vec<FatFile>, FatReadError> {
        let mut files = Vec::new();
        self.scan_root(dev, |_, file| {
            files.push(file);
            ControlFlow::Continue(())
        })?;
        Ok(files)
    }

    /// Calls `visit` with the raw entry and the description of each file
    /// entry of the root directory until it breaks or the directory ends.
    fn scan_root<D: BlockDevice>(
        &self,
        dev: &mut D,
        mut visit: impl FnMut(&RawEntry, FatFile) -> ControlFlow<()>,
    ) -> Result<(), FatReadError> {
        let r = &self.regions;
        let ss = r.sector_bytes();
        let entries = u64::from(r.geometry.root_entries);
        let root_sectors = r.root_sectors();
        let window = (WINDOW_BYTES / ss).max(1).min(root_sectors);
        let mut buf = vec![0u8; (window * ss) as usize];
        let per_sector = ss / ENTRY_BYTES as u64;
        let mut sector = 0;
        while sector < root_sectors {
            let count = window.min(root_sectors - sector);
            let chunk = &mut buf[..(count * ss) as usize];
            dev.read_sectors(r.root_lba + sector, chunk)?;
            let mut i = 0;
            while let Some(raw) = entry_at(chunk, i) {
                let index = sector * per_sector + i as u64;
                if index >= entries || raw[0] == 0 {
                    return Ok(());
                }
                let at = i as u64;
                i += 1;
                if raw[0] == DELETED || is_lfn(raw) || is_label(raw) || super::dirent::is_dir(raw) {
                    continue;
                }
                let lba = r.root_lba + sector + at / per_sector;
                let file = FatFile::of_entry(raw, lba, (at % per_sector) as usize * ENTRY_BYTES);
                if visit(raw, file).is_break() {
                    return Ok(());
                }
            }
            sector += count;
        }
        Ok(())
    }

    /// The file's data as runs of contiguous sectors (absolute LBAs),
    /// covering exactly ceil(size / cluster) clusters, adjacent clusters
    /// merged into one run. Size 0 gives no runs.
    ///
    /// Errors name the cluster: a first cluster outside 2..=max, a FAT
    /// entry that is free, reserved (1), bad, out of range or end-of-chain
    /// before the size is covered, a cluster reached twice (a loop), or a
    /// size needing more clusters than the volume has. The size decides
    /// where the chain ends: the last needed cluster's FAT entry is not read.
    ///
    /// esx-boot follows damaged chains differently: a free entry (0) sends
    /// `libfat_nextsector` to the root directory's sectors, it never notices
    /// a loop, and it does look at the last cluster's FAT entry when the
    /// size ends on a cluster boundary (failing on a reserved, bad or
    /// out-of-range value there).
    pub fn runs<D: BlockDevice>(&self, dev: &mut D, file: &FatFile) -> Result<Vec<SectorRun>, FatReadError> {
        if file.size == 0 {
            return Ok(Vec::new());
        }
        let broken = |cluster: u32, what: String| FatReadError::BadChain {
            lba: self.first_lba(),
            file: file.short_name.clone(),
            cluster,
            what,
        };
        let r = &self.regions;
        let clusters = u64::from(r.geometry.clusters);
        let max = r.max_cluster();
        let needed = u64::from(file.size).div_ceil(self.cluster_bytes());
        if needed > clusters {
            return Err(broken(
                file.first_cluster,
                format!("a size of {} bytes needs {needed} clusters, the volume has {clusters}", file.size),
            ));
        }
        if !(2..=max).contains(&file.first_cluster) {
            return Err(broken(file.first_cluster, format!("the first cluster is outside 2..={max}")));
        }
        let spc = u64::from(r.geometry.sectors_per_cluster);
        let mut fat = FatCache::new(r);
        let mut walk = ChainWalk::new(max);
        let mut runs: Vec<SectorRun> = Vec::new();
        let mut cluster = file.first_cluster;
        for step in 1..=needed {
            walk.enter(cluster).map_err(|e| match e {
                ChainError::Loop { .. } => {
                    broken(cluster, format!("reached twice within {step} clusters: the chain loops"))
                }
                other => broken(cluster, other.to_string()),
            })?;
            let lba = r.cluster_lba(cluster).ok_or_else(|| broken(cluster, format!("outside 2..={max}")))?;
            match runs.last_mut() {
                Some(run) if run.lba + run.sectors == lba => run.sectors += spc,
                _ => runs.push(SectorRun { lba, sectors: spc }),
            }
            if step == needed {
                break;
            }
            let value =
                fat.entry(dev, cluster)?.ok_or_else(|| broken(cluster, ChainError::PastFat { cluster }.to_string()))?;
            let what = match Link::of(value, r.geometry.fat_bits, max) {
                Link::Free => "free (0)".to_string(),
                Link::Reserved => "reserved (1)".to_string(),
                Link::End(n) => format!("end of chain ({n:#x})"),
                Link::Bad(n) => format!("bad ({n:#x})"),
                Link::OutOfRange(n) => format!("{n}, outside 2..={max}"),
                Link::Next(n) => {
                    cluster = n;
                    continue;
                }
            };
            return Err(broken(
                cluster,
                format!("FAT entry is {what} after {step} of the {needed} clusters of {} bytes", file.size),
            ));
        }
        Ok(runs)
    }

    /// Reads the whole file, exactly `file.size` bytes, with one device read
    /// per run into a buffer allocated once. A size above `max_bytes` is
    /// refused before anything is read or allocated.
    pub fn read<D: BlockDevice>(&self, dev: &mut D, file: &FatFile, max_bytes: u64) -> Result<Vec<u8>, FatReadError> {
        let size = u64::from(file.size);
        if size > max_bytes {
            return Err(FatReadError::TooLarge {
                lba: self.first_lba(),
                file: file.short_name.clone(),
                size: file.size,
                max: max_bytes,
            });
        }
        let runs = self.runs(dev, file)?;
        let ss = self.regions.sector_bytes();
        let total = size.div_ceil(ss);
        let mut buf = vec![0u8; (total * ss) as usize];
        let mut done = 0;
        for run in runs {
            let n = run.sectors.min(total - done);
            if n == 0 {
                break;
            }
            dev.read_sectors(run.lba, &mut buf[(done * ss) as usize..((done + n) * ss) as usize])?;
            done += n;
        }
        buf.truncate(size as usize);
        Ok(buf)
    }

    /// Absolute LBA of the first sector of the file's first cluster: the
    /// sector esx-boot's `file_overwrite` reads, patches and writes back.
    /// `None` for an empty file (esx-boot then uses cluster 0, which
    /// `libfat` maps to the root directory) and for a first cluster outside
    /// the volume (esx-boot fails with "volume corrupted").
    pub fn first_sector(&self, file: &FatFile) -> Option<u64> {
        if file.size == 0 {
            return None;
        }
        self.regions.cluster_lba(file.first_cluster)
    }
}
