//! Memory and disk cost follow the data written, not the virtual size.
//!
//! Checks the `MemDisk` invariants "memory grows with the chunks written"
//! and "a chunk overwritten entirely with zeros is dropped", and that
//! `FileDisk::save_sparse` keeps holes as holes and round-trips through
//! `FileDisk::load`.

use std::fs;
use std::os::unix::fs::MetadataExt;

use visorsim_disk::{BlockDevice, FileDisk, MemDisk, SectorSize};

use crate::util::data_at;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const CHUNK: u64 = 4096;

/// The stored chunks of `disk`, owned, for comparing two disks' contents
/// (everything outside the stored chunks is zeros).
fn contents(disk: &MemDisk) -> Vec<(u64, Vec<u8>)> {
    disk.stored_chunks().map(|(offset, data)| (offset, data.to_vec())).collect()
}

/// An 8 GiB disk holding 20 MiB in 1 MiB runs plus 64 scattered sectors.
/// Returns the disk and the bytes written.
fn eight_gib_with_20_mib() -> (MemDisk, u64) {
    let mut disk = MemDisk::new(8 * GIB / 512, SectorSize::S512);
    let mut written = 0;
    for i in 0..20u64 {
        // Spread over the whole disk, at a 1 MiB boundary plus an odd 4 KiB.
        let offset = i * (8 * GIB / 20) / MIB * MIB + (i % 3) * CHUNK;
        disk.write_sectors(offset / 512, &data_at(offset, MIB as usize, 0)).unwrap();
        written += MIB;
    }
    for i in 0..64u64 {
        let offset = (i * 127 * MIB + 3 * 512) % (8 * GIB);
        disk.write_sectors(offset / 512, &data_at(offset, 512, 0)).unwrap();
        written += 512;
    }
    (disk, written)
}

#[test]
fn memdisk_costs_the_data_not_the_virtual_size() {
    let (mut disk, written) = eight_gib_with_20_mib();
    assert_eq!(disk.size_bytes(), 8 * GIB);
    let resident = disk.resident_bytes();
    // Every sector write costs at most one 4 KiB chunk of its own.
    assert!(resident >= 20 * MIB, "resident {resident} < data written");
    assert!(resident <= written + 64 * CHUNK, "resident {resident} for {written} bytes written");

    // A whole chunk of zeros over a stored chunk drops it ...
    let offset = 0; // the first 1 MiB run starts at 0
    assert!(disk.stored_chunks().any(|(o, _)| o == offset));
    disk.write_sectors(offset / 512, &[0u8; CHUNK as usize]).unwrap();
    assert_eq!(disk.resident_bytes(), resident - CHUNK);
    assert!(!disk.stored_chunks().any(|(o, _)| o == offset));
    let mut back = [0xFFu8; CHUNK as usize];
    disk.read_sectors(offset / 512, &mut back).unwrap();
    assert!(back.iter().all(|&b| b == 0));
    // ... and zeros over a hole store nothing.
    disk.write_sectors(4 * GIB / 512 + 8, &vec![0u8; MIB as usize]).unwrap();
    disk.write_sectors(5 * GIB / 512 + 1, &[0u8; 512]).unwrap();
    assert_eq!(disk.resident_bytes(), resident - CHUNK);

    // A fork shares everything: writing to it costs the fork one chunk and
    // leaves the original as it was.
    let before = contents(&disk);
    let mut fork = disk.fork();
    let hole = 8 * GIB / 512 - 1; // the last sector: no run or sector there
    fork.write_sectors(hole, &[9u8; 512]).unwrap();
    assert_eq!(contents(&disk), before);
    assert_eq!(fork.resident_bytes(), disk.resident_bytes() + CHUNK);
}

/// Saves `disk` to a fresh directory and checks that the file has the
/// disk's length, that holes stayed holes (allocated blocks are close to the
/// data, far below the length) and that only the output is left behind.
fn save_and_check_allocation(disk: &MemDisk, written: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.img");
    FileDisk::save_sparse(disk, &path).unwrap();

    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), disk.size_bytes());
    let allocated = meta.blocks() * 512;
    // Filesystem blocks round each run up, but the file is nowhere near its length.
    assert!(allocated <= written + 16 * MIB, "{allocated} bytes allocated for {written} written");
    assert!(allocated * 10 < meta.len(), "{allocated} bytes allocated of {}", meta.len());
    // Only the output is left in the directory (the temporary was renamed).
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["sparse.img"]);
    (dir, path)
}

/// The 8 GiB image: sparse on disk, and every stored chunk reads back from
/// the file, as do zeros in the holes around them.
#[test]
fn save_sparse_of_8_gib_keeps_holes() {
    let (disk, written) = eight_gib_with_20_mib();
    let (_dir, path) = save_and_check_allocation(&disk, written);
    let mut file = FileDisk::open_read_only(&path, SectorSize::S512).unwrap();
    assert_eq!(file.sector_count(), disk.sector_count());
    let mut buf = vec![0u8; CHUNK as usize];
    for (offset, data) in disk.stored_chunks() {
        file.read_sectors(offset / 512, &mut buf).unwrap();
        assert_eq!(&buf[..], data, "chunk at byte {offset}");
    }
    for offset in [2 * GIB + 64 * MIB, 3 * GIB + 5 * CHUNK, 8 * GIB - CHUNK] {
        assert!(!disk.stored_chunks().any(|(o, _)| o == offset), "byte {offset} is not a hole");
        file.read_sectors(offset / 512, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0), "hole at byte {offset}");
    }
}

