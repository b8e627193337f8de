//! `inspect`: what is on a boot disk, read the way a diagnostic tool would.
//!
//! Unlike the bootloader (which trusts the primary GPT only), inspect reads
//! both GPT copies and, like gdisk, falls back to the backup when the
//! primary is damaged, saying so. For every FAT partition it reads the boot
//! sector, the VMware FAT UUID, boot.cfg and each module (gzip header,
//! trailer, full inflate and CRC check). Every problem is collected with
//! where it is (partition, byte offset, file); nothing is ever written.
//!
//! Bytes are hostile: reads are bounded by the partition and the device,
//! and `fatfs` is only asked for files that fit their partition.

use std::collections::HashMap;

use serde::Serialize;
use uuid::Uuid;
use visorsim_boot::bootcfg::BootCfg;
use visorsim_boot::firmware;
use visorsim_boot::gzip::{self, ModuleCheck};
use visorsim_disk::BlockDevice;
use visorsim_media::fat::{check_volume, FatCheck, Severity, IMAGE_TIME};
use visorsim_media::fatread::{esx_short_name, short_name, FatReadError, FatReader};
use visorsim_media::gpt::{self, Copy as GptCopy, Table};
use visorsim_media::layout::{Layout, BASIC_DATA, EFI_SYSTEM, VMFS_L, VMK_DIAGNOSTIC};
use visorsim_media::vmfat;

/// Everything inspect found.
#[derive(Clone, Debug, Serialize)]
pub struct DiskReport {
    /// Device size in bytes.
    pub size: u64,
    /// Logical sector size.
    pub sector_size: u32,
    /// Whether LBA 0 holds a protective MBR.
    pub protective_mbr: bool,
    /// Which GPT copy the table below comes from (`None`: no usable GPT).
    pub gpt_source: Option<GptCopy>,
    /// Why the primary GPT is unusable, if it is.
    pub primary_gpt_error: Option<String>,
    /// Why the backup GPT is unusable, if it is.
    pub backup_gpt_error: Option<String>,
    /// Disk GUID.
    pub disk_guid: Option<Uuid>,
    /// The ESXi layout the partition table follows, when it is one.
    pub layout: Option<Layout>,
    /// Used partitions, by number.
    pub partitions: Vec<PartitionReport>,
    /// Every problem found, each naming where it is.
    pub problems: Vec<String>,
}

/// One partition.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionReport {
    /// Partition number (GPT entry index).
    pub number: u32,
    /// First LBA.
    pub start: u64,
    /// Last LBA.
    pub end: u64,
    /// Type GUID.
    pub type_guid: Uuid,
    /// partedUtil's alias for the type.
    pub type_alias: String,
    /// GPT name.
    pub name: String,
    /// The FAT volume, for basic-data and EFI partitions that hold one.
    pub fat: Option<FatReport>,
    /// For the EFI system partition: the loader files found
    /// ([`visorsim_boot::firmware::LOADER_FILES`], in that order).
    pub loader: Vec<LoaderFile>,
}

/// A loader file of the system partition.
#[derive(Clone, Debug, Serialize)]
pub struct LoaderFile {
    /// Its path, as [`visorsim_boot::firmware::LOADER_FILES`] names it.
    pub path: String,
    /// Size in bytes.
    pub size: u32,
}

/// A FAT volume and, for banks, their ESXi content.
#[derive(Clone, Debug, Serialize)]
pub struct FatReport {
    /// FAT type as fatfs reads it (`Fat16` for every ESXi volume).
    pub fat_type: String,
    /// Bytes per cluster.
    pub cluster_bytes: u32,
    /// Data clusters.
    pub clusters: u32,
    /// VMware FAT UUID (32 hex digits), when sector 1 holds the magic.
    pub vmware_uuid: Option<vmfat::VmfatUuid>,
    /// Files in the root directory (name, size).
    pub files: Vec<FileEntry>,
    /// boot.cfg as both loaders read it, if the volume has one and it parses.
    pub boot_cfg: Option<BootCfg>,
    /// Modules listed by boot.cfg (kernel first), each checked.
    pub modules: Vec<ModuleReport>,
    /// What `fsck.fat -n` would report about the volume
    /// ([`visorsim_media::fat::check_volume`]): each finding's class, where
    /// (cluster, entry, byte offset on the disk) and what fsck.fat does.
    pub check: FatCheck,
}

/// A file of a FAT root directory.
#[derive(Clone, Debug, Serialize)]
pub struct FileEntry {
    /// Long name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// 8.3 short name, as the bootloader looks files up.
    pub short_name: String,
}

