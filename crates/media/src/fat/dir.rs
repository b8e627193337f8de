//! Directories as Linux's vfat sees them: long names assembled from their
//! LFN slots, lookups by long or short name ignoring case, and the slots
//! each entry occupies ([`DirSlot`]), for [`super::ops`] to rewrite.
//!
//! ```text
//!   slot i-2   LFN order 0x42 "e.tgz.12345"   }  one entry: first = i-2,
//!   slot i-1   LFN order 0x01 "stat"          }  sfn = i, slots = 3,
//!   slot i     short entry STATET~1.123       }  long name "state.tgz.12345"
//! ```
//!
//! A run of LFN slots counts only when its orders count down to 1 with one
//! checksum that matches the short entry after it; otherwise the entry is
//! shown by its short name (lower-cased as its case byte says) with
//! `slots` = 1. Listings stop at the first slot starting with 0x00, as
//! `fatfs`, [`super::read`] and esx-boot do (Linux reads on).
//!
//! Memory is bounded: a root directory is at most 2 MiB (65,535 entries) and
//! a subdirectory is read up to Linux's 2 MiB directory limit.

use serde::Serialize;
use visorsim_disk::{BlockDevice, DiskError};

use super::dirent::{
    is_dir, is_free, is_label, is_lfn, lfn_units, name11, start_of, FatFile, RawEntry, ATTR_DIRECTORY, DELETED,
    ENTRY_BYTES, LFN_LAST, LFN_UNITS, MAX_LFN_SLOTS, OFF_ATTR, OFF_CHECKSUM, OFF_LCASE,
};
use super::geometry::Regions;
use super::names::{clean_name, display_name, eq_ignore_case, lfn_checksum, shown_short_name};
use super::ops::{corrupt, FatOpError};
use super::read::FatReader;
use super::table::Fat;

/// Largest directory Linux reads (`FAT_MAX_DIR_SIZE`): the cap of a chain walk.
const MAX_DIR_BYTES: u64 = 2 * 1024 * 1024;

/// A file or directory with its long name and the directory slots it uses:
/// `slots` consecutive 32-byte slots, its LFN slots (if they are valid)
/// then its short entry. In a root directory they lie in consecutive
/// sectors; in a subdirectory they follow the cluster chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DirSlot {
    /// The long name from valid LFN slots. Without them, the short name,
    /// lower-cased where the case byte says so (as Linux shows it).
    pub long_name: String,
    /// The short entry: name, size, first cluster and where it lies.
    pub short: FatFile,
    /// Absolute LBA of the sector holding the first slot.
    pub first_slot_lba: u64,
    /// Byte offset of the first slot within that sector.
    pub first_slot_offset: usize,
    /// Number of slots: LFN slots + 1.
    pub slots: usize,
    /// The attribute byte of the short entry.
    pub attr: u8,
}

impl DirSlot {
    /// Whether the entry is a directory.
    pub fn is_dir(&self) -> bool {
        self.attr & ATTR_DIRECTORY != 0
    }
}

/// Lists the root directory: files and directories with their long names
/// and slots, in directory order, up to the first entry starting with 0x00.
/// Deleted entries and volume labels are skipped; LFN slots whose order or
/// checksum do not match their short entry are ignored (that entry is shown
/// by its short name, with `slots` = 1).
pub fn list_root_long<D: BlockDevice>(dev: &mut D, reader: &FatReader) -> Result<Vec<DirSlot>, FatOpError> {
    let img = DirImage::load_root(dev, reader.regions())?;
    Ok(parse(&img).iter().map(|e| e.to_slot(&img)).collect())
}

/// Lists the directory `dir` (an entry from a listing), like
/// [`list_root_long`], "." and ".." included. A directory whose first
/// cluster is 0 and is named ".." is the root directory (what ".." says in
/// a subdirectory of the root).
pub fn list_dir_long<D: BlockDevice>(
    dev: &mut D,
    reader: &FatReader,
    dir: &FatFile,
) -> Result<Vec<DirSlot>, FatOpError> {
    let r = reader.regions();
    let own = read_own_entry(dev, r, dir, false)?;
    if !is_dir(&own) {
        return Err(FatOpError::NotADirectory { name: dir.short_name.clone() });
    }
    let img = if dir.first_cluster == 0 && dir.short_name == ".." {
        DirImage::load_root(dev, r)?
    } else if dir.first_cluster == 0 {
        return Err(corrupt(format!("directory {} has no cluster", dir.short_name)));
    } else {
        let fat = Fat::load(dev, r)?;
        DirImage::load_chain(dev, r, &fat, dir)?
    };
    Ok(parse(&img).iter().map(|e| e.to_slot(&img)).collect())
}

