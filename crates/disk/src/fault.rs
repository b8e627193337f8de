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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::device::{BlockDevice, ContentToken, SectorSize};
use crate::error::{DiskError, DiskErrorKind};
use crate::observe::LoggedIo;

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

/// What a power cut did, for traces and assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutReport {
    /// The epoch the cut ended.
    pub epoch: u64,
    /// Writes accepted before the cut (the cut write included).
    pub writes: u64,
    /// Numbers (as counted by [`Faulty::writes`]) of the writes that were in
    /// the cache at the cut, in issue order; empty when write-through.
    pub unflushed: Vec<u64>,
    /// Numbers of the unflushed writes that never reached the media
    /// (including any the media refused at the cut).
    pub lost: Vec<u64>,
    /// The write in flight and how it was torn.
    pub torn: Option<(u64, Tearing)>,
}

impl fmt::Display for CutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "power cut after {} write(s), epoch {}", self.writes, self.epoch)?;
        if !self.unflushed.is_empty() {
            write!(f, ", {} unflushed, lost {:?}", self.unflushed.len(), self.lost)?;
        }
        if let Some((number, tearing)) = self.torn {
            write!(f, ", write {number} torn: {tearing}")?;
        }
        Ok(())
    }
}

/// A write waiting in the volatile cache.
#[derive(Clone, Debug)]
struct CachedWrite {
    number: u64,
    lba: u64,
    data: Vec<u8>,
}

/// A device with faults. The media (the inner device) only ever receives
/// what a real medium would have received by the time of the cut.
///
/// Invariants:
/// - `dirty` maps every sector covered by a cached write to the index in
///   `cache` of the newest write covering it, and nothing else;
/// - the cache is empty while power is lost;
/// - `written` holds every sector of every accepted write.
#[derive(Clone, Debug)]
pub struct Faulty<D> {
    inner: D,
    plan: FaultPlan,
    ios: u64,
    writes: u64,
    epoch: u64,
    power_lost: bool,
    cache: Vec<CachedWrite>,
    dirty: BTreeMap<u64, usize>,
    written: SectorRuns,
    last_cut: Option<CutReport>,
}

impl<D: BlockDevice> Faulty<D> {
    /// Wraps `inner` (the media) with the faults of `plan`.
    pub fn new(inner: D, plan: FaultPlan) -> Faulty<D> {
        Faulty {
            inner,
            plan,
            ios: 0,
            writes: 0,
            epoch: 0,
            power_lost: false,
            cache: Vec::new(),
            dirty: BTreeMap::new(),
            written: SectorRuns::default(),
            last_cut: None,
        }
    }

    /// The live fault plan.
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// The live fault plan, to switch faults on or off during a run (e.g.
    /// lose the device now: `gone_after_ios = Some(faulty.ios())`).
    pub fn plan_mut(&mut self) -> &mut FaultPlan {
        &mut self.plan
    }

    /// Requests received while powered and present (reads, writes and
    /// flushes, including those then refused for their range or a fault).
    pub fn ios(&self) -> u64 {
        self.ios
    }

    /// Writes accepted so far.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// The current epoch: flushes and cuts so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Writes in the volatile cache, not yet on the media.
    pub fn unflushed_writes(&self) -> usize {
        self.cache.len()
    }

    /// Whether power is off.
    pub fn power_lost(&self) -> bool {
        self.power_lost
    }

    /// What the last power cut did.
    pub fn last_cut(&self) -> Option<&CutReport> {
        self.last_cut.as_ref()
    }

    /// Cuts power now: unflushed cached writes are resolved per the cache
    /// model onto the media; afterwards every request fails with
    /// `PowerLost` until [`Faulty::restore_power`]. No write is in flight,
    /// so nothing is torn. Does nothing if power is already off.
    pub fn cut_power(&mut self) {
        if !self.power_lost {
            self.cut(None);
        }
    }

    /// Power back on (for the next boot): the device works again; faults
    /// other than the cut stay.
    pub fn restore_power(&mut self) {
        self.power_lost = false;
    }

    /// The media.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The media, to change behind the faults' back.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// The media as it is: cached unflushed writes are dropped (flush first
    /// to keep them).
    pub fn into_inner(self) -> D {
        self.inner
    }

    fn pending_cut(&self) -> bool {
        self.plan.power_cut_after_writes.is_some_and(|n| self.writes >= n)
    }

    fn gone(&self) -> bool {
        self.plan.gone_after_ios.is_some_and(|n| self.ios >= n)
    }

