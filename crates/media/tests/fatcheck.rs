//! The in-process FAT checker (`fat::check_volume`) against the real
//! `fsck.fat -n` (dosfstools), and its repair mode against `fsck.fat -a`:
//! hand-made corruptions of each class, crash states of the Linux-order
//! write operations, random corruptions and random bytes.
//!
//! Agreement means: the same verdict (`is_clean` exactly when fsck.fat
//! exits 0) and the same set of finding classes (fsck.fat's lines mapped by
//! `visorsim_tools::fsck_fat::finding_class`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use proptest::prelude::*;
use visorsim_disk::{apply_crash_state, crash_states, BlockDevice, CrashSpace, MemDisk, SectorSize, WriteLog};
use visorsim_media::fat::{self, check_volume, repair_volume, FatCheck, FatKind, FindingClass, Geometry, IMAGE_TIME};
use visorsim_media::fatops;
use visorsim_media::fatread::FatReader;
use visorsim_tools::fsck_fat::{FsckFat, FsckOutput};

use crate::util::{bytes, FIRST, MIB};

/// A volume as bytes, with where its parts lie.
#[derive(Clone)]
struct Img {
    bytes: Vec<u8>,
    g: Geometry,
    ss: u64,
}

impl Img {
    fn disk(&self) -> MemDisk {
        let size = if self.ss == 512 { SectorSize::S512 } else { SectorSize::S4096 };
        let sectors = self.bytes.len() as u64 / self.ss;
        let mut disk = MemDisk::new(FIRST + sectors + 8, size);
        disk.write_sectors(FIRST, &self.bytes).unwrap();
        disk
    }

    fn of_disk(disk: &mut MemDisk, like: &Img) -> Img {
        let mut bytes = vec![0u8; like.bytes.len()];
        disk.read_sectors(FIRST, &mut bytes).unwrap();
        Img { bytes, ..like.clone() }
    }

    fn sectors(&self) -> u64 {
        self.bytes.len() as u64 / self.ss
    }

    fn check(&self) -> FatCheck {
        check_volume(&mut self.disk(), FIRST, self.sectors())
    }

    fn fat_start(&self) -> usize {
        self.g.reserved_sectors as usize * self.ss as usize
    }
    fn fat_bytes(&self) -> usize {
        self.g.fat_sectors as usize * self.ss as usize
    }
    fn root_start(&self) -> usize {
        self.fat_start() + self.g.fats as usize * self.fat_bytes()
    }
    fn cluster_start(&self, cluster: u32) -> usize {
        self.g.first_data_sector() as usize * self.ss as usize
            + (cluster as usize - 2) * self.g.cluster_bytes() as usize
    }

    fn entry_offset(&self, cluster: u32) -> usize {
        let n = cluster as usize;
        if self.g.fat_bits == 12 {
            n + n / 2
        } else {
            2 * n
        }
    }

    fn fat_get(&self, cluster: u32) -> u32 {
        let fat = &self.bytes[self.fat_start()..];
        let n = cluster as usize;
        if self.g.fat_bits == 12 {
            let pair = u16::from_le_bytes([fat[n + n / 2], fat[n + n / 2 + 1]]);
            u32::from(if n % 2 == 1 { pair >> 4 } else { pair & 0xFFF })
        } else {
            u32::from(u16::from_le_bytes([fat[2 * n], fat[2 * n + 1]]))
        }
    }