/// Looks `name` up in the root directory as Linux does: by long name
/// ignoring case, or by short name ("STATET~1.123"). Trailing dots
/// are ignored, leading '/'s dropped. Finds directories too (which
/// [`FatReader::find`] skips).
pub fn find_root_long<D: BlockDevice>(
    dev: &mut D,
    reader: &FatReader,
    name: &str,
) -> Result<Option<DirSlot>, FatOpError> {
    let wanted = cleaned(name)?;
    let img = DirImage::load_root(dev, reader.regions())?;
    let entries = parse(&img);
    Ok(lookup(&entries, &wanted).map(|e| e.to_slot(&img)))
}

/// [`clean_name`] with the error of this module.
pub(crate) fn cleaned(name: &str) -> Result<String, FatOpError> {
    clean_name(name).map_err(|e| FatOpError::InvalidName { name: name.to_string(), why: e.why })
}

/// A directory's slots in memory, with the sectors they came from.
#[derive(Clone)]
pub(crate) struct DirImage {
    /// Absolute LBA of each sector, in directory order.
    sectors: Vec<u64>,
    /// Every slot of those sectors.
    pub(crate) entries: Vec<RawEntry>,
    ss: usize,
    /// Slots that belong to the directory (at most `entries.len()`).
    pub(crate) slots: usize,
}

impl DirImage {
    /// An image of `count` sectors of `ss` bytes (zeroed).
    fn zeroed(sectors: Vec<u64>, ss: usize, slots: usize) -> DirImage {
        let entries = vec![[0u8; ENTRY_BYTES]; sectors.len() * (ss / ENTRY_BYTES)];
        let slots = slots.min(entries.len());
        DirImage { sectors, entries, ss, slots }
    }

    pub(crate) fn load_root<D: BlockDevice>(dev: &mut D, r: &Regions) -> Result<DirImage, DiskError> {
        let sectors = (r.root_lba..r.data_lba).collect();
        let mut img = DirImage::zeroed(sectors, r.sector_bytes() as usize, r.geometry.root_entries as usize);
        dev.read_sectors(r.root_lba, img.entries.as_flattened_mut())?;
        Ok(img)
    }

    fn load_chain<D: BlockDevice>(dev: &mut D, r: &Regions, fat: &Fat, dir: &FatFile) -> Result<DirImage, FatOpError> {
        let per_cluster = r.geometry.cluster_bytes();
        let limit = (MAX_DIR_BYTES / per_cluster).max(1);
        let chain = fat
            .chain(dir.first_cluster, limit)
            .map_err(|what| corrupt(format!("directory {}: {what}", dir.short_name)))?;
        let spc = u64::from(r.geometry.sectors_per_cluster);
        let mut sectors = Vec::with_capacity(chain.len() * spc as usize);
        for &cluster in &chain {
            // The chain walk kept every cluster in 2..=max.
            let lba = r.cluster_lba(cluster).ok_or_else(|| corrupt(format!("cluster {cluster} is outside")))?;
            sectors.extend(lba..lba + spc);
        }
        let ss = r.sector_bytes() as usize;
        let mut img = DirImage::zeroed(sectors, ss, usize::MAX);
        let per_cluster = per_cluster as usize;
        for (&cluster, data) in chain.iter().zip(img.entries.as_flattened_mut().chunks_exact_mut(per_cluster)) {
            let lba = r.cluster_lba(cluster).ok_or_else(|| corrupt(format!("cluster {cluster} is outside")))?;
            dev.read_sectors(lba, data)?;
        }
        Ok(img)
    }

    pub(crate) fn entry(&self, i: usize) -> &RawEntry {
        &self.entries[i]
    }

    pub(crate) fn entry_mut(&mut self, i: usize) -> &mut RawEntry {
        &mut self.entries[i]
    }

    pub(crate) fn sector_of(&self, i: usize) -> usize {
        i * ENTRY_BYTES / self.ss
    }

    fn position(&self, i: usize) -> (u64, usize) {
        (self.sectors[self.sector_of(i)], i * ENTRY_BYTES % self.ss)
    }

    pub(crate) fn write_sector<D: BlockDevice>(&self, dev: &mut D, sector: usize) -> Result<(), DiskError> {
        let per = self.ss / ENTRY_BYTES;
        dev.write_sectors(self.sectors[sector], self.entries[sector * per..(sector + 1) * per].as_flattened())
    }
}

