//! One conformance suite for [`BlockDevice`], run on every device.
//!
//! Each `check_*` helper takes `&mut dyn BlockDevice` and states one part of
//! the contract in `src/lib.rs`. Every helper runs on every device the crate
//! offers, at both sector sizes, so the devices cannot drift apart:
//! [`MemDisk`], [`FileDisk`] on a temporary file, [`Observed`] and
//! [`WriteLog`] over a `MemDisk`, [`Overlay`] over a `MemDisk` and over a
//! read-only `FileDisk`, and [`Faulty`] with every fault off over a
//! `MemDisk`, write-through and with a volatile cache. A failure names the
//! device and sector size.

use std::cell::Cell;
use std::fs;
use std::rc::Rc;

use tempfile::TempDir;
use visorsim_disk::{
    BlockDevice, CacheModel, DiskErrorKind, FaultPlan, Faulty, FileDisk, IoEvent, MemDisk, Observed, Overlay,
    SectorSize, WriteLog,
};

use crate::util::{assert_error, data_at, read, SECTORS, SIZES};

/// A device under test, with whatever it needs to stay alive.
struct Fixture {
    name: String,
    dev: Box<dyn BlockDevice>,
    _dir: Option<TempDir>,
}

impl Fixture {
    fn new(name: &str, sector_size: SectorSize, dev: impl BlockDevice + 'static) -> Fixture {
        Fixture { name: format!("{name}/{}", sector_size.bytes()), dev: Box::new(dev), _dir: None }
    }
}

fn mem(sector_size: SectorSize) -> Fixture {
    Fixture::new("MemDisk", sector_size, MemDisk::new(SECTORS, sector_size))
}

fn file(sector_size: SectorSize) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = FileDisk::create(dir.path().join("disk.img"), SECTORS, sector_size).expect("create image");
    Fixture { _dir: Some(dir), ..Fixture::new("FileDisk", sector_size, disk) }
}

fn observed(sector_size: SectorSize) -> Fixture {
    let seen = Rc::new(Cell::new(0usize));
    let hook = move |_: IoEvent<'_>| seen.set(seen.get() + 1);
    Fixture::new("Observed(MemDisk)", sector_size, Observed::new(MemDisk::new(SECTORS, sector_size), hook))
}

fn write_log(sector_size: SectorSize) -> Fixture {
    Fixture::new("WriteLog(MemDisk)", sector_size, WriteLog::new(MemDisk::new(SECTORS, sector_size)))
}

fn overlay(sector_size: SectorSize) -> Fixture {
    Fixture::new("Overlay(MemDisk)", sector_size, Overlay::new(MemDisk::new(SECTORS, sector_size)))
}

/// What `--dry-run` uses: an overlay over an image opened read-only.
fn overlay_read_only_file(sector_size: SectorSize) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("base.img");
    drop(FileDisk::create(&path, SECTORS, sector_size).expect("create image"));
    let base = FileDisk::open_read_only(&path, sector_size).expect("open image read-only");
    Fixture { _dir: Some(dir), ..Fixture::new("Overlay(read-only FileDisk)", sector_size, Overlay::new(base)) }
}

fn faulty(sector_size: SectorSize) -> Fixture {
    let dev = Faulty::new(MemDisk::new(SECTORS, sector_size), FaultPlan::new(1));
    Fixture::new("Faulty(MemDisk)", sector_size, dev)
}

fn faulty_cached(sector_size: SectorSize) -> Fixture {
    let cache = CacheModel { max_reorder: 4, drop_probability_percent: 100 };
    let dev =
        Faulty::new(MemDisk::new(SECTORS, sector_size), FaultPlan { volatile_cache: Some(cache), ..FaultPlan::new(2) });
    Fixture::new("Faulty(MemDisk, volatile cache)", sector_size, dev)
}

/// Runs `check` on a fresh device of every backend at every sector size.
fn on_every_backend(check: fn(&mut dyn BlockDevice, &str)) {
    let makers: [fn(SectorSize) -> Fixture; 8] =
        [mem, file, observed, write_log, overlay, overlay_read_only_file, faulty, faulty_cached];
    for make in makers {
        for size in SIZES {
            let mut fixture = make(size);
            assert_eq!(fixture.dev.sector_size(), size, "{}", fixture.name);
            assert_eq!(fixture.dev.sector_count(), SECTORS, "{}", fixture.name);
            assert_eq!(fixture.dev.size_bytes(), SECTORS * size.bytes_u64(), "{}", fixture.name);
            check(fixture.dev.as_mut(), &fixture.name);
        }
    }
}

