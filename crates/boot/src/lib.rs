//! The ESXi bootloader as visorsim emulates it, following
//! `docs/bootloader.md` (esx-boot's safeboot and mboot):
//!
//! ```text
//!   bootcfg   boot.cfg parsing with the loader's exact quirks, rendering, and
//!             the bootstate writer's search
//!   firmware  the step before safeboot: the loader on the EFI system partition
//!   volume    which partitions safeboot sees (primary GPT only, or MBR)
//!   safeboot  the bank decision: a pure function of scanned facts
//!   mboot     module list, paths, kernel check, command line
//!   gzip      the gzip core: header, trailer, mboot's load errors, and a
//!             streaming module check for diagnostics (inspect)
//!   load      the hot path: one module loaded as mboot does (inflate, CRC, MD5)
//!   boot      a whole boot: I/O around safeboot and mboot, the module cache, the report
//!   handoff   mboot's kernel, modules and command line started on qemu-system, checked
//!   reason    why a boot did not boot, naming the table, partition, bank or file
//!   status    esx-boot's status codes
//! ```

pub mod boot;
pub mod bootcfg;
pub mod firmware;
#[doc(hidden)]
pub mod fuzzing;
pub mod gzip;
pub mod handoff;
pub mod load;
pub mod mboot;
pub mod reason;
pub mod safeboot;
pub mod status;
pub mod volume;
