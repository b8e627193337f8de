//! A scenario that starts from a customer's image (`disk.image`): the
//! realistic ESXi 6.x disk, 8 GiB virtual with about 150 MB of data, saved
//! as a sparse raw file.
//!
//! - `scenario_image/load`: what the runner does before the first step
//!   (open the image, read its data extents into a sparse memory disk);
//!   before issue 12 this read all 8 GiB and took about 20 s.
//! - `scenario_image/start`: the issue's figure, a scenario from that
//!   image until its first step can run: `visorsim_scenario::run` of a
//!   scenario whose one step is an expectation on the host before any boot
//!   (`running: false`), so what is timed is the runner's own start (disk
//!   opened and loaded, host and fault layer set up) and nothing after.
//! - `scenario_image/run_boot`: a whole scenario of one `boot` step on that
//!   image (load, boot with every module inflated and checked, host up).
//!
//! Both must stay well under a second. Run `cargo bench --bench
//! scenario_image` on an otherwise idle machine.

use criterion::{criterion_group, criterion_main, Criterion};
use visorsim_disk::{FileDisk, SectorSize};
use visorsim_image::install::{install_fresh, InstallOptions};
use visorsim_image::payload::default_cache_dir;
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};
use visorsim_media::layout::Layout;
use visorsim_scenario::input::ImageInput;

fn benches(c: &mut Criterion) {
    let spec = ImageSpec {
        version: "6.7.0".into(),
        build_number: 8169922,
        seed: 1,
        payload: PayloadSize::Realistic,
        hostname: "esxi-01".into(),
    };
    let options = InstallOptions { layout: Layout::Esxi6, size: None, sector_size: SectorSize::S512, seed: 1 };
    let dir = tempfile::tempdir().expect("tempdir");
    let image_path = dir.path().join("customer.img");
    let image = SystemImage::build(&spec, default_cache_dir().as_deref(), &mut |_, _| {}).expect("image");
    let (disk, _) = install_fresh(&image, &options).expect("install");
    FileDisk::save_sparse(&disk, &image_path).expect("save");
    let resident = disk.resident_bytes();
    drop((image, disk));
    let scenario_text = r#"{
        "description": "boot the customer's image once",
        "disk": { "image": "customer.img" },
        "steps": [ { "boot": {} }, { "expect": { "running": true, "booted_bank": 5 } } ]
    }"#;
    let scenario = visorsim_scenario::parse(scenario_text, "bench.json").expect("scenario");
    let start_text = r#"{
        "description": "start from the customer's image; the first step runs at once",
        "disk": { "image": "customer.img" },
        "steps": [ { "expect": { "running": false } } ]
    }"#;
    let start = visorsim_scenario::parse(start_text, "start.json").expect("scenario");
    eprintln!("scenario_image: 8 GiB image holding {} MB", resident / 1_000_000);

    let mut group = c.benchmark_group("scenario_image");
    group.sample_size(10);
    group.bench_function("load", |b| {
        b.iter(|| {
            let input = ImageInput::open(&image_path).expect("open");
            input.load(SectorSize::S512).expect("load")
        })
    });
    group.bench_function("start", |b| {
        b.iter(|| {
            let result = visorsim_scenario::run(&start, dir.path()).expect("run");
            assert!(result.mismatches.is_empty(), "{:?}", result.mismatches);
        })
    });
    group.bench_function("run_boot", |b| {
        b.iter(|| {
            let result = visorsim_scenario::run(&scenario, dir.path()).expect("run");
            assert!(result.mismatches.is_empty(), "{:?}", result.mismatches);
        })
    });
    group.finish();
}

criterion_group!(scenario_image, benches);
criterion_main!(scenario_image);
