//! A boot bank as the running host sees it: `/bootbank` or `/altbootbank`.
//!
//! On the boot device a bank is a FAT16 partition; every operation mounts it
//! with `fatfs`, does one shell-level step (write a file, `rm`, `mkdir`,
//! `mv -f`) and unmounts, so each step reaches the device as real sector
//! writes. `mkdir` and `mv -f` use `visorsim_media::fatops` for what fatfs
//! gets wrong or cannot do (proper `.`/`..` entries; Linux vfat's
//! rename-over-existing). When the boot device was not claimed in time
//! (KB 2148321) the bank is a directory on the RAM-disk instead: everything
//! "works", nothing reaches the disk.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use visorsim_disk::BlockDevice;
use visorsim_media::fat::{self, IMAGE_TIME};
use visorsim_media::fatops;
use visorsim_media::fatread::FatReader;
use visorsim_media::layout::PartitionSpec;

/// Where a bank path points.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BankLocation {
    /// A FAT partition of the boot device.
    Partition {
        /// Partition number.
        number: u32,
        /// First LBA.
        first_lba: u64,
        /// Sectors.
        sectors: u64,
    },
    /// A directory in the RAM-disk (`/tmp`), lost at reboot.
    Ram(BTreeMap<String, Vec<u8>>),
}

impl BankLocation {
    /// The partition `spec` of a device with `sector` bytes per sector.
    pub fn partition(spec: &PartitionSpec, sector: u64) -> BankLocation {
        BankLocation::Partition { number: spec.number, first_lba: spec.first_lba(sector), sectors: spec.len / sector }
    }
}

/// Files a bank can list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankEntry {
    /// Long name.
    pub name: String,
    /// Size.
    pub size: u64,
    /// Whether it is a directory.
    pub is_dir: bool,
}

fn with_fs<D: BlockDevice, T>(
    dev: &mut D,
    first_lba: u64,
    sectors: u64,
    op: impl FnOnce(&fat::Volume<&mut D>) -> io::Result<T>,
) -> io::Result<T> {
    let fs = fat::mount(&mut *dev, first_lba, sectors, &IMAGE_TIME)?;
    let result = op(&fs);
    let unmounted = fs.unmount();
    let value = result?;
    unmounted?;
    dev.flush()?;
    Ok(value)
}

/// Lists the root directory (or `dir/`).
pub fn list<D: BlockDevice>(dev: &mut D, bank: &BankLocation, dir: Option<&str>) -> io::Result<Vec<BankEntry>> {
    match bank {
        BankLocation::Ram(files) => {
            let prefix = dir.map(|d| format!("{d}/")).unwrap_or_default();
            Ok(files
                .iter()
                .filter_map(|(name, data)| {
                    let rest = name.strip_prefix(&prefix)?;
                    (!rest.contains('/')).then(|| BankEntry {
                        name: rest.to_owned(),
                        size: data.len() as u64,
                        is_dir: false,
                    })
                })
                .collect())
        }
        BankLocation::Partition { first_lba, sectors, .. } => with_fs(dev, *first_lba, *sectors, |fs| {
            let d = match dir {
                Some(name) => fs.root_dir().open_dir(name)?,
                None => fs.root_dir(),
            };
            let mut out = Vec::new();
            for e in d.iter() {
                let e = e?;
                let name = e.file_name();
                if name == "." || name == ".." {
                    continue;
                }
                out.push(BankEntry { name, size: e.len(), is_dir: e.is_dir() });
            }
            Ok(out)
        }),
    }
}

/// Reads a file (`name` may be `dir/file`), at most `max` bytes.
pub fn read<D: BlockDevice>(dev: &mut D, bank: &BankLocation, name: &str, max: u64) -> io::Result<Vec<u8>> {
    match bank {
        BankLocation::Ram(files) => files.get(name).cloned().ok_or_else(|| not_found(name)),
        BankLocation::Partition { first_lba, sectors, .. } => with_fs(dev, *first_lba, *sectors, |fs| {
            let mut file = fs.root_dir().open_file(name)?;
            let mut data = Vec::new();
            (&mut file).take(max.saturating_add(1)).read_to_end(&mut data)?;
            if data.len() as u64 > max {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{name} is larger than {max} bytes")));
            }
            Ok(data)
        }),
    }
}

/// Whether a file exists.
pub fn exists<D: BlockDevice>(dev: &mut D, bank: &BankLocation, name: &str) -> io::Result<bool> {
    match bank {
        BankLocation::Ram(files) => Ok(files.contains_key(name)),
        BankLocation::Partition { first_lba, sectors, .. } => {
            with_fs(dev, *first_lba, *sectors, |fs| Ok(fs.root_dir().open_file(name).is_ok()))
        }
    }
}

/// Creates or truncates `name` and writes `data` (`tar czf file`, `cp`).
pub fn write<D: BlockDevice>(dev: &mut D, bank: &mut BankLocation, name: &str, data: &[u8]) -> io::Result<()> {
    match bank {
        BankLocation::Ram(files) => {
            files.insert(name.to_owned(), data.to_vec());
            Ok(())
        }
        BankLocation::Partition { first_lba, sectors, .. } => with_fs(dev, *first_lba, *sectors, |fs| {
            let mut file = fs.root_dir().create_file(name)?;
            file.truncate()?;
            file.write_all(data)?;
            file.flush()
        }),
    }
}

