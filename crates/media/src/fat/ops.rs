//! Write operations on a FAT12/16 volume's raw sectors (formerly `fatops`,
//! which still names them), issued in the order Linux's vfat driver writes them, for the two things `fatfs` 0.3.6
//! gets wrong when the host runs ESXi's `backup.sh`:
//!
//! - `Dir::create_dir` writes "." and ".." like ordinary names, each behind a
//!   long-file-name (LFN) slot, which `fsck.fat` rejects ("Expected a valid
//!   '.' entry in this slot"). [`fix_new_dir`] rewrites the new directory's
//!   cluster to what mkdir leaves on Linux.
//! - `Dir::rename` refuses an existing destination, while `mv -f
//!   state.tgz.$$ state.tgz` replaces it. [`rename_replace`] does that.
//!
//! [`list_root_long`], [`list_dir_long`] and [`find_root_long`] (from
//! [`super::dir`]) show entries with their long names and the directory
//! slots they occupy.
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
//! so a sector touched by two steps is written twice. The renames and
//! [`remove_file`] never flush; [`fix_new_dir`] and [`fix_new_subdir`] end
//! with a flush (the image builder relies on it). When the device is told
//! the writes are durable is otherwise the caller's business.
//! visorsim-host's `FatBank` lets flushes through at the scripts' `sync` only
//! (its default, write-back `CacheMode`), so a power cut may lose any of the
//! writes since the last `sync`, which is how exploration models
//! writeback's freedom of order; in write-through mode it also flushes
//! after every step, as `-o sync` would. The write sequences:
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
//!   remove_file(name)                                (`rm -f name`)
//!   1  sector of name's short entry   its slots in it := 0xE5, then its other slots' sectors
//!   2  FAT #1 sectors of its chain    entries := 0, in batches of <= 8, each then to FAT #2..
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
//!   [`super::read`] and esx-boot do (Linux reads on).
//!
//! Disk bytes are hostile. Nothing here panics on them. Memory is bounded: a
//! root directory (at most 2 MiB), one subdirectory (capped at Linux's
//! 2 MiB directory limit) and the used part of FAT #1 (at most 128 KiB on
//! FAT16).

use std::collections::HashSet;

use visorsim_disk::{BlockDevice, DiskError};

use super::dir::{cleaned, lookup, parse, read_own_entry, DirImage, Entry};
pub use super::dir::{find_root_long, list_dir_long, list_root_long, DirSlot};
use super::dirent::{
    is_dir, is_free, is_label, is_lfn, name11, set_lfn_units, set_start, start_of, FatFile, RawEntry, ATTR_ARCHIVE,
    ATTR_DIRECTORY, ATTR_LFN, DELETED, DOT, DOTDOT, ENTRY_BYTES, LFN_LAST, LFN_UNITS, OFF_ATTR, OFF_CHECKSUM,
    OFF_MDATE, OFF_MTIME, OFF_START,
};
use super::geometry::Regions;
use super::names::{display_name, lfn_checksum, short_name_for, ShortNameError};
use super::read::{FatReadError, FatReader};
use super::table::{Fat, Link};

/// FAT sectors `fat_free_clusters` collects before writing (`MAX_BUF_PER_PAGE`).
const FAT_BATCH: usize = 8;

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

pub(crate) fn corrupt(what: String) -> FatOpError {
    FatOpError::Corrupt { what }
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
    fix_dir(dev, reader, dir, None)
}

/// [`fix_new_dir`] for a directory whose entry lies in the subdirectory
/// `parent` (from [`list_dir_long`]): its ".." entry starts at `parent`'s
/// first cluster, as Linux vfat writes it. The same refusals apply.
pub fn fix_new_subdir<D: BlockDevice>(
    dev: &mut D,
    reader: &FatReader,
    dir: &FatFile,
    parent: &FatFile,
) -> Result<(), FatOpError> {
    fix_dir(dev, reader, dir, Some(parent.first_cluster))
}

