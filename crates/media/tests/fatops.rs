//! `fatops` on volumes made by our formatter and filled by `fatfs`. Each
//! result is checked with `fsck.fat -n` when it is installed (required
//! under `VISORSIM_REQUIRE_TOOLS`, see [`crate::util::tool`]). Covered: the
//! `fatfs` mkdir bug and its repair, `mv -f` over an existing file and onto
//! a new name (with the exact device writes), long and clashing short
//! names, errors raised before any write, and random root directories that
//! must never panic.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use fatfs::{Date, DateTime, Time};
use proptest::prelude::*;
use visorsim_disk::{BlockDevice, LoggedIo, MemDisk, SectorSize, WriteLog};
use visorsim_media::fat::{self, FixedTime, Geometry, IMAGE_TIME};
use visorsim_media::fatops::{self, DirSlot, FatOpError};
use visorsim_media::fatread::FatReader;

use crate::util::{bytes, FIRST, MIB};

const SIZES: [SectorSize; 2] = [SectorSize::S512, SectorSize::S4096];

/// A later clock, so the source of a rename has times of its own.
static LATER: FixedTime = FixedTime {
    at: DateTime { date: Date { year: 2026, month: 3, day: 4 }, time: Time { hour: 5, min: 6, sec: 8, millis: 0 } },
};

/// A formatted volume on a memory disk.
#[derive(Clone)]
struct Vol {
    disk: MemDisk,
    sectors: u64,
    g: Geometry,
}

impl Vol {
    fn new(size: SectorSize, bytes: u64) -> Vol {
        let sectors = bytes / size.bytes_u64();
        let mut disk = MemDisk::new(FIRST + sectors + 8, size);
        let g = fat::format(&mut disk, FIRST, sectors, 0x5EED_0002).unwrap();
        Vol { disk, sectors, g }
    }

    fn write_at(&mut self, time: &'static FixedTime, files: &[(&str, &[u8])]) {
        let fs = fat::mount(&mut self.disk, FIRST, self.sectors, time).unwrap();
        for (name, data) in files {
            fs.root_dir().create_file(name).unwrap().write_all(data).unwrap();
        }
        fs.unmount().unwrap();
    }

    fn write(&mut self, files: &[(&str, &[u8])]) {
        self.write_at(&IMAGE_TIME, files);
    }

    fn mkdir(&mut self, name: &str) {
        let fs = fat::mount(&mut self.disk, FIRST, self.sectors, &IMAGE_TIME).unwrap();
        fs.root_dir().create_dir(name).unwrap();
        fs.unmount().unwrap();
    }

    /// The file's bytes as `fatfs` reads them (`None` when it is missing).
    fn read(&mut self, path: &str) -> Option<Vec<u8>> {
        let fs = fat::mount(&mut self.disk, FIRST, self.sectors, &IMAGE_TIME).unwrap();
        let mut data = Vec::new();
        let mut file = fs.root_dir().open_file(path).ok()?;
        file.read_to_end(&mut data).unwrap();
        Some(data)
    }

    fn free_clusters(&mut self) -> u32 {
        let fs = fat::mount(&mut self.disk, FIRST, self.sectors, &IMAGE_TIME).unwrap();
        fs.stats().unwrap().free_clusters()
    }

    /// (long name, short name) of each root entry, as `fatfs` lists them.
    fn fatfs_names(&mut self) -> Vec<(String, String)> {
        let fs = fat::mount(&mut self.disk, FIRST, self.sectors, &IMAGE_TIME).unwrap();
        let names = fs.root_dir().iter().map(|e| e.unwrap()).map(|e| (e.file_name(), e.short_file_name()));
        names.collect()
    }

    fn reader(&mut self) -> FatReader {
        FatReader::open(&mut self.disk, FIRST, self.sectors).unwrap()
    }

    fn root(&mut self) -> Vec<DirSlot> {
        let reader = self.reader();
        fatops::list_root_long(&mut self.disk, &reader).unwrap()
    }

    fn slot(&mut self, name: &str) -> DirSlot {
        let reader = self.reader();
        fatops::find_root_long(&mut self.disk, &reader, name).unwrap().unwrap_or_else(|| panic!("{name} not found"))
    }

    fn rename(&mut self, src: &str, dst: &str) -> Result<Vec<LoggedIo>, FatOpError> {
        let reader = self.reader();
        let mut log = WriteLog::new(&mut self.disk);
        fatops::rename_replace(&mut log, &reader, src, dst)?;
        Ok(log.take_events())
    }

    fn ss(&self) -> u64 {
        self.disk.sector_size().bytes_u64()
    }

    fn fat_lba(&self) -> u64 {
        FIRST + u64::from(self.g.reserved_sectors)
    }

    fn root_lba(&self) -> u64 {
        self.fat_lba() + u64::from(self.g.fats * self.g.fat_sectors)
    }

    fn cluster_lba(&self, cluster: u32) -> u64 {
        FIRST + u64::from(self.g.first_data_sector()) + u64::from(cluster - 2) * u64::from(self.g.sectors_per_cluster)
    }

