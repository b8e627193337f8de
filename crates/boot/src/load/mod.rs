//! Loading one boot module exactly as mboot does (`mboot/load.c:load_module`,
//! `extract_cksum_module`, `bootlib/gzip.c:gzip_extract`; docs/bootloader.md, Modules),
//! keeping the bytes (or the first as many as asked for), fast.
//!
//! ```text
//!   file ──► MD5 (compressed) ──────────────────────────────────────────┐  helper thread
//!     │                                                                  │
//!     ├─ not 1F 8B ─► accepted uncompressed + 2 warnings                 │
//!     ├─ header_len ─► ERR_BAD_HEADER / ERR_UNSUPPORTED                  │
//!     ├─ CRC32, ISIZE = last 8 bytes; size == header + 8 ─► ERR_INCONSISTENT_DATA
//!     ├─ ISIZE 0 ─► empty module (payload <= 256) / "likely corrupt"     │
//!     ├─ ISIZE > budget left ─► ERR_OUT_OF_RESOURCES (nothing allocated) │
//!     └─ ISIZE-byte buffer ◄── raw inflate(payload + 1 byte) ──► CRC32 ──► CRC check
//!        (or reused pieces,           └─ pieces ──► MD5 (uncompressed)  helper thread
//!         when not kept)
//! ```
//!
//! What it promises:
//! - **mboot's outcome, always.** The result (success, form, size, CRC, or
//!   which error) is the one mboot's zlib reaches, for every backend. Only a
//!   success whose CRC32 matches the trailer is taken from a fast backend;
//!   anything else (an inflate error, a CRC mismatch) is decided again by the
//!   reference, zlib-rs streaming with zlib's exact rules, so the errors are
//!   those of [`crate::gzip::check_module`] (zlib-rs's wording of corrupt
//!   data aside, which depends on how output is split between calls and which
//!   mboot never prints). The one theoretical gap: libdeflate and miniz_oxide
//!   accept a few streams zlib rejects (more than 286 literal/length or 30
//!   distance codes, lone incomplete codes, symbols 286/287 and distance codes
//!   30/31), and libdeflate's segments could in principle be cut at a false
//!   sync-flush point that passes every check below; either way the result is
//!   taken as sound only if the bytes also match the trailer CRC32, which a
//!   corrupted module does with probability 2^-32 and only a crafted one does
//!   on purpose. Use [`Backend::Zlibrs`] to rule even that out.
//! - **No allocation beyond the budget, no commit beyond the data.** The
//!   [`LoadOptions::memory_budget`] check comes before any allocation. The
//!   ISIZE buffer of a large module is an anonymous mapping reserved lazily
//!   (`MAP_NORESERVE`): a 1 KiB file claiming 4 GiB reaches mboot's outcome
//!   (buffer too small, or success with the shorter output) while committing
//!   only the pages written, plus a prefault window bounded by 16 times the
//!   compressed size. The mapping is cut to the produced size afterwards.
//! - **Identical reports, whatever the backend, threading or bytes kept.**
//!   The MD5s are computed off the critical path (the compressed one on a
//!   helper thread while inflating, the uncompressed one on another, fed
//!   pieces of output as they become final), but they are the plain MD5s of
//!   the same bytes; keeping fewer bytes ([`LoadOptions::keep`]) changes
//!   nothing but [`LoadedModule::data`].
//!
//! How it is fast (s.v00-like modules, 2 cores): libdeflate inflates a
//! stream that has byte-aligned sync-flush points (`00 00 FF FF`, as
//! visorsim's own modules and pigz-style files have) segment by segment,
//! so its output streams to the MD5 thread and its CRC32 runs on
//! cache-warm data; without the MD5s, a second lane inflates every other
//! segment on the other core. A stream without such points is inflated in
//! one call. zlib-rs streams in 1 MiB steps; miniz_oxide inflates in one
//! call. Where the output goes:
//! - **not kept** ([`LoadOptions::keep`], as a boot does: it needs only
//!   what the kernel check reads): through a few reused 4 MiB
//!   transparent-huge-page pieces, one pool per worker, each given back
//!   once hashed. Fresh memory is what a load of this size pays for most
//!   otherwise: a page fault per page, and on a virtual machine whose host
//!   takes back the memory the guest frees (free page reporting), a host
//!   fault too; measured on this project's 2-vCPU VM, populating 400 MB
//!   of fresh huge pages took 0.4 to 1.0 s in a new process, against 18 ms
//!   for memory the process had used before.
//! - **kept**: the ISIZE buffer, a transparent-huge-page mapping populated
//!   ahead of the inflater by a helper (`MADV_POPULATE_WRITE`), so the
//!   inflater takes no page faults itself.
//!
//! With both MD5s, [`load_modules`] schedules the longest serial chain
//! first and ahead of the rest: the largest module's uncompressed MD5 and
//! its inflater run at the caller's priority, its file's MD5 one step
//! lower, the other modules' workers two steps lower (see `schedule.rs`),
//! so the chain never waits for a core and the other modules fill the
//! cores around it; without the MD5s all modules load alike.
//!
//! Where it lives:
//!
//! ```text
//!   mod.rs       the API: options, backends, the loaded module, load_module / load_modules
//!   schedule.rs  one module as mboot loads it (framing, budget, MD5 helper) and many in parallel, chain first
//!   buffer.rs    the ISIZE output buffer (heap, or a lazily committed THP mapping, prefaulted ahead) and the piece pool
//!   backend.rs   one checked inflate run: zlib-rs (the reference), miniz_oxide, libdeflate; whole or in pieces; CRC32 and MD5 sinks
//!   lanes.rs     libdeflate segment by segment between sync-flush points, with a second lane
//!   sys.rs       the only unsafe code: the mapping, one libdeflate call, thread priority, each with its SAFETY note
//! ```
//!
//! The gzip header, the trailer, the rules between them and [`LoadError`]
//! are [`crate::gzip`]'s, shared with [`crate::gzip::check_module`].
//!
//! The only `unsafe` code is the small `sys` module (the mapping, one
//! libdeflate call, lowering a thread's priority), each block with its
//! SAFETY note.

