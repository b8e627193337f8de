//! A boot bank as the running host sees it: `/bootbank` or `/altbootbank`,
//! and the shell-level steps the scripts take on it ([`Bank`]).
//!
//! ```text
//!   Bank (trait)       list read exists write remove remove_dir mkdir
//!                      move_into rename_replace sync capacity
//!     FatBank   fat    a FAT16 partition of the boot device
//!     RamBank   ram    a directory in the RAM-disk's /tmp (KB 2148321)
//!   BankLocation       which of the two a bank path points to; serialisable
//!   CacheMode          what a FAT bank's file system does between `sync`s
//!   BankError  error   kind (NotFound, NoSpace, ...) + bank + file + cause
//! ```
//!
//! Invariants:
//! - The bank holds no device: every step takes the boot device
//!   (`dev: &mut D`), so a fault layer or a write log can sit underneath.
//! - On a [`FatBank`] every step is its own mount and unmount, so each step
//!   reaches the device as real sector writes, in the order the step makes
//!   them. When the device is told they are durable is the bank's
//!   [`CacheMode`]: with [`CacheMode::WriteBack`] (the default) only at the
//!   scripts' `sync`, so an unflushed epoch spans every step since the last
//!   one; with [`CacheMode::WriteThrough`] after every step as well.
//! - A [`RamBank`] "works" and never touches the device: what it holds is
//!   lost with the host (and serialised with it).
//! - [`BankLocation`] serialises as it always has (`{"Partition": {number,
//!   first_lba, sectors}}` or `{"Ram": {name: bytes}}`).

mod error;
mod fat;
mod ram;

use visorsim_disk::BlockDevice;
use visorsim_media::layout::PartitionSpec;

pub use error::{BankError, BankErrorKind, BankId};
pub use fat::FatBank;
pub use ram::RamBank;

/// What a FAT bank's file system does with the writes of a step until the
/// next `sync` (`cache` on a scenario's disk, `--cache` of `visorsim explore`).
///
/// The boot banks are mounted by ESXi's own vfat driver, not Linux's, and
/// no public source says how it caches. backup.sh's own comment (power
/// failures and flash media caching make naive state saving unreliable) and
/// its one `sync` after the rename point to writes that are not durable
/// before that `sync`, which is what a default (not `-o sync`) Linux vfat
/// mount does too. So [`CacheMode::WriteBack`] is the default (visorsim's
/// choice) and [`CacheMode::WriteThrough`] the alternative to compare with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Writes reach the device in step order, but the device is told they
    /// are durable (a flush) only at `sync`: a power cut may lose any of
    /// them since the last `sync`, across the scripts' steps.
    #[default]
    WriteBack,
    /// As if mounted `-o sync`: every step ends with a flush, so a power cut
    /// loses at most writes of the step it interrupts.
    WriteThrough,
}

impl CacheMode {
    /// The name in scenario files and on the command line: `writeback`, `writethrough`.
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::WriteBack => "writeback",
            CacheMode::WriteThrough => "writethrough",
        }
    }

    /// The mode named `name` (`writeback`, `writethrough`, any case).
    pub fn from_name(name: &str) -> Option<CacheMode> {
        match name.to_ascii_lowercase().as_str() {
            "writeback" => Some(CacheMode::WriteBack),
            "writethrough" => Some(CacheMode::WriteThrough),
            _ => None,
        }
    }

    /// Whether this is the default, [`CacheMode::WriteBack`] (which a saved
    /// [`FatBank`] leaves out, so older `host.json` files keep their shape).
    pub fn is_write_back(&self) -> bool {
        *self == CacheMode::WriteBack
    }
}

impl std::fmt::Display for CacheMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// A file (or directory) a bank lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankEntry {
    /// Long name.
    pub name: String,
    /// Size.
    pub size: u64,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// What a bank can hold in files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Bytes in data clusters.
    pub bytes: u64,
    /// Bytes per cluster (the unit files are allocated in).
    pub cluster: u64,
}

/// The shell-level steps of ESXi's scripts on a bank, each on the device `dev`.
///
/// Names are in the bank's root directory, or `dir/file` where a step says so.
pub trait Bank<D: BlockDevice> {
    /// Which bank this is, for errors.
    fn id(&self) -> BankId;

    /// Lists the root directory (or `dir/`), without `.` and `..`.
    fn list(&self, dev: &mut D, dir: Option<&str>) -> Result<Vec<BankEntry>, BankError>;

    /// Reads a file (`name` may be `dir/file`), at most `max` bytes
    /// ([`BankErrorKind::TooLarge`] beyond).
    fn read(&self, dev: &mut D, name: &str, max: u64) -> Result<Vec<u8>, BankError>;

    /// Whether a file exists.
    fn exists(&self, dev: &mut D, name: &str) -> Result<bool, BankError>;

    /// Creates or truncates `name` and writes `data` (`tar czf file`, `cp`).
    fn write(&mut self, dev: &mut D, name: &str, data: &[u8]) -> Result<(), BankError>;

