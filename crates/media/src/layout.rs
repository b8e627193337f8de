//! ESXi boot-disk layouts: which partition number lies where, with what type
//! GUID and what role.
//!
//! Sizes are kept in bytes and turned into LBAs for the device's sector size,
//! so a 4Kn disk gets the same byte layout as a 512-byte one. The ESXi 6.x
//! plan is the `partedUtil getptbl` table of a real host (docs/architecture.md). The
//! ESXi 7.x plan follows VMware's published sizes; where a detail is not
//! public the choice is noted beside it.

use serde::Serialize;
use uuid::Uuid;

/// Type GUID of an EFI system partition.
pub const EFI_SYSTEM: Uuid = Uuid::from_u128(0xC12A7328_F81F_11D2_BA4B_00A0C93EC93B);
/// Type GUID of a Microsoft basic data partition (what ESXi uses for FAT16 banks).
pub const BASIC_DATA: Uuid = Uuid::from_u128(0xEBD0A0A2_B9E5_4433_87C0_68B6B72699C7);
/// Type GUID of a vmkDiagnostic (coredump) partition.
pub const VMK_DIAGNOSTIC: Uuid = Uuid::from_u128(0x9D275380_40AD_11DB_BF97_000C2911D1B8);
/// Type GUID of a VMFS datastore.
pub const VMFS: Uuid = Uuid::from_u128(0xAA31E02A_400F_11DB_9590_000C2911D1B8);
/// Type GUID of ESXi 7's ESX-OSData (VMFS-L).
pub const VMFS_L: Uuid = Uuid::from_u128(0x4EB2EA39_7855_4790_A79E_FAE495E21F8D);

/// Which ESXi generation's boot-disk layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// ESXi 5.x/6.x: 250 MB banks at partitions 5 and 6.
    Esxi6,
    /// ESXi 7.x: system boot, boot-bank 0/1, ESX-OSData (and a datastore on large disks).
    Esxi7,
}

impl Layout {
    /// Name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Esxi6 => "esxi6",
            Layout::Esxi7 => "esxi7",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<Layout> {
        match name {
            "esxi6" => Some(Layout::Esxi6),
            "esxi7" => Some(Layout::Esxi7),
            _ => None,
        }
    }
}

/// What a partition is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionRole {
    /// The system (EFI) partition holding the bootloader, shared by both banks.
    SystemBoot,
    /// A boot bank (FAT16): 5 and 6.
    BootBank,
    /// vmkDiagnostic (small coredump).
    Diagnostic,
    /// The store partition (tools ISOs), FAT16.
    Store,
    /// The large coredump partition.
    Coredump,
    /// Scratch, FAT16.
    Scratch,
    /// ESX-OSData (VMFS-L), ESXi 7.
    OsData,
    /// A VMFS datastore.
    Datastore,
}

impl PartitionRole {
    /// Whether visorsim formats this partition as FAT16.
    pub fn is_fat(self) -> bool {
        matches!(
            self,
            PartitionRole::SystemBoot | PartitionRole::BootBank | PartitionRole::Store | PartitionRole::Scratch
        )
    }
}

/// One partition of a plan, in bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionSpec {
    /// GPT entry number (1-based entry index).
    pub number: u32,
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// Type GUID.
    pub type_guid: Uuid,
    /// Role.
    pub role: PartitionRole,
}

impl PartitionSpec {
    /// First LBA for `sector` bytes per sector.
    pub fn first_lba(&self, sector: u64) -> u64 {
        self.start / sector
    }

    /// Last LBA (inclusive) for `sector` bytes per sector.
    pub fn last_lba(&self, sector: u64) -> u64 {
        (self.start + self.len) / sector - 1
    }
}

/// A whole-disk plan: its size and partitions, in entry-number order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiskPlan {
    /// The layout this plan follows.
    pub layout: Layout,
    /// Disk size in bytes.
    pub size: u64,
    /// Partitions sorted by number.
    pub partitions: Vec<PartitionSpec>,
}

/// A layout that cannot be placed on a disk of the requested size.
#[derive(Debug, thiserror::Error)]
#[error("A {layout} disk needs at least {min} bytes ({min_mib} MiB); {size} bytes were requested", layout = layout.name(), min_mib = min / MIB)]
pub struct LayoutError {
    /// The layout.
    pub layout: Layout,
    /// The requested size.
    pub size: u64,
    /// The smallest size that holds it.
    pub min: u64,
}

const SECTOR: u64 = 512;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Room at the end of the disk for the backup GPT (entry array + header),
/// for 512-byte and 4Kn disks alike.
const BACKUP_GPT_ROOM: u64 = 5 * 4096;