use md5::{Digest, Md5};
use serde::Serialize;

use crate::gzip::ModuleForm;

mod backend;
mod buffer;
mod lanes;
mod schedule;
// The crate denies unsafe code; this module is the one exception.
#[allow(unsafe_code)]
mod sys;
#[cfg(test)]
mod testutil;

pub use buffer::ModuleBuffer;

/// Default [`LoadOptions::memory_budget`]: 4 GiB, the host's RAM when
/// nothing else is said (`--ram`, a scenario's `disk.ram`). ESXi 6.7 and
/// 7.0 require at least 4 GB of RAM; mboot loads the modules into that
/// memory, less what the firmware and the loader keep, which visorsim
/// does not model.
pub const DEFAULT_MEMORY_BUDGET: u64 = 4 << 30;

// Size thresholds are much smaller under test, so that small inputs take
// every path (mapping, helper threads, segments).

/// Work on at least this many bytes goes to a helper thread; less is done inline.
const THREAD_MIN: usize = if cfg!(test) { 8 << 10 } else { 1 << 20 };

/// Which inflate implementation does the bulk work. All give the same results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// libdeflate (the `libdeflater` crate): whole-buffer inflate, the fastest.
    #[default]
    Libdeflate,
    /// zlib-rs through flate2 (SIMD paths picked at run time): streaming, and
    /// zlib's exact rules; also the reference every backend falls back on.
    Zlibrs,
    /// miniz_oxide: whole-buffer inflate, the slowest.
    Miniz,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 3] = [Backend::Libdeflate, Backend::Zlibrs, Backend::Miniz];

    /// A short name: `libdeflate`, `zlib-rs`, `miniz`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Libdeflate => "libdeflate",
            Backend::Zlibrs => "zlib-rs",
            Backend::Miniz => "miniz",
        }
    }
}

/// How to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LoadOptions {
    /// Inflate implementation.
    pub backend: Backend,
    /// Bytes of memory the loader may hold. The compressed file plus an ISIZE
    /// above what is left gives [`LoadError::OutOfResources`] without
    /// allocating, as mboot's failed `malloc(ISIZE)` does. [`load_modules`]
    /// charges each module for what the modules before it keep.
    pub memory_budget: u64,
    /// Compute both MD5s, as mboot always does. When false they are left zero
    /// (except for an uncompressed module, whose warning names its MD5).
    pub md5: bool,
    /// Bytes of each module's output kept in [`LoadedModule::data`]: its
    /// first `keep` bytes (all of them by default, `usize::MAX`). The
    /// outcome, size, CRC32 and MD5s are the same whatever is kept; output
    /// beyond `keep` is checked and hashed as it streams through a few
    /// reused buffers and never held (a boot keeps only what the kernel
    /// check reads). The budget is charged for the whole ISIZE either way,
    /// as mboot allocates it.
    #[serde(skip)]
    pub keep: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { backend: Backend::default(), memory_budget: DEFAULT_MEMORY_BUDGET, md5: true, keep: usize::MAX }
    }
}

