//! [`ByteIo`]: `Read + Write + Seek` over a byte range of a block device.
//!
//! The `gpt` and `fatfs` crates speak byte streams; devices speak sectors.
//! `ByteIo` translates: whole aligned sectors go straight through, a partial
//! sector is read, patched and written back (read-modify-write), exactly
//! what an OS block layer does for a sub-sector write. Reads past the end of
//! the range return 0 bytes (EOF); writes past it fail.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::device::BlockDevice;

/// A byte-addressed window `[start, start + len)` onto a block device.
pub struct ByteIo<D> {
    dev: D,
    start: u64,
    len: u64,
    pos: u64,
    sector: Vec<u8>,
}

impl<D: BlockDevice> ByteIo<D> {
    /// The whole device.
    pub fn new(dev: D) -> ByteIo<D> {
        let len = dev.size_bytes();
        ByteIo::window(dev, 0, len)
    }

    /// `len` bytes starting at byte `start` of the device (a partition).
    /// The window is clipped to the device.
    pub fn window(dev: D, start: u64, len: u64) -> ByteIo<D> {
        let size = dev.size_bytes();
        let start = start.min(size);
        let len = len.min(size - start);
        let sector = vec![0; dev.sector_size().len()];
        ByteIo { dev, start, len, pos: 0, sector }
    }

    /// Length of the window in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device behind the window.
    pub fn device(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Gives the device back.
    pub fn into_inner(self) -> D {
        self.dev
    }

    fn sector_len(&self) -> u64 {
        self.dev.sector_size().bytes_u64()
    }
}

impl<D: BlockDevice> Read for ByteIo<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.len.saturating_sub(self.pos);
        let want = (buf.len() as u64).min(remaining) as usize;
        if want == 0 {
            return Ok(0);
        }
        let ss = self.sector_len();
        let abs = self.start + self.pos;
        let within = (abs % ss) as usize;
        let lba = abs / ss;
        let n = if within == 0 && want >= ss as usize {
            let n = want - want % ss as usize;
            self.dev.read_sectors(lba, &mut buf[..n])?;
            n
        } else {
            self.dev.read_sectors(lba, &mut self.sector)?;
            let n = want.min(ss as usize - within);
            buf[..n].copy_from_slice(&self.sector[within..within + n]);
            n
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: BlockDevice> Write for ByteIo<D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let remaining = self.len.saturating_sub(self.pos);
        let want = (buf.len() as u64).min(remaining) as usize;
        if want == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("write at byte {} passes the end of a {}-byte region", self.pos, self.len),
            ));
        }
        let ss = self.sector_len();
        let abs = self.start + self.pos;
        let within = (abs % ss) as usize;
        let lba = abs / ss;
        let n = if within == 0 && want >= ss as usize {
            let n = want - want % ss as usize;
            self.dev.write_sectors(lba, &buf[..n])?;
            n
        } else {
            let n = want.min(ss as usize - within);
            self.dev.read_sectors(lba, &mut self.sector)?;
            self.sector[within..within + n].copy_from_slice(&buf[..n]);
            self.dev.write_sectors(lba, &self.sector)?;
            n
        };
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(self.dev.flush()?)
    }
}

impl<D: BlockDevice> Seek for ByteIo<D> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the region")),
        }
    }
}

impl<D> fmt::Debug for ByteIo<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteIo").field("start", &self.start).field("len", &self.len).field("pos", &self.pos).finish()
    }
}
