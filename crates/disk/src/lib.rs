//! Block devices: the bottom of visorsim's data flow.
//!
//! Everything visorsim does to a boot disk ends here as whole-sector reads,
//! writes and flushes on a [`BlockDevice`]. This crate knows nothing of ESXi:
//!
//! ```text
//!   BlockDevice (trait: sectors of 512 or 4096 bytes, read / write / flush)
//!     ├── MemDisk     sparse, memory grows with data written; Clone is an O(1)
//!     │               copy-on-write fork, forks never see each other's writes
//!     ├── FileDisk    a raw image file (sparse on creation), positional I/O
//!     ├── Observed    calls a hook for every write and flush, in order
//!     ├── WriteLog    records every write and flush, in order
//!     ├── Overlay     writes kept in memory over a base that is only read
//!     └── Faulty      the fault layer, seeded: power cuts, torn and lost writes,
//!                     bad sectors, bit flips, read-only, full, vanished device
//!   crash_states      every crash state of a write log (crash-point exploration)
//!   ByteIo            Read + Write + Seek over a byte range of a device
//!                     (what the `gpt` and `fatfs` crates want)
//! ```
//!
//! Contract shared by every device (checked on each device above, at both
//! sector sizes, by one conformance suite: `tests/conformance.rs`):
//! - a range outside the device is an error naming the LBA, never a panic;
//! - a buffer whose length is not a whole number of sectors is an error;
//! - a sector never written reads as zeros;
//! - a write is visible to the next read of the same device at once; `flush`
//!   is the durability point (what survives a power cut is the fault layer's
//!   business, not the device's).

mod device;
mod error;
mod fault;
mod file;
mod io;
mod mem;
mod observe;
mod overlay;

pub use device::{BlockDevice, ContentToken, SectorSize};
pub use error::{DiskError, DiskErrorKind};
pub use fault::{
    apply_crash_state, crash_states, BitFlip, CacheModel, CrashSpace, CrashState, CrashWrite, CutReport, FaultPlan,
    Faulty, Tearing,
};
pub use file::FileDisk;
pub use io::ByteIo;
pub use mem::MemDisk;
pub use observe::{IoEvent, LoggedIo, Observed, WriteLog};
pub use overlay::Overlay;
