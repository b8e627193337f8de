//! The load path's only unsafe code: an anonymous mapping for large
//! outputs ([`Region`], with [`Prefault`] to populate it from another
//! thread), libdeflate's `deflate_decompress_ex` ([`RawInflater`]), and
//! lowering a thread's scheduling priority ([`lower_priority`]). Each
//! unsafe block carries its SAFETY note; the rest of the crate denies
//! `unsafe_code` (the `#[allow]` is on this module's declaration).

use std::marker::PhantomData;
use std::ptr::NonNull;

/// An anonymous private read-write mapping of `len` bytes, reserved
/// lazily (`MAP_NORESERVE`: pages are committed when first written),
/// with transparent huge pages asked for. Owns its memory like a
/// `Box<[u8]>`; unmapped on drop.
pub(super) struct Region {
    ptr: NonNull<u8>,
    /// Bytes visible through the slices.
    len: usize,
    /// Bytes mapped (`len` rounded up to the page size).
    mapped: usize,
}

// SAFETY: a Region owns its mapping exclusively (no other handle to the
// memory exists), so moving it or sharing `&Region` across threads is as
// safe as for `Box<[u8]>`.
unsafe impl Send for Region {}
// SAFETY: see `Send`; `&Region` only gives out `&[u8]`.
unsafe impl Sync for Region {}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|p| p.is_power_of_two()).unwrap_or(4096)
}

