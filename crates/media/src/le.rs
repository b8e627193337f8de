//! Little-endian fields of on-disk structures, read and written at a byte
//! offset: the one set of helpers every parser of this crate (GPT, MBR, FAT
//! boot sector, FAT, directory entries) and `visorsim-boot`'s volume scan use.
//!
//! ```text
//!   le16(b, at)   b[at] | b[at+1] << 8
//!   le32(b, at)   b[at] | ... | b[at+3] << 24
//!   le64(b, at)   b[at] | ... | b[at+7] << 56
//! ```
//!
//! Contract: the readers never panic. A field reaching past the end of `b`
//! reads its missing bytes as zero (callers read fixed offsets of buffers
//! they sized themselves, so this only matters for a bug, which then shows
//! as a wrong value instead of a crash on hostile input). The writers only
//! write fields that fit; one that does not is a bug caught by a debug
//! assertion.

/// `N` bytes of `b` from `at`, the missing ones as zero.
fn bytes<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(tail) = b.get(at..) {
        let n = tail.len().min(N);
        out[..n].copy_from_slice(&tail[..n]);
    }
    out
}

/// The `u16` at byte `at` of `b`.
pub fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes(b, at))
}

/// The `u32` at byte `at` of `b`.
pub fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes(b, at))
}

/// The `u64` at byte `at` of `b`.
pub fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes(b, at))
}

fn put<const N: usize>(b: &mut [u8], at: usize, v: [u8; N]) {
    match at.checked_add(N).and_then(|end| b.get_mut(at..end)) {
        Some(field) => field.copy_from_slice(&v),
        None => debug_assert!(false, "a {N}-byte field at {at} past a {}-byte buffer", b.len()),
    }
}

/// Writes `v` at byte `at` of `b`.
pub fn put16(b: &mut [u8], at: usize, v: u16) {
    put(b, at, v.to_le_bytes());
}

/// Writes `v` at byte `at` of `b`.
pub fn put32(b: &mut [u8], at: usize, v: u32) {
    put(b, at, v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_little_endian() {
        let mut b = [0u8; 8];
        put16(&mut b, 0, 0x1234);
        put32(&mut b, 2, 0xA1B2_C3D4);
        assert_eq!(b, [0x34, 0x12, 0xD4, 0xC3, 0xB2, 0xA1, 0, 0]);
        assert_eq!(le16(&b, 0), 0x1234);
        assert_eq!(le32(&b, 2), 0xA1B2_C3D4);
        assert_eq!(le64(&b, 0), 0x0000_A1B2_C3D4_1234);
    }

    #[test]
    fn past_the_end_reads_zero() {
        let b = [0xFFu8; 3];
        assert_eq!(le16(&b, 2), 0x00FF);
        assert_eq!(le32(&b, 3), 0);
        assert_eq!(le64(&b, usize::MAX), 0);
    }
}
