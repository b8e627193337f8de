//! The output buffer: exactly ISIZE bytes, on the heap for small modules or,
//! from [`MAPPED_MIN`] on, a lazily committed transparent-huge-page mapping
//! ([`sys::Region`]) that a helper prefaults ahead of the inflater, never
//! further than [`PREFAULT_RATIO`] times the compressed input (plus
//! [`PREFAULT_SLACK`]), so a small file claiming 4 GiB commits little. Once
//! inflated, the buffer is cut to the bytes produced and handed out as a
//! [`ModuleBuffer`].
//!
//! When the output is not kept ([`super::LoadOptions::keep`]), it streams
//! through a [`Pool`] instead: a few [`PIECE`]-byte transparent-huge-page
//! buffers, each filled by the inflater, hashed, and given back for the
//! next piece. The memory touched is then a few pieces whatever the
//! module's size, and it is touched once (fresh pages cost a fault each,
//! and on a virtual machine whose host reclaims freed memory, far more).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread;

use super::sys;

// Size thresholds are much smaller under test, so that small inputs take
// every path (mapping, helper threads, segments).

/// Outputs at least this large live in a [`sys::Region`]; smaller ones on the heap.
const MAPPED_MIN: usize = if cfg!(test) { 16 << 10 } else { 1 << 20 };

/// Pages are prefaulted up to this many times the compressed input (plus
/// [`PREFAULT_SLACK`]); beyond, the inflater faults them in itself.
const PREFAULT_RATIO: usize = 16;
/// See [`PREFAULT_RATIO`].
const PREFAULT_SLACK: usize = 4 << 20;
/// The prefault helper works in steps of this many bytes.
const PREFAULT_STEP: usize = if cfg!(test) { 64 << 10 } else { 16 << 20 };

/// The bytes of a loaded module: exactly the module's size, on the heap or
/// in an anonymous mapping (large outputs). Dereferences to `[u8]`.
pub struct ModuleBuffer(pub(super) Repr);

/// Where a buffer's bytes live.
pub(super) enum Repr {
    Heap(Vec<u8>),
    Mapped(sys::Region),
}

impl ModuleBuffer {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Heap(v) => v,
            Repr::Mapped(r) => r.as_slice(),
        }
    }

    /// Whether the bytes live in an anonymous mapping rather than on the heap.
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Repr::Mapped(_))
    }

    /// The bytes as a vector (a copy when mapped).
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Heap(v) => v,
            Repr::Mapped(r) => r.as_slice().to_vec(),
        }
    }
}

impl std::ops::Deref for ModuleBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for ModuleBuffer {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Clone for ModuleBuffer {
    fn clone(&self) -> Self {
        ModuleBuffer(Repr::Heap(self.as_slice().to_vec()))
    }
}

impl PartialEq for ModuleBuffer {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for ModuleBuffer {}

impl std::fmt::Debug for ModuleBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModuleBuffer({} bytes{})", self.len(), if self.is_mapped() { ", mapped" } else { "" })
    }
}

impl Repr {
    /// A zeroed buffer of `len` bytes: mapped from [`MAPPED_MIN`] on, else on
    /// the heap; `None` if the mapping fails (mboot's malloc failing).
    pub(super) fn allocate(len: usize) -> Option<Repr> {
        if len >= MAPPED_MIN {
            sys::Region::reserve(len).map(Repr::Mapped)
        } else {
            Some(Repr::Heap(vec![0; len]))
        }
    }

    /// The bytes, writable, and for a mapping a handle to prefault them.
    pub(super) fn split_prefault(&mut self) -> (&mut [u8], Option<sys::Prefault<'_>>) {
        match self {
            Repr::Heap(v) => (v.as_mut_slice(), None),
            Repr::Mapped(r) => {
                let (s, p) = r.split_prefault();
                (s, Some(p))
            }
        }
    }

    /// The first `produced` bytes as the module's buffer.
    pub(super) fn finish(self, produced: usize) -> ModuleBuffer {
        match self {
            Repr::Heap(mut v) => {
                v.truncate(produced);
                ModuleBuffer(Repr::Heap(v))
            }
            Repr::Mapped(mut r) => {
                r.truncate(produced);
                ModuleBuffer(Repr::Mapped(r))
            }
        }
    }
}

