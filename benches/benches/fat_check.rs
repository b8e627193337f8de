//! The in-process FAT checker against the external `fsck.fat -n`, side by
//! side on the same volume: a 250 MB bank (511,968 sectors, FAT16 with
//! 63,929 clusters of 4 KiB, ESXi's bank size) on a `MemDisk`, holding the
//! files of a bank (boot.cfg, a few large modules, state.tgz, many small
//! ones) written by `fatfs`.
//!
//! ```text
//!   check/in-process/clean     fat::check_volume on the clean bank
//!   check/in-process/damaged   the same with a cross-link and lost clusters
//!   check/fsck.fat/clean       fsck.fat -n via FsckFat::check_extents (the
//!                              sparse volume written to a temporary file)
//! ```
//!
//! `cargo bench -p visorsim-benches --bench fat_check`. The fsck.fat group
//! is skipped (with a message) when dosfstools is not installed.

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use visorsim_disk::{BlockDevice, MemDisk, SectorSize};
use visorsim_media::fat::{self, check_volume, IMAGE_TIME};
use visorsim_tools::FsckFat;

const FIRST: u64 = 2048;
const SECTORS: u64 = 511_968;

fn bank() -> MemDisk {
    let mut disk = MemDisk::new(FIRST + SECTORS, SectorSize::S512);
    fat::format(&mut disk, FIRST, SECTORS, 0xBA4C_0005).expect("format");
    let fs = fat::mount(&mut disk, FIRST, SECTORS, &IMAGE_TIME).expect("mount");
    let root = fs.root_dir();
    let write = |name: &str, len: usize| {
        let data: Vec<u8> = (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3]).collect();
        root.create_file(name).expect("create").write_all(&data).expect("write");
    };
    write("boot.cfg", 1500);
    write("state.tgz", 40_000);
    write("s.v00", 60 << 20);
    write("k.b00", 4 << 20);
    for i in 0..120 {
        write(&format!("mod{i:03}.v00"), 1000 + i * 7000);
    }
    drop(root);
    fs.unmount().expect("unmount");
    disk
}

/// The bank with the damage a torn `mv -f` leaves: boot.cfg's start moved
/// into s.v00's chain (a cross-link) and one lost cluster.
fn damaged(clean: &MemDisk) -> MemDisk {
    let mut disk = clean.fork();
    let report = check_volume(&mut disk, FIRST, SECTORS);
    assert!(report.is_clean(), "{report:?}");
    let mut root = vec![0u8; 512];
    // Root directory of the formatter's geometry: after 4 reserved sectors and two FATs.
    let g = fat::Geometry::fat16(SECTORS, 512).expect("geometry");
    let root_lba = FIRST + u64::from(g.reserved_sectors + 2 * g.fat_sectors);
    disk.read_sectors(root_lba, &mut root).expect("read");
    let at = (0..16).map(|i| i * 32).find(|&a| &root[a..a + 11] == b"BOOT    CFG").expect("boot.cfg");
    root[at + 26..at + 28].copy_from_slice(&300u16.to_le_bytes());
    disk.write_sectors(root_lba, &root).expect("write");
    let damage = check_volume(&mut disk, FIRST, SECTORS);
    assert!(!damage.is_clean());
    disk
}

fn volume_bytes(disk: &MemDisk) -> Vec<(u64, Vec<u8>)> {
    let base = FIRST * 512;
    let end = (FIRST + SECTORS) * 512;
    disk.stored_chunks()
        .filter_map(|(offset, bytes)| {
            let (start, stop) = (offset.max(base), (offset + bytes.len() as u64).min(end));
            (start < stop).then(|| (start - base, bytes[(start - offset) as usize..(stop - offset) as usize].to_vec()))
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let clean = bank();
    let broken = damaged(&clean);
    let mut group = c.benchmark_group("check");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    let fsck = visorsim_testkit::find_program("fsck.fat").map(FsckFat::with_program);
    let extents = volume_bytes(&clean);
    for round in 0..2 {
        // A B A B: each peer twice, interleaved.
        group.bench_function(format!("in-process/clean/{round}"), |b| {
            let mut disk = clean.fork();
            b.iter(|| black_box(check_volume(&mut disk, FIRST, SECTORS)))
        });
        group.bench_function(format!("in-process/damaged/{round}"), |b| {
            let mut disk = broken.fork();
            b.iter(|| black_box(check_volume(&mut disk, FIRST, SECTORS)))
        });
        if let Some(fsck) = &fsck {
            group.bench_function(format!("fsck.fat/clean/{round}"), |b| {
                b.iter(|| {
                    let report = fsck
                        .check_extents(SECTORS * 512, extents.iter().map(|(o, d)| (*o, d.as_slice())))
                        .expect("fsck.fat");
                    assert!(report.is_clean());
                })
            });
        } else if round == 0 {
            eprintln!("skipping check/fsck.fat: fsck.fat is not installed (Debian package dosfstools)");
        }
    }
    group.finish();
}

criterion_group!(fat_check, benches);
criterion_main!(fat_check);