    /// Sets a FAT entry in every FAT copy (`copies` = 1: FAT #1 only).
    fn fat_set(&mut self, cluster: u32, value: u32, copies: usize) {
        for k in 0..copies {
            let start = self.fat_start() + k * self.fat_bytes();
            let n = cluster as usize;
            if self.g.fat_bits == 12 {
                let at = start + n + n / 2;
                let old = u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]]);
                let new = if n % 2 == 1 { (old & 0xF) | ((value as u16) << 4) } else { (old & 0xF000) | value as u16 };
                self.bytes[at..at + 2].copy_from_slice(&new.to_le_bytes());
            } else {
                let at = start + 2 * n;
                self.bytes[at..at + 2].copy_from_slice(&(value as u16).to_le_bytes());
            }
        }
    }

    fn eoc(&self) -> u32 {
        if self.g.fat_bits == 12 {
            0xFFF
        } else {
            0xFFFF
        }
    }

    /// Byte offset of the root entry with this 11-byte short name.
    fn root_entry(&self, name: &[u8; 11]) -> usize {
        (0..self.g.root_entries as usize)
            .map(|i| self.root_start() + 32 * i)
            .find(|&at| &self.bytes[at..at + 11] == name && self.bytes[at + 11] != 0x0F)
            .unwrap_or_else(|| panic!("{} not in the root", String::from_utf8_lossy(name)))
    }

    fn start_of(&self, entry: usize) -> u32 {
        u32::from(u16::from_le_bytes([self.bytes[entry + 26], self.bytes[entry + 27]]))
    }

    fn chain(&self, entry: usize) -> Vec<u32> {
        let mut chain = vec![self.start_of(entry)];
        while chain.len() < 100_000 {
            let next = self.fat_get(*chain.last().unwrap());
            if next < 2 || next > self.g.clusters + 1 {
                break;
            }
            chain.push(next);
        }
        chain
    }

    /// A cluster no chain uses (the last one).
    fn free_cluster(&self) -> u32 {
        let last = self.g.clusters + 1;
        assert_eq!(self.fat_get(last), 0);
        last
    }
}

const FILES: [(&str, usize, u64); 4] =
    [("boot.cfg", 300, 1), ("state.tgz", 20000, 2), ("A Long Name For A File.txt", 1500, 3), ("s.v00", 2600, 4)];

/// The test volumes: FAT16 (4 MiB, 512-byte sectors), FAT12 (1 MiB) and
/// FAT16 on 4Kn (32 MiB); each with files in the root and a directory
/// `state.12345` holding one file, made by `fatfs` and fixed as Linux's
/// mkdir leaves it.
fn base(which: usize) -> &'static Img {
    static BASES: OnceLock<Vec<Img>> = OnceLock::new();
    &BASES.get_or_init(|| {
        [(SectorSize::S512, 4 * MIB), (SectorSize::S512, MIB), (SectorSize::S4096, 32 * MIB)]
            .into_iter()
            .map(|(size, len)| make_base(size, len))
            .collect()
    })[which]
}

fn make_base(size: SectorSize, len: u64) -> Img {
    let ss = size.bytes_u64();
    let sectors = len / ss;
    let mut disk = MemDisk::new(FIRST + sectors + 8, size);
    let g = fat::format(&mut disk, FIRST, sectors, 0x5EED_0003).unwrap();
    {
        let fs = fat::mount(&mut disk, FIRST, sectors, &IMAGE_TIME).unwrap();
        for (name, len, seed) in FILES {
            fs.root_dir().create_file(name).unwrap().write_all(&bytes(len, seed)).unwrap();
        }
        fs.root_dir().create_dir("state.12345").unwrap();
        fs.unmount().unwrap();
    }
    let reader = FatReader::open(&mut disk, FIRST, sectors).unwrap();
    let dir = fatops::find_root_long(&mut disk, &reader, "state.12345").unwrap().unwrap();
    fatops::fix_new_dir(&mut disk, &reader, &dir.short).unwrap();
    {
        let fs = fat::mount(&mut disk, FIRST, sectors, &IMAGE_TIME).unwrap();
        let d = fs.root_dir().open_dir("state.12345").unwrap();
        d.create_file("local.tgz").unwrap().write_all(&bytes(3000, 5)).unwrap();
        drop(d);
        fs.unmount().unwrap();
    }
    let mut bytes = vec![0u8; len as usize];
    disk.read_sectors(FIRST, &mut bytes).unwrap();
    Img { bytes, g, ss }
}

fn fsck_program() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| visorsim_testkit::require_tool!("fsck.fat", "dosfstools")).as_deref()
}

