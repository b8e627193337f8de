//! The gzip core of module loading, as mboot does it (`bootlib/gzip.c`,
//! docs/bootloader.md, Modules): the header, the trailer, the rules between them,
//! the one error type every loader returns ([`LoadError`], in mboot's
//! words), and a streaming module check for diagnostics ([`check_module`]).
//!
//! ```text
//!   | 1F 8B | CM=8 | FLG | MTIME(4) | XFL | OS | [FEXTRA][FNAME][FCOMMENT][FHCRC] | deflate ... | CRC32 | ISIZE |
//!                                                                   trailer = the file's last 8 bytes
//! ```
//!
//! Outcomes follow the real loader, quirks included: a file that is not gzip
//! is accepted uncompressed; ISIZE 0 with at most 256 bytes of payload is an
//! empty module; ISIZE larger than the truth is accepted (the module is what
//! inflate produced); output beyond ISIZE is "buffer too small". The check
//! streams through a fixed buffer, so a 1 KiB file claiming 4 GiB costs no
//! 4 GiB allocation. [`crate::load`] reads the header, the trailer and the
//! rules between them through the same functions as the check.

use std::fmt;

use flate2::{Decompress, FlushDecompress, Status};
use serde::Serialize;

use crate::status::{self, EsxStatus};

const FTEXT_IGNORED: u8 = 0x01;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const RESERVED: u8 = 0xE0;
/// ISIZE 0 with a payload of at most this many bytes is an empty module.
const EMPTY_MODULE_SLACK: usize = 256;
/// The detail of ERR_INCONSISTENT_DATA for a file of exactly header + trailer.
pub(crate) const NO_PAYLOAD: &str = "no deflate data between header and trailer";

/// Why a module fails to load: mboot's fatal errors, with esx-boot's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum LoadError {
    /// ERR_BAD_HEADER: short file, reserved flag bits, or optional fields that do not fit.
    #[error("Bad gzip header: {detail}")]
    BadHeader {
        /// What is wrong.
        detail: String,
    },
    /// ERR_UNSUPPORTED: compression method other than deflate.
    #[error("Unsupported compression method {method}")]
    Unsupported {
        /// The CM byte.
        method: u8,
    },
    /// ERR_INCONSISTENT_DATA: corrupt deflate data, or no payload at all.
    #[error("Inconsistent data: {detail}")]
    InconsistentData {
        /// What is wrong (zlib's message for corrupt data).
        detail: String,
    },
    /// ERR_BUFFER_TOO_SMALL: the stream does not end within ISIZE bytes (or the input is truncated).
    #[error("Buffer too small: the deflate stream does not end within ISIZE = {isize} bytes")]
    BufferTooSmall {
        /// The trailer's ISIZE.
        isize: u32,
    },
    /// ERR_CRC_ERROR: the produced bytes do not have the trailer's CRC32.
    #[error("CRC error during decompression. Received CRC ({received:#x}) != calculated CRC ({calculated:#x})")]
    CrcError {
        /// CRC32 from the trailer.
        received: u32,
        /// CRC32 of the produced bytes.
        calculated: u32,
    },
    /// ERR_CRC_ERROR after "Module content is likely corrupt." (ISIZE 0, payload over 256 bytes).
    #[error("Module content is likely corrupt.")]
    LikelyCorrupt,
    /// ERR_OUT_OF_RESOURCES: the ISIZE buffer does not fit in the memory left.
    #[error("Out of resources for decompressing data({bytes})")]
    OutOfResources {
        /// The allocation that failed (ISIZE).
        bytes: u64,
    },
}

impl LoadError {
    /// esx-boot's status for this error, as "Fatal error: `<code> (<text>)`" shows it.
    pub fn status(&self) -> EsxStatus {
        match self {
            LoadError::BadHeader { .. } => status::BAD_HEADER,
            LoadError::Unsupported { .. } => status::UNSUPPORTED,
            LoadError::InconsistentData { .. } => status::INCONSISTENT_DATA,
            LoadError::BufferTooSmall { .. } => status::BUFFER_TOO_SMALL,
            LoadError::CrcError { .. } | LoadError::LikelyCorrupt => status::CRC_ERROR,
            LoadError::OutOfResources { .. } => status::OUT_OF_RESOURCES,
        }
    }