/// Populates the first pages of a `len`-byte mapping ahead of an inflater
/// reading `input_len` compressed bytes: on a helper thread of `s` in
/// [`PREFAULT_STEP`] steps until `stop` is set, or inline when the window is
/// at most one step.
pub(super) fn prefault<'scope, 'env>(
    s: &'scope thread::Scope<'scope, 'env>,
    p: sys::Prefault<'env>,
    len: usize,
    input_len: usize,
    stop: &'env AtomicBool,
) {
    let bound = len.min(input_len.saturating_mul(PREFAULT_RATIO).saturating_add(PREFAULT_SLACK));
    if bound > PREFAULT_STEP {
        s.spawn(move || {
            let mut at = 0;
            while at < bound && !stop.load(Ordering::Relaxed) {
                let to = (at + PREFAULT_STEP).min(bound);
                if !p.populate(at, to) {
                    break;
                }
                at = to;
            }
        });
    } else {
        p.populate(0, bound);
    }
}

/// Bytes of one [`Pool`] buffer.
/// (visorsim's own modules are 4 MiB chunks between sync-flush points, one
/// piece each; a larger segment grows its buffer).
pub(super) const PIECE: usize = if cfg!(test) { 64 << 10 } else { 4 << 20 };
/// Most [`PIECE`] buffers a [`Pool`] makes: how far the inflater may run
/// ahead of the MD5 that consumes its output before it waits (and leaves
/// its core to other work).
const POOL_PIECES: usize = 4;

/// Reused output buffers for a streamed inflate (see the module doc):
/// [`Pool::take`] gives a free one, makes a new one while fewer than
/// [`POOL_PIECES`] exist, else waits until one is given back.
pub(super) struct Pool {
    free: Mutex<(Vec<sys::Region>, usize)>,
    given: Condvar,
}

impl Pool {
    pub(super) fn new() -> Pool {
        Pool { free: Mutex::new((Vec::new(), 0)), given: Condvar::new() }
    }

    /// A buffer of at least [`PIECE`] bytes (contents unspecified); `None`
    /// if a new one cannot be mapped.
    pub(super) fn take(&self) -> Option<sys::Region> {
        let mut free = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(r) = free.0.pop() {
                return Some(r);
            }
            if free.1 < POOL_PIECES {
                free.1 += 1;
                drop(free);
                let made = sys::Region::reserve(PIECE);
                if made.is_none() {
                    self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner).1 -= 1;
                }
                return made;
            }
            free = self.given.wait(free).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Replaces `small`, too small for a piece, by a buffer of `len` bytes
    /// (mapped lazily: only what is written is committed); `None` if it
    /// cannot be mapped.
    pub(super) fn grow(&self, small: sys::Region, len: usize) -> Option<sys::Region> {
        drop(small);
        let made = sys::Region::reserve(len);
        if made.is_none() {
            self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner).1 -= 1;
            self.given.notify_one();
        }
        made
    }

    /// Gives a buffer back.
    pub(super) fn give(&self, r: sys::Region) {
        let mut free = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        free.0.push(r);
        drop(free);
        self.given.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;

    fn vm_hwm_kib() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    #[test]
    fn four_gib_isize_from_a_small_file_commits_nothing_large() {
        let data = content(1000, 8);
        let mut f = gz(&data);
        set_isize(&mut f, u32::MAX);
        let big = LoadOptions { memory_budget: 8 << 30, ..LoadOptions::default() };
        let before = vm_hwm_kib();
        let start = std::time::Instant::now();
        for b in Backend::ALL {
            let m = load_module("/m", &f, &LoadOptions { backend: b, ..big }).unwrap();
            assert_eq!((m.size, &*m.data), (1000, &data[..]));
        }
        // Claiming 4 GiB of a truncated stream: buffer too small, as mboot
        // (after allocating 4 GiB) would say.
        let mut t = f[..f.len() - 12].to_vec();
        t.extend_from_slice(&f[f.len() - 8..]);
        for b in Backend::ALL {
            let e = load_module("/m", &t, &LoadOptions { backend: b, ..big }).unwrap_err();
            assert_eq!(e, LoadError::BufferTooSmall { isize: u32::MAX });
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "took {:?}", start.elapsed());
        if let (Some(a), Some(b)) = (before, vm_hwm_kib()) {
            assert!(b.saturating_sub(a) < 256 << 10, "peak RSS grew by {} KiB", b - a);
        }
    }
}