fn fsck_n(img: &Img) -> Option<FsckOutput> {
    let program = fsck_program()?;
    Some(FsckFat::with_program(program).output_of_bytes(&img.bytes).unwrap())
}

fn names(classes: &BTreeSet<FindingClass>) -> BTreeSet<&'static str> {
    classes.iter().map(|c| c.name()).collect()
}

/// Asserts our check agrees with `fsck.fat -n` on `img`; gives our check.
fn agree(img: &Img, what: &str) -> FatCheck {
    let ours = img.check();
    let Some(theirs) = fsck_n(img) else { return ours };
    let report = || {
        let findings: Vec<String> = ours.findings.iter().map(ToString::to_string).collect();
        format!(
            "{what}\nfsck.fat -n (exit {:?}):\n  {}\n  stderr: {}\nours (clean {}):\n  {}",
            theirs.exit_code,
            theirs.lines.join("\n  "),
            theirs.stderr,
            ours.is_clean(),
            findings.join("\n  ")
        )
    };
    assert_eq!(ours.is_clean(), theirs.is_clean(), "verdicts differ: {}", report());
    assert_eq!(names(&ours.classes()), theirs.classes(), "classes differ: {}", report());
    ours
}

fn has(check: &FatCheck, class: FindingClass) -> bool {
    check.classes().contains(&class)
}

/// `fsck.fat -a` on a copy of `img`: the bytes it leaves.
fn fsck_a(img: &Img) -> Option<Vec<u8>> {
    let program = fsck_program()?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "fatcheck-{}-{}.img",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, &img.bytes).unwrap();
    let out = Command::new(program).arg("-a").arg(&path).env("LC_ALL", "C.UTF-8").output().unwrap();
    let left = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(out.status.code().is_some(), "fsck.fat -a was killed");
    Some(left)
}

/// Asserts our repair leaves the bytes `fsck.fat -a` leaves.
fn repair_agrees(img: &Img, what: &str) {
    let mut disk = img.disk();
    let report = repair_volume(&mut disk, FIRST, img.sectors()).unwrap();
    let ours = Img::of_disk(&mut disk, img);
    assert_eq!(report.changed, !report.before.is_clean() && !report.before.gave_up, "{what}");
    if report.changed {
        // What one repair pass leaves, as fsck.fat -n sees it.
        agree(&ours, &format!("{what}, after our repair"));
    }
    let Some(theirs) = fsck_a(img) else { return };
    if ours.bytes != theirs {
        let first = ours.bytes.iter().zip(&theirs).position(|(a, b)| a != b).unwrap();
        panic!(
            "{what}: our repair differs from fsck.fat -a from byte {first} (ours {:02x?}, theirs {:02x?})\nfindings: {:#?}",
            &ours.bytes[first..(first + 16).min(ours.bytes.len())],
            &theirs[first..(first + 16).min(theirs.len())],
            report.before.findings
        );
    }
}

/// A corruption: a name and what it does to a volume.
type Corruption = (&'static str, fn(&mut Img), &'static [FindingClass]);

const STATE: &[u8; 11] = b"STATE   TGZ";
const BOOT: &[u8; 11] = b"BOOT    CFG";
const DIR: &[u8; 11] = b"STATE~1 123";