    /// The clusters of a file, in order, from `FatReader::runs`.
    fn clusters(&mut self, file: &DirSlot) -> Vec<u32> {
        let reader = self.reader();
        let runs = reader.runs(&mut self.disk, &file.short).unwrap();
        let spc = u64::from(self.g.sectors_per_cluster);
        let data = FIRST + u64::from(self.g.first_data_sector());
        let mut clusters = Vec::new();
        for run in runs {
            let first = ((run.lba - data) / spc) as u32 + 2;
            clusters.extend(first..first + (run.sectors / spc) as u32);
        }
        clusters
    }

    fn read_entry(&mut self, lba: u64, offset: usize) -> Vec<u8> {
        let mut sector = vec![0u8; self.ss() as usize];
        self.disk.read_sectors(lba, &mut sector).unwrap();
        sector[offset..offset + 32].to_vec()
    }

    fn patch(&mut self, lba: u64, at: usize, bytes: &[u8]) {
        let mut sector = vec![0u8; self.ss() as usize];
        self.disk.read_sectors(lba, &mut sector).unwrap();
        sector[at..at + bytes.len()].copy_from_slice(bytes);
        self.disk.write_sectors(lba, &sector).unwrap();
    }

    /// Sets a FAT16 entry in FAT #1 only.
    fn set_fat(&mut self, cluster: u32, value: u16) {
        let ss = self.ss() as usize;
        let at = cluster as usize * 2;
        self.patch(self.fat_lba() + (at / ss) as u64, at % ss, &value.to_le_bytes());
    }

    /// `fsck.fat -n` on the volume: `None` when it is not installed, else
    /// whether it found nothing to complain about, and what it printed.
    fn fsck(&mut self) -> Option<(bool, String)> {
        let bin = fsck_binary()?;
        let mut bytes = vec![0u8; (self.sectors * self.ss()) as usize];
        self.disk.read_sectors(FIRST, &mut bytes).unwrap();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "fatops-{}-{}.img",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, &bytes).unwrap();
        let out = Command::new(bin).arg("-n").arg(&path).output().unwrap();
        std::fs::remove_file(&path).unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        // A clean run prints the version line and the summary only.
        let clean = out.status.success() && text.lines().count() <= 2;
        Some((clean, text))
    }

    fn assert_fsck_clean(&mut self) {
        if let Some((clean, text)) = self.fsck() {
            assert!(clean, "fsck.fat complains:\n{text}");
        }
    }

    /// Asserts `fsck.fat` complains; gives what it said ("" when it is not
    /// installed).
    fn assert_fsck_complains(&mut self) -> String {
        match self.fsck() {
            Some((clean, text)) => {
                assert!(!clean, "fsck.fat found nothing wrong:\n{text}");
                text
            }
            None => String::new(),
        }
    }
}

fn fsck_binary() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| crate::util::tool("fsck.fat", "dosfstools")).as_deref()
}

/// (LBA, sectors) of each write; panics on a flush.
fn writes(events: &[LoggedIo], ss: u64) -> Vec<(u64, u64)> {
    events
        .iter()
        .map(|e| match e {
            LoggedIo::Write { lba, data } => (*lba, data.len() as u64 / ss),
            LoggedIo::Flush => panic!("unexpected flush in {events:?}"),
        })
        .collect()
}

fn data_of(event: &LoggedIo) -> &[u8] {
    match event {
        LoggedIo::Write { data, .. } => data,
        LoggedIo::Flush => panic!("a flush has no data"),
    }
}

/// Replays the first `n` writes of `events` on a copy of `vol`.
fn replay(vol: &Vol, events: &[LoggedIo], n: usize) -> Vol {
    let mut copy = vol.clone();
    for e in &events[..n] {
        if let LoggedIo::Write { lba, data } = e {
            copy.disk.write_sectors(*lba, data).unwrap();
        }
    }
    copy
}

