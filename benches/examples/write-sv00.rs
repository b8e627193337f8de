//! Writes the realistic `s.v00` (the one the realistic image with seed 1
//! carries: about 124 MB of gzip holding 378 MB) to the file named by the
//! first argument, for `scripts/bench-inflate.sh`. With `--image DIR`, writes
//! every gzip module of that realistic image into DIR instead (kernel first,
//! boot.cfg order) and prints their names. Uses the payload cache
//! (`visorsim_image::payload::default_cache_dir`), so only the first
//! run pays for the compression.
//!
//! ```text
//! cargo run --release -p visorsim-benches --example write-sv00 -- OUT
//! cargo run --release -p visorsim-benches --example write-sv00 -- --image DIR
//! ```

use std::path::Path;
use std::process::ExitCode;

use visorsim_image::payload::{
    cached_gzip_system_module, default_cache_dir, uncompressed_len_for, REALISTIC_SV00_COMPRESSED,
};
use visorsim_image::system::{sub_seed, ImageSpec, PayloadSize, SystemImage, IMAGE_MTIME};

/// Seed of the realistic image whose `s.v00` this writes.
const IMAGE_SEED: u64 = 1;
/// `s.v00`'s component index in `SystemImage::build` (its plan index + 1).
const SV00_INDEX: u64 = 9;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag, dir] if flag == "--image" => write_image(Path::new(dir)),
        [out] if !out.starts_with('-') => write_sv00(Path::new(out)),
        _ => {
            eprintln!("usage: write-sv00 OUT | write-sv00 --image DIR");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("write-sv00: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_sv00(out: &Path) -> std::io::Result<()> {
    let len = uncompressed_len_for(REALISTIC_SV00_COMPRESSED);
    let seed = sub_seed(IMAGE_SEED, SV00_INDEX);
    let module =
        cached_gzip_system_module(default_cache_dir().as_deref(), "s.v00", seed, len, IMAGE_MTIME, &mut |_| {})?;
    std::fs::write(out, &module.bytes)
        .map_err(|e| std::io::Error::new(e.kind(), format!("Cannot write {}: {e}", out.display())))?;
    println!("{} {} {}", out.display(), module.bytes.len(), module.uncompressed_len);
    Ok(())
}

fn write_image(dir: &Path) -> std::io::Result<()> {
    let spec = ImageSpec {
        version: "6.7.0".into(),
        build_number: 8169922,
        seed: IMAGE_SEED,
        payload: PayloadSize::Realistic,
        hostname: "esxi-01".into(),
    };
    let image = SystemImage::build(&spec, default_cache_dir().as_deref(), &mut |_, _| {})?;
    std::fs::create_dir_all(dir)?;
    for file in image.files.iter().filter(|f| f.data.starts_with(&[0x1F, 0x8B])) {
        let path = dir.join(&file.name);
        std::fs::write(&path, &file.data)
            .map_err(|e| std::io::Error::new(e.kind(), format!("Cannot write {}: {e}", path.display())))?;
        println!("{}", path.display());
    }
    Ok(())
}
