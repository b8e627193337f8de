//! The live fault device: [`Faulty`] wraps a device (the *media*) and
//! applies the faults of its [`FaultPlan`] to every request as it comes.
//!
//! It implements exactly the durability model, the cut and the fault table
//! of the [fault layer's contract](super): power cuts (by hand or after N
//! writes), torn writes, the write-back volatile cache, bad sectors, bit rot,
//! read-only, full and vanished devices. It promises:
//!
//! - with every fault off it answers like its media (results, error kinds,
//!   LBAs, messages, bytes), cache on or off;
//! - the media only ever receives whole or torn writes, in issue order, that
//!   a real medium would have received by the time of a cut; faults never
//!   change the media's bytes;
//! - given the same plan (seed included) and the same requests, every
//!   outcome is the same, cut included;
//! - a write reaching the media heals the plan (bit flips, and bad sectors
//!   unless `bad_sectors_fail_writes`) for the sectors it landed whole.

use std::collections::BTreeMap;
use std::fmt;

use super::rng::lost_at_cut;
use super::runs::SectorRuns;
use super::{land, CacheModel, FaultPlan, Tearing};
use crate::device::{BlockDevice, ContentToken, SectorSize};
use crate::error::{DiskError, DiskErrorKind};

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
            let mut lost = lost_at_cut(self.plan.seed, self.epoch, candidates, model);
            // The exact losses a reproducer asks for, on top of the model's draw.
            for (i, entry) in entries.iter().enumerate().take(candidates) {
                if self.plan.lost_at_cut.contains(&entry.number) && !lost.contains(&i) {
                    lost.push(i);
                }
            }
            lost.sort_unstable();
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