    /// esx-boot's name for the status, e.g. `ERR_BAD_HEADER`.
    pub fn name(&self) -> &'static str {
        match self {
            LoadError::BadHeader { .. } => "ERR_BAD_HEADER",
            LoadError::Unsupported { .. } => "ERR_UNSUPPORTED",
            LoadError::InconsistentData { .. } => "ERR_INCONSISTENT_DATA",
            LoadError::BufferTooSmall { .. } => "ERR_BUFFER_TOO_SMALL",
            LoadError::CrcError { .. } | LoadError::LikelyCorrupt => "ERR_CRC_ERROR",
            LoadError::OutOfResources { .. } => "ERR_OUT_OF_RESOURCES",
        }
    }
}

/// A [`LoadError`] as [`check_module`] reports it: the same error, worded as
/// a clause for diagnostics ("bad gzip header: ...", mboot's sentence with
/// its first letter lowered; the CRC and ISIZE-0 messages exactly as mboot
/// logs them), and serialised in the check report's own shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckError(pub LoadError);

impl CheckError {
    /// The error itself.
    pub fn error(&self) -> &LoadError {
        &self.0
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            LoadError::CrcError { .. } | LoadError::LikelyCorrupt | LoadError::OutOfResources { .. } => self.0.fmt(f),
            e => {
                let line = e.to_string();
                let mut chars = line.chars();
                if let Some(first) = chars.next() {
                    write!(f, "{}", first.to_ascii_lowercase())?;
                }
                f.write_str(chars.as_str())
            }
        }
    }
}

impl std::error::Error for CheckError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl Serialize for CheckError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The check report's shape (variant order included).
        #[derive(Serialize)]
        enum GzipError<'e> {
            BadHeader(&'e str),
            Unsupported(u8),
            InconsistentData(&'e str),
            BufferTooSmall { isize: u32 },
            Crc { expected: u32, actual: u32 },
            LikelyCorrupt,
            OutOfResources { bytes: u64 },
        }
        match &self.0 {
            LoadError::BadHeader { detail } => GzipError::BadHeader(detail),
            LoadError::Unsupported { method } => GzipError::Unsupported(*method),
            LoadError::InconsistentData { detail } => GzipError::InconsistentData(detail),
            LoadError::BufferTooSmall { isize } => GzipError::BufferTooSmall { isize: *isize },
            LoadError::CrcError { received, calculated } => GzipError::Crc { expected: *received, actual: *calculated },
            LoadError::LikelyCorrupt => GzipError::LikelyCorrupt,
            LoadError::OutOfResources { bytes } => GzipError::OutOfResources { bytes: *bytes },
        }
        .serialize(serializer)
    }
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
    pub outcome: Result<ModuleForm, CheckError>,
}