/// `rm -f name` (files only; a missing file is not an error).
pub fn remove<D: BlockDevice>(dev: &mut D, bank: &mut BankLocation, name: &str) -> io::Result<()> {
    match bank {
        BankLocation::Ram(files) => {
            files.remove(name);
            Ok(())
        }
        BankLocation::Partition { first_lba, sectors, .. } => {
            with_fs(dev, *first_lba, *sectors, |fs| match fs.root_dir().remove(name) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            })
        }
    }
}

/// `rm -rf dir` of a directory holding only files.
pub fn remove_dir<D: BlockDevice>(dev: &mut D, bank: &mut BankLocation, dir: &str) -> io::Result<()> {
    match bank {
        BankLocation::Ram(files) => {
            let prefix = format!("{dir}/");
            files.retain(|k, _| !k.starts_with(&prefix));
            Ok(())
        }
        BankLocation::Partition { first_lba, sectors, .. } => with_fs(dev, *first_lba, *sectors, |fs| {
            let root = fs.root_dir();
            let Ok(d) = root.open_dir(dir) else { return Ok(()) };
            let names: Vec<String> =
                d.iter().filter_map(|e| e.ok()).map(|e| e.file_name()).filter(|n| n != "." && n != "..").collect();
            for n in names {
                d.remove(&n)?;
            }
            root.remove(dir)
        }),
    }
}

/// `mkdir dir` in the root directory, with the `.`/`..` entries Linux writes.
pub fn mkdir<D: BlockDevice>(dev: &mut D, bank: &mut BankLocation, dir: &str) -> io::Result<()> {
    match bank {
        BankLocation::Ram(_) => Ok(()),
        BankLocation::Partition { first_lba, sectors, .. } => {
            let (first_lba, sectors) = (*first_lba, *sectors);
            with_fs(dev, first_lba, sectors, |fs| fs.root_dir().create_dir(dir).map(|_| ()))?;
            let reader = FatReader::open(dev, first_lba, sectors).map_err(io::Error::other)?;
            let entry = fatops::list_root_long(dev, &reader)
                .map_err(io::Error::other)?
                .into_iter()
                .find(|s| s.long_name == dir)
                .ok_or_else(|| not_found(dir))?;
            fatops::fix_new_dir(dev, &reader, &entry.short).map_err(io::Error::other)
        }
    }
}

/// `mv src dir/dst` (into a subdirectory; fatfs does this as Linux does:
/// new entry in the target directory, then the old one deleted).
pub fn move_into<D: BlockDevice>(
    dev: &mut D,
    bank: &mut BankLocation,
    src: &str,
    dir: &str,
    dst: &str,
) -> io::Result<()> {
    match bank {
        BankLocation::Ram(files) => {
            let data = files.remove(src).ok_or_else(|| not_found(src))?;
            files.insert(format!("{dir}/{dst}"), data);
            Ok(())
        }
        BankLocation::Partition { first_lba, sectors, .. } => with_fs(dev, *first_lba, *sectors, |fs| {
            let root = fs.root_dir();
            let target = root.open_dir(dir)?;
            root.rename(src, &target, dst)
        }),
    }
}

/// `mv -f src dst` in the root directory: replaces `dst` the way Linux vfat
/// does (the target's entry is repointed, then the source's entry deleted,
/// then the old clusters freed).
pub fn rename_replace<D: BlockDevice>(dev: &mut D, bank: &mut BankLocation, src: &str, dst: &str) -> io::Result<()> {
    match bank {
        BankLocation::Ram(files) => {
            let data = files.remove(src).ok_or_else(|| not_found(src))?;
            files.insert(dst.to_owned(), data);
            Ok(())
        }
        BankLocation::Partition { first_lba, sectors, .. } => {
            let reader = FatReader::open(dev, *first_lba, *sectors).map_err(io::Error::other)?;
            fatops::rename_replace(dev, &reader, src, dst).map_err(io::Error::other)?;
            dev.flush().map_err(io::Error::from)
        }
    }
}

/// `sync`.
pub fn sync<D: BlockDevice>(dev: &mut D, bank: &BankLocation) -> io::Result<()> {
    match bank {
        BankLocation::Ram(_) => Ok(()),
        BankLocation::Partition { .. } => dev.flush().map_err(io::Error::from),
    }
}

/// Bytes a bank can hold in files (its data clusters), and its cluster size.
pub fn capacity<D: BlockDevice>(dev: &mut D, bank: &BankLocation) -> io::Result<(u64, u64)> {
    match bank {
        BankLocation::Ram(_) => Ok((u64::MAX, 4096)),
        BankLocation::Partition { first_lba, sectors, .. } => with_fs(dev, *first_lba, *sectors, |fs| {
            let stats = fs.stats()?;
            let cluster = u64::from(stats.cluster_size());
            Ok((u64::from(stats.total_clusters()) * cluster, cluster))
        }),
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: No such file or directory"))
}