/// Reads the short entry `file` describes and checks it is still there:
/// inside the root directory (`root_only`) or the volume, with the same
/// short name and first cluster.
pub(crate) fn read_own_entry<D: BlockDevice>(
    dev: &mut D,
    r: &Regions,
    file: &FatFile,
    root_only: bool,
) -> Result<RawEntry, FatOpError> {
    let gone = || FatOpError::NotFound { name: file.short_name.clone() };
    let ss = r.sector_bytes() as usize;
    let (lba, offset) = (file.dir_entry_lba, file.dir_entry_offset);
    // The offset first: it bounds the sums below.
    if !offset.is_multiple_of(ENTRY_BYTES) || offset > ss - ENTRY_BYTES {
        return Err(gone());
    }
    let inside = if root_only {
        (r.root_lba..r.data_lba).contains(&lba)
            && ((lba - r.root_lba) as usize * ss + offset) / ENTRY_BYTES < r.geometry.root_entries as usize
    } else {
        (r.first_lba..r.end_lba).contains(&lba)
    };
    if !inside {
        return Err(gone());
    }
    let mut sector = vec![0u8; ss];
    dev.read_sectors(lba, &mut sector)?;
    let mut raw = [0u8; ENTRY_BYTES];
    raw.copy_from_slice(&sector[offset..offset + ENTRY_BYTES]);
    if is_free(&raw)
        || is_lfn(&raw)
        || display_name(&name11(&raw)) != file.short_name
        || start_of(&raw) != file.first_cluster
    {
        return Err(gone());
    }
    Ok(raw)
}

/// One file or directory of a directory image.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// The long name from valid LFN slots.
    long_name: Option<String>,
    /// "NAME.EXT".
    short_name: String,
    /// Slot index of the first slot (an LFN slot or the short entry).
    pub(crate) first: usize,
    /// Slot index of the short entry.
    pub(crate) sfn: usize,
}

impl Entry {
    fn to_slot(&self, img: &DirImage) -> DirSlot {
        let raw = img.entry(self.sfn);
        let (dir_entry_lba, dir_entry_offset) = img.position(self.sfn);
        let (first_slot_lba, first_slot_offset) = img.position(self.first);
        DirSlot {
            long_name: self.long_name.clone().unwrap_or_else(|| shown_short_name(&name11(raw), raw[OFF_LCASE])),
            short: FatFile::of_entry(raw, dir_entry_lba, dir_entry_offset),
            first_slot_lba,
            first_slot_offset,
            slots: self.sfn - self.first + 1,
            attr: raw[OFF_ATTR],
        }
    }

    fn matches(&self, name: &str) -> bool {
        self.long_name.as_deref().is_some_and(|long| eq_ignore_case(long.trim_end_matches('.'), name))
            || eq_ignore_case(&self.short_name, name)
    }
}

/// LFN slots seen so far, waiting for their short entry.
struct LfnRun {
    first: usize,
    checksum: u8,
    /// Order of the next slot expected; 0 once the slot of order 1 was seen.
    /// Slots come from the name's last part (order n, flagged 0x40) down to
    /// its first (order 1), then the short entry.
    next: u8,
    units: Vec<u16>,
}

/// The files and directories of a directory image, up to the first slot
/// starting with 0x00.
pub(crate) fn parse(img: &DirImage) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut run: Option<LfnRun> = None;
    for i in 0..img.slots {
        let raw = img.entry(i);
        if raw[0] == 0 {
            break;
        }
        if raw[0] == DELETED {
            run = None;
            continue;
        }
        if is_lfn(raw) {
            let order = raw[0];
            let checksum = raw[OFF_CHECKSUM];
            if order & LFN_LAST != 0 {
                let count = order & !LFN_LAST;
                run = (1..=MAX_LFN_SLOTS).contains(&count).then(|| LfnRun {
                    first: i,
                    checksum,
                    next: count,
                    units: vec![0; usize::from(count) * LFN_UNITS],
                });
            } else if !run.as_ref().is_some_and(|r| r.next >= 1 && order == r.next && checksum == r.checksum) {
                run = None;
            }
            if let Some(r) = run.as_mut() {
                // The order is 1..=count here: the slot's units fit the run's buffer.
                let part = usize::from(order & !LFN_LAST).saturating_sub(1);
                if let Some(units) = r.units.get_mut(part * LFN_UNITS..(part + 1) * LFN_UNITS) {
                    units.copy_from_slice(&lfn_units(raw));
                }
                r.next = (order & !LFN_LAST).saturating_sub(1);
            }
            continue;
        }
        let run_taken = run.take();
        if is_label(raw) {
            continue;
        }
        let name = name11(raw);
        let (first, long_name) = match run_taken {
            Some(r) if r.next == 0 && r.checksum == lfn_checksum(&name) => {
                let end = r.units.iter().position(|&u| u == 0).unwrap_or(r.units.len());
                (r.first, Some(String::from_utf16_lossy(&r.units[..end])))
            }
            _ => (i, None),
        };
        entries.push(Entry { long_name, short_name: display_name(&name), first, sfn: i });
    }
    entries
}

/// The entry Linux's lookup finds for `name` (already cleaned): the first
/// whose long name matches ignoring case, or whose short name does.
pub(crate) fn lookup<'a>(entries: &'a [Entry], name: &str) -> Option<&'a Entry> {
    entries.iter().find(|e| e.matches(name))
}
