//! The ESXi-like host side of visorsim: the synthetic system image, its
//! installation on a boot disk, and `inspect`, the diagnostic view of a disk.

pub mod image;
pub mod inspect;