/// `fatfs` 0.3.6 `Dir::create_dir` writes "." and ".." each behind an LFN
/// slot (it names them through its ordinary `write_entry`). `fsck.fat`
/// rejects that; `fix_new_dir` leaves what Linux's mkdir leaves.
#[test]
fn fatfs_mkdir_is_rejected_by_fsck_and_fix_new_dir_repairs_it() {
    for size in SIZES {
        let mut vol = Vol::new(size, 32 * MIB);
        vol.mkdir("state.12345");
        let complaint = vol.assert_fsck_complains();
        if !complaint.is_empty() {
            assert!(complaint.contains("'.'"), "{complaint}");
        }

        let dir = vol.slot("state.12345");
        assert!(dir.is_dir());
        assert_eq!((dir.short.short_name.as_str(), dir.slots), ("STATE~1.123", 2));
        let reader = vol.reader();
        let inside = fatops::list_dir_long(&mut vol.disk, &reader, &dir.short).unwrap();
        let shape: Vec<(&str, usize)> = inside.iter().map(|e| (e.long_name.as_str(), e.slots)).collect();
        assert_eq!(shape, [(".", 2), ("..", 2)], "the fatfs bug: an LFN slot before each");

        // Give the directory's own entry times of its own, to see them copied.
        let times = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77];
        vol.patch(dir.short.dir_entry_lba, dir.short.dir_entry_offset + 13, &times);
        vol.patch(dir.short.dir_entry_lba, dir.short.dir_entry_offset + 22, &[0x88, 0x99, 0xAA, 0x2B]);
        let own_before = vol.read_entry(dir.short.dir_entry_lba, dir.short.dir_entry_offset);

        let mut log = WriteLog::new(&mut vol.disk);
        fatops::fix_new_dir(&mut log, &reader, &dir.short).unwrap();
        let events = log.take_events();
        let (last, sector_writes) = events.split_last().unwrap();
        assert_eq!(*last, LoggedIo::Flush);
        let cluster_lba = vol.cluster_lba(dir.short.first_cluster);
        let expected: Vec<(u64, u64)> =
            (0..u64::from(vol.g.sectors_per_cluster)).map(|i| (cluster_lba + i, 1)).collect();
        assert_eq!(writes(sector_writes, vol.ss()), expected);
        assert!(sector_writes[1..].iter().all(|e| data_of(e).iter().all(|&b| b == 0)));

        assert_eq!(vol.read_entry(dir.short.dir_entry_lba, dir.short.dir_entry_offset), own_before);
        let inside = fatops::list_dir_long(&mut vol.disk, &reader, &dir.short).unwrap();
        let shape: Vec<(&str, usize, u32)> =
            inside.iter().map(|e| (e.long_name.as_str(), e.slots, e.short.first_cluster)).collect();
        assert_eq!(shape, [(".", 1, dir.short.first_cluster), ("..", 1, 0)]);
        for (i, e) in inside.iter().enumerate() {
            assert_eq!((e.first_slot_lba, e.first_slot_offset), (cluster_lba, 32 * i));
            let raw = vol.read_entry(e.first_slot_lba, e.first_slot_offset);
            assert_eq!((raw[11], raw[12], &raw[13..20], &raw[22..26]), (0x10, 0, &times[..], &own_before[22..26]));
        }
        vol.assert_fsck_clean();

        // fatfs still reads the directory and writes into it.
        {
            let fs = fat::mount(&mut vol.disk, FIRST, vol.sectors, &IMAGE_TIME).unwrap();
            {
                let d = fs.root_dir().open_dir("state.12345").unwrap();
                let names: Vec<String> = d.iter().map(|e| e.unwrap().file_name()).collect();
                assert_eq!(names, [".", ".."]);
                d.create_file("local.tgz").unwrap().write_all(&bytes(6000, 1)).unwrap();
            }
            fs.unmount().unwrap();
        }
        vol.assert_fsck_clean();
        assert_eq!(vol.read("state.12345/local.tgz").unwrap(), bytes(6000, 1));
        let inside = fatops::list_dir_long(&mut vol.disk, &reader, &dir.short).unwrap();
        assert_eq!(inside.last().unwrap().long_name, "local.tgz");
        let err = fatops::fix_new_dir(&mut vol.disk, &reader, &dir.short).unwrap_err();
        assert!(matches!(err, FatOpError::NotEmpty { ref what, .. } if what.contains("LOCAL.TGZ")), "{err}");
    }
}

