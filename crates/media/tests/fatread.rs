//! `fatread` against volumes made by our formatter and filled by `fatfs`:
//! lookups, contents, runs, the overwrite sector, FAT12, 4Kn, corrupt
//! chains and boot sectors, and random bytes that must never panic.

use std::io::{Read, Write};
use std::sync::OnceLock;

use proptest::prelude::*;
use visorsim_disk::{BlockDevice, DiskError, MemDisk, SectorSize};
use visorsim_media::fat::{self, Geometry, IMAGE_TIME};
use visorsim_media::fatread::{FatFile, FatReadError, FatReader, SectorRun};

use crate::util::{bytes, FIRST, MIB};

/// A formatted volume on a memory disk.
#[derive(Clone)]
struct Vol {
    disk: MemDisk,
    sectors: u64,
    geometry: Geometry,
}

impl Vol {
    fn new(size: SectorSize, bytes: u64) -> Vol {
        let sectors = bytes / size.bytes_u64();
        let mut disk = MemDisk::new(FIRST + sectors + 8, size);
        let geometry = fat::format(&mut disk, FIRST, sectors, 0x5EED_0001).unwrap();
        Vol { disk, sectors, geometry }
    }

    fn write(&mut self, files: &[(&str, &[u8])]) {
        let fs = fat::mount(&mut self.disk, FIRST, self.sectors, &IMAGE_TIME).unwrap();
        for (name, data) in files {
            fs.root_dir().create_file(name).unwrap().write_all(data).unwrap();
        }
        fs.unmount().unwrap();
    }

    fn remove(&mut self, name: &str) {
        let fs = fat::mount(&mut self.disk, FIRST, self.sectors, &IMAGE_TIME).unwrap();
        fs.root_dir().remove(name).unwrap();
        fs.unmount().unwrap();
    }

    fn fatfs_read(&mut self, name: &str) -> Vec<u8> {
        let fs = fat::mount(&mut self.disk, FIRST, self.sectors, &IMAGE_TIME).unwrap();
        let mut data = Vec::new();
        fs.root_dir().open_file(name).unwrap().read_to_end(&mut data).unwrap();
        data
    }

    /// Short names of the root directory's files, as `fatfs` reports them.
    fn fatfs_short_names(&mut self) -> Vec<String> {
        let fs = fat::mount(&mut self.disk, FIRST, self.sectors, &IMAGE_TIME).unwrap();
        let names = fs.root_dir().iter().map(|e| e.unwrap()).filter(|e| e.is_file()).map(|e| e.short_file_name());
        names.collect()
    }

    fn reader(&mut self) -> FatReader {
        FatReader::open(&mut self.disk, FIRST, self.sectors).unwrap()
    }

    fn open(&mut self) -> Result<FatReader, FatReadError> {
        FatReader::open(&mut self.disk, FIRST, self.sectors)
    }

    fn find(&mut self, name: &str) -> FatFile {
        let reader = self.reader();
        reader.find(&mut self.disk, name).unwrap().unwrap_or_else(|| panic!("{name} not found"))
    }

    fn ss(&self) -> usize {
        self.disk.sector_size().len()
    }

    /// Patches bytes of the sector at `lba`.
    fn patch(&mut self, lba: u64, at: usize, bytes: &[u8]) {
        let mut sector = vec![0u8; self.ss()];
        self.disk.read_sectors(lba, &mut sector).unwrap();
        sector[at..at + bytes.len()].copy_from_slice(bytes);
        self.disk.write_sectors(lba, &sector).unwrap();
    }

    /// Sets the entry of `cluster` in FAT #1.
    fn set_fat(&mut self, cluster: u32, value: u32) {
        let g = self.geometry;
        let ss = self.ss();
        let lba = FIRST + u64::from(g.reserved_sectors);
        let mut table = vec![0u8; g.fat_sectors as usize * ss];
        self.disk.read_sectors(lba, &mut table).unwrap();
        let n = cluster as usize;
        if g.fat_bits == 12 {
            let at = n + n / 2;
            let old = u16::from_le_bytes([table[at], table[at + 1]]);
            let new = if n % 2 == 1 { (old & 0x000F) | ((value as u16) << 4) } else { (old & 0xF000) | value as u16 };
            table[at..at + 2].copy_from_slice(&new.to_le_bytes());
        } else {
            table[2 * n..2 * n + 2].copy_from_slice(&(value as u16).to_le_bytes());
        }
        self.disk.write_sectors(lba, &table).unwrap();
    }
}