pub use crate::gzip::LoadError;

/// A module as mboot holds it after `load_module`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedModule {
    /// How it loaded.
    pub form: ModuleForm,
    /// The uncompressed bytes: exactly what inflate produced (the file itself
    /// when uncompressed, nothing when empty), or its first
    /// [`LoadOptions::keep`] bytes.
    pub data: ModuleBuffer,
    /// File size.
    pub compressed_size: u64,
    /// Module size (`data.len()` when all of it is kept).
    pub size: u64,
    /// The CRC32 checked against the trailer (gzip modules only).
    pub crc32: Option<u32>,
    /// MD5 of the file (zero when [`LoadOptions::md5`] is false).
    pub md5_compressed: [u8; 16],
    /// MD5 of `data` (zero when [`LoadOptions::md5`] is false). For an
    /// uncompressed module this equals `md5_compressed`; mboot leaves its own
    /// field unset there.
    pub md5: [u8; 16],
    /// The warnings mboot logs, in its words.
    pub warnings: Vec<String>,
}

impl LoadedModule {
    /// The module's bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// An MD5 as mboot prints it: 32 lowercase hex digits.
pub fn md5_hex(md5: &[u8; 16]) -> String {
    md5.iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads one module the way mboot does, with the whole
/// [`LoadOptions::memory_budget`] available. `path` is only used in warnings.
///
/// # Errors
/// mboot's fatal errors; see [`LoadError`].
pub fn load_module(path: &str, file: &[u8], opts: &LoadOptions) -> Result<LoadedModule, LoadError> {
    schedule::load_within(path, file, opts, opts.memory_budget, &buffer::Pool::new(), false)
}

/// Loads several modules in parallel (at most `available_parallelism`
/// threads, the largest files first) and returns the results in input
/// order, as sequential mboot would: it stops at the first failure, so the
/// result list ends with the first failure in list order (modules after it
/// are not reported, and are skipped once it is known). Each module's budget
/// is what [`LoadOptions::memory_budget`] leaves after the modules before it
/// (gzip: ISIZE; uncompressed: the file; empty: nothing).
pub fn load_modules(files: &[(&str, &[u8])], opts: &LoadOptions) -> Vec<Result<LoadedModule, LoadError>> {
    schedule::load_modules(files, opts)
}

/// What mboot's memory budget sees of one module file, for callers that
/// charge the same file more than once (a module listed twice in boot.cfg
/// is loaded twice by mboot, into two buffers) without loading it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Charge {
    /// The ISIZE mboot allocates, when the module gets that far (a gzip
    /// module whose framing is sound and which is not empty): it fails
    /// with [`LoadError::OutOfResources`] when this is more than what is
    /// left minus the file itself.
    pub checked: Option<u64>,
    /// The file's size.
    pub file: u64,
    /// What the module keeps once loaded (ISIZE; the file when
    /// uncompressed; nothing when empty or failed).
    pub kept: u64,
}

impl Charge {
    /// mboot's check for this module with `left` bytes of the budget left:
    /// `Err(OutOfResources)` exactly when [`load_module`] with that budget
    /// would fail it before inflating.
    pub fn check(&self, left: u64) -> Result<(), LoadError> {
        match self.checked {
            Some(isize) if isize > left.saturating_sub(self.file) => Err(LoadError::OutOfResources { bytes: isize }),
            _ => Ok(()),
        }
    }
}

/// The [`Charge`] of a module file (its header and trailer only).
pub fn charge(file: &[u8]) -> Charge {
    schedule::charge(file)
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

#[cfg(test)]
thread_local! {
    /// The inflate paths taken on this thread, for tests.
    static PATHS: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Records an inflate path (tests only).
fn note(_path: &'static str) {
    #[cfg(test)]
    PATHS.with(|p| p.borrow_mut().push(_path));
}
