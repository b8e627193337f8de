//! Directory entries: the 32-byte slots of a FAT directory, short entries
//! and the long-file-name (LFN) slots before them.
//!
//! ```text
//!   short entry                          LFN slot (attribute 0x0F)
//!   0  name, 8 + 3 bytes, space padded   0  order (1.., 0x40 = last part)
//!      (0x00 = end, 0xE5 = deleted)      1  units 1-5   (UTF-16LE)
//!   11 attribute (0x08 label, 0x10 dir)  11 attribute 0x0F
//!   12 case byte (0x08 base, 0x10 ext    13 checksum of the short name
//!      shown in lower case)              14 units 6-11
//!   13 creation time (10 ms, 2, date 2)  26 cluster, always 0
//!   18 access date                       28 units 12-13
//!   20 first cluster, high word
//!   22 modification time, 24 date        a name of n parts: slots n|0x40,
//!   26 first cluster, low word           n-1, .., 1, then its short entry
//!   28 size (le32)
//! ```
//!
//! Contract: entries are typed `[u8; 32]` arrays, so no accessor here can
//! index out of bounds; nothing decides what an entry *means* for a lookup
//! (that is the reader's and the write operations' business).

use serde::Serialize;

use super::names::display_name;
use crate::le::{le16, le32};

/// Bytes per directory entry.
pub const ENTRY_BYTES: usize = 32;
/// One raw directory entry.
pub type RawEntry = [u8; ENTRY_BYTES];

/// Attribute bit of a volume label.
pub const ATTR_VOLUME_ID: u8 = 0x08;
/// Attribute bit of a directory.
pub const ATTR_DIRECTORY: u8 = 0x10;
/// Attribute bit "archive", set on new files.
pub const ATTR_ARCHIVE: u8 = 0x20;
/// Attribute value of an LFN slot, under [`ATTR_LFN_MASK`].
pub const ATTR_LFN: u8 = 0x0F;
/// The attribute bits compared with [`ATTR_LFN`].
pub const ATTR_LFN_MASK: u8 = 0x3F;
/// First name byte of a deleted entry.
pub const DELETED: u8 = 0xE5;

/// Byte offsets within a short entry.
pub const OFF_ATTR: usize = 11;
/// The case byte.
pub const OFF_LCASE: usize = 12;
/// The LFN checksum (in an LFN slot).
pub const OFF_CHECKSUM: usize = 13;
/// First cluster, high word.
pub const OFF_START_HI: usize = 20;
/// Modification time.
pub const OFF_MTIME: usize = 22;
/// Modification date.
pub const OFF_MDATE: usize = 24;
/// First cluster, low word.
pub const OFF_START: usize = 26;
/// Size in bytes.
pub const OFF_SIZE: usize = 28;

/// Case byte flag: the base is shown in lower case.
pub const CASE_LOWER_BASE: u8 = 0x08;
/// Case byte flag: the extension is shown in lower case.
pub const CASE_LOWER_EXT: u8 = 0x10;

/// The short names of a directory's own entries.
pub const DOT: [u8; 11] = *b".          ";
/// The short name of the parent entry.
pub const DOTDOT: [u8; 11] = *b"..         ";

/// Order-byte flag of the LFN slot holding the name's last part (written first).
pub const LFN_LAST: u8 = 0x40;
/// UTF-16 units per LFN slot.
pub const LFN_UNITS: usize = 13;
/// Most LFN slots of one name (255 units), as Linux accepts.
pub const MAX_LFN_SLOTS: u8 = 20;
/// Byte offsets of the 13 UTF-16 units of an LFN slot.
pub const LFN_UNIT_OFFSETS: [usize; LFN_UNITS] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

/// The 11 name bytes.
pub fn name11(raw: &RawEntry) -> [u8; 11] {
    let mut name = [0u8; 11];
    name.copy_from_slice(&raw[..11]);
    name
}

/// An end-of-directory (0x00) or deleted (0xE5) slot.
pub fn is_free(raw: &RawEntry) -> bool {
    raw[0] == 0 || raw[0] == DELETED
}

/// An LFN slot.
pub fn is_lfn(raw: &RawEntry) -> bool {
    raw[OFF_ATTR] & ATTR_LFN_MASK == ATTR_LFN
}

/// A short entry with the directory bit.
pub fn is_dir(raw: &RawEntry) -> bool {
    raw[OFF_ATTR] & ATTR_DIRECTORY != 0
}

/// A volume label (or an LFN slot, whose attribute has the bit too).
pub fn is_label(raw: &RawEntry) -> bool {
    raw[OFF_ATTR] & ATTR_VOLUME_ID != 0
}