fn run_sectors(runs: &[SectorRun]) -> u64 {
    runs.iter().map(|r| r.sectors).sum()
}

/// A device that records every read (LBA, bytes).
struct Counting<'a> {
    inner: &'a mut MemDisk,
    reads: Vec<(u64, usize)>,
}

impl BlockDevice for Counting<'_> {
    fn sector_size(&self) -> SectorSize {
        self.inner.sector_size()
    }
    fn sector_count(&self) -> u64 {
        self.inner.sector_count()
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.reads.push((lba, buf.len()));
        self.inner.read_sectors(lba, buf)
    }
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), DiskError> {
        self.inner.write_sectors(lba, buf)
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        self.inner.flush()
    }
}

const SIZES: [SectorSize; 2] = [SectorSize::S512, SectorSize::S4096];

#[test]
fn reader_geometry_matches_the_formatter() {
    for (size, sectors) in [
        (SectorSize::S512, 511_968u64), // a real 250 MB bank
        (SectorSize::S512, 8_388_608),  // ESXi 7's 4 GiB bank, extra reserved sectors
        (SectorSize::S512, 8128),
        (SectorSize::S512, 2048),  // FAT12
        (SectorSize::S4096, 1016), // FAT12, the 4 MB system partition on 4Kn
        (SectorSize::S4096, 63_996),
    ] {
        let mut disk = MemDisk::new(FIRST + sectors, size);
        let made = fat::format(&mut disk, FIRST, sectors, 1).unwrap();
        let reader = FatReader::open(&mut disk, FIRST, sectors).unwrap();
        assert_eq!(reader.geometry(), &made, "{sectors} sectors of {size:?}");
        assert_eq!(reader.cluster_bytes(), made.cluster_bytes());
        assert_eq!(reader.first_lba(), FIRST);
        assert!(reader.list_root(&mut disk).unwrap().is_empty());
    }
}

#[test]
fn finds_files_by_short_name_in_any_case() {
    for size in SIZES {
        let mut vol = Vol::new(size, 32 * MIB);
        vol.write(&[
            ("boot.cfg", b"bootstate=0\n"),
            ("Mixed.Cfg", b"mixed"),
            ("s.v00", b"s"),
            ("imgdb-long-name.tgz", b"long"),
        ]);
        {
            let fs = fat::mount(&mut vol.disk, FIRST, vol.sectors, &IMAGE_TIME).unwrap();
            fs.root_dir().create_dir("subdir").unwrap();
            fs.unmount().unwrap();
        }
        let reader = vol.reader();
        for name in ["boot.cfg", "BOOT.CFG", "/Boot.CfG", "//boot.cfg"] {
            let file = reader.find(&mut vol.disk, name).unwrap().unwrap();
            assert_eq!((file.short_name.as_str(), file.size), ("BOOT.CFG", 12), "{name}");
        }
        assert_eq!(vol.find("mixed.cfg").short_name, "MIXED.CFG");
        assert_eq!(vol.find("/S.V00").size, 1);
        // A long name is found by the short name fatfs generated for it only.
        let short = vol.fatfs_short_names().into_iter().find(|n| n.ends_with(".TGZ")).unwrap();
        assert!(short.starts_with("IMGDB") && short.contains('~'), "{short}");
        assert_eq!(vol.find(&short.to_lowercase()).size, 4);
        for missing in ["imgdb-long-name.tgz", "subdir", "missing.cfg", "boot", "boot.cf", "a/boot.cfg"] {
            assert_eq!(reader.find(&mut vol.disk, missing).unwrap(), None, "{missing}");
        }
        // list_root sees the files fatfs sees, in directory order.
        let listed: Vec<String> = reader.list_root(&mut vol.disk).unwrap().into_iter().map(|f| f.short_name).collect();
        assert_eq!(listed, vol.fatfs_short_names());
        assert_eq!(listed.len(), 4);
        // The entry location points at the entry.
        let file = vol.find("boot.cfg");
        let mut sector = vec![0u8; vol.ss()];
        vol.disk.read_sectors(file.dir_entry_lba, &mut sector).unwrap();
        assert_eq!(&sector[file.dir_entry_offset..file.dir_entry_offset + 11], b"BOOT    CFG");
    }
}

