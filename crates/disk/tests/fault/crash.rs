//! Crash-state enumeration: [`crash_states`] and [`apply_crash_state`], and
//! that every cut of a live `Faulty` is one of the states listed.

use std::collections::BTreeSet;

use visorsim_disk::{
    apply_crash_state, crash_states, BlockDevice, CrashSpace, CrashState, CrashWrite, DiskErrorKind, FaultPlan, Faulty,
    LoggedIo, MemDisk, SectorSize, Tearing,
};

use super::{cache, media, pattern, Model, SS};
use crate::util::SECTORS;

// ---------------------------------------------------------------------------
// Crash states.

/// 3 writes, a flush, 2 writes. Write 5 overwrites part of write 1.
fn small_log() -> Vec<LoggedIo> {
    vec![
        LoggedIo::Write { lba: 0, data: pattern(2, 1) },
        LoggedIo::Write { lba: 4, data: pattern(1, 2) },
        LoggedIo::Write { lba: 8, data: pattern(4, 3) },
        LoggedIo::Flush,
        LoggedIo::Write { lba: 1, data: pattern(2, 4) },
        LoggedIo::Write { lba: 12, data: pattern(1, 5) },
    ]
}

fn space(reorder: usize, max_tears: usize, max_states_per_cut: usize, sector_atomic: bool) -> CrashSpace {
    CrashSpace { reorder, max_tears, max_states_per_cut, sector_atomic }
}

#[test]
fn crash_states_match_a_hand_count() {
    let log = small_log();
    // Prefixes: 6. Prefix tears (1..s, at most 2): 1 + 0 + 2 + 1 + 0 = 4.
    // Losses of one other write of the epoch: cut 1: 0, cut 2: 1, cut 3: 2,
    // cut 4 (after the flush): 0, cut 5: 1 = 4.
    assert_eq!(crash_states(&log, SS, &space(1, 2, 100, true)).len(), 14);
    // Torn sectors (0..s, at most 2): 2 + 1 + 2 + 2 + 1 = 8 more.
    assert_eq!(crash_states(&log, SS, &space(1, 2, 100, false)).len(), 22);
    // Two losses at cut 3 ({1}, {2}, {1, 2}) capped at 2 per cut.
    assert_eq!(crash_states(&log, SS, &space(2, 2, 100, true)).len(), 15);
    assert_eq!(crash_states(&log, SS, &space(2, 2, 2, true)).len(), 14);
    // Nothing but prefixes.
    assert_eq!(crash_states(&log, SS, &space(0, 0, 100, false)).len(), 6);
    assert_eq!(crash_states(&[], SS, &space(3, 3, 3, false)).len(), 1);

    let states = crash_states(&log, SS, &space(1, 2, 100, true));
    let whole = |ids: &[usize]| ids.iter().map(|&i| CrashWrite::Whole(i)).collect::<Vec<_>>();
    let listed: Vec<(u64, Vec<CrashWrite>)> = states.iter().map(|s| (s.id, s.writes.clone())).collect();
    let torn = |index, sectors| CrashWrite::Torn { index, tearing: Tearing::Prefix { sectors } };
    let expected = vec![
        (0, whole(&[])),
        (1, whole(&[0])),
        (2, vec![torn(0, 1)]),
        (3, whole(&[0, 1])),
        (4, whole(&[1])),
        (5, whole(&[0, 1, 2])),
        (6, [whole(&[0, 1]), vec![torn(2, 1)]].concat()),
        (7, [whole(&[0, 1]), vec![torn(2, 3)]].concat()),
        (8, whole(&[1, 2])),
        (9, whole(&[0, 2])),
        (10, whole(&[0, 1, 2, 4])),
        (11, [whole(&[0, 1, 2]), vec![torn(4, 1)]].concat()),
        (12, whole(&[0, 1, 2, 4, 5])),
        (13, whole(&[0, 1, 2, 5])),
    ];
    assert_eq!(listed, expected);
    assert_eq!(states[0].description, "cut before any write");
    assert_eq!(states[13].description, "cut after write 5 (log #5), unflushed write(s) lost: 4 (log #4)");
    assert_eq!(states[7].description, "cut after write 3 (log #2), torn (4 sectors): first 3 sector(s) landed");
}

