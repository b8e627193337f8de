//! The fault layer: [`Faulty`] puts the faults of a [`FaultPlan`] over any
//! [`BlockDevice`], deterministically from the plan's seed; [`crash_states`]
//! lists every crash state of a recorded write sequence for crash-point
//! exploration, and [`apply_crash_state`] builds one of them.
//!
//! The inner device is the *media*. It only ever receives what a real medium
//! would have received by the time of a power cut: the true bytes stay there,
//! untouched by faults, and the faults live beside them in the plan. Switch a
//! fault off (through [`Faulty::plan_mut`]) and the true bytes are back.
//!
//! # Durability model: what survives a power cut
//!
//! ```text
//!   write ──► volatile cache (the unflushed epoch) ──flush──► media (inner device)
//!             only with `volatile_cache: Some(..)`   in order
//! ```
//!
//! - **Write-through** (`volatile_cache: None`): an accepted write is on the
//!   media when `write_sectors` returns. A cut loses nothing already written;
//!   it only refuses later requests (and may tear the write that triggered it).
//! - **Write-back** (`volatile_cache: Some(..)`): accepted writes wait in the
//!   cache; reads see them (read-your-writes). `flush` lands every cached
//!   write on the media *in issue order*, then flushes the media: what was
//!   flushed survives every later cut, whatever the cache model.
//! - An **epoch** is the run of writes between two barriers. Its number,
//!   [`Faulty::epoch`], counts the flushes and cuts so far (the first epoch
//!   is 0). A cut ends the epoch it happens in.
//!
//! # The cut, exactly
//!
//! A cut happens when [`Faulty::cut_power`] is called, right after the N-th
//! accepted write when `power_cut_after_writes == Some(N)` (that write still
//! returns `Ok`: it was issued; the field is then cleared, so the cut fires
//! once), or at the next request when `power_cut_after_writes` is at or below
//! the writes already accepted (`Some(0)`: before any write). At a cut:
//!
//! 1. If the cut was triggered by write N and `torn_last_write` is set, write
//!    N is *in flight*: it lands torn ([`Tearing`]) and is never lost. With
//!    `sector_atomic: true` a [`Tearing::TornSector`] lands as
//!    [`Tearing::Prefix`] of the same whole sectors (no sector is half-new).
//! 2. With the cache on, let the other `m` unflushed writes be the
//!    *candidates*. A SplitMix64 generator is seeded with
//!    `seed ^ splitmix64_first_output(epoch)`. `k = min(max_reorder, m)`
//!    candidates are picked uniformly (a partial Fisher–Yates shuffle of
//!    `0..m`, drawing `k` times), then, in ascending issue order, each picked
//!    write is lost when a draw below 100 is `< drop_probability_percent`.
//!    Every candidate whose number is in `lost_at_cut` is lost as well.
//!    A draw below `n` is `(next * n) >> 64` on 128 bits.
//! 3. Every write not lost lands on the media in issue order (the in-flight
//!    one last, torn). So a cut never corrupts flushed data, and at most
//!    `max_reorder` writes of the epoch are lost.
//! 4. Every later request fails with [`DiskErrorKind::PowerLost`] until
//!    [`Faulty::restore_power`]. [`Faulty::last_cut`] says what happened.
//!
//! *Reordering* is observable only as loss: landing order matters only where
//! writes overlap, and a drive never writes older data over newer, so "write
//! 7 reached the media before write 5, then power went" is exactly "write 5
//! was lost". Survivors therefore land in issue order. [`crash_states`]
//! explores the same space: every state a cut with `max_reorder = r` can
//! produce is among `crash_states` with `reorder = r` (bounds permitting).
//!
//! # Faults
//!
//! Requests are checked in this order: power (`PowerLost`), presence
//! (`DeviceGone`), then the request is counted in [`Faulty::ios`], then range
//! and alignment (`OutOfRange`, `Misaligned`), then the faults below.
//!
//! | plan field | reads | writes | flush | healed by |
//! |---|---|---|---|---|
//! | `power_cut_after_writes`, `cut_power()` | `PowerLost` | `PowerLost` | `PowerLost` | `restore_power()` |
//! | `torn_last_write`, `sector_atomic` | — | the cut write lands partly | — | — |
//! | `volatile_cache` | see cached writes | held until flush | lands the cache | — |
//! | `lost_at_cut` | — | these cached writes are lost at the cut | — | — |
//! | `bad_sectors` | `MediaError` (sectors read from the media) | ok, remaps the sector; `MediaError` with `bad_sectors_fail_writes` | — | a write reaching the media (unless `bad_sectors_fail_writes`) |
//! | `bit_flips` | silent: bit flipped in the returned copy (sectors read from the media) | — | — | a write reaching the media |
//! | `read_only` | — | `ReadOnly` | ok | — |
//! | `full_after_sectors` | — | `NoSpace` when new sectors would pass the limit | — | — |
//! | `gone_after_ios` | `DeviceGone` | `DeviceGone` | `DeviceGone` | plan change |
//!
//! The plan is the device's live fault state: a write reaching the media
//! removes the bit flips of its sectors and (unless `bad_sectors_fail_writes`)
//! its bad sectors from the plan, as a real drive's rewrite or remap would.
//! Faults never touch the media's bytes.
//!
//! # Layout
//!
//! This module holds the vocabulary both engines share: the plan
//! ([`FaultPlan`] and its parts [`Tearing`], [`CacheModel`], [`BitFlip`]) and
//! how a write lands whole or torn on a device. The engines are its children:
//!
//! - `live`: the live [`Faulty`] device and its [`CutReport`];
//! - `crash`: crash-state enumeration ([`crash_states`], [`apply_crash_state`]);
//! - `rng`: the seeded generator and the one random choice of a cut;
//! - `runs`: the set of written sectors behind `full_after_sectors`.
//!
//! Both engines land torn writes through the same function, so a state
//! [`crash_states`] lists and a cut of [`Faulty`] with the same tearing give
//! the same bytes.
//!
//! [`DiskErrorKind::PowerLost`]: crate::DiskErrorKind::PowerLost

