//! [`DiskError`]: a kind to match on, the LBA it happened at, and the cause.

use std::fmt;
use std::io;

/// What went wrong, for callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskErrorKind {
    /// The request reaches past the end of the device.
    OutOfRange,
    /// The buffer is not a whole number of sectors.
    Misaligned,
    /// The device refuses writes.
    ReadOnly,
    /// The underlying file or medium reported an I/O error.
    Io,
    /// The device has no power (a simulated power cut, see `Faulty`).
    PowerLost,
    /// The medium cannot read (or write) a sector: a latent sector error.
    MediaError,
    /// The device is full: a write to a sector never written before was refused.
    NoSpace,
    /// The device has vanished (a USB stick or SD card pulled).
    DeviceGone,
}

/// An error of a block device, naming the LBA of the request.
#[derive(Debug)]
pub struct DiskError {
    kind: DiskErrorKind,
    lba: u64,
    detail: Option<String>,
    source: Option<io::Error>,
}

impl DiskError {
    /// A new error of `kind` for a request at `lba`.
    pub fn new(kind: DiskErrorKind, lba: u64) -> DiskError {
        DiskError { kind, lba, detail: None, source: None }
    }

    /// Adds a human-readable detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> DiskError {
        self.detail = Some(detail.into());
        self
    }

    /// Adds the underlying I/O error.
    pub fn with_source(mut self, source: io::Error) -> DiskError {
        self.source = Some(source);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> DiskErrorKind {
        self.kind
    }

    /// The first LBA of the failed request.
    pub fn lba(&self) -> u64 {
        self.lba
    }
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            DiskErrorKind::OutOfRange => "Out of range",
            DiskErrorKind::Misaligned => "Misaligned request",
            DiskErrorKind::ReadOnly => "Device is read-only",
            DiskErrorKind::Io => "I/O error",
            DiskErrorKind::PowerLost => "Power lost",
            DiskErrorKind::MediaError => "Media error",
            DiskErrorKind::NoSpace => "No space left on device",
            DiskErrorKind::DeviceGone => "Device is gone",
        };
        write!(f, "{what} at LBA {}", self.lba)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DiskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

impl From<DiskError> for io::Error {
    fn from(e: DiskError) -> io::Error {
        let kind = match e.kind {
            DiskErrorKind::OutOfRange => io::ErrorKind::UnexpectedEof,
            DiskErrorKind::Misaligned => io::ErrorKind::InvalidInput,
            DiskErrorKind::ReadOnly => io::ErrorKind::PermissionDenied,
            DiskErrorKind::Io => io::ErrorKind::Other,
            // EIO on a real host.
            DiskErrorKind::PowerLost | DiskErrorKind::MediaError => io::ErrorKind::Other,
            // ENOSPC: "[Errno 28] No space left on device".
            DiskErrorKind::NoSpace => io::ErrorKind::StorageFull,
            // ENODEV/ENXIO have no `io::ErrorKind`; "not connected" is the closest.
            DiskErrorKind::DeviceGone => io::ErrorKind::NotConnected,
        };
        io::Error::new(kind, e)
    }
}
