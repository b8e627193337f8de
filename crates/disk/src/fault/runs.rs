//! [`SectorRuns`]: a set of sectors kept as runs, the count behind the
//! `full_after_sectors` fault (how many distinct sectors were written).
//!
//! Invariants: the runs are disjoint and never adjacent (touching runs are
//! merged on insert), each maps its start to its end (exclusive), and
//! `total` is the sum of their lengths. Inserting and counting cost a log
//! factor plus the runs touched, whatever the sectors' count.

use std::collections::BTreeMap;

/// A set of sectors as disjoint, non-adjacent runs `start -> end`.
#[derive(Clone, Debug, Default)]
pub(super) struct SectorRuns {
    runs: BTreeMap<u64, u64>,
    total: u64,
}

impl SectorRuns {
    pub(super) fn len(&self) -> u64 {
        self.total
    }

    /// How many sectors of `start..end` are in the set.
    pub(super) fn overlap(&self, start: u64, end: u64) -> u64 {
        let mut n = 0;
        for (&s, &e) in self.runs.range(..end).rev() {
            if e <= start {
                break;
            }
            n += e.min(end) - s.max(start);
        }
        n
    }

    pub(super) fn insert(&mut self, start: u64, end: u64) {
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
}
