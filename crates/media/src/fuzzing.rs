//! Fuzzing entry points, not API: the bodies of the `fuzz/` targets `gpt`,
//! `fat` and `check_volume`, kept here so that `cargo test` replays the kept corpus
//! (`fuzz/corpus/<target>/`) through exactly the code libFuzzer ran
//! (`harness/tests/fuzz_corpus.rs`; CONTRIBUTING.md, Fuzzing).
//!
//! Each entry takes any bytes, never panics on them, and asserts the
//! invariants of the parsers it drives; an assertion failing is a finding.
//! Each has a heap budget, `*_max_alloc(input length)`, which the callers
//! enforce with a counting allocator: the most heap bytes one call may hold
//! at once.
//!
//! Input encodings (the first bytes steer, the rest is the medium):
//!
//! ```text
//!   gpt:  | flags | disk image ...                 flags bit 0: 4Kn sectors
//!                                                  flags bit 1: recompute both headers' CRCs
//!                                                  flags >> 2: extra zero sectors at the end
//!   fat, check_volume:
//!         | flags | sectors (le32) | volume ...    flags bit 0: 4Kn sectors;
//!                                                  sectors: the partition's length
//!                                                  (0: the volume bytes' length), at most 2^22
//! ```

use std::collections::HashSet;

use visorsim_disk::{BlockDevice, MemDisk, SectorSize};

use crate::fat::check::{check_volume as check, repair_volume, FatCheck, Finding, FindingClass, MAX_FINDINGS};
use crate::fat::dir::{find_root_long, list_dir_long, list_root_long};
use crate::fat::read::FatReader;
use crate::gpt::{read_gpt, read_primary, Copy, Table};
use crate::{mbr, sector};

const MIB: u64 = 1 << 20;

/// Largest file the `fat` target reads whole (bigger ones only get their runs).
const FAT_READ_CAP: u64 = MIB;
/// Longest partition the `fat` target declares, in sectors.
const FAT_MAX_SECTORS: u64 = 1 << 22;
/// Directories the `fat` target lists below the root (depth first).
const FAT_MAX_DIRS: usize = 16;

/// A sparse disk holding `image` from LBA 0, `extra` zero sectors after it,
/// and at least `min_sectors` sectors.
fn disk_of(image: &[u8], size: SectorSize, extra: u64, min_sectors: u64) -> MemDisk {
    let ss = size.len();
    let sectors = (image.len() as u64).div_ceil(ss as u64);
    let mut disk = MemDisk::new((sectors + extra).max(min_sectors), size);
    for (lba, chunk) in image.chunks(ss).enumerate() {
        if chunk.iter().all(|&b| b == 0) {
            continue;
        }
        let mut sector = vec![0u8; ss];
        sector[..chunk.len()].copy_from_slice(chunk);
        disk.write_sectors(lba as u64, &sector).expect("an in-range write to a memory disk");
    }
    disk
}

fn sector_size(flags: u8) -> SectorSize {
    if flags & 1 == 1 {
        SectorSize::S4096
    } else {
        SectorSize::S512
    }
}

/// Heap budget of [`gpt`]: the disk's copy of the input (4 KiB chunks, plus
/// the map's nodes) and one entry array of at most 1 MiB, twice (read, then
/// checked), for each of the two copies read by [`read_gpt`] and the one of
/// [`read_primary`].
pub fn gpt_max_alloc(input_len: usize) -> u64 {
    4 * input_len as u64 + 8 * MIB
}

