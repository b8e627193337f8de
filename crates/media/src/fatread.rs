//! A minimal read-only FAT12/FAT16 reader with esx-boot's lookup semantics.
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
//! - the FAT type is decided by cluster count (Microsoft's rule, also
//!   `libfat_open`'s): fewer than 4085 clusters is FAT12, up to 65524 is
//!   FAT16; FAT32 is refused.
//!
//! Where this reader is stricter than esx-boot on damaged volumes (see the
//! notes on [`FatReader::open`] and [`FatReader::runs`]), it reports an
//! error where esx-boot would read something odd; on sound volumes the two
//! agree byte for byte.

use std::ops::ControlFlow;

use serde::Serialize;
use visorsim_disk::{BlockDevice, DiskError};

use crate::fat::Geometry;

/// Bytes per directory entry.
const DIR_ENTRY: usize = 32;
/// Attribute bits of a volume label and of a directory.
const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_DIRECTORY: u8 = 0x10;
/// Attribute value of a long-file-name entry (under the mask 0x3F).
const ATTR_LFN: u8 = 0x0F;
/// First name byte of a deleted entry.
const DELETED: u8 = 0xE5;
/// Fewest clusters of a FAT16 volume, most of a FAT16 volume.
const MIN_FAT16_CLUSTERS: u64 = 4085;
const MAX_FAT16_CLUSTERS: u64 = 65524;
/// Bytes read at once from the root directory and from the FAT.
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

/// A file of the root directory, as its directory entry describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FatFile {
    /// The 8.3 short name as "NAME.EXT" ("NAME" without an extension).
    /// Bytes above 0x7F are shown as the ISO-8859-1 character of that value.
    pub short_name: String,
    /// Size in bytes (what esx-boot reads).
    pub size: u32,
    /// First cluster: low word at byte 26 plus high word at byte 20 shifted
    /// left 16, as `libfat_searchdir` computes it even on FAT12/16 (where
    /// the high word should be 0; a nonzero one makes the chain invalid).
    pub first_cluster: u32,
    /// Absolute LBA of the sector holding the directory entry.
    pub dir_entry_lba: u64,
    /// Byte offset of the entry within that sector.
    pub dir_entry_offset: usize,
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
    first_lba: u64,
    geometry: Geometry,
    sector_bytes: u64,
    fat_lba: u64,
    root_lba: u64,
    data_lba: u64,
}

impl FatReader {
    /// Parses and validates the boot sector at `first_lba` of a partition of
    /// `sectors` sectors.
    ///
    /// Checked, in order:
    /// - BPB_BytsPerSec equals the device's sector size;
    /// - BPB_SecPerClus is a power of two;
    /// - BPB_RsvdSecCnt and BPB_NumFATs are at least 1;
    /// - BPB_FATSz16 is nonzero (zero means FAT32: [`FatReadError::Unsupported`]);
    /// - BPB_RootEntCnt is at least 1;
    /// - the total (BPB_TotSec16, else BPB_TotSec32) is nonzero, within the
    ///   partition and past the root directory;
    /// - the cluster count is within FAT16's range (more is
    ///   [`FatReadError::Unsupported`]);
    /// - BPB_FATSz16 is large enough for every cluster.
    ///
    /// The 0x55AA signature, the jump and the media byte are not checked
    /// (esx-boot does not check them either).
    ///
    /// esx-boot's `libfat_open` is laxer: it takes BPB_SecPerClus = 0 as
    /// 256, accepts zero reserved sectors, zero FATs or zero root entries,
    /// does not compare the total with the partition, and reads FAT32.
    pub fn open<D: BlockDevice>(dev: &mut D, first_lba: u64, sectors: u64) -> Result<FatReader, FatReadError> {
        let ss = dev.sector_size().bytes_u64();
        let mut boot = vec![0u8; dev.sector_size().len()];
        dev.read_sectors(first_lba, &mut boot)?;
        let bad = |field: &'static str, value: u64, why: String| FatReadError::BadBootSector {
            lba: first_lba,
            field,
            value,
            why,
        };

