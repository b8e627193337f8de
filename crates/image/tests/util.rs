//! What the test modules share: a small ESXi 6 image and its fresh install,
//! built once per test binary (tests take copy-on-write forks of the disk).

use std::sync::OnceLock;

use visorsim_disk::{MemDisk, SectorSize};
use visorsim_image::install::{install_fresh, InstallOptions};
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};
use visorsim_media::layout::{Layout, PartitionSpec};

/// A built image and the disk it was installed on.
pub struct Fixture {
    /// The image (seed 5, about 300 kB of payload).
    pub image: SystemImage,
    /// Its fresh install on the smallest ESXi 6 disk, 512-byte sectors.
    pub disk: MemDisk,
}

/// The shared ESXi 6 fixture.
pub fn esxi6() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let spec = ImageSpec {
            version: "6.7.0".into(),
            build_number: 1,
            seed: 5,
            payload: PayloadSize::Compressed(300_000),
            hostname: "h".into(),
        };
        let image = SystemImage::build(&spec, None, &mut |_, _| {}).unwrap();
        let options = InstallOptions { layout: Layout::Esxi6, size: None, sector_size: SectorSize::S512, seed: 5 };
        let disk = install_fresh(&image, &options).unwrap().0;
        Fixture { image, disk }
    })
}

/// Partition `number` of the ESXi 6 plan the fixture follows.
pub fn esxi6_partition(number: u32) -> PartitionSpec {
    Layout::Esxi6.plan(None).unwrap().partition(number).unwrap().clone()
}
