//! The file allocation table: entry decoding and encoding for FAT12 and
//! FAT16, what an entry's value means for a chain ([`Link`]), a chain walk
//! that cannot loop forever ([`ChainWalk`]), and the two ways FAT #1 is held:
//! whole in memory for writing ([`Fat`]) or 16 KiB windows read on demand
//! ([`FatCache`], the boot hot path).
//!
//! ```text
//!   FAT16: entry n = le16 at byte 2n
//!   FAT12: entry n = 12 bits at byte n + n/2:   even n: low 12 bits of le16
//!                                              odd n:  high 12 bits of le16
//!   values: 0 free | 1 reserved | 2..=max next cluster | max+1.. out of range
//!           0xFF7 / 0xFFF7 bad | 0xFF8.. / 0xFFF8.. end of chain
//!   entries 0 and 1 hold the media byte and the clean flags, not clusters.
//! ```
//!
//! Contract: no panic on any FAT contents; an entry past the bytes held is
//! `None`, never an index panic. A [`ChainWalk`] refuses a cluster outside
//! 2..=max and one it has entered before, so any walk ends after at most
//! `clusters` steps; its memory is one bit per cluster (8 KiB on FAT16).

use visorsim_disk::{BlockDevice, DiskError};

use super::geometry::Regions;

/// Bytes read at once from the FAT by a [`FatCache`].
const WINDOW_BYTES: u64 = 16 * 1024;

/// FAT values from this one up end a chain; the one below is "bad".
pub fn end_of_chain(fat_bits: u32) -> u32 {
    if fat_bits == 12 {
        0xFF8
    } else {
        0xFFF8
    }
}

/// Byte offset of `cluster`'s entry in the FAT (two bytes are read; on
/// FAT12 they are shared with a neighbour).
pub fn entry_offset(fat_bits: u32, cluster: u32) -> u64 {
    let n = u64::from(cluster);
    if fat_bits == 12 {
        n + n / 2
    } else {
        2 * n
    }
}

/// The entry of `cluster` from the two bytes at its [`entry_offset`].
pub fn decode(fat_bits: u32, cluster: u32, pair: [u8; 2]) -> u32 {
    let pair = u32::from(u16::from_le_bytes(pair));
    match (fat_bits, cluster % 2) {
        (12, 1) => pair >> 4,
        (12, _) => pair & 0xFFF,
        _ => pair,
    }
}

/// The two bytes at `cluster`'s [`entry_offset`] once its entry is `value`
/// (on FAT12 the neighbour's nibble of `old` is kept).
pub fn encode(fat_bits: u32, cluster: u32, old: [u8; 2], value: u32) -> [u8; 2] {
    let old = u16::from_le_bytes(old);
    let new = match (fat_bits, cluster % 2) {
        (12, 1) => (old & 0x000F) | ((value as u16) << 4),
        (12, _) => (old & 0xF000) | (value as u16 & 0x0FFF),
        _ => value as u16,
    };
    new.to_le_bytes()
}

/// What a FAT entry says about the cluster after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// 0: the cluster is free.
    Free,
    /// 1: reserved.
    Reserved,
    /// The next cluster, in 2..=max.
    Next(u32),
    /// A value above the highest cluster and below "bad".
    OutOfRange(u32),
    /// The "bad cluster" mark (0xFF7 / 0xFFF7).
    Bad(u32),
    /// End of chain (0xFF8.. / 0xFFF8..).
    End(u32),
}

impl Link {
    /// Classifies the entry `value` on a volume of `fat_bits` whose highest
    /// cluster is `max_cluster`.
    pub fn of(value: u32, fat_bits: u32, max_cluster: u32) -> Link {
        let eoc = end_of_chain(fat_bits);
        match value {
            0 => Link::Free,
            1 => Link::Reserved,
            n if n >= eoc => Link::End(n),
            n if n == eoc - 1 => Link::Bad(n),
            n if n > max_cluster => Link::OutOfRange(n),
            n => Link::Next(n),
        }
    }
}