/// `rm -f b.b00` in Linux's order: the name's slots first, then the chain
/// in FAT #1 and FAT #2. A power cut after the first write leaves lost
/// clusters that no later file can take while the name still points at
/// them (fatfs's own `Dir::remove` frees the chain first).
#[test]
fn rm_writes_the_name_then_both_fats_and_its_crash_state_loses_no_file() {
    for size in SIZES {
        let mut vol = Vol::new(size, 32 * MIB);
        let (kernel, cfg) = (bytes(12_000, 4), b"bootstate=0\nkernel=b.b00\n".to_vec());
        vol.write(&[("b.b00", &kernel), ("boot.cfg", &cfg)]);
        let free_before = vol.free_clusters();
        let victim = vol.slot("b.b00");
        let chain = vol.clusters(&victim);

        let original = vol.clone();
        let reader = vol.reader();
        let mut log = WriteLog::new(&mut vol.disk);
        assert!(fatops::remove_file(&mut log, &reader, "b.b00").unwrap());
        assert!(!fatops::remove_file(&mut log, &reader, "b.b00").unwrap(), "a second rm -f finds nothing");
        let events = log.take_events();

        let ss = vol.ss();
        let mut fat_sectors: Vec<u64> = chain.iter().map(|&c| u64::from(c) * 2 / ss).collect();
        fat_sectors.dedup();
        let mut expected = vec![(victim.short.dir_entry_lba, 1)];
        expected.extend(fat_sectors.iter().map(|s| (vol.fat_lba() + s, 1)));
        expected.extend(fat_sectors.iter().map(|s| (vol.fat_lba() + u64::from(vol.g.fat_sectors) + s, 1)));
        assert_eq!(writes(&events, ss), expected);
        for slot in 0..victim.slots {
            assert_eq!(data_of(&events[0])[victim.first_slot_offset + 32 * slot], 0xE5);
        }
        assert_eq!(vol.read("b.b00"), None);
        assert_eq!(vol.read("boot.cfg").unwrap(), cfg);
        assert_eq!(vol.free_clusters(), free_before + chain.len() as u32);
        vol.assert_fsck_clean();

        // Power lost after the name went: the clusters are lost, not free,
        // so the next file written cannot land in them.
        let mut cut = replay(&original, &events, 1);
        assert_eq!(cut.read("b.b00"), None);
        assert_eq!(cut.free_clusters(), free_before);
        cut.write(&[("boot.cfg.1001", b"bootstate=0\n")]);
        let written = cut.slot("boot.cfg.1001");
        assert!(!chain.contains(&written.short.first_cluster), "a new file took a cluster of the removed one");
        if size == SectorSize::S512 {
            let complaint = cut.assert_fsck_complains();
            assert!(complaint.is_empty() || complaint.contains("unused clusters"), "lost clusters only: {complaint}");
        }

        // A directory is refused before anything is written.
        vol.mkdir("state.1");
        let reader = vol.reader();
        let mut log = WriteLog::new(&mut vol.disk);
        let err = fatops::remove_file(&mut log, &reader, "state.1").unwrap_err();
        assert!(matches!(err, FatOpError::IsADirectory { .. }), "{err}");
        assert!(log.take_events().is_empty());
    }
}

/// `mv -f state.tgz.$$ state.tgz`: the target's short entry, then the
/// source's slots, then the old chain in FAT #1 and FAT #2.
#[test]
fn mv_f_over_an_existing_file_writes_dst_then_src_then_both_fats() {
    for size in SIZES {
        let mut vol = Vol::new(size, 32 * MIB);
        let (old, new) = (bytes(10_000, 2), bytes(5000, 3));
        vol.write(&[("boot.cfg", b"bootstate=0\n"), ("state.tgz", &old)]);
        vol.write_at(&LATER, &[("state.tgz.12345", &new)]);
        let free_before = vol.free_clusters();
        let (src, dst) = (vol.slot("state.tgz.12345"), vol.slot("state.tgz"));
        let src_raw = vol.read_entry(src.short.dir_entry_lba, src.short.dir_entry_offset);
        let old_clusters = vol.clusters(&dst);
        assert_eq!(old_clusters.len() as u64, 10_000u64.div_ceil(vol.g.cluster_bytes()));

        let original = vol.clone();
        let events = vol.rename("state.tgz.12345", "state.tgz").unwrap();

        let ss = vol.ss();
        let mut fat_sectors: Vec<u64> = old_clusters.iter().map(|&c| u64::from(c) * 2 / ss).collect();
        fat_sectors.dedup();
        let mut expected = vec![(dst.short.dir_entry_lba, 1), (src.short.dir_entry_lba, 1)];
        expected.extend(fat_sectors.iter().map(|s| (vol.fat_lba() + s, 1)));
        expected.extend(fat_sectors.iter().map(|s| (vol.fat_lba() + u64::from(vol.g.fat_sectors) + s, 1)));
        assert_eq!(writes(&events, ss), expected);

        // Write 1: dst's entry has src's inode, keeps its name; src is intact.
        let first = data_of(&events[0]);
        let at = dst.short.dir_entry_offset;
        assert_eq!(&first[at..at + 11], b"STATE   TGZ");
        assert_eq!(&first[at + 11..at + 32], &src_raw[11..32]);
        // Write 2: every slot of src is deleted.
        let second = data_of(&events[1]);
        for slot in 0..src.slots {
            assert_eq!(second[src.first_slot_offset + 32 * slot], 0xE5);
        }
        // FAT #2 gets FAT #1's sectors.
        let n = fat_sectors.len();
        for i in 0..n {
            assert_eq!(data_of(&events[2 + i]), data_of(&events[2 + n + i]));
        }

        assert_eq!(vol.read("state.tgz").unwrap(), new);
        assert_eq!(vol.read("state.tgz.12345"), None);
        assert_eq!(vol.free_clusters(), free_before + old_clusters.len() as u32);
        let now = vol.slot("state.tgz");
        assert_eq!((now.long_name.as_str(), now.slots, now.short.size), ("state.tgz", 2, 5000));
        assert_eq!(now.short.first_cluster, src.short.first_cluster);
        assert_eq!(vol.root().len(), 2);
        vol.assert_fsck_clean();

        // Power lost after write 1: both names share a chain and the old one
        // is lost, as on Linux.
        if size == SectorSize::S512 {
            let mut torn = replay(&original, &events, 1);
            torn.assert_fsck_complains();
            let mut torn = replay(&original, &events, 2);
            torn.assert_fsck_complains();
        }
    }
}