/// `save_sparse` then `FileDisk::load` gives back the same disk, and the
/// loaded disk is sparse again.
#[test]
fn save_sparse_then_load_round_trips() {
    let mut disk = MemDisk::new(256 * MIB / 512, SectorSize::S512);
    let mut written = 0;
    for i in 0..8u64 {
        let offset = i * 29 * MIB + i * 3 * 512;
        disk.write_sectors(offset / 512, &data_at(offset, MIB as usize, 0)).unwrap();
        written += MIB;
    }
    disk.write_sectors(256 * MIB / 512 - 1, &data_at(0, 512, 0)).unwrap();
    written += 512;
    let (_dir, path) = save_and_check_allocation(&disk, written);
    let loaded = FileDisk::open_read_only(&path, SectorSize::S512).unwrap().load().unwrap();
    assert_eq!(loaded.sector_count(), disk.sector_count());
    assert_eq!(loaded.resident_bytes(), disk.resident_bytes());
    assert_eq!(contents(&loaded), contents(&disk));
}

/// The full 8 GiB round trip through `FileDisk::load`: it reads the file's
/// data extents only (SEEK_DATA/SEEK_HOLE), so this costs the 20 MiB of
/// data, not 8 GiB of holes.
#[test]
fn save_sparse_of_8_gib_then_load_round_trips() {
    let (disk, written) = eight_gib_with_20_mib();
    let (_dir, path) = save_and_check_allocation(&disk, written);
    let extents = FileDisk::open_read_only(&path, SectorSize::S512).unwrap().data_extents().unwrap();
    let data: u64 = extents.iter().map(|(start, end)| end - start).sum();
    // File systems allocate in blocks (and some, like tmpfs, in pages), so
    // the extents round each write up a little, but they never approach
    // the 8 GiB of holes.
    assert!(data >= 20 * MIB, "extents hold {data} bytes, less than the data written");
    assert!(data <= written + 64 * 64 * 1024 + 20 * 2 * MIB, "extents hold {data} bytes for {written} written");
    assert!(extents.windows(2).all(|w| w[0].1 <= w[1].0), "extents in file order, not overlapping: {extents:?}");
    let loaded = FileDisk::open_read_only(&path, SectorSize::S512).unwrap().load().unwrap();
    assert_eq!(loaded.resident_bytes(), disk.resident_bytes());
    assert_eq!(contents(&loaded), contents(&disk));
}

/// A disk whose size is not a multiple of the 4 KiB chunk: the saved image
/// has exactly the disk's length, even when the last chunk is stored.
#[test]
fn save_sparse_of_a_size_that_is_not_a_chunk_multiple() {
    let dir = tempfile::tempdir().unwrap();
    for sectors in [1u64, 9, 15, 17] {
        let mut disk = MemDisk::new(sectors, SectorSize::S512);
        let last = sectors - 1;
        disk.write_sectors(last, &[0xABu8; 512]).unwrap();
        disk.write_sectors(0, &[0xCDu8; 512]).unwrap();
        let end = disk.stored_chunks().map(|(o, d)| o + d.len() as u64).max().unwrap();
        assert!(end <= disk.size_bytes(), "{sectors} sectors: stored chunk reaches byte {end}");

        let path = dir.path().join(format!("odd{sectors}.img"));
        FileDisk::save_sparse(&disk, &path).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, sectors * 512, "{sectors} sectors");
        let mut file = FileDisk::open_read_only(&path, SectorSize::S512).unwrap();
        assert_eq!(file.trailing_bytes(), 0);
        let loaded = file.load().unwrap();
        assert_eq!(loaded.sector_count(), sectors);
        assert_eq!(contents(&loaded), contents(&disk));
    }
}

/// `save_sparse` replaces an existing file atomically and a failed save
/// leaves nothing behind.
#[test]
fn save_sparse_replaces_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    fs::write(&path, vec![0xEEu8; 64 * 512]).unwrap();
    let mut disk = MemDisk::new(16, SectorSize::S512);
    disk.write_sectors(2, &[1u8; 512]).unwrap();
    FileDisk::save_sparse(&disk, &path).unwrap();
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 16 * 512);
    assert!(bytes[2 * 512..3 * 512].iter().all(|&b| b == 1));
    assert!(bytes[..2 * 512].iter().chain(&bytes[3 * 512..]).all(|&b| b == 0));

    // Target is a directory: rename fails, the temporary is removed.
    let target = dir.path().join("sub");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep"), b"x").unwrap();
    assert!(FileDisk::save_sparse(&disk, &target).is_err());
    let mut names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["disk.img", "sub"]);
}