/// `parent`: the first cluster of the directory holding `dir`'s entry,
/// `None` for the root directory (whose ".." start is 0).
fn fix_dir<D: BlockDevice>(
    dev: &mut D,
    reader: &FatReader,
    dir: &FatFile,
    parent: Option<u32>,
) -> Result<(), FatOpError> {
    let r = reader.regions();
    let own = read_own_entry(dev, r, dir, parent.is_none())?;
    let name = &dir.short_name;
    if !is_dir(&own) {
        return Err(FatOpError::NotADirectory { name: name.clone() });
    }
    let cluster = dir.first_cluster;
    let max = r.max_cluster();
    let Some(lba) = r.cluster_lba(cluster) else {
        return Err(corrupt(format!("directory {name}: first cluster {cluster} is outside 2..={max}")));
    };
    let fat = Fat::load(dev, r)?;
    let Some(next) = fat.get(cluster) else {
        return Err(corrupt(format!("directory {name}: the FAT entry of cluster {cluster} lies past the FAT")));
    };
    match Link::of(next, r.geometry.fat_bits, max) {
        Link::End(_) => {}
        Link::Free | Link::Reserved | Link::Bad(_) => {
            return Err(corrupt(format!("directory {name}: the FAT entry of its cluster {cluster} is {next:#x}")));
        }
        Link::Next(_) | Link::OutOfRange(_) => {
            return Err(FatOpError::NotEmpty {
                name: name.clone(),
                what: format!("it spans more than one cluster ({cluster} is followed by {next})"),
            });
        }
    }
    let mut data = vec![[0u8; ENTRY_BYTES]; r.geometry.cluster_bytes() as usize / ENTRY_BYTES];
    dev.read_sectors(lba, data.as_flattened_mut())?;
    for raw in &data {
        if raw[0] == 0 {
            break;
        }
        let dot = raw[..11] == DOT || raw[..11] == DOTDOT;
        if raw[0] == DELETED || is_lfn(raw) || (dot && is_dir(raw)) {
            continue;
        }
        let what = format!("it holds {:?}", display_name(&name11(raw)));
        return Err(FatOpError::NotEmpty { name: name.clone(), what });
    }

    data.fill([0u8; ENTRY_BYTES]);
    for (slot, short, start) in [(0, DOT, cluster), (1, DOTDOT, parent.unwrap_or(0))] {
        let e = &mut data[slot];
        e[..11].copy_from_slice(&short);
        e[OFF_ATTR] = ATTR_DIRECTORY;
        // Creation time and date, access date; modification time and date.
        e[13..20].copy_from_slice(&own[13..20]);
        e[OFF_MTIME..OFF_START].copy_from_slice(&own[OFF_MTIME..OFF_START]);
        set_start(e, start);
    }
    let ss = r.sector_bytes() as usize;
    for (i, sector) in data.as_flattened().chunks_exact(ss).enumerate() {
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
    let src_name = cleaned(src_long_name)?;
    let dst_name = cleaned(dst_long_name)?;
    let r = reader.regions();
    let mut img = DirImage::load_root(dev, r)?;
    let entries = parse(&img);
    let src = lookup(&entries, &src_name).ok_or_else(|| FatOpError::NotFound { name: src_long_name.to_string() })?;
    match lookup(&entries, &dst_name) {
        Some(dst) if dst.sfn == src.sfn => Ok(()),
        Some(dst) => replace(dev, r, &mut img, src, dst, dst_long_name),
        None => rename_to_new(dev, &mut img, src, &dst_name),
    }
}

/// `rm -f name` of a file in the root directory, in Linux vfat's order
/// (`vfat_unlink`, then the inode's eviction): the name goes first
/// (`fat_remove_entries`, as in [`rename_replace`]'s step 2), then the
/// file's chain is freed in FAT #1 and its mirrors (`fat_free_clusters`).
///
/// A power cut in between leaves lost clusters (allocated, reachable from
/// no entry), which `fsck.fat` reclaims and no later write can reach. The
/// reverse order, `fatfs`'s `Dir::remove` (chain first), leaves a live
/// entry over free clusters: the next file written takes them, and the
/// entry's content silently becomes that file's.
///
/// Returns whether the file existed (a missing name writes nothing, like
/// `rm -f`). Nothing is flushed. Errors (`InvalidName`, `IsADirectory`,
/// `Corrupt` for a chain that loops, leaves the volume or is cross-linked)
/// are raised before the first write.
pub fn remove_file<D: BlockDevice>(dev: &mut D, reader: &FatReader, long_name: &str) -> Result<bool, FatOpError> {
    let name = cleaned(long_name)?;
    let r = reader.regions();
    let mut img = DirImage::load_root(dev, r)?;
    let entries = parse(&img);
    let Some(entry) = lookup(&entries, &name) else { return Ok(false) };
    let raw = *img.entry(entry.sfn);
    if is_dir(&raw) {
        return Err(FatOpError::IsADirectory { name: long_name.to_string() });
    }
    let mut fat = Fat::load(dev, r)?;
    let chain = file_chain(&fat, r, &raw)?;
    // Step 1: the name goes. Step 2: the chain is freed, FAT #1 then its mirrors.
    remove_entries(dev, &mut img, entry)?;
    free_chain(dev, r, &mut fat, &chain)?;
    Ok(true)
}

/// The replace path of [`rename_replace`].
fn replace<D: BlockDevice>(
    dev: &mut D,
    r: &Regions,
    img: &mut DirImage,
    src: &Entry,
    dst: &Entry,
    dst_long_name: &str,
) -> Result<(), FatOpError> {
    let src_raw = *img.entry(src.sfn);
    let dst_raw = *img.entry(dst.sfn);
    if is_dir(&dst_raw) {
        return Err(FatOpError::IsADirectory { name: dst_long_name.to_string() });
    }
    if is_dir(&src_raw) {
        return Err(FatOpError::NotADirectory { name: dst_long_name.to_string() });
    }
    let mut fat = Fat::load(dev, r)?;
    let chain = file_chain(&fat, r, &dst_raw)?;
    let src_start = start_of(&src_raw);
    if src_start != 0 && chain.contains(&src_start) {
        return Err(corrupt(format!(
            "{}'s chain holds cluster {src_start}, where {} starts: they are cross-linked",
            display_name(&name11(&dst_raw)),
            display_name(&name11(&src_raw))
        )));
    }

    // Step 1: the target's short entry takes the source's inode.
    copy_inode(&src_raw, img.entry_mut(dst.sfn));
    img.write_sector(dev, img.sector_of(dst.sfn))?;
    // Step 2: the source's slots go.
    remove_entries(dev, img, src)?;
    // Step 3: the replaced file's chain is freed, FAT #1 then its mirrors.
    free_chain(dev, r, &mut fat, &chain)
}

/// The cluster chain of the file whose short entry is `raw` (empty for an
/// empty file), checked before anything is written: it must not loop or
/// leave the volume, and every entry must lie inside the FAT.
fn file_chain(fat: &Fat, r: &Regions, raw: &RawEntry) -> Result<Vec<u32>, FatOpError> {
    let start = start_of(raw);
    if start == 0 {
        return Ok(Vec::new());
    }
    let shown = display_name(&name11(raw));
    let chain = fat.chain(start, u64::from(r.max_cluster())).map_err(|what| corrupt(format!("{shown}: {what}")))?;
    if let Some(cluster) = chain.iter().find(|&&c| fat.entry_sectors(c).1 >= fat.sectors) {
        return Err(corrupt(format!("{shown}: the FAT entry of cluster {cluster} lies past the FAT")));
    }
    Ok(chain)
}

/// The new-name path of [`rename_replace`].
fn rename_to_new<D: BlockDevice>(
    dev: &mut D,
    img: &mut DirImage,
    src: &Entry,
    dst_name: &str,
) -> Result<(), FatOpError> {
    let src_raw = *img.entry(src.sfn);
    // Short names in use: every live short entry but volume labels, past a
    // 0x00 slot too (as `vfat_find_form` scans).
    let taken: HashSet<[u8; 11]> =
        img.entries[..img.slots].iter().filter(|raw| !is_free(raw) && !is_label(raw)).map(name11).collect();
    let short = short_name_for(dst_name, &taken).map_err(|e| match e {
        ShortNameError::Invalid(e) => FatOpError::InvalidName { name: dst_name.to_string(), why: e.why },
        ShortNameError::Exhausted => FatOpError::RootFull { needed: 1 },
    })?;
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
    let mut slots = vec![[0u8; ENTRY_BYTES]; needed];
    for (k, slot) in slots.iter_mut().take(lfn_slots).enumerate() {
        let order = lfn_slots - k;
        // At most 20 slots: `clean_name` caps names at 255 units.
        slot[0] = order as u8 | if k == 0 { LFN_LAST } else { 0 };
        slot[OFF_ATTR] = ATTR_LFN;
        slot[OFF_CHECKSUM] = checksum;
        let mut part = [0u16; LFN_UNITS];
        part.copy_from_slice(&units[(order - 1) * LFN_UNITS..order * LFN_UNITS]);
        set_lfn_units(slot, &part);
    }
    let sfn = &mut slots[lfn_slots];
    sfn[..11].copy_from_slice(&short.name);
    sfn[OFF_ATTR] = if is_dir(&src_raw) { ATTR_DIRECTORY } else { ATTR_ARCHIVE };
    let (time, date) = (&src_raw[OFF_MTIME..OFF_MDATE], &src_raw[OFF_MDATE..OFF_START]);
    sfn[14..16].copy_from_slice(time); // creation time
    sfn[16..18].copy_from_slice(date); // creation date
    sfn[18..20].copy_from_slice(date); // access date
    sfn[OFF_MTIME..OFF_MDATE].copy_from_slice(time);
    sfn[OFF_MDATE..OFF_START].copy_from_slice(date);

    // Step 1: the new slots, sector by sector.
    img.entries[first..first + needed].copy_from_slice(&slots);
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
fn copy_inode(from: &RawEntry, to: &mut RawEntry) {
    to[OFF_ATTR] = from[OFF_ATTR];
    to[13..ENTRY_BYTES].copy_from_slice(&from[13..ENTRY_BYTES]);
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

/// Frees `chain` as `fat_free_clusters` does: entry by entry in FAT #1,
/// the touched sectors collected in chain order and written in batches of
/// at most [`FAT_BATCH`], each batch to FAT #1 then to every other FAT.
fn free_chain<D: BlockDevice>(dev: &mut D, r: &Regions, fat: &mut Fat, chain: &[u32]) -> Result<(), FatOpError> {
    let mut batch: Vec<u64> = Vec::with_capacity(FAT_BATCH);
    for &cluster in chain {
        let touched = fat
            .set(cluster, 0)
            .ok_or_else(|| corrupt(format!("the FAT entry of cluster {cluster} lies past the FAT")))?;
        let touched = if touched.0 == touched.1 { vec![touched.0] } else { vec![touched.0, touched.1] };
        if batch.len() + touched.len() > FAT_BATCH {
            write_fat_batch(dev, r, fat, &batch)?;
            batch.clear();
        }
        for sector in touched {
            if !batch.contains(&sector) {
                batch.push(sector);
            }
        }
    }
    write_fat_batch(dev, r, fat, &batch)
}

fn write_fat_batch<D: BlockDevice>(dev: &mut D, r: &Regions, fat: &Fat, batch: &[u64]) -> Result<(), FatOpError> {
    let ss = r.sector_bytes() as usize;
    let fat_sectors = u64::from(r.geometry.fat_sectors);
    for copy in 0..u64::from(r.geometry.fats) {
        for &sector in batch {
            let at = sector as usize * ss;
            let data = fat.bytes.get(at..at + ss).ok_or_else(|| corrupt("a FAT sector lies past the FAT".into()))?;
            dev.write_sectors(r.fat_lba + copy * fat_sectors + sector, data)?;
        }
    }
    Ok(())
}