#[test]
fn skips_deleted_long_name_label_and_directory_entries_and_stops_at_zero() {
    let mut vol = Vol::new(SectorSize::S512, 32 * MIB);
    vol.write(&[("data.bin", &bytes(5000, 1))]);
    let data = vol.find("data.bin");
    let root = data.dir_entry_lba;
    let entry = |name: &[u8; 11], attr: u8, size: u32| {
        let mut e = [0u8; 32];
        e[..11].copy_from_slice(name);
        e[11] = attr;
        e[26..28].copy_from_slice(&(data.first_cluster as u16).to_le_bytes());
        e[28..32].copy_from_slice(&size.to_le_bytes());
        e
    };
    let mut lfn = entry(b"BOOT    CFG", 0x0F, 1);
    lfn[0] = 0x41;
    let entries = [
        entry(b"BOOT    CFG", 0x08, 1),    // volume label
        entry(b"\xE5OOT    CFG", 0x20, 2), // deleted
        entry(b"BOOT    CFG", 0x10, 3),    // directory
        entry(b"BOOT    CFG", 0x0F, 4),    // long-name entry carrying the name
        lfn,
        entry(b"BOOT    CFG", 0x21, 6), // the file (read-only + archive)
        [0u8; 32],                      // end of directory
        entry(b"LATE    CFG", 0x20, 7),
    ];
    let raw: Vec<u8> = entries.concat();
    vol.patch(root, 0, &raw);
    let reader = vol.reader();
    let file = reader.find(&mut vol.disk, "boot.cfg").unwrap().unwrap();
    assert_eq!((file.size, file.dir_entry_lba, file.dir_entry_offset), (6, root, 5 * 32));
    assert_eq!(reader.find(&mut vol.disk, "late.cfg").unwrap(), None);
    let listed = reader.list_root(&mut vol.disk).unwrap();
    assert_eq!(listed, vec![file.clone()]);
    assert_eq!(reader.read(&mut vol.disk, &file, 100).unwrap(), bytes(5000, 1)[..6]);
    // find_short compares the raw bytes.
    assert_eq!(reader.find_short(&mut vol.disk, b"BOOT    CFG").unwrap(), Some(file));
    assert_eq!(reader.find_short(&mut vol.disk, b"boot    cfg").unwrap(), None);
}

#[test]
fn reads_what_fatfs_wrote() {
    for size in SIZES {
        let mut vol = Vol::new(size, 32 * MIB);
        let cluster = vol.geometry.cluster_bytes() as usize;
        let files: Vec<(String, Vec<u8>)> = vec![
            ("empty.dat".into(), Vec::new()),
            ("boot.cfg".into(), b"bootstate=0\ntitle=Loading VMware ESXi\n".to_vec()),
            ("one.bin".into(), bytes(cluster, 2)),
            ("onemore.bin".into(), bytes(cluster + 1, 3)),
            ("s.v00".into(), bytes(5 * MIB as usize + 123, 4)),
        ];
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        vol.write(&refs);
        let reader = vol.reader();
        let spc = u64::from(vol.geometry.sectors_per_cluster);
        for (name, data) in &files {
            let file = vol.find(name);
            assert_eq!(file.size as usize, data.len());
            let runs = reader.runs(&mut vol.disk, &file).unwrap();
            assert_eq!(run_sectors(&runs), (data.len() as u64).div_ceil(cluster as u64) * spc, "{name}");
            // Written in one go on an empty volume: one run.
            assert!(runs.len() <= 1, "{name}: {runs:?}");
            let read = reader.read(&mut vol.disk, &file, u64::MAX).unwrap();
            assert!(read == *data, "{name} differs");
            assert!(read == vol.fatfs_read(name), "{name} differs from fatfs");
        }
        let empty = vol.find("empty.dat");
        assert_eq!(empty.first_cluster, 0);
        assert_eq!(reader.first_sector(&empty), None);
        assert!(reader.runs(&mut vol.disk, &empty).unwrap().is_empty());
    }
}

