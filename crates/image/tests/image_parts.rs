//! The image parts (payload, kernel, archives) through their public API,
//! and the promise that hostile archives cannot make the reader allocate
//! past its limits.
//!
//! This module installs the binary's global allocator: the system
//! allocator, counting live bytes per thread. It shares the `tests` binary
//! because the counts are per thread (each test runs on its own thread, so
//! tests in parallel do not see each other's allocations) and the counting
//! only forwards: the other modules run on the system allocator as before.

// The counting allocator needs `unsafe impl GlobalAlloc`; it only forwards
// to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Read;

use visorsim_image::archive::{
    fresh_etc, local_tgz, read_state_tgz, state_tgz, ArchiveErrorKind, ArchiveLimits, EtcFile,
};
use visorsim_image::kernel::{kernel_elf, MULTIBOOT_MAGIC};
use visorsim_image::payload::{cached_gzip_system_module, fill_system_bytes, gzip_bytes, gzip_system_module};

/// The system allocator, counting the live bytes of each thread.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(n: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().wrapping_add(n);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrank(n: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().wrapping_sub(n)));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`; returns its result and the most bytes this thread had
/// allocated at once during it, above what was live before.
fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    (out, PEAK.with(Cell::get).saturating_sub(start))
}

const MIB: usize = 1024 * 1024;

/// A ustar header block (checksum included).
fn header(name: &str, typeflag: u8, size: u64) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = typeflag;
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

/// state.tgz around a local.tgz made of `tar` (end blocks appended).
fn state_around(mut tar: Vec<u8>) -> Vec<u8> {
    tar.resize(tar.len() + 1024, 0);
    state_tgz(&gzip_bytes(None, &tar, 0), 0)
}

#[test]
fn a_member_claiming_a_gigabyte_allocates_nothing_like_it() {
    // The header claims 1 GiB, and 16 MiB of zeros follow (they compress
    // to almost nothing), so a reader that trusted the size would try.
    let mut tar = header("etc/huge", b'0', 1 << 30);
    tar.resize(tar.len() + 16 * MIB, 0);
    let state = state_around(tar);
    let (result, peak) = peak_allocation(|| read_state_tgz(&state, &ArchiveLimits::default()));
    let e = result.unwrap_err();
    assert_eq!((e.kind(), e.member()), (ArchiveErrorKind::MemberTooLarge, Some("etc/huge")));
    eprintln!("1 GiB claim: peak allocation {peak} bytes");
    assert!(peak < 2 * MIB, "peak allocation {peak} bytes");
}

#[test]
fn ten_thousand_members_stop_at_the_limit_in_bounded_memory() {
    let mut tar = Vec::new();
    for i in 0..10_000 {
        tar.extend(header(&format!("etc/f{i}"), b'0', 0));
    }
    let state = state_around(tar);
    let (result, peak) = peak_allocation(|| read_state_tgz(&state, &ArchiveLimits::default()));
    let e = result.unwrap_err();
    assert_eq!((e.kind(), e.member()), (ArchiveErrorKind::TooManyMembers, Some("etc/f4096")));
    // 4096 empty files kept, plus local.tgz and the decoders.
    eprintln!("10 000 members: peak allocation {peak} bytes");
    assert!(peak < 2 * MIB, "peak allocation {peak} bytes");
}

#[test]
fn total_limit_bounds_what_is_kept() {
    let limits = ArchiveLimits {
        max_members: 100,
        max_member_bytes: MIB as u64,
        max_total_bytes: 4 * MIB as u64,
        max_ratio: u64::MAX,
    };
    let mut tar = Vec::new();
    for i in 0..10 {
        tar.extend(header(&format!("etc/big{i}"), b'0', MIB as u64));
        tar.resize(tar.len() + MIB, b'x');
    }
    let state = state_around(tar);
    let (result, peak) = peak_allocation(|| read_state_tgz(&state, &limits));
    let e = result.unwrap_err();
    assert_eq!((e.kind(), e.member()), (ArchiveErrorKind::TotalTooLarge, Some("etc/big4")));
    eprintln!("total limit 4 MiB: peak allocation {peak} bytes");
    assert!(peak > 4 * MIB - 4096 && peak < 4 * MIB + MIB, "peak allocation {peak} bytes");
}

#[test]
fn hostile_paths_and_types_are_named() {
    let cases: [(&str, u8, ArchiveErrorKind); 5] = [
        ("/etc/passwd", b'0', ArchiveErrorKind::AbsolutePath),
        ("etc/../../root/.ssh/authorized_keys", b'0', ArchiveErrorKind::ParentDir),
        ("etc/link", b'2', ArchiveErrorKind::SpecialFile),
        ("etc/hard", b'1', ArchiveErrorKind::SpecialFile),
        ("etc/dev", b'3', ArchiveErrorKind::SpecialFile),
    ];
    for (name, flag, kind) in cases {
        let e = read_state_tgz(&state_around(header(name, flag, 0)), &ArchiveLimits::default()).unwrap_err();
        assert_eq!((e.kind(), e.member()), (kind, Some(name)));
        assert!(e.to_string().contains(name), "{e}");
    }
}

#[test]
fn etc_round_trips_through_state_tgz() {
    let files = fresh_etc("esx42", 42, "Mon Jan  5 10:00:00 UTC 2026", 17);
    let state = state_tgz(&local_tgz(&files, 1_767_607_200), 1_767_607_200);
    let (back, peak) = peak_allocation(|| read_state_tgz(&state, &ArchiveLimits::default()).unwrap());
    assert_eq!(back, files);
    assert!(peak < MIB, "peak allocation {peak} bytes");
    // A changed file survives too.
    let mut changed = files.clone();
    changed.push(EtcFile { path: "etc/motd".into(), mode: 0o1644, data: b"hello\n".to_vec() });
    let back = read_state_tgz(&state_tgz(&local_tgz(&changed, 0), 0), &ArchiveLimits::default()).unwrap();
    assert_eq!(back.len(), 5);
    assert!(back.iter().any(|f| f.path == "etc/motd" && f.data == b"hello\n"));
}

#[test]
fn gzipped_kernel_is_found_by_a_multiboot_scan() {
    let kernel = kernel_elf("6.7.0", "8169922");
    let b_b00 = gzip_bytes(Some("b.b00"), &kernel, 0);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&b_b00[..]).read_to_end(&mut out).unwrap();
    assert_eq!(out, kernel);
    let found = out[..8192.min(out.len())]
        .chunks_exact(4)
        .enumerate()
        .find(|(_, w)| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) == MULTIBOOT_MAGIC)
        .map(|(i, _)| i * 4)
        .expect("multiboot magic");
    let word = |at: usize| u32::from_le_bytes(out[at..at + 4].try_into().unwrap());
    assert_eq!(word(found).wrapping_add(word(found + 4)).wrapping_add(word(found + 8)), 0);
}

#[test]
fn cached_module_matches_uncached_and_content() {
    let dir = tempfile::tempdir().unwrap();
    let len = 1_000_000u64;
    let cached = cached_gzip_system_module(Some(dir.path()), "s.v00", 77, len, 0, &mut |_| {}).unwrap();
    let again = cached_gzip_system_module(Some(dir.path()), "s.v00", 77, len, 0, &mut |_| {}).unwrap();
    let plain = gzip_system_module("s.v00", 77, len, 0, &mut |_| {});
    assert_eq!(cached, plain);
    assert_eq!(again, plain);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&plain.bytes[..]).read_to_end(&mut out).unwrap();
    let mut want = vec![0u8; len as usize];
    fill_system_bytes(77, 0, &mut want);
    assert!(out == want);
}