use std::collections::BTreeSet;
use std::fmt;

use crate::device::BlockDevice;
use crate::error::DiskError;

mod crash;
mod live;
mod rng;
mod runs;

pub use crash::{apply_crash_state, crash_states, CrashSpace, CrashState, CrashWrite};
pub use live::{CutReport, Faulty};

/// How the write cut by a power loss lands on the media.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tearing {
    /// Only its first `sectors` sectors land (all of it if it is shorter).
    Prefix {
        /// Whole sectors that land.
        sectors: u64,
    },
    /// `sectors` whole sectors land, then the next sector holds the first
    /// `bytes` bytes of the new data and the old data after them.
    TornSector {
        /// Whole sectors that land before the torn one.
        sectors: u64,
        /// New bytes at the start of the torn sector (capped at the sector size).
        bytes: usize,
    },
}

impl fmt::Display for Tearing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tearing::Prefix { sectors } => write!(f, "first {sectors} sector(s) landed"),
            Tearing::TornSector { sectors, bytes } => {
                write!(f, "first {sectors} sector(s) landed, then {bytes} byte(s) of the next")
            }
        }
    }
}

/// A volatile write cache (see the module documentation for the cut model).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheModel {
    /// At most this many unflushed writes of an epoch are lost at a cut.
    pub max_reorder: usize,
    /// Chance, in percent, that each write picked at a cut is lost (100 or
    /// more: always).
    pub drop_probability_percent: u8,
}

/// A silent bit flip on read: bit `bit` (0–7, taken modulo 8) of byte `byte`
/// of sector `lba`. A `byte` past the sector is ignored; two flips of the
/// same bit cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BitFlip {
    /// Sector.
    pub lba: u64,
    /// Byte within the sector.
    pub byte: usize,
    /// Bit within the byte.
    pub bit: u8,
}