#[test]
fn a_big_contiguous_file_is_read_in_one_device_read() {
    let mut vol = Vol::new(SectorSize::S512, 32 * MIB);
    let data = bytes(12 * MIB as usize, 5);
    vol.write(&[("s.v00", &data)]);
    let file = vol.find("s.v00");
    let reader = vol.reader();
    let mut dev = Counting { inner: &mut vol.disk, reads: Vec::new() };
    assert!(reader.read(&mut dev, &file, 16 * MIB).unwrap() == data);
    // One 16 KiB window of the FAT (the chain's 3072 entries) and the data.
    assert_eq!(dev.reads.len(), 2, "{:?}", dev.reads);
    assert_eq!(dev.reads[1], (reader.first_sector(&file).unwrap(), data.len()));
    // Too large for the caller: refused before any read.
    dev.reads.clear();
    let err = reader.read(&mut dev, &file, 12 * MIB - 1).unwrap_err();
    assert!(
        matches!(err, FatReadError::TooLarge { size, max, .. } if u64::from(size) == 12 * MIB && max == 12 * MIB - 1)
    );
    assert!(dev.reads.is_empty());
}

#[test]
fn fragmented_file_reads_right() {
    for size in SIZES {
        let mut vol = Vol::new(size, 32 * MIB);
        let cluster = vol.geometry.cluster_bytes() as usize;
        vol.write(&[("a.bin", &bytes(3 * cluster, 6)), ("b.bin", &bytes(2 * cluster - 7, 7))]);
        vol.remove("a.bin");
        let c = bytes(10 * cluster + 99, 8);
        vol.write(&[("c.bin", &c)]);
        let reader = vol.reader();
        let file = vol.find("c.bin");
        let runs = reader.runs(&mut vol.disk, &file).unwrap();
        assert!(runs.len() >= 2, "not fragmented: {runs:?}");
        assert_eq!(run_sectors(&runs), 11 * u64::from(vol.geometry.sectors_per_cluster));
        assert!(reader.read(&mut vol.disk, &file, u64::MAX).unwrap() == c);
        let b = vol.find("b.bin");
        assert!(reader.read(&mut vol.disk, &b, u64::MAX).unwrap() == bytes(2 * cluster - 7, 7));
    }
}

#[test]
fn first_sector_is_the_sector_file_overwrite_rewrites() {
    for size in SIZES {
        let mut vol = Vol::new(size, 32 * MIB);
        vol.write(&[("pad.bin", &bytes(10_000, 9)), ("boot.cfg", b"bootstate=0\ntitle=x\n")]);
        let reader = vol.reader();
        let file = vol.find("BOOT.CFG");
        let lba = reader.first_sector(&file).unwrap();
        assert_eq!(lba, reader.runs(&mut vol.disk, &file).unwrap()[0].lba);
        // What esx-boot does: read that sector, copy the patched bytes over
        // its start, write it back.
        vol.patch(lba, 10, b"2");
        assert_eq!(vol.fatfs_read("boot.cfg"), b"bootstate=2\ntitle=x\n");
        assert_eq!(reader.read(&mut vol.disk, &file, 512).unwrap(), b"bootstate=2\ntitle=x\n");
    }
}

#[test]
fn fat12_volumes() {
    for (size, bytes_total) in [(SectorSize::S512, MIB), (SectorSize::S4096, 1016 * 4096)] {
        let mut vol = Vol::new(size, bytes_total);
        assert_eq!(vol.geometry.fat_bits, 12);
        let cluster = vol.geometry.cluster_bytes() as usize;
        // 600 clusters: on 512-byte sectors, entries 341 and 682 straddle
        // FAT sectors.
        let big = bytes(600 * cluster.min(1024) + 5, 10);
        vol.write(&[("a.bin", &bytes(3 * cluster, 11)), ("b.bin", &bytes(cluster + 1, 12))]);
        vol.remove("a.bin");
        vol.write(&[("big.bin", &big), ("boot.cfg", b"bootstate=1\n")]);
        let reader = vol.reader();
        assert_eq!(reader.geometry().fat_bits, 12);
        let file = vol.find("big.bin");
        assert!(reader.runs(&mut vol.disk, &file).unwrap().len() >= 2);
        assert!(reader.read(&mut vol.disk, &file, u64::MAX).unwrap() == big);
        let (boot, b) = (vol.find("boot.cfg"), vol.find("b.bin"));
        assert_eq!(reader.read(&mut vol.disk, &boot, 512).unwrap(), b"bootstate=1\n");
        assert!(reader.read(&mut vol.disk, &b, u64::MAX).unwrap() == bytes(cluster + 1, 12));
    }
}

