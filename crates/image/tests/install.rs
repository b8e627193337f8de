//! The installer's errors: typed, with a kind and the partition.

use visorsim_disk::SectorSize;
use visorsim_image::install::{install_fresh, InstallErrorKind, InstallOptions};
use visorsim_media::layout::Layout;

use crate::util::esxi6;

#[test]
fn a_disk_too_small_for_the_layout_is_a_layout_error() {
    let options =
        InstallOptions { layout: Layout::Esxi6, size: Some(64 << 20), sector_size: SectorSize::S512, seed: 1 };
    let e = install_fresh(&esxi6().image, &options).unwrap_err();
    assert_eq!((e.kind(), e.partition()), (InstallErrorKind::Layout, None), "{e}");
}