/// ESXi 6.x: (number, first sector, last sector, type, role) (docs/architecture.md, Disk layouts).
const ESXI6_FIXED: [(u32, u64, u64, Uuid, PartitionRole); 7] = [
    (1, 64, 8191, EFI_SYSTEM, PartitionRole::SystemBoot),
    (5, 8224, 520191, BASIC_DATA, PartitionRole::BootBank),
    (6, 520224, 1032191, BASIC_DATA, PartitionRole::BootBank),
    (7, 1032224, 1257471, VMK_DIAGNOSTIC, PartitionRole::Diagnostic),
    (8, 1257504, 1843199, BASIC_DATA, PartitionRole::Store),
    (9, 1843200, 7086079, VMK_DIAGNOSTIC, PartitionRole::Coredump),
    (2, 7086080, 15472639, BASIC_DATA, PartitionRole::Scratch),
];
/// ESXi 6.x datastore (partition 3) start sector.
const ESXI6_DATASTORE_START: u64 = 15472640;
/// Smallest datastore visorsim creates. VMware does not publish the
/// installer's exact threshold; 512 MiB keeps an 8 GiB disk (a common
/// minimum boot device) valid, with a ~600 MB datastore.
const ESXI6_MIN_DATASTORE: u64 = 512 * MIB;

/// ESXi 7.x system boot partition: sectors 64–204863 (100 MB).
const ESXI7_SYSTEM: (u64, u64) = (64, 204863);
/// ESXi 7.x boot banks on media under 32 GiB: 500 MiB (1,024,000 sectors).
const ESXI7_SMALL_BANK: u64 = 500 * MIB;
/// ESXi 7.x boot banks on media of 32 GiB and more: 4 GiB.
const ESXI7_LARGE_BANK: u64 = 4 * GIB;
const ESXI7_LARGE_MEDIA: u64 = 32 * GIB;
/// ESX-OSData is capped at 128 GiB; the rest of a larger disk is a datastore.
const ESXI7_OSDATA_MAX: u64 = 128 * GIB;
/// Smallest ESX-OSData visorsim creates (not published by VMware; our choice).
const ESXI7_OSDATA_MIN: u64 = GIB;
/// Smallest datastore worth creating after a capped OSData (our choice).
const ESXI7_MIN_DATASTORE: u64 = GIB;

/// ESXi 7 places each partition after a 1 MiB gap, 1 MiB aligned: partedUtil
/// on real hosts shows 5 at 208896 after the system partition ends at 204863.
fn esxi7_next_start(prev_end_exclusive: u64) -> u64 {
    prev_end_exclusive.next_multiple_of(MIB) + MIB
}

impl Layout {
    /// The smallest disk that holds this layout, which is also the default size.
    pub fn min_size(self) -> u64 {
        match self {
            Layout::Esxi6 => {
                (ESXI6_DATASTORE_START * SECTOR + ESXI6_MIN_DATASTORE + BACKUP_GPT_ROOM).next_multiple_of(MIB)
            }
            Layout::Esxi7 => {
                let bank5 = esxi7_next_start((ESXI7_SYSTEM.1 + 1) * SECTOR);
                let bank6 = esxi7_next_start(bank5 + ESXI7_SMALL_BANK);
                let osdata = esxi7_next_start(bank6 + ESXI7_SMALL_BANK);
                (osdata + ESXI7_OSDATA_MIN + BACKUP_GPT_ROOM).next_multiple_of(MIB)
            }
        }
    }

    /// Plans the partitions of a disk of `size` bytes (default: [`Layout::min_size`]).
    pub fn plan(self, size: Option<u64>) -> Result<DiskPlan, LayoutError> {
        let size = size.unwrap_or_else(|| self.min_size());
        if size < self.min_size() {
            return Err(LayoutError { layout: self, size, min: self.min_size() });
        }
        // The last usable byte leaves room for the backup GPT, rounded down
        // to 4 KiB so every partition is whole sectors on 4Kn media too.
        let usable_end = (size - BACKUP_GPT_ROOM) / 4096 * 4096;
        let spec =
            |number, start: u64, len: u64, type_guid, role| PartitionSpec { number, start, len, type_guid, role };
        let mut partitions = Vec::new();
        match self {
            Layout::Esxi6 => {
                for (number, first, last, type_guid, role) in ESXI6_FIXED {
                    partitions.push(spec(number, first * SECTOR, (last + 1 - first) * SECTOR, type_guid, role));
                }
                let start = ESXI6_DATASTORE_START * SECTOR;
                partitions.push(spec(3, start, usable_end - start, VMFS, PartitionRole::Datastore));
            }
            Layout::Esxi7 => {
                let (first, last) = ESXI7_SYSTEM;
                partitions.push(spec(
                    1,
                    first * SECTOR,
                    (last + 1 - first) * SECTOR,
                    EFI_SYSTEM,
                    PartitionRole::SystemBoot,
                ));
                // The bank size follows the media size, as ESXi 7 does.
                let bank = if size >= ESXI7_LARGE_MEDIA { ESXI7_LARGE_BANK } else { ESXI7_SMALL_BANK };
                let bank5 = esxi7_next_start((last + 1) * SECTOR);
                let bank6 = esxi7_next_start(bank5 + bank);
                let osdata = esxi7_next_start(bank6 + bank);
                partitions.push(spec(5, bank5, bank, BASIC_DATA, PartitionRole::BootBank));
                partitions.push(spec(6, bank6, bank, BASIC_DATA, PartitionRole::BootBank));
                let rest = usable_end - osdata;
                let datastore_start = esxi7_next_start(osdata + ESXI7_OSDATA_MAX);
                if rest > ESXI7_OSDATA_MAX && usable_end >= datastore_start + ESXI7_MIN_DATASTORE {
                    partitions.push(spec(7, osdata, ESXI7_OSDATA_MAX, VMFS_L, PartitionRole::OsData));
                    partitions.push(spec(
                        8,
                        datastore_start,
                        usable_end - datastore_start,
                        VMFS,
                        PartitionRole::Datastore,
                    ));
                } else {
                    partitions.push(spec(7, osdata, rest, VMFS_L, PartitionRole::OsData));
                }
            }
        }
        partitions.sort_by_key(|p| p.number);
        Ok(DiskPlan { layout: self, size, partitions })
    }
}

