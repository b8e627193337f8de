//! Directory operations on a FAT12/16 volume's raw sectors, issued in the
//! order Linux's vfat driver writes them, for the two things `fatfs` 0.3.6
//! gets wrong when the host runs ESXi's `backup.sh`:
//!
//! - `Dir::create_dir` writes "." and ".." like ordinary names, each behind a
//!   long-file-name (LFN) slot, which `fsck.fat` rejects ("Expected a valid
//!   '.' entry in this slot"). [`fix_new_dir`] rewrites the new directory's
//!   cluster to what mkdir leaves on Linux.
//! - `Dir::rename` refuses an existing destination, while `mv -f
//!   state.tgz.$$ state.tgz` replaces it. [`rename_replace`] does that.
//!
//! [`list_root_long`], [`list_dir_long`] and [`find_root_long`] show entries
//! with their long names and the directory slots they occupy.
//!
//! Crash-point exploration cuts power between any two sector writes, so the
//! sequence of writes is part of the contract. These facts about Linux
//! `fs/fat` (`namei_vfat.c`, `dir.c`, `fatent.c`, `inode.c`) set it:
//! - `vfat_rename` onto an existing name writes no new name. It attaches the
//!   source inode to the target's short entry and writes the inode there.
//!   That write covers the attributes, the start cluster, the size and the
//!   times. The target's name, its case byte (offset 12) and its LFN slots
//!   stay. Then `fat_remove_entries` marks the source's slots deleted
//!   (0xE5). It first writes the sector holding the short entry, together
//!   with the LFN slots before it in that sector. Then it writes the sectors
//!   of any remaining LFN slots, in ascending order. When the replaced inode
//!   is evicted, `fat_free_clusters` zeroes its chain in FAT #1, and
//!   `fat_mirror_bhs` copies each changed FAT #1 sector over the same sector
//!   of every other FAT. This happens in batches of at most 8 sectors
//!   (`MAX_BUF_PER_PAGE`). Once 8 sectors are collected, the next entry
//!   writes the batch out, even when that entry lies in a collected sector,
//!   which the next batch then writes again.
//! - Without a target, `vfat_add_entry` first fills the first run of free
//!   slots (0x00 or 0xE5) that can hold the new LFN slots and short entry.
//!   That short entry has start cluster 0 and size 0. The sectors are
//!   written in ascending order. Then the inode is written into the new
//!   short entry, and the source's slots are removed as above.
//! - mkdir (`fat_alloc_new_dir`) gives the new cluster a "." entry (start =
//!   the cluster itself) and a ".." entry (start = the parent's, 0 for the
//!   root). Both get attribute 0x10, case byte 0 and the directory's times.
//!   The rest of the cluster is zeroed.
//!
//! A default Linux mount only dirties buffers and leaves the order to
//! writeback. Under `-o sync`, each step above is written before the next.
//! This module issues that synchronous order: one write per sector per step,
//! so a sector touched by two steps is written twice. The renames never
//! flush; the caller's `sync` does. The write sequences:
//!
//! ```text
//!   rename_replace(src, dst), dst exists            (`mv -f state.tgz.$$ state.tgz`)
//!   1  sector of dst's short entry    dst short entry := src's attr, times, cluster, size
//!   2  sector of src's short entry    src's slots in it := 0xE5
//!      sectors of src's other slots   := 0xE5, ascending
//!   3  FAT #1 sectors of dst's chain  entries := 0, sectors in chain order   } per batch
//!      FAT #2.. same sectors          copies of those FAT #1 sectors         } of <= 8
//!
//!   rename_replace(src, dst), dst missing
//!   1  sectors of the new slots       LFN slots + short entry (cluster 0, size 0), ascending
//!   2  sector of the new short entry  := src's attr, times, cluster, size
//!   3  as step 2 above                src's slots := 0xE5
//!
//!   fix_new_dir(dir)
//!   1  each sector of dir's cluster   "." and ".." then zeros, in order;  then a flush
//! ```
//!
//! Between steps 1 and 2 of a replace, dst and src share one chain and the
//! old chain is lost. `fsck.fat` reports that, and Linux leaves the same
//! window. Between steps 1 and 2 of a rename to a new name, dst is an empty
//! file and the volume is clean.
//!
//! [`fix_new_dir`] repairs what `fatfs` already wrote (FAT entry, the
//! directory's entry, then its cluster). The crash windows of that mkdir
//! are `fatfs`'s, not Linux's, which writes the cluster before the entry.
//!
//! Where this module differs from Linux:
//! - everything is validated before the first write: a missing source, a
//!   broken chain of the replaced file or a full root directory is an error
//!   with nothing written. Linux would rename, then fail freeing the chain;
//! - short names follow `vfat_create_shortname` for ASCII names. That means
//!   `NAME~1`..`NAME~9`, which agrees with `fatfs` up to `~4`. Then comes a
//!   deterministic checksum form like `fatfs`'s, where Linux uses the clock.
//!   A non-ASCII character becomes '_' rather than going through code page
//!   437. As with Linux's default `shortname=mixed`, an all-upper-case 8.3
//!   name gets a short entry only; any other name also gets LFN slots
//!   (`fatfs` always writes them);
//! - the placeholder short entry of a rename to a new name carries the
//!   source's modification time, where Linux stamps the current time (no
//!   clock is injected here; step 2 overwrites it anyway);
//! - replacing a directory, or replacing a file with a directory, is
//!   refused;
//! - listings stop at the first entry starting with 0x00, as `fatfs`,
//!   [`crate::fatread`] and esx-boot do (Linux reads on).
//!
//! Disk bytes are hostile. Nothing here panics on them. Memory is bounded: a
//! root directory (at most 2 MiB), one subdirectory (capped at Linux's
//! 2 MiB directory limit) and the used part of FAT #1 (at most 128 KiB on
//! FAT16).

use std::collections::HashSet;

use serde::Serialize;
use visorsim_disk::{BlockDevice, DiskError};

use crate::fatread::{le16, le32, FatFile, FatReadError, FatReader};