impl ModuleCheck {
    /// Whether mboot would load this module.
    pub fn is_sound(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// `gzip_header_size`: `Ok(None)` for "not gzip" (ERR_BAD_TYPE, accepted
/// uncompressed by mboot), else the header length.
pub fn header_len(data: &[u8]) -> Result<Option<usize>, LoadError> {
    if data.len() < 2 || data[0..2] != [0x1F, 0x8B] {
        return Ok(None);
    }
    if data.len() < 10 {
        return Err(LoadError::BadHeader {
            detail: format!("{} bytes is shorter than the 10-byte header", data.len()),
        });
    }
    let flags = data[3];
    if flags & RESERVED != 0 {
        return Err(LoadError::BadHeader { detail: format!("reserved FLG bits set ({flags:#04x})") });
    }
    if data[2] != 8 {
        return Err(LoadError::Unsupported { method: data[2] });
    }
    let _ = FTEXT_IGNORED; // FTEXT, MTIME, XFL and OS are ignored.
    let mut at = 10usize;
    if flags & FEXTRA != 0 {
        if data.len() < 13 {
            return Err(LoadError::BadHeader { detail: "FEXTRA set but the file is shorter than 13 bytes".into() });
        }
        let xlen = usize::from(u16::from_le_bytes([data[10], data[11]]));
        at = 12 + xlen;
        if at > data.len() {
            return Err(LoadError::BadHeader { detail: format!("FEXTRA length {xlen} passes the end of the file") });
        }
    }
    for (flag, field) in [(FNAME, "FNAME"), (FCOMMENT, "FCOMMENT")] {
        if flags & flag != 0 {
            match data[at..].iter().position(|&b| b == 0) {
                Some(nul) => at += nul + 1,
                None => return Err(LoadError::BadHeader { detail: format!("{field} is not NUL-terminated") }),
            }
        }
    }
    if flags & FHCRC != 0 {
        // The header CRC itself is not checked, only that it fits.
        at += 2;
        if at > data.len() {
            return Err(LoadError::BadHeader { detail: "FHCRC passes the end of the file".into() });
        }
    }
    Ok(Some(at))
}

/// The trailer as mboot reads it (`gzip_get_info`): CRC32 and ISIZE are the
/// file's last 8 bytes, wherever the deflate stream ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Trailer {
    /// The CRC32 the file claims for the uncompressed bytes.
    pub(crate) crc32: u32,
    /// ISIZE: the uncompressed size the file claims (mod 2^32).
    pub(crate) isize: u32,
}

impl Trailer {
    /// The last 8 bytes of `file`; zeros for a shorter file (never the case
    /// once [`header_len`] found a header, which takes 10 bytes).
    #[inline]
    pub(crate) fn read(file: &[u8]) -> Trailer {
        let tail = &file[file.len().saturating_sub(8)..];
        if tail.len() == 8 {
            let word = |at: usize| u32::from_le_bytes(tail[at..at + 4].try_into().expect("4 bytes"));
            Trailer { crc32: word(0), isize: word(4) }
        } else {
            Trailer { crc32: 0, isize: 0 }
        }
    }
}

/// What is left to inflate once the header and the trailer are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Payload<'f> {
    /// ISIZE 0 and at most 256 bytes of payload: an empty module.
    Empty,
    /// The raw deflate input, payload plus one byte (zlib's "dummy" byte),
    /// to inflate into ISIZE (non-zero) bytes.
    Deflate(&'f [u8]),
}

/// mboot's rules between a `header`-byte header and inflating: a file of
/// exactly header + trailer is ERR_INCONSISTENT_DATA; ISIZE 0 is an empty
/// module or, with more than 256 bytes of payload, "likely corrupt".
#[inline]
pub(crate) fn framing(file: &[u8], header: usize, trailer: Trailer) -> Result<Payload<'_>, LoadError> {
    // Computed unsigned, as mboot does: a file shorter than header + 8
    // wraps around to a huge payload (and fails later).
    let payload_len = file.len().wrapping_sub(8).wrapping_sub(header);
    if payload_len == 0 {
        return Err(LoadError::InconsistentData { detail: NO_PAYLOAD.into() });
    }
    if trailer.isize == 0 {
        return if payload_len <= EMPTY_MODULE_SLACK { Ok(Payload::Empty) } else { Err(LoadError::LikelyCorrupt) };
    }
    let end = header.saturating_add(payload_len).saturating_add(1).min(file.len());
    Ok(Payload::Deflate(&file[header.min(end)..end]))
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
            check.outcome = Err(CheckError(e));
            return check;
        }
    };
    check.header_len = Some(header);
    let trailer = Trailer::read(data);
    check.crc32 = Some(trailer.crc32);
    check.isize = Some(trailer.isize);
    let input = match framing(data, header, trailer) {
        Ok(Payload::Deflate(input)) => input,
        Ok(Payload::Empty) => {
            check.loaded_size = Some(0);
            check.outcome = Ok(ModuleForm::Empty);
            return check;
        }
        Err(e) => {
            check.outcome = Err(CheckError(e));
            return check;
        }
    };
    // Into at most ISIZE bytes.
    match inflate_counting(input, u64::from(trailer.isize)) {
        Ok((produced, calculated)) => {
            if calculated != trailer.crc32 {
                check.outcome = Err(CheckError(LoadError::CrcError { received: trailer.crc32, calculated }));
            } else {
                check.loaded_size = Some(produced);
            }
        }
        Err(e) => check.outcome = Err(CheckError(e)),
    }
    check
}