        let bps = u64::from(le16(&boot, 11));
        if bps != ss {
            return Err(bad("BPB_BytsPerSec", bps, format!("differs from the device's {ss}-byte sectors")));
        }
        let spc = boot[13];
        if !spc.is_power_of_two() {
            return Err(bad("BPB_SecPerClus", spc.into(), "is not a power of two".into()));
        }
        let reserved = le16(&boot, 14);
        if reserved == 0 {
            return Err(bad("BPB_RsvdSecCnt", 0, "leaves no room for the boot sector".into()));
        }
        let fats = boot[16];
        if fats == 0 {
            return Err(bad("BPB_NumFATs", 0, "leaves the volume without a FAT".into()));
        }
        let fat_sectors = le16(&boot, 22);
        if fat_sectors == 0 {
            return Err(FatReadError::Unsupported {
                lba: first_lba,
                what: "BPB_FATSz16 is 0: a FAT32 volume, which this reader does not read".into(),
            });
        }
        let root_entries = le16(&boot, 17);
        if root_entries == 0 {
            return Err(bad("BPB_RootEntCnt", 0, "leaves a FAT12/16 volume without a root directory".into()));
        }
        let (total_field, total) = match le16(&boot, 19) {
            0 => ("BPB_TotSec32", le32(&boot, 32)),
            n => ("BPB_TotSec16", u32::from(n)),
        };
        if total == 0 {
            return Err(bad(total_field, 0, "and BPB_TotSec16 is 0 too: the volume has no sectors".into()));
        }
        if u64::from(total) > sectors {
            return Err(bad(total_field, total.into(), format!("exceeds the partition's {sectors} sectors")));
        }
        let root_sectors = (u64::from(root_entries) * DIR_ENTRY as u64).div_ceil(ss);
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
            return Err(FatReadError::Unsupported {
                lba: first_lba,
                what: format!(
                    "{clusters} clusters make a FAT32 volume by count, but BPB_FATSz16 is {fat_sectors}: \
                     neither a FAT16 nor a FAT32"
                ),
            });
        };
        // As `libfat_open`: FAT12 needs 1.5 bytes per entry (rounded down,
        // so the last odd entry's high byte may lie one byte past the FAT,
        // in the next region, where the cache reads it from), FAT16 two.
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
        let geometry = Geometry {
            bytes_per_sector: ss as u32,
            sectors_per_cluster: spc.into(),
            reserved_sectors: reserved.into(),
            fats: fats.into(),
            root_entries: root_entries.into(),
            fat_sectors: fat_sectors.into(),
            fat_bits,
            total_sectors: total,
            clusters: clusters as u32,
        };
        // The boot sector was read at `first_lba`, so `first_lba` is below
        // the device's sector count, which keeps byte sizes within u64; and
        // `meta` and `total` are below 2^32: none of these sums overflows.
        let fat_lba = first_lba + u64::from(reserved);
        let root_lba = fat_lba + u64::from(fats) * u64::from(fat_sectors);
        Ok(FatReader { first_lba, geometry, sector_bytes: ss, fat_lba, root_lba, data_lba: root_lba + root_sectors })
    }

    /// The volume's geometry as read from the boot sector (the same struct
    /// [`crate::fat::format`] returns).
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// First LBA of the partition.
    pub fn first_lba(&self) -> u64 {
        self.first_lba
    }

    /// Bytes per cluster.
    pub fn cluster_bytes(&self) -> u64 {
        self.geometry.cluster_bytes()
    }

    /// Looks `name` up in the root directory by its 8.3 short name, ignoring
    /// case: "boot.cfg", "/BOOT.CFG" and "Boot.Cfg" all find `BOOT    CFG`.
    /// Leading '/'s are dropped. A name that is not a valid 8.3 name (see
    /// [`short_name`]) is `Ok(None)`. Deleted, long-name, volume-label and
    /// directory entries are skipped; the scan stops at the first entry
    /// whose name starts with 0x00.
    ///
    /// esx-boot itself never refuses a name: it truncates it
    /// ([`esx_short_name`]). Use [`FatReader::find_short`] with that to
    /// look names up exactly as it does.
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
            if raw == short {
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

    /// Calls `visit` with the raw name and the description of each file
    /// entry of the root directory until it breaks or the directory ends.
    fn scan_root<D: BlockDevice>(
        &self,
        dev: &mut D,
        mut visit: impl FnMut(&[u8; 11], FatFile) -> ControlFlow<()>,
    ) -> Result<(), FatReadError> {
        let ss = self.sector_bytes;
        let entries = u64::from(self.geometry.root_entries);
        let root_sectors = (entries * DIR_ENTRY as u64).div_ceil(ss);
        let window = (WINDOW_BYTES / ss).max(1).min(root_sectors);
        let mut buf = vec![0u8; (window * ss) as usize];
        let per_sector = ss / DIR_ENTRY as u64;
        let mut sector = 0;
        while sector < root_sectors {
            let count = window.min(root_sectors - sector);
            let chunk = &mut buf[..(count * ss) as usize];
            dev.read_sectors(self.root_lba + sector, chunk)?;
            for (i, raw) in chunk.chunks_exact(DIR_ENTRY).enumerate() {
                let index = sector * per_sector + i as u64;
                if index >= entries || raw[0] == 0 {
                    return Ok(());
                }
                let attr = raw[11];
                if raw[0] == DELETED || attr & 0x3F == ATTR_LFN || attr & (ATTR_VOLUME_ID | ATTR_DIRECTORY) != 0 {
                    continue;
                }
                let name: &[u8; 11] = raw[..11].try_into().expect("a directory entry is 32 bytes");
                let file = FatFile {
                    short_name: display_name(name),
                    size: le32(raw, 28),
                    first_cluster: u32::from(le16(raw, 26)) | (u32::from(le16(raw, 20)) << 16),
                    dir_entry_lba: self.root_lba + sector + i as u64 / per_sector,
                    dir_entry_offset: (i as u64 % per_sector) as usize * DIR_ENTRY,
                };
                if visit(name, file).is_break() {
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
            lba: self.first_lba,
            file: file.short_name.clone(),
            cluster,
            what,
        };
        let clusters = u64::from(self.geometry.clusters);
        let max = self.max_cluster();
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
        let spc = u64::from(self.geometry.sectors_per_cluster);
        let mut fat = FatCache::new(self);
        let mut seen = vec![0u64; (max as usize + 1).div_ceil(64)];
        let mut runs: Vec<SectorRun> = Vec::new();
        let mut cluster = file.first_cluster;
        for step in 1..=needed {
            let (word, bit) = (cluster as usize / 64, cluster % 64);
            if seen[word] & (1 << bit) != 0 {
                return Err(broken(cluster, format!("reached twice within {step} clusters: the chain loops")));
            }
            seen[word] |= 1 << bit;
            let lba = self.cluster_lba(cluster);
            match runs.last_mut() {
                Some(run) if run.lba + run.sectors == lba => run.sectors += spc,
                _ => runs.push(SectorRun { lba, sectors: spc }),
            }
            if step == needed {
                break;
            }
            let next = fat.entry(dev, cluster)?;
            let what = match next {
                0 => "free (0)".to_string(),
                1 => "reserved (1)".to_string(),
                n if n >= self.end_of_chain() => format!("end of chain ({n:#x})"),
                n if n == self.end_of_chain() - 1 => format!("bad ({n:#x})"),
                n if n > max => format!("{n}, outside 2..={max}"),
                n => {
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
                lba: self.first_lba,
                file: file.short_name.clone(),
                size: file.size,
                max: max_bytes,
            });
        }
        let runs = self.runs(dev, file)?;
        let ss = self.sector_bytes;
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
        if file.size == 0 || !(2..=self.max_cluster()).contains(&file.first_cluster) {
            return None;
        }
        Some(self.cluster_lba(file.first_cluster))
    }

    /// Highest valid cluster number.
    fn max_cluster(&self) -> u32 {
        self.geometry.clusters + 1
    }

    /// FAT values from this one up mean end of chain; one below is "bad".
    fn end_of_chain(&self) -> u32 {
        if self.geometry.fat_bits == 12 {
            0xFF8
        } else {
            0xFFF8
        }
    }

    /// First sector of a cluster in 2..=max.
    fn cluster_lba(&self, cluster: u32) -> u64 {
        self.data_lba + u64::from(cluster - 2) * u64::from(self.geometry.sectors_per_cluster)
    }
}

/// The FAT sectors one call has read: 16 KiB windows of FAT #1, loaded on
/// first use and dropped with the call.
struct FatCache {
    fat_lba: u64,
    sector_bytes: u64,
    window_sectors: u64,
    /// Sectors holding every entry of the volume (the FAT's used part).
    sectors: u64,
    fat_bits: u32,
    windows: Vec<Option<Vec<u8>>>,
}

impl FatCache {
    fn new(reader: &FatReader) -> FatCache {
        let g = &reader.geometry;
        let entries = u64::from(g.clusters) + 2;
        let bytes = if g.fat_bits == 12 { (entries * 3).div_ceil(2) } else { entries * 2 };
        let sectors = bytes.div_ceil(reader.sector_bytes);
        let window_sectors = (WINDOW_BYTES / reader.sector_bytes).max(1);
        FatCache {
            fat_lba: reader.fat_lba,
            sector_bytes: reader.sector_bytes,
            window_sectors,
            sectors,
            fat_bits: g.fat_bits,
            windows: vec![None; sectors.div_ceil(window_sectors) as usize],
        }
    }

    /// The FAT entry of `cluster` (at most the volume's highest cluster).
    fn entry<D: BlockDevice>(&mut self, dev: &mut D, cluster: u32) -> Result<u32, DiskError> {
        let n = u64::from(cluster);
        if self.fat_bits == 12 {
            let at = n + n / 2;
            let pair = u32::from(self.byte(dev, at)?) | (u32::from(self.byte(dev, at + 1)?) << 8);
            Ok(if cluster % 2 == 1 { pair >> 4 } else { pair & 0xFFF })
        } else {
            Ok(u32::from(self.byte(dev, 2 * n)?) | (u32::from(self.byte(dev, 2 * n + 1)?) << 8))
        }
    }

    fn byte<D: BlockDevice>(&mut self, dev: &mut D, offset: u64) -> Result<u8, DiskError> {
        let window_bytes = self.window_sectors * self.sector_bytes;
        let index = (offset / window_bytes) as usize;
        let slot = &mut self.windows[index];
        if slot.is_none() {
            let first = index as u64 * self.window_sectors;
            let count = self.window_sectors.min(self.sectors - first);
            let mut data = vec![0u8; (count * self.sector_bytes) as usize];
            dev.read_sectors(self.fat_lba + first, &mut data)?;
            *slot = Some(data);
        }
        let data = slot.as_ref().expect("loaded above");
        Ok(data[(offset % window_bytes) as usize])
    }
}

/// The upper-case 11-byte short name ("BOOT    CFG") of a valid 8.3 name,
/// after dropping leading '/'s: a base of 1 to 8 characters, optionally a
/// dot and an extension of 1 to 3, each character an ASCII letter, digit or
/// one of ``!#$%&'()-@^_`{}~``. Anything else (a path, a second dot, a
/// space, a long name, non-ASCII) is `None`.
pub fn short_name(name: &str) -> Option<[u8; 11]> {
    let name = name.trim_start_matches('/');
    let (base, ext) = match name.split_once('.') {
        Some((base, ext)) => (base, Some(ext)),
        None => (name, None),
    };
    let valid = |part: &str, max: usize| {
        (1..=max).contains(&part.len())
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'()-@^_`{}~".contains(&b))
    };
    if !valid(base, 8) || ext.is_some_and(|ext| !valid(ext, 3)) {
        return None;
    }
    let mut short = [b' '; 11];
    short[..base.len()].copy_from_slice(base.as_bytes());
    if let Some(ext) = ext {
        short[8..8 + ext.len()].copy_from_slice(ext.as_bytes());
    }
    short.make_ascii_uppercase();
    Some(short)
}

/// The 11-byte short name esx-boot looks up for `name`
/// (`bootlib/file.c:fat_get_shortname`), which never refuses a name:
/// - leading '/'s are dropped; a NUL byte ends the name;
/// - the base is what precedes the first '.', spaces dropped, cut to 8
///   bytes; the extension is what follows that dot (further dots included),
///   spaces dropped, cut to 3 bytes; both padded with spaces;
/// - letters are upper-cased by esx-boot's ISO-8859-1 `toupper`: ASCII
///   letters, and 0xE0–0xFE except 0xF7 lose bit 5 (so 0xFF becomes 0xDF).
///
/// So "verylongname.v00" looks up `VERYLONGV00` and "a.b.c" `A       B.C`.
pub fn esx_short_name(name: &[u8]) -> [u8; 11] {
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let name = &name[..end];
    let name = &name[name.iter().position(|&b| b != b'/').unwrap_or(name.len())..];
    let (base, ext) = match name.iter().position(|&b| b == b'.') {
        Some(dot) => (&name[..dot], &name[dot + 1..]),
        None => (name, &name[name.len()..]),
    };
    let mut short = [b' '; 11];
    for (slot, &b) in short[..8].iter_mut().zip(base.iter().filter(|&&b| b != b' ')) {
        *slot = esx_toupper(b);
    }
    for (slot, &b) in short[8..].iter_mut().zip(ext.iter().filter(|&&b| b != b' ')) {
        *slot = esx_toupper(b);
    }
    short
}

/// esx-boot's `toupper` (`libc/include/ctype.h`, table in `libc/ctypes.c`):
/// clears bit 5 of the characters its ISO-8859-1 table calls lower case.
fn esx_toupper(b: u8) -> u8 {
    let lower = b.is_ascii_lowercase() || ((0xDF..=0xFF).contains(&b) && b != 0xF7);
    if lower {
        b & !0x20
    } else {
        b
    }
}

/// "NAME.EXT" from the 11 raw bytes, trailing spaces dropped.
fn display_name(raw: &[u8; 11]) -> String {
    let trim = |part: &[u8]| -> String {
        let len = part.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
        part[..len].iter().map(|&b| char::from(b)).collect()
    };
    let (base, ext) = (trim(&raw[..8]), trim(&raw[8..]));
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_of_valid_8_3_names() {
        assert_eq!(short_name("boot.cfg"), Some(*b"BOOT    CFG"));
        assert_eq!(short_name("/Boot.Cfg"), Some(*b"BOOT    CFG"));
        assert_eq!(short_name("//S.V00"), Some(*b"S       V00"));
        assert_eq!(short_name("/state.tgz"), Some(*b"STATE   TGZ"));
        assert_eq!(short_name("README"), Some(*b"README     "));
        assert_eq!(short_name("IMGDB-~1.TGZ"), Some(*b"IMGDB-~1TGZ"));
        for bad in ["", "/", ".", "..", "a.", ".cfg", "verylongname.cfg", "a.cfgx", "a.b.c", "a b.cfg", "dir/boot.cfg"]
        {
            assert_eq!(short_name(bad), None, "{bad:?}");
        }
        assert_eq!(short_name("bóot.cfg"), None);
        assert_eq!(short_name("a*.cfg"), None);
    }

    #[test]
    fn esx_short_names_truncate_instead_of_refusing() {
        assert_eq!(&esx_short_name(b"/boot.cfg"), b"BOOT    CFG");
        assert_eq!(&esx_short_name(b"verylongname.v000"), b"VERYLONGV00");
        assert_eq!(&esx_short_name(b"a.b.c"), b"A       B.C");
        assert_eq!(&esx_short_name(b"a b.c d"), b"AB      CD ");
        assert_eq!(&esx_short_name(b"dir/x"), b"DIR/X      ");
        assert_eq!(&esx_short_name(b"boot\0.cfg"), b"BOOT       ");
        assert_eq!(&esx_short_name(b""), b"           ");
        assert_eq!(&esx_short_name(&[0xE9, 0xFF, 0xF7, 0xDF]), &[0xC9, 0xDF, 0xF7, 0xDF, 32, 32, 32, 32, 32, 32, 32]);
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name(b"BOOT    CFG"), "BOOT.CFG");
        assert_eq!(display_name(b"README     "), "README");
        assert_eq!(display_name(b"A B     C  "), "A B.C");
        assert_eq!(display_name(&[0xC9, b'T', 32, 32, 32, 32, 32, 32, 32, 32, 32]), "\u{c9}T");
    }
}
