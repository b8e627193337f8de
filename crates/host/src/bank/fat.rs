//! [`FatBank`]: a bank that is a FAT16 partition of the boot device.
//!
//! Invariants:
//! - Every step mounts the volume with `fatfs`, does one shell-level step
//!   and unmounts: each step reaches the device as real sector writes, in
//!   the order the step makes them.
//! - Flushes follow the bank's [`CacheMode`]: `sync` always flushes; with
//!   [`CacheMode::WriteThrough`] every step ends with a flush too (reads
//!   included; a flush with nothing pending changes nothing), with [`CacheMode::WriteBack`] (the default) no other step does,
//!   so the writes of backup.sh's steps share one unflushed epoch until its
//!   `sync` (and crash-point exploration reorders across them).
//! - `mkdir` and `mv -f` use `visorsim_media::fatops` for what fatfs gets
//!   wrong or cannot do (proper `.`/`..` entries; Linux vfat's
//!   rename-over-existing).
//! - Errors are classified where they are typed (see [`BankError`]).

use std::io::{self, Read, Write};

use visorsim_disk::{BlockDevice, ContentToken, DiskError, SectorSize};
use visorsim_media::fat::{self, IMAGE_TIME};
use visorsim_media::fatops;
use visorsim_media::fatread::FatReader;

use super::{Bank, BankEntry, BankError, BankErrorKind, BankId, CacheMode, Capacity};

/// A FAT partition of the boot device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FatBank {
    /// Partition number.
    pub number: u32,
    /// First LBA.
    pub first_lba: u64,
    /// Sectors.
    pub sectors: u64,
    /// When its writes are flushed (left out of the JSON when it is the
    /// default, write-back, so saved hosts keep their shape).
    #[serde(default, skip_serializing_if = "CacheMode::is_write_back")]
    pub cache: CacheMode,
}

impl FatBank {
    fn bank(&self) -> BankId {
        BankId::Partition(self.number)
    }

    /// The end of a step: a flush in write-through mode, nothing
    /// in write-back mode (the next `sync` flushes).
    fn step_written<D: BlockDevice>(&self, dev: &mut D) -> Result<(), BankError> {
        match self.cache {
            CacheMode::WriteThrough => dev.flush().map_err(|e| BankError::from_disk(self.bank(), e)),
            CacheMode::WriteBack => Ok(()),
        }
    }

    /// Mounts, runs `op`, unmounts, ends the step ([`FatBank::step_written`]).
    /// fatfs flushes its device when a file is flushed and at unmount; in
    /// write-back mode those flushes do not reach the device.
    fn with_fs<D: BlockDevice, T>(
        &self,
        dev: &mut D,
        op: impl FnOnce(&fat::Volume<Mounted<'_, D>>) -> Result<T, BankError>,
    ) -> Result<T, BankError> {
        let id = self.bank();
        let mounted = Mounted { dev: &mut *dev, cache: self.cache };
        let fs =
            fat::mount(mounted, self.first_lba, self.sectors, &IMAGE_TIME).map_err(|e| BankError::from_mount(id, e))?;
        let result = op(&fs);
        let unmounted = fs.unmount();
        let value = result?;
        unmounted.map_err(|e| BankError::from_io(id, None, e))?;
        self.step_written(dev)?;
        Ok(value)
    }

    fn reader<D: BlockDevice>(&self, dev: &mut D) -> Result<FatReader, BankError> {
        FatReader::open(dev, self.first_lba, self.sectors).map_err(|e| BankError::from_fatread(self.bank(), e))
    }

    /// The classifier of fatfs errors about `file`.
    fn io<'a>(&self, file: &'a str) -> impl Fn(io::Error) -> BankError + 'a {
        let id = self.bank();
        move |e| BankError::from_io(id, Some(file), e)
    }
}

/// The device as a mounted vfat sees it: every request passes, except that
/// in write-back mode a flush fatfs asks for is not one (only `sync` is).
struct Mounted<'a, D> {
    dev: &'a mut D,
    cache: CacheMode,
}

impl<D: BlockDevice> BlockDevice for Mounted<'_, D> {
    fn sector_size(&self) -> SectorSize {
        self.dev.sector_size()
    }
    fn sector_count(&self) -> u64 {
        self.dev.sector_count()
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.dev.read_sectors(lba, buf)
    }
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), DiskError> {
        self.dev.write_sectors(lba, buf)
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        match self.cache {
            CacheMode::WriteThrough => self.dev.flush(),
            CacheMode::WriteBack => Ok(()),
        }
    }
    fn content_token(&self, lba: u64, count: u64) -> Option<ContentToken> {
        self.dev.content_token(lba, count)
    }
}

impl<D: BlockDevice> Bank<D> for FatBank {
    fn id(&self) -> BankId {
        self.bank()
    }

