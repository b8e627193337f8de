//! Deterministic "system binary" payloads: the bulk of the synthetic `s.v00`.
//!
//! The real ESXi 5.0 `s.v00` is about 124 MB of gzip holding about 370 MB of
//! system binaries. This module makes content that looks and compresses like
//! that, fast, and wraps it in gzip the way the bootloader reads it.
//!
//! What it promises:
//! - **Pure content.** [`fill_system_bytes`] gives the byte at stream offset
//!   `o` as a function of `(seed, o)` only, so any range can be generated on
//!   its own, in any order, on any thread. The stream is cut into 4 KiB
//!   pages; each 32 KiB region has one section kind (x86-64 code, string and
//!   symbol tables, relocations, pointer tables, sparse data, zero padding,
//!   high-entropy blobs), each page its own seeded generator.
//! - **Realistic ratio.** gzip level 6 compresses the stream about
//!   [`MEASURED_RATIO`] to 1 (the real `s.v00`: 370/124 ≈ 3.0).
//! - **Deterministic gzip.** [`gzip_system_module`] writes one gzip member
//!   (RFC 1952) whose bytes depend only on its arguments and on the deflate
//!   implementation (zlib-rs, level 6, pinned by `Cargo.lock`): never on the
//!   clock, the OS, or the number of threads. The layout is
//!
//!   ```text
//!   1F 8B 08 FLG | MTIME (LE) | XFL=0 | OS=3 | FNAME NUL   header, FNAME if named
//!   chunk 0: raw deflate, sync flush (byte aligned, not final)
//!   chunk 1: raw deflate, sync flush                        one deflate stream
//!   ...
//!   chunk n: raw deflate, finished (final block)
//!   CRC32 (LE) | ISIZE = length mod 2^32 (LE)               trailer
//!   ```
//!
//!   Chunks are [`CHUNK_BYTES`] of uncompressed content each, compressed
//!   independently on all cores (as pigz does) and concatenated in order.
//! - **Cache.** [`cached_gzip_system_module`] keeps finished modules on disk,
//!   keyed by every input plus [`GENERATOR_VERSION`] and a fingerprint of the
//!   deflate implementation's output, verified on every read (size and CRC32
//!   of the whole file from a sidecar), written atomically (temp + rename).
//! - **No panics.** No input makes these functions panic.
//!
//! ```text
//!   mod.rs    the API: sizes, GENERATOR_VERSION, GzipModule, uncompressed_len_for
//!   content   fill_system_bytes: the seeded "system binary" generator
//!   gzip      gzip_bytes, gzip_system_module: deterministic framing, parallel deflate
//!   cache     cached_gzip_system_module, default_cache_dir, cache_files: the on-disk cache
//! ```

mod cache;
mod content;
mod gzip;

pub use cache::{
    cache_files, cached_gzip_system_module, default_cache_dir, is_cache_file_name, CacheError, CacheErrorKind,
};
pub use content::fill_system_bytes;
pub(crate) use gzip::gzip_stored;
pub use gzip::{gzip_bytes, gzip_system_module};

/// Approximate compressed size of the real ESXi 5.0 `s.v00`.
pub const REALISTIC_SV00_COMPRESSED: u64 = 124 * 1000 * 1000;

/// Version of the content generator and the gzip framing. Bump it whenever
/// [`fill_system_bytes`] or the module layout changes: it is part of the
/// cache key.
pub const GENERATOR_VERSION: u32 = 1;

/// Uncompressed bytes per independently compressed chunk.
pub const CHUNK_BYTES: usize = 4 << 20;

/// Compression ratio (uncompressed / compressed) of [`gzip_system_module`]
/// on the system content, measured: 3.06 for a 378 MB module, 2.99–3.08
/// over seeds at 64 MiB (GNU `gzip -6` does about 1.5% better). See
/// [`uncompressed_len_for`].
pub const MEASURED_RATIO: f64 = RATIO_PERCENT as f64 / 100.0;

/// [`MEASURED_RATIO`] × 100, for integer arithmetic.
const RATIO_PERCENT: u64 = 305;

/// A finished gzip module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GzipModule {
    /// The whole gzip file.
    pub bytes: Vec<u8>,
    /// Length of the uncompressed content.
    pub uncompressed_len: u64,
    /// CRC32 of the uncompressed content (as in the trailer).
    pub crc32: u32,
}

/// Uncompressed size to request so that the compressed module is about
/// `compressed_target` bytes, by [`MEASURED_RATIO`].
pub fn uncompressed_len_for(compressed_target: u64) -> u64 {
    let len = u128::from(compressed_target) * u128::from(RATIO_PERCENT) / 100;
    u64::try_from(len).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncompressed_len_for_scales_by_the_ratio() {
        assert_eq!(uncompressed_len_for(0), 0);
        assert_eq!(uncompressed_len_for(100), RATIO_PERCENT);
        let real = uncompressed_len_for(REALISTIC_SV00_COMPRESSED);
        assert!((340_000_000..=400_000_000).contains(&real), "{real}");
        assert!(uncompressed_len_for(u64::MAX) == u64::MAX);
    }
}