/// The `gpt` target: the protective MBR, both GPT copies as gdisk reads
/// them, the primary alone as esx-boot reads it, and the sector-size
/// detection of raw images.
///
/// Invariants: [`read_primary`] agrees with [`read_gpt`]'s primary; a table
/// read is the copy asked for, at the LBA asked for; its entries are used
/// (non-nil type), numbered in increasing order within the entry count, and
/// their names fit the 36 UTF-16 units of an entry; the protective-MBR flag
/// is what [`mbr`] says of LBA 0.
pub fn gpt(data: &[u8]) {
    let Some((&flags, image)) = data.split_first() else { return };
    let size = sector_size(flags);
    let fixed;
    let image = if flags & 2 == 2 {
        fixed = with_crcs(image, size.len(), u64::from(flags >> 2));
        &fixed[..]
    } else {
        image
    };
    let mut disk = disk_of(image, size, u64::from(flags >> 2), 0);

    let report = read_gpt(&mut disk);
    let primary = read_primary(&mut disk);
    match (&report.primary, &primary) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "read_primary and read_gpt read different primary tables"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("read_primary ({:?}) and read_gpt ({:?}) disagree", b.is_ok(), a.is_ok()),
    }
    if let Ok(table) = &report.primary {
        check_table(table, Copy::Primary, 1);
    }
    if let Ok(table) = &report.backup {
        let expected = match &report.primary {
            Ok(p) => p.alternate_lba,
            Err(_) => disk.sector_count().saturating_sub(1),
        };
        check_table(table, Copy::Backup, expected);
    }
    if let Some(best) = report.best() {
        assert!(report.primary.as_ref().ok() == Some(best) || report.backup.as_ref().ok() == Some(best));
    }

    let mut lba0 = vec![0u8; size.len()];
    let readable = disk.sector_count() > 0 && disk.read_sectors(0, &mut lba0).is_ok();
    let protective = readable && mbr::has_signature(&lba0) && mbr::entries(&lba0)[0].is_protective();
    assert_eq!(report.protective_mbr, protective, "protective-MBR flag");
    for entry in mbr::entries(&lba0) {
        let _ = (entry.is_extended(), entry.is_protective());
    }

    let head = &image[..image.len().min(8192)];
    let tail = &image[image.len().saturating_sub(4096)..];
    if let Some(found) = sector::sector_size_from(head, tail, image.len() as u64) {
        assert!(matches!(found, SectorSize::S512 | SectorSize::S4096));
    }
}