#[test]
fn crash_states_are_deterministic_and_distinct() {
    let log = small_log();
    for sp in [space(1, 2, 100, true), space(3, 4, 5, false)] {
        let a = crash_states(&log, SS, &sp);
        assert_eq!(a, crash_states(&log, SS, &sp));
        assert!(a.iter().enumerate().all(|(i, s)| s.id == i as u64), "ids are positions");
        let distinct: BTreeSet<String> = a.iter().map(|s| format!("{:?}", s.writes)).collect();
        assert_eq!(distinct.len(), a.len(), "no state twice");
    }
}

#[test]
fn every_crash_state_applied_to_a_fork_gives_the_model_bytes() {
    let log = small_log();
    let mut base = MemDisk::new(SECTORS, SectorSize::S512);
    base.write_sectors(0, &pattern(16, 99)).unwrap();
    let mut before = vec![0; SECTORS as usize * SS];
    base.read_sectors(0, &mut before).unwrap();
    for state in crash_states(&log, SS, &space(2, 3, 100, false)) {
        let mut model = Model(before.clone());
        for write in &state.writes {
            let (index, tearing) = match *write {
                CrashWrite::Whole(i) => (i, None),
                CrashWrite::Torn { index, tearing } => (index, Some(tearing)),
            };
            let LoggedIo::Write { lba, data } = &log[index] else { panic!("state {} names a flush", state.id) };
            model.apply(*lba, data, tearing);
        }
        let mut fork = base.fork();
        apply_crash_state(&mut fork, &log, &state).unwrap();
        let mut got = vec![0; before.len()];
        fork.read_sectors(0, &mut got).unwrap();
        assert_eq!(got, model.0, "state {}: {}", state.id, state.description);
    }
    let mut check = vec![0; SS];
    base.read_sectors(0, &mut check).unwrap();
    assert_eq!(check, &before[..SS], "the base itself is untouched");

    // Hand-checked bytes: write 1 torn after its first sector.
    let state = &crash_states(&log, SS, &space(0, 2, 0, true))[2];
    let mut fork = base.fork();
    apply_crash_state(&mut fork, &log, state).unwrap();
    let mut got = vec![0; 2 * SS];
    fork.read_sectors(0, &mut got).unwrap();
    assert_eq!(&got[..SS], &pattern(2, 1)[..SS]);
    assert_eq!(&got[SS..], &before[SS..2 * SS]);

    // A state naming a flush is an error, not a panic.
    let bad = CrashState { id: 99, writes: vec![CrashWrite::Whole(3)], description: String::new() };
    let err = apply_crash_state(&mut fork, &log, &bad).unwrap_err();
    assert_eq!(err.kind(), DiskErrorKind::Io);
    assert!(err.to_string().contains("log entry 3"), "{err}");
}

/// Every cut of a `Faulty` with a cache lands on one of the crash states of
/// the same writes with `reorder = max_reorder`.
#[test]
fn faulty_cuts_are_crash_states() {
    let log = small_log();
    let mut base = MemDisk::new(SECTORS, SectorSize::S512);
    base.write_sectors(0, &pattern(16, 99)).unwrap();
    let states = crash_states(&log, SS, &space(2, 0, usize::MAX, true));
    let explored: Vec<Vec<u8>> = states
        .iter()
        .map(|state| {
            let mut fork = base.fork();
            apply_crash_state(&mut fork, &log, state).unwrap();
            let mut bytes = vec![0; SECTORS as usize * SS];
            fork.read_sectors(0, &mut bytes).unwrap();
            bytes
        })
        .collect();
    let mut reached = BTreeSet::new();
    for seed in 0..40 {
        for cut_after in 1..=5 {
            let plan = FaultPlan {
                power_cut_after_writes: Some(cut_after),
                volatile_cache: cache(2, 60),
                ..FaultPlan::new(seed)
            };
            let mut dev = Faulty::new(base.fork(), plan);
            for event in &log {
                let result = match event {
                    LoggedIo::Write { lba, data } => dev.write_sectors(*lba, data),
                    LoggedIo::Flush => dev.flush(),
                };
                if dev.power_lost() {
                    break;
                }
                result.unwrap();
            }
            let bytes = media(&dev);
            let found = explored.iter().position(|e| *e == bytes);
            let report = dev.last_cut().unwrap();
            let id = found.unwrap_or_else(|| panic!("seed {seed}, cut after {cut_after}: {report} is no crash state"));
            reached.insert(id);
        }
    }
    assert!(reached.len() >= 8, "only {} states reached", reached.len());
}
