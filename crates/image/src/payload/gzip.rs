//! gzip framing: [`gzip_bytes`] for small files and [`gzip_system_module`]
//! for the large modules, compressed in [`CHUNK_BYTES`] chunks on all cores
//! (as pigz does) into one deflate stream:
//!
//! ```text
//! 1F 8B 08 FLG | MTIME (LE) | XFL=0 | OS=3 | FNAME NUL   header, FNAME if named
//! chunk 0: raw deflate, sync flush (byte aligned, not final)
//! ...
//! chunk n: raw deflate, finished (final block)
//! CRC32 (LE) | ISIZE = length mod 2^32 (LE)               trailer
//! ```
//!
//! Workers take chunk numbers from a counter; the calling thread appends
//! the chunks in order and combines their CRCs, so the bytes never depend
//! on the number of threads. Deflate is zlib-rs at level 6; should it ever
//! report an error, the chunk is written as stored blocks instead.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use flate2::{Compress, Compression, FlushCompress, Status};

use super::{fill_system_bytes, GzipModule, CHUNK_BYTES, RATIO_PERCENT};

/// The deflate level every module uses.
const LEVEL: u32 = 6;

/// The gzip OS byte: Unix, as gzip writes it.
const GZIP_OS_UNIX: u8 = 3;

/// The gzip FLG bit for a file name.
const GZIP_FNAME: u8 = 0x08;

/// `len mod 2^32`, the gzip ISIZE.
pub(super) fn isize_of(len: u64) -> u32 {
    u32::try_from(len & 0xffff_ffff).unwrap_or(0)
}

/// Appends a gzip header: FNAME when `name` (cut at its first NUL) is not
/// empty, the given MTIME, XFL 0 (default level), OS Unix.
fn push_header(out: &mut Vec<u8>, name: Option<&str>, mtime: u32) {
    let name = name.unwrap_or("").as_bytes();
    let name = name.split(|&b| b == 0).next().unwrap_or(&[]);
    let flags = if name.is_empty() { 0 } else { GZIP_FNAME };
    out.extend_from_slice(&[0x1f, 0x8b, 8, flags]);
    out.extend_from_slice(&mtime.to_le_bytes());
    out.extend_from_slice(&[0, GZIP_OS_UNIX]);
    if !name.is_empty() {
        out.extend_from_slice(name);
        out.push(0);
    }
}

/// Appends the gzip trailer.
fn push_trailer(out: &mut Vec<u8>, crc: u32, len: u64) {
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&isize_of(len).to_le_bytes());
}

/// Raw deflate of `data` at [`LEVEL`]: finished when `last`, else ended by
/// a sync flush so that the next chunk's stream can follow it.
fn deflate_chunk(data: &[u8], last: bool) -> Vec<u8> {
    zlib_deflate(data, last).unwrap_or_else(|| stored_deflate(data, last))
}

