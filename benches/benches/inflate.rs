//! The boot hot path on a realistic `s.v00` (about 124 MB of gzip holding
//! 378 MB, the one the realistic image with seed 1 carries), throughput in
//! output bytes:
//!
//! ```text
//!   raw/<backend>/fresh       raw inflate into a fresh ISIZE Vec (page faults included)
//!   raw/<backend>/reused      raw inflate into a buffer reused across iterations
//!   raw/<backend>/reused+md5  the same, then CRC32 and MD5 of the output and MD5 of the
//!                             file, in sequence (mboot's work on one core)
//!   hash/crc32, hash/md5      the hashes alone, over the output
//!   load/<backend>/md5        load_module as mboot does it (both MD5s)
//!   load/<backend>/no-md5     load_module without the MD5s
//! ```
//!
//! `cargo bench -p visorsim-benches --bench inflate [-- FILTER]`. Each
//! iteration takes 0.3–2 s, so the group samples 10 single iterations
//! (flat sampling). The module comes from the payload cache
//! (`visorsim_image::payload::default_cache_dir`); the first run
//! builds it (about two minutes on 2 cores). Outputs are dropped outside the
//! timing (a booted module stays in memory).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use flate2::{Decompress, FlushDecompress, Status};
use md5::{Digest, Md5};
use visorsim_boot::gzip::header_len;
use visorsim_boot::load::{load_module, Backend, LoadOptions};
use visorsim_image::payload::{
    cached_gzip_system_module, default_cache_dir, uncompressed_len_for, REALISTIC_SV00_COMPRESSED,
};
use visorsim_image::system::{sub_seed, IMAGE_MTIME};

/// The realistic image's seed, and s.v00's component index in it.
const IMAGE_SEED: u64 = 1;
const SV00_INDEX: u64 = 9;

fn sv00() -> Vec<u8> {
    let len = uncompressed_len_for(REALISTIC_SV00_COMPRESSED);
    let seed = sub_seed(IMAGE_SEED, SV00_INDEX);
    cached_gzip_system_module(default_cache_dir().as_deref(), "s.v00", seed, len, IMAGE_MTIME, &mut |_| {})
        .expect("s.v00")
        .bytes
}

/// Raw inflate of `input` into `out` (the whole stream), returning the bytes produced.
fn inflate(backend: Backend, input: &[u8], out: &mut [u8]) -> usize {
    match backend {
        Backend::Libdeflate => libdeflater::Decompressor::new().deflate_decompress(input, out).expect("inflate"),
        Backend::Zlibrs => {
            let mut z = Decompress::new(false);
            let status = z.decompress(input, out, FlushDecompress::Finish).expect("inflate");
            assert_eq!(status, Status::StreamEnd);
            z.total_out() as usize
        }
        Backend::Miniz => {
            use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
            let mut state = Box::<DecompressorOxide>::default();
            let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
            let (status, _, n) = decompress(&mut state, input, out, 0, flags);
            assert_eq!(status, miniz_oxide::inflate::TINFLStatus::Done);
            n
        }
    }
}

fn benches(c: &mut Criterion) {
    let file = sv00();
    let header = header_len(&file).expect("gzip header").expect("gzip");
    let isize = u32::from_le_bytes(file[file.len() - 4..].try_into().expect("4 bytes")) as usize;
    let input = &file[header..file.len() - 7];
    let mut reused = vec![0u8; isize];
    assert_eq!(inflate(Backend::Libdeflate, input, &mut reused), isize);

    let mut group = c.benchmark_group("sv00");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Bytes(isize as u64));

    group.bench_function("hash/crc32", |b| b.iter(|| crc32fast::hash(black_box(&reused))));
    group.bench_function("hash/md5", |b| b.iter(|| Md5::digest(black_box(&reused))));
    for backend in Backend::ALL {
        let name = backend.name();
        group.bench_function(format!("raw/{name}/fresh"), |b| {
            b.iter_with_large_drop(|| {
                let mut out = vec![0u8; isize];
                black_box(inflate(backend, input, &mut out));
                out
            })
        });
        group.bench_function(format!("raw/{name}/reused"), |b| b.iter(|| inflate(backend, input, &mut reused)));
        group.bench_function(format!("raw/{name}/reused+md5"), |b| {
            b.iter(|| {
                let n = inflate(backend, input, &mut reused);
                (crc32fast::hash(&reused[..n]), Md5::digest(&reused[..n]), Md5::digest(&file))
            })
        });
        for md5 in [true, false] {
            let opts = LoadOptions { backend, md5, ..LoadOptions::default() };
            let label = if md5 { "md5" } else { "no-md5" };
            group.bench_function(format!("load/{name}/{label}"), |b| {
                b.iter_with_large_drop(|| {
                    let m = load_module("/s.v00", &file, &opts).expect("load");
                    assert_eq!(m.size, isize as u64);
                    m
                })
            });
        }
    }
    group.finish();
}

criterion_group!(inflate_benches, benches);
criterion_main!(inflate_benches);
