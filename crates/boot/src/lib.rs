//! The ESXi bootloader as visorsim emulates it, following
//! `shared/ESXI-BOOT.md` (esx-boot's safeboot and mboot):
//!
//! ```text
//!   bootcfg   boot.cfg parsing with the loader's exact quirks, and rendering
//!   gzip      module checks as mboot does them (header, trailer, inflate, CRC)
//! ```

pub mod bootcfg;
pub mod gzip;
pub mod status;
pub mod safeboot;
