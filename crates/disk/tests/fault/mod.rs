//! The fault layer: [`Faulty`] and [`crash_states`].
//!
//! - `live`: with no fault on, `Faulty(MemDisk)` answers every request
//!   exactly like a `MemDisk` (results, error kinds, LBAs and messages,
//!   bytes), with the cache off and on; then each fault of the plan, one at a
//!   time: power cut after N writes, torn writes, the volatile cache at a cut
//!   (flushed data survives, same seed same result), bad sectors, bit flips,
//!   read-only, full, device gone;
//! - `crash`: `crash_states` on a small log matches a hand count, every state
//!   applied to a fork gives the bytes of a plain model, and every cut of
//!   `Faulty` lands on one of those states.
//!
//! This module holds what both share: 512-byte test devices, recognisable
//! writes and a plain byte model of a disk that lands writes whole or torn.
//!
//! [`crash_states`]: visorsim_disk::crash_states

use visorsim_disk::{CacheModel, FaultPlan, Faulty, MemDisk, SectorSize, Tearing};

use crate::util::{data_at, read, SECTORS};

mod crash;
mod live;

const SS: usize = 512;

/// Recognisable non-zero content for a write, different per `salt`.
fn pattern(sectors: u64, salt: u8) -> Vec<u8> {
    data_at(0, sectors as usize * SS, salt.wrapping_mul(37))
}

fn faulty(plan: FaultPlan) -> Faulty<MemDisk> {
    Faulty::new(MemDisk::new(SECTORS, SectorSize::S512), plan)
}

/// Every byte of the media (the inner device), read from a fork.
fn media(dev: &Faulty<MemDisk>) -> Vec<u8> {
    read(&mut dev.inner().fork(), 0, SECTORS, "media")
}

fn sector(bytes: &[u8], lba: u64) -> &[u8] {
    &bytes[lba as usize * SS..(lba as usize + 1) * SS]
}

fn cache(max_reorder: usize, drop_probability_percent: u8) -> Option<CacheModel> {
    Some(CacheModel { max_reorder, drop_probability_percent })
}

/// A plain byte model of a disk.
struct Model(Vec<u8>);

impl Model {
    fn apply(&mut self, lba: u64, data: &[u8], tearing: Option<Tearing>) {
        let at = lba as usize * SS;
        let len = match tearing {
            None => data.len(),
            Some(Tearing::Prefix { sectors }) => (sectors as usize * SS).min(data.len()),
            Some(Tearing::TornSector { sectors, bytes }) => (sectors as usize * SS + bytes.min(SS)).min(data.len()),
        };
        self.0[at..at + len].copy_from_slice(&data[..len]);
    }
}