/// Bytes per directory slot.
const DIR_ENTRY: usize = 32;
const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_ARCHIVE: u8 = 0x20;
/// Attribute of an LFN slot (under the mask 0x3F).
const ATTR_LFN: u8 = 0x0F;
const DELETED: u8 = 0xE5;
/// Order-byte flag of the LFN slot holding the name's last part (written first).
const LFN_LAST: u8 = 0x40;
/// UTF-16 units per LFN slot.
const LFN_UNITS: usize = 13;
/// Most LFN slots of one name (255 units), as Linux accepts.
const MAX_LFN_SLOTS: u8 = 20;
/// Longest name in UTF-16 units (Linux's `FAT_LFN_LEN`).
const MAX_NAME_UNITS: usize = 255;
/// Largest directory Linux reads (`FAT_MAX_DIR_SIZE`): the cap of a chain walk.
const MAX_DIR_BYTES: u64 = 2 * 1024 * 1024;
/// FAT sectors `fat_free_clusters` collects before writing (`MAX_BUF_PER_PAGE`).
const FAT_BATCH: usize = 8;
/// Byte offsets within a short entry.
const OFF_ATTR: usize = 11;
const OFF_LCASE: usize = 12;
const OFF_START_HI: usize = 20;
const OFF_MTIME: usize = 22;
const OFF_MDATE: usize = 24;
const OFF_START: usize = 26;
const OFF_SIZE: usize = 28;
/// Case byte flags: the base, the extension is shown in lower case.
const CASE_LOWER_BASE: u8 = 0x08;
const CASE_LOWER_EXT: u8 = 0x10;
/// Characters Linux replaces by '_' in a short name.
const REPLACED: &str = "[];,+=";
/// Characters no FAT name may hold (besides controls).
const FORBIDDEN: &str = "*?<>|\":/\\";