/// Why a cluster chain cannot be followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A cluster of the chain is not a data cluster.
    #[error("cluster {cluster} of its chain is outside 2..={max}")]
    OutOfRange {
        /// The cluster.
        cluster: u32,
        /// The highest cluster.
        max: u32,
    },
    /// A cluster was reached twice.
    #[error("its chain reaches cluster {cluster} twice")]
    Loop {
        /// The cluster reached again.
        cluster: u32,
        /// Clusters entered before it.
        steps: u64,
    },
    /// The chain is longer than the caller allows.
    #[error("its chain is longer than {limit} clusters")]
    TooLong {
        /// The limit.
        limit: u64,
    },
    /// A cluster's entry lies past the FAT bytes held.
    #[error("the FAT entry of cluster {cluster} lies past the FAT")]
    PastFat {
        /// The cluster.
        cluster: u32,
    },
    /// A free entry before the end of the chain.
    #[error("cluster {cluster}'s FAT entry is free (0) before the chain ends")]
    Free {
        /// The cluster whose entry is free.
        cluster: u32,
    },
    /// A reserved entry.
    #[error("cluster {cluster}'s FAT entry is reserved (1)")]
    Reserved {
        /// The cluster whose entry is reserved.
        cluster: u32,
    },
}

/// The clusters a chain walk has entered: one bit per cluster.
#[derive(Clone, Debug)]
pub struct ChainWalk {
    seen: Vec<u64>,
    max_cluster: u32,
    steps: u64,
}

impl ChainWalk {
    /// A walk on a volume whose highest cluster is `max_cluster`.
    pub fn new(max_cluster: u32) -> ChainWalk {
        ChainWalk { seen: vec![0; (max_cluster as usize).saturating_add(1).div_ceil(64)], max_cluster, steps: 0 }
    }

    /// Enters `cluster`, the next of the chain: refused when it is outside
    /// 2..=max or was entered before. Since every cluster can be entered
    /// once, a walk takes at most `max - 1` steps.
    pub fn enter(&mut self, cluster: u32) -> Result<(), ChainError> {
        if !(2..=self.max_cluster).contains(&cluster) {
            return Err(ChainError::OutOfRange { cluster, max: self.max_cluster });
        }
        let (word, bit) = (cluster as usize / 64, cluster % 64);
        let slot = self.seen.get_mut(word).ok_or(ChainError::OutOfRange { cluster, max: self.max_cluster })?;
        if *slot & (1 << bit) != 0 {
            return Err(ChainError::Loop { cluster, steps: self.steps });
        }
        *slot |= 1 << bit;
        self.steps += 1;
        Ok(())
    }
}

/// The used part of FAT #1, in memory (at most 128 KiB on FAT16).
pub struct Fat {
    /// The FAT's first sectors, as read.
    pub bytes: Vec<u8>,
    /// Sectors loaded (at most the FAT's size).
    pub sectors: u64,
    ss: u64,
    bits: u32,
    max_cluster: u32,
}

impl Fat {
    /// Reads the sectors of FAT #1 holding every cluster's entry (no more
    /// than the FAT has).
    pub fn load<D: BlockDevice>(dev: &mut D, r: &Regions) -> Result<Fat, DiskError> {
        let g = &r.geometry;
        let ss = r.sector_bytes();
        let sectors = g.used_fat_bytes().div_ceil(ss).min(g.fat_sectors.into());
        let mut bytes = vec![0u8; (sectors * ss) as usize];
        dev.read_sectors(r.fat_lba, &mut bytes)?;
        Ok(Fat { bytes, sectors, ss, bits: g.fat_bits, max_cluster: r.max_cluster() })
    }

    /// The FAT sectors (relative to the FAT) holding the entry's first and
    /// last byte.
    pub fn entry_sectors(&self, cluster: u32) -> (u64, u64) {
        let at = entry_offset(self.bits, cluster);
        (at / self.ss, (at + 1) / self.ss)
    }