    /// Power and presence, then counts the request.
    fn admit(&mut self, lba: u64) -> Result<(), DiskError> {
        if !self.power_lost && self.pending_cut() {
            self.plan.power_cut_after_writes = None;
            self.cut(None);
        }
        if self.power_lost {
            return Err(DiskError::new(DiskErrorKind::PowerLost, lba).with_detail("the device has no power"));
        }
        if self.gone() {
            return Err(DiskError::new(DiskErrorKind::DeviceGone, lba)
                .with_detail(format!("the device vanished after {} request(s)", self.ios)));
        }
        self.ios += 1;
        Ok(())
    }

    /// The cut: resolves the cache per the model, then power is off.
    /// `in_flight` is the write that triggered it and its tearing; with the
    /// cache on it is the last cached write.
    fn cut(&mut self, in_flight: Option<(u64, Tearing)>) {
        let mut report = CutReport {
            epoch: self.epoch,
            writes: self.writes,
            unflushed: Vec::new(),
            lost: Vec::new(),
            torn: in_flight,
        };
        let entries = std::mem::take(&mut self.cache);
        self.dirty.clear();
        if !entries.is_empty() {
            let candidates = entries.len() - usize::from(in_flight.is_some());
            let model = self.plan.volatile_cache.unwrap_or(CacheModel { max_reorder: 0, drop_probability_percent: 0 });
            let lost = lost_at_cut(self.plan.seed, self.epoch, candidates, model);
            for (i, entry) in entries.iter().enumerate() {
                report.unflushed.push(entry.number);
                if lost.binary_search(&i).is_ok() {
                    report.lost.push(entry.number);
                    continue;
                }
                let tearing = in_flight.filter(|_| i == candidates).map(|(_, t)| t);
                if self.land_on_media(entry.lba, &entry.data, tearing).is_err() {
                    report.lost.push(entry.number);
                }
            }
        }
        self.epoch += 1;
        self.power_lost = true;
        self.last_cut = Some(report);
    }

    /// Writes to the media as `tearing` says and heals what landed whole.
    fn land_on_media(&mut self, lba: u64, data: &[u8], tearing: Option<Tearing>) -> Result<(), DiskError> {
        let whole = land(&mut self.inner, lba, data, tearing)?;
        let end = lba + whole; // inside the device: `land` checked the range
        if !self.plan.bit_flips.is_empty() {
            self.plan.bit_flips.retain(|f| !(lba..end).contains(&f.lba));
        }
        if !self.plan.bad_sectors_fail_writes {
            let healed: Vec<u64> = self.plan.bad_sectors.range(lba..end).copied().collect();
            for lba in healed {
                self.plan.bad_sectors.remove(&lba);
            }
        }
        Ok(())
    }

    /// Lands every cached write on the media in order. On an error the
    /// writes not landed stay cached.
    fn write_back(&mut self) -> Result<(), DiskError> {
        let mut entries = std::mem::take(&mut self.cache).into_iter();
        while let Some(entry) = entries.next() {
            if let Err(e) = self.land_on_media(entry.lba, &entry.data, None) {
                self.cache = std::iter::once(entry).chain(entries).collect();
                self.rebuild_dirty();
                return Err(e);
            }
        }
        self.dirty.clear();
        Ok(())
    }

    fn rebuild_dirty(&mut self) {
        self.dirty.clear();
        let ss = self.inner.sector_size().bytes_u64();
        for (i, entry) in self.cache.iter().enumerate() {
            let count = entry.data.len() as u64 / ss;
            for lba in entry.lba..entry.lba + count {
                self.dirty.insert(lba, i);
            }
        }
    }

    fn tearing_for(&self, tearing: Tearing) -> Tearing {
        match tearing {
            Tearing::TornSector { sectors, .. } if self.plan.sector_atomic => Tearing::Prefix { sectors },
            t => t,
        }
    }
}

impl<D: BlockDevice> BlockDevice for Faulty<D> {
    fn sector_size(&self) -> SectorSize {
        self.inner.sector_size()
    }