/// Raw inflate of `input`, allowing at most `limit` bytes of output; returns
/// the bytes produced and their CRC32.
fn inflate_counting(input: &[u8], limit: u64) -> Result<(u64, u32), LoadError> {
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
            .map_err(|e| LoadError::InconsistentData { detail: e.to_string() })?;
        let wrote = (inflater.total_out() - out_before) as usize;
        hasher.update(&out[..wrote]);
        produced += wrote as u64;
        match status {
            Status::StreamEnd => return Ok((produced, hasher.finalize())),
            _ if produced >= limit => return Err(LoadError::BufferTooSmall { isize: limit as u32 }),
            _ if wrote == 0 && inflater.total_in() == in_before => {
                // No progress: the input ended before the stream did.
                return Err(LoadError::BufferTooSmall { isize: limit as u32 });
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

    /// The check's outcome, with the error itself.
    fn outcome(f: &[u8]) -> Result<ModuleForm, LoadError> {
        check_module(f).outcome.map_err(|e| e.0)
    }

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
        assert_eq!(outcome(b"plain"), Ok(ModuleForm::Uncompressed));
        assert_eq!(outcome(b""), Ok(ModuleForm::Uncompressed));
    }

    #[test]
    fn header_errors() {
        assert!(matches!(outcome(&[0x1F, 0x8B, 8, 0]), Err(LoadError::BadHeader { .. })));
        let mut f = gz(b"x");
        f[3] = 0x20;
        assert!(matches!(outcome(&f), Err(LoadError::BadHeader { .. })));
        let mut f = gz(b"x");
        f[2] = 7;
        assert_eq!(outcome(&f), Err(LoadError::Unsupported { method: 7 }));
        let mut f = gz(b"x");
        f[3] = FNAME;
        f.truncate(12);
        f[10] = b'a';
        f[11] = b'b';
        assert!(matches!(outcome(&f), Err(LoadError::BadHeader { .. })));
    }

    #[test]
    fn isize_smaller_than_truth_is_buffer_too_small_and_larger_is_accepted() {
        let data = vec![3u8; 5000];
        let mut f = gz(&data);
        let n = f.len();
        f[n - 4..].copy_from_slice(&4999u32.to_le_bytes());
        assert!(matches!(outcome(&f), Err(LoadError::BufferTooSmall { .. })));
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
        assert!(outcome(&t).is_err());
        let mut c = f.clone();
        let n = c.len();
        c[n - 8] ^= 1;
        assert!(matches!(outcome(&c), Err(LoadError::CrcError { .. })));
    }

    #[test]
    fn isize_zero_rule() {
        let mut f = gz(b"small");
        let n = f.len();
        f[n - 4..].fill(0);
        assert_eq!(outcome(&f), Ok(ModuleForm::Empty));
        let big: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let mut f = gz(&big);
        let n = f.len();
        f[n - 4..].fill(0);
        assert_eq!(outcome(&f), Err(LoadError::LikelyCorrupt));
    }

    #[test]
    fn header_plus_trailer_only_is_inconsistent() {
        let mut f = vec![0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3];
        f.extend_from_slice(&[0; 8]);
        assert!(matches!(outcome(&f), Err(LoadError::InconsistentData { .. })));
    }

    #[test]
    fn check_words_errors_as_clauses_and_keeps_mboots_sentences() {
        let words = |f: &[u8]| check_module(f).outcome.unwrap_err().to_string();
        assert_eq!(words(&[0x1F, 0x8B, 8, 0]), "bad gzip header: 4 bytes is shorter than the 10-byte header");
        let mut f = gz(b"x");
        f[2] = 7;
        assert_eq!(words(&f), "unsupported compression method 7");
        let mut f = vec![0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3];
        f.extend_from_slice(&[0; 8]);
        assert_eq!(words(&f), "inconsistent data: no deflate data between header and trailer");
        let mut f = gz(&[3u8; 5000]);
        let n = f.len();
        f[n - 4..].copy_from_slice(&4999u32.to_le_bytes());
        assert_eq!(words(&f), "buffer too small: the deflate stream does not end within ISIZE = 4999 bytes");
        f[n - 4..].copy_from_slice(&5000u32.to_le_bytes());
        f[n - 8] ^= 1;
        let e = check_module(&f).outcome.unwrap_err();
        assert_eq!(e.to_string(), e.error().to_string());
        assert!(e.to_string().starts_with("CRC error during decompression. Received CRC (0x"));
    }
}