fn chain_error(vol: &mut Vol, name: &str) -> (u32, String) {
    let reader = vol.reader();
    let file = vol.find(name);
    let err = reader.read(&mut vol.disk, &file, u64::MAX).unwrap_err();
    assert!(reader.runs(&mut vol.disk, &file).is_err());
    match err {
        FatReadError::BadChain { lba, file: f, cluster, what } => {
            assert_eq!((lba, f.as_str()), (FIRST, "DATA.BIN"));
            (cluster, what)
        }
        other => panic!("expected BadChain, got {other}"),
    }
}

#[test]
fn corrupt_chains_are_errors_naming_the_cluster() {
    for size in SIZES {
        let mut base = Vol::new(size, 32 * MIB);
        let cluster = base.geometry.cluster_bytes() as usize;
        base.write(&[("data.bin", &bytes(4 * cluster, 13))]);
        let c = base.find("data.bin").first_cluster;
        let max = base.geometry.clusters + 1;

        let mut vol = base.clone();
        vol.set_fat(c + 2, c);
        let (at, what) = chain_error(&mut vol, "data.bin");
        assert_eq!(at, c, "{what}");
        assert!(what.contains("loops"), "{what}");

        for (value, word) in
            [(0, "free"), (1, "reserved"), (max + 1, "outside"), (0xFFF7, "bad"), (0xFFFF, "end of chain")]
        {
            let mut vol = base.clone();
            vol.set_fat(c + 1, value);
            let (at, what) = chain_error(&mut vol, "data.bin");
            assert_eq!(at, c + 1, "{what}");
            assert!(what.contains(word) && what.contains("after 2 of the 4 clusters"), "{what}");
        }

        // The last cluster's FAT entry is not consulted: the size decides.
        let mut vol = base.clone();
        vol.set_fat(c + 3, 0);
        let reader = vol.reader();
        let file = vol.find("data.bin");
        assert!(reader.read(&mut vol.disk, &file, u64::MAX).unwrap() == bytes(4 * cluster, 13));

        // First cluster out of range, through the low or the high word.
        let entry = base.find("data.bin");
        for (at, value, cluster_seen) in [(26, 1u16, 1u32), (26, max as u16 + 1, max + 1), (20, 1, 0x1_0000 + c)] {
            let mut vol = base.clone();
            vol.patch(entry.dir_entry_lba, entry.dir_entry_offset + at, &value.to_le_bytes());
            let (seen, what) = chain_error(&mut vol, "data.bin");
            assert_eq!(seen, cluster_seen, "{what}");
            assert!(what.contains("first cluster"), "{what}");
            assert_eq!(vol.reader().first_sector(&vol.find("data.bin")), None);
        }

        // A size larger than the volume.
        let mut vol = base.clone();
        vol.patch(entry.dir_entry_lba, entry.dir_entry_offset + 28, &u32::MAX.to_le_bytes());
        let (_, what) = chain_error(&mut vol, "data.bin");
        assert!(what.contains("clusters, the volume has"), "{what}");
        let reader = vol.reader();
        let file = vol.find("data.bin");
        let err = reader.read(&mut vol.disk, &file, 1 << 20).unwrap_err();
        assert!(matches!(err, FatReadError::TooLarge { size: u32::MAX, max: 1_048_576, .. }));
    }
}

#[test]
fn fat12_chain_corruption() {
    let mut base = Vol::new(SectorSize::S512, MIB);
    base.write(&[("pad.bin", &bytes(1500, 1)), ("data.bin", &bytes(4 * 512, 14))]);
    let c = base.find("data.bin").first_cluster;
    for (value, word) in [(0, "free"), (0xFF7, "bad"), (0xFFF, "end of chain"), (0xFF0, "outside")] {
        for at in [c, c + 1] {
            let mut vol = base.clone();
            vol.set_fat(at, value);
            let (seen, what) = chain_error(&mut vol, "data.bin");
            assert_eq!(seen, at, "{what}");
            assert!(what.contains(word), "{what}");
        }
    }
    let mut vol = base.clone();
    vol.set_fat(c + 1, c + 1);
    assert!(chain_error(&mut vol, "data.bin").1.contains("loops"));
}