/// The faults of a [`Faulty`] device. [`FaultPlan::default`] (or
/// [`FaultPlan::new`]) has none: the device behaves exactly like its media.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultPlan {
    /// Seed of every random choice (the cut model): the device's sub-seed
    /// of the run's master seed.
    pub seed: u64,
    /// Power is cut right after the N-th accepted write (1-based); cleared
    /// when it fires. At or below the writes already accepted, power is cut
    /// at the next request.
    pub power_cut_after_writes: Option<u64>,
    /// How the write that triggers `power_cut_after_writes` lands: `None`,
    /// whole. Unused by other cuts (no write is in flight then).
    pub torn_last_write: Option<Tearing>,
    /// Sectors are written atomically (default `true`): a torn write never
    /// leaves a sector half-new.
    pub sector_atomic: bool,
    /// A volatile write cache; `None` is write-through.
    pub volatile_cache: Option<CacheModel>,
    /// Writes (numbered as [`Faulty::writes`] counts them) that the next cut
    /// loses if they are still in the cache, besides those the cache model
    /// draws: one exact crash state to replay (a reproducer of crash-point
    /// exploration). Needs `volatile_cache`; the write in flight is never
    /// lost (it lands, torn or whole).
    pub lost_at_cut: BTreeSet<u64>,
    /// Latent sector errors: reads of these LBAs from the media fail.
    pub bad_sectors: BTreeSet<u64>,
    /// Writes touching a bad sector fail too, instead of remapping it.
    pub bad_sectors_fail_writes: bool,
    /// Bits flipped in what reads return; the media is unchanged.
    pub bit_flips: Vec<BitFlip>,
    /// Every write fails with `ReadOnly`.
    pub read_only: bool,
    /// The device holds this many distinct sectors written through it; a
    /// write that would pass it with sectors never written fails with
    /// `NoSpace` (rewriting written sectors always works).
    pub full_after_sectors: Option<u64>,
    /// After this many requests (reads, writes and flushes) the device is
    /// gone: every request fails with `DeviceGone`.
    pub gone_after_ios: Option<u64>,
}

impl FaultPlan {
    /// A plan with no faults and this seed.
    pub fn new(seed: u64) -> FaultPlan {
        FaultPlan {
            seed,
            power_cut_after_writes: None,
            torn_last_write: None,
            sector_atomic: true,
            volatile_cache: None,
            lost_at_cut: BTreeSet::new(),
            bad_sectors: BTreeSet::new(),
            bad_sectors_fail_writes: false,
            bit_flips: Vec::new(),
            read_only: false,
            full_after_sectors: None,
            gone_after_ios: None,
        }
    }
}

impl Default for FaultPlan {
    fn default() -> FaultPlan {
        FaultPlan::new(0)
    }
}

/// Writes `data` at `lba` as `tearing` says (all of it for `None`) and
/// returns the number of whole sectors that landed. The whole request is
/// checked against the device first, so nothing lands if it is refused.
fn land<D: BlockDevice + ?Sized>(
    dev: &mut D,
    lba: u64,
    data: &[u8],
    tearing: Option<Tearing>,
) -> Result<u64, DiskError> {
    let count = dev.check_range(lba, data.len())?;
    let ss = dev.sector_size().len();
    let (whole, partial) = match tearing {
        None => {
            dev.write_sectors(lba, data)?;
            return Ok(count);
        }
        Some(Tearing::Prefix { sectors }) => (sectors.min(count), 0),
        Some(Tearing::TornSector { sectors, bytes }) if sectors < count => (sectors, bytes.min(ss)),
        Some(Tearing::TornSector { .. }) => (count, 0),
    };
    let split = whole as usize * ss;
    if whole > 0 {
        dev.write_sectors(lba, &data[..split])?;
    }
    if partial > 0 {
        let at = lba + whole;
        let mut sector = vec![0u8; ss];
        dev.read_sectors(at, &mut sector)?;
        sector[..partial].copy_from_slice(&data[split..split + partial]);
        dev.write_sectors(at, &sector)?;
    }
    Ok(whole)
}