/// Recognisable non-zero content for `sectors` sectors starting at `lba`.
fn pattern(dev: &dyn BlockDevice, lba: u64, sectors: u64, salt: u8) -> Vec<u8> {
    let ss = dev.sector_size().bytes_u64();
    data_at(lba * ss, (sectors * ss) as usize, salt)
}

fn check_unwritten_reads_zero(dev: &mut dyn BlockDevice, name: &str) {
    let all = read(dev, 0, SECTORS, name);
    assert!(all.iter().all(|&b| b == 0), "{name}: fresh device is not all zeros");
    for lba in [0, 1, 7, 8, SECTORS - 1] {
        assert!(read(dev, lba, 1, name).iter().all(|&b| b == 0), "{name}: LBA {lba} not zero");
    }
    // Writing one sector leaves its neighbours zero.
    let data = pattern(dev, 9, 1, 3);
    dev.write_sectors(9, &data).unwrap();
    assert!(read(dev, 8, 1, name).iter().all(|&b| b == 0), "{name}: LBA 8 changed by a write to 9");
    assert!(read(dev, 10, 1, name).iter().all(|&b| b == 0), "{name}: LBA 10 changed by a write to 9");
}

fn check_writes_read_back(dev: &mut dyn BlockDevice, name: &str) {
    // (lba, sectors): first, last, a multi-sector run crossing 4 KiB chunks,
    // the whole device.
    let cases = [(0, 1), (SECTORS - 1, 1), (5, 11), (SECTORS - 3, 3), (0, SECTORS)];
    for (salt, &(lba, sectors)) in cases.iter().enumerate() {
        let data = pattern(dev, lba, sectors, salt as u8);
        dev.write_sectors(lba, &data).unwrap_or_else(|e| panic!("{name}: write {sectors} at {lba}: {e}"));
        assert_eq!(read(dev, lba, sectors, name), data, "{name}: {sectors} sector(s) at LBA {lba}");
        // Visible sector by sector too, not only as the same request.
        for i in 0..sectors {
            let ss = dev.sector_size().len();
            let one = read(dev, lba + i, 1, name);
            let at = (i as usize) * ss;
            assert_eq!(one, data[at..at + ss], "{name}: LBA {} after writing {sectors} at {lba}", lba + i);
        }
    }
    // Overwrite with zeros: reads zeros again.
    let zeros = vec![0u8; dev.sector_size().len() * 16];
    dev.write_sectors(0, &zeros).unwrap();
    assert_eq!(read(dev, 0, 16, name), zeros, "{name}: zeros over data");
    // A later write wins over an earlier one.
    let a = pattern(dev, 20, 2, 40);
    let b = pattern(dev, 20, 2, 41);
    dev.write_sectors(20, &a).unwrap();
    dev.write_sectors(20, &b).unwrap();
    assert_eq!(read(dev, 20, 2, name), b, "{name}: last write wins");
    dev.flush().unwrap_or_else(|e| panic!("{name}: flush: {e}"));
    assert_eq!(read(dev, 20, 2, name), b, "{name}: data survives flush");
}

fn check_out_of_range(dev: &mut dyn BlockDevice, name: &str) {
    let ss = dev.sector_size().bytes_u64();
    let count = dev.sector_count();
    // Mark the last sector so a refused write that still touched it shows.
    let last = pattern(dev, count - 1, 1, 7);
    dev.write_sectors(count - 1, &last).unwrap();

    // (lba, sectors) that reach past the end, including LBA arithmetic that
    // would overflow `lba + sectors` or `lba * sector_size`.
    let cases = [
        (count, 1),
        (count - 1, 2),
        (count + 1, 1),
        (0, count + 1),
        (u64::MAX, 1),
        (u64::MAX - 1, 2),
        (u64::MAX - 1, 1),
        (u64::MAX / ss, 1),
        (u64::MAX / ss + 1, 1),
        (u64::MAX, 0),
        (count + 1, 0),
    ];
    for (lba, sectors) in cases {
        let len = (sectors * ss) as usize;
        let mut buf = vec![0u8; len];
        let what = format!("{name}: read {sectors} at LBA {lba}");
        assert_error(dev.read_sectors(lba, &mut buf), DiskErrorKind::OutOfRange, lba, &what);
        let data = vec![0x5Au8; len];
        let what = format!("{name}: write {sectors} at LBA {lba}");
        assert_error(dev.write_sectors(lba, &data), DiskErrorKind::OutOfRange, lba, &what);
    }
    assert_eq!(read(dev, count - 1, 1, name), last, "{name}: refused writes changed the last sector");
    // Empty requests inside the device (up to and including its end) are fine.
    for lba in [0, count - 1, count] {
        dev.read_sectors(lba, &mut []).unwrap_or_else(|e| panic!("{name}: empty read at {lba}: {e}"));
        dev.write_sectors(lba, &[]).unwrap_or_else(|e| panic!("{name}: empty write at {lba}: {e}"));
    }
}

