//! Memory grows with the data written, not with the virtual disk size: an
//! 8 GiB ESXi 6.x disk whose two 250 MB banks are filled costs about the
//! banks. Its own test binary, so the process's peak RSS (VmHWM) is this
//! test's alone; the figure is printed for the record.

use visorsim_disk::{MemDisk, SectorSize};
use visorsim_image::install::{install_on, write_files};
use visorsim_image::system::{ImageFile, ImageSpec, PayloadSize, SystemImage};
use visorsim_media::layout::Layout;

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn eight_gib_disk_with_two_full_banks_costs_about_the_banks() {
    const GIB: u64 = 1 << 30;
    let spec = ImageSpec {
        version: "6.7.0".into(),
        build_number: 1,
        seed: 3,
        payload: PayloadSize::Compressed(1 << 20),
        hostname: "mem".into(),
    };
    let image = SystemImage::build(&spec, None, &mut |_, _| {}).unwrap();
    let plan = Layout::Esxi6.plan(Some(8 * GIB)).unwrap();
    let disk = MemDisk::with_size(plan.size, SectorSize::S512);
    let (mut disk, _) = install_on(disk, &plan, &image, 3).unwrap();
    // Fill both banks nearly to the brim (the image is in bank 5 already).
    let filler = 230_000_000u64;
    for (number, name) in [(5, "fill5.bin"), (6, "fill6.bin")] {
        let data: Vec<u8> = (0..filler).map(|i| (i % 251) as u8 | 1).collect();
        write_files(&mut disk, plan.partition(number).unwrap(), &[ImageFile { name: name.into(), data }]).unwrap();
    }
    let resident = disk.resident_bytes();
    let peak = peak_rss_bytes();
    eprintln!(
        "8 GiB esxi6 disk, two filled 250 MB banks: {} MB stored, peak RSS {} MB",
        resident / 1_000_000,
        peak / 1_000_000
    );
    assert!(resident >= 2 * filler && resident < 2 * filler + 64_000_000, "stored {resident}");
    assert!(peak < GIB, "peak RSS {peak} must stay far below the 8 GiB virtual size");
}