    fn pair_at(&self, cluster: u32) -> Option<(usize, [u8; 2])> {
        let at = usize::try_from(entry_offset(self.bits, cluster)).ok()?;
        let pair = self.bytes.get(at..at.checked_add(2)?)?;
        Some((at, [pair[0], pair[1]]))
    }

    /// The entry of `cluster`; `None` past the bytes loaded.
    pub fn get(&self, cluster: u32) -> Option<u32> {
        self.pair_at(cluster).map(|(_, pair)| decode(self.bits, cluster, pair))
    }

    /// Sets an entry; gives the sectors it touched (`None`, and nothing
    /// changed, past the bytes loaded).
    pub fn set(&mut self, cluster: u32, value: u32) -> Option<(u64, u64)> {
        let (at, old) = self.pair_at(cluster)?;
        self.bytes[at..at + 2].copy_from_slice(&encode(self.bits, cluster, old, value));
        Some(self.entry_sectors(cluster))
    }

    /// The clusters of the chain starting at `first`, up to and including
    /// the one whose entry ends it (end of chain, or "bad", which Linux
    /// also reads as the end). At most `limit` clusters.
    pub fn chain(&self, first: u32, limit: u64) -> Result<Vec<u32>, ChainError> {
        let mut walk = ChainWalk::new(self.max_cluster);
        let mut chain = Vec::new();
        let mut cluster = first;
        loop {
            walk.enter(cluster)?;
            chain.push(cluster);
            if chain.len() as u64 > limit {
                return Err(ChainError::TooLong { limit });
            }
            let value = self.get(cluster).ok_or(ChainError::PastFat { cluster })?;
            match Link::of(value, self.bits, self.max_cluster) {
                Link::Free => return Err(ChainError::Free { cluster }),
                Link::Reserved => return Err(ChainError::Reserved { cluster }),
                Link::End(_) | Link::Bad(_) => return Ok(chain),
                // An out-of-range successor is refused by `enter`.
                Link::Next(next) | Link::OutOfRange(next) => cluster = next,
            }
        }
    }
}

/// The FAT sectors one call has read: 16 KiB windows of FAT #1, loaded on
/// first use and dropped with the cache.
pub struct FatCache {
    fat_lba: u64,
    sector_bytes: u64,
    window_sectors: u64,
    /// Sectors holding every entry of the volume (the FAT's used part; on
    /// FAT12 the last entry's high byte may lie one byte past the FAT).
    sectors: u64,
    fat_bits: u32,
    windows: Vec<Option<Vec<u8>>>,
}

impl FatCache {
    /// An empty cache of the FAT #1 of `r`.
    pub fn new(r: &Regions) -> FatCache {
        let ss = r.sector_bytes();
        let sectors = r.geometry.used_fat_bytes().div_ceil(ss);
        let window_sectors = (WINDOW_BYTES / ss).max(1);
        FatCache {
            fat_lba: r.fat_lba,
            sector_bytes: ss,
            window_sectors,
            sectors,
            fat_bits: r.geometry.fat_bits,
            windows: vec![None; sectors.div_ceil(window_sectors) as usize],
        }
    }

    /// The FAT entry of `cluster`; `None` past the FAT's used part.
    pub fn entry<D: BlockDevice>(&mut self, dev: &mut D, cluster: u32) -> Result<Option<u32>, DiskError> {
        let at = entry_offset(self.fat_bits, cluster);
        let (Some(lo), Some(hi)) = (self.byte(dev, at)?, self.byte(dev, at + 1)?) else {
            return Ok(None);
        };
        Ok(Some(decode(self.fat_bits, cluster, [lo, hi])))
    }