/// One module of a bank.
#[derive(Clone, Debug, Serialize)]
pub struct ModuleReport {
    /// File name.
    pub name: String,
    /// Whether the file exists.
    pub present: bool,
    /// How many times boot.cfg lists it (mboot loads each listing; the
    /// module is read and checked once).
    pub listed: usize,
    /// The check, when present.
    #[serde(flatten)]
    pub check: Option<ModuleCheck>,
}

/// Inspects `dev` within the default memory budget
/// ([`visorsim_boot::load::DEFAULT_MEMORY_BUDGET`]). Problems are collected
/// in the report, never panicked on.
pub fn inspect<D: BlockDevice>(dev: &mut D) -> DiskReport {
    inspect_within(dev, visorsim_boot::load::DEFAULT_MEMORY_BUDGET)
}

/// Inspects `dev`, its reads drawing on `memory_budget` bytes (`--ram`):
/// a file is read whole and its check inflates through a 1 MiB buffer, so
/// a file larger than the budget is not read but reported, and inspect
/// holds at most about the budget whatever the disk says.
pub fn inspect_within<D: BlockDevice>(dev: &mut D, memory_budget: u64) -> DiskReport {
    let mut problems = Vec::new();
    let ss = dev.sector_size().bytes_u64();
    let size = dev.size_bytes();
    if size == 0 {
        problems.push("The image is empty (0 bytes): no partition table".to_owned());
    }
    let report = gpt::read_gpt(dev);
    let primary_gpt_error = report.primary.as_ref().err().map(|e| e.to_string());
    let backup_gpt_error = report.backup.as_ref().err().map(|e| e.to_string());
    let table = report.best().cloned();
    if size > 0 {
        if !report.protective_mbr {
            problems.push("LBA 0 (byte 0): no protective MBR (type 0xEE from LBA 1)".to_owned());
        }
        match (&report.primary, &report.backup) {
            (Ok(_), Ok(_)) => {}
            (Err(p), Ok(_)) => problems.push(format!(
                "{p}; the backup GPT is intact and is shown instead (the ESXi bootloader reads only the primary: it would find no hypervisor)"
            )),
            (Ok(_), Err(b)) => problems.push(format!("{b}; the primary GPT is intact")),
            (Err(p), Err(b)) => problems.push(format!("No usable GPT: {p}; {b}")),
        }
    }
    let mut partitions = Vec::new();
    if let Some(table) = &table {
        for entry in &table.entries {
            partitions.push(inspect_partition(dev, table, entry, ss, memory_budget, &mut problems));
        }
    }
    DiskReport {
        size,
        sector_size: dev.sector_size().bytes(),
        protective_mbr: report.protective_mbr,
        gpt_source: table.as_ref().map(|t| t.copy),
        primary_gpt_error,
        backup_gpt_error,
        disk_guid: table.as_ref().map(|t| t.disk_guid),
        layout: table.as_ref().and_then(guess_layout),
        partitions,
        problems,
    }
}

/// ESXi 7 has ESX-OSData (VMFS-L) at 7; ESXi 6 has vmkDiagnostic at 7 and 9.
fn guess_layout(table: &Table) -> Option<Layout> {
    let type_of = |n: u32| table.entries.iter().find(|e| e.number == n).map(|e| e.type_guid);
    let banks = type_of(5) == Some(BASIC_DATA) && type_of(6) == Some(BASIC_DATA);
    match (banks, type_of(7), type_of(9)) {
        (true, Some(VMFS_L), _) => Some(Layout::Esxi7),
        (true, Some(VMK_DIAGNOSTIC), Some(VMK_DIAGNOSTIC)) => Some(Layout::Esxi6),
        _ => None,
    }
}

