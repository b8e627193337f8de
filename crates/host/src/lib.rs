//! The running ESXi-like host of visorsim: booted from a bank by
//! `visorsim-boot`, living in a RAM-disk, saving its configuration with
//! backup.sh and upgrading into the other bank with images from
//! `visorsim-image`.
//!
//! ```text
//!   clock     the host's simulated clock
//!   cron      crontab schedules (auto-backup at minute 1 of every hour)
//!   etc       the RAM-disk's /etc and the configuration API
//!   bank      /bootbank and /altbootbank: shell-level file steps on a FAT bank
//!   host      the running host: boot, backup.sh, upgrade, shutdown, power loss
//! ```

pub mod bank;
pub mod clock;
pub mod cron;
pub mod etc;
pub mod host;
