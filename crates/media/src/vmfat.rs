//! The VMware FAT UUID: how ESXi marks a FAT partition as a boot bank.
//!
//! ```text
//!   partition sector 1 (byte 512, or 4096 on 4Kn media):
//!   0               16              32
//!   | "VMWARE FAT16    " | 16-byte UUID | zeros ...
//! ```
//!
//! esx-boot (`safeboot/vmfat.c:vmfat_get_uuid`) skips a partition without the
//! exact magic and passes the UUID to the kernel as `bootUUID=` followed by
//! the 32 lowercase hex digits in on-disk byte order.

use serde::Serialize;
use visorsim_disk::{BlockDevice, DiskError};

/// The magic, "VMWARE FAT16" followed by four spaces (case-sensitive).
pub const MAGIC: &[u8; 16] = b"VMWARE FAT16    ";

/// A bank UUID in on-disk byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VmfatUuid(pub [u8; 16]);

impl VmfatUuid {
    /// A UUID as ESXi's installer makes them for these volumes: derived from
    /// `seed`, with 7 as the first nibble.
    pub fn from_seed(seed: u64) -> VmfatUuid {
        let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
        let mut bytes = [0u8; 16];
        for half in bytes.chunks_exact_mut(8) {
            half.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        bytes[0] = 0x70 | (bytes[0] & 0x0F);
        VmfatUuid(bytes)
    }

    /// The 32 lowercase hex digits esx-boot passes as `bootUUID=`.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 32 hex digits.
    pub fn from_hex(s: &str) -> Option<VmfatUuid> {
        if s.len() != 32 || !s.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(VmfatUuid(bytes))
    }
}

impl Serialize for VmfatUuid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// One step of splitmix64, the seed expander used for small derived values.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes the magic and `uuid` into the second sector of the partition that
/// starts at `first_lba`, zeroing the rest of that sector.
pub fn write_uuid<D: BlockDevice>(dev: &mut D, first_lba: u64, uuid: VmfatUuid) -> Result<(), DiskError> {
    let mut sector = vec![0u8; dev.sector_size().len()];
    sector[..16].copy_from_slice(MAGIC);
    sector[16..32].copy_from_slice(&uuid.0);
    dev.write_sectors(first_lba + 1, &sector)
}

/// Reads the UUID of the partition at `first_lba`: `Ok(None)` when the
/// second sector does not start with the magic.
pub fn read_uuid<D: BlockDevice>(dev: &mut D, first_lba: u64) -> Result<Option<VmfatUuid>, DiskError> {
    let mut sector = vec![0u8; dev.sector_size().len()];
    dev.read_sectors(first_lba.saturating_add(1), &mut sector)?;
    if &sector[..16] != MAGIC {
        return Ok(None);
    }
    Ok(Some(VmfatUuid(sector[16..32].try_into().expect("16 bytes"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use visorsim_disk::{MemDisk, SectorSize};

    #[test]
    fn round_trip_at_second_sector_for_both_sector_sizes() {
        for size in [SectorSize::S512, SectorSize::S4096] {
            let mut disk = MemDisk::new(64, size);
            let uuid = VmfatUuid::from_seed(7);
            assert_eq!(uuid.to_hex().chars().next(), Some('7'));
            write_uuid(&mut disk, 10, uuid).unwrap();
            assert_eq!(read_uuid(&mut disk, 10).unwrap(), Some(uuid));
            assert_eq!(read_uuid(&mut disk, 11).unwrap(), None);
            let mut raw = vec![0u8; size.len()];
            disk.read_sectors(11, &mut raw).unwrap();
            assert_eq!(&raw[..16], MAGIC);
            assert_eq!(VmfatUuid::from_hex(&uuid.to_hex()), Some(uuid));
        }
    }

    #[test]
    fn magic_is_case_sensitive() {
        let mut disk = MemDisk::new(8, SectorSize::S512);
        let mut sector = [0u8; 512];
        sector[..16].copy_from_slice(b"vmware fat16    ");
        disk.write_sectors(1, &sector).unwrap();
        assert_eq!(read_uuid(&mut disk, 0).unwrap(), None);
    }
}