fn corruptions() -> Vec<Corruption> {
    use FindingClass as C;
    vec![
        ("boot sector dirty flag", |i| i.bytes[37] |= 1, &[C::DirtyBit]),
        (
            "FAT[1] clean bit clear",
            |i| {
                let v = i.fat_get(1) & !0x8000 & i.eoc();
                i.fat_set(1, v, 2)
            },
            &[],
        ),
        (
            "FAT #2 differs",
            |i| {
                let c = i.free_cluster();
                let at = i.fat_start() + i.fat_bytes() + i.entry_offset(c - 1);
                i.bytes[at] ^= 0x5A
            },
            &[C::FatCopiesDiffer],
        ),
        (
            "FAT #1 media byte",
            |i| {
                let at = i.fat_start();
                i.bytes[at + 1] = 0
            },
            &[C::FatCopiesDiffer],
        ),
        (
            "both media bytes",
            |i| {
                let at = i.fat_start();
                i.bytes[at + 1] = 0;
                let second = at + i.fat_bytes() + 1;
                i.bytes[second] = 0
            },
            &[C::FatMedia],
        ),
        (
            "entry out of range",
            |i| {
                let e = i.root_entry(STATE);
                let c = i.chain(e)[2];
                let v = i.g.clusters + 2;
                i.fat_set(c, v, 2)
            },
            &[C::ChainOutOfRange],
        ),
        (
            "entry 1",
            |i| {
                let e = i.root_entry(STATE);
                let c = i.chain(e)[1];
                i.fat_set(c, 1, 2)
            },
            &[C::ChainOutOfRange],
        ),
        (
            "loop",
            |i| {
                let e = i.root_entry(STATE);
                let ch = i.chain(e);
                i.fat_set(*ch.last().unwrap(), ch[1], 2)
            },
            &[C::ChainLoop],
        ),
        (
            "ends early",
            |i| {
                let e = i.root_entry(STATE);
                let c = i.chain(e)[1];
                let v = i.eoc();
                i.fat_set(c, v, 2)
            },
            &[C::ChainEndsEarly, C::LostClusters],
        ),
        (
            "free in chain",
            |i| {
                let e = i.root_entry(STATE);
                let c = i.chain(e)[2];
                i.fat_set(c, 0, 2)
            },
            &[C::FreeInChain],
        ),
        (
            "bad cluster in chain",
            |i| {
                let e = i.root_entry(STATE);
                let c = i.chain(e)[2];
                let v = i.eoc() - 8;
                i.fat_set(c, v, 2)
            },
            &[C::BadCluster],
        ),
        (
            "cross-link",
            |i| {
                let s = i.root_entry(STATE);
                let c = i.chain(s)[3];
                let b = i.root_entry(BOOT);
                i.bytes[b + 26..b + 28].copy_from_slice(&(c as u16).to_le_bytes())
            },
            &[C::CrossLink],
        ),
        (
            "lost cluster",
            |i| {
                let c = i.free_cluster();
                let v = i.eoc();
                i.fat_set(c, v, 2)
            },
            &[C::LostClusters],
        ),
        (
            "size smaller than chain",
            |i| {
                let e = i.root_entry(STATE);
                i.bytes[e + 28..e + 32].copy_from_slice(&100u32.to_le_bytes())
            },
            &[C::SizeMismatch],
        ),
        (
            "size larger than chain",
            |i| {
                let e = i.root_entry(STATE);
                i.bytes[e + 28..e + 32].copy_from_slice(&900_000u32.to_le_bytes())
            },
            &[C::ChainEndsEarly],
        ),
        (
            "start past the last cluster",
            |i| {
                let e = i.root_entry(BOOT);
                let v = i.g.clusters as u16 + 50;
                i.bytes[e + 26..e + 28].copy_from_slice(&v.to_le_bytes())
            },
            &[C::ChainOutOfRange],
        ),
        (
            "bad short name",
            |i| {
                let e = i.root_entry(BOOT);
                i.bytes[e + 2] = b'?'
            },
            &[C::BadDirEntry],
        ),
        (
            "duplicate name",
            |i| {
                let e = i.root_entry(BOOT);
                let s = i.root_entry(b"S       V00");
                let name = i.bytes[e..e + 11].to_vec();
                i.bytes[s..s + 11].copy_from_slice(&name)
            },
            &[C::DuplicateEntry],
        ),
        (
            "orphaned long name",
            |i| {
                let e = i.root_entry(b"ALONGN~1TXT");
                i.bytes[e] = 0xE5
            },
            &[C::BadLongName],
        ),
        (
            "long-name slot checksum",
            |i| {
                let e = i.root_entry(b"ALONGN~1TXT");
                i.bytes[e - 32 + 13] ^= 1
            },
            &[C::BadLongName],
        ),
        (
            "long name for a renamed alias",
            |i| {
                let e = i.root_entry(b"ALONGN~1TXT");
                i.bytes[e + 3] = b'X'
            },
            &[C::BadLongName],
        ),
        (
            "long-name slot start field",
            |i| {
                let e = i.root_entry(b"ALONGN~1TXT");
                i.bytes[e - 32 + 26] = 7
            },
            &[C::BadLongName],
        ),
        (
            "directory with a size",
            |i| {
                let e = i.root_entry(DIR);
                i.bytes[e + 28] = 1
            },
            &[C::BadDirEntry],
        ),
        (
            "'.' pointing elsewhere",
            |i| {
                let e = i.root_entry(DIR);
                let at = i.cluster_start(i.start_of(e));
                i.bytes[at + 26] ^= 1
            },
            &[C::BadDotEntries],
        ),
        (
            "'..' free",
            |i| {
                let e = i.root_entry(DIR);
                let at = i.cluster_start(i.start_of(e));
                i.bytes[at + 32] = 0xE5
            },
            &[C::BadDotEntries],
        ),
        (
            "'.' overwritten",
            |i| {
                let e = i.root_entry(DIR);
                let at = i.cluster_start(i.start_of(e));
                i.bytes[at..at + 11].copy_from_slice(b"JUNK    TXT")
            },
            &[C::BadDotEntries],
        ),
        (
            "subdirectory file cross-linked with a root file",
            |i| {
                let s = i.root_entry(STATE);
                let c = i.chain(s)[0];
                let d = i.root_entry(DIR);
                let at = i.cluster_start(i.start_of(d)) + 64;
                let at = (at..at + 32 * 8).step_by(32).find(|&a| &i.bytes[a..a + 11] == b"LOCAL   TGZ").unwrap();
                i.bytes[at + 26..at + 28].copy_from_slice(&(c as u16).to_le_bytes())
            },
            &[C::CrossLink],
        ),
        (
            "label only in the root directory",
            |i| {
                let at = (0..512).map(|k| i.root_start() + 32 * k).find(|&a| i.bytes[a] == 0).unwrap();
                i.bytes[at..at + 11].copy_from_slice(b"VISORSIM   ");
                i.bytes[at + 11] = 0x08
            },
            &[C::VolumeLabel],
        ),
        ("no extended boot signature", |i| i.bytes[38] = 0, &[C::VolumeLabel]),
        ("sector size zero", |i| i.bytes[11..13].fill(0), &[C::BootSector]),
        ("three FATs", |i| i.bytes[16] = 3, &[C::BootSector]),
        (
            "total past the partition",
            |i| {
                i.bytes[19..21].fill(0);
                i.bytes[32..36].copy_from_slice(&u32::MAX.to_le_bytes())
            },
            &[C::BootSector],
        ),
        ("odd root entry count", |i| i.bytes[17] = 7, &[C::BootSector]),
    ]
}

