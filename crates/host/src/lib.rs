//! The ESXi-like host side of visorsim:
//!
//! ```text
//!   image     the synthetic system image and a fresh install
//!   inspect   the diagnostic view of a disk
//!   clock     simulated time and cron
//!   etc       the RAM-disk's /etc and the configuration API
//!   bank      /bootbank and /altbootbank: shell-level file steps on a FAT bank
//!   host      the running host: boot, backup.sh, upgrade, shutdown, power loss
//! ```

pub mod bank;
pub mod clock;
pub mod etc;
pub mod host;
pub mod image;
pub mod inspect;
