//! Helpers shared by the test modules: the size of the standard test device,
//! the sector sizes, recognisable data, and reads and error checks that say
//! what failed.
//!
//! Contract: everything here is deterministic (no randomness, no clock), so
//! a failure in a module that uses it reproduces exactly.

use visorsim_disk::{BlockDevice, DiskError, DiskErrorKind, SectorSize};

/// Sectors on the standard test device: not a multiple of 8, so at 512-byte
/// sectors the last 4 KiB chunk of a `MemDisk` is partly outside the device.
pub const SECTORS: u64 = 67;

/// Every sector size a device can have.
pub const SIZES: [SectorSize; 2] = [SectorSize::S512, SectorSize::S4096];

/// Recognisable content for the `len` bytes at byte `offset` of a device:
/// never a zero byte, different per offset (period 251) and per `salt`.
pub fn data_at(offset: u64, len: usize, salt: u8) -> Vec<u8> {
    (0..len as u64).map(|i| (((offset + i) % 251) as u8).wrapping_add(salt) | 1).collect()
}

/// Reads `sectors` sectors at `lba`, panicking with `name` on an error.
pub fn read(dev: &mut dyn BlockDevice, lba: u64, sectors: u64, name: &str) -> Vec<u8> {
    let mut buf = vec![0xEEu8; (sectors * dev.sector_size().bytes_u64()) as usize];
    dev.read_sectors(lba, &mut buf).unwrap_or_else(|e| panic!("{name}: read {sectors} at LBA {lba}: {e}"));
    buf
}

/// Asserts `result` is an error of `kind` that names `lba`, both in
/// [`DiskError::lba`] and in its message.
#[track_caller]
pub fn assert_error(result: Result<(), DiskError>, kind: DiskErrorKind, lba: u64, what: &str) {
    let err = match result {
        Ok(()) => panic!("{what}: succeeded, expected {kind:?}"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), kind, "{what}: {err}");
    assert_eq!(err.lba(), lba, "{what}: {err}");
    let message = err.to_string();
    assert!(message.contains(&format!("LBA {lba}")), "{what}: message does not name LBA {lba}: {message}");
}
