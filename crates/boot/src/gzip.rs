//! Module checks as mboot does them (`bootlib/gzip.c`, ESXI-BOOT.md 6.2–6.3).
//!
//! ```text
//!   | 1F 8B | CM=8 | FLG | MTIME(4) | XFL | OS | [FEXTRA][FNAME][FCOMMENT][FHCRC] | deflate ... | CRC32 | ISIZE |
//!                                                                   trailer = the file's last 8 bytes
//! ```
//!
//! Outcomes follow the real loader, quirks included: a file that is not gzip
//! is accepted uncompressed; ISIZE 0 with at most 256 bytes of payload is an
//! empty module; ISIZE larger than the truth is accepted (the module is what
//! inflate produced); output beyond ISIZE is "buffer too small". This check
//! streams through a fixed buffer, so a 1 KiB file claiming 4 GiB costs no
//! 4 GiB allocation.

use flate2::{Decompress, FlushDecompress, Status};
use serde::Serialize;

const FTEXT_IGNORED: u8 = 0x01;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const RESERVED: u8 = 0xE0;
/// ISIZE 0 with a payload of at most this many bytes is an empty module.
const EMPTY_MODULE_SLACK: usize = 256;

/// Why a module fails to load, with esx-boot's error name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum GzipError {
    /// ERR_BAD_HEADER: short file, reserved flag bits, or optional fields that do not fit.
    #[error("bad gzip header: {0}")]
    BadHeader(String),
    /// ERR_UNSUPPORTED: compression method other than deflate.
    #[error("unsupported compression method {0}")]
    Unsupported(u8),
    /// ERR_INCONSISTENT_DATA: corrupt deflate data, or no payload at all.
    #[error("inconsistent data: {0}")]
    InconsistentData(String),
    /// ERR_BUFFER_TOO_SMALL: the stream does not end within ISIZE bytes (or the input is truncated).
    #[error("buffer too small: the deflate stream does not end within ISIZE = {isize} bytes")]
    BufferTooSmall {
        /// The trailer's ISIZE.
        isize: u32,
    },
    /// ERR_CRC_ERROR.
    #[error("CRC error during decompression. Received CRC ({expected:#x}) != calculated CRC ({actual:#x})")]
    Crc {
        /// CRC32 from the trailer.
        expected: u32,
        /// CRC32 of the produced data.
        actual: u32,
    },
    /// ERR_CRC_ERROR after "Module content is likely corrupt." (ISIZE 0, large payload).
    #[error("Module content is likely corrupt.")]
    LikelyCorrupt,
}

/// How a sound module would load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleForm {
    /// gzip, inflated and CRC-checked.
    Gzip,
    /// Not gzip (no `1F 8B`): loaded as is, with a warning.
    Uncompressed,
    /// ISIZE 0 and a payload of at most 256 bytes: an empty module.
    Empty,
}

/// The result of checking one module file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModuleCheck {
    /// Compressed (file) size.
    pub file_size: u64,
    /// Header length, when the header parsed.
    pub header_len: Option<usize>,
    /// Trailer CRC32, when the file is gzip and long enough.
    pub crc32: Option<u32>,
    /// Trailer ISIZE, when the file is gzip and long enough.
    pub isize: Option<u32>,
    /// Bytes the module occupies once loaded, when it loads.
    pub loaded_size: Option<u64>,
    /// How it loads, or why it does not.
    pub outcome: Result<ModuleForm, GzipError>,
}

