//! The step before safeboot: the UEFI firmware starts the loader from the
//! EFI system partition (docs/bootloader.md, System partition).
//!
//! ESXi keeps its bootloader in the system partition (partition 1, type
//! EFI system, FAT): `\EFI\BOOT\BOOTX64.EFI` (the removable-media default
//! path a firmware boots without an NVRAM entry; ESXi's copy of safeboot),
//! `\EFI\VMware\safeboot64.efi` (what the installer's "VMware ESXi" NVRAM
//! entry names) and `\EFI\VMware\mboot64.efi` (the mboot safeboot
//! chainloads), plus `mboot.c32` and `safeboot.c32` in the root for legacy
//! BIOS (syslinux). visorsim models a disk moved to a machine without its
//! NVRAM entry, so the firmware needs [`FIRMWARE_LOADER`], and safeboot
//! then needs [`MBOOT`] beside it.
//!
//! When either is missing or unreadable, no bank boots at all: the code
//! that would scan the banks (and honour Shift+R) never runs.
//!
//! The firmware (unlike esx-boot) reads the backup GPT when the primary is
//! damaged, as the UEFI specification asks, and takes the first EFI system
//! partition of the table; on an MBR disk, the first partition of type
//! 0xEF. File names are matched ignoring case, as UEFI's FAT driver does.

use visorsim_disk::BlockDevice;
use visorsim_media::fatops::{list_dir_long, list_root_long, DirSlot};
use visorsim_media::fatread::FatReader;
use visorsim_media::gpt;
use visorsim_media::layout::EFI_SYSTEM;

use crate::volume::{scan_volumes, PartKind};

/// The file the firmware starts (removable-media default path).
pub const FIRMWARE_LOADER: &str = "/EFI/BOOT/BOOTX64.EFI";
/// The file safeboot chainloads.
pub const MBOOT: &str = "/EFI/VMware/mboot64.efi";
/// Every loader file of an ESXi 6.x/7.x system partition, as the installer
/// writes them (UEFI under `/EFI`, legacy BIOS in the root).
pub const LOADER_FILES: [&str; 5] =
    [FIRMWARE_LOADER, "/EFI/VMware/safeboot64.efi", MBOOT, "/mboot.c32", "/safeboot.c32"];

/// Where the firmware found the system partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemPartition {
    /// Partition number.
    pub number: u32,
    /// First LBA.
    pub first_lba: u64,
    /// Length in sectors.
    pub sectors: u64,
}

/// Finds the EFI system partition the firmware boots from.
pub fn find_system_partition<D: BlockDevice>(dev: &mut D) -> Result<SystemPartition, String> {
    let report = gpt::read_gpt(dev);
    if report.protective_mbr {
        let Some(table) = report.best() else {
            return Err("no usable GPT (neither the primary nor the backup)".to_owned());
        };
        return table
            .entries
            .iter()
            .find(|e| e.type_guid == EFI_SYSTEM)
            .map(|e| SystemPartition {
                number: e.number,
                first_lba: e.first_lba,
                sectors: e.last_lba.saturating_sub(e.first_lba) + 1,
            })
            .ok_or_else(|| "no EFI system partition in the GPT".to_owned());
    }
    scan_volumes(dev)
        .volumes
        .iter()
        .find(|v| v.kind == PartKind::Efi)
        .map(|v| SystemPartition { number: v.number, first_lba: v.first_lba, sectors: v.sectors })
        .ok_or_else(|| "no EFI system partition (no GPT, and no MBR partition of type 0xEF)".to_owned())
}

/// Looks `path` (absolute, `/`-separated) up on the FAT volume of
/// `reader`, each component ignoring case. `Ok(None)` when a component is
/// missing (or a directory where a file is wanted).
pub fn find_path<D: BlockDevice>(dev: &mut D, reader: &FatReader, path: &str) -> Result<Option<DirSlot>, String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut listing = list_root_long(dev, reader).map_err(|e| e.to_string())?;
    for (i, part) in parts.iter().enumerate() {
        let Some(slot) = listing.iter().find(|s| s.long_name.eq_ignore_ascii_case(part)).cloned() else {
            return Ok(None);
        };
        if i + 1 == parts.len() {
            return Ok((!slot.is_dir()).then_some(slot));
        }
        if !slot.is_dir() {
            return Ok(None);
        }
        listing = list_dir_long(dev, reader, &slot.short).map_err(|e| e.to_string())?;
    }
    Ok(None)
}

/// The firmware's step: the system partition must hold [`FIRMWARE_LOADER`]
/// and [`MBOOT`], readable to their last byte. `Err` says why the loader
/// cannot start, naming the partition and the file.
pub fn check_loader<D: BlockDevice>(dev: &mut D) -> Result<SystemPartition, String> {
    let part = find_system_partition(dev)?;
    let n = part.number;
    let reader = FatReader::open(dev, part.first_lba, part.sectors)
        .map_err(|e| format!("the system partition (partition {n}) is unreadable: {e}"))?;
    for path in [FIRMWARE_LOADER, MBOOT] {
        let slot = find_path(dev, &reader, path)
            .map_err(|e| format!("the system partition (partition {n}) is unreadable looking for {path}: {e}"))?
            .ok_or_else(|| format!("{path} is missing from the system partition (partition {n})"))?;
        if slot.short.size == 0 {
            return Err(format!("{path} on the system partition (partition {n}) is empty"));
        }
        reader
            .read(dev, &slot.short, u64::from(slot.short.size))
            .map_err(|e| format!("{path} on the system partition (partition {n}) is unreadable: {e}"))?;
    }
    Ok(part)
}

/// The loader files present on the system partition, with their sizes, in
/// [`LOADER_FILES`] order (for `inspect`); files that are missing are left out.
pub fn loader_files<D: BlockDevice>(dev: &mut D, part: &SystemPartition) -> Vec<(String, u32)> {
    let Ok(reader) = FatReader::open(dev, part.first_lba, part.sectors) else { return Vec::new() };
    LOADER_FILES
        .iter()
        .filter_map(|path| match find_path(dev, &reader, path) {
            Ok(Some(slot)) => Some((path.to_string(), slot.short.size)),
            _ => None,
        })
        .collect()
}