/// Why a directory operation failed. Every error except [`FatOpError::Disk`]
/// is raised before the first write.
#[derive(Debug, thiserror::Error)]
pub enum FatOpError {
    /// No entry has this name.
    #[error("No such file or directory: {name}")]
    NotFound {
        /// The name looked up (for a stale [`FatFile`], its short name).
        name: String,
    },
    /// The entry is not a directory.
    #[error("Not a directory: {name}")]
    NotADirectory {
        /// Its name.
        name: String,
    },
    /// A rename would replace a directory, which is not supported.
    #[error("Is a directory: {name}")]
    IsADirectory {
        /// Its name.
        name: String,
    },
    /// [`fix_new_dir`] was given a directory that is not fresh from mkdir.
    #[error("Directory {name} is not fresh from mkdir: {what}")]
    NotEmpty {
        /// Its short name.
        name: String,
        /// What it holds.
        what: String,
    },
    /// A name that FAT cannot hold or this module does not handle.
    #[error("Invalid file name {name:?}: {why}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The root directory has no run of free slots long enough.
    #[error("The root directory has no {needed} consecutive free slots")]
    RootFull {
        /// Slots needed (LFN slots + the short entry).
        needed: usize,
    },
    /// The volume's metadata contradicts itself.
    #[error("Corrupt FAT volume: {what}")]
    Corrupt {
        /// What is wrong, naming the entry or cluster.
        what: String,
    },
    /// The volume could not be read.
    #[error("Cannot read the FAT volume")]
    Read(#[from] FatReadError),
    /// The device failed (the error names the LBA).
    #[error("Cannot access the FAT volume")]
    Disk(#[from] DiskError),
}

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
    let l = Layout::of(reader);
    let img = load_root(dev, &l)?;
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
    let l = Layout::of(reader);
    let own = read_own_entry(dev, &l, dir, false)?;
    if own[OFF_ATTR] & ATTR_DIRECTORY == 0 {
        return Err(FatOpError::NotADirectory { name: dir.short_name.clone() });
    }
    let img = if dir.first_cluster == 0 && dir.short_name == ".." {
        load_root(dev, &l)?
    } else if dir.first_cluster == 0 {
        return Err(corrupt(format!("directory {} has no cluster", dir.short_name)));
    } else {
        let fat = Fat::load(dev, &l)?;
        load_chain(dev, &l, &fat, dir)?
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
    let wanted = clean_name(name)?;
    let l = Layout::of(reader);
    let img = load_root(dev, &l)?;
    let entries = parse(&img);
    Ok(lookup(&entries, &wanted).map(|e| e.to_slot(&img)))
}

/// Rewrites the first cluster of directory `dir`, an entry of the root
/// directory (from [`list_root_long`] or [`find_root_long`]). Afterwards it
/// holds exactly a "." entry (start = its own cluster) and a ".." entry
/// (start = 0, the root), then zeros, as mkdir on Linux vfat leaves it.
/// Both entries get the times of the directory's own entry, which is not
/// written. Each sector of the cluster is written once, in order, then the
/// device is flushed.
///
/// Refused before any write: an entry that is no longer where `dir` says
/// ([`FatOpError::NotFound`]), a file ([`FatOpError::NotADirectory`]), a
/// directory that holds anything but "." and ".." (with or without the LFN
/// slots `fatfs` puts before them) or spans more than one cluster
/// ([`FatOpError::NotEmpty`]), and a first cluster outside the volume or
/// whose FAT entry is free, reserved or bad ([`FatOpError::Corrupt`]).
pub fn fix_new_dir<D: BlockDevice>(dev: &mut D, reader: &FatReader, dir: &FatFile) -> Result<(), FatOpError> {
    let l = Layout::of(reader);
    let own = read_own_entry(dev, &l, dir, true)?;
    let name = &dir.short_name;
    if own[OFF_ATTR] & ATTR_DIRECTORY == 0 {
        return Err(FatOpError::NotADirectory { name: name.clone() });
    }
    let cluster = dir.first_cluster;
    if !(2..=l.max_cluster).contains(&cluster) {
        return Err(corrupt(format!("directory {name}: first cluster {cluster} is outside 2..={}", l.max_cluster)));
    }
    let fat = Fat::load(dev, &l)?;
    match fat.get(cluster) {
        None => return Err(corrupt(format!("directory {name}: the FAT entry of cluster {cluster} lies past the FAT"))),
        Some(next) if next >= l.end_of_chain() => {}
        Some(next) if next < 2 || next == l.end_of_chain() - 1 => {
            return Err(corrupt(format!("directory {name}: the FAT entry of its cluster {cluster} is {next:#x}")));
        }
        Some(next) => {
            return Err(FatOpError::NotEmpty {
                name: name.clone(),
                what: format!("it spans more than one cluster ({cluster} is followed by {next})"),
            });
        }
    }
    let lba = l.cluster_lba(cluster);
    let mut data = vec![0u8; l.cluster_bytes()];
    dev.read_sectors(lba, &mut data)?;
    for raw in data.chunks_exact(DIR_ENTRY) {
        if raw[0] == 0 {
            break;
        }
        let dot = raw[..11] == DOT || raw[..11] == DOTDOT;
        if raw[0] == DELETED || is_lfn(raw) || (dot && raw[OFF_ATTR] & ATTR_DIRECTORY != 0) {
            continue;
        }
        let what = format!("it holds {:?}", display_name(raw));
        return Err(FatOpError::NotEmpty { name: name.clone(), what });
    }

    data.fill(0);
    for (slot, short, start) in [(0, DOT, cluster), (1, DOTDOT, 0)] {
        let e = &mut data[slot * DIR_ENTRY..(slot + 1) * DIR_ENTRY];
        e[..11].copy_from_slice(&short);
        e[OFF_ATTR] = ATTR_DIRECTORY;
        // Creation time and date, access date; modification time and date.
        e[13..20].copy_from_slice(&own[13..20]);
        e[OFF_MTIME..OFF_START].copy_from_slice(&own[OFF_MTIME..OFF_START]);
        set_start(e, start);
    }
    for (i, sector) in data.chunks_exact(l.ss).enumerate() {
        dev.write_sectors(lba + i as u64, sector)?;
    }
    dev.flush()?;
    Ok(())
}

/// `mv -f src dst` within the root directory, as Linux vfat writes it (see
/// the module documentation for the exact write sequence). Names are looked
/// up as [`find_root_long`] does.
///
/// - `dst` exists: its short entry takes src's attributes, times, first
///   cluster and size (its name and LFN slots stay), src's slots are marked
///   deleted, then dst's old chain is freed in every FAT.
/// - `dst` is missing: new slots named `dst` are written (LFN slots unless
///   `dst` is an all-upper-case 8.3 name, then a short entry with a fresh
///   short name), then filled in with src's data, then src's slots are
///   marked deleted. Nothing is reused in place.
/// - `src` and `dst` name the same entry: nothing is written.
///
/// Nothing is flushed. Errors ([`FatOpError::NotFound`], `InvalidName`,
/// `IsADirectory`, `NotADirectory`, `RootFull`, `Corrupt`) are raised before
/// the first write.
pub fn rename_replace<D: BlockDevice>(
    dev: &mut D,
    reader: &FatReader,
    src_long_name: &str,
    dst_long_name: &str,
) -> Result<(), FatOpError> {
    let src_name = clean_name(src_long_name)?;
    let dst_name = clean_name(dst_long_name)?;
    let l = Layout::of(reader);
    let mut img = load_root(dev, &l)?;
    let entries = parse(&img);
    let src = lookup(&entries, &src_name).ok_or_else(|| FatOpError::NotFound { name: src_long_name.to_string() })?;
    match lookup(&entries, &dst_name) {
        Some(dst) if dst.sfn == src.sfn => Ok(()),
        Some(dst) => replace(dev, &l, &mut img, src, dst, dst_long_name),
        None => rename_to_new(dev, &mut img, src, &dst_name),
    }
}

/// The replace path of [`rename_replace`].
fn replace<D: BlockDevice>(
    dev: &mut D,
    l: &Layout,
    img: &mut DirImage,
    src: &Entry,
    dst: &Entry,
    dst_long_name: &str,
) -> Result<(), FatOpError> {
    let src_raw = img.entry(src.sfn).to_vec();
    let dst_raw = img.entry(dst.sfn).to_vec();
    if dst_raw[OFF_ATTR] & ATTR_DIRECTORY != 0 {
        return Err(FatOpError::IsADirectory { name: dst_long_name.to_string() });
    }
    if src_raw[OFF_ATTR] & ATTR_DIRECTORY != 0 {
        return Err(FatOpError::NotADirectory { name: dst_long_name.to_string() });
    }
    let mut fat = Fat::load(dev, l)?;
    let victim = start_of(&dst_raw);
    let chain = if victim == 0 {
        Vec::new()
    } else {
        let dst_name = display_name(&dst_raw);
        let chain =
            fat.chain(victim, u64::from(l.max_cluster)).map_err(|what| corrupt(format!("{dst_name}: {what}")))?;
        let src_start = start_of(&src_raw);
        if chain.contains(&src_start) {
            return Err(corrupt(format!(
                "{dst_name}'s chain holds cluster {src_start}, where {} starts: they are cross-linked",
                display_name(&src_raw)
            )));
        }
        for &cluster in &chain {
            if fat.entry_sectors(cluster).1 >= fat.sectors {
                return Err(corrupt(format!("{dst_name}: the FAT entry of cluster {cluster} lies past the FAT")));
            }
        }
        chain
    };

    // Step 1: the target's short entry takes the source's inode.
    copy_inode(&src_raw, img.entry_mut(dst.sfn));
    img.write_sector(dev, img.sector_of(dst.sfn))?;
    // Step 2: the source's slots go.
    remove_entries(dev, img, src)?;
    // Step 3: the replaced file's chain is freed, FAT #1 then its mirrors.
    free_chain(dev, l, &mut fat, &chain)
}

/// The new-name path of [`rename_replace`].
fn rename_to_new<D: BlockDevice>(
    dev: &mut D,
    img: &mut DirImage,
    src: &Entry,
    dst_name: &str,
) -> Result<(), FatOpError> {
    let src_raw = img.entry(src.sfn).to_vec();
    // Short names in use: every live short entry but volume labels, past a
    // 0x00 slot too (as `vfat_find_form` scans).
    let taken: HashSet<[u8; 11]> = (0..img.slots)
        .map(|i| img.entry(i))
        .filter(|raw| !is_free(raw) && raw[OFF_ATTR] & ATTR_VOLUME_ID == 0)
        .map(name11)
        .collect();
    let short = short_name_for(dst_name, &taken)?;
    let mut units: Vec<u16> = dst_name.encode_utf16().collect();
    let lfn_slots = if short.sfn_only { 0 } else { units.len().div_ceil(LFN_UNITS) };
    let needed = lfn_slots + 1;
    let first = find_free_run(img, needed).ok_or(FatOpError::RootFull { needed })?;

    // Build the slots: LFN slots from the name's last part down to its
    // first, then the placeholder short entry (cluster 0, size 0).
    if !units.len().is_multiple_of(LFN_UNITS) {
        units.push(0);
        units.resize(units.len().div_ceil(LFN_UNITS) * LFN_UNITS, 0xFFFF);
    }
    let checksum = lfn_checksum(&short.name);
    let mut slots = vec![0u8; needed * DIR_ENTRY];
    for (k, slot) in slots.chunks_exact_mut(DIR_ENTRY).take(lfn_slots).enumerate() {
        let order = lfn_slots - k;
        slot[0] = order as u8 | if k == 0 { LFN_LAST } else { 0 };
        slot[OFF_ATTR] = ATTR_LFN;
        slot[13] = checksum;
        let part = &units[(order - 1) * LFN_UNITS..order * LFN_UNITS];
        for (j, &unit) in part.iter().enumerate() {
            let at = LFN_UNIT_OFFSETS[j];
            slot[at..at + 2].copy_from_slice(&unit.to_le_bytes());
        }
    }
    let sfn = &mut slots[lfn_slots * DIR_ENTRY..];
    sfn[..11].copy_from_slice(&short.name);
    sfn[OFF_ATTR] = if src_raw[OFF_ATTR] & ATTR_DIRECTORY != 0 { ATTR_DIRECTORY } else { ATTR_ARCHIVE };
    let (time, date) = (&src_raw[OFF_MTIME..OFF_MDATE], &src_raw[OFF_MDATE..OFF_START]);
    sfn[14..16].copy_from_slice(time); // creation time
    sfn[16..18].copy_from_slice(date); // creation date
    sfn[18..20].copy_from_slice(date); // access date
    sfn[OFF_MTIME..OFF_MDATE].copy_from_slice(time);
    sfn[OFF_MDATE..OFF_START].copy_from_slice(date);

    // Step 1: the new slots, sector by sector.
    img.bytes[first * DIR_ENTRY..(first + needed) * DIR_ENTRY].copy_from_slice(&slots);
    let new_sfn = first + needed - 1;
    for sector in img.sector_of(first)..=img.sector_of(new_sfn) {
        img.write_sector(dev, sector)?;
    }
    // Step 2: the new short entry takes the source's inode.
    copy_inode(&src_raw, img.entry_mut(new_sfn));
    img.write_sector(dev, img.sector_of(new_sfn))?;
    // Step 3: the source's slots go.
    remove_entries(dev, img, src)
}

/// What `__fat_write_inode` writes into a short entry: attributes,
/// creation and access times, start cluster, modification time and size;
/// not the name nor the case byte.
fn copy_inode(from: &[u8], to: &mut [u8]) {
    to[OFF_ATTR] = from[OFF_ATTR];
    to[13..DIR_ENTRY].copy_from_slice(&from[13..DIR_ENTRY]);
}

/// Marks `e`'s slots deleted as `fat_remove_entries` does: the short
/// entry's sector first (with the LFN slots before it there), then the
/// sectors of the remaining LFN slots, ascending.
fn remove_entries<D: BlockDevice>(dev: &mut D, img: &mut DirImage, e: &Entry) -> Result<(), FatOpError> {
    let sfn_sector = img.sector_of(e.sfn);
    let mut first_marked = e.sfn;
    loop {
        img.entry_mut(first_marked)[0] = DELETED;
        if first_marked == e.first || img.sector_of(first_marked - 1) != sfn_sector {
            break;
        }
        first_marked -= 1;
    }
    img.write_sector(dev, sfn_sector)?;
    let mut i = e.first;
    while i < first_marked {
        let sector = img.sector_of(i);
        while i < first_marked && img.sector_of(i) == sector {
            img.entry_mut(i)[0] = DELETED;
            i += 1;
        }
        img.write_sector(dev, sector)?;
    }
    Ok(())
}

/// Frees `chain` as `fat_free_clusters` does: entry by entry in FAT #1,
/// the touched sectors collected in chain order and written in batches of
/// at most [`FAT_BATCH`], each batch to FAT #1 then to every other FAT.
fn free_chain<D: BlockDevice>(dev: &mut D, l: &Layout, fat: &mut Fat, chain: &[u32]) -> Result<(), FatOpError> {
    let mut batch: Vec<u64> = Vec::with_capacity(FAT_BATCH);
    for &cluster in chain {
        let touched = fat
            .set(cluster, 0)
            .ok_or_else(|| corrupt(format!("the FAT entry of cluster {cluster} lies past the FAT")))?;
        let touched = if touched.0 == touched.1 { vec![touched.0] } else { vec![touched.0, touched.1] };
        if batch.len() + touched.len() > FAT_BATCH {
            write_fat_batch(dev, l, fat, &batch)?;
            batch.clear();
        }
        for sector in touched {
            if !batch.contains(&sector) {
                batch.push(sector);
            }
        }
    }
    write_fat_batch(dev, l, fat, &batch)
}

fn write_fat_batch<D: BlockDevice>(dev: &mut D, l: &Layout, fat: &Fat, batch: &[u64]) -> Result<(), FatOpError> {
    for copy in 0..l.fats {
        for &sector in batch {
            let at = sector as usize * l.ss;
            let data = fat.bytes.get(at..at + l.ss).ok_or_else(|| corrupt("a FAT sector lies past the FAT".into()))?;
            dev.write_sectors(l.fat_lba + copy * l.fat_sectors + sector, data)?;
        }
    }
    Ok(())
}

/// Where a volume's regions lie, from a validated [`FatReader`].
#[derive(Clone, Copy, Debug)]
struct Layout {
    first_lba: u64,
    end_lba: u64,
    ss: usize,
    fat_lba: u64,
    fat_sectors: u64,
    fats: u64,
    root_lba: u64,
    root_entries: usize,
    data_lba: u64,
    sectors_per_cluster: u64,
    max_cluster: u32,
    fat_bits: u32,
}

impl Layout {
    fn of(reader: &FatReader) -> Layout {
        let g = reader.geometry();
        let ss = u64::from(g.bytes_per_sector);
        // `FatReader::open` checked these against the partition: the sums
        // stay below the partition's end, so none overflows.
        let fat_lba = reader.first_lba() + u64::from(g.reserved_sectors);
        let root_lba = fat_lba + u64::from(g.fats) * u64::from(g.fat_sectors);
        let root_sectors = (u64::from(g.root_entries) * DIR_ENTRY as u64).div_ceil(ss);
        Layout {
            first_lba: reader.first_lba(),
            end_lba: reader.first_lba() + u64::from(g.total_sectors),
            ss: ss as usize,
            fat_lba,
            fat_sectors: g.fat_sectors.into(),
            fats: g.fats.into(),
            root_lba,
            root_entries: g.root_entries as usize,
            data_lba: root_lba + root_sectors,
            sectors_per_cluster: g.sectors_per_cluster.into(),
            max_cluster: g.clusters + 1,
            fat_bits: g.fat_bits,
        }
    }

    fn cluster_bytes(&self) -> usize {
        self.sectors_per_cluster as usize * self.ss
    }

    /// First sector of a cluster in 2..=max.
    fn cluster_lba(&self, cluster: u32) -> u64 {
        self.data_lba + u64::from(cluster - 2) * self.sectors_per_cluster
    }

    /// FAT values from this one up end a chain; one below is "bad".
    fn end_of_chain(&self) -> u32 {
        if self.fat_bits == 12 {
            0xFF8
        } else {
            0xFFF8
        }
    }
}

/// The used part of FAT #1, in memory.
struct Fat {
    bytes: Vec<u8>,
    /// Sectors loaded (at most the FAT's size).
    sectors: u64,
    ss: u64,
    bits: u32,
    max_cluster: u32,
    end_of_chain: u32,
}

impl Fat {
    fn load<D: BlockDevice>(dev: &mut D, l: &Layout) -> Result<Fat, DiskError> {
        let entries = u64::from(l.max_cluster) + 1;
        let used = if l.fat_bits == 12 { (entries * 3).div_ceil(2) } else { entries * 2 };
        let ss = l.ss as u64;
        let sectors = used.div_ceil(ss).min(l.fat_sectors);
        let mut bytes = vec![0u8; (sectors * ss) as usize];
        dev.read_sectors(l.fat_lba, &mut bytes)?;
        Ok(Fat { bytes, sectors, ss, bits: l.fat_bits, max_cluster: l.max_cluster, end_of_chain: l.end_of_chain() })
    }

    /// Byte offset of a cluster's entry (two bytes, the FAT12 one shared).
    fn offset(&self, cluster: u32) -> usize {
        let n = cluster as usize;
        if self.bits == 12 {
            n + n / 2
        } else {
            2 * n
        }
    }

    /// The FAT sectors (relative to the FAT) holding the entry's first and
    /// last byte.
    fn entry_sectors(&self, cluster: u32) -> (u64, u64) {
        let at = self.offset(cluster) as u64;
        (at / self.ss, (at + 1) / self.ss)
    }

    fn get(&self, cluster: u32) -> Option<u32> {
        let at = self.offset(cluster);
        let pair = u32::from(*self.bytes.get(at)?) | (u32::from(*self.bytes.get(at + 1)?) << 8);
        Some(match (self.bits, cluster % 2) {
            (12, 1) => pair >> 4,
            (12, _) => pair & 0xFFF,
            _ => pair,
        })
    }

    /// Sets an entry; gives the sectors it touched.
    fn set(&mut self, cluster: u32, value: u32) -> Option<(u64, u64)> {
        let at = self.offset(cluster);
        let old = u16::from_le_bytes([*self.bytes.get(at)?, *self.bytes.get(at + 1)?]);
        let new = match (self.bits, cluster % 2) {
            (12, 1) => (old & 0x000F) | ((value as u16) << 4),
            (12, _) => (old & 0xF000) | (value as u16 & 0x0FFF),
            _ => value as u16,
        };
        self.bytes[at..at + 2].copy_from_slice(&new.to_le_bytes());
        Some(self.entry_sectors(cluster))
    }

    /// The clusters of the chain starting at `first`, up to and including
    /// the one whose entry ends it (end of chain, or "bad", which Linux
    /// also reads as the end). At most `limit` clusters.
    fn chain(&self, first: u32, limit: u64) -> Result<Vec<u32>, String> {
        let max = self.max_cluster;
        let mut seen = vec![0u64; (max as usize + 1).div_ceil(64)];
        let mut chain = Vec::new();
        let mut cluster = first;
        loop {
            if !(2..=max).contains(&cluster) {
                return Err(format!("cluster {cluster} of its chain is outside 2..={max}"));
            }
            let (word, bit) = (cluster as usize / 64, cluster % 64);
            if seen[word] & (1 << bit) != 0 {
                return Err(format!("its chain reaches cluster {cluster} twice"));
            }
            seen[word] |= 1 << bit;
            chain.push(cluster);
            if chain.len() as u64 > limit {
                return Err(format!("its chain is longer than {limit} clusters"));
            }
            match self.get(cluster) {
                None => return Err(format!("the FAT entry of cluster {cluster} lies past the FAT")),
                Some(0) => return Err(format!("cluster {cluster}'s FAT entry is free (0) before the chain ends")),
                Some(1) => return Err(format!("cluster {cluster}'s FAT entry is reserved (1)")),
                Some(next) if next >= self.end_of_chain - 1 => return Ok(chain),
                Some(next) => cluster = next,
            }
        }
    }
}

/// A directory's slots in memory, with the sectors they came from.
#[derive(Clone)]
struct DirImage {
    /// Absolute LBA of each sector, in directory order.
    sectors: Vec<u64>,
    bytes: Vec<u8>,
    ss: usize,
    /// Slots that belong to the directory.
    slots: usize,
}

impl DirImage {
    fn entry(&self, i: usize) -> &[u8] {
        &self.bytes[i * DIR_ENTRY..(i + 1) * DIR_ENTRY]
    }

    fn entry_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.bytes[i * DIR_ENTRY..(i + 1) * DIR_ENTRY]
    }

    fn sector_of(&self, i: usize) -> usize {
        i * DIR_ENTRY / self.ss
    }

    fn position(&self, i: usize) -> (u64, usize) {
        (self.sectors[self.sector_of(i)], i * DIR_ENTRY % self.ss)
    }

    fn write_sector<D: BlockDevice>(&self, dev: &mut D, sector: usize) -> Result<(), DiskError> {
        dev.write_sectors(self.sectors[sector], &self.bytes[sector * self.ss..(sector + 1) * self.ss])
    }
}

fn load_root<D: BlockDevice>(dev: &mut D, l: &Layout) -> Result<DirImage, DiskError> {
    let count = l.data_lba - l.root_lba;
    let mut bytes = vec![0u8; count as usize * l.ss];
    dev.read_sectors(l.root_lba, &mut bytes)?;
    let sectors = (l.root_lba..l.data_lba).collect();
    Ok(DirImage { sectors, bytes, ss: l.ss, slots: l.root_entries })
}

fn load_chain<D: BlockDevice>(dev: &mut D, l: &Layout, fat: &Fat, dir: &FatFile) -> Result<DirImage, FatOpError> {
    let limit = (MAX_DIR_BYTES / l.cluster_bytes() as u64).max(1);
    let chain =
        fat.chain(dir.first_cluster, limit).map_err(|what| corrupt(format!("directory {}: {what}", dir.short_name)))?;
    let per_cluster = l.cluster_bytes();
    let mut bytes = vec![0u8; chain.len() * per_cluster];
    let mut sectors = Vec::with_capacity(chain.len() * l.sectors_per_cluster as usize);
    for (&cluster, data) in chain.iter().zip(bytes.chunks_exact_mut(per_cluster)) {
        let lba = l.cluster_lba(cluster);
        dev.read_sectors(lba, data)?;
        sectors.extend(lba..lba + l.sectors_per_cluster);
    }
    let slots = bytes.len() / DIR_ENTRY;
    Ok(DirImage { sectors, bytes, ss: l.ss, slots })
}

/// Reads the short entry `file` describes and checks it is still there:
/// inside the root directory (`root_only`) or the volume, with the same
/// short name and first cluster.
fn read_own_entry<D: BlockDevice>(
    dev: &mut D,
    l: &Layout,
    file: &FatFile,
    root_only: bool,
) -> Result<[u8; DIR_ENTRY], FatOpError> {
    let gone = || FatOpError::NotFound { name: file.short_name.clone() };
    let (lba, offset) = (file.dir_entry_lba, file.dir_entry_offset);
    // The offset first: it bounds the sums below.
    if !offset.is_multiple_of(DIR_ENTRY) || offset > l.ss - DIR_ENTRY {
        return Err(gone());
    }
    let inside = if root_only {
        (l.root_lba..l.data_lba).contains(&lba)
            && ((lba - l.root_lba) as usize * l.ss + offset) / DIR_ENTRY < l.root_entries
    } else {
        (l.first_lba..l.end_lba).contains(&lba)
    };
    if !inside {
        return Err(gone());
    }
    let mut sector = vec![0u8; l.ss];
    dev.read_sectors(lba, &mut sector)?;
    let mut raw = [0u8; DIR_ENTRY];
    raw.copy_from_slice(&sector[offset..offset + DIR_ENTRY]);
    if is_free(&raw) || is_lfn(&raw) || display_name(&raw) != file.short_name || start_of(&raw) != file.first_cluster {
        return Err(gone());
    }
    Ok(raw)
}

/// One file or directory of a directory image.
#[derive(Clone, Debug)]
struct Entry {
    /// The long name from valid LFN slots.
    long_name: Option<String>,
    /// "NAME.EXT".
    short_name: String,
    /// Slot index of the first slot (an LFN slot or the short entry).
    first: usize,
    /// Slot index of the short entry.
    sfn: usize,
}

impl Entry {
    fn to_slot(&self, img: &DirImage) -> DirSlot {
        let raw = img.entry(self.sfn);
        let (dir_entry_lba, dir_entry_offset) = img.position(self.sfn);
        let (first_slot_lba, first_slot_offset) = img.position(self.first);
        DirSlot {
            long_name: self.long_name.clone().unwrap_or_else(|| shown_short_name(raw)),
            short: FatFile {
                short_name: display_name(raw),
                size: le32(raw, OFF_SIZE),
                first_cluster: start_of(raw),
                dir_entry_lba,
                dir_entry_offset,
            },
            first_slot_lba,
            first_slot_offset,
            slots: self.sfn - self.first + 1,
            attr: raw[OFF_ATTR],
        }
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

/// Byte offsets of the 13 UTF-16 units of an LFN slot.
const LFN_UNIT_OFFSETS: [usize; LFN_UNITS] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

/// The files and directories of a directory image, up to the first slot
/// starting with 0x00.
fn parse(img: &DirImage) -> Vec<Entry> {
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
            let checksum = raw[13];
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
                let at = usize::from(order & !LFN_LAST).saturating_sub(1) * LFN_UNITS;
                for (j, &offset) in LFN_UNIT_OFFSETS.iter().enumerate() {
                    r.units[at + j] = u16::from_le_bytes([raw[offset], raw[offset + 1]]);
                }
                r.next = (order & !LFN_LAST) - 1;
            }
            continue;
        }
        let run_taken = run.take();
        if raw[OFF_ATTR] & ATTR_VOLUME_ID != 0 {
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
        entries.push(Entry { long_name, short_name: display_name(raw), first, sfn: i });
    }
    entries
}

/// The entry Linux's lookup finds for `name` (already cleaned): the first
/// whose long name matches ignoring case, or whose short name does.
fn lookup<'a>(entries: &'a [Entry], name: &str) -> Option<&'a Entry> {
    entries.iter().find(|e| e.matches(name))
}