    /// `rm -f name` (files only; a missing file is not an error).
    fn remove(&mut self, dev: &mut D, name: &str) -> Result<(), BankError>;

    /// `rm -rf dir` of a directory holding only files (a missing one is not
    /// an error).
    fn remove_dir(&mut self, dev: &mut D, dir: &str) -> Result<(), BankError>;

    /// `mkdir dir` in the root directory, with the `.`/`..` entries Linux writes.
    fn mkdir(&mut self, dev: &mut D, dir: &str) -> Result<(), BankError>;

    /// `mv src dir/dst` (into a subdirectory: the new entry in the target
    /// directory first, then the old one deleted, as Linux does).
    fn move_into(&mut self, dev: &mut D, src: &str, dir: &str, dst: &str) -> Result<(), BankError>;

    /// `mv -f src dst` in the root directory, replacing `dst` the way Linux
    /// vfat does (the target's entry is repointed, then the source's entry
    /// deleted, then the old clusters freed).
    fn rename_replace(&mut self, dev: &mut D, src: &str, dst: &str) -> Result<(), BankError>;

    /// `sync`: every write of the steps before it is durable (a flush).
    fn sync(&self, dev: &mut D) -> Result<(), BankError>;

    /// What the bank can hold in files.
    fn capacity(&self, dev: &mut D) -> Result<Capacity, BankError>;
}

/// Where a bank path points: the value the host keeps (and saves).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BankLocation {
    /// A FAT partition of the boot device.
    Partition(FatBank),
    /// A directory in the RAM-disk (`/tmp`), lost at reboot.
    Ram(RamBank),
}

impl BankLocation {
    /// The partition `spec` of a device with `sector` bytes per sector.
    pub fn partition(spec: &PartitionSpec, sector: u64) -> BankLocation {
        BankLocation::fat(spec.number, spec.first_lba(sector), spec.len / sector)
    }

    /// Partition `number`: `sectors` sectors from `first_lba`, with the
    /// default [`CacheMode`].
    pub fn fat(number: u32, first_lba: u64, sectors: u64) -> BankLocation {
        BankLocation::Partition(FatBank { number, first_lba, sectors, cache: CacheMode::default() })
    }

    /// The same bank with its file system in `cache` mode (a RAM bank has none).
    pub fn with_cache(mut self, cache: CacheMode) -> BankLocation {
        if let BankLocation::Partition(b) = &mut self {
            b.cache = cache;
        }
        self
    }

    /// An empty directory in the RAM-disk.
    pub fn ram() -> BankLocation {
        BankLocation::Ram(RamBank::default())
    }

    fn as_bank<D: BlockDevice>(&self) -> &dyn Bank<D> {
        match self {
            BankLocation::Partition(b) => b,
            BankLocation::Ram(b) => b,
        }
    }

    fn as_bank_mut<D: BlockDevice>(&mut self) -> &mut dyn Bank<D> {
        match self {
            BankLocation::Partition(b) => b,
            BankLocation::Ram(b) => b,
        }
    }
}

impl<D: BlockDevice> Bank<D> for BankLocation {
    fn id(&self) -> BankId {
        self.as_bank::<D>().id()
    }
    fn list(&self, dev: &mut D, dir: Option<&str>) -> Result<Vec<BankEntry>, BankError> {
        self.as_bank().list(dev, dir)
    }
    fn read(&self, dev: &mut D, name: &str, max: u64) -> Result<Vec<u8>, BankError> {
        self.as_bank().read(dev, name, max)
    }
    fn exists(&self, dev: &mut D, name: &str) -> Result<bool, BankError> {
        self.as_bank().exists(dev, name)
    }
    fn write(&mut self, dev: &mut D, name: &str, data: &[u8]) -> Result<(), BankError> {
        self.as_bank_mut().write(dev, name, data)
    }
    fn remove(&mut self, dev: &mut D, name: &str) -> Result<(), BankError> {
        self.as_bank_mut().remove(dev, name)
    }
    fn remove_dir(&mut self, dev: &mut D, dir: &str) -> Result<(), BankError> {
        self.as_bank_mut().remove_dir(dev, dir)
    }
    fn mkdir(&mut self, dev: &mut D, dir: &str) -> Result<(), BankError> {
        self.as_bank_mut().mkdir(dev, dir)
    }
    fn move_into(&mut self, dev: &mut D, src: &str, dir: &str, dst: &str) -> Result<(), BankError> {
        self.as_bank_mut().move_into(dev, src, dir, dst)
    }
    fn rename_replace(&mut self, dev: &mut D, src: &str, dst: &str) -> Result<(), BankError> {
        self.as_bank_mut().rename_replace(dev, src, dst)
    }
    fn sync(&self, dev: &mut D) -> Result<(), BankError> {
        self.as_bank().sync(dev)
    }
    fn capacity(&self, dev: &mut D) -> Result<Capacity, BankError> {
        self.as_bank().capacity(dev)
    }
}