fn bpb_error(vol: &mut Vol) -> FatReadError {
    vol.open().unwrap_err()
}

#[test]
fn zero_and_garbage_boot_sectors() {
    for size in SIZES {
        let mut vol = Vol::new(size, 32 * MIB);
        let zero = vec![0u8; vol.ss()];
        vol.disk.write_sectors(FIRST, &zero).unwrap();
        match bpb_error(&mut vol) {
            FatReadError::BadBootSector { lba, field: "BPB_BytsPerSec", value: 0, .. } => assert_eq!(lba, FIRST),
            other => panic!("{other}"),
        }
        for seed in 0..64 {
            vol.disk.write_sectors(FIRST, &bytes(vol.ss(), seed)).unwrap();
            assert!(vol.open().is_err());
        }
    }
}

#[test]
fn bpb_fields_out_of_range() {
    // 40 MiB of 512-byte sectors: 81920 sectors (BPB_TotSec32), 4 KiB clusters.
    let base = Vol::new(SectorSize::S512, 40 * MIB);
    assert_eq!(base.geometry.fat_bits, 16);
    let total = base.sectors as u32;
    let cases: Vec<(usize, Vec<u8>, &str)> = vec![
        (11, 1024u16.to_le_bytes().to_vec(), "BPB_BytsPerSec"),
        (11, 4096u16.to_le_bytes().to_vec(), "BPB_BytsPerSec"),
        (13, vec![0], "BPB_SecPerClus"),
        (13, vec![3], "BPB_SecPerClus"),
        (13, vec![96], "BPB_SecPerClus"),
        (14, 0u16.to_le_bytes().to_vec(), "BPB_RsvdSecCnt"),
        (16, vec![0], "BPB_NumFATs"),
        (17, 0u16.to_le_bytes().to_vec(), "BPB_RootEntCnt"),
        (22, 1u16.to_le_bytes().to_vec(), "BPB_FATSz16"),
        (32, 0u32.to_le_bytes().to_vec(), "BPB_TotSec32"),
        (32, (total + 1).to_le_bytes().to_vec(), "BPB_TotSec32"),
        (19, 100u16.to_le_bytes().to_vec(), "BPB_TotSec16"), // no room for data
    ];
    for (at, value, field) in cases {
        let mut vol = base.clone();
        vol.patch(FIRST, at, &value);
        match bpb_error(&mut vol) {
            FatReadError::BadBootSector { lba, field: f, .. } if f == field => assert_eq!(lba, FIRST),
            other => panic!("byte {at} = {value:?}: expected {field}, got {other}"),
        }
    }
    // FAT32 by BPB_FATSz16 = 0, or by cluster count (one-sector clusters).
    for (at, value) in [(22usize, 0u8), (13, 1)] {
        let mut vol = base.clone();
        vol.patch(FIRST, at, &[value]);
        if at == 22 {
            vol.patch(FIRST, 23, &[0]);
        }
        assert!(matches!(bpb_error(&mut vol), FatReadError::Unsupported { lba: FIRST, .. }));
    }
    // A partition smaller than the volume.
    let mut vol = base.clone();
    let err = FatReader::open(&mut vol.disk, FIRST, vol.sectors - 1).unwrap_err();
    assert!(matches!(err, FatReadError::BadBootSector { field: "BPB_TotSec32", .. }), "{err}");
    // Messages name the field and the value.
    let mut vol = base.clone();
    vol.patch(FIRST, 13, &[3]);
    assert_eq!(bpb_error(&mut vol).to_string(), "FAT boot sector at LBA 64: BPB_SecPerClus = 3 is not a power of two");
    // A boot sector that cannot be read.
    let mut vol = base.clone();
    let past = vol.disk.sector_count();
    assert!(matches!(FatReader::open(&mut vol.disk, past, 100), Err(FatReadError::Disk(_))));
}

