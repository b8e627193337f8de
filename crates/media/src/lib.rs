//! The boot disk's media formats, between raw sectors and files:
//!
//! ```text
//!   layout   ESXi 6.x / 7.x partition plans (numbers, sectors, type GUIDs, roles)
//!   gpt      writing a GPT with the `gpt` crate; reading one with bounds,
//!            primary and backup separately (what gdisk and esx-boot each see)
//!   fat      FAT16 volumes: our own formatter (reserves sector 1), `fatfs` for files
//!   vmfat    the VMware FAT UUID in a bank's second sector
//! ```
//!
//! Partition *numbers* are GPT entry indexes everywhere in this crate: number
//! 5 is the fifth entry of the entry array, wherever it lies on disk.

pub mod fat;
pub mod fatops;
pub mod fatread;
pub mod gpt;
pub mod layout;
pub mod vmfat;

pub use layout::{DiskPlan, Layout, PartitionRole, PartitionSpec};
