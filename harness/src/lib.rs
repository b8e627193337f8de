//! visorsim as a library: an emulated ESXi host on its boot device, for
//! your own `cargo test`.
//!
//! One entry point, [`Sim`]: build a boot disk (two FAT16 boot banks on a
//! GPT disk, the image in bank 5), boot it through the emulated bootloader,
//! step the host (configure, let the hourly auto-backup run, upgrade, shut
//! down), arm faults between the host and the disk (power cuts, bad
//! sectors, a volatile write cache...), and assert on what a real host
//! would show: which bank booted, each bank's `bootstate`, the restored
//! configuration, the timeline.
//!
//! The classic field failure, "an upgrade's trial boot loses power, the
//! next boot returns to the old bank", as a test:
//!
//! ```
//! use visorsim::prelude::*;
//!
//! let mut sim = Sim::builder().seed(7).build_sim()?;
//! sim.boot();
//! sim.upgrade(2000)?; // staged in bank 6: updated=2, bootstate=1
//! sim.shutdown()?;
//! sim.cut_power_after_writes(1); // the bootloader writes DIRTY, then the power goes
//! sim.boot();
//! assert!(!sim.is_running());
//! assert_eq!(sim.bank_state(6), Some(BankState::Dirty));
//! sim.boot(); // DIRTY -> INVALID: back to the old bank
//! assert_eq!(sim.running_bank(), Some(5));
//! assert_eq!(sim.bank_state(6), Some(BankState::Invalid));
//! # Ok::<(), SimError>(())
//! ```
//!
//! Everything is deterministic: the same seed gives the same disk bytes and
//! the same timeline. For what the facade does not wrap, the layers are
//! re-exported below (`visorsim::disk`, `visorsim::host`, ...), and
//! [`Sim::host`], [`Sim::faults_mut`] and [`Sim::disk_mut`] reach into them.
//! Scenario files (JSON) are the other way in: [`scenario`].

pub mod sim;

pub use sim::{BankState, Sim, SimBuilder, SimError};

pub use visorsim_boot as boot;
pub use visorsim_disk as disk;
pub use visorsim_host as host;
pub use visorsim_image as image;
pub use visorsim_media as media;
pub use visorsim_scenario as scenario;

/// What a test needs in one `use visorsim::prelude::*;`.
pub mod prelude {
    pub use crate::sim::{BankState, Sim, SimBuilder, SimError};
    pub use visorsim_boot::boot::{BootReport, Outcome};
    pub use visorsim_disk::FaultPlan;
    pub use visorsim_host::host::HostBootOptions;
    pub use visorsim_media::layout::Layout;
}