fn check_misaligned(dev: &mut dyn BlockDevice, name: &str) {
    let ss = dev.sector_size().len();
    let first = pattern(dev, 0, 2, 9);
    dev.write_sectors(0, &first).unwrap();
    // A 512-byte buffer is misaligned on a 4Kn device.
    let mut lens = vec![1, ss - 1, ss + 1, 2 * ss - 1, ss / 2];
    if ss == 4096 {
        lens.push(512);
    }
    for len in lens {
        for lba in [0, 1, SECTORS - 1] {
            let mut buf = vec![0u8; len];
            let what = format!("{name}: read {len} bytes at LBA {lba}");
            assert_error(dev.read_sectors(lba, &mut buf), DiskErrorKind::Misaligned, lba, &what);
            let what = format!("{name}: write {len} bytes at LBA {lba}");
            assert_error(dev.write_sectors(lba, &vec![0xA5; len]), DiskErrorKind::Misaligned, lba, &what);
        }
        // Misaligned and out of range at once: an error naming the LBA
        // either way, never a panic.
        for lba in [u64::MAX, SECTORS] {
            let err = dev.write_sectors(lba, &vec![0xA5; len]).expect_err("misaligned out-of-range write");
            assert!(matches!(err.kind(), DiskErrorKind::Misaligned | DiskErrorKind::OutOfRange), "{name}: {err}");
            assert_eq!(err.lba(), lba, "{name}: {err}");
        }
    }
    assert_eq!(read(dev, 0, 2, name), first, "{name}: refused writes changed data");
}

fn check_flush(dev: &mut dyn BlockDevice, name: &str) {
    dev.flush().unwrap_or_else(|e| panic!("{name}: flush of an idle device: {e}"));
    let data = pattern(dev, 3, 4, 11);
    dev.write_sectors(3, &data).unwrap();
    dev.flush().unwrap_or_else(|e| panic!("{name}: flush: {e}"));
    dev.flush().unwrap_or_else(|e| panic!("{name}: second flush: {e}"));
    assert_eq!(read(dev, 3, 4, name), data, "{name}: data after flush");
}

#[test]
fn unwritten_sectors_read_zero() {
    on_every_backend(check_unwritten_reads_zero);
}

#[test]
fn writes_read_back() {
    on_every_backend(check_writes_read_back);
}

#[test]
fn out_of_range_is_an_error_naming_the_lba() {
    on_every_backend(check_out_of_range);
}

#[test]
fn misaligned_is_an_error_naming_the_lba() {
    on_every_backend(check_misaligned);
}

#[test]
fn flush_keeps_data() {
    on_every_backend(check_flush);
}

#[test]
fn error_source_and_io_conversion() {
    let mut dev = MemDisk::new(SECTORS, SectorSize::S512);
    let err = dev.read_sectors(SECTORS, &mut [0u8; 512]).unwrap_err();
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::UnexpectedEof);
    assert!(io.to_string().contains(&format!("LBA {SECTORS}")), "{io}");
    let err = dev.read_sectors(0, &mut [0u8; 100]).unwrap_err();
    assert_eq!(std::io::Error::from(err).kind(), std::io::ErrorKind::InvalidInput);
}