#[test]
fn src_slots_across_two_sectors_go_short_entry_sector_first() {
    let mut vol = Vol::new(SectorSize::S512, 32 * MIB);
    for i in 0..6 {
        vol.write(&[(&format!("f{i}.txt"), b"x")]);
    }
    vol.write(&[("state.tgz", &bytes(3000, 4)), ("state.tgz.12345", &bytes(7000, 5))]);
    let (src, dst) = (vol.slot("state.tgz.12345"), vol.slot("state.tgz"));
    let root = vol.root_lba();
    assert_eq!((src.first_slot_lba, src.first_slot_offset, src.slots), (root, 14 * 32, 3));
    assert_eq!((src.short.dir_entry_lba, src.short.dir_entry_offset), (root + 1, 0));
    assert_eq!(dst.short.dir_entry_lba, root);
    let events = vol.rename("state.tgz.12345", "state.tgz").unwrap();
    let fat1 = vol.fat_lba();
    let fat2 = fat1 + u64::from(vol.g.fat_sectors);
    assert_eq!(writes(&events, 512), [(root, 1), (root + 1, 1), (root, 1), (fat1, 1), (fat2, 1)]);
    assert_eq!(data_of(&events[1])[0], 0xE5);
    assert_eq!(data_of(&events[1])[32], 0, "the sector's other slots are untouched");
    assert_eq!((data_of(&events[2])[14 * 32], data_of(&events[2])[15 * 32]), (0xE5, 0xE5));
    assert_eq!(vol.read("state.tgz").unwrap(), bytes(7000, 5));
    vol.assert_fsck_clean();
}

/// `fat_free_clusters` writes at most 8 FAT sectors before mirroring them.
/// Its test `nr_bhs + fatent.nr_bhs > 8` counts the entry's sector even
/// when it is already collected. So with 8 sectors collected, the next
/// entry flushes the batch even in the same sector, and that sector is
/// written again in the next batch.
#[test]
fn freeing_a_long_chain_writes_fat_sectors_in_batches_of_eight() {
    let mut vol = Vol::new(SectorSize::S512, 32 * MIB);
    assert_eq!(vol.g.cluster_bytes(), 4096);
    vol.write(&[("state.tgz", &bytes(2400 * 4096, 6)), ("state.tgz.1", &bytes(100, 7))]);
    let dst = vol.slot("state.tgz");
    assert_eq!(vol.clusters(&dst), (2..2402).collect::<Vec<u32>>(), "fatfs allocates from cluster 2");
    let free_before = vol.free_clusters();
    let events = vol.rename("state.tgz.1", "state.tgz").unwrap();
    let (fat1, fat2) = (vol.fat_lba(), vol.fat_lba() + u64::from(vol.g.fat_sectors));
    // Entries 2..=2401 lie in FAT sectors 0..=9 (256 entries a sector).
    // Sector 7 is collected at cluster 1792; cluster 1793 flushes the batch.
    let mut expected = vec![(dst.short.dir_entry_lba, 1), (vol.root_lba(), 1)];
    expected.extend((0..8).map(|s| (fat1 + s, 1)));
    expected.extend((0..8).map(|s| (fat2 + s, 1)));
    expected.extend((7..10).map(|s| (fat1 + s, 1)));
    expected.extend((7..10).map(|s| (fat2 + s, 1)));
    assert_eq!(writes(&events, 512), expected);
    let entry =
        |data: &[u8], cluster: usize| u16::from_le_bytes([data[cluster % 256 * 2], data[cluster % 256 * 2 + 1]]);
    let first_sector7 = data_of(&events[2 + 7]);
    assert_eq!((entry(first_sector7, 1792), entry(first_sector7, 1793), entry(first_sector7, 1794)), (0, 0, 1795));
    let second_sector7 = data_of(&events[2 + 16]);
    assert!((1792..2048).all(|c| entry(second_sector7, c) == 0));
    assert_eq!(vol.free_clusters(), free_before + 2400);
    vol.assert_fsck_clean();
}