impl Entry {
    fn matches(&self, name: &str) -> bool {
        self.long_name.as_deref().is_some_and(|long| eq_ignore_case(long.trim_end_matches('.'), name))
            || eq_ignore_case(&self.short_name, name)
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}

/// A name as Linux's vfat takes it: leading '/'s dropped (root directory
/// only), trailing dots dropped; then non-empty, at most 255 UTF-16 units,
/// no control or forbidden character, not ending with a space.
fn clean_name(name: &str) -> Result<String, FatOpError> {
    let bad = |why| FatOpError::InvalidName { name: name.to_string(), why };
    let cleaned = name.trim_start_matches('/').trim_end_matches('.');
    if cleaned.is_empty() {
        return Err(bad("is empty once leading '/'s and trailing dots are dropped"));
    }
    if cleaned.contains('/') {
        return Err(bad("is a path; only the root directory is handled"));
    }
    if cleaned.chars().any(|c| c < ' ' || FORBIDDEN.contains(c)) {
        return Err(bad("holds a control character or one of * ? < > | \" : \\"));
    }
    if cleaned.ends_with(' ') {
        return Err(bad("ends with a space"));
    }
    if cleaned.encode_utf16().count() > MAX_NAME_UNITS {
        return Err(bad("is longer than 255 UTF-16 units"));
    }
    Ok(cleaned.to_string())
}

/// A short name for a new entry.
struct ShortName {
    name: [u8; 11],
    /// The long name is this 8.3 name in upper case: no LFN slots needed.
    sfn_only: bool,
}

/// Case seen in a part of a name, as Linux's `shortname_info`.
struct PartInfo {
    lower: bool,
    upper: bool,
    valid: bool,
}

impl PartInfo {
    fn new() -> PartInfo {
        PartInfo { lower: true, upper: true, valid: true }
    }