#[test]
fn the_base_volumes_are_clean() {
    for which in 0..3 {
        let img = base(which);
        let check = agree(img, "base");
        assert!(check.is_clean() && check.findings.is_empty(), "{check:?}");
        assert_eq!(check.kind, if img.g.fat_bits == 12 { FatKind::Fat12 } else { FatKind::Fat16 });
        assert_eq!(check.clusters, img.g.clusters);
        assert_eq!(check.files, 6);
    }
}

#[test]
fn each_corruption_is_found_as_fsck_fat_finds_it() {
    for which in 0..3 {
        for (what, corrupt, expected) in corruptions() {
            let mut img = base(which).clone();
            corrupt(&mut img);
            let what = format!("{what} (volume {which})");
            let check = agree(&img, &what);
            for &class in expected {
                assert!(has(&check, class), "{what}: no {class} in {:#?}", check.findings);
            }
            for f in &check.findings {
                assert!(f.offset >= FIRST * img.ss && f.offset < (FIRST + img.sectors()) * img.ss, "{what}: {f}");
            }
        }
    }
}

#[test]
fn the_fat16_dirty_bit_of_fat1_counts_and_fat12_has_none() {
    let mut img = base(0).clone();
    let v = img.fat_get(1) & !0x8000;
    img.fat_set(1, v, 2);
    assert!(has(&agree(&img, "FAT16 FAT[1]"), FindingClass::DirtyBit));
    let mut img = base(1).clone();
    let v = img.fat_get(1) & !0x800;
    img.fat_set(1, v, 2);
    assert!(agree(&img, "FAT12 FAT[1]").is_clean());
}

