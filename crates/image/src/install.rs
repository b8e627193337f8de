//! A fresh install, as ESXi's installer leaves a boot disk: the GPT of the
//! layout, every FAT partition formatted, the VMware FAT UUID on both banks,
//! the image in bank 5 with `bootstate=0` and `updated=1`, and bank 6
//! formatted but empty.
//!
//! ```text
//! LBA 0, 1..   protective MBR, primary GPT (backup GPT in the last sectors);
//!              GUIDs derived from the seed
//! system boot  FAT16 (FAT12 on 4Kn): the loader, as labelled stand-ins:
//!              /EFI/BOOT/BOOTX64.EFI, /EFI/VMware/{safeboot64,mboot64}.efi,
//!              /mboot.c32, /safeboot.c32 (visorsim_boot::firmware)
//! bank 5       FAT16, VMware FAT UUID in sector 1: the image's modules, then
//!              boot.cfg (bootstate=0, updated=1)
//! bank 6       FAT16, VMware FAT UUID in sector 1: no files
//! store,       FAT16, no files
//! scratch
//! others       (diagnostic, coredump, datastore, OSData) left unwritten
//! ```
//!
//! Everything reaches the device as sector writes through `gpt`, our FAT16
//! formatter and `fatfs`, so a [`visorsim_disk::WriteLog`] under it sees
//! what real media would. Failures are an [`InstallError`] naming the
//! partition and what was being written.

use std::io::{self, Write};

use uuid::Uuid;
use visorsim_boot::firmware::{FIRMWARE_LOADER, MBOOT};
use visorsim_disk::{BlockDevice, MemDisk, SectorSize};
use visorsim_media::fat::{self, FatError, IMAGE_TIME};
use visorsim_media::fatops;
use visorsim_media::fatread::FatReader;
use visorsim_media::layout::{DiskPlan, Layout, LayoutError, PartitionRole, PartitionSpec};
use visorsim_media::vmfat::{self, VmfatUuid};

use super::system::{sub_seed, ImageFile, SystemImage};

/// How to install.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstallOptions {
    /// Which layout.
    pub layout: Layout,
    /// Disk size in bytes; `None` for the layout's smallest.
    pub size: Option<u64>,
    /// Logical sector size.
    pub sector_size: SectorSize,
    /// Seed of the GUIDs, UUIDs and volume serial numbers.
    pub seed: u64,
}

/// What a fresh install produced.
#[derive(Clone, Debug)]
pub struct Installed {
    /// The partition plan.
    pub plan: DiskPlan,
    /// The GPT disk GUID.
    pub disk_guid: Uuid,
    /// (partition number, UUID) of each bank.
    pub bank_uuids: Vec<(u32, VmfatUuid)>,
}

/// Why an install failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The disk is too small for the layout.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A FAT volume could not be made.
    #[error("Partition {number}")]
    Fat {
        /// Partition number.
        number: u32,
        /// Cause.
        #[source]
        source: FatError,
    },
    /// Writing a partition or a file failed.
    #[error("Partition {number}: {what}")]
    Io {
        /// Partition number.
        number: u32,
        /// What was being written.
        what: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

/// What kind of step an install failed in, for callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallErrorKind {
    /// The disk is too small for the layout.
    Layout,
    /// A FAT volume could not be made.
    Fat,
    /// Writing the GPT, a partition or a file failed.
    Io,
}

impl InstallError {
    /// What failed.
    pub fn kind(&self) -> InstallErrorKind {
        match self {
            InstallError::Layout(_) => InstallErrorKind::Layout,
            InstallError::Fat { .. } => InstallErrorKind::Fat,
            InstallError::Io { .. } => InstallErrorKind::Io,
        }
    }

    /// The partition the error is in; `Some(0)` for the whole disk (the
    /// GPT, the final flush), `None` for a layout error.
    pub fn partition(&self) -> Option<u32> {
        match self {
            InstallError::Layout(_) => None,
            InstallError::Fat { number, .. } | InstallError::Io { number, .. } => Some(*number),
        }
    }
}

/// Seeds of the derived identifiers (sub-seed indexes).
const SEED_DISK_GUID: u64 = 1000;
const SEED_PART_GUID: u64 = 1100;
const SEED_BANK_UUID: u64 = 1200;
const SEED_VOLUME_ID: u64 = 1300;

