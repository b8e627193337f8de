//! The boot disk's media formats, between raw sectors and files:
//!
//! ```text
//!   layout   ESXi 6.x / 7.x partition plans (numbers, sectors, type GUIDs, roles)
//!   gpt      writing a GPT with the `gpt` crate; reading one with bounds,
//!            primary and backup separately (what gdisk and esx-boot each see)
//!   mbr      MBR / protective-MBR partition entries (for gpt and the boot scan)
//!   sector   an image's sector size (512 or 4Kn) from where its GPT header is
//!   fat      FAT16 volumes: our own formatter (reserves sector 1), `fatfs` for
//!            files, and the one FAT core (geometry, entries, table, names)
//!            under the esx-boot reader and the Linux-order write operations
//!   vmfat    the VMware FAT UUID in a bank's second sector
//!   le       little-endian field readers and writers, used by all of the above
//! ```
//!
//! Partition *numbers* are GPT entry indexes everywhere in this crate: number
//! 5 is the fifth entry of the entry array, wherever it lies on disk.

pub mod fat;
#[doc(hidden)]
pub mod fuzzing;
pub mod gpt;
pub mod layout;
pub mod le;
pub mod mbr;
pub mod sector;
pub mod vmfat;

/// The esx-boot style read-only FAT reader: [`fat::read`], with the short
/// name functions it looks files up by.
pub mod fatread {
    pub use crate::fat::names::{esx_short_name, short_name};
    pub use crate::fat::read::*;
}

/// Write operations `fatfs` cannot do: [`fat::ops`].
pub mod fatops {
    pub use crate::fat::ops::*;
}

pub use layout::{DiskPlan, Layout, PartitionRole, PartitionSpec};
