//! Test helpers for the load path: module files (whole, chunked at
//! sync-flush points, with a forged ISIZE), loading with every backend, and
//! the inflate paths a load took.

use std::io::Write;

use flate2::{write::GzEncoder, Compression};

use super::{load_module, Backend, LoadError, LoadOptions, LoadedModule, PATHS};
use crate::gzip::{self, ModuleForm, NO_PAYLOAD};

pub(super) fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Content that compresses about 3:1, like system binaries.
pub(super) fn content(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if (i / 64) % 3 == 0 {
                (x & 0xFF) as u8
            } else {
                (i % 7) as u8 + b'a'
            }
        })
        .collect()
}

/// gzip of `data` in independent chunks joined by sync-flush points, as
/// visorsim's system modules are.
pub(super) fn gz_chunked(data: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = vec![0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3];
    let pieces: Vec<&[u8]> = data.chunks(chunk).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let mut c = flate2::Compress::new(Compression::default(), false);
        let mut buf = Vec::with_capacity(piece.len() + 1024);
        let flush = if i + 1 == pieces.len() { flate2::FlushCompress::Finish } else { flate2::FlushCompress::Sync };
        c.compress_vec(piece, &mut buf, flush).unwrap();
        out.extend_from_slice(&buf);
    }
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

pub(super) fn set_isize(f: &mut [u8], isize: u32) {
    let n = f.len();
    f[n - 4..].copy_from_slice(&isize.to_le_bytes());
}

pub(super) fn opts(backend: Backend) -> LoadOptions {
    LoadOptions { backend, ..LoadOptions::default() }
}

/// What every backend gives, after checking they all give the same.
pub(super) fn load_all(path: &str, file: &[u8]) -> Result<LoadedModule, LoadError> {
    let first = load_module(path, file, &opts(Backend::Libdeflate));
    for b in [Backend::Zlibrs, Backend::Miniz] {
        assert_eq!(load_module(path, file, &opts(b)), first, "{} disagrees", b.name());
    }
    first
}

/// The fields of a result that check_module also states. zlib's message
/// for corrupt data is left out: zlib-rs words the same error
/// differently depending on how the output is split between calls (a
/// single call can report "repeated call with bad state"), and mboot
/// never prints it.
pub(super) fn summary(r: &Result<LoadedModule, LoadError>) -> Result<(ModuleForm, u64), LoadError> {
    r.as_ref().map(|m| (m.form, m.size)).map_err(normalized)
}

pub(super) fn normalized(e: &LoadError) -> LoadError {
    match e {
        LoadError::InconsistentData { detail } if detail != NO_PAYLOAD => {
            LoadError::InconsistentData { detail: "corrupt".into() }
        }
        e => e.clone(),
    }
}

pub(super) fn check_summary(file: &[u8]) -> Result<(ModuleForm, u64), LoadError> {
    let c = gzip::check_module(file);
    c.outcome.map(|form| (form, c.loaded_size.unwrap_or(0))).map_err(|e| normalized(&e.0))
}

/// The inflate paths taken on this thread since the last call.
pub(super) fn paths() -> Vec<&'static str> {
    PATHS.with(|p| std::mem::take(&mut *p.borrow_mut()))
}