/// Installs `image` on a new sparse in-memory disk.
pub fn install_fresh(image: &SystemImage, opts: &InstallOptions) -> Result<(MemDisk, Installed), InstallError> {
    let plan = opts.layout.plan(opts.size)?;
    let disk = MemDisk::with_size(plan.size, opts.sector_size);
    install_on(disk, &plan, image, opts.seed)
}

/// Installs `image` on `dev` following `plan`.
pub fn install_on<D: BlockDevice>(
    dev: D,
    plan: &DiskPlan,
    image: &SystemImage,
    seed: u64,
) -> Result<(D, Installed), InstallError> {
    let disk_guid = Uuid::from_u64_pair(sub_seed(seed, SEED_DISK_GUID), sub_seed(seed, SEED_DISK_GUID + 1));
    let part_guids: Vec<Uuid> = plan
        .partitions
        .iter()
        .map(|p| Uuid::from_u64_pair(sub_seed(seed, SEED_PART_GUID + u64::from(p.number)), sub_seed(seed, 7)))
        .collect();
    let mut dev = visorsim_media::gpt::write_table(dev, plan, disk_guid, &part_guids)
        .map_err(|source| InstallError::Io { number: 0, what: "writing the GPT".into(), source })?;
    let ss = dev.sector_size().bytes_u64();
    let mut bank_uuids = Vec::new();
    for part in plan.partitions.iter().filter(|p| p.role.is_fat()) {
        let first = part.first_lba(ss);
        let sectors = part.len / ss;
        let volume_id = sub_seed(seed, SEED_VOLUME_ID + u64::from(part.number)) as u32;
        fat::format(&mut dev, first, sectors, volume_id)
            .map_err(|source| InstallError::Fat { number: part.number, source })?;
        if part.role == PartitionRole::BootBank {
            let uuid = VmfatUuid::from_seed(sub_seed(seed, SEED_BANK_UUID + u64::from(part.number)));
            vmfat::write_uuid(&mut dev, first, uuid).map_err(|e| InstallError::Io {
                number: part.number,
                what: "writing the VMware FAT UUID".into(),
                source: e.into(),
            })?;
            bank_uuids.push((part.number, uuid));
        }
    }
    if let Some(system) = plan.partitions.iter().find(|p| p.role == PartitionRole::SystemBoot) {
        write_system_partition(&mut dev, system, &image.spec.version)?;
    }
    // The installer writes the image into bank 5 only (bootstate=0,
    // updated=1) and leaves bank 6 formatted but empty.
    let bank5 = plan.partition(5).expect("every layout has bank 5");
    let mut cfg = image.boot_cfg.clone();
    cfg.bootstate = 0;
    cfg.updated = 1;
    let mut files = image.files.clone();
    files.push(ImageFile { name: "boot.cfg".into(), data: cfg.render().into_bytes() });
    write_files(&mut dev, bank5, &files)?;
    dev.flush().map_err(|e| InstallError::Io { number: 0, what: "flushing".into(), source: e.into() })?;
    Ok((dev, Installed { plan: plan.clone(), disk_guid, bank_uuids }))
}

/// Writes `files` into the root directory of the FAT volume of `part`, in
/// order, then unmounts it cleanly and flushes. Root directory only: every
/// file of an ESXi bank lives there, and fatfs 0.3.6 writes new
/// subdirectories whose `.`/`..` entries `fsck.fat` rejects.
pub fn write_files<D: BlockDevice>(dev: &mut D, part: &PartitionSpec, files: &[ImageFile]) -> Result<(), InstallError> {
    let ss = dev.sector_size().bytes_u64();
    let io_err = |what: String| move |source: io::Error| InstallError::Io { number: part.number, what, source };
    let fs =
        fat::mount(&mut *dev, part.first_lba(ss), part.len / ss, &IMAGE_TIME).map_err(io_err("mounting".into()))?;
    {
        let root = fs.root_dir();
        for f in files {
            let name = f.name.as_str();
            let mut file = root.create_file(name).map_err(io_err(format!("creating {}", f.name)))?;
            file.truncate().map_err(io_err(format!("truncating {}", f.name)))?;
            file.write_all(&f.data).map_err(io_err(format!("writing {}", f.name)))?;
            file.flush().map_err(io_err(format!("writing {}", f.name)))?;
        }
    }
    fs.unmount().map_err(io_err("unmounting".into()))?;
    dev.flush().map_err(|e| io_err("flushing".into())(e.into()))
}