impl Region {
    /// Reserves `len > 0` bytes; `None` if the mapping fails.
    pub(super) fn reserve(len: usize) -> Option<Region> {
        let mapped = len.checked_next_multiple_of(page_size())?;
        if mapped == 0 {
            return None;
        }
        // SAFETY: a fresh anonymous mapping at an address of the kernel's
        // choosing touches no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: advice on our own fresh mapping; failure is harmless
        // (no huge pages), so the result is ignored.
        unsafe { libc::madvise(p, mapped, libc::MADV_HUGEPAGE) };
        Some(Region { ptr: NonNull::new(p.cast())?, len, mapped })
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` maps `mapped >= len` readable bytes (zero until
        // written) for the Region's lifetime, and `&self` excludes writers.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, writable.
    pub(super) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only
        // reference to the bytes.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, writable, and a handle to prefault them from another
    /// thread; both borrow the Region, so it outlives them.
    pub(super) fn split_prefault(&mut self) -> (&mut [u8], Prefault<'_>) {
        let prefault = Prefault { addr: self.ptr.as_ptr() as usize, len: self.len, _region: PhantomData };
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only
        // reference to the bytes (a Prefault never reads or writes them).
        let slice = unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) };
        (slice, prefault)
    }

    /// Keeps the first `len` bytes (at most the current length) and
    /// unmaps the whole pages after them.
    pub(super) fn truncate(&mut self, len: usize) {
        let len = len.min(self.len);
        let keep = len.next_multiple_of(page_size()).max(page_size()).min(self.mapped);
        if keep < self.mapped {
            // SAFETY: [ptr + keep, ptr + mapped) is a page-aligned part of
            // our own mapping, and no reference into it outlives this
            // `&mut self` (slices are cut to `len <= keep` below).
            let r = unsafe { libc::munmap(self.ptr.as_ptr().add(keep).cast(), self.mapped - keep) };
            if r == 0 {
                self.mapped = keep;
            }
        }
        self.len = len;
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly our own mapping; no reference into it
        // outlives the Region.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.mapped) };
    }
}

/// Prefaults a [`Region`]'s pages (`MADV_POPULATE_WRITE`, Linux 5.14+)
/// while another thread writes them: the kernel installs zeroed pages
/// where none are yet and leaves the others alone, so the contents never
/// change and no memory is read or written from Rust's point of view.
#[derive(Clone, Copy)]
pub(super) struct Prefault<'r> {
    addr: usize,
    len: usize,
    _region: PhantomData<&'r Region>,
}

impl Prefault<'_> {
    /// Populates the pages covering bytes `from..to`; false if the
    /// kernel refused (too old, or out of memory), which is harmless.
    pub(super) fn populate(&self, from: usize, to: usize) -> bool {
        const MADV_POPULATE_WRITE: libc::c_int = 23;
        let page = page_size();
        let start = from / page * page;
        let end = to.min(self.len);
        if start >= end {
            return true;
        }
        // SAFETY: the range lies inside the live mapping (the borrow of
        // the Region guarantees it is not unmapped meanwhile), and
        // populating does not change its contents (see the type's doc).
        let r = unsafe { libc::madvise((self.addr + start) as *mut libc::c_void, end - start, MADV_POPULATE_WRITE) };
        r == 0
    }
}

/// How much a thread's nice value rises per [`lower_priority`] step
/// (normal policy): nice 5 gets a third of the CPU time of nice 0, nice 10
/// a tenth.
const NICE_STEP: libc::c_int = 5;

/// Lowers the calling thread's scheduling priority `steps` steps below
/// that of the thread that created it: real-time priority steps under
/// `SCHED_FIFO` or `SCHED_RR` (down to the lowest), else [`NICE_STEP`] nice
/// levels each (up to 19). Lowering needs no privilege; a refusal is harmless
/// (the thread keeps its priority), so results are ignored. Threads the
/// caller creates afterwards inherit the lower priority. Nice levels
/// weigh threads against each other within their autogroup (Linux's
/// default where `kernel.sched_autogroup_enabled` is 1: one group per
/// session); without autogroups, the lowered threads also yield to other
/// processes' threads, so a load on a busy machine leans more on its
/// chain thread.
pub(super) fn lower_priority(steps: libc::c_int) {
    // SAFETY: these calls only read or change the calling thread's
    // scheduling parameters; `param` is a live local.
    unsafe {
        let policy = libc::sched_getscheduler(0);
        if policy == libc::SCHED_FIFO || policy == libc::SCHED_RR {
            let mut param = libc::sched_param { sched_priority: 0 };
            let min = libc::sched_get_priority_min(policy);
            if libc::sched_getparam(0, &mut param) == 0 && param.sched_priority > min {
                param.sched_priority = param.sched_priority.saturating_sub(steps).max(min);
                libc::sched_setparam(0, &param);
            }
        } else {
            let tid = libc::gettid() as libc::id_t;
            let nice = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, nice.saturating_add(NICE_STEP.saturating_mul(steps)).min(19));
        }
    }
}

/// A libdeflate decompressor for `libdeflate_deflate_decompress_ex`.
pub(super) struct RawInflater(NonNull<libdeflate_sys::libdeflate_decompressor>);

impl RawInflater {
    pub(super) fn new() -> Option<RawInflater> {
        // SAFETY: allocation with no preconditions; NULL is handled.
        NonNull::new(unsafe { libdeflate_sys::libdeflate_alloc_decompressor() }).map(RawInflater)
    }

    /// Raw-inflates `input` (a whole stream) into `out`: the bytes of
    /// input consumed and of output written; on an error, `Err(true)` if
    /// `out` was too small, `Err(false)` for any other.
    pub(super) fn inflate(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), bool> {
        let (mut used, mut wrote) = (0usize, 0usize);
        // SAFETY: the pointers and lengths come from live slices (input
        // read-only, out exclusively borrowed); libdeflate reads at most
        // `input.len()` and writes at most `out.len()` bytes, and keeps no
        // pointer after returning. The decompressor is ours alone.
        let r = unsafe {
            libdeflate_sys::libdeflate_deflate_decompress_ex(
                self.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut used,
                &mut wrote,
            )
        };
        if r == libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS && wrote <= out.len() {
            Ok((used, wrote))
        } else {
            Err(r == libdeflate_sys::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE)
        }
    }
}

impl Drop for RawInflater {
    fn drop(&mut self) {
        // SAFETY: frees the decompressor we allocated, once.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.0.as_ptr()) };
    }
}