    fn sector_count(&self) -> u64 {
        self.inner.sector_count()
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.admit(lba)?;
        let count = self.check_range(lba, buf.len())?;
        let end = lba + count;
        let ss = self.sector_size().len();
        if let Some(bad) = self.plan.bad_sectors.range(lba..end).find(|s| !self.dirty.contains_key(s)) {
            return Err(DiskError::new(DiskErrorKind::MediaError, lba)
                .with_detail(format!("unrecovered read error (latent sector error) at LBA {bad}")));
        }
        self.inner.read_sectors(lba, buf)?;
        for flip in &self.plan.bit_flips {
            if (lba..end).contains(&flip.lba) && flip.byte < ss && !self.dirty.contains_key(&flip.lba) {
                buf[(flip.lba - lba) as usize * ss + flip.byte] ^= 1 << (flip.bit & 7);
            }
        }
        for (&sector, &i) in self.dirty.range(lba..end) {
            let entry = &self.cache[i];
            let from = (sector - entry.lba) as usize * ss;
            let to = (sector - lba) as usize * ss;
            buf[to..to + ss].copy_from_slice(&entry.data[from..from + ss]);
        }
        Ok(())
    }

    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), DiskError> {
        self.admit(lba)?;
        let count = self.check_range(lba, buf.len())?;
        let end = lba + count;
        if self.plan.read_only {
            return Err(DiskError::new(DiskErrorKind::ReadOnly, lba).with_detail("write-protected by the fault plan"));
        }
        if self.plan.bad_sectors_fail_writes {
            if let Some(bad) = self.plan.bad_sectors.range(lba..end).next() {
                return Err(DiskError::new(DiskErrorKind::MediaError, lba)
                    .with_detail(format!("write error at bad sector LBA {bad}")));
            }
        }
        if let Some(limit) = self.plan.full_after_sectors {
            let new = count - self.written.overlap(lba, end);
            let used = self.written.len();
            if new > 0 && used.saturating_add(new) > limit {
                return Err(DiskError::new(DiskErrorKind::NoSpace, lba)
                    .with_detail(format!("{new} new sector(s) do not fit: {used} of {limit} sector(s) in use")));
            }
        }
        let number = self.writes + 1;
        let cut_here = self.plan.power_cut_after_writes == Some(number);
        let tearing = if cut_here { self.plan.torn_last_write.map(|t| self.tearing_for(t)) } else { None };
        if self.plan.volatile_cache.is_some() {
            let index = self.cache.len();
            self.cache.push(CachedWrite { number, lba, data: buf.to_vec() });
            for sector in lba..end {
                self.dirty.insert(sector, index);
            }
        } else {
            // A cache switched off through `plan_mut` writes back what it holds first.
            if !self.cache.is_empty() {
                self.write_back()?;
            }
            self.land_on_media(lba, buf, tearing)?;
        }
        self.writes = number;
        self.written.insert(lba, end);
        if cut_here {
            self.plan.power_cut_after_writes = None;
            self.cut(tearing.map(|t| (number, t)));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        self.admit(0)?;
        self.write_back()?;
        self.inner.flush()?;
        self.epoch += 1;
        Ok(())
    }

    /// `None` while any fault touches the range (bad sectors, bit flips, no
    /// power, device gone) or cached writes cover part of it; else the
    /// media's token.
    fn content_token(&self, lba: u64, count: u64) -> Option<ContentToken> {
        let end = lba.checked_add(count)?;
        if self.power_lost
            || self.pending_cut()
            || self.gone()
            || self.plan.bad_sectors.range(lba..end).next().is_some()
            || self.dirty.range(lba..end).next().is_some()
            || self.plan.bit_flips.iter().any(|f| (lba..end).contains(&f.lba))
        {
            return None;
        }
        self.inner.content_token(lba, count)
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

/// SplitMix64 (Steele, Lea, Flood 2014), written out so a cut's outcome
/// never changes with a dependency's version.
struct SplitMix64(u64);

impl SplitMix64 {
    /// The generator of a cut in `epoch` under `seed`.
    fn for_epoch(seed: u64, epoch: u64) -> SplitMix64 {
        SplitMix64(seed ^ SplitMix64(epoch).next_u64())
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A draw in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Indexes (ascending) of the candidates lost at a cut; see the module
/// documentation.
fn lost_at_cut(seed: u64, epoch: u64, candidates: usize, model: CacheModel) -> Vec<usize> {
    let mut rng = SplitMix64::for_epoch(seed, epoch);
    let k = model.max_reorder.min(candidates);
    let mut pool: Vec<usize> = (0..candidates).collect();
    for i in 0..k {
        let j = i + rng.below((candidates - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool.sort_unstable();
    let percent = u64::from(model.drop_probability_percent);
    pool.retain(|_| rng.below(100) < percent);
    pool
}

/// A set of sectors as disjoint, non-adjacent runs `start -> end`.
#[derive(Clone, Debug, Default)]
struct SectorRuns {
    runs: BTreeMap<u64, u64>,
    total: u64,
}

impl SectorRuns {
    fn len(&self) -> u64 {
        self.total
    }

    /// How many sectors of `start..end` are in the set.
    fn overlap(&self, start: u64, end: u64) -> u64 {
        let mut n = 0;
        for (&s, &e) in self.runs.range(..end).rev() {
            if e <= start {
                break;
            }
            n += e.min(end) - s.max(start);
        }
        n
    }

    fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let touching: Vec<(u64, u64)> =
            self.runs.range(..=end).rev().take_while(|&(_, &e)| e >= start).map(|(&s, &e)| (s, e)).collect();
        let (mut start, mut end) = (start, end);
        for (s, e) in touching {
            self.runs.remove(&s);
            self.total -= e - s;
            start = start.min(s);
            end = end.max(e);
        }
        self.runs.insert(start, end);
        self.total += end - start;
    }
}

/// One write of a crash state: an index into the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrashWrite {
    /// The write landed whole.
    Whole(usize),
    /// The write landed torn.
    Torn {
        /// Index of the write in the log.
        index: usize,
        /// How it landed.
        tearing: Tearing,
    },
}

/// One crash state: the writes of a log that reached the media, in log order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashState {
    /// Position in the list [`crash_states`] returns (stable for the same
    /// log and space).
    pub id: u64,
    /// The writes that landed, in log order.
    pub writes: Vec<CrashWrite>,
    /// What the state is, for people.
    pub description: String,
}

/// The bounds of a crash-state exploration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashSpace {
    /// At most this many unflushed writes of the cut's epoch are lost.
    pub reorder: usize,
    /// At most this many tear points per write and tearing kind.
    pub max_tears: usize,
    /// At most this many loss states per cut point.
    pub max_states_per_cut: usize,
    /// Sectors land atomically: no [`Tearing::TornSector`] states.
    pub sector_atomic: bool,
}

/// Every crash state of a recorded write sequence, as the list of writes
/// that reached the media (indexes into the log), bounded. For each cut
/// point `k` in `0..=n` (`n` writes in the log; cut right after write `k`,
/// in this order):
///
/// 1. the prefix: writes `1..=k` landed whole (`n + 1` states in all);
/// 2. if `k ≥ 1` and write `k` has `s` sectors: writes `1..k` whole and
///    write `k` torn as [`Tearing::Prefix`] `j` for `j` in `1..s`, at most
///    `max_tears` evenly spaced values (ends included); then, unless
///    `sector_atomic`, [`Tearing::TornSector`] `{ sectors: j, bytes:
///    sector_size / 2 }` for `j` in `0..s`, again at most `max_tears`;
/// 3. losses: write `k` landed, and every non-empty set of at most
///    `reorder` other writes of its epoch (writes since the last flush
///    before it) lost, by size and then lexicographically, at most
///    `max_states_per_cut`.
///
/// States are distinct: a state losing write `k` is a state of an earlier
/// cut. Ids are positions in the returned list.
pub fn crash_states(log: &[LoggedIo], sector_size: usize, space: &CrashSpace) -> Vec<CrashState> {
    // (log index, sectors, index in `writes` of the first write of its epoch)
    let mut writes: Vec<(usize, u64, usize)> = Vec::new();
    let mut epoch_start = 0;
    for (index, event) in log.iter().enumerate() {
        match event {
            LoggedIo::Write { data, .. } => {
                let sectors = data.len().checked_div(sector_size).unwrap_or(0) as u64;
                writes.push((index, sectors, epoch_start));
            }
            LoggedIo::Flush => epoch_start = writes.len(),
        }
    }

    let mut states = Vec::new();
    let mut push = |writes: Vec<CrashWrite>, description: String| {
        let id = states.len() as u64;
        states.push(CrashState { id, writes, description });
    };
    push(Vec::new(), "cut before any write".to_owned());
    for k in 1..=writes.len() {
        let (index, sectors, start) = writes[k - 1];
        let before: Vec<CrashWrite> = writes[..k - 1].iter().map(|&(i, ..)| CrashWrite::Whole(i)).collect();
        let cut = format!("cut after write {k} (log #{index})");

        let mut all = before.clone();
        all.push(CrashWrite::Whole(index));
        push(all, cut.clone());

        let mut tears: Vec<Tearing> = spread(sectors.saturating_sub(1), space.max_tears)
            .into_iter()
            .map(|j| Tearing::Prefix { sectors: j + 1 })
            .collect();
        if !space.sector_atomic {
            let bytes = sector_size / 2;
            tears.extend(
                spread(sectors, space.max_tears).into_iter().map(|j| Tearing::TornSector { sectors: j, bytes }),
            );
        }
        for tearing in tears {
            let mut torn = before.clone();
            torn.push(CrashWrite::Torn { index, tearing });
            push(torn, format!("{cut}, torn ({sectors} sectors): {tearing}"));
        }

        let epoch = &writes[start..k - 1];
        for_each_subset(epoch.len(), space.reorder, space.max_states_per_cut, |lost| {
            let mut landed = Vec::with_capacity(k);
            let mut next = lost.iter().peekable();
            for (w, &(i, ..)) in writes[..k].iter().enumerate() {
                if next.peek().is_some_and(|&&l| start + l == w) {
                    next.next();
                } else {
                    landed.push(CrashWrite::Whole(i));
                }
            }
            let names: Vec<String> = lost.iter().map(|&l| format!("{} (log #{})", start + l + 1, epoch[l].0)).collect();
            push(landed, format!("{cut}, unflushed write(s) lost: {}", names.join(", ")));
        });
    }
    states
}

/// At most `max` evenly spaced values of `0..count`, both ends included
/// when `max >= 2`; the middle one when `max == 1`.
fn spread(count: u64, max: usize) -> Vec<u64> {
    let max = max as u64;
    if count <= max {
        return (0..count).collect();
    }
    match max {
        0 => Vec::new(),
        1 => vec![(count - 1) / 2],
        _ => (0..max).map(|i| (u128::from(i) * u128::from(count - 1) / u128::from(max - 1)) as u64).collect(),
    }
}

/// Calls `f` with every non-empty subset of `0..n` of at most `max_size`
/// elements (ascending), by size then lexicographically, at most `cap` times.
fn for_each_subset(n: usize, max_size: usize, cap: usize, mut f: impl FnMut(&[usize])) {
    let mut emitted = 0;
    for size in 1..=max_size.min(n) {
        let mut pick: Vec<usize> = (0..size).collect();
        loop {
            if emitted == cap {
                return;
            }
            f(&pick);
            emitted += 1;
            // The rightmost element that can still move right.
            let Some(i) = (0..size).rev().find(|&i| pick[i] < n - size + i) else { break };
            pick[i] += 1;
            for j in i + 1..size {
                pick[j] = pick[j - 1] + 1;
            }
        }
    }
}

/// Applies a crash state to a device, normally a fork of the disk as it was
/// before the logged operation: the state's writes, in order, whole or torn.
/// A state naming an entry that is not a write of `log` is an `Io` error
/// (at LBA 0) and nothing more is written.
pub fn apply_crash_state<D: BlockDevice + ?Sized>(
    base: &mut D,
    log: &[LoggedIo],
    state: &CrashState,
) -> Result<(), DiskError> {
    for write in &state.writes {
        let (index, tearing) = match *write {
            CrashWrite::Whole(index) => (index, None),
            CrashWrite::Torn { index, tearing } => (index, Some(tearing)),
        };
        let Some(LoggedIo::Write { lba, data }) = log.get(index) else {
            return Err(DiskError::new(DiskErrorKind::Io, 0).with_detail(format!(
                "crash state {} names log entry {index}, which is not a write of this {}-entry log",
                state.id,
                log.len()
            )));
        };
        land(base, *lba, data, tearing)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sector_runs_merge_and_count() {
        let mut runs = SectorRuns::default();
        runs.insert(10, 20);
        runs.insert(30, 40);
        assert_eq!((runs.len(), runs.overlap(15, 35)), (20, 10));
        runs.insert(20, 30); // adjacent both sides: one run
        assert_eq!(runs.runs.len(), 1);
        assert_eq!(runs.len(), 30);
        runs.insert(5, 12);
        runs.insert(0, 1);
        assert_eq!(runs.len(), 36);
        assert_eq!(runs.overlap(0, 100), 36);
        assert_eq!(runs.overlap(1, 5), 0);
        runs.insert(7, 7);
        assert_eq!(runs.len(), 36);
    }

    #[test]
    fn spread_and_subsets() {
        assert_eq!(spread(3, 2), [0, 2]);
        assert_eq!(spread(7, 3), [0, 3, 6]);
        assert_eq!(spread(7, 1), [3]);
        assert_eq!(spread(2, 5), [0, 1]);
        assert!(spread(9, 0).is_empty());
        let mut seen = Vec::new();
        for_each_subset(4, 2, usize::MAX, |s| seen.push(s.to_vec()));
        let expected: Vec<Vec<usize>> = vec![
            vec![0],
            vec![1],
            vec![2],
            vec![3],
            vec![0, 1],
            vec![0, 2],
            vec![0, 3],
            vec![1, 2],
            vec![1, 3],
            vec![2, 3],
        ];
        assert_eq!(seen, expected);
        let mut count = 0;
        for_each_subset(30, 30, 100, |_| count += 1);
        assert_eq!(count, 100);
    }

    #[test]
    fn splitmix_reference_values() {
        // First outputs for seed 1234567 from the reference implementation.
        let mut rng = SplitMix64(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }
}
