//! [`MemDisk`]: a sparse in-memory disk with O(1) copy-on-write forks.
//!
//! Storage is a persistent ordered map from chunk index to a 4 KiB chunk
//! behind an `Arc`:
//!
//! ```text
//!   OrdMap<u64, Arc<[u8; 4096]>>      absent chunk = zeros
//!   clone()  -> shares the map root and every chunk (O(1))
//!   write    -> copies the map path and the one chunk it touches
//! ```
//!
//! Invariants:
//! - memory grows with the chunks written, never with the virtual size: an
//!   8 GiB disk holding two 250 MB banks costs about the banks;
//! - a chunk overwritten entirely with zeros is dropped again;
//! - forks are isolated both ways: a write to one is never seen by another.

use std::sync::Arc;

use imbl::OrdMap;

use crate::device::{BlockDevice, ContentToken, SectorSize};
use crate::error::DiskError;

/// Bytes per storage chunk (also the largest sector size, so a sector never
/// straddles two chunks).
pub const CHUNK: usize = 4096;
const CHUNK_U64: u64 = CHUNK as u64;

type Chunk = Arc<[u8; CHUNK]>;

/// A sparse in-memory disk. `Clone` is an O(1) copy-on-write fork.
#[derive(Clone, Debug)]
pub struct MemDisk {
    sector_size: SectorSize,
    sectors: u64,
    chunks: OrdMap<u64, Chunk>,
}

impl MemDisk {
    /// An all-zero disk of `sectors` sectors. Allocates nothing up front.
    /// The count is capped so the size in bytes fits in a `u64` (so byte
    /// offsets of in-range sectors never overflow).
    pub fn new(sectors: u64, sector_size: SectorSize) -> MemDisk {
        let sectors = sectors.min(u64::MAX / sector_size.bytes_u64());
        MemDisk { sector_size, sectors, chunks: OrdMap::new() }
    }

    /// An all-zero disk of at least `bytes` bytes, rounded up to whole sectors.
    pub fn with_size(bytes: u64, sector_size: SectorSize) -> MemDisk {
        MemDisk::new(bytes.div_ceil(sector_size.bytes_u64()), sector_size)
    }

    /// An O(1) copy-on-write fork: later writes to either side stay there.
    pub fn fork(&self) -> MemDisk {
        self.clone()
    }

    /// Bytes of chunk storage held (what the disk costs in memory).
    pub fn resident_bytes(&self) -> u64 {
        self.chunks.len() as u64 * CHUNK_U64
    }

    /// Byte offsets and contents of every stored chunk, in disk order.
    /// Everything else on the disk is zeros. A chunk that reaches past the
    /// end of the disk (size not a multiple of 4 KiB) is cut at the end.
    pub fn stored_chunks(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        let size = self.size_bytes();
        self.chunks.iter().map(move |(index, chunk)| {
            let offset = index * CHUNK_U64;
            let len = size.saturating_sub(offset).min(CHUNK_U64) as usize;
            (offset, &chunk[..len])
        })
    }

    /// Reads bytes at any byte offset (no sector alignment needed).
    /// The caller guarantees the range is inside the disk.
    fn read_bytes(&self, mut offset: u64, mut buf: &mut [u8]) {
        while !buf.is_empty() {
            let index = offset / CHUNK_U64;
            let within = (offset % CHUNK_U64) as usize;
            let take = buf.len().min(CHUNK - within);
            let (head, rest) = buf.split_at_mut(take);
            match self.chunks.get(&index) {
                Some(chunk) => head.copy_from_slice(&chunk[within..within + take]),
                None => head.fill(0),
            }
            buf = rest;
            offset += take as u64;
        }
    }

    fn write_bytes(&mut self, mut offset: u64, mut data: &[u8]) {
        while !data.is_empty() {
            let index = offset / CHUNK_U64;
            let within = (offset % CHUNK_U64) as usize;
            let take = data.len().min(CHUNK - within);
            let (head, rest) = data.split_at(take);
            if take == CHUNK {
                if head.iter().all(|&b| b == 0) {
                    self.chunks.remove(&index);
                } else {
                    let mut chunk = [0u8; CHUNK];
                    chunk.copy_from_slice(head);
                    self.chunks.insert(index, Arc::new(chunk));
                }
            } else {
                match self.chunks.get_mut(&index) {
                    Some(chunk) => Arc::make_mut(chunk)[within..within + take].copy_from_slice(head),
                    None if head.iter().all(|&b| b == 0) => {}
                    None => {
                        let mut chunk = [0u8; CHUNK];
                        chunk[within..within + take].copy_from_slice(head);
                        self.chunks.insert(index, Arc::new(chunk));
                    }
                }
            }
            data = rest;
            offset += take as u64;
        }
    }
}

impl BlockDevice for MemDisk {
    fn sector_size(&self) -> SectorSize {
        self.sector_size
    }

    fn sector_count(&self) -> u64 {
        self.sectors
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.check_range(lba, buf.len())?;
        self.read_bytes(lba * self.sector_size.bytes_u64(), buf);
        Ok(())
    }

    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), DiskError> {
        self.check_range(lba, buf.len())?;
        self.write_bytes(lba * self.sector_size.bytes_u64(), buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        Ok(())
    }

    /// The chunks themselves: forks share them until written, so equal
    /// pointers mean equal bytes. O(chunks), no data is read.
    fn content_token(&self, lba: u64, count: u64) -> Option<ContentToken> {
        let ss = self.sector_size.bytes_u64();
        let end = lba.checked_add(count).filter(|&e| e <= self.sectors)?;
        if count == 0 {
            return Some(ContentToken { lba, count, parts: Vec::new() });
        }
        let (first, last) = (lba * ss / CHUNK_U64, (end * ss - 1) / CHUNK_U64);
        let parts = (first..=last).map(|i| self.chunks.get(&i).cloned()).collect();
        Some(ContentToken { lba, count, parts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_token_follows_forks_and_writes() {
        let mut disk = MemDisk::new(64, SectorSize::S512);
        disk.write_sectors(0, &[7u8; 512 * 16]).unwrap();
        let fork = disk.fork();
        let token = disk.content_token(0, 16).unwrap();
        assert_eq!(fork.content_token(0, 16), Some(token.clone()), "a fork shares the bytes");
        let mut written = fork.clone();
        written.write_sectors(9, &[7u8; 512]).unwrap();
        assert_ne!(written.content_token(0, 16), Some(token.clone()), "a write (even of equal bytes) changes it");
        assert_eq!(written.content_token(0, 8), disk.content_token(0, 8), "untouched chunks still match");
        assert_eq!(disk.content_token(60, 8), None, "out of range");
    }
}