#[test]
fn repairs_leave_what_fsck_fat_a_leaves() {
    for which in 0..3 {
        for (what, corrupt, _) in corruptions() {
            let mut img = base(which).clone();
            corrupt(&mut img);
            repair_agrees(&img, &format!("{what} (volume {which})"));
        }
    }
}

#[test]
fn a_repaired_volume_checks_clean_and_keeps_the_intact_files() {
    let mut img = base(0).clone();
    let s = img.root_entry(STATE);
    let c = img.chain(s)[3];
    let b = img.root_entry(BOOT);
    img.bytes[b + 26..b + 28].copy_from_slice(&(c as u16).to_le_bytes());
    let mut disk = img.disk();
    let report = repair_volume(&mut disk, FIRST, img.sectors()).unwrap();
    assert!(report.changed && report.sectors_written > 0);
    let after = check_volume(&mut disk, FIRST, img.sectors());
    assert!(after.is_clean(), "{after:?}");
    // fsck.fat keeps the entry checked first (boot.cfg, now starting inside
    // state.tgz's chain) and truncates the later one where they meet.
    let fs = fat::mount(&mut disk, FIRST, img.sectors(), &IMAGE_TIME).unwrap();
    let read = |name: &str| {
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut fs.root_dir().open_file(name).unwrap(), &mut data).unwrap();
        data
    };
    let cluster = img.g.cluster_bytes() as usize;
    assert_eq!(read("state.tgz"), bytes(20000, 2)[..3 * cluster]);
    assert_eq!(read("boot.cfg"), bytes(20000, 2)[3 * cluster..3 * cluster + 300]);
    assert_eq!(read("s.v00"), bytes(2600, 4));
    assert_eq!(read("A Long Name For A File.txt"), bytes(1500, 3));
    drop(fs);
    // A clean volume is left alone.
    let mut disk = base(0).disk();
    let report = repair_volume(&mut disk, FIRST, base(0).sectors()).unwrap();
    assert!(!report.changed && report.sectors_written == 0);
}

/// Crash states of `mv -f` (rename over an existing file) and `rm`, as the
/// Linux-order operations write them, on the FAT16 volume.
#[test]
fn crash_states_of_rename_and_remove_agree_with_fsck_fat() {
    let img = base(0);
    let mut prepared = img.disk();
    {
        let fs = fat::mount(&mut prepared, FIRST, img.sectors(), &IMAGE_TIME).unwrap();
        fs.root_dir().create_file("state.tgz.4242").unwrap().write_all(&bytes(7000, 9)).unwrap();
        fs.unmount().unwrap();
    }
    let space = CrashSpace { reorder: 2, max_tears: 2, max_states_per_cut: 16, sector_atomic: false };
    let mut seen = 0;
    let mut damaged = BTreeSet::new();
    for op in ["rename", "remove"] {
        let mut disk = prepared.clone();
        let reader = FatReader::open(&mut disk, FIRST, img.sectors()).unwrap();
        let mut log = WriteLog::new(&mut disk);
        match op {
            "rename" => fatops::rename_replace(&mut log, &reader, "state.tgz.4242", "state.tgz").unwrap(),
            _ => assert!(fatops::remove_file(&mut log, &reader, "state.tgz").unwrap()),
        }
        let events = log.take_events();
        for state in crash_states(&events, img.ss as usize, &space) {
            let mut crashed = prepared.clone();
            apply_crash_state(&mut crashed, &events, &state).unwrap();
            let crashed = Img::of_disk(&mut crashed, img);
            let check = agree(&crashed, &format!("{op} crash state {}: {}", state.id, state.description));
            damaged.extend(check.classes());
            seen += 1;
        }
    }
    assert!(seen > 20, "{seen} crash states");
    assert!(!damaged.is_empty(), "no crash state was damaged");
}

