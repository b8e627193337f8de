//! A counting global allocator, for tests and fuzz targets that promise
//! bounded memory: how many heap bytes a call held at its peak.
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: visorsim_testkit::alloc::CountingAllocator = visorsim_testkit::alloc::CountingAllocator;
//!
//! let peak = visorsim_testkit::alloc::peak_during(|| parse(&input));
//! assert!(peak <= budget);
//! ```
//!
//! Contract:
//! - it forwards every call to [`std::alloc::System`] and keeps two process
//!   wide counters: the bytes live now and the highest value since the last
//!   reset; [`peak_during`] resets the peak and reports how far it rose
//!   above the bytes live when the call started, so memory the caller held
//!   before does not count, and memory the call frees before returning
//!   still does;
//! - it sees heap allocations only, from every thread (a helper thread the
//!   call starts is counted): an anonymous `mmap` (the module loader's large
//!   ISIZE buffers) is not a heap allocation, so bound those with the
//!   process's RSS (libFuzzer's `-rss_limit_mb`);
//! - the figures are exact only while one measured call runs at a time:
//!   [`peak_during`] holds a lock so that two measuring threads of one test
//!   binary wait for each other (unmeasured threads still add their own
//!   allocations, so a binary that measures should run nothing else);
//! - [`peak_during`] panics when [`CountingAllocator`] is not the binary's
//!   global allocator, rather than report a peak of zero.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);
static MEASURING: Mutex<()> = Mutex::new(());

/// [`System`] with the two counters of this module. Install it with
/// `#[global_allocator]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingAllocator;

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
    PEAK.fetch_max(live, Ordering::Relaxed);
    CALLS.fetch_add(1, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes as u64, Ordering::Relaxed);
}

// A global allocator cannot be written without `unsafe`: each method below
// forwards to `System` with the caller's own arguments, so the caller's
// obligations (a valid, non-zero layout; a pointer this allocator returned
// with that layout) are passed on unchanged.
#[allow(unsafe_code)]
// SAFETY: every method delegates to `System`, which upholds `GlobalAlloc`'s
// contract; the counters are atomics and never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, forwarded unchanged.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by `System` (through this allocator)
        // for `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's pointer, layout and size, forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Runs `f` and returns its result with the most heap bytes it held at
/// once beyond what was live when it started (see the module contract).
///
/// # Panics
/// When [`CountingAllocator`] is not the global allocator.
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let _one_at_a_time = MEASURING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let before = CALLS.load(Ordering::Relaxed);
    drop(std::hint::black_box(Box::new(0u64)));
    assert!(
        CALLS.load(Ordering::Relaxed) > before,
        "visorsim_testkit::alloc::CountingAllocator is not this binary's #[global_allocator]: \
         no allocation would be counted"
    );
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let result = f();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(start);
    (result, peak)
}

/// Runs the fuzz entry `entry` of target `target` on `input` and panics
/// when it held more heap than `budget(input.len())` bytes at once: the
/// one check every fuzz target and the corpus replay make
/// (CONTRIBUTING.md, Fuzzing).
///
/// # Panics
/// When the budget is exceeded (a finding), when `entry` panics, or when
/// [`CountingAllocator`] is not the global allocator.
pub fn assert_within(target: &str, input: &[u8], entry: fn(&[u8]), budget: fn(usize) -> u64) {
    let ((), peak) = peak_during(|| entry(input));
    let allowed = budget(input.len());
    assert!(
        peak <= allowed,
        "fuzz target {target}: {peak} heap bytes held at once on a {}-byte input, above its budget of {allowed}",
        input.len()
    );
}
