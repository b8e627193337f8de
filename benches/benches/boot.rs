//! The boot hot path on the realistic ESXi 6.x image (s.v00 ≈ 124 MB of gzip).
//!
//! - `boot/cold`: a boot with an empty module cache: every module is read
//!   from the FAT, inflated, CRC-checked and MD5-summed (the report is
//!   identical to the slow way).
//! - `boot/cold_without_md5`: the same without the MD5s, as the host boots
//!   (its timeline shows none).
//! - `boot/warm_fork`: what crash-point exploration does thousands of times:
//!   boot a copy-on-write fork of a disk whose modules did not change, with
//!   the module cache shared between boots. No module is inflated again.

use criterion::{criterion_group, criterion_main, Criterion};
use visorsim_boot::boot::{boot, BootOptions, ModuleCache, Outcome};
use visorsim_disk::SectorSize;
use visorsim_image::install::{install_fresh, InstallOptions};
use visorsim_image::payload::default_cache_dir;
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};
use visorsim_media::layout::Layout;

fn benches(c: &mut Criterion) {
    let spec = ImageSpec {
        version: "6.7.0".into(),
        build_number: 8169922,
        seed: 1,
        payload: PayloadSize::Realistic,
        hostname: "esxi-01".into(),
    };
    let image = SystemImage::build(&spec, default_cache_dir().as_deref(), &mut |_, _| {}).expect("image");
    let options = InstallOptions { layout: Layout::Esxi6, size: None, sector_size: SectorSize::S512, seed: 1 };
    let (disk, _) = install_fresh(&image, &options).expect("install");
    drop(image);
    let boot_options = BootOptions::default();

    let mut group = c.benchmark_group("boot");
    group.sample_size(10);
    group.bench_function("cold", |b| {
        b.iter(|| {
            let mut fork = disk.fork();
            let report = boot(&mut fork, &boot_options, None);
            assert_eq!(report.outcome, Outcome::Booted);
        })
    });
    // The host's boots compute no MD5 (nothing shows them): the load alone.
    let mut no_md5 = BootOptions::default();
    no_md5.load.md5 = false;
    group.bench_function("cold_without_md5", |b| {
        b.iter(|| {
            let mut fork = disk.fork();
            let report = boot(&mut fork, &no_md5, None);
            assert_eq!(report.outcome, Outcome::Booted);
        })
    });
    let mut cache = ModuleCache::new(64);
    let mut warm = disk.fork();
    assert_eq!(boot(&mut warm, &boot_options, Some(&mut cache)).outcome, Outcome::Booted);
    group.sample_size(100);
    group.bench_function("warm_fork", |b| {
        b.iter(|| {
            let mut fork = disk.fork();
            let report = boot(&mut fork, &boot_options, Some(&mut cache));
            assert_eq!(report.outcome, Outcome::Booted);
            assert!(report.modules.iter().all(|m| m.cached));
        })
    });
    group.finish();
}

criterion_group!(boot_benches, benches);
criterion_main!(boot_benches);