    /// The short-name byte of `c`: `None` for a dropped '.' or ' '.
    fn map(&mut self, c: char) -> Option<u8> {
        if c == '.' || c == ' ' {
            self.valid = false;
            return None;
        }
        if REPLACED.contains(c) || !c.is_ascii() {
            self.valid = false;
            return Some(b'_');
        }
        if c.is_ascii_lowercase() {
            self.upper = false;
        } else if c.is_ascii_uppercase() {
            self.lower = false;
        }
        Some(c.to_ascii_uppercase() as u8)
    }
}

/// The short name Linux's `vfat_create_shortname` gives `long` (cleaned)
/// when the names in `taken` exist, with the deterministic fallback after
/// `~9` described in the module documentation.
fn short_name_for(long: &str, taken: &HashSet<[u8; 11]>) -> Result<ShortName, FatOpError> {
    let chars: Vec<char> = long.chars().collect();
    // The extension follows the last dot, unless only dots and spaces
    // precede it (".profile" has none).
    let (base_chars, ext_chars) = match chars.iter().rposition(|&c| c == '.') {
        Some(dot) if chars[..dot].iter().any(|&c| c != '.' && c != ' ') => (&chars[..dot], &chars[dot + 1..]),
        _ => (&chars[..], &chars[chars.len()..]),
    };
    let mut lossless = true;
    let (mut base_info, mut ext_info) = (PartInfo::new(), PartInfo::new());
    let mut base = Vec::with_capacity(8);
    for (i, &c) in base_chars.iter().enumerate() {
        if let Some(b) = base_info.map(c) {
            base.push(b);
            if base.len() == 8 {
                lossless &= i + 1 == base_chars.len();
                break;
            }
        }
    }
    if base.is_empty() {
        return Err(FatOpError::InvalidName { name: long.to_string(), why: "gives an empty short name" });
    }
    let mut ext = Vec::with_capacity(3);
    for (i, &c) in ext_chars.iter().enumerate() {
        if let Some(b) = ext_info.map(c) {
            ext.push(b);
            if ext.len() == 3 {
                lossless &= i + 1 == ext_chars.len();
                break;
            }
        }
    }
    let mut name = [b' '; 11];
    name[..base.len()].copy_from_slice(&base);
    name[8..8 + ext.len()].copy_from_slice(&ext);
    if lossless && base_info.valid && ext_info.valid {
        if taken.contains(&name) {
            return Err(FatOpError::InvalidName { name: long.to_string(), why: "is the short name of another entry" });
        }
        return Ok(ShortName { name, sfn_only: base_info.upper && ext_info.upper });
    }

    // A numeric tail: NAME~1 .. NAME~9 on at most 6 characters of the base.
    let mut base_len = base.len();
    if base_len > 6 {
        base_len = 6;
        name[7] = b' ';
    }
    name[base_len] = b'~';
    for digit in b'1'..=b'9' {
        name[base_len + 1] = digit;
        if !taken.contains(&name) {
            return Ok(ShortName { name, sfn_only: false });
        }
    }
    // Linux then puts a clock-derived hex number after 2 characters of the
    // base; we take `fatfs`'s checksum of the long name, counting up.
    let base_len = base_len.min(2);
    name[base_len..8].fill(b' ');
    let mut hash = long.chars().fold(0u16, |sum, c| (sum >> 1).wrapping_add(sum << 15).wrapping_add(c as u16));
    for _ in 0..=u16::MAX {
        name[base_len..base_len + 4].copy_from_slice(format!("{hash:04X}").as_bytes());
        name[base_len + 4] = b'~';
        for digit in b'1'..=b'9' {
            name[base_len + 5] = digit;
            if !taken.contains(&name) {
                return Ok(ShortName { name, sfn_only: false });
            }
        }
        hash = hash.wrapping_add(1);
    }
    Err(FatOpError::RootFull { needed: 1 })
}

/// First run of `needed` free slots (0x00 or 0xE5) in the whole directory,
/// as `fat_add_entries` searches.
fn find_free_run(img: &DirImage, needed: usize) -> Option<usize> {
    let mut run = 0;
    for i in 0..img.slots {
        if is_free(img.entry(i)) {
            run += 1;
            if run == needed {
                return Some(i + 1 - needed);
            }
        } else {
            run = 0;
        }
    }
    None
}

const DOT: [u8; 11] = *b".          ";
const DOTDOT: [u8; 11] = *b"..         ";

fn is_free(raw: &[u8]) -> bool {
    raw[0] == 0 || raw[0] == DELETED
}

fn is_lfn(raw: &[u8]) -> bool {
    raw[OFF_ATTR] & 0x3F == ATTR_LFN
}

fn name11(raw: &[u8]) -> [u8; 11] {
    let mut name = [0u8; 11];
    name.copy_from_slice(&raw[..11]);
    name
}

/// First cluster: low word plus high word (0 on FAT12/16) shifted 16.
fn start_of(raw: &[u8]) -> u32 {
    u32::from(le16(raw, OFF_START)) | (u32::from(le16(raw, OFF_START_HI)) << 16)
}

fn set_start(raw: &mut [u8], cluster: u32) {
    raw[OFF_START..OFF_START + 2].copy_from_slice(&(cluster as u16).to_le_bytes());
    raw[OFF_START_HI..OFF_START_HI + 2].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
}

/// The short-name checksum stored in LFN slots.
fn lfn_checksum(name: &[u8; 11]) -> u8 {
    name.iter().fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// "NAME.EXT" from a short entry, trailing spaces dropped; bytes above 0x7F
/// as ISO-8859-1 (the form of [`FatFile::short_name`]).
fn display_name(raw: &[u8]) -> String {
    let (base, ext) = split_short(raw);
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

/// The short name as Linux shows an entry without a long name: base and
/// extension lower-cased when the case byte says so.
fn shown_short_name(raw: &[u8]) -> String {
    let (mut base, mut ext) = split_short(raw);
    if raw[OFF_LCASE] & CASE_LOWER_BASE != 0 {
        base = base.to_ascii_lowercase();
    }
    if raw[OFF_LCASE] & CASE_LOWER_EXT != 0 {
        ext = ext.to_ascii_lowercase();
    }
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

fn split_short(raw: &[u8]) -> (String, String) {
    let trim = |part: &[u8]| -> String {
        let len = part.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
        part[..len].iter().map(|&b| char::from(b)).collect()
    };
    (trim(&raw[..8]), trim(&raw[8..11]))
}

fn corrupt(what: String) -> FatOpError {
    FatOpError::Corrupt { what }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(long: &str, taken: &[&[u8; 11]]) -> ([u8; 11], bool) {
        let taken = taken.iter().map(|n| **n).collect();
        let s = short_name_for(long, &taken).unwrap();
        (s.name, s.sfn_only)
    }

    #[test]
    fn short_names_follow_linux() {
        assert_eq!(short("BOOT.CFG", &[]), (*b"BOOT    CFG", true));
        assert_eq!(short("state.tgz", &[]), (*b"STATE   TGZ", false));
        assert_eq!(short("State.Tgz", &[]), (*b"STATE   TGZ", false));
        assert_eq!(short("12345678.123", &[]), (*b"12345678123", true));
        assert_eq!(short("state.tgz.12345", &[]), (*b"STATET~1123", false));
        assert_eq!(short("state.tgz.12345", &[b"STATET~1123"]), (*b"STATET~2123", false));
        assert_eq!(short("state.12345", &[]), (*b"STATE~1 123", false));
        assert_eq!(short("a+b.txt", &[]), (*b"A_B~1   TXT", false));
        assert_eq!(short("verylongname.txt", &[]), (*b"VERYLO~1TXT", false));
        assert_eq!(short(".profile", &[]), (*b"PROFIL~1   ", false));
        assert_eq!(short("x.y.z", &[]), (*b"XY~1    Z  ", false));
        assert_eq!(short("caf\u{e9}.txt", &[]), (*b"CAF_~1  TXT", false));
        let all: Vec<[u8; 11]> =
            (1..=9).map(|d| <[u8; 11]>::try_from(format!("STATET~{d}123").as_bytes()).unwrap()).collect();
        let refs: Vec<&[u8; 11]> = all.iter().collect();
        let (name, _) = short("state.tgz.12345", &refs);
        assert_eq!(&name[..2], b"ST");
        assert_eq!(&name[6..], b"~1123");
    }

    #[test]
    fn names_are_cleaned_like_linux() {
        assert_eq!(clean_name("/state.tgz").unwrap(), "state.tgz");
        assert_eq!(clean_name("state.tgz...").unwrap(), "state.tgz");
        for bad in ["", "/", ".", "..", "a/b", "a*b", "tab\there", "trailing ", "q?"] {
            assert!(matches!(clean_name(bad), Err(FatOpError::InvalidName { .. })), "{bad:?}");
        }
        assert!(clean_name(&"x".repeat(256)).is_err());
        assert!(clean_name(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn checksum_matches_the_known_value() {
        // fatfs and Linux agree on this rotate-and-add sum.
        let by_formula = b"STATE   TGZ".iter().fold(0u8, |s, &b| ((s & 1) << 7).wrapping_add(s >> 1).wrapping_add(b));
        assert_eq!(lfn_checksum(b"STATE   TGZ"), by_formula);
    }
}
