//! The synthetic ESXi system image.

pub mod archive;
pub mod kernel;
pub mod payload;