    fn byte<D: BlockDevice>(&mut self, dev: &mut D, offset: u64) -> Result<Option<u8>, DiskError> {
        let window_bytes = self.window_sectors * self.sector_bytes;
        let Some(slot) = usize::try_from(offset / window_bytes).ok().and_then(|i| self.windows.get_mut(i)) else {
            return Ok(None);
        };
        let data = match slot {
            Some(data) => data,
            None => {
                let first = (offset / window_bytes) * self.window_sectors;
                let count = self.window_sectors.min(self.sectors - first);
                let mut data = vec![0u8; (count * self.sector_bytes) as usize];
                dev.read_sectors(self.fat_lba + first, &mut data)?;
                slot.insert(data)
            }
        };
        Ok(data.get((offset % window_bytes) as usize).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat12_entries_share_bytes() {
        let mut bytes = [0u8; 6];
        for (cluster, value) in [(2u32, 0xABC), (3, 0x123), (1, 0xFFF)] {
            let at = entry_offset(12, cluster) as usize;
            let pair = encode(12, cluster, [bytes[at], bytes[at + 1]], value);
            bytes[at..at + 2].copy_from_slice(&pair);
        }
        for (cluster, value) in [(2u32, 0xABC), (3, 0x123), (1, 0xFFF)] {
            let at = entry_offset(12, cluster) as usize;
            assert_eq!(decode(12, cluster, [bytes[at], bytes[at + 1]]), value, "{cluster}");
        }
        assert_eq!(decode(16, 5, [0x34, 0x12]), 0x1234);
        assert_eq!(encode(16, 5, [0, 0], 0xFFF8), [0xF8, 0xFF]);
    }

    #[test]
    fn links_classify_like_the_spec() {
        assert_eq!(Link::of(0, 16, 100), Link::Free);
        assert_eq!(Link::of(1, 16, 100), Link::Reserved);
        assert_eq!(Link::of(100, 16, 100), Link::Next(100));
        assert_eq!(Link::of(101, 16, 100), Link::OutOfRange(101));
        assert_eq!(Link::of(0xFFF7, 16, 100), Link::Bad(0xFFF7));
        assert_eq!(Link::of(0xFFFF, 16, 100), Link::End(0xFFFF));
        assert_eq!(Link::of(0xFF7, 12, 100), Link::Bad(0xFF7));
        assert_eq!(Link::of(0xFF8, 12, 100), Link::End(0xFF8));
    }

    #[test]
    fn a_walk_refuses_loops_and_strays() {
        let mut walk = ChainWalk::new(65);
        assert_eq!(walk.enter(1), Err(ChainError::OutOfRange { cluster: 1, max: 65 }));
        assert_eq!(walk.enter(66), Err(ChainError::OutOfRange { cluster: 66, max: 65 }));
        for c in 2..=65 {
            walk.enter(c).unwrap();
        }
        assert_eq!(walk.enter(65), Err(ChainError::Loop { cluster: 65, steps: 64 }));
    }

    #[test]
    fn in_memory_chains_end_loop_or_break() {
        // FAT16, clusters 2..=9: 2 -> 3 -> 4 (end); 5 -> 6 -> 5 (loop); 7 -> 0.
        let mut fat = Fat { bytes: vec![0; 20], sectors: 1, ss: 512, bits: 16, max_cluster: 9 };
        for (c, v) in [(2, 3), (3, 4), (4, 0xFFFF), (5, 6), (6, 5), (8, 1), (9, 0xFFF7)] {
            fat.set(c, v).unwrap();
        }
        assert_eq!(fat.chain(2, 10), Ok(vec![2, 3, 4]));
        assert_eq!(fat.chain(2, 2), Err(ChainError::TooLong { limit: 2 }));
        assert!(matches!(fat.chain(5, 10), Err(ChainError::Loop { cluster: 5, .. })));
        assert_eq!(fat.chain(7, 10), Err(ChainError::Free { cluster: 7 }));
        assert_eq!(fat.chain(8, 10), Err(ChainError::Reserved { cluster: 8 }));
        assert_eq!(fat.chain(9, 10), Ok(vec![9]));
        assert_eq!(fat.get(10), None);
        assert_eq!(fat.set(10, 0), None);
    }
}
