//! Which disk a saved host belongs to: a cheap, deterministic fingerprint
//! of what the bootloader and the host read first (the device's size, the
//! protective MBR and primary GPT, each bank's boot.cfg and state.tgz), so a host state kept beside
//! an image (`<image>.host.json`) can tell when the image was replaced or
//! changed by someone else.
//!
//! Invariants: reading only, never an error (an unreadable region or a
//! bank without boot.cfg has its own fingerprint); the same bytes give the
//! same identity on every run and platform. The host itself changes the
//! banks (backup.sh, upgrades, jumpstart's bootstate write), so whoever
//! keeps an identity beside a host recomputes it after every step.

use std::fmt;

use serde::{Deserialize, Serialize};
use visorsim_boot::volume::scan_volumes;
use visorsim_disk::BlockDevice;
use visorsim_media::fatread::FatReader;

use super::{MAX_BOOT_CFG, MAX_STATE_TGZ};

/// Sectors fingerprinted as the partition table: the protective MBR, the
/// primary GPT header and its 128-entry array (at 512 bytes a sector).
const TABLE_SECTORS: u64 = 34;

/// A disk's fingerprint (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskIdentity {
    /// Size of the device in bytes.
    pub bytes: u64,
    /// FNV-1a (64-bit, hex) of the protective MBR and the primary GPT
    /// (header and entries), as read.
    pub partition_table: String,
    /// Banks 5 and 6.
    pub banks: Vec<BankIdentity>,
}

/// A bank's part of a [`DiskIdentity`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankIdentity {
    /// Partition number.
    pub number: u32,
    /// FNV-1a (64-bit, hex) of its boot.cfg as the bootloader reads it
    /// (`None`: no such bank or no boot.cfg).
    pub boot_cfg: Option<String>,
    /// FNV-1a (64-bit, hex) of its state.tgz as the host reads it (`None`: none).
    pub state_tgz: Option<String>,
}

impl DiskIdentity {
    /// Fingerprints `dev`.
    pub fn of<D: BlockDevice>(dev: &mut D) -> DiskIdentity {
        let sector = dev.sector_size().len() as u64;
        let count = TABLE_SECTORS.min(dev.sector_count()).min((TABLE_SECTORS * 512).div_ceil(sector));
        let mut table = vec![0u8; (count * sector) as usize];
        let partition_table = match dev.read_sectors(0, &mut table) {
            Ok(()) => hex(fnv1a(&table)),
            Err(_) => "unreadable".to_owned(),
        };
        let volumes = scan_volumes(dev).volumes;
        let banks = [5u32, 6]
            .into_iter()
            .map(|number| {
                let volume = volumes.iter().find(|v| v.number == number);
                let mut file = |name: &str, limit: u64| {
                    let v = volume?;
                    let reader = FatReader::open(dev, v.first_lba, v.sectors).ok()?;
                    let file = reader.find(dev, name).ok()??;
                    reader.read(dev, &file, limit).ok().map(|bytes| hex(fnv1a(&bytes)))
                };
                let boot_cfg = file("boot.cfg", MAX_BOOT_CFG);
                BankIdentity { number, boot_cfg, state_tgz: file("state.tgz", MAX_STATE_TGZ) }
            })
            .collect();
        DiskIdentity { bytes: dev.size_bytes(), partition_table, banks }
    }
}

impl DiskIdentity {
    /// What differs between `self` and `other`: `size`, `partition table`,
    /// `BANK5 boot.cfg`, `BANK6 state.tgz`... (empty when they are equal).
    pub fn differences(&self, other: &DiskIdentity) -> Vec<String> {
        let mut found = Vec::new();
        if self.bytes != other.bytes {
            found.push("size".to_owned());
        }
        if self.partition_table != other.partition_table {
            found.push("partition table".to_owned());
        }
        for number in [5u32, 6] {
            let bank = |id: &DiskIdentity| id.banks.iter().find(|b| b.number == number).cloned();
            let (a, b) = (bank(self), bank(other));
            let field = |f: fn(&BankIdentity) -> Option<String>| (a.as_ref().and_then(f), b.as_ref().and_then(f));
            let (x, y) = field(|b| b.boot_cfg.clone());
            if x != y {
                found.push(format!("BANK{number} boot.cfg"));
            }
            let (x, y) = field(|b| b.state_tgz.clone());
            if x != y {
                found.push(format!("BANK{number} state.tgz"));
            }
        }
        found
    }
}

impl fmt::Display for DiskIdentity {
    /// `size 1073741824 B, partition table 0123..., BANK5 boot.cfg abcd... state.tgz none, BANK6 ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "size {} B, partition table {}", self.bytes, self.partition_table)?;
        for b in &self.banks {
            let or_none = |h: &Option<String>| h.clone().unwrap_or_else(|| "none".into());
            write!(f, ", BANK{} boot.cfg {} state.tgz {}", b.number, or_none(&b.boot_cfg), or_none(&b.state_tgz))?;
        }
        Ok(())
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn hex(h: u64) -> String {
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_standard_one() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn the_partition_table_and_size_are_part_of_it() {
        use visorsim_disk::{MemDisk, SectorSize};
        let mut a = MemDisk::new(64, SectorSize::S512);
        let blank = DiskIdentity::of(&mut a);
        assert_eq!(DiskIdentity::of(&mut a), blank, "deterministic");
        assert!(blank.banks.iter().all(|b| b.boot_cfg.is_none() && b.state_tgz.is_none()), "{blank:?}");
        a.write_sectors(1, &[0x45; 512]).unwrap();
        assert_ne!(DiskIdentity::of(&mut a).partition_table, blank.partition_table);
        assert_eq!(DiskIdentity::of(&mut a).differences(&blank), ["partition table"]);
        let mut b = MemDisk::new(65, SectorSize::S512);
        assert_ne!(DiskIdentity::of(&mut b), blank);
        assert_eq!(DiskIdentity::of(&mut b).differences(&blank), ["size"]);
        assert!(blank.differences(&blank).is_empty());
        assert!(blank.to_string().starts_with("size 32768 B, partition table "), "{blank}");
        assert!(blank.to_string().ends_with(", BANK6 boot.cfg none state.tgz none"), "{blank}");
    }
}