fn inspect_partition<D: BlockDevice>(
    dev: &mut D,
    table: &Table,
    entry: &gpt::Entry,
    ss: u64,
    memory_budget: u64,
    problems: &mut Vec<String>,
) -> PartitionReport {
    let mut report = PartitionReport {
        number: entry.number,
        start: entry.first_lba,
        end: entry.last_lba,
        type_guid: entry.type_guid,
        type_alias: gpt::type_alias(&entry.type_guid).to_owned(),
        name: entry.name.clone(),
        fat: None,
        loader: Vec::new(),
    };
    let where_ =
        format!("Partition {} (LBA {}, byte {})", entry.number, entry.first_lba, entry.first_lba.saturating_mul(ss));
    if entry.last_lba < entry.first_lba || entry.last_lba >= dev.sector_count() || entry.first_lba < table.first_usable
    {
        problems.push(format!(
            "{where_}: extent {}–{} lies outside the disk's usable sectors",
            entry.first_lba, entry.last_lba
        ));
        return report;
    }
    if entry.type_guid != BASIC_DATA && entry.type_guid != EFI_SYSTEM {
        return report;
    }
    let sectors = entry.last_lba - entry.first_lba + 1;
    let uuid = match vmfat::read_uuid(dev, entry.first_lba) {
        Ok(u) => u,
        Err(e) => {
            problems.push(format!("{where_}: cannot read sector 1: {e}"));
            None
        }
    };
    // Banks are the basic-data partitions 5 and 6 of every ESXi layout.
    let is_bank = entry.type_guid == BASIC_DATA && matches!(entry.number, 5 | 6);
    if is_bank && uuid.is_none() {
        problems.push(format!(
            "{where_}: no VMware FAT UUID (\"VMWARE FAT16    \") at byte {} (sector 1): the bootloader ignores this bank",
            (entry.first_lba + 1).saturating_mul(ss)
        ));
    }
    report.fat = read_fat(dev, entry.first_lba, sectors, uuid, &where_, memory_budget, problems);
    if entry.type_guid == EFI_SYSTEM && report.fat.is_some() {
        let part = firmware::SystemPartition { number: entry.number, first_lba: entry.first_lba, sectors };
        report.loader =
            firmware::loader_files(dev, &part).into_iter().map(|(path, size)| LoaderFile { path, size }).collect();
        if let Err(why) = firmware::check_loader(dev) {
            problems.push(format!("{where_}: {why}: the firmware cannot start the loader, so no bank boots"));
        }
    }
    report
}

/// Largest boot.cfg inspect reads (the real loader reads any size; a
/// boot.cfg larger than this is reported rather than loaded).
const MAX_BOOT_CFG: u64 = 16 << 20;

