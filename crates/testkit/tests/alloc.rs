//! The counting allocator counts: its own binary, since it installs the
//! global allocator it measures with.

use visorsim_testkit::alloc::{peak_during, CountingAllocator};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

#[test]
fn peak_counts_what_the_call_held_at_once_not_what_was_live_before() {
    let held_before = vec![1u8; 1 << 20];
    let ((), peak) = peak_during(|| {
        let a = std::hint::black_box(vec![0u8; 300_000]);
        drop(a);
        let b = std::hint::black_box(vec![0u8; 200_000]);
        let c = std::hint::black_box(vec![0u8; 100_000]);
        drop((b, c));
    });
    assert!((300_000..300_000 + 4096).contains(&peak), "peak {peak}");
    let (len, peak) = peak_during(|| {
        let mut v: Vec<u8> = Vec::new();
        for i in 0..100_000u32 {
            v.push(i as u8);
        }
        v.len()
    });
    assert_eq!(len, 100_000);
    assert!(
        (100_000..=262_144).contains(&peak),
        "a growing Vec peaks at its last capacity plus the one before: {peak}"
    );
    drop(held_before);
}

#[test]
fn threads_started_by_the_call_count() {
    let ((), peak) = peak_during(|| {
        std::thread::spawn(|| drop(std::hint::black_box(vec![0u8; 500_000]))).join().unwrap();
    });
    assert!(peak >= 500_000, "peak {peak}");
}