#[test]
fn a_512_byte_volume_on_a_4kn_device_is_refused() {
    let mut small = Vol::new(SectorSize::S512, 32 * MIB);
    let mut boot = vec![0u8; 512];
    small.disk.read_sectors(FIRST, &mut boot).unwrap();
    let mut vol = Vol::new(SectorSize::S4096, 32 * MIB);
    vol.patch(FIRST, 0, &boot);
    match bpb_error(&mut vol) {
        FatReadError::BadBootSector { field: "BPB_BytsPerSec", value: 512, why, .. } => {
            assert!(why.contains("4096"), "{why}")
        }
        other => panic!("{other}"),
    }
}

/// Two small volumes with files (FAT12 and FAT16), built once.
fn fuzz_bases() -> &'static [Vol; 2] {
    static BASES: OnceLock<[Vol; 2]> = OnceLock::new();
    BASES.get_or_init(|| {
        let make = |bytes_total: u64| {
            let mut vol = Vol::new(SectorSize::S512, bytes_total);
            vol.write(&[("boot.cfg", b"bootstate=0\n"), ("s.v00", &bytes(70_000, 3)), ("x.bin", &bytes(3000, 4))]);
            vol
        };
        let bases = [make(2 * MIB), make(8 * MIB)];
        assert_eq!((bases[0].geometry.fat_bits, bases[1].geometry.fat_bits), (12, 16));
        bases
    })
}

/// Opens and reads everything the reader will show; must never panic.
/// Returns how many files were read whole.
fn exercise(vol: &mut Vol, sectors: u64) -> usize {
    let Ok(reader) = FatReader::open(&mut vol.disk, FIRST, sectors) else { return 0 };
    let _ = reader.find(&mut vol.disk, "boot.cfg");
    let Ok(files) = reader.list_root(&mut vol.disk) else { return 0 };
    let mut read = 0;
    for file in files.iter().take(16) {
        let _ = reader.first_sector(file);
        if let Ok(runs) = reader.runs(&mut vol.disk, file) {
            let end = FIRST + sectors;
            assert!(runs.iter().all(|r| r.lba >= FIRST && r.lba + r.sectors <= end), "{runs:?}");
        }
        if let Ok(data) = reader.read(&mut vol.disk, file, 1 << 20) {
            assert_eq!(data.len(), file.size as usize);
            read += 1;
        }
    }
    read
}

#[test]
fn the_fuzz_bases_read_whole() {
    for base in fuzz_bases() {
        let mut vol = base.clone();
        let sectors = vol.sectors;
        assert_eq!(exercise(&mut vol, sectors), 3);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_boot_sector_never_panics(which in 0usize..2, sector in proptest::collection::vec(any::<u8>(), 512)) {
        let mut vol = fuzz_bases()[which].clone();
        vol.disk.write_sectors(FIRST, &sector).unwrap();
        let sectors = vol.sectors;
        exercise(&mut vol, sectors);
    }

    #[test]
    fn random_bpb_fields_root_dir_and_fat_never_panic(
        which in 0usize..2,
        bpb in proptest::collection::vec((11usize..40, any::<u8>()), 0..3),
        root in proptest::option::of((0usize..512, proptest::collection::vec(any::<u8>(), 1..512))),
        fat in proptest::collection::vec((0usize..512, any::<u8>()), 0..16),
        shrink in prop_oneof![Just(0u64), 0u64..64],
    ) {
        let mut vol = fuzz_bases()[which].clone();
        let g = vol.geometry;
        if let Some((at, root)) = root {
            let root_lba = FIRST + u64::from(g.reserved_sectors + g.fats * g.fat_sectors);
            let mut area = vec![0u8; 2 * 512];
            vol.disk.read_sectors(root_lba, &mut area).unwrap();
            area[at..at + root.len()].copy_from_slice(&root);
            vol.disk.write_sectors(root_lba, &area).unwrap();
        }
        for (at, value) in fat {
            vol.patch(FIRST + u64::from(g.reserved_sectors), at, &[value]);
        }
        for (at, value) in bpb {
            vol.patch(FIRST, at, &[value]);
        }
        let sectors = vol.sectors - shrink;
        exercise(&mut vol, sectors);
    }
}
