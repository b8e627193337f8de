//! Simulated time without materialising every event: `Host::advance` over
//! a hundred million days finishes at once, logs a bounded timeline and
//! ends at the right time, on a running host, a host that lost its boot
//! device and a host that is off.

use visorsim_host::clock::SimTime;
use visorsim_host::host::{EventKind, REPEATS_BEFORE_FAST_FORWARD};

use crate::lifecycle::{events, up};

const DAYS: u64 = 100_000_000;

#[test]
fn a_hundred_million_days_of_unchanged_configuration_fast_forward() {
    let (mut disk, mut host) = up();
    host.set_hostname("changed").unwrap();
    let start = host.now();
    let before = host.timeline().len();
    host.advance(&mut disk, DAYS * 86_400);
    assert_eq!(host.now(), SimTime(start.0 + DAYS * 86_400));
    let new = host.timeline().len() - before;
    // The first run saves the change; then REPEATS_BEFORE_FAST_FORWARD
    // unchanged runs; then one event for the rest.
    assert!(new <= REPEATS_BEFORE_FAST_FORWARD + 8, "{new} events");
    let last = events(&host, EventKind::AutoBackup).pop().unwrap();
    assert!(last.contains("the same result at each of the next"), "{last}");
    assert!(last.contains(" runs of '1 * * * *'"), "{last}");
    assert_eq!(host.etc().hostname().as_deref(), Some("changed"));
    // The host still works afterwards: a change is saved by the next hour.
    host.set_hostname("later").unwrap();
    host.advance(&mut disk, 3600);
    assert!(events(&host, EventKind::Backup).len() >= 2, "{:?}", events(&host, EventKind::Backup));
}

#[test]
fn a_lost_device_alerts_a_bounded_number_of_times() {
    let (mut disk, mut host) = up();
    host.lose_boot_device();
    let before = host.timeline().len();
    host.advance(&mut disk, DAYS * 86_400);
    let alerts = host.timeline()[before..].iter().filter(|e| e.kind == EventKind::Alert).count();
    assert!(alerts <= REPEATS_BEFORE_FAST_FORWARD + 1, "{alerts} alerts");
    let last = &host.timeline().last().unwrap().text;
    assert!(last.contains(&format!("next {} runs", DAYS * 24 - REPEATS_BEFORE_FAST_FORWARD as u64)), "{last}");
}

#[test]
fn an_idle_host_jumps() {
    let (mut disk, mut host) = up();
    host.power_off();
    let start = host.now();
    let before = host.timeline().len();
    host.advance(&mut disk, u64::MAX);
    assert_eq!(host.now(), SimTime(u64::MAX), "the clock saturates");
    assert_eq!(host.timeline().len(), before, "nothing runs on a host that is off ({start:?})");
}
