//! Crash-state enumeration: [`crash_states`] lists, in a fixed order and
//! within bounds, every state a power cut can leave of a recorded write
//! sequence; [`apply_crash_state`] builds one of them on a device.
//!
//! Contract:
//! - the list is a pure function of the log, the sector size and the
//!   [`CrashSpace`]; ids are positions in it, so the same inputs give the
//!   same ids;
//! - no state is listed twice, and flushed writes always land (a state only
//!   loses writes of the cut's epoch);
//! - every state a cut of [`Faulty`](super::Faulty) with `max_reorder = r`
//!   can produce is among the states with `reorder = r`, bounds permitting;
//! - a state lands its writes with the same function as the live device, so
//!   torn writes give the same bytes in both.

use super::{land, Tearing};
use crate::device::BlockDevice;
use crate::error::{DiskError, DiskErrorKind};
use crate::observe::LoggedIo;

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
}