/// `mv src dst` onto a new name: new slots (cluster 0, size 0), then the
/// inode into them, then src's slots go.
#[test]
fn mv_onto_a_new_name() {
    for size in SIZES {
        let mut vol = Vol::new(size, 32 * MIB);
        let data = bytes(5000, 8);
        vol.write(&[("boot.cfg", b"bootstate=0\n")]);
        vol.write_at(&LATER, &[("state.tgz.12345", &data)]);
        let src = vol.slot("state.tgz.12345");
        let src_raw = vol.read_entry(src.short.dir_entry_lba, src.short.dir_entry_offset);
        let free_before = vol.free_clusters();
        let original = vol.clone();
        let events = vol.rename("state.tgz.12345", "state.tgz").unwrap();

        let dst = vol.slot("state.tgz");
        assert_eq!((dst.long_name.as_str(), dst.short.short_name.as_str(), dst.slots), ("state.tgz", "STATE.TGZ", 2));
        assert_eq!((dst.short.first_cluster, dst.short.size), (src.short.first_cluster, 5000));
        // The first free slots follow boot.cfg (2) and state.tgz.12345 (3).
        assert_eq!((dst.first_slot_lba, dst.first_slot_offset), (vol.root_lba(), 5 * 32));
        let root = vol.root_lba();
        assert_eq!(writes(&events, vol.ss()), [(root, 1), (root, 1), (root, 1)]);
        let placeholder = &data_of(&events[0])[6 * 32..7 * 32];
        assert_eq!((&placeholder[..11], placeholder[11]), (&b"STATE   TGZ"[..], 0x20));
        assert_eq!((&placeholder[20..22], &placeholder[26..32]), (&[0u8; 2][..], &[0u8; 6][..]));
        assert_eq!(&placeholder[22..26], &src_raw[22..26], "stamped with src's modification time");
        let filled = &data_of(&events[1])[6 * 32..7 * 32];
        assert_eq!((&filled[..11], &filled[11..]), (&b"STATE   TGZ"[..], &src_raw[11..]));

        assert_eq!(vol.read("state.tgz").unwrap(), data);
        assert_eq!(vol.read("state.tgz.12345"), None);
        assert_eq!(vol.free_clusters(), free_before);
        vol.assert_fsck_clean();

        // Power lost after write 1: an empty state.tgz next to the intact
        // source, and a clean volume.
        let mut torn = replay(&original, &events, 1);
        torn.assert_fsck_clean();
        assert_eq!(torn.read("state.tgz").unwrap(), b"");
        assert_eq!(torn.read("state.tgz.12345").unwrap(), data);

        // An upper-case 8.3 name gets a short entry only, as on Linux.
        vol.rename("state.tgz", "STATE.BAK").unwrap();
        let bak = vol.slot("STATE.BAK");
        assert_eq!((bak.long_name.as_str(), bak.slots), ("STATE.BAK", 1));
        assert_eq!(vol.read("state.bak").unwrap(), data);
        vol.assert_fsck_clean();
    }
}

#[test]
fn long_names_and_short_name_clashes() {
    let mut vol = Vol::new(SectorSize::S512, 32 * MIB);
    vol.write(&[("state.tgz.12345", b"one"), ("state.tgz.12399", b"two")]);
    let shorts: Vec<String> = vol.root().into_iter().map(|e| e.short.short_name).collect();
    assert_eq!(shorts, ["STATET~1.123", "STATET~2.123"]);

    let mut with_fatfs = vol.clone();
    with_fatfs.write(&[("state.tgz.12377", b"")]);
    let fatfs_short = with_fatfs.slot("state.tgz.12377").short.short_name;
    vol.rename("state.tgz.12399", "state.tgz.12377").unwrap();
    let moved = vol.slot("state.tgz.12377");
    assert_eq!(moved.short.short_name, "STATET~3.123", "~1 and ~2 were taken when it was named");
    assert_eq!(moved.short.short_name, fatfs_short);
    assert_eq!(vol.read("state.tgz.12377").unwrap(), b"two");

    // Short names find entries too, ignoring case.
    vol.rename("statet~1.123", "state.tgz").unwrap();
    assert_eq!(vol.read("state.tgz").unwrap(), b"one");
    let names: Vec<String> = vol.root().into_iter().map(|e| e.long_name).collect();
    assert_eq!(names, ["state.tgz", "state.tgz.12377"], "state.tgz took the first free slots");
    vol.assert_fsck_clean();

    // Our short names are the ones fatfs gives in the same directory.
    for name in ["boot.cfg.12345", "a+b.txt", "verylongname.txt", "x.y.z", "LOCAL.TGZ", "Mixed.Cfg", "state.tgz.12388"]
    {
        let mut ours = vol.clone();
        ours.write(&[("src.bin", b"s")]);
        let mut theirs = ours.clone();
        theirs.write(&[(name, b"")]);
        ours.rename("src.bin", name).unwrap();
        assert_eq!(ours.slot(name).short.short_name, theirs.slot(name).short.short_name, "{name}");
        assert_eq!(ours.slot(name).long_name, name);
        ours.assert_fsck_clean();
        let listed = ours.fatfs_names().into_iter().any(|(long, _)| long == name);
        assert!(listed, "fatfs lists {name}");
    }
}

