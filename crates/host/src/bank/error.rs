//! [`BankError`]: what a bank step failed with, as a kind to match on
//! ([`BankErrorKind`]), the bank and file it concerned, and the cause.
//!
//! Invariants:
//! - The error is transparent: its `Display` is the cause's own message and
//!   [`std::error::Error::source`] is the cause's source, so a message that
//!   quotes it (`jumpstart could not reset the bootstate: <message>`) reads
//!   exactly as the failed step said it. The context is in [`BankError::bank`]
//!   and [`BankError::file`].
//! - The kind is decided once, where the cause is typed (fatfs, fatops,
//!   the device), never by callers reading the message.

use std::error::Error;
use std::fmt;
use std::io;

use visorsim_disk::{DiskError, DiskErrorKind};
use visorsim_media::fatops::FatOpError;
use visorsim_media::fatread::FatReadError;

/// fatfs's message when the FAT has no free cluster (it gives it
/// `ErrorKind::Other`).
const FATFS_NO_SPACE: &str = "No space left on device";

/// What went wrong in a bank step, for callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BankErrorKind {
    /// No such file or directory.
    NotFound,
    /// The bank (or its root directory) is full: ENOSPC.
    NoSpace,
    /// A file is larger than the caller allows.
    TooLarge,
    /// The file system contradicts itself or cannot be mounted.
    Corrupt,
    /// The device failed, or anything else: EIO.
    Io,
}

/// Which bank a step was on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BankId {
    /// A FAT partition of the boot device, by number.
    Partition(u32),
    /// A directory in the RAM-disk's `/tmp` (KB 2148321).
    Ram,
}

impl fmt::Display for BankId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BankId::Partition(n) => write!(f, "partition {n}"),
            BankId::Ram => f.write_str("/tmp (RAM)"),
        }
    }
}

/// A failed bank step: kind, bank, file, cause (see the module docs).
#[derive(Debug)]
pub struct BankError {
    kind: BankErrorKind,
    bank: BankId,
    file: Option<String>,
    source: Box<dyn Error + Send + Sync + 'static>,
}

impl BankError {
    /// An error of `kind` on `bank` (about `file`, if any), caused by `source`.
    pub fn new(
        kind: BankErrorKind,
        bank: BankId,
        file: Option<&str>,
        source: impl Into<Box<dyn Error + Send + Sync + 'static>>,
    ) -> BankError {
        BankError { kind, bank, file: file.map(str::to_owned), source: source.into() }
    }

    /// `<name>: No such file or directory`.
    pub(crate) fn not_found(bank: BankId, name: &str) -> BankError {
        let source = io::Error::new(io::ErrorKind::NotFound, format!("{name}: No such file or directory"));
        BankError::new(BankErrorKind::NotFound, bank, Some(name), source)
    }

    /// An I/O error of fatfs (or of the device under it), classified.
    pub(crate) fn from_io(bank: BankId, file: Option<&str>, e: io::Error) -> BankError {
        let kind = match e.kind() {
            io::ErrorKind::NotFound => BankErrorKind::NotFound,
            io::ErrorKind::StorageFull => BankErrorKind::NoSpace,
            _ => match e.get_ref().and_then(|inner| inner.downcast_ref::<DiskError>()) {
                Some(d) => disk_kind(d),
                None if e.to_string() == FATFS_NO_SPACE => BankErrorKind::NoSpace,
                None => BankErrorKind::Io,
            },
        };
        BankError::new(kind, bank, file, e)
    }

    /// A failed mount: the device's error, else a file system that cannot be mounted.
    pub(crate) fn from_mount(bank: BankId, e: io::Error) -> BankError {
        let disk = e.get_ref().and_then(|inner| inner.downcast_ref::<DiskError>()).map(disk_kind);
        match disk {
            Some(kind) => BankError::new(kind, bank, None, e),
            None => BankError::new(BankErrorKind::Corrupt, bank, None, e),
        }
    }

    /// An error of `visorsim_media::fatops`, classified by its variant.
    pub(crate) fn from_fatop(bank: BankId, file: Option<&str>, e: FatOpError) -> BankError {
        let kind = match &e {
            FatOpError::NotFound { .. } => BankErrorKind::NotFound,
            FatOpError::RootFull { .. } => BankErrorKind::NoSpace,
            FatOpError::Corrupt { .. } => BankErrorKind::Corrupt,
            FatOpError::Read(r) => read_kind(r),
            FatOpError::Disk(d) => disk_kind(d),
            _ => BankErrorKind::Io,
        };
        BankError::new(kind, bank, file, e)
    }

    /// An error of `visorsim_media::fatread`, classified by its variant.
    pub(crate) fn from_fatread(bank: BankId, e: FatReadError) -> BankError {
        BankError::new(read_kind(&e), bank, None, e)
    }

    /// A device error (a `sync`'s flush).
    pub(crate) fn from_disk(bank: BankId, e: DiskError) -> BankError {
        let kind = disk_kind(&e);
        // As an `io::Error`, as the shell would see it (its kind, its OS error).
        BankError::new(kind, bank, None, io::Error::from(e))
    }

    /// What went wrong.
    pub fn kind(&self) -> BankErrorKind {
        self.kind
    }

    /// The bank the step was on.
    pub fn bank(&self) -> BankId {
        self.bank
    }

    /// The file the step was about, if it was about one.
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// The OS error number of the cause, when the cause is an OS error
    /// (what a script's `$?` would carry); `None` otherwise.
    pub fn os_error(&self) -> Option<i32> {
        self.source.downcast_ref::<io::Error>().and_then(io::Error::raw_os_error)
    }
}

impl fmt::Display for BankError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl Error for BankError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.source()
    }
}

fn disk_kind(e: &DiskError) -> BankErrorKind {
    match e.kind() {
        DiskErrorKind::NoSpace => BankErrorKind::NoSpace,
        _ => BankErrorKind::Io,
    }
}

fn read_kind(e: &FatReadError) -> BankErrorKind {
    match e {
        FatReadError::TooLarge { .. } => BankErrorKind::TooLarge,
        FatReadError::Disk(d) => disk_kind(d),
        _ => BankErrorKind::Corrupt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classified_by_kind_and_cause() {
        let id = BankId::Partition(5);
        let e = |err| BankError::from_io(id, Some("f"), err).kind();
        assert_eq!(e(io::Error::new(io::ErrorKind::NotFound, "x")), BankErrorKind::NotFound);
        assert_eq!(e(io::Error::other(FATFS_NO_SPACE)), BankErrorKind::NoSpace);
        assert_eq!(e(io::Error::from(DiskError::new(DiskErrorKind::NoSpace, 7))), BankErrorKind::NoSpace);
        assert_eq!(e(io::Error::from(DiskError::new(DiskErrorKind::PowerLost, 7))), BankErrorKind::Io);
        assert_eq!(e(io::Error::other("something about space")), BankErrorKind::Io, "no guessing from text");
    }

    #[test]
    fn display_is_the_cause_and_context_is_kept() {
        let e = BankError::not_found(BankId::Ram, "state.tgz");
        assert_eq!(e.to_string(), "state.tgz: No such file or directory");
        assert_eq!((e.kind(), e.bank(), e.file()), (BankErrorKind::NotFound, BankId::Ram, Some("state.tgz")));
        assert_eq!(e.os_error(), None);
        let os = BankError::from_io(BankId::Partition(6), None, io::Error::from_raw_os_error(28));
        assert_eq!(os.os_error(), Some(28));
        assert_eq!(os.kind(), BankErrorKind::NoSpace);
    }
}
