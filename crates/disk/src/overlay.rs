//! [`Overlay`]: writes kept in memory over a device that is never written.
//!
//! What `--dry-run` uses: the boot runs exactly as it would, reading back its
//! own writes, while the image the user gave stays untouched. The overlay is
//! sector-granular; `written()` lists what would have reached the disk.

use std::collections::BTreeMap;

use crate::device::{BlockDevice, ContentToken, SectorSize};
use crate::error::DiskError;

/// A device whose writes land in memory, over a base that is only read.
#[derive(Debug)]
pub struct Overlay<D> {
    base: D,
    sectors: BTreeMap<u64, Box<[u8]>>,
    flushes: u64,
}

impl<D: BlockDevice> Overlay<D> {
    /// Wraps `base`; nothing will ever be written to it.
    pub fn new(base: D) -> Overlay<D> {
        Overlay { base, sectors: BTreeMap::new(), flushes: 0 }
    }

    /// LBAs written so far, ascending.
    pub fn written(&self) -> impl Iterator<Item = u64> + '_ {
        self.sectors.keys().copied()
    }

    /// Flushes requested so far.
    pub fn flushes(&self) -> u64 {
        self.flushes
    }

    /// Gives the untouched base back.
    pub fn into_base(self) -> D {
        self.base
    }
}

impl<D: BlockDevice> BlockDevice for Overlay<D> {
    fn sector_size(&self) -> SectorSize {
        self.base.sector_size()
    }

    fn sector_count(&self) -> u64 {
        self.base.sector_count()
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.check_range(lba, buf.len())?;
        self.base.read_sectors(lba, buf)?;
        let ss = self.sector_size().len();
        let count = (buf.len() / ss) as u64;
        for (at, data) in self.sectors.range(lba..lba + count) {
            let i = (at - lba) as usize * ss;
            buf[i..i + ss].copy_from_slice(data);
        }
        Ok(())
    }

    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), DiskError> {
        self.check_range(lba, buf.len())?;
        let ss = self.sector_size().len();
        for (i, sector) in buf.chunks_exact(ss).enumerate() {
            self.sectors.insert(lba + i as u64, sector.into());
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        self.flushes += 1;
        Ok(())
    }

    fn content_token(&self, lba: u64, count: u64) -> Option<ContentToken> {
        match self.sectors.range(lba..lba.saturating_add(count)).next() {
            Some(_) => None,
            None => self.base.content_token(lba, count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemDisk;

    #[test]
    fn writes_stay_in_the_overlay() {
        let mut base = MemDisk::new(16, SectorSize::S512);
        base.write_sectors(3, &[1u8; 512]).unwrap();
        let mut overlay = Overlay::new(base);
        overlay.write_sectors(3, &[2u8; 1024]).unwrap();
        let mut buf = vec![0u8; 512 * 3];
        overlay.read_sectors(2, &mut buf).unwrap();
        assert!(buf[..512].iter().all(|&b| b == 0));
        assert!(buf[512..].iter().all(|&b| b == 2));
        assert_eq!(overlay.written().collect::<Vec<_>>(), [3, 4]);
        let mut base = overlay.into_base();
        base.read_sectors(3, &mut buf[..512]).unwrap();
        assert!(buf[..512].iter().all(|&b| b == 1), "the base is untouched");
    }
}
