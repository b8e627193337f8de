//! MBR partition entries: the one parser of LBA 0's (and an EBR's) partition
//! table, for the protective-MBR test of [`crate::gpt`] and the MBR scan of
//! `visorsim-boot` (esx-boot's `mbr.c`).
//!
//! ```text
//!   byte 0     446        462        478        494        510  512
//!        | code | entry 1  | entry 2  | entry 3  | entry 4  | 55 AA |
//!
//!   entry (16 bytes):  0 status (0x80 = boot)   4 type   8 first LBA (le32)
//!                      1..4 CHS of the start     5..8 CHS of the end
//!                      12 sectors (le32)
//! ```
//!
//! Contract: parsing never panics and never allocates; a sector shorter than
//! 512 bytes reads its missing bytes as zero. Nothing is validated here:
//! what a start of 0 or a type 0xEE means is the caller's decision (gdisk
//! and esx-boot decide differently, see [`PartitionEntry::is_protective`]).

use crate::le::le32;

/// Byte offset of the first partition entry.
pub const TABLE_OFFSET: usize = 446;
/// Bytes per partition entry.
pub const ENTRY_BYTES: usize = 16;
/// Partition entries in an MBR.
pub const ENTRIES: usize = 4;
/// Partition type of a GPT's protective MBR entry.
pub const TYPE_PROTECTIVE: u8 = 0xEE;

/// One 16-byte partition entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionEntry {
    /// Status byte: 0x80 marks the boot partition, 0 none.
    pub status: u8,
    /// Partition type (0 = unused).
    pub kind: u8,
    /// First LBA (for a logical partition, relative to its EBR).
    pub first_lba: u32,
    /// Length in sectors.
    pub sectors: u32,
}

impl PartitionEntry {
    /// Entry `index` (0..4) of the table in `sector`; an index past the
    /// four reads zeros past the end of a 512-byte sector.
    pub fn parse(sector: &[u8], index: usize) -> PartitionEntry {
        let at = TABLE_OFFSET.saturating_add(index.saturating_mul(ENTRY_BYTES));
        let byte = |off: usize| at.checked_add(off).and_then(|i| sector.get(i)).copied().unwrap_or(0);
        PartitionEntry {
            status: byte(0),
            kind: byte(4),
            first_lba: at.checked_add(8).map_or(0, |i| le32(sector, i)),
            sectors: at.checked_add(12).map_or(0, |i| le32(sector, i)),
        }
    }

    /// Type 0xEE starting at LBA 1: what both gdisk and esx-boot require of
    /// a protective MBR's first entry (esx-boot also wants status 0, and
    /// gdisk the 0x55AA signature; callers add those).
    pub fn is_protective(&self) -> bool {
        self.kind == TYPE_PROTECTIVE && self.first_lba == 1
    }

    /// An extended partition (0x05, 0x0F, 0x85), which holds the EBR chain.
    pub fn is_extended(&self) -> bool {
        matches!(self.kind, 0x05 | 0x0F | 0x85)
    }
}

/// The four entries of the table in `sector`.
pub fn entries(sector: &[u8]) -> [PartitionEntry; ENTRIES] {
    std::array::from_fn(|i| PartitionEntry::parse(sector, i))
}

/// Whether bytes 510 and 511 hold the 0x55AA boot signature.
pub fn has_signature(sector: &[u8]) -> bool {
    sector.get(510..512) == Some(&[0x55, 0xAA][..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_and_the_signature() {
        let mut s = [0u8; 512];
        s[446 + 4] = 0xEE;
        s[446 + 8] = 1;
        s[446 + 12..446 + 16].copy_from_slice(&0x00FF_FFFFu32.to_le_bytes());
        s[462] = 0x80;
        s[462 + 4] = 0x0F;
        s[462 + 8..462 + 12].copy_from_slice(&2048u32.to_le_bytes());
        s[510] = 0x55;
        s[511] = 0xAA;
        let e = entries(&s);
        assert!(e[0].is_protective() && !e[0].is_extended());
        assert_eq!(e[0].sectors, 0x00FF_FFFF);
        assert_eq!(e[1], PartitionEntry { status: 0x80, kind: 0x0F, first_lba: 2048, sectors: 0 });
        assert!(e[1].is_extended());
        assert!(has_signature(&s));
        assert_eq!(e[3], PartitionEntry { status: 0, kind: 0, first_lba: 0, sectors: 0 });
    }

    #[test]
    fn short_sectors_and_odd_indexes_do_not_panic() {
        assert!(!has_signature(&[0u8; 100]));
        assert_eq!(PartitionEntry::parse(&[0xFF; 450], 0).kind, 0);
        assert_eq!(PartitionEntry::parse(&[0xFF; 512], usize::MAX).first_lba, 0);
        let past = PartitionEntry::parse(&[0xFF; 512], 4);
        assert_eq!((past.status, past.kind), (0xFF, 0));
    }
}
