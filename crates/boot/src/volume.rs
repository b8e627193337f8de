//! The partitions safeboot can see, as `bootlib/volume.c`, `gpt.c` and
//! `mbr.c` find them (docs/bootloader.md, Bank scan, steps 1–2).
//!
//! - LBA 0 entry 1 with type 0xEE, start LBA 1 and boot flag 0 means GPT;
//!   then only the **primary** header at LBA 1 is read (signature, MyLBA,
//!   header CRC, entry-array CRC). A bad primary means no partitions at all,
//!   even with an intact backup: esx-boot never reads the backup GPT.
//! - Otherwise MBR: entries 1–4 of LBA 0 (whose own 0x55AA is not checked)
//!   and logical partitions 5.. along the first extended partition's EBR
//!   chain (each EBR must carry 0x55AA).
//! - Partition numbers are tried in ascending order; on GPT the number is
//!   the entry index.

use serde::Serialize;
use visorsim_disk::BlockDevice;
use visorsim_media::gpt;
use visorsim_media::layout::{BASIC_DATA, EFI_SYSTEM};
use visorsim_media::mbr::{self, PartitionEntry};

/// What safeboot makes of a partition's type (`gpt_to_partinfo`, `vmfat_get_uuid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// FAT (GPT basic data; MBR 0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E): accepted.
    Fat,
    /// EFI system partition (GPT ESP, MBR 0xEF): accepted.
    Efi,
    /// Empty entry (zero GUID, MBR type 0): skipped silently.
    Empty,
    /// Any other type (VMFS, VMFS-L, vmkDiagnostic, extended, 0xEE...): rejected.
    Other,
}

/// One partition as safeboot sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// Partition number.
    pub number: u32,
    /// Type class.
    pub kind: PartKind,
    /// First LBA.
    pub first_lba: u64,
    /// Length in sectors.
    pub sectors: u64,
}

/// How the disk is partitioned, as safeboot decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VolumeTable {
    /// "gpt" or "mbr".
    pub scheme: &'static str,
    /// Why no partition can be found, when the table is unusable.
    pub error: Option<String>,
    /// The highest partition number tried.
    pub max_number: u32,
    /// Partitions 1..=max that exist (missing numbers are "not found").
    pub volumes: Vec<Volume>,
}

/// Bound on the EBR chain walk.
const MAX_LOGICAL: u32 = 256;

/// Finds the partitions the way safeboot does.
pub fn scan_volumes<D: BlockDevice>(dev: &mut D) -> VolumeTable {
    let ss = dev.sector_size().len();
    let mut lba0 = vec![0u8; ss];
    if let Err(e) = dev.read_sectors(0, &mut lba0) {
        return VolumeTable {
            scheme: "mbr",
            error: Some(format!("cannot read LBA 0: {e}")),
            max_number: 0,
            volumes: Vec::new(),
        };
    }
    let entry1 = PartitionEntry::parse(&lba0, 0);
    let protective = entry1.is_protective() && entry1.status == 0;
    if protective {
        return match gpt::read_primary(dev) {
            Ok(table) => {
                let volumes = table
                    .entries
                    .iter()
                    .map(|e| Volume {
                        number: e.number,
                        kind: match e.type_guid {
                            BASIC_DATA => PartKind::Fat,
                            EFI_SYSTEM => PartKind::Efi,
                            _ => PartKind::Other,
                        },
                        first_lba: e.first_lba,
                        sectors: e.last_lba.saturating_sub(e.first_lba).saturating_add(1),
                    })
                    .collect();
                VolumeTable { scheme: "gpt", error: None, max_number: table.entry_count, volumes }
            }
            Err(e) => VolumeTable { scheme: "gpt", error: Some(e.to_string()), max_number: 0, volumes: Vec::new() },
        };
    }
    let mut volumes = Vec::new();
    let mut extended = None;
    for (number, e) in (1..).zip(mbr::entries(&lba0)) {
        let start = u64::from(e.first_lba);
        if e.is_extended() && extended.is_none() {
            extended = Some(start);
        }
        volumes.push(Volume { number, kind: mbr_kind(e.kind), first_lba: start, sectors: e.sectors.into() });
    }
    let mut number = 4;
    if let Some(ext_start) = extended {
        let mut ebr_lba = ext_start;
        let mut ebr = vec![0u8; ss];
        for _ in 0..MAX_LOGICAL {
            if dev.read_sectors(ebr_lba, &mut ebr).is_err() || !mbr::has_signature(&ebr) {
                break;
            }
            // An EBR's first entry is the logical partition (relative to the
            // EBR), its second the link to the next EBR (relative to the
            // extended partition).
            let [logical, link, ..] = mbr::entries(&ebr);
            number += 1;
            volumes.push(Volume {
                number,
                kind: mbr_kind(logical.kind),
                first_lba: ebr_lba.saturating_add(logical.first_lba.into()),
                sectors: logical.sectors.into(),
            });
            if link.kind == 0 || link.first_lba == 0 {
                break;
            }
            ebr_lba = ext_start.saturating_add(link.first_lba.into());
        }
    }
    VolumeTable { scheme: "mbr", error: None, max_number: number, volumes }
}

fn mbr_kind(kind: u8) -> PartKind {
    match kind {
        0x00 => PartKind::Empty,
        0x01 | 0x04 | 0x06 | 0x0B | 0x0C | 0x0E => PartKind::Fat,
        0xEF => PartKind::Efi,
        _ => PartKind::Other,
    }
}