impl DiskPlan {
    /// The partition with this number.
    pub fn partition(&self, number: u32) -> Option<&PartitionSpec> {
        self.partitions.iter().find(|p| p.number == number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esxi6_matches_partedutil_table() {
        let plan = Layout::Esxi6.plan(Some(8 * GIB)).unwrap();
        let rows: Vec<(u32, u64, u64)> =
            plan.partitions.iter().map(|p| (p.number, p.first_lba(512), p.last_lba(512))).collect();
        assert_eq!(
            rows[..8],
            [
                (1, 64, 8191),
                (2, 7086080, 15472639),
                (3, 15472640, rows[2].2),
                (5, 8224, 520191),
                (6, 520224, 1032191),
                (7, 1032224, 1257471),
                (8, 1257504, 1843199),
                (9, 1843200, 7086079),
            ]
        );
        assert!(rows[2].2 < 8 * GIB / 512 - 33, "datastore leaves room for the backup GPT");
    }

    #[test]
    fn default_size_is_the_minimum_and_smaller_is_refused() {
        for layout in [Layout::Esxi6, Layout::Esxi7] {
            let plan = layout.plan(None).unwrap();
            assert_eq!(plan.size, layout.min_size());
            let err = layout.plan(Some(layout.min_size() - 1)).unwrap_err();
            assert!(err.to_string().contains("needs at least"), "{err}");
        }
        assert!(Layout::Esxi6.min_size() <= 8 * GIB);
    }

    #[test]
    fn esxi7_bank_size_follows_media_size() {
        let small = Layout::Esxi7.plan(Some(16 * GIB)).unwrap();
        assert_eq!(small.partition(5).unwrap().first_lba(512), 208896);
        assert_eq!(small.partition(5).unwrap().last_lba(512), 1232895);
        assert_eq!(small.partition(6).unwrap().first_lba(512), 1234944);
        assert_eq!(small.partition(7).unwrap().first_lba(512), 2260992);
        assert!(small.partition(8).is_none());
        let large = Layout::Esxi7.plan(Some(64 * GIB)).unwrap();
        assert_eq!(large.partition(5).unwrap().len, 4 * GIB);
        assert!(large.partition(8).is_none(), "OSData takes everything up to 128 GiB");
        let huge = Layout::Esxi7.plan(Some(512 * GIB)).unwrap();
        assert_eq!(huge.partition(7).unwrap().len, 128 * GIB);
        assert_eq!(huge.partition(8).unwrap().type_guid, VMFS);
    }

    #[test]
    fn partitions_never_overlap_and_fit() {
        for (layout, size) in [
            (Layout::Esxi6, None),
            (Layout::Esxi6, Some(100 * GIB)),
            (Layout::Esxi7, None),
            (Layout::Esxi7, Some(200 * GIB)),
        ] {
            let plan = layout.plan(size).unwrap();
            let mut by_start = plan.partitions.clone();
            by_start.sort_by_key(|p| p.start);
            for pair in by_start.windows(2) {
                assert!(pair[0].start + pair[0].len <= pair[1].start, "{pair:?}");
            }
            let last = by_start.last().unwrap();
            assert!(last.start + last.len + BACKUP_GPT_ROOM <= plan.size);
            assert!(by_start.iter().all(|p| p.start % 4096 == 0 && p.len % 4096 == 0));
        }
    }
}