/// `image` with the CRC32s of each GPT header found at LBA 1 or at the
/// disk's last LBA (`extra` zero sectors after the image) recomputed: the
/// entry array's first, then the header's, as a tool that rewrites a table
/// does. Lets mutations of header and entry fields reach the checks past
/// the CRCs, as the issue's hand-made campaign did.
fn with_crcs(image: &[u8], ss: usize, extra: u64) -> Vec<u8> {
    let mut out = image.to_vec();
    let sectors = (image.len() as u64).div_ceil(ss as u64) + extra;
    for lba in [1, sectors.saturating_sub(1)] {
        let Some(at) = usize::try_from(lba).ok().and_then(|l| l.checked_mul(ss)) else { continue };
        let Some(header) = out.get(at..at.saturating_add(ss)) else { continue };
        if &header[..8] != b"EFI PART" {
            continue;
        }
        let le32 = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let size = (le32(header, 12) as usize).clamp(92, ss);
        let entries_lba = u64::from_le_bytes(header[72..80].try_into().expect("8 bytes"));
        let bytes = u64::from(le32(header, 80)) * u64::from(le32(header, 84));
        let array = usize::try_from(entries_lba)
            .ok()
            .and_then(|l| l.checked_mul(ss))
            .zip(usize::try_from(bytes).ok().filter(|&b| b <= MIB as usize))
            .and_then(|(start, len)| out.get(start..start.checked_add(len)?));
        if let Some(array) = array {
            let crc = crc32fast::hash(array);
            out[at + 88..at + 92].copy_from_slice(&crc.to_le_bytes());
        }
        out[at + 16..at + 20].fill(0);
        let crc = crc32fast::hash(&out[at..at + size]);
        out[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
    }
    out
}

fn check_table(table: &Table, copy: Copy, lba: u64) {
    assert_eq!(table.copy, copy);
    assert_eq!(table.header_lba, lba, "{copy} table read from the wrong LBA");
    let mut last = 0;
    for entry in &table.entries {
        assert!(entry.number > last, "entries out of order: {} after {last}", entry.number);
        assert!(entry.number <= table.entry_count, "entry {} of {}", entry.number, table.entry_count);
        assert!(!entry.type_guid.is_nil(), "an unused entry was listed");
        assert!(entry.name.encode_utf16().count() <= 36, "name longer than an entry holds: {:?}", entry.name);
        last = entry.number;
    }
}

/// The disk and partition length (in sectors, from LBA 0) of a `fat` or
/// `check_volume` input; `None` for an input shorter than its 5-byte head.
fn volume_of(data: &[u8]) -> Option<(MemDisk, u64)> {
    if data.len() < 5 {
        return None;
    }
    let size = sector_size(data[0]);
    let declared = u64::from(u32::from_le_bytes([data[1], data[2], data[3], data[4]]));
    let volume = &data[5..];
    let ss = size.bytes_u64();
    let sectors = if declared == 0 { (volume.len() as u64).div_ceil(ss) } else { declared.min(FAT_MAX_SECTORS) };
    Some((disk_of(volume, size, 0, sectors), sectors))
}

/// Heap budget of [`fat`]: the disk's copy of the input, a root directory
/// of at most 2 MiB (twice: the esx-boot scan's 16 KiB window is beside
/// it), one FAT of at most 128 KiB (FAT16's 65,525 entries, plus its chain
/// vector), one subdirectory of at most 2 MiB, and one file read of at most
/// [`FAT_READ_CAP`] with the runs it came from.
pub fn fat_max_alloc(input_len: usize) -> u64 {
    4 * input_len as u64 + 12 * MIB
}

/// The `fat` target: the boot sector, esx-boot's reader (root listing,
/// lookups by name, cluster runs, whole-file reads) and Linux's view (long
/// names, subdirectories) of one FAT volume.
///
/// Invariants: a volume that opens is FAT12 or FAT16 with its regions inside
/// the partition; every file's runs lie inside the partition and cover
/// exactly the clusters its size needs; a whole read returns exactly `size`
/// bytes, the bytes of those runs; the first sector is the first run's; a
/// lookup of a listed file's short name finds a file of that name; each
/// file esx-boot lists is an entry Linux lists at the same place.
pub fn fat(data: &[u8]) {
    let Some((mut disk, sectors)) = volume_of(data) else { return };
    let ss = disk.sector_size().bytes_u64();

    let Ok(reader) = FatReader::open(&mut disk, 0, sectors) else { return };
    let g = *reader.geometry();
    assert!(matches!(g.fat_bits, 12 | 16), "a FAT{} volume opened", g.fat_bits);
    let r = reader.regions();
    assert!(r.first_lba == 0 && r.root_lba <= r.data_lba, "regions out of order: {r:?}");
    assert_eq!(u64::from(g.bytes_per_sector), ss, "the volume's sector size is not the device's");
    let end = r.end_lba;
    assert!(end <= sectors, "the volume's {end} sectors exceed the partition's {sectors}");
    let cluster = reader.cluster_bytes();

    let Ok(files) = reader.list_root(&mut disk) else { return };
    for file in files.iter().take(64) {
        if let Ok(Some(found)) = reader.find(&mut disk, &file.short_name) {
            assert_eq!(found.short_name, file.short_name, "looked up {}", file.short_name);
        }
        let Ok(runs) = reader.runs(&mut disk, file) else { continue };
        let covered: u64 = runs.iter().map(|run| run.sectors).sum::<u64>() * ss;
        assert_eq!(covered, u64::from(file.size).div_ceil(cluster) * cluster, "{}: runs {runs:?}", file.short_name);
        for run in &runs {
            assert!(run.lba >= r.data_lba && run.lba + run.sectors <= end, "{}: run {run:?} outside", file.short_name);
        }
        assert_eq!(reader.first_sector(file), runs.first().map(|run| run.lba), "{}", file.short_name);
        if u64::from(file.size) > FAT_READ_CAP {
            continue;
        }
        let Ok(bytes) = reader.read(&mut disk, file, FAT_READ_CAP) else { continue };
        assert_eq!(bytes.len() as u64, u64::from(file.size), "{}", file.short_name);
        let mut expected = Vec::with_capacity(bytes.len());
        for run in &runs {
            let mut buf = vec![0u8; (run.sectors * ss) as usize];
            disk.read_sectors(run.lba, &mut buf).expect("a run inside the partition reads");
            expected.extend_from_slice(&buf);
        }
        expected.truncate(bytes.len());
        assert!(bytes == expected, "{}: read differs from its runs", file.short_name);
    }
    for name in ["boot.cfg", "BOOT.CFG", "state.tgz", "/s.v00", "k.b00"] {
        let _ = reader.find(&mut disk, name);
    }

    let Ok(long) = list_root_long(&mut disk, &reader) else { return };
    let places: HashSet<(u64, usize)> =
        long.iter().map(|slot| (slot.short.dir_entry_lba, slot.short.dir_entry_offset)).collect();
    for file in &files {
        assert!(
            places.contains(&(file.dir_entry_lba, file.dir_entry_offset)),
            "{} (LBA {} + {}) is in esx-boot's listing but not in Linux's",
            file.short_name,
            file.dir_entry_lba,
            file.dir_entry_offset
        );
    }
    for name in ["boot.cfg", "state.tgz", "STATET~1.123"] {
        let _ = find_root_long(&mut disk, &reader, name);
    }
    let mut pending: Vec<_> = long.iter().filter(|slot| slot.is_dir()).map(|slot| slot.short.clone()).collect();
    let mut listed = 0;
    while let Some(dir) = pending.pop() {
        if listed == FAT_MAX_DIRS {
            break;
        }
        listed += 1;
        let Ok(children) = list_dir_long(&mut disk, &reader, &dir) else { continue };
        for child in children {
            if child.is_dir() && !matches!(child.long_name.as_str(), "." | "..") {
                pending.push(child.short);
            }
        }
    }
}

/// The repair's check (`fsck.fat -a`) against the read-only one (`-n`):
/// the same volume and the same findings, except that `-a` salvages lost
/// chains as `FSCKnnnnREC` files where `-n` frees them. Salvaging counts
/// the new files, reports the chains differently (and their loops), and
/// may give up (a full root directory), dropping the findings after it.
/// So: up to the first lost-cluster finding both are the same; without
/// lost clusters they are equal; the repair gives up whenever the check
/// does; it counts at least the check's files. (First fuzz finding of
/// this target: the entry asserted plain equality, which `-a`'s salvage
/// breaks; `fuzz/corpus/check_volume/regress-lost-clusters-salvaged-by-repair`.)
fn assert_repair_check_agrees(repair: &FatCheck, check: &FatCheck) {
    let lost = |f: &Finding| f.class == FindingClass::LostClusters;
    if !repair.findings.iter().any(lost) && !check.findings.iter().any(lost) {
        assert_eq!(repair, check, "the repair's check is not the check (no lost clusters)");
        return;
    }
    assert_eq!(
        (repair.kind, repair.clusters, repair.cluster_bytes),
        (check.kind, check.clusters, check.cluster_bytes),
        "the repair's check saw another volume"
    );
    let before_lost = |c: &FatCheck| c.findings.iter().position(lost).unwrap_or(c.findings.len());
    let (r, c) = (before_lost(repair), before_lost(check));
    assert_eq!(repair.findings[..r], check.findings[..c], "the checks differ before the lost-cluster stage");
    assert!(!check.gave_up || repair.gave_up, "the check gave up, the repair's check did not: {repair:?}");
    assert!(repair.files >= check.files, "salvaging lost {} files", check.files - repair.files);
}

/// The device's stored bytes, to see whether anything was written.
fn contents(disk: &MemDisk) -> Vec<(u64, Vec<u8>)> {
    disk.stored_chunks().map(|(at, bytes)| (at, bytes.to_vec())).collect()
}

/// Heap budget of [`check_volume`]: the disk's copy of the input, twice
/// more for the copies compared before and after, and the checker's own
/// state, bounded by the volume's cluster count and FAT size (FAT16: 65,525
/// clusters, two FATs of 128 KiB, one owner slot per cluster), its
/// directories and at most 4,096 findings, for each of the three checks
/// (two reads, then the repair's) one after the other.
pub fn check_volume_max_alloc(input_len: usize) -> u64 {
    12 * input_len as u64 + 32 * MIB
}

/// The `check_volume` target: the in-process `fsck.fat`
/// ([`crate::fat::check::check_volume`] and `repair_volume`).
///
/// Invariants: a check only reads (the device is unchanged) and is
/// deterministic (a second check finds the same); it keeps at most
/// `MAX_FINDINGS` findings; the repair's "before" is the check up to the
/// lost-cluster stage (see [`assert_repair_check_agrees`]); a clean
/// volume is repaired by writing nothing, as `fsck.fat -a` writes nothing
/// to a clean volume; a repair of a volume the check gave up on writes
/// nothing either; the repaired volume checks again without panicking.
pub fn check_volume(data: &[u8]) {
    let Some((mut disk, sectors)) = volume_of(data) else { return };
    let before = contents(&disk);
    let first = check(&mut disk, 0, sectors);
    assert!(contents(&disk) == before, "check_volume wrote to the device");
    assert!(first.findings.len() <= MAX_FINDINGS, "{} findings kept", first.findings.len());
    let second = check(&mut disk, 0, sectors);
    assert_eq!(first, second, "two checks of the same volume differ");
    drop(second);

    let report = repair_volume(&mut disk, 0, sectors).expect("a memory disk takes every write");
    assert_repair_check_agrees(&report.before, &first);
    if first.is_clean() || first.gave_up {
        assert!(!report.changed && report.sectors_written == 0, "nothing to repair, yet {report:?}");
        assert!(contents(&disk) == before, "a repair that changed nothing wrote to the device");
    }
    let _ = check(&mut disk, 0, sectors);
}

#[cfg(test)]
mod tests {
    /// The `check_volume` target's first finding: a volume with lost
    /// chains, which the repair's check salvages as files where the check
    /// frees them (the entry used to require the two to be equal).
    #[test]
    fn repair_check_salvaging_lost_chains_agrees_with_the_check() {
        let input = include_bytes!("../../../fuzz/corpus/check_volume/regress-lost-clusters-salvaged-by-repair");
        super::check_volume(input);
    }
}
