//! GPT: writing a table with the `gpt` crate, reading one with bounds.
//!
//! Writing: the protective MBR, both headers and both entry arrays come from
//! the `gpt` crate. Its `GptDisk::write` packs used entries at the front of
//! the array, which would renumber partitions (ESXi's partition 5 must be the
//! fifth entry), so entries are written with `Partition::write_to_device` at
//! their own index and the headers with `Header::write_primary/backup`,
//! which compute both CRCs from what is on disk.
//!
//! Reading is our own, because the reader must (a) treat every byte as
//! hostile (the `gpt` crate asserts and allocates from on-disk counts), and
//! (b) report the primary and backup tables separately: esx-boot reads the
//! primary only, while gdisk (and `inspect`) fall back to the backup.
//!
//! ```text
//!   LBA 0          protective MBR (type 0xEE from LBA 1, parsed by `mbr`)
//!   LBA 1          primary header  -> entries at LBA 2 (128 x 128 bytes)
//!   LBA last-32..  backup entries  (512-byte sectors; 4 sectors on 4Kn)
//!   LBA last       backup header
//! ```

use std::io;

use gpt::disk::LogicalBlockSize;
use gpt::header::HeaderBuilder;
use gpt::mbr::ProtectiveMBR;
use gpt::partition::Partition;
use gpt::partition_types::{OperatingSystem, Type};
use serde::Serialize;
use uuid::Uuid;
use visorsim_disk::{BlockDevice, ByteIo, DiskError};

use crate::layout::DiskPlan;
use crate::le::{le16, le32, le64};
use crate::mbr;

/// Entries in the array, as every ESXi installer writes it.
pub const ENTRY_COUNT: u32 = 128;
/// Bytes per entry.
pub const ENTRY_SIZE: u32 = 128;
/// Largest entry array `read_table` accepts (the spec allows more; real
/// tables are 16 KiB). Bounds the allocation for hostile headers.
const MAX_ARRAY_BYTES: u64 = 1 << 20;

/// Writes the protective MBR and a GPT holding `plan`'s partitions, each at
/// the entry index of its number. `disk_guid` and `part_guids` (one per
/// partition, in plan order) make the result deterministic.
pub fn write_table<D: BlockDevice>(dev: D, plan: &DiskPlan, disk_guid: Uuid, part_guids: &[Uuid]) -> io::Result<D> {
    let sector = dev.sector_size().bytes_u64();
    let lb = match sector {
        512 => LogicalBlockSize::Lb512,
        _ => LogicalBlockSize::Lb4096,
    };
    let last_lba = dev.sector_count() - 1;
    let mut io = ByteIo::new(dev);
    let mbr_len = u32::try_from(last_lba).unwrap_or(u32::MAX);
    ProtectiveMBR::with_lb_size(mbr_len).overwrite_lba0(&mut io).map_err(to_io)?;
    let mut primary = HeaderBuilder::new()
        .disk_guid(disk_guid)
        .backup_lba(last_lba)
        .num_parts(ENTRY_COUNT)
        .part_size(ENTRY_SIZE)
        .primary(true)
        .build(lb)
        .map_err(to_io)?;
    let mut backup = HeaderBuilder::from_header(&primary).primary(false).build(lb).map_err(to_io)?;
    for (spec, guid) in plan.partitions.iter().zip(part_guids) {
        let entry = Partition {
            part_type_guid: Type { guid: spec.type_guid, os: OperatingSystem::None },
            part_guid: *guid,
            first_lba: spec.first_lba(sector),
            last_lba: spec.last_lba(sector),
            flags: 0,
            // ESXi leaves GPT partition names empty; partedUtil shows a
            // type alias instead (see `type_alias`).
            name: String::new(),
        };
        let index = u64::from(spec.number - 1);
        entry.write_to_device(&mut io, index, primary.part_start, lb, ENTRY_SIZE)?;
        entry.write_to_device(&mut io, index, backup.part_start, lb, ENTRY_SIZE)?;
    }
    backup.write_backup(&mut io, lb).map_err(to_io)?;
    primary.write_primary(&mut io, lb).map_err(to_io)?;
    io::Write::flush(&mut io)?;
    Ok(io.into_inner())
}

fn to_io(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

/// partedUtil's name for a partition type GUID, as `getptbl` prints it.
pub fn type_alias(guid: &Uuid) -> &'static str {
    use crate::layout::*;
    match *guid {
        EFI_SYSTEM => "systemPartition",
        BASIC_DATA => "linuxNative",
        VMK_DIAGNOSTIC => "vmkDiagnostic",
        VMFS => "vmfs",
        VMFS_L => "vmfsl",
        _ => "unknown",
    }
}

/// Which copy of the GPT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Copy {
    /// Header at LBA 1.
    Primary,
    /// Header at the last LBA.
    Backup,
}

impl std::fmt::Display for Copy {
    /// `Primary` or `Backup`, as messages name the copy.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Copy::Primary => "Primary",
            Copy::Backup => "Backup",
        })
    }
}