/// [`deflate_chunk`] through zlib-rs; `None` if the library reports an
/// error (which would be a bug in how it is driven).
fn zlib_deflate(data: &[u8], last: bool) -> Option<Vec<u8>> {
    let mut c = Compress::new(Compression::new(LEVEL), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    loop {
        if out.capacity() - out.len() < 16 * 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = usize::try_from(c.total_in()).ok()?;
        let status = c.compress_vec(data.get(consumed..)?, &mut out, flush).ok()?;
        let all_in = usize::try_from(c.total_in()).ok()? == data.len();
        match status {
            Status::StreamEnd => return Some(out),
            // A sync flush is complete once all input is in and zlib left
            // output space unused.
            Status::Ok | Status::BufError if !last && all_in && out.len() < out.capacity() => return Some(out),
            Status::Ok | Status::BufError => {}
        }
    }
}

/// Raw deflate of `data` as stored blocks (no compression): the fallback
/// that keeps [`deflate_chunk`] total. Starts and ends byte aligned.
fn stored_deflate(data: &[u8], last: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 10);
    let mut blocks = data.chunks(65535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[u8::from(last), 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        let fin = last && blocks.peek().is_none();
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.push(u8::from(fin));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out
}

/// A single-member gzip file of `data`, named `name` (FNAME, if any), with
/// the given MTIME, deflate level 6. Deterministic.
pub fn gzip_bytes(name: Option<&str>, data: &[u8], mtime: u32) -> Vec<u8> {
    let body = deflate_chunk(data, true);
    let mut out = Vec::with_capacity(body.len() + 32 + name.map_or(0, str::len));
    push_header(&mut out, name, mtime);
    out.extend_from_slice(&body);
    push_trailer(&mut out, crc32fast::hash(data), data.len() as u64);
    out
}

/// A single-member gzip file of `data` in stored (uncompressed) deflate
/// blocks, no name, MTIME 0. For the `state_tgz` fuzz target's wrapping of
/// mutated tars: zlib's deflate (its state set up per call and level 6's
/// match search) took about two thirds of that target's time, none of it
/// in the code under test; a stored stream still goes through the
/// reader's inflate.
pub(crate) fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let body = stored_deflate(data, true);
    let mut out = Vec::with_capacity(body.len() + 18);
    push_header(&mut out, None, 0);
    out.extend_from_slice(&body);
    push_trailer(&mut out, crc32fast::hash(data), data.len() as u64);
    out
}

/// A single-member gzip file (RFC 1952; FNAME = `name`, MTIME = `mtime`, XFL
/// 0, OS Unix) of `uncompressed_len` bytes of system content of `seed`
/// (see [`fill_system_bytes`]), compressed on all cores.
///
/// `progress` is called on the calling thread with the number of
/// uncompressed bytes compressed so far (increasing, ending at
/// `uncompressed_len`). The bytes do not depend on the number of cores.
pub fn gzip_system_module(
    name: &str,
    seed: u64,
    uncompressed_len: u64,
    mtime: u32,
    progress: &mut dyn FnMut(u64),
) -> GzipModule {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    gzip_system_module_threads(name, seed, uncompressed_len, mtime, threads, progress)
}

/// One compressed chunk, as a worker hands it back.
struct Chunk {
    index: u64,
    deflated: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
}

/// [`gzip_system_module`] with at most `threads` workers (0 counts as 1).
fn gzip_system_module_threads(
    name: &str,
    seed: u64,
    uncompressed_len: u64,
    mtime: u32,
    threads: usize,
    progress: &mut dyn FnMut(u64),
) -> GzipModule {
    const CHUNK_U64: u64 = CHUNK_BYTES as u64;
    let chunks = uncompressed_len.div_ceil(CHUNK_U64).max(1);
    let workers = u64::try_from(threads.max(1)).unwrap_or(1).min(chunks);
    let next = AtomicU64::new(0);

    // Each worker takes the next chunk number, generates and compresses it.
    let work = |tx: mpsc::Sender<Chunk>| {
        let mut buf = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= chunks {
                break;
            }
            let start = index * CHUNK_U64;
            let len = (uncompressed_len - start).min(CHUNK_U64);
            buf.resize(usize::try_from(len).unwrap_or(CHUNK_BYTES), 0);
            fill_system_bytes(seed, start, &mut buf);
            let mut crc = crc32fast::Hasher::new();
            crc.update(&buf);
            let deflated = deflate_chunk(&buf, index + 1 == chunks);
            if tx.send(Chunk { index, deflated, crc, len }).is_err() {
                break;
            }
        }
    };

    let estimate = uncompressed_len / RATIO_PERCENT * 100 + uncompressed_len / 16 + 4096;
    let mut out = Vec::with_capacity(usize::try_from(estimate.min(1 << 30)).unwrap_or(0));
    push_header(&mut out, Some(name), mtime);
    let mut crc = crc32fast::Hasher::new();

    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<Chunk>();
        let mut spawned = 0;
        for i in 0..workers {
            let tx = tx.clone();
            let work = &work;
            let builder = std::thread::Builder::new().name(format!("visorsim-gzip-{i}"));
            if builder.spawn_scoped(scope, move || work(tx)).is_ok() {
                spawned += 1;
            }
        }
        if spawned == 0 {
            // No thread could be started: do the work here.
            work(tx.clone());
        }
        drop(tx);

        // Append chunks in order as they arrive; park early ones.
        let mut parked = BTreeMap::new();
        let mut next_out = 0u64;
        let mut done = 0u64;
        for chunk in rx {
            done += chunk.len;
            progress(done);
            parked.insert(chunk.index, chunk);
            while let Some(chunk) = parked.remove(&next_out) {
                out.extend_from_slice(&chunk.deflated);
                crc.combine(&chunk.crc);
                next_out += 1;
            }
        }
    });

    let crc32 = crc.finalize();
    push_trailer(&mut out, crc32, uncompressed_len);
    GzipModule { bytes: out, uncompressed_len, crc32 }
}

#[cfg(test)]
mod tests {
    use super::super::MEASURED_RATIO;
    use super::*;
    use crate::test_tools::run;
    use std::fs;
    use std::io::Read;
    use std::process::Command;