fn corrupt_strategy() -> impl Strategy<Value = (usize, Vec<(u8, u32, u8)>)> {
    (0usize..3, prop::collection::vec((0u8..5, any::<u32>(), any::<u8>()), 1..6))
}

/// Applies random patches: (region, position, byte) with regions FAT #1's
/// used part, FAT #2, the root directory, the subdirectory's cluster and
/// a few boot sector bytes.
fn apply_patches(img: &mut Img, patches: &[(u8, u32, u8)]) {
    let used_fat = ((img.g.clusters as usize + 2) * img.g.fat_bits as usize).div_ceil(8).min(64);
    let dir = img.root_entry(DIR);
    let dir_at = img.cluster_start(img.start_of(dir));
    for &(region, pos, byte) in patches {
        let at = match region {
            0 => img.fat_start() + pos as usize % used_fat,
            1 => img.fat_start() + img.fat_bytes() + pos as usize % used_fat,
            2 => img.root_start() + pos as usize % (32 * 8),
            3 => dir_at + pos as usize % (32 * 6),
            _ => [13, 16, 17, 21, 37, 38, 43][pos as usize % 7],
        };
        img.bytes[at] = byte;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_0FA7), ..ProptestConfig::default() })]

    #[test]
    fn random_corruptions_agree_with_fsck_fat((which, patches) in corrupt_strategy()) {
        let mut img = base(which).clone();
        apply_patches(&mut img, &patches);
        agree(&img, &format!("patches {patches:?} on volume {which}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_0FA8), ..ProptestConfig::default() })]

    #[test]
    fn random_corruptions_repair_as_fsck_fat_repairs((which, patches) in corrupt_strategy()) {
        let mut img = base(which).clone();
        apply_patches(&mut img, &patches);
        repair_agrees(&img, &format!("patches {patches:?} on volume {which}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_0FA9), ..ProptestConfig::default() })]

    /// Garbage anywhere in the metadata: no panic, bounded findings, and a
    /// repair that does not panic either.
    #[test]
    fn arbitrary_metadata_bytes_never_panic(
        which in 0usize..3,
        boot in prop::collection::vec(any::<u8>(), 0..64),
        fat in prop::collection::vec(any::<u8>(), 0..2048),
        root in prop::collection::vec(any::<u8>(), 0..2048),
        at in any::<u16>(),
    ) {
        let mut img = base(which).clone();
        let n = boot.len();
        img.bytes[11..11 + n.min(51)].copy_from_slice(&boot[..n.min(51)]);
        let f = img.fat_start() + at as usize % 64;
        img.bytes[f..f + fat.len()].copy_from_slice(&fat);
        let r = img.root_start();
        img.bytes[r..r + root.len()].copy_from_slice(&root);
        let check = img.check();
        prop_assert!(check.findings.len() <= visorsim_media::fat::check::MAX_FINDINGS);
        let mut disk = img.disk();
        let _ = repair_volume(&mut disk, FIRST, img.sectors()).unwrap();
    }
}

#[test]
fn finding_class_names_round_trip() {
    for class in FindingClass::ALL {
        assert_eq!(FindingClass::from_name(class.name()), Some(class));
    }
    assert_eq!(FindingClass::CrossLink.name(), "cross_link");
    assert_eq!(FindingClass::from_name("no_such_class"), None);
    assert_eq!(serde_json::to_string(&FindingClass::FreeInChain).unwrap(), "\"free_in_chain\"");
    let mut img = base(0).clone();
    img.bytes[37] |= 1;
    let json = serde_json::to_value(img.check()).unwrap();
    assert_eq!(json["kind"], "fat16");
    assert_eq!(json["findings"][0]["class"], "dirty_bit");
    assert_eq!(json["findings"][0]["severity"], "damage");
    assert_eq!(json["findings"][0]["offset"], FIRST * 512 + 37);
}
