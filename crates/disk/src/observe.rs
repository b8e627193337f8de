//! Watching a device: [`Observed`] calls a hook for every write and flush,
//! [`WriteLog`] records them. Both see events in the order the device
//! receives them, which is the order crash-point exploration replays.

use crate::device::{BlockDevice, ContentToken, SectorSize};
use crate::error::DiskError;

/// One event seen on a device, borrowed from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoEvent<'a> {
    /// Sectors written at `lba`.
    Write {
        /// First sector.
        lba: u64,
        /// The bytes written (whole sectors).
        data: &'a [u8],
    },
    /// A flush (durability barrier).
    Flush,
}

/// An owned [`IoEvent`], as kept by [`WriteLog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggedIo {
    /// Sectors written at `lba`.
    Write {
        /// First sector.
        lba: u64,
        /// The bytes written (whole sectors).
        data: Vec<u8>,
    },
    /// A flush.
    Flush,
}

impl From<IoEvent<'_>> for LoggedIo {
    fn from(e: IoEvent<'_>) -> LoggedIo {
        match e {
            IoEvent::Write { lba, data } => LoggedIo::Write { lba, data: data.to_vec() },
            IoEvent::Flush => LoggedIo::Flush,
        }
    }
}

/// A device that calls `hook` for every write and flush that the inner
/// device accepted, in order. Failed requests are not reported.
pub struct Observed<D, F> {
    inner: D,
    hook: F,
}

impl<D: BlockDevice, F: FnMut(IoEvent<'_>)> Observed<D, F> {
    /// Wraps `inner`.
    pub fn new(inner: D, hook: F) -> Observed<D, F> {
        Observed { inner, hook }
    }

    /// Gives the inner device back.
    pub fn into_inner(self) -> D {
        self.inner
    }
}

impl<D: BlockDevice, F: FnMut(IoEvent<'_>)> BlockDevice for Observed<D, F> {
    fn sector_size(&self) -> SectorSize {
        self.inner.sector_size()
    }
    fn sector_count(&self) -> u64 {
        self.inner.sector_count()
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.inner.read_sectors(lba, buf)
    }
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), DiskError> {
        self.inner.write_sectors(lba, buf)?;
        (self.hook)(IoEvent::Write { lba, data: buf });
        Ok(())
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        self.inner.flush()?;
        (self.hook)(IoEvent::Flush);
        Ok(())
    }
    fn content_token(&self, lba: u64, count: u64) -> Option<ContentToken> {
        self.inner.content_token(lba, count)
    }
}

/// A device that records every accepted write and flush, in order.
#[derive(Debug, Clone)]
pub struct WriteLog<D> {
    inner: D,
    events: Vec<LoggedIo>,
}

impl<D: BlockDevice> WriteLog<D> {
    /// Wraps `inner` with an empty log.
    pub fn new(inner: D) -> WriteLog<D> {
        WriteLog { inner, events: Vec::new() }
    }

    /// Events recorded so far.
    pub fn events(&self) -> &[LoggedIo] {
        &self.events
    }

    /// Takes the recorded events, leaving the log empty.
    pub fn take_events(&mut self) -> Vec<LoggedIo> {
        std::mem::take(&mut self.events)
    }

    /// The inner device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// Gives the inner device and the log back.
    pub fn into_parts(self) -> (D, Vec<LoggedIo>) {
        (self.inner, self.events)
    }
}

impl<D: BlockDevice> BlockDevice for WriteLog<D> {
    fn sector_size(&self) -> SectorSize {
        self.inner.sector_size()
    }
    fn sector_count(&self) -> u64 {
        self.inner.sector_count()
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.inner.read_sectors(lba, buf)
    }
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), DiskError> {
        self.inner.write_sectors(lba, buf)?;
        self.events.push(IoEvent::Write { lba, data: buf }.into());
        Ok(())
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        self.inner.flush()?;
        self.events.push(LoggedIo::Flush);
        Ok(())
    }
    fn content_token(&self, lba: u64, count: u64) -> Option<ContentToken> {
        self.inner.content_token(lba, count)
    }
}
