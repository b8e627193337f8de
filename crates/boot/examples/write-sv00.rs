//! Writes the realistic `s.v00` (the one the realistic image with seed 1
//! carries, about 124 MB of gzip) to the file named by the first argument,
//! for `scripts/bench-inflate.sh`. Uses the payload cache
//! (`visorsim_host::image::payload::default_cache_dir`), so only the first
//! run pays for the compression.
//!
//! ```text
//! cargo run --release -p visorsim-boot --example write-sv00 -- OUT
//! ```

use std::process::ExitCode;

use visorsim_host::image::payload::{
    cached_gzip_system_module, default_cache_dir, uncompressed_len_for, REALISTIC_SV00_COMPRESSED,
};
use visorsim_host::image::system::{sub_seed, IMAGE_MTIME};

/// Seed of the realistic image whose `s.v00` this writes.
const IMAGE_SEED: u64 = 1;
/// `s.v00`'s component index in `SystemImage::build` (its plan index + 1).
const SV00_INDEX: u64 = 9;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: write-sv00 OUT");
        return ExitCode::from(2);
    };
    let len = uncompressed_len_for(REALISTIC_SV00_COMPRESSED);
    let seed = sub_seed(IMAGE_SEED, SV00_INDEX);
    let module = match cached_gzip_system_module(default_cache_dir().as_deref(), "s.v00", seed, len, IMAGE_MTIME, &mut |_| {}) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("write-sv00: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(&out, &module.bytes) {
        eprintln!("write-sv00: Cannot write {}: {e}", out.to_string_lossy());
        return ExitCode::FAILURE;
    }
    println!("{} {} {}", out.to_string_lossy(), module.bytes.len(), module.uncompressed_len);
    ExitCode::SUCCESS
}
