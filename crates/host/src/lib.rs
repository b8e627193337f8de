//! The ESXi-like host: the synthetic system image (builds, modules,
//! payloads, configuration archives) and its installation on a boot disk.

pub mod image;