/// One used entry of a GPT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Partition number (entry index + 1).
    pub number: u32,
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// Type GUID.
    pub type_guid: Uuid,
    /// Unique partition GUID.
    pub part_guid: Uuid,
    /// Attribute flags.
    pub attributes: u64,
    /// UTF-16 name, decoded lossily.
    pub name: String,
}

/// A GPT header with its entry array, both CRC-checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Table {
    /// Which copy this is.
    pub copy: Copy,
    /// LBA of this header.
    pub header_lba: u64,
    /// LBA of the other header, as this one says.
    pub alternate_lba: u64,
    /// First usable LBA.
    pub first_usable: u64,
    /// Last usable LBA.
    pub last_usable: u64,
    /// Disk GUID.
    pub disk_guid: Uuid,
    /// LBA of the entry array.
    pub entries_lba: u64,
    /// Number of entries in the array.
    pub entry_count: u32,
    /// Used entries, in number order.
    pub entries: Vec<Entry>,
}

/// Why a GPT copy could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GptError {
    /// The header sector could not be read.
    #[error("Cannot read the {copy} GPT header at LBA {lba}")]
    Read {
        /// Which copy.
        copy: Copy,
        /// Where.
        lba: u64,
        /// The device error.
        #[source]
        source: DiskError,
    },
    /// A header field is wrong.
    #[error("{copy} GPT header at LBA {lba}: {what}")]
    BadHeader {
        /// Which copy.
        copy: Copy,
        /// Where.
        lba: u64,
        /// What is wrong, naming the field.
        what: String,
    },
    /// The entry array does not match its CRC or cannot be read.
    #[error("{copy} GPT entry array at LBA {lba}: {what}")]
    BadEntries {
        /// Which copy.
        copy: Copy,
        /// Where.
        lba: u64,
        /// What is wrong.
        what: String,
    },
}

/// Both copies of a disk's GPT, each read independently.
#[derive(Debug)]
pub struct GptReport {
    /// The primary table (what esx-boot reads).
    pub primary: Result<Table, GptError>,
    /// The backup table.
    pub backup: Result<Table, GptError>,
    /// Whether LBA 0 holds a protective MBR (type 0xEE starting at LBA 1).
    pub protective_mbr: bool,
}

impl GptReport {
    /// The table a recovery tool would use: the primary if sound, else the backup.
    pub fn best(&self) -> Option<&Table> {
        self.primary.as_ref().ok().or(self.backup.as_ref().ok())
    }
}

/// Reads both GPT copies of `dev`. Never panics; allocates at most 1 MiB
/// per entry array.
pub fn read_gpt<D: BlockDevice>(dev: &mut D) -> GptReport {
    let sector = dev.sector_size().len();
    let mut lba0 = vec![0u8; sector];
    let protective_mbr = dev.sector_count() > 0
        && dev.read_sectors(0, &mut lba0).is_ok()
        && mbr::has_signature(&lba0)
        && mbr::PartitionEntry::parse(&lba0, 0).is_protective();
    let primary = read_copy(dev, Copy::Primary, 1);
    let backup_lba = match &primary {
        Ok(t) => t.alternate_lba,
        Err(_) => dev.sector_count().saturating_sub(1),
    };
    let backup = read_copy(dev, Copy::Backup, backup_lba);
    GptReport { primary, backup, protective_mbr }
}

/// Reads the primary GPT only, as esx-boot does (`gpt_read_header`): a bad
/// primary means no partitions at all, whatever the backup holds.
pub fn read_primary<D: BlockDevice>(dev: &mut D) -> Result<Table, GptError> {
    read_copy(dev, Copy::Primary, 1)
}