    fn content(seed: u64, offset: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        fill_system_bytes(seed, offset, &mut v);
        v
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    fn trailer(bytes: &[u8]) -> (u32, u32) {
        let t = &bytes[bytes.len() - 8..];
        (u32::from_le_bytes(t[..4].try_into().unwrap()), u32::from_le_bytes(t[4..].try_into().unwrap()))
    }

    #[test]
    fn module_is_valid_gzip_with_right_trailer_and_content() {
        let len = CHUNK_BYTES as u64 + 123_457; // two chunks, the last partial
        let mut seen = Vec::new();
        let m = gzip_system_module("s.v00", 5, len, 0x5a5a_0001, &mut |d| seen.push(d));
        let expected = content(5, 0, usize::try_from(len).unwrap());
        assert_eq!(m.uncompressed_len, len);
        assert_eq!(m.crc32, crc32fast::hash(&expected));
        assert_eq!(trailer(&m.bytes), (m.crc32, u32::try_from(len).unwrap()));
        // Header: magic, deflate, FNAME only, MTIME, XFL 0, OS Unix, name.
        assert_eq!(m.bytes[..4], [0x1f, 0x8b, 8, GZIP_FNAME]);
        assert_eq!(m.bytes[4..8], 0x5a5a_0001u32.to_le_bytes());
        assert_eq!(m.bytes[8..10], [0, 3]);
        assert_eq!(&m.bytes[10..16], b"s.v00\0");
        // One member, one deflate stream: a single-member decoder reads it all.
        let mut single = Vec::new();
        flate2::read::GzDecoder::new(&m.bytes[..]).read_to_end(&mut single).unwrap();
        assert!(single == expected, "GzDecoder output differs");
        assert!(gunzip(&m.bytes) == expected, "MultiGzDecoder output differs");
        // Progress ends at the length and never goes back.
        assert_eq!(seen.last(), Some(&len));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn module_passes_gzip_t_and_gzip_dc() {
        let len = 2 * CHUNK_BYTES as u64 + 1000;
        let m = gzip_system_module("s.v00", 11, len, 0, &mut |_| {});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.v00");
        fs::write(&path, &m.bytes).unwrap();
        let Some(t) = run(Command::new("gzip").arg("-t").arg(&path)) else { return };
        assert!(t.status.success() && t.stderr.is_empty(), "gzip -t: {}", String::from_utf8_lossy(&t.stderr));
        let Some(dc) = run(Command::new("gzip").arg("-dc").arg(&path)) else { return };
        assert!(dc.status.success(), "gzip -dc: {}", String::from_utf8_lossy(&dc.stderr));
        assert!(dc.stdout == content(11, 0, usize::try_from(len).unwrap()), "gzip -dc output differs");
        // gzip -l reads the name and size from the file.
        let Some(l) = run(Command::new("gzip").arg("-lv").arg(&path)) else { return };
        let listing = String::from_utf8_lossy(&l.stdout);
        assert!(listing.contains(&len.to_string()), "{listing}");
    }

    #[test]
    fn same_bytes_whatever_the_thread_count() {
        let len = 2 * CHUNK_BYTES as u64 + 4096 * 3 + 5;
        let one = gzip_system_module_threads("x", 3, len, 7, 1, &mut |_| {});
        let three = gzip_system_module_threads("x", 3, len, 7, 3, &mut |_| {});
        let many = gzip_system_module_threads("x", 3, len, 7, 64, &mut |_| {});
        assert!(one == three && one == many);
        assert!(gunzip(&one.bytes) == content(3, 0, usize::try_from(len).unwrap()));
    }

    #[test]
    fn ratio_is_realistic() {
        let len = 32u64 << 20;
        let m = gzip_system_module("s.v00", 1, len, 0, &mut |_| {});
        let ratio = len as f64 / m.bytes.len() as f64;
        assert!((2.5..=3.5).contains(&ratio), "ratio {ratio:.3}");
        assert!((ratio - MEASURED_RATIO).abs() < 0.2, "ratio {ratio:.3} vs constant {MEASURED_RATIO}");
    }

    #[test]
    fn empty_and_tiny_modules_are_valid() {
        for len in [0u64, 1, 4095, 4097] {
            let m = gzip_system_module("", 0, len, 0, &mut |_| {});
            assert_eq!(m.bytes[3], 0, "no FNAME for an empty name");
            assert!(gunzip(&m.bytes) == content(0, 0, usize::try_from(len).unwrap()));
            assert_eq!(
                trailer(&m.bytes),
                (crc32fast::hash(&content(0, 0, usize::try_from(len).unwrap())), u32::try_from(len).unwrap())
            );
        }
    }

    #[test]
    fn gzip_bytes_is_deterministic_and_valid() {
        let data = b"hello hello hello hello".repeat(100);
        let a = gzip_bytes(Some("b.b00"), &data, 1234);
        assert_eq!(a, gzip_bytes(Some("b.b00"), &data, 1234));
        assert_ne!(a, gzip_bytes(Some("b.b00"), &data, 1235));
        assert_eq!(a[3], GZIP_FNAME);
        assert_eq!(gunzip(&a), data);
        let none = gzip_bytes(None, &[], 0);
        assert_eq!(none[3], 0);
        assert_eq!(gunzip(&none), b"");
        // A NUL in the name ends it.
        let cut = gzip_bytes(Some("ab\0cd"), b"x", 0);
        assert_eq!(&cut[10..13], b"ab\0");
        assert_eq!(gunzip(&cut), b"x");
    }

    #[test]
    fn stored_fallback_is_valid_deflate() {
        let data = content(8, 0, 200_000);
        let mut stream = stored_deflate(&data[..70_000], false);
        stream.extend(stored_deflate(&data[70_000..], true));
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(&stream[..]).read_to_end(&mut out).unwrap();
        assert!(out == data);
        let mut empty = stored_deflate(&[], false);
        empty.extend(stored_deflate(&[], true));
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(&empty[..]).read_to_end(&mut out).unwrap();
        assert!(out.is_empty());
    }
}