/// Writes the loader files into the system partition `part`, as ESXi's
/// installer leaves them ([`visorsim_boot::firmware::LOADER_FILES`]).
/// visorsim does not run the bootloader's binaries, so each file is a
/// labelled stand-in. The legacy BIOS loaders lie in the root; the UEFI
/// ones under `EFI/BOOT` and `EFI/VMware`, directories made with `fatfs`
/// whose first cluster is then rewritten as Linux vfat's mkdir leaves it
/// (fatfs 0.3.6 puts LFN slots before "." and "..", which `fsck.fat`
/// rejects: [`fatops::fix_new_dir`], [`fatops::fix_new_subdir`]).
fn write_system_partition<D: BlockDevice>(
    dev: &mut D,
    part: &PartitionSpec,
    version: &str,
) -> Result<(), InstallError> {
    let stub = |what: &str| format!("visorsim stand-in for the ESXi {version} {what}\n").into_bytes();
    write_files(
        dev,
        part,
        &[
            ImageFile { name: "mboot.c32".into(), data: stub("BIOS mboot") },
            ImageFile { name: "safeboot.c32".into(), data: stub("BIOS safeboot") },
        ],
    )?;
    let n = part.number;
    let ss = dev.sector_size().bytes_u64();
    let (first, sectors) = (part.first_lba(ss), part.len / ss);
    let io_err = |what: &str| {
        let what = what.to_owned();
        move |source: io::Error| InstallError::Io { number: n, what, source }
    };
    let op_err = |what: &str| {
        let what = what.to_owned();
        move |e: fatops::FatOpError| InstallError::Io { number: n, what, source: io::Error::other(e.to_string()) }
    };
    let reader = |dev: &mut D| {
        FatReader::open(dev, first, sectors).map_err(|e| InstallError::Io {
            number: n,
            what: "reading the FAT".into(),
            source: io::Error::other(e.to_string()),
        })
    };
    // EFI in the root, then BOOT and VMware inside it, each fixed up.
    let fs = fat::mount(&mut *dev, first, sectors, &IMAGE_TIME).map_err(io_err("mounting"))?;
    fs.root_dir().create_dir("EFI").map_err(io_err("creating EFI"))?;
    fs.unmount().map_err(io_err("unmounting"))?;
    let r = reader(dev)?;
    let efi = fatops::find_root_long(dev, &r, "EFI").map_err(op_err("finding EFI"))?.ok_or_else(|| {
        InstallError::Io { number: n, what: "finding EFI".into(), source: io::Error::from(io::ErrorKind::NotFound) }
    })?;
    fatops::fix_new_dir(dev, &r, &efi.short).map_err(op_err("fixing EFI"))?;
    let fs = fat::mount(&mut *dev, first, sectors, &IMAGE_TIME).map_err(io_err("mounting"))?;
    {
        let efi_dir = fs.root_dir().open_dir("EFI").map_err(io_err("opening EFI"))?;
        efi_dir.create_dir("BOOT").map_err(io_err("creating EFI/BOOT"))?;
        efi_dir.create_dir("VMware").map_err(io_err("creating EFI/VMware"))?;
    }
    fs.unmount().map_err(io_err("unmounting"))?;
    let r = reader(dev)?;
    for sub in fatops::list_dir_long(dev, &r, &efi.short).map_err(op_err("listing EFI"))? {
        if sub.is_dir() && sub.long_name != "." && sub.long_name != ".." {
            fatops::fix_new_subdir(dev, &r, &sub.short, &efi.short).map_err(op_err("fixing a directory of EFI"))?;
        }
    }
    let fs = fat::mount(&mut *dev, first, sectors, &IMAGE_TIME).map_err(io_err("mounting"))?;
    {
        let root = fs.root_dir();
        for (path, what) in [
            (FIRMWARE_LOADER, "UEFI safeboot (the removable-media default loader)"),
            ("/EFI/VMware/safeboot64.efi", "UEFI safeboot"),
            (MBOOT, "UEFI mboot"),
        ] {
            let rel = path.trim_start_matches('/');
            let mut file = root.create_file(rel).map_err(io_err(&format!("creating {rel}")))?;
            file.truncate().map_err(io_err(&format!("truncating {rel}")))?;
            file.write_all(&stub(what)).map_err(io_err(&format!("writing {rel}")))?;
            file.flush().map_err(io_err(&format!("writing {rel}")))?;
        }
    }
    fs.unmount().map_err(io_err("unmounting"))?;
    dev.flush().map_err(|e| io_err("flushing")(e.into()))
}