    fn list(&self, dev: &mut D, dir: Option<&str>) -> Result<Vec<BankEntry>, BankError> {
        let io = |e| BankError::from_io(self.bank(), dir, e);
        self.with_fs(dev, |fs| {
            let d = match dir {
                Some(name) => fs.root_dir().open_dir(name).map_err(io)?,
                None => fs.root_dir(),
            };
            let mut out = Vec::new();
            for e in d.iter() {
                let e = e.map_err(io)?;
                let name = e.file_name();
                if name == "." || name == ".." {
                    continue;
                }
                out.push(BankEntry { name, size: e.len(), is_dir: e.is_dir() });
            }
            Ok(out)
        })
    }

    fn read(&self, dev: &mut D, name: &str, max: u64) -> Result<Vec<u8>, BankError> {
        let io = self.io(name);
        self.with_fs(dev, |fs| {
            let mut file = fs.root_dir().open_file(name).map_err(&io)?;
            let mut data = Vec::new();
            (&mut file).take(max.saturating_add(1)).read_to_end(&mut data).map_err(&io)?;
            if data.len() as u64 > max {
                let e = io::Error::new(io::ErrorKind::InvalidData, format!("{name} is larger than {max} bytes"));
                return Err(BankError::new(BankErrorKind::TooLarge, self.bank(), Some(name), e));
            }
            Ok(data)
        })
    }

    fn exists(&self, dev: &mut D, name: &str) -> Result<bool, BankError> {
        self.with_fs(dev, |fs| Ok(fs.root_dir().open_file(name).is_ok()))
    }

    fn write(&mut self, dev: &mut D, name: &str, data: &[u8]) -> Result<(), BankError> {
        let io = self.io(name);
        self.with_fs(dev, |fs| {
            let mut file = fs.root_dir().create_file(name).map_err(&io)?;
            file.truncate().map_err(&io)?;
            file.write_all(data).map_err(&io)?;
            file.flush().map_err(&io)
        })
    }

    fn remove(&mut self, dev: &mut D, name: &str) -> Result<(), BankError> {
        // Linux vfat's order (the name, then the chain), not fatfs's (the
        // chain, then the name): a power cut in between must leave lost
        // clusters, never a live entry over free clusters that the next
        // file written would take over.
        let id = self.bank();
        let reader = self.reader(dev)?;
        fatops::remove_file(dev, &reader, name).map_err(|e| BankError::from_fatop(id, Some(name), e))?;
        self.step_written(dev)
    }

    fn remove_dir(&mut self, dev: &mut D, dir: &str) -> Result<(), BankError> {
        let io = self.io(dir);
        self.with_fs(dev, |fs| {
            let root = fs.root_dir();
            let Ok(d) = root.open_dir(dir) else { return Ok(()) };
            let names: Vec<String> =
                d.iter().filter_map(|e| e.ok()).map(|e| e.file_name()).filter(|n| n != "." && n != "..").collect();
            for n in names {
                d.remove(&n).map_err(|e| BankError::from_io(self.bank(), Some(&format!("{dir}/{n}")), e))?;
            }
            root.remove(dir).map_err(io)
        })
    }

    fn mkdir(&mut self, dev: &mut D, dir: &str) -> Result<(), BankError> {
        let io = self.io(dir);
        self.with_fs(dev, |fs| fs.root_dir().create_dir(dir).map(|_| ()).map_err(io))?;
        let id = self.bank();
        let reader = self.reader(dev)?;
        let entry = fatops::list_root_long(dev, &reader)
            .map_err(|e| BankError::from_fatop(id, Some(dir), e))?
            .into_iter()
            .find(|s| s.long_name == dir)
            .ok_or_else(|| BankError::not_found(id, dir))?;
        // fix_new_dir ends with a flush of its own: one more that only
        // write-through lets through.
        let mut mounted = Mounted { dev: &mut *dev, cache: self.cache };
        fatops::fix_new_dir(&mut mounted, &reader, &entry.short)
            .map_err(|e| BankError::from_fatop(id, Some(dir), e))?;
        self.step_written(dev)
    }

    fn move_into(&mut self, dev: &mut D, src: &str, dir: &str, dst: &str) -> Result<(), BankError> {
        let io = self.io(src);
        self.with_fs(dev, |fs| {
            let root = fs.root_dir();
            let target = root.open_dir(dir).map_err(|e| BankError::from_io(self.bank(), Some(dir), e))?;
            root.rename(src, &target, dst).map_err(io)
        })
    }

    fn rename_replace(&mut self, dev: &mut D, src: &str, dst: &str) -> Result<(), BankError> {
        let id = self.bank();
        let reader = self.reader(dev)?;
        fatops::rename_replace(dev, &reader, src, dst).map_err(|e| BankError::from_fatop(id, Some(src), e))?;
        self.step_written(dev)
    }

    fn sync(&self, dev: &mut D) -> Result<(), BankError> {
        dev.flush().map_err(|e| BankError::from_disk(self.bank(), e))
    }

    fn capacity(&self, dev: &mut D) -> Result<Capacity, BankError> {
        let id = self.bank();
        self.with_fs(dev, |fs| {
            let stats = fs.stats().map_err(|e| BankError::from_io(id, None, e))?;
            let cluster = u64::from(stats.cluster_size());
            Ok(Capacity { bytes: u64::from(stats.total_clusters()) * cluster, cluster })
        })
    }
}