/// First cluster: low word plus high word (0 on FAT12/16) shifted 16.
pub fn start_of(raw: &RawEntry) -> u32 {
    u32::from(le16(raw, OFF_START)) | (u32::from(le16(raw, OFF_START_HI)) << 16)
}

/// Sets the first cluster, both words.
pub fn set_start(raw: &mut RawEntry, cluster: u32) {
    raw[OFF_START..OFF_START + 2].copy_from_slice(&(cluster as u16).to_le_bytes());
    raw[OFF_START_HI..OFF_START_HI + 2].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
}

/// Size in bytes.
pub fn size_of(raw: &RawEntry) -> u32 {
    le32(raw, OFF_SIZE)
}

/// The 13 UTF-16 units of an LFN slot.
pub fn lfn_units(raw: &RawEntry) -> [u16; LFN_UNITS] {
    LFN_UNIT_OFFSETS.map(|at| le16(raw, at))
}

/// Writes the 13 UTF-16 units of an LFN slot.
pub fn set_lfn_units(raw: &mut RawEntry, units: &[u16; LFN_UNITS]) {
    for (&at, unit) in LFN_UNIT_OFFSETS.iter().zip(units) {
        raw[at..at + 2].copy_from_slice(&unit.to_le_bytes());
    }
}

/// The entry at `index` of a buffer of entries; `None` past its end.
pub fn entry_at(bytes: &[u8], index: usize) -> Option<&RawEntry> {
    let at = index.checked_mul(ENTRY_BYTES)?;
    bytes.get(at..at.checked_add(ENTRY_BYTES)?)?.try_into().ok()
}

/// A file of the root directory, as its directory entry describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FatFile {
    /// The 8.3 short name as "NAME.EXT" ("NAME" without an extension).
    /// Bytes above 0x7F are shown as the ISO-8859-1 character of that value.
    pub short_name: String,
    /// Size in bytes (what esx-boot reads).
    pub size: u32,
    /// First cluster: low word at byte 26 plus high word at byte 20 shifted
    /// left 16, as `libfat_searchdir` computes it even on FAT12/16 (where
    /// the high word should be 0; a nonzero one makes the chain invalid).
    pub first_cluster: u32,
    /// Absolute LBA of the sector holding the directory entry.
    pub dir_entry_lba: u64,
    /// Byte offset of the entry within that sector.
    pub dir_entry_offset: usize,
}

impl FatFile {
    /// The description of the short entry `raw`, which lies at byte
    /// `offset` of the sector at `lba`.
    pub(crate) fn of_entry(raw: &RawEntry, lba: u64, offset: usize) -> FatFile {
        FatFile {
            short_name: display_name(&name11(raw)),
            size: size_of(raw),
            first_cluster: start_of(raw),
            dir_entry_lba: lba,
            dir_entry_offset: offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_a_short_entry() {
        let mut raw = [0u8; ENTRY_BYTES];
        raw[..11].copy_from_slice(b"BOOT    CFG");
        raw[OFF_ATTR] = ATTR_ARCHIVE;
        set_start(&mut raw, 0x0001_0203);
        raw[OFF_SIZE..OFF_SIZE + 4].copy_from_slice(&77u32.to_le_bytes());
        assert_eq!(start_of(&raw), 0x0001_0203);
        assert_eq!(le16(&raw, OFF_START_HI), 1);
        let file = FatFile::of_entry(&raw, 9, 64);
        assert_eq!((file.short_name.as_str(), file.size, file.dir_entry_lba), ("BOOT.CFG", 77, 9));
        assert!(!is_free(&raw) && !is_lfn(&raw) && !is_dir(&raw) && !is_label(&raw));
        raw[OFF_ATTR] = 0x0F;
        assert!(is_lfn(&raw) && is_label(&raw));
    }

    #[test]
    fn lfn_units_round_trip() {
        let mut raw = [0u8; ENTRY_BYTES];
        let units: [u16; LFN_UNITS] = std::array::from_fn(|i| 0x100 + i as u16);
        set_lfn_units(&mut raw, &units);
        assert_eq!(lfn_units(&raw), units);
        assert_eq!(raw[OFF_ATTR], 0);
        assert_eq!(raw[OFF_CHECKSUM], 0);
    }

    #[test]
    fn entries_of_a_buffer() {
        let bytes = [1u8; 70];
        assert!(entry_at(&bytes, 1).is_some());
        assert!(entry_at(&bytes, 2).is_none());
        assert!(entry_at(&bytes, usize::MAX).is_none());
    }
}
