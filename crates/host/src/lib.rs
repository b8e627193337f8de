//! The running ESXi-like host of visorsim: booted from a bank by
//! `visorsim-boot`, living in a RAM-disk, saving its configuration with
//! backup.sh and upgrading into the other bank with images from
//! `visorsim-image`.
//!
//! ```text
//!   clock     the host's simulated clock
//!   cron      crontab schedules (auto-backup at minute 1 of every hour)
//!   etc       the RAM-disk's /etc and the configuration API
//!   bank      /bootbank and /altbootbank: the Bank trait, FAT and RAM banks
//!   plan      the scripts' pure decisions (staged upgrade, capacity, boot.cfg edits, errno)
//!   host      the running host: boot, backup.sh, upgrade, shutdown, power loss
//!   explain   a disk's next boots, restore and risks, told with the rule for each point
//! ```
//!
//! Data flows one way: `host` sequences I/O on `bank`s, decides with
//! `plan`, changes `etc`, and keeps time with `clock` and `cron`; nothing
//! below `host` knows of it. Nothing reads the wall clock or OS randomness.

pub mod bank;
pub mod clock;
pub mod cron;
pub mod etc;
pub mod explain;
pub mod host;
pub mod plan;
