//! The logical sector size of a raw image, from its bytes, as gdisk tells
//! 512-byte media from 4Kn: the GPT header ("EFI PART") sits in LBA 1, so at
//! byte 512 on 512-byte sectors and at byte 4096 on 4 KiB sectors.
//!
//! ```text
//!   byte 0      protective MBR (entry 0: type 0xEE from LBA 1, length = last LBA)
//!   byte 512    "EFI PART"  -> 512-byte sectors
//!   byte 4096   "EFI PART"  -> 4096-byte sectors
//!   end - 512   "EFI PART"  (backup header) -> 512-byte sectors
//!   end - 4096  "EFI PART"  (backup header) -> 4096-byte sectors
//! ```
//!
//! The primary header decides, then the backup header (a damaged primary),
//! then the protective MBR's length (its last LBA, times the sector size, is
//! the image's size less one sector). Nothing matching: `None`, and the
//! caller keeps its default (512 bytes, what every tool assumes of a file).
//!
//! Contract: bounded (reads at most the first 8 KiB and the last 4 KiB of
//! the image) and never panics, whatever the bytes.

use std::io::{self, Read, Seek, SeekFrom};

use visorsim_disk::SectorSize;

use crate::mbr;

/// The GPT header signature.
const SIGNATURE: &[u8; 8] = b"EFI PART";
/// Bytes read from the start of the image: LBA 0 and LBA 1 of a 4Kn disk.
const HEAD: usize = 8192;
/// Bytes read from the end of the image: the last sector of a 4Kn disk.
const TAIL: usize = 4096;

/// The sector size of the image `r` holds (see the module documentation),
/// or `None` when its bytes do not tell. Reads at most 12 KiB.
pub fn detect_sector_size<R: Read + Seek>(r: &mut R) -> io::Result<Option<SectorSize>> {
    let len = r.seek(SeekFrom::End(0))?;
    let head = read_at(r, 0, HEAD.min(usize::try_from(len).unwrap_or(HEAD)))?;
    let tail_len = TAIL.min(usize::try_from(len).unwrap_or(TAIL));
    let tail = read_at(r, len - tail_len as u64, tail_len)?;
    Ok(sector_size_from(&head, &tail, len))
}

fn read_at<R: Read + Seek>(r: &mut R, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    r.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    r.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The decision on bytes already read: `head`, the image's first bytes (up
/// to 8 KiB), `tail`, its last bytes (up to 4 KiB), and `len`, its size.
/// Short or empty slices are fine.
pub fn sector_size_from(head: &[u8], tail: &[u8], len: u64) -> Option<SectorSize> {
    const SIZES: [SectorSize; 2] = [SectorSize::S512, SectorSize::S4096];
    let signed = |bytes: &[u8], at: usize| bytes.get(at..at.saturating_add(SIGNATURE.len())) == Some(&SIGNATURE[..]);
    // The primary header in LBA 1.
    if let Some(&size) = SIZES.iter().find(|s| signed(head, s.len())) {
        return Some(size);
    }
    // The backup header in the last LBA, when the image is whole sectors.
    for size in SIZES {
        let ss = size.bytes_u64();
        if len >= 2 * ss && len.is_multiple_of(ss) {
            if let Some(at) = tail.len().checked_sub(size.len()) {
                if signed(tail, at) {
                    return Some(size);
                }
            }
        }
    }
    // The protective MBR: entry 0 covers LBA 1 to the last LBA.
    if mbr::has_signature(head) {
        let entry = mbr::PartitionEntry::parse(head, 0);
        if entry.is_protective() && entry.sectors != u32::MAX {
            let last = u64::from(entry.sectors);
            return SIZES.into_iter().find(|s| len / s.bytes_u64() == last + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::gpt::write_table;
    use crate::layout::Layout;
    use uuid::Uuid;
    use visorsim_disk::{BlockDevice, MemDisk};

    /// The bytes of a small disk of `sector` with a GPT: its first 8 KiB,
    /// last 4 KiB and size.
    fn disk(sector: SectorSize) -> (Vec<u8>, Vec<u8>, u64) {
        let plan = Layout::Esxi6.plan(None).unwrap();
        let guids: Vec<Uuid> = (0..plan.partitions.len()).map(|i| Uuid::from_u128(i as u128 + 1)).collect();
        let mut dev = write_table(MemDisk::with_size(plan.size, sector), &plan, Uuid::from_u128(9), &guids).unwrap();
        let mut head = vec![0u8; HEAD];
        dev.read_sectors(0, &mut head).unwrap();
        let mut tail = vec![0u8; TAIL];
        let last = dev.sector_count() - (TAIL / sector.len()) as u64;
        dev.read_sectors(last, &mut tail).unwrap();
        (head, tail, dev.size_bytes())
    }

    #[test]
    fn the_primary_header_tells_512_from_4kn() {
        for sector in [SectorSize::S512, SectorSize::S4096] {
            let (head, tail, len) = disk(sector);
            assert_eq!(sector_size_from(&head, &tail, len), Some(sector));
        }
    }

    #[test]
    fn a_damaged_primary_falls_back_to_the_backup_then_the_mbr() {
        for sector in [SectorSize::S512, SectorSize::S4096] {
            let (mut head, mut tail, len) = disk(sector);
            head[sector.len()..sector.len() + 8].fill(0);
            assert_eq!(sector_size_from(&head, &tail, len), Some(sector), "backup header");
            let at = tail.len() - sector.len();
            tail[at..at + 8].fill(0);
            assert_eq!(sector_size_from(&head, &tail, len), Some(sector), "protective MBR");
            head[510] = 0;
            assert_eq!(sector_size_from(&head, &tail, len), None);
        }
    }

    #[test]
    fn any_bytes_are_safe() {
        assert_eq!(sector_size_from(&[], &[], 0), None);
        assert_eq!(sector_size_from(&[0xFF; 300], &[0xFF; 300], u64::MAX), None);
        let mut mbr_only = vec![0u8; 512];
        mbr_only[446 + 4] = 0xEE;
        mbr_only[446 + 8] = 1;
        mbr_only[446 + 12..446 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        mbr_only[510..512].copy_from_slice(&[0x55, 0xAA]);
        assert_eq!(sector_size_from(&mbr_only, &mbr_only, 512), None, "0xFFFFFFFF: too large to tell");
        for len in [0usize, 1, 511, 512, 4095, 4096, 4104, 9000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8).collect();
            assert_eq!(detect_sector_size(&mut Cursor::new(&bytes)).unwrap(), None, "{len} bytes");
        }
        let mut signed = vec![0u8; 4104];
        signed[4096..].copy_from_slice(SIGNATURE);
        assert_eq!(detect_sector_size(&mut Cursor::new(&signed)).unwrap(), Some(SectorSize::S4096));
    }
}