#[test]
fn errors_are_raised_before_any_write() {
    let mut vol = Vol::new(SectorSize::S512, 32 * MIB);
    vol.write(&[("state.tgz", &bytes(10_000, 9)), ("state.tgz.1", b"new"), ("other", &bytes(5000, 10))]);
    vol.mkdir("state.1");
    let reader = vol.reader();
    let no_writes = |vol: &mut Vol, src: &str, dst: &str| -> FatOpError {
        let mut log = WriteLog::new(&mut vol.disk);
        let err = fatops::rename_replace(&mut log, &reader, src, dst).unwrap_err();
        assert!(log.events().is_empty(), "{src} -> {dst}: {err}: wrote {:?}", log.events().len());
        err
    };

    assert!(matches!(no_writes(&mut vol, "missing", "state.tgz"), FatOpError::NotFound { name } if name == "missing"));
    for bad in ["", "..", "a/b", "a*b", "x "] {
        assert!(matches!(no_writes(&mut vol, "state.tgz.1", bad), FatOpError::InvalidName { .. }), "{bad:?}");
    }
    assert!(matches!(no_writes(&mut vol, "state.tgz.1", "state.1"), FatOpError::IsADirectory { .. }));
    assert!(matches!(no_writes(&mut vol, "state.1", "state.tgz"), FatOpError::NotADirectory { .. }));
    // The same entry by two names: nothing to do.
    assert_eq!(vol.rename("state.tgz", "STATE.TGZ").unwrap(), []);

    // A broken chain of the replaced file.
    let dst = vol.slot("state.tgz");
    let mut broken = vol.clone();
    broken.set_fat(dst.short.first_cluster + 1, 0);
    let err = no_writes(&mut broken, "state.tgz.1", "state.tgz");
    assert!(matches!(err, FatOpError::Corrupt { ref what } if what.contains("free")), "{err}");
    let mut looped = vol.clone();
    looped.set_fat(dst.short.first_cluster + 1, dst.short.first_cluster as u16);
    let err = no_writes(&mut looped, "state.tgz.1", "state.tgz");
    assert!(matches!(err, FatOpError::Corrupt { ref what } if what.contains("twice")), "{err}");
    let mut out = vol.clone();
    out.set_fat(dst.short.first_cluster, 0xFFF0);
    assert!(matches!(no_writes(&mut out, "state.tgz.1", "state.tgz"), FatOpError::Corrupt { .. }));
    // Cross-linked: the replaced chain holds the source's first cluster.
    let other = vol.slot("other");
    let mut crossed = vol.clone();
    crossed.set_fat(dst.short.first_cluster + 2, other.short.first_cluster as u16);
    let err = no_writes(&mut crossed, "other", "state.tgz");
    assert!(matches!(err, FatOpError::Corrupt { ref what } if what.contains("cross-linked")), "{err}");

    // fix_new_dir on what is not a fresh directory of the root.
    let file = vol.slot("state.tgz").short;
    let mut log = WriteLog::new(&mut vol.disk);
    assert!(matches!(fatops::fix_new_dir(&mut log, &reader, &file), Err(FatOpError::NotADirectory { .. })));
    assert!(matches!(fatops::list_dir_long(&mut log, &reader, &file), Err(FatOpError::NotADirectory { .. })));
    let dir = vol.slot("state.1").short;
    let mut stale = dir.clone();
    stale.dir_entry_offset += 32;
    let mut log = WriteLog::new(&mut vol.disk);
    assert!(matches!(fatops::fix_new_dir(&mut log, &reader, &stale), Err(FatOpError::NotFound { .. })));
    for offset in [7, 512, usize::MAX - 31] {
        stale.dir_entry_offset = offset;
        assert!(matches!(fatops::fix_new_dir(&mut log, &reader, &stale), Err(FatOpError::NotFound { .. })));
    }
    stale.dir_entry_lba = u64::MAX;
    assert!(matches!(fatops::list_dir_long(&mut log, &reader, &stale), Err(FatOpError::NotFound { .. })));
    stale = dir.clone();
    stale.first_cluster += 1;
    assert!(matches!(fatops::fix_new_dir(&mut log, &reader, &stale), Err(FatOpError::NotFound { .. })));
    assert!(log.events().is_empty());
    let mut freed = vol.clone();
    freed.set_fat(dir.first_cluster, 0);
    assert!(matches!(fatops::fix_new_dir(&mut freed.disk, &reader, &dir), Err(FatOpError::Corrupt { .. })));
    let mut grown = vol.clone();
    grown.set_fat(dir.first_cluster, 3000);
    let err = fatops::fix_new_dir(&mut grown.disk, &reader, &dir).unwrap_err();
    assert!(matches!(err, FatOpError::NotEmpty { ref what, .. } if what.contains("more than one cluster")), "{err}");
    let mut removed = vol.clone();
    {
        let fs = fat::mount(&mut removed.disk, FIRST, removed.sectors, &IMAGE_TIME).unwrap();
        fs.root_dir().remove("state.1").unwrap();
        fs.unmount().unwrap();
    }
    assert!(matches!(fatops::fix_new_dir(&mut removed.disk, &reader, &dir), Err(FatOpError::NotFound { .. })));
}

#[test]
fn a_full_root_directory() {
    let mut vol = Vol::new(SectorSize::S512, 32 * MIB);
    {
        let fs = fat::mount(&mut vol.disk, FIRST, vol.sectors, &IMAGE_TIME).unwrap();
        for i in 0..255 {
            fs.root_dir().create_file(&format!("f{i}")).unwrap();
        }
        fs.unmount().unwrap();
    }
    // 510 of the 512 slots are used: room for one LFN slot and a short entry.
    let mut log_vol = vol.clone();
    let err = log_vol.rename("f0", "state.tgz.12345").unwrap_err();
    assert!(matches!(err, FatOpError::RootFull { needed: 3 }), "{err}");
    assert_eq!(log_vol.root().len(), 255);
    vol.rename("f0", "state.tgz").unwrap();
    assert_eq!(vol.root().last().unwrap().long_name, "state.tgz");
    vol.assert_fsck_clean();
}

