//! Building the realistic ESXi 6.x disk and inspecting it.
//!
//! `build/realistic_esxi6` measures what `visorsim build --realistic` does
//! once the compressed payloads are cached (the common case: the first
//! build of a (seed, size) generates and caches them): assemble the image,
//! install it on a sparse 8 GiB memory disk, write the sparse raw file.
//! `inspect/realistic_esxi6` reads that file back the way `visorsim
//! inspect` does, which inflates and CRC-checks every module.

use criterion::{criterion_group, criterion_main, Criterion};
use visorsim_disk::{FileDisk, SectorSize};
use visorsim_image::inspect::inspect;
use visorsim_image::install::{install_fresh, InstallOptions};
use visorsim_image::payload::default_cache_dir;
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};
use visorsim_media::layout::Layout;

fn spec() -> ImageSpec {
    ImageSpec {
        version: "6.7.0".into(),
        build_number: 8169922,
        seed: 1,
        payload: PayloadSize::Realistic,
        hostname: "esxi-01".into(),
    }
}

fn options() -> InstallOptions {
    InstallOptions { layout: Layout::Esxi6, size: None, sector_size: SectorSize::S512, seed: 1 }
}

fn benches(c: &mut Criterion) {
    let cache = default_cache_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("esxi6.img");
    // Warm the payload cache once, outside the measurement.
    let image = SystemImage::build(&spec(), cache.as_deref(), &mut |_, _| {}).expect("image");
    let (disk, _) = install_fresh(&image, &options()).expect("install");
    FileDisk::save_sparse(&disk, &out).expect("save");
    drop((image, disk));

    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    group.bench_function("realistic_esxi6", |b| {
        b.iter(|| {
            let image = SystemImage::build(&spec(), cache.as_deref(), &mut |_, _| {}).expect("image");
            let (disk, _) = install_fresh(&image, &options()).expect("install");
            FileDisk::save_sparse(&disk, &out).expect("save");
        })
    });
    group.finish();

    let mut group = c.benchmark_group("inspect");
    group.sample_size(10);
    group.bench_function("realistic_esxi6", |b| {
        b.iter(|| {
            let mut disk = FileDisk::open_read_only(&out, SectorSize::S512).expect("open");
            let report = inspect(&mut disk);
            assert!(report.problems.is_empty(), "{:?}", report.problems);
        })
    });
    group.finish();
}

criterion_group!(disk_image, benches);
criterion_main!(disk_image);