fn read_copy<D: BlockDevice>(dev: &mut D, copy: Copy, lba: u64) -> Result<Table, GptError> {
    let sector = dev.sector_size().len();
    let mut hdr = vec![0u8; sector];
    dev.read_sectors(lba, &mut hdr).map_err(|source| GptError::Read { copy, lba, source })?;
    let bad = |what: String| GptError::BadHeader { copy, lba, what };
    if &hdr[0..8] != b"EFI PART" {
        return Err(bad("no \"EFI PART\" signature".into()));
    }
    let header_size = le32(&hdr, 12) as usize;
    if !(92..=sector).contains(&header_size) {
        return Err(bad(format!("HeaderSize {header_size} is outside 92..={sector}")));
    }
    let stored_crc = le32(&hdr, 16);
    let mut crc_copy = hdr[..header_size].to_vec();
    crc_copy[16..20].fill(0);
    let computed = crc32fast::hash(&crc_copy);
    if stored_crc != computed {
        return Err(bad(format!("HeaderCRC32 is {stored_crc:#010x}, the header's CRC is {computed:#010x}")));
    }
    let my_lba = le64(&hdr, 24);
    if my_lba != lba {
        return Err(bad(format!("MyLBA is {my_lba}, expected {lba}")));
    }
    let alternate_lba = le64(&hdr, 32);
    let first_usable = le64(&hdr, 40);
    let last_usable = le64(&hdr, 48);
    let disk_guid = Uuid::from_bytes_le(hdr[56..72].try_into().expect("16 bytes"));
    let entries_lba = le64(&hdr, 72);
    let entry_count = le32(&hdr, 80);
    let entry_size = le32(&hdr, 84);
    let entries_crc = le32(&hdr, 88);
    if entry_size < 128 || !entry_size.is_multiple_of(8) || entry_size > 4096 {
        return Err(bad(format!("SizeOfPartitionEntry {entry_size} is not a multiple of 8 in 128..=4096")));
    }
    let array_bytes = u64::from(entry_count) * u64::from(entry_size);
    if array_bytes > MAX_ARRAY_BYTES {
        return Err(bad(format!("entry array of {entry_count} x {entry_size} bytes exceeds {MAX_ARRAY_BYTES} bytes")));
    }
    let bad_entries = |what: String| GptError::BadEntries { copy, lba: entries_lba, what };
    let array_sectors = array_bytes.div_ceil(sector as u64);
    let mut array = vec![0u8; (array_sectors as usize) * sector];
    dev.read_sectors(entries_lba, &mut array).map_err(|e| bad_entries(format!("cannot read: {e}")))?;
    let array = &array[..array_bytes as usize];
    let computed = crc32fast::hash(array);
    if computed != entries_crc {
        return Err(bad_entries(format!(
            "PartitionEntryArrayCRC32 is {entries_crc:#010x}, the array's CRC is {computed:#010x}"
        )));
    }
    let mut entries = Vec::new();
    for (index, raw) in array.chunks_exact(entry_size as usize).enumerate() {
        let type_guid = Uuid::from_bytes_le(raw[0..16].try_into().expect("16 bytes"));
        if type_guid.is_nil() {
            continue;
        }
        let name_units: Vec<u16> = (56..128).step_by(2).map(|at| le16(raw, at)).take_while(|&u| u != 0).collect();
        entries.push(Entry {
            number: index as u32 + 1,
            type_guid,
            part_guid: Uuid::from_bytes_le(raw[16..32].try_into().expect("16 bytes")),
            first_lba: le64(raw, 32),
            last_lba: le64(raw, 40),
            attributes: le64(raw, 48),
            name: String::from_utf16_lossy(&name_units),
        });
    }
    Ok(Table {
        copy,
        header_lba: lba,
        alternate_lba,
        first_usable,
        last_usable,
        disk_guid,
        entries_lba,
        entry_count,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;
    use visorsim_disk::{MemDisk, SectorSize};

    fn guids(n: usize) -> Vec<Uuid> {
        (0..n).map(|i| Uuid::from_u128(0x1000 + i as u128)).collect()
    }

    fn written(sector: SectorSize) -> (MemDisk, DiskPlan) {
        let plan = Layout::Esxi6.plan(None).unwrap();
        let disk = MemDisk::with_size(plan.size, sector);
        let disk = write_table(disk, &plan, Uuid::from_u128(42), &guids(plan.partitions.len())).unwrap();
        (disk, plan)
    }

    #[test]
    fn entries_sit_at_their_number() {
        for sector in [SectorSize::S512, SectorSize::S4096] {
            let (mut disk, plan) = written(sector);
            let report = read_gpt(&mut disk);
            assert!(report.protective_mbr);
            let primary = report.primary.unwrap();
            let backup = report.backup.unwrap();
            assert_eq!(primary.entries, backup.entries);
            let numbers: Vec<u32> = primary.entries.iter().map(|e| e.number).collect();
            assert_eq!(numbers, [1, 2, 3, 5, 6, 7, 8, 9]);
            let five = primary.entries.iter().find(|e| e.number == 5).unwrap();
            assert_eq!(five.first_lba, plan.partition(5).unwrap().first_lba(sector.bytes_u64()));
        }
    }

    #[test]
    fn corrupt_primary_leaves_backup_readable() {
        let (mut disk, _) = written(SectorSize::S512);
        disk.write_sectors(1, &[0xAB; 512]).unwrap();
        let report = read_gpt(&mut disk);
        assert!(matches!(report.primary, Err(GptError::BadHeader { .. })));
        let message = report.primary.as_ref().unwrap_err().to_string();
        assert!(message.starts_with("Primary GPT header at LBA 1: "), "{message}");
        assert_eq!(report.best().unwrap().copy, Copy::Backup);
        assert!(read_primary(&mut disk).is_err());
    }

    #[test]
    fn corrupt_entry_array_is_named() {
        let (mut disk, _) = written(SectorSize::S512);
        let mut sector = [0u8; 512];
        disk.read_sectors(2, &mut sector).unwrap();
        sector[100] ^= 1;
        disk.write_sectors(2, &sector).unwrap();
        let err = read_gpt(&mut disk).primary.unwrap_err();
        assert!(err.to_string().contains("PartitionEntryArrayCRC32"), "{err}");
    }

    #[test]
    fn garbage_and_tiny_disks_do_not_panic() {
        for sectors in [0u64, 1, 2, 3, 40] {
            let mut disk = MemDisk::new(sectors, SectorSize::S512);
            for lba in 0..sectors {
                disk.write_sectors(lba, &[0x5A; 512]).unwrap();
            }
            let report = read_gpt(&mut disk);
            assert!(report.best().is_none());
        }
    }
}