impl ModuleCheck {
    /// Whether mboot would load this module.
    pub fn is_sound(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// `gzip_header_size`: `Ok(None)` for "not gzip" (ERR_BAD_TYPE, accepted
/// uncompressed by mboot), else the header length.
pub fn header_len(data: &[u8]) -> Result<Option<usize>, GzipError> {
    if data.len() < 2 || data[0..2] != [0x1F, 0x8B] {
        return Ok(None);
    }
    if data.len() < 10 {
        return Err(GzipError::BadHeader(format!("{} bytes is shorter than the 10-byte header", data.len())));
    }
    let flags = data[3];
    if flags & RESERVED != 0 {
        return Err(GzipError::BadHeader(format!("reserved FLG bits set ({flags:#04x})")));
    }
    if data[2] != 8 {
        return Err(GzipError::Unsupported(data[2]));
    }
    let _ = FTEXT_IGNORED; // FTEXT, MTIME, XFL and OS are ignored.
    let mut at = 10usize;
    if flags & FEXTRA != 0 {
        if data.len() < 13 {
            return Err(GzipError::BadHeader("FEXTRA set but the file is shorter than 13 bytes".into()));
        }
        let xlen = usize::from(u16::from_le_bytes([data[10], data[11]]));
        at = 12 + xlen;
        if at > data.len() {
            return Err(GzipError::BadHeader(format!("FEXTRA length {xlen} passes the end of the file")));
        }
    }
    for (flag, field) in [(FNAME, "FNAME"), (FCOMMENT, "FCOMMENT")] {
        if flags & flag != 0 {
            match data[at..].iter().position(|&b| b == 0) {
                Some(nul) => at += nul + 1,
                None => return Err(GzipError::BadHeader(format!("{field} is not NUL-terminated"))),
            }
        }
    }
    if flags & FHCRC != 0 {
        // The header CRC itself is not checked, only that it fits.
        at += 2;
        if at > data.len() {
            return Err(GzipError::BadHeader("FHCRC passes the end of the file".into()));
        }
    }
    Ok(Some(at))
}

/// Checks a module file the way mboot loads it, without keeping the output.
pub fn check_module(data: &[u8]) -> ModuleCheck {
    let file_size = data.len() as u64;
    let mut check = ModuleCheck {
        file_size,
        header_len: None,
        crc32: None,
        isize: None,
        loaded_size: None,
        outcome: Ok(ModuleForm::Gzip),
    };
    let header = match header_len(data) {
        Ok(Some(h)) => h,
        Ok(None) => {
            check.loaded_size = Some(file_size);
            check.outcome = Ok(ModuleForm::Uncompressed);
            return check;
        }
        Err(e) => {
            check.outcome = Err(e);
            return check;
        }
    };
    check.header_len = Some(header);
    // CRC32 and ISIZE come from the file's last 8 bytes, wherever the
    // deflate stream ends (`gzip_get_info`).
    let tail = &data[data.len().saturating_sub(8)..];
    let (crc, isize) = if tail.len() == 8 {
        (u32::from_le_bytes(tail[0..4].try_into().expect("4")), u32::from_le_bytes(tail[4..8].try_into().expect("4")))
    } else {
        (0, 0)
    };
    check.crc32 = Some(crc);
    check.isize = Some(isize);
    // The payload length is computed unsigned, so a file shorter than
    // header + 8 wraps around to a huge length (and fails later).
    let payload_len = data.len().wrapping_sub(8).wrapping_sub(header);
    if payload_len == 0 {
        check.outcome = Err(GzipError::InconsistentData("no deflate data between header and trailer".into()));
        return check;
    }
    if isize == 0 {
        if payload_len <= EMPTY_MODULE_SLACK {
            check.loaded_size = Some(0);
            check.outcome = Ok(ModuleForm::Empty);
        } else {
            check.outcome = Err(GzipError::LikelyCorrupt);
        }
        return check;
    }
    // Inflate over the payload plus one byte, into at most ISIZE bytes.
    let input_end = header.saturating_add(payload_len).saturating_add(1).min(data.len());
    let input = &data[header.min(input_end)..input_end];
    match inflate_counting(input, u64::from(isize)) {
        Ok((produced, actual)) => {
            if actual != crc {
                check.outcome = Err(GzipError::Crc { expected: crc, actual });
            } else {
                check.loaded_size = Some(produced);
            }
        }
        Err(e) => check.outcome = Err(e),
    }
    check
}

/// Raw inflate of `input`, allowing at most `limit` bytes of output; returns
/// the bytes produced and their CRC32.
fn inflate_counting(input: &[u8], limit: u64) -> Result<(u64, u32), GzipError> {
    let mut inflater = Decompress::new(false);
    let mut out = vec![0u8; 1 << 20];
    let mut hasher = crc32fast::Hasher::new();
    let mut produced = 0u64;
    loop {
        let room = (limit - produced).min(out.len() as u64) as usize;
        let in_before = inflater.total_in();
        let out_before = inflater.total_out();
        let consumed_so_far = in_before as usize;
        let status = inflater
            .decompress(&input[consumed_so_far..], &mut out[..room], FlushDecompress::Finish)
            .map_err(|e| GzipError::InconsistentData(e.to_string()))?;
        let wrote = (inflater.total_out() - out_before) as usize;
        hasher.update(&out[..wrote]);
        produced += wrote as u64;
        match status {
            Status::StreamEnd => return Ok((produced, hasher.finalize())),
            _ if produced >= limit => return Err(GzipError::BufferTooSmall { isize: limit as u32 }),
            _ if wrote == 0 && inflater.total_in() == in_before => {
                // No progress: the input ended before the stream did.
                return Err(GzipError::BufferTooSmall { isize: limit as u32 });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn sound_module() {
        let data = vec![7u8; 100_000];
        let c = check_module(&gz(&data));
        assert_eq!(c.outcome, Ok(ModuleForm::Gzip));
        assert_eq!((c.isize, c.loaded_size), (Some(100_000), Some(100_000)));
    }

    #[test]
    fn not_gzip_is_loaded_uncompressed() {
        assert_eq!(check_module(b"plain").outcome, Ok(ModuleForm::Uncompressed));
        assert_eq!(check_module(b"").outcome, Ok(ModuleForm::Uncompressed));
    }

    #[test]
    fn header_errors() {
        assert!(matches!(check_module(&[0x1F, 0x8B, 8, 0]).outcome, Err(GzipError::BadHeader(_))));
        let mut f = gz(b"x");
        f[3] = 0x20;
        assert!(matches!(check_module(&f).outcome, Err(GzipError::BadHeader(_))));
        let mut f = gz(b"x");
        f[2] = 7;
        assert_eq!(check_module(&f).outcome, Err(GzipError::Unsupported(7)));
        let mut f = gz(b"x");
        f[3] = FNAME;
        f.truncate(12);
        f[10] = b'a';
        f[11] = b'b';
        assert!(matches!(check_module(&f).outcome, Err(GzipError::BadHeader(_))));
    }

    #[test]
    fn isize_smaller_than_truth_is_buffer_too_small_and_larger_is_accepted() {
        let data = vec![3u8; 5000];
        let mut f = gz(&data);
        let n = f.len();
        f[n - 4..].copy_from_slice(&4999u32.to_le_bytes());
        assert!(matches!(check_module(&f).outcome, Err(GzipError::BufferTooSmall { .. })));
        f[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        let c = check_module(&f);
        assert_eq!((c.outcome, c.loaded_size), (Ok(ModuleForm::Gzip), Some(5000)));
    }

    #[test]
    fn truncated_and_bad_crc() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let f = gz(&data);
        let mut t = f[..f.len() / 2].to_vec();
        t.extend_from_slice(&f[f.len() - 8..]);
        assert!(check_module(&t).outcome.is_err());
        let mut c = f.clone();
        let n = c.len();
        c[n - 8] ^= 1;
        assert!(matches!(check_module(&c).outcome, Err(GzipError::Crc { .. })));
    }

    #[test]
    fn isize_zero_rule() {
        let mut f = gz(b"small");
        let n = f.len();
        f[n - 4..].fill(0);
        assert_eq!(check_module(&f).outcome, Ok(ModuleForm::Empty));
        let big: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let mut f = gz(&big);
        let n = f.len();
        f[n - 4..].fill(0);
        assert_eq!(check_module(&f).outcome, Err(GzipError::LikelyCorrupt));
    }

    #[test]
    fn header_plus_trailer_only_is_inconsistent() {
        let mut f = vec![0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3];
        f.extend_from_slice(&[0; 8]);
        assert!(matches!(check_module(&f).outcome, Err(GzipError::InconsistentData(_))));
    }
}