/// A device so large that `lba * sector_size` overflows `u64` near its end
/// must still answer errors, not panic, and address its last sectors.
#[test]
fn huge_memdisk_does_not_overflow() {
    for size in SIZES {
        let mut dev = MemDisk::new(u64::MAX, size);
        let ss = size.bytes_u64();
        let count = dev.sector_count();
        assert!(count <= u64::MAX / ss, "{}: {count} sectors do not fit in u64 bytes", size.bytes());
        let data = vec![0x42u8; size.len()];
        dev.write_sectors(count - 1, &data).unwrap();
        let mut back = vec![0u8; size.len()];
        dev.read_sectors(count - 1, &mut back).unwrap();
        assert_eq!(back, data);
        assert_error(dev.read_sectors(count, &mut back), DiskErrorKind::OutOfRange, count, "read at end");
        assert_error(
            dev.write_sectors(u64::MAX - 1, &data),
            DiskErrorKind::OutOfRange,
            u64::MAX - 1,
            "write near u64::MAX",
        );
        assert_eq!(dev.resident_bytes(), 4096);
    }
}

/// A read-only `FileDisk` refuses every in-range write with `ReadOnly`
/// naming the LBA, and the file's bytes stay exactly as they were.
#[test]
fn read_only_file_disk_refuses_writes() {
    for size in SIZES {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro.img");
        let ss = size.bytes_u64();
        let original: Vec<u8> = (0..SECTORS * ss).map(|i| (i % 253) as u8).collect();
        fs::write(&path, &original).unwrap();

        let mut dev = FileDisk::open_read_only(&path, size).unwrap();
        let name = format!("read-only FileDisk/{}", size.bytes());
        assert_eq!(dev.sector_count(), SECTORS);
        assert_eq!(read(&mut dev, 0, SECTORS, &name), original, "{name}: reads the file");
        for (lba, sectors) in [(0, 1), (SECTORS - 1, 1), (3, 5), (0, SECTORS)] {
            let data = vec![0xFFu8; (sectors * ss) as usize];
            let what = format!("{name}: write {sectors} at LBA {lba}");
            assert_error(dev.write_sectors(lba, &data), DiskErrorKind::ReadOnly, lba, &what);
        }
        // Range checks still come first: an out-of-range write is OutOfRange.
        assert_error(dev.write_sectors(SECTORS, &vec![0; size.len()]), DiskErrorKind::OutOfRange, SECTORS, &name);
        dev.flush().unwrap();
        drop(dev);
        assert_eq!(fs::read(&path).unwrap(), original, "{name}: file bytes changed");
    }
}

/// An image whose length is not a whole number of sectors: the partial tail
/// is not addressable and reading it is an error, not a short read.
#[test]
fn file_disk_with_partial_last_sector() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.img");
    fs::write(&path, vec![7u8; 3 * 512 + 100]).unwrap();
    let mut dev = FileDisk::open_read_only(&path, SectorSize::S512).unwrap();
    assert_eq!(dev.sector_count(), 3);
    assert_eq!(dev.trailing_bytes(), 100);
    let mut buf = [0u8; 512];
    dev.read_sectors(2, &mut buf).unwrap();
    assert_eq!(buf, [7u8; 512]);
    assert_error(dev.read_sectors(3, &mut buf), DiskErrorKind::OutOfRange, 3, "partial sector");

    let mut dev = FileDisk::open_read_only(&path, SectorSize::S4096).unwrap();
    assert_eq!(dev.sector_count(), 0);
    assert_eq!(dev.trailing_bytes(), 3 * 512 + 100);
    let mut buf = [0u8; 4096];
    assert_error(dev.read_sectors(0, &mut buf), DiskErrorKind::OutOfRange, 0, "4Kn view of a short file");
}

/// A `FileDisk` opened read-write sees data written through an earlier
/// handle, and its writes reach the file.
#[test]
fn file_disk_writes_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rw.img");
    let mut dev = FileDisk::create(&path, 16, SectorSize::S512).unwrap();
    let data = pattern(&dev, 4, 2, 1);
    dev.write_sectors(4, &data).unwrap();
    dev.flush().unwrap();
    drop(dev);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 16 * 512);
    assert_eq!(&bytes[4 * 512..6 * 512], &data[..]);
    assert!(bytes[..4 * 512].iter().chain(&bytes[6 * 512..]).all(|&b| b == 0));
    let mut dev = FileDisk::open(&path, SectorSize::S512).unwrap();
    assert_eq!(dev.path(), path);
    assert_eq!(read(&mut dev, 4, 2, "reopened"), data);
}