fn read_fat<D: BlockDevice>(
    dev: &mut D,
    first_lba: u64,
    sectors: u64,
    vmware_uuid: Option<vmfat::VmfatUuid>,
    where_: &str,
    memory_budget: u64,
    problems: &mut Vec<String>,
) -> Option<FatReport> {
    let ss = dev.sector_size().bytes_u64();
    let part_bytes = sectors.saturating_mul(ss);
    // The boot sector through the loader's own reader first (bounded, field
    // by field). A volume it cannot read is not handed to fatfs, whose
    // FAT32 root directory walk follows a looping cluster chain forever.
    let reader = match FatReader::open(&mut *dev, first_lba, sectors) {
        Ok(reader) => reader,
        Err(FatReadError::Unsupported { what, .. }) => {
            problems.push(format!(
                "{where_}: not a FAT16 volume at byte {}: {what}. ESXi formats its banks FAT16; visorsim's loader reads FAT12/16 only and finds no boot.cfg here, so this bank is not bootable in visorsim (esx-boot's own FAT driver would read a FAT32 volume)",
                first_lba.saturating_mul(ss)
            ));
            return None;
        }
        Err(e) => {
            problems
                .push(format!("{where_}: no readable FAT boot sector at byte {}: {e}", first_lba.saturating_mul(ss)));
            return None;
        }
    };
    // The checker first: it reads only, bounded, whatever the bytes hold.
    let check = check_volume(&mut *dev, first_lba, sectors);
    for finding in check.findings.iter().filter(|f| f.severity == Severity::Damage) {
        problems.push(format!("{where_}: FAT damage (fsck.fat would repair it): {finding}"));
    }
    // fatfs validates the BPB field by field; deeper corruption (cluster
    // chains) is bounded below by only reading files that fit the partition.
    let fs = match visorsim_media::fat::mount(&mut *dev, first_lba, sectors, &IMAGE_TIME) {
        Ok(fs) => fs,
        Err(e) => {
            problems
                .push(format!("{where_}: no readable FAT boot sector at byte {}: {e}", first_lba.saturating_mul(ss)));
            return None;
        }
    };
    let stats = fs.stats().ok();
    let mut report = FatReport {
        fat_type: format!("{:?}", fs.fat_type()),
        cluster_bytes: stats.as_ref().map_or(0, |s| s.cluster_size()),
        clusters: stats.as_ref().map_or(0, |s| s.total_clusters()),
        vmware_uuid,
        files: Vec::new(),
        boot_cfg: None,
        modules: Vec::new(),
        check,
    };
    for entry in fs.root_dir().iter() {
        match entry {
            Ok(e) if e.is_file() => {
                report.files.push(FileEntry { name: e.file_name(), size: e.len(), short_name: e.short_file_name() })
            }
            Ok(_) => {}
            Err(e) => {
                problems.push(format!("{where_}: root directory unreadable: {e}"));
                break;
            }
        }
    }
    drop(fs);
    // Files are read as the loader reads them: by the entry's short name,
    // along a chain checked for loops and for its length before anything
    // is allocated, never more than the partition holds.
    let mut read = |name: &str, problems: &mut Vec<String>| -> Option<Vec<u8>> {
        let entry = report.files.iter().find(|f| f.name.eq_ignore_ascii_case(name))?;
        if entry.size > part_bytes {
            problems.push(format!("{where_}: {name} claims {} bytes, more than the partition holds", entry.size));
            return None;
        }
        if entry.size > memory_budget {
            problems.push(format!(
                "{where_}: {name} is {} bytes, more than the memory budget of {memory_budget} bytes (--ram): not read, \
                 so not checked (mboot would stop with \"Fatal error: 10 (Out of resources)\")",
                entry.size
            ));
            return None;
        }
        let short = short_name(&entry.short_name)?;
        let result = reader
            .find_short(&mut *dev, &short)
            .and_then(|file| file.map(|f| reader.read(&mut *dev, &f, part_bytes)).transpose());
        match result {
            Ok(data) => data,
            Err(e) => {
                problems.push(format!("{where_}: cannot read {name}: {e}"));
                None
            }
        }
    };
    // esx-boot finds boot.cfg by its short name, so the lookup ignores case.
    if report.files.iter().any(|f| f.name.eq_ignore_ascii_case("boot.cfg") && f.size > MAX_BOOT_CFG) {
        problems.push(format!("{where_}: boot.cfg is larger than {MAX_BOOT_CFG} bytes; not parsed"));
    } else if let Some(text) = read("boot.cfg", problems) {
        match BootCfg::parse(&text) {
            Ok(cfg) => report.boot_cfg = Some(cfg),
            Err(e) => problems.push(format!("{where_}: {e}: the bootloader rejects the whole file")),
        }
    } else if vmware_uuid.is_some() && !report.files.is_empty() {
        problems.push(format!("{where_}: bank has files but no boot.cfg"));
    }
    if let Some(cfg) = report.boot_cfg.clone() {
        let names = std::iter::once(cfg.kernel.clone()).chain(cfg.modules.iter().cloned()).filter(|n| !n.is_empty());
        // Each name is read and checked once, however often it is listed:
        // the work stays linear in the size of boot.cfg.
        let mut seen: HashMap<String, usize> = HashMap::new();
        for name in names {
            if let Some(&at) = seen.get(&name) {
                report.modules[at].listed += 1;
                continue;
            }
            seen.insert(name.clone(), report.modules.len());
            let lookup = name.trim_start_matches('/');
            match read(lookup, problems) {
                Some(data) => {
                    // esx-boot finds modules by their 8.3 short name only.
                    let wanted = esx_short_name(lookup.as_bytes());
                    let findable = report.files.iter().any(|f| short_name(&f.short_name) == Some(wanted));
                    if !findable {
                        problems.push(format!(
                            "{where_}: module {name} has no 8.3 short name {:?}: the bootloader will not find it (\"Fatal error: 15 (Not found)\")",
                            String::from_utf8_lossy(&wanted)
                        ));
                    }
                    let check = gzip::check_module(&data);
                    if let Err(e) = &check.outcome {
                        problems.push(format!("{where_}: module {name}: {e}"));
                    }
                    report.modules.push(ModuleReport { name, present: true, listed: 1, check: Some(check) });
                }
                None => {
                    if !report.files.iter().any(|f| f.name.eq_ignore_ascii_case(lookup)) {
                        problems.push(format!("{where_}: module {name} is listed in boot.cfg but missing (the loader stops with \"Fatal error: 15 (Not found)\")"));
                    }
                    report.modules.push(ModuleReport { name, present: false, listed: 1, check: None });
                }
            }
        }
        for m in report.modules.iter().filter(|m| m.listed > 1) {
            problems.push(format!(
                "{where_}: boot.cfg lists {} {} times: mboot loads every listing, each into memory of its own",
                m.name, m.listed
            ));
        }
    }
    Some(report)
}