/// A base volume for the random tests: a few files and a directory.
fn fuzz_base() -> &'static Vol {
    static BASE: OnceLock<Vol> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut vol = Vol::new(SectorSize::S512, 8 * MIB);
        vol.write(&[("boot.cfg", b"bootstate=0\n"), ("state.tgz", &bytes(9000, 11)), ("state.tgz.7", b"x")]);
        vol.mkdir("state.7");
        vol
    })
}

/// One 32-byte slot: raw bytes, or something shaped like an LFN slot or a
/// short entry, so that parsing goes deep.
fn slot_strategy() -> impl Strategy<Value = Vec<u8>> {
    let raw = proptest::collection::vec(any::<u8>(), 32);
    let lfn = (prop::sample::select(vec![0x41u8, 0x42, 0x43, 0x01, 0x02, 0x40, 0x54, 0x55, 0xC1]), any::<[u8; 31]>())
        .prop_map(|(order, rest)| {
            let mut s = vec![order];
            s.extend_from_slice(&rest);
            s[11] = 0x0F;
            s
        });
    let names: Vec<&'static [u8; 11]> =
        vec![b"STATE   TGZ", b"STATE~1 7  ", b".          ", b"..         ", b"BOOT    CFG", b"\x05X         "];
    let sfn = (
        prop::sample::select(names),
        prop::sample::select(vec![0x20u8, 0x10, 0x08, 0x00, 0x3F, 0x16]),
        prop_oneof![0u16..40, any::<u16>()],
        prop_oneof![0u32..20_000, any::<u32>()],
        any::<[u8; 8]>(),
    )
        .prop_map(|(name, attr, cluster, size, times)| {
            let mut s = vec![0u8; 32];
            s[..11].copy_from_slice(name);
            s[11] = attr;
            s[13..21].copy_from_slice(&times);
            s[26..28].copy_from_slice(&cluster.to_le_bytes());
            s[28..32].copy_from_slice(&size.to_le_bytes());
            s
        });
    prop_oneof![raw, lfn, sfn, Just(vec![0xE5; 32])]
}

fn exercise(vol: &mut Vol, names: &[String]) {
    let reader = vol.reader();
    let listed = fatops::list_root_long(&mut vol.disk, &reader);
    let mut all: Vec<String> = names.to_vec();
    if let Ok(listed) = listed {
        for e in &listed {
            all.push(e.long_name.clone());
            all.push(e.short.short_name.clone());
            let mut copy = vol.disk.fork();
            let _ = fatops::list_dir_long(&mut copy, &reader, &e.short);
            let _ = fatops::fix_new_dir(&mut copy, &reader, &e.short);
            let _ = fatops::list_root_long(&mut copy, &reader);
        }
    }
    let n = all.len();
    for (i, src) in all.iter().enumerate() {
        let _ = fatops::find_root_long(&mut vol.disk, &reader, src);
        for dst in [&all[(i + 1) % n], &all[(i * 7 + 3) % n], &all[n - 1 - i]] {
            let mut copy = vol.disk.fork();
            if fatops::rename_replace(&mut copy, &reader, src, dst).is_ok() {
                let _ = fatops::list_root_long(&mut copy, &reader);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_root_directories_never_panic(
        slots in proptest::collection::vec(slot_strategy(), 0..40),
        fat in proptest::option::of(proptest::collection::vec(any::<u8>(), 512)),
    ) {
        let mut vol = fuzz_base().clone();
        let root = vol.root_lba();
        let mut dir = vec![0u8; 8 * 512];
        vol.disk.read_sectors(root, &mut dir).unwrap();
        for (i, s) in slots.iter().enumerate() {
            dir[i * 32..(i + 1) * 32].copy_from_slice(s);
        }
        vol.disk.write_sectors(root, &dir).unwrap();
        if let Some(fat) = fat {
            let lba = vol.fat_lba();
            vol.disk.write_sectors(lba, &fat).unwrap();
        }
        let names = ["state.tgz", "state.tgz.7", "state.7", "boot.cfg", "new.name.12345", "STATE.TGZ", "."];
        exercise(&mut vol, &names.map(String::from));
    }
}

#[test]
fn the_fuzz_base_is_sound() {
    let mut vol = fuzz_base().clone();
    vol.assert_fsck_complains(); // the fatfs directory
    let dir = vol.slot("state.7").short;
    let reader = vol.reader();
    fatops::fix_new_dir(&mut vol.disk, &reader, &dir).unwrap();
    vol.assert_fsck_clean();
    exercise(&mut vol, &["state.tgz".into()]);
}
