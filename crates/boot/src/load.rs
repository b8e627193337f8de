//! Loading one boot module exactly as mboot does (`mboot/load.c:load_module`,
//! `extract_cksum_module`, `bootlib/gzip.c:gzip_extract`; ESXI-BOOT.md 6.1–6.3),
//! keeping the bytes, fast.
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
//!                                       └─ pieces ──► MD5 (uncompressed)  helper thread
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
//! - **Identical reports, whatever the backend or threading.** The MD5s are
//!   computed off the critical path (the compressed one on a helper thread
//!   while inflating, the uncompressed one on another, fed pieces of output as
//!   they become final), but they are the plain MD5s of the same bytes.
//!
//! How it is fast (s.v00-like modules, 2 cores): the output buffer is a
//! transparent-huge-page mapping populated ahead of the inflater by a helper
//! (`MADV_POPULATE_WRITE`), so the inflater takes no page faults. libdeflate
//! inflates a stream that has byte-aligned sync-flush points (`00 00 FF FF`,
//! as visorsim's own modules and pigz-style files have) segment by segment,
//! so its output streams to the MD5 thread and its CRC32 runs on cache-warm
//! data; without the MD5s, a second lane inflates every other segment on the
//! other core. A stream without such points is inflated in one call. zlib-rs
//! streams in 1 MiB steps; miniz_oxide inflates in one call.
//!
//! The only `unsafe` code is the small `sys` module (the mapping and one
//! libdeflate call), each block with its SAFETY note.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use flate2::{Decompress, FlushDecompress, Status};
use md5::{Digest, Md5};
use serde::Serialize;

use crate::gzip::{self, GzipError, ModuleForm};
use crate::status::{self, EsxStatus};

/// Default [`LoadOptions::memory_budget`]: 2 GiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 2 << 30;

/// The detail of ERR_INCONSISTENT_DATA for a file of exactly header + trailer
/// (the same words as [`gzip::check_module`]).
const NO_PAYLOAD: &str = "no deflate data between header and trailer";

/// ISIZE 0 with a payload of at most this many bytes is an empty module.
const EMPTY_MODULE_SLACK: usize = 256;

// Size thresholds are much smaller under test, so that small inputs take
// every path (mapping, helper threads, segments).

/// Outputs at least this large live in a [`sys::Region`]; smaller ones on the heap.
const MAPPED_MIN: usize = if cfg!(test) { 16 << 10 } else { 1 << 20 };

/// Work on at least this many bytes goes to a helper thread; less is done inline.
const THREAD_MIN: usize = if cfg!(test) { 8 << 10 } else { 1 << 20 };

/// Pages are prefaulted up to this many times the compressed input (plus
/// [`PREFAULT_SLACK`]); beyond, the inflater faults them in itself.
const PREFAULT_RATIO: usize = 16;
/// See [`PREFAULT_RATIO`].
const PREFAULT_SLACK: usize = 4 << 20;
/// The prefault helper works in steps of this many bytes.
const PREFAULT_STEP: usize = if cfg!(test) { 64 << 10 } else { 16 << 20 };

/// Output bytes per call of a streaming inflater.
const STREAM_STEP: usize = if cfg!(test) { 4 << 10 } else { 1 << 20 };

/// A byte-aligned sync-flush point ends with an empty stored block's LEN/NLEN.
const SYNC_MARK: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];
/// A final fixed-Huffman block holding only end-of-block: appended to a
/// segment so that libdeflate, which inflates whole streams only, ends there.
const FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];
/// A segment spans at least this many compressed bytes.
const MIN_SEGMENT: usize = if cfg!(test) { 1 << 10 } else { 1 << 20 };
/// How many sync-flush candidates a segment may try to end at before the
/// rest of the stream goes to zlib-rs.
const SEGMENT_TRIES: usize = 3;
/// The deflate window.
const WINDOW: usize = 32 << 10;

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
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { backend: Backend::default(), memory_budget: DEFAULT_MEMORY_BUDGET, md5: true }
    }
}

/// Why a module fails to load: mboot's fatal errors, with esx-boot's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum LoadError {
    /// ERR_BAD_HEADER: short file, reserved flag bits, or optional fields that do not fit.
    #[error("Bad gzip header: {detail}")]
    BadHeader {
        /// What is wrong.
        detail: String,
    },
    /// ERR_UNSUPPORTED: compression method other than deflate.
    #[error("Unsupported compression method {method}")]
    Unsupported {
        /// The CM byte.
        method: u8,
    },
    /// ERR_INCONSISTENT_DATA: corrupt deflate data, or no payload at all.
    #[error("Inconsistent data: {detail}")]
    InconsistentData {
        /// What is wrong (zlib's message for corrupt data).
        detail: String,
    },
    /// ERR_BUFFER_TOO_SMALL: the stream does not end within ISIZE bytes (or the input is truncated).
    #[error("Buffer too small: the deflate stream does not end within ISIZE = {isize} bytes")]
    BufferTooSmall {
        /// The trailer's ISIZE.
        isize: u32,
    },
    /// ERR_CRC_ERROR: the produced bytes do not have the trailer's CRC32.
    #[error("CRC error during decompression. Received CRC ({received:#x}) != calculated CRC ({calculated:#x})")]
    CrcError {
        /// CRC32 from the trailer.
        received: u32,
        /// CRC32 of the produced bytes.
        calculated: u32,
    },
    /// ERR_CRC_ERROR after "Module content is likely corrupt." (ISIZE 0, payload over 256 bytes).
    #[error("Module content is likely corrupt.")]
    LikelyCorrupt,
    /// ERR_OUT_OF_RESOURCES: the ISIZE buffer does not fit in the memory left.
    #[error("Out of resources for decompressing data({bytes})")]
    OutOfResources {
        /// The allocation that failed (ISIZE).
        bytes: u64,
    },
    /// ERR_DEVICE_ERROR: the file could not be read (`file_load` failed;
    /// never returned by this module's loaders, which take bytes).
    #[error("Could not read the module: {0}")]
    Read(String),
}

impl LoadError {
    /// esx-boot's status for this error, as "Fatal error: `<code> (<text>)`" shows it.
    pub fn status(&self) -> EsxStatus {
        match self {
            LoadError::BadHeader { .. } => status::BAD_HEADER,
            LoadError::Unsupported { .. } => status::UNSUPPORTED,
            LoadError::InconsistentData { .. } => status::INCONSISTENT_DATA,
            LoadError::BufferTooSmall { .. } => status::BUFFER_TOO_SMALL,
            LoadError::CrcError { .. } | LoadError::LikelyCorrupt => status::CRC_ERROR,
            LoadError::OutOfResources { .. } => status::OUT_OF_RESOURCES,
            LoadError::Read(_) => status::DEVICE_ERROR,
        }
    }

    /// esx-boot's name for the status, e.g. `ERR_BAD_HEADER`.
    pub fn name(&self) -> &'static str {
        match self {
            LoadError::BadHeader { .. } => "ERR_BAD_HEADER",
            LoadError::Unsupported { .. } => "ERR_UNSUPPORTED",
            LoadError::InconsistentData { .. } => "ERR_INCONSISTENT_DATA",
            LoadError::BufferTooSmall { .. } => "ERR_BUFFER_TOO_SMALL",
            LoadError::CrcError { .. } | LoadError::LikelyCorrupt => "ERR_CRC_ERROR",
            LoadError::OutOfResources { .. } => "ERR_OUT_OF_RESOURCES",
            LoadError::Read(_) => "ERR_DEVICE_ERROR",
        }
    }

    /// The lines mboot logs for this failure of the module at `path`, before
    /// "Fatal error": the error's own line, then
    /// "Error `<code> (<text>)` while loading module: `<path>`". (mboot then
    /// logs both MD5s, which the error does not carry.)
    pub fn log_lines(&self, path: &str) -> Vec<String> {
        let status = self.status();
        let mut lines = match self {
            // `is_gzip` fails: load_module reports it directly.
            LoadError::BadHeader { .. } | LoadError::Unsupported { .. } => Vec::new(),
            LoadError::InconsistentData { detail } if detail == NO_PAYLOAD => {
                vec![format!("Error {} ({}) reading original filesize or received crc", status.code, status.text)]
            }
            LoadError::InconsistentData { .. } | LoadError::BufferTooSmall { .. } => {
                vec![format!("Error {} ({}) while decompressing data", status.code, status.text)]
            }
            LoadError::Read(e) => vec![format!("Could not read {path}: {e}")],
            LoadError::CrcError { .. } | LoadError::LikelyCorrupt | LoadError::OutOfResources { .. } => {
                vec![self.to_string()]
            }
        };
        lines.push(format!("Error {} ({}) while loading module: {path}", status.code, status.text));
        lines
    }
}

impl From<GzipError> for LoadError {
    fn from(e: GzipError) -> Self {
        match e {
            GzipError::BadHeader(detail) => LoadError::BadHeader { detail },
            GzipError::Unsupported(method) => LoadError::Unsupported { method },
            GzipError::InconsistentData(detail) => LoadError::InconsistentData { detail },
            GzipError::BufferTooSmall { isize } => LoadError::BufferTooSmall { isize },
            GzipError::Crc { expected, actual } => LoadError::CrcError { received: expected, calculated: actual },
            GzipError::LikelyCorrupt => LoadError::LikelyCorrupt,
        }
    }
}

/// The bytes of a loaded module: exactly the module's size, on the heap or
/// in an anonymous mapping (large outputs). Dereferences to `[u8]`.
pub struct ModuleBuffer(Repr);

enum Repr {
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

/// A module as mboot holds it after `load_module`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedModule {
    /// How it loaded.
    pub form: ModuleForm,
    /// The uncompressed bytes: exactly what inflate produced (the file itself
    /// when uncompressed, nothing when empty).
    pub data: ModuleBuffer,
    /// File size.
    pub compressed_size: u64,
    /// Module size (`data.len()`).
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
    load_within(path, file, opts, opts.memory_budget)
}

/// Loads several modules in parallel (at most `available_parallelism`
/// threads, the largest files first) and returns the results in input
/// order, as sequential mboot would: it stops at the first failure, so the
/// result list ends with the first failure in list order (modules after it
/// are not reported, and are skipped once it is known). Each module's budget
/// is what [`LoadOptions::memory_budget`] leaves after the modules before it
/// (gzip: ISIZE; uncompressed: the file; empty: nothing).
pub fn load_modules(files: &[(&str, &[u8])], opts: &LoadOptions) -> Vec<Result<LoadedModule, LoadError>> {
    let n = files.len();
    let mut budgets = Vec::with_capacity(n);
    let mut held = 0u64;
    for (_, file) in files {
        budgets.push(opts.memory_budget.saturating_sub(held));
        held = held.saturating_add(kept_after_load(file));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(files[i].1.len()));
    let workers = thread::available_parallelism().map_or(1, |p| p.get()).min(n).max(1);
    let next = AtomicUsize::new(0);
    let first_failure = AtomicUsize::new(usize::MAX);

    let work = || {
        let mut done = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = order.get(k) else { break };
            if i > first_failure.load(Ordering::Relaxed) {
                continue;
            }
            let (path, file) = files[i];
            let result = load_within(path, file, opts, budgets[i]);
            if result.is_err() {
                first_failure.fetch_min(i, Ordering::Relaxed);
            }
            done.push((i, result));
        }
        done
    };
    let mut slots: Vec<Option<Result<LoadedModule, LoadError>>> = (0..n).map(|_| None).collect();
    thread::scope(|s| {
        let handles: Vec<_> = (1..workers).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for h in handles {
            all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        for (i, r) in all {
            slots[i] = Some(r);
        }
    });
    let end = first_failure.into_inner().saturating_add(1).min(n);
    slots.truncate(end);
    slots.into_iter().map(|r| r.expect("every module up to the first failure was loaded")).collect()
}

/// Memory a module keeps once loaded: mboot's `malloc(ISIZE)` for gzip, the
/// file buffer for an uncompressed module, nothing for an empty one.
fn kept_after_load(file: &[u8]) -> u64 {
    match gzip::header_len(file) {
        Ok(None) => file.len() as u64,
        Ok(Some(_)) if file.len() >= 8 => {
            u64::from(u32::from_le_bytes(file[file.len() - 4..].try_into().expect("4 bytes")))
        }
        _ => 0,
    }
}

/// [`load_module`] with `budget` bytes left.
fn load_within(path: &str, file: &[u8], opts: &LoadOptions, budget: u64) -> Result<LoadedModule, LoadError> {
    let header = match gzip::header_len(file)? {
        Some(h) => h,
        None => return Ok(uncompressed(path, file)),
    };
    // `header_len` guarantees at least 10 bytes, so the trailer is there.
    let n = file.len();
    let word = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().expect("4 bytes"));
    let (received, isize) = (word(n - 8), word(n - 4));
    // Computed unsigned, as mboot does: a file shorter than header + 8
    // wraps around to a huge payload (and fails later).
    let payload_len = n.wrapping_sub(8).wrapping_sub(header);
    if payload_len == 0 {
        return Err(LoadError::InconsistentData { detail: NO_PAYLOAD.into() });
    }
    if isize == 0 {
        if payload_len > EMPTY_MODULE_SLACK {
            return Err(LoadError::LikelyCorrupt);
        }
        let md5 = if opts.md5 { md5_of(&[]) } else { [0; 16] };
        return Ok(LoadedModule {
            form: ModuleForm::Empty,
            data: ModuleBuffer(Repr::Heap(Vec::new())),
            compressed_size: n as u64,
            size: 0,
            crc32: None,
            md5_compressed: if opts.md5 { md5_of(file) } else { [0; 16] },
            md5,
            warnings: Vec::new(),
        });
    }
    // mboot holds the compressed file while it allocates ISIZE bytes.
    if u64::from(isize) > budget.saturating_sub(n as u64) {
        return Err(LoadError::OutOfResources { bytes: u64::from(isize) });
    }
    // Raw inflate over the payload plus one byte (zlib's "dummy" byte).
    let end = header.saturating_add(payload_len).saturating_add(1).min(n);
    let input = &file[header.min(end)..end];

    thread::scope(|s| {
        let md5c = (opts.md5 && n >= THREAD_MIN).then(|| s.spawn(|| md5_of(file)));
        let inflated = inflate_checked(input, isize, received, opts);
        let md5_compressed = match md5c {
            Some(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            None if opts.md5 => md5_of(file),
            None => [0; 16],
        };
        let (data, crc, md5) = inflated?;
        Ok(LoadedModule {
            form: ModuleForm::Gzip,
            size: data.len() as u64,
            data,
            compressed_size: n as u64,
            crc32: Some(crc),
            md5_compressed,
            md5: md5.unwrap_or([0; 16]),
            warnings: Vec::new(),
        })
    })
}

/// Not gzip: accepted as is, with mboot's two warnings (PR 2273023).
fn uncompressed(path: &str, file: &[u8]) -> LoadedModule {
    // The warning names the MD5, so it is computed even when not asked for.
    let md5 = md5_of(file);
    LoadedModule {
        form: ModuleForm::Uncompressed,
        data: ModuleBuffer(Repr::Heap(file.to_vec())),
        compressed_size: file.len() as u64,
        size: file.len() as u64,
        crc32: None,
        md5_compressed: md5,
        md5,
        warnings: vec![
            format!("Warning: uncompressed module {path}"),
            format!("MD5: {}, size {}", md5_hex(&md5), file.len()),
        ],
    }
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

/// What one inflate run produced.
struct Inflated {
    produced: usize,
    crc: u32,
    md5: Option<[u8; 16]>,
}

/// Inflates into a fresh ISIZE buffer and checks the CRC, falling back on the
/// zlib-rs reference for anything but a CRC-clean success.
fn inflate_checked(
    input: &[u8],
    isize: u32,
    received: u32,
    opts: &LoadOptions,
) -> Result<(ModuleBuffer, u32, Option<[u8; 16]>), LoadError> {
    let len = isize as usize;
    let mut out = if len >= MAPPED_MIN {
        match sys::Region::reserve(len) {
            Some(r) => Repr::Mapped(r),
            // mboot's malloc failing.
            None => return Err(LoadError::OutOfResources { bytes: u64::from(isize) }),
        }
    } else {
        Repr::Heap(vec![0; len])
    };
    let first = run(opts.backend, input, &mut out, isize, opts.md5);
    let done = match first {
        Ok(d) if d.crc == received => d,
        Ok(d) if opts.backend == Backend::Zlibrs => {
            return Err(LoadError::CrcError { received, calculated: d.crc });
        }
        Err(e) if opts.backend == Backend::Zlibrs => return Err(e),
        // Decide again with zlib's rules (this also yields the exact error).
        _ => {
            note("reference");
            let d = run(Backend::Zlibrs, input, &mut out, isize, opts.md5)?;
            if d.crc != received {
                return Err(LoadError::CrcError { received, calculated: d.crc });
            }
            d
        }
    };
    let data = match out {
        Repr::Heap(mut v) => {
            v.truncate(done.produced);
            ModuleBuffer(Repr::Heap(v))
        }
        Repr::Mapped(mut r) => {
            r.truncate(done.produced);
            ModuleBuffer(Repr::Mapped(r))
        }
    };
    Ok((data, done.crc, done.md5))
}

/// Where output pieces go once final: CRC32 here, MD5 here or on a thread.
struct Sink<'o> {
    crc: crc32fast::Hasher,
    md5: Md5Sink<'o>,
    produced: usize,
    /// The last [`WINDOW`] bytes of output, kept only when asked for.
    window: Option<Vec<u8>>,
}

enum Md5Sink<'o> {
    Off,
    Inline(Md5),
    Thread(mpsc::Sender<&'o [u8]>),
}

impl<'o> Sink<'o> {
    fn emit(&mut self, piece: &'o [u8]) {
        self.produced += piece.len();
        self.crc.update(piece);
        match &mut self.md5 {
            Md5Sink::Off => {}
            Md5Sink::Inline(h) => h.update(piece),
            Md5Sink::Thread(tx) => {
                // The receiver lives until the sender is dropped.
                let _ = tx.send(piece);
            }
        }
        if let Some(w) = &mut self.window {
            let tail = &piece[piece.len().saturating_sub(WINDOW)..];
            let keep = WINDOW - tail.len();
            let cut = w.len().saturating_sub(keep);
            w.drain(..cut);
            w.extend_from_slice(tail);
        }
    }
}

/// One inflate run of `engine` into `out`, hashing as it goes.
fn run(engine: Backend, input: &[u8], out: &mut Repr, isize: u32, md5: bool) -> Result<Inflated, LoadError> {
    let (slice, prefault): (&mut [u8], Option<sys::Prefault<'_>>) = match out {
        Repr::Heap(v) => (v.as_mut_slice(), None),
        Repr::Mapped(r) => {
            let (s, p) = r.split_prefault();
            (s, Some(p))
        }
    };
    let len = slice.len();
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        if let Some(p) = prefault {
            let bound = len.min(input.len().saturating_mul(PREFAULT_RATIO).saturating_add(PREFAULT_SLACK));
            let stop = &stop;
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
        let mut md5_thread = None;
        let md5_sink = if !md5 {
            Md5Sink::Off
        } else if len >= THREAD_MIN {
            let (tx, rx) = mpsc::channel::<&[u8]>();
            md5_thread = Some(s.spawn(move || {
                let mut h = Md5::new();
                for piece in rx {
                    h.update(piece);
                }
                <[u8; 16]>::from(h.finalize())
            }));
            Md5Sink::Thread(tx)
        } else {
            Md5Sink::Inline(Md5::new())
        };
        // Two libdeflate lanes pay off when nothing else wants the second
        // core; with the MD5 thread busy, the work is CPU-bound either way.
        let parallel = !matches!(md5_sink, Md5Sink::Thread(_));
        let mut sink = Sink { crc: crc32fast::Hasher::new(), md5: md5_sink, produced: 0, window: None };
        let result = match engine {
            Backend::Libdeflate => inflate_libdeflate(input, slice, isize, &mut sink, parallel),
            Backend::Zlibrs => inflate_zlib(input, slice, isize, &[], &mut sink),
            Backend::Miniz => inflate_miniz(input, slice, &mut sink),
        };
        stop.store(true, Ordering::Relaxed);
        let Sink { crc, md5: md5_sink, produced, .. } = sink;
        let md5 = match md5_sink {
            Md5Sink::Off => None,
            Md5Sink::Inline(h) => Some(h.finalize().into()),
            Md5Sink::Thread(tx) => {
                drop(tx);
                md5_thread.map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            }
        };
        result.map(|()| Inflated { produced, crc: crc.finalize(), md5 })
    })
}

/// zlib-rs, streaming: zlib's exact rules (the same decisions as
/// [`gzip::check_module`]). `dict` primes the window when resuming at a block
/// boundary.
fn inflate_zlib<'o>(
    input: &[u8],
    out: &'o mut [u8],
    isize: u32,
    dict: &[u8],
    sink: &mut Sink<'o>,
) -> Result<(), LoadError> {
    let mut z = Decompress::new(false);
    if !dict.is_empty() {
        z.set_dictionary(dict).map_err(|e| LoadError::InconsistentData { detail: e.to_string() })?;
    }
    let mut rest = out;
    loop {
        let room = rest.len().min(STREAM_STEP);
        let in_before = z.total_in();
        let out_before = z.total_out();
        let at = usize::try_from(in_before).unwrap_or(input.len()).min(input.len());
        let status = z
            .decompress(&input[at..], &mut rest[..room], FlushDecompress::Finish)
            .map_err(|e| LoadError::InconsistentData { detail: e.to_string() })?;
        let wrote = usize::try_from(z.total_out() - out_before).unwrap_or(room).min(room);
        let (done, tail) = std::mem::take(&mut rest).split_at_mut(wrote);
        rest = tail;
        sink.emit(done);
        match status {
            Status::StreamEnd => return Ok(()),
            // Output full before the end of the stream.
            _ if rest.is_empty() => return Err(LoadError::BufferTooSmall { isize }),
            // No progress: the input ended before the stream did.
            _ if wrote == 0 && z.total_in() == in_before => return Err(LoadError::BufferTooSmall { isize }),
            _ => {}
        }
    }
}

/// An engine failure of a fast backend; the reference decides what it means.
fn not_decided() -> LoadError {
    LoadError::InconsistentData { detail: "not decided by the fast backend".into() }
}

/// miniz_oxide, in one call over the whole output buffer (so back-references
/// before the start are refused, as zlib does).
fn inflate_miniz<'o>(input: &[u8], out: &'o mut [u8], sink: &mut Sink<'o>) -> Result<(), LoadError> {
    use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
    use miniz_oxide::inflate::TINFLStatus;
    let mut state = Box::<DecompressorOxide>::default();
    let (status, _, produced) =
        decompress(&mut state, input, out, 0, inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF);
    if status != TINFLStatus::Done {
        return Err(not_decided());
    }
    let (done, _) = out.split_at_mut(produced.min(out.len()));
    sink.emit(done);
    Ok(())
}

/// The byte-aligned sync-flush points of `input` that can end a segment:
/// just after an `00 00 FF FF`, at least [`MIN_SEGMENT`] apart, and not at
/// the very end.
fn sync_points(input: &[u8]) -> Vec<usize> {
    let finder = memchr::memmem::Finder::new(&SYNC_MARK);
    let mut points = Vec::new();
    let mut from = 0usize;
    while let Some(start) = from.checked_add(MIN_SEGMENT).filter(|&s| s < input.len()) {
        let Some(hit) = finder.find(&input[start..]) else { break };
        let point = start + hit + SYNC_MARK.len();
        if point + 1 >= input.len() {
            break;
        }
        points.push(point);
        from = point;
    }
    points
}

/// A helper's inflate of one segment into its own buffer: the buffer and
/// the bytes written, or `None` if libdeflate could not do it alone.
type Lane = (usize, Option<(Vec<u8>, usize)>);

/// libdeflate. A stream with byte-aligned sync-flush points (`00 00 FF FF`)
/// is inflated segment by segment: each segment, with an empty final block
/// appended, must be inflated by libdeflate alone and consume exactly all of
/// it. Then it starts and ends at block boundaries and reaches back into no
/// earlier segment, so its output is what zlib makes of those bytes (unless
/// a false `00 00 FF FF` inside compressed data also ends cleanly with the
/// appended block; the caller's CRC32 check stands behind that). Output
/// then streams to the sink. With `parallel`, a helper inflates every other
/// segment into a buffer of its own while this thread inflates the others in
/// place and copies the helper's in, in order (or inflates one itself if the
/// helper has not started it yet, so a starved helper costs little). A segment that fails alone is
/// tried again ending at the next points (a false `00 00 FF FF` inside the
/// data); if that fails too, zlib-rs takes over at this block boundary,
/// primed with the last 32 KiB of output. Without sync-flush points: one call.
fn inflate_libdeflate<'o>(
    input: &[u8],
    out: &'o mut [u8],
    isize: u32,
    sink: &mut Sink<'o>,
    parallel: bool,
) -> Result<(), LoadError> {
    let points = sync_points(input);
    let raw = if points.is_empty() { None } else { sys::RawInflater::new() };
    let Some(mut raw) = raw else {
        note("one call");
        let wrote = libdeflater::Decompressor::new().deflate_decompress(input, out).map_err(|_| not_decided())?;
        let (done, _) = out.split_at_mut(wrote);
        sink.emit(done);
        return Ok(());
    };
    sink.window = Some(Vec::with_capacity(WINDOW));
    let starts: Vec<usize> = std::iter::once(0).chain(points.iter().copied()).collect();
    // Segment k is input[starts[k]..points[k]]; then the tail, input[starts[n]..].
    let n = points.len();
    let helper_owns = |k: usize| parallel && n >= 2 && k < n && k % 2 == 1;

    // Who inflates each of the helper's segments: the first to set its flag.
    let claimed: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();

    thread::scope(|s| {
        let (lane_tx, lane_rx) = mpsc::sync_channel::<Lane>(1);
        let (pool_tx, pool_rx) = mpsc::channel::<Vec<u8>>();
        if parallel && n >= 2 {
            let points = &points;
            let starts = &starts;
            let claimed = &claimed;
            s.spawn(move || {
                let Some(mut raw) = sys::RawInflater::new() else { return };
                let mut scratch = Vec::new();
                for k in (1..points.len()).step_by(2) {
                    if claimed[k].swap(true, Ordering::AcqRel) {
                        // This thread got there first (the helper was late).
                        continue;
                    }
                    let mut buf = pool_rx.try_recv().unwrap_or_else(|_| vec![0; LANE_BUFFER]);
                    let seg = segment_with_end(&mut scratch, &input[starts[k]..points[k]]);
                    let result = match raw.inflate(seg, &mut buf) {
                        Some((used, wrote)) if used == seg.len() => Some((buf, wrote)),
                        _ => None,
                    };
                    if lane_tx.send((k, result)).is_err() {
                        return;
                    }
                }
            });
        } else {
            drop((lane_tx, pool_rx));
        }

        let mut rest = out;
        let mut scratch = Vec::new();
        let mut k = 0;
        while k < n {
            let at = starts[k];
            // A helper's segment it has not started yet is inflated here.
            if helper_owns(k) && claimed[k].swap(true, Ordering::AcqRel) {
                // The helper's results come in order; skip those of segments merged away.
                let mut mine = None;
                while let Ok((i, r)) = lane_rx.recv() {
                    if i == k {
                        mine = r;
                        break;
                    }
                    if let Some((buf, _)) = r {
                        let _ = pool_tx.send(buf);
                    }
                }
                if let Some((buf, wrote)) = mine {
                    if wrote <= rest.len() {
                        let (done, tail) = std::mem::take(&mut rest).split_at_mut(wrote);
                        done.copy_from_slice(&buf[..wrote]);
                        rest = tail;
                        sink.emit(done);
                        note("lane segment");
                        let _ = pool_tx.send(buf);
                        k += 1;
                        continue;
                    }
                }
            }
            // In place, ending at points[k], or at a later point if that fails.
            let mut next = None;
            for j in k..n.min(k + SEGMENT_TRIES) {
                let seg = segment_with_end(&mut scratch, &input[at..points[j]]);
                if let Some((used, wrote)) = raw.inflate(seg, rest) {
                    if used == seg.len() {
                        let (done, tail) = std::mem::take(&mut rest).split_at_mut(wrote);
                        rest = tail;
                        sink.emit(done);
                        note("segment");
                        next = Some(j + 1);
                        break;
                    }
                }
            }
            match next {
                Some(j) => k = j,
                None => {
                    // Stop the helper: its next send fails.
                    drop(lane_rx);
                    return zlib_takeover(&input[at..], rest, isize, sink);
                }
            }
        }
        // The tail ends the stream; it may reach back into the segment before.
        let at = starts[n];
        match raw.inflate(&input[at..], rest) {
            Some((_, wrote)) => {
                let (done, _) = rest.split_at_mut(wrote);
                sink.emit(done);
                note("tail");
                Ok(())
            }
            None => zlib_takeover(&input[at..], rest, isize, sink),
        }
    })
}

/// Bytes of a helper's segment buffer (touched only as far as written).
const LANE_BUFFER: usize = if cfg!(test) { 4 << 20 } else { 32 << 20 };

/// `segment` followed by [`FINAL_EMPTY_BLOCK`], in `scratch`.
fn segment_with_end<'s>(scratch: &'s mut Vec<u8>, segment: &[u8]) -> &'s [u8] {
    scratch.clear();
    scratch.extend_from_slice(segment);
    scratch.extend_from_slice(&FINAL_EMPTY_BLOCK);
    scratch
}

/// zlib-rs inflates the rest of the stream from a block boundary, primed
/// with the output so far (its last 32 KiB).
fn zlib_takeover<'o>(input: &[u8], out: &'o mut [u8], isize: u32, sink: &mut Sink<'o>) -> Result<(), LoadError> {
    note("zlib takeover");
    let window = sink.window.take().unwrap_or_default();
    inflate_zlib(input, out, isize, &window, sink)
}

/// The module's only unsafe code: an anonymous mapping for large outputs,
/// and libdeflate's `deflate_decompress_ex`.
#[allow(unsafe_code)]
mod sys {
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
            let r =
                unsafe { libc::madvise((self.addr + start) as *mut libc::c_void, end - start, MADV_POPULATE_WRITE) };
            r == 0
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
        /// input consumed and of output written, or `None` on any error.
        pub(super) fn inflate(&mut self, input: &[u8], out: &mut [u8]) -> Option<(usize, usize)> {
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
            (r == libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS && wrote <= out.len()).then_some((used, wrote))
        }
    }

    impl Drop for RawInflater {
        fn drop(&mut self) {
            // SAFETY: frees the decompressor we allocated, once.
            unsafe { libdeflate_sys::libdeflate_free_decompressor(self.0.as_ptr()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use proptest::prelude::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Content that compresses about 3:1, like system binaries.
    fn content(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if (i / 64) % 3 == 0 {
                    (x & 0xFF) as u8
                } else {
                    (i % 7) as u8 + b'a'
                }
            })
            .collect()
    }

    /// gzip of `data` in independent chunks joined by sync-flush points, as
    /// visorsim's system modules are.
    fn gz_chunked(data: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = vec![0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3];
        let pieces: Vec<&[u8]> = data.chunks(chunk).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let mut c = flate2::Compress::new(Compression::default(), false);
            let mut buf = Vec::with_capacity(piece.len() + 1024);
            let flush = if i + 1 == pieces.len() { flate2::FlushCompress::Finish } else { flate2::FlushCompress::Sync };
            c.compress_vec(piece, &mut buf, flush).unwrap();
            out.extend_from_slice(&buf);
        }
        out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    fn set_isize(f: &mut [u8], isize: u32) {
        let n = f.len();
        f[n - 4..].copy_from_slice(&isize.to_le_bytes());
    }

    fn opts(backend: Backend) -> LoadOptions {
        LoadOptions { backend, ..LoadOptions::default() }
    }

    /// What every backend gives, after checking they all give the same.
    fn load_all(path: &str, file: &[u8]) -> Result<LoadedModule, LoadError> {
        let first = load_module(path, file, &opts(Backend::Libdeflate));
        for b in [Backend::Zlibrs, Backend::Miniz] {
            assert_eq!(load_module(path, file, &opts(b)), first, "{} disagrees", b.name());
        }
        first
    }

    /// The fields of a result that check_module also states. zlib's message
    /// for corrupt data is left out: zlib-rs words the same error
    /// differently depending on how the output is split between calls (a
    /// single call can report "repeated call with bad state"), and mboot
    /// never prints it.
    fn summary(r: &Result<LoadedModule, LoadError>) -> Result<(ModuleForm, u64), LoadError> {
        r.as_ref().map(|m| (m.form, m.size)).map_err(normalized)
    }

    fn normalized(e: &LoadError) -> LoadError {
        match e {
            LoadError::InconsistentData { detail } if detail != NO_PAYLOAD => {
                LoadError::InconsistentData { detail: "corrupt".into() }
            }
            e => e.clone(),
        }
    }

    fn check_summary(file: &[u8]) -> Result<(ModuleForm, u64), LoadError> {
        let c = gzip::check_module(file);
        c.outcome.map(|form| (form, c.loaded_size.unwrap_or(0))).map_err(|e| normalized(&LoadError::from(e)))
    }

    #[test]
    fn sound_module() {
        let data = content(300_000, 1);
        let f = gz(&data);
        let m = load_all("/k.b00", &f).unwrap();
        assert_eq!(m.form, ModuleForm::Gzip);
        assert_eq!(&*m.data, &data[..]);
        assert_eq!((m.size, m.compressed_size), (300_000, f.len() as u64));
        assert_eq!(m.crc32, Some(crc32fast::hash(&data)));
        assert_eq!(m.md5, md5_of(&data));
        assert_eq!(m.md5_compressed, md5_of(&f));
        assert!(m.warnings.is_empty());
    }

    fn paths() -> Vec<&'static str> {
        PATHS.with(|p| std::mem::take(&mut *p.borrow_mut()))
    }

    #[test]
    fn large_chunked_module_streams_and_matches() {
        // Several MiB, sync-flush points, mapped output: the segmented path.
        let data = content(9 << 20, 2);
        let f = gz_chunked(&data, 3 << 20);
        paths();
        let m = load_module("/s.v00", &f, &LoadOptions::default()).unwrap();
        let taken = paths();
        assert!(taken.iter().filter(|p| **p == "segment").count() >= 2, "{taken:?}");
        assert!(!taken.contains(&"reference") && !taken.contains(&"zlib takeover"), "{taken:?}");
        assert_eq!(m, load_all("/s.v00", &f).unwrap());
        assert!(m.data.is_mapped());
        assert_eq!(&*m.data, &data[..]);
        assert_eq!(m.md5, md5_of(&data));
        assert_eq!(m.md5_compressed, md5_of(&f));
        // Without the MD5s, two lanes. Which segments the helper gets depends
        // on scheduling (this thread takes those it has not started), so try
        // a few times to see it take one.
        let f = gz_chunked(&data, 1 << 20);
        let mut lanes = 0;
        for _ in 0..10 {
            paths();
            let quick = load_module("/s.v00", &f, &LoadOptions { md5: false, ..LoadOptions::default() }).unwrap();
            let taken = paths();
            assert!(!taken.contains(&"reference") && !taken.contains(&"zlib takeover"), "{taken:?}");
            assert_eq!(quick.data, m.data);
            lanes += taken.iter().filter(|p| **p == "lane segment").count();
            if lanes > 0 {
                break;
            }
        }
        assert!(lanes > 0, "the helper never inflated a segment");
        // And a single-stream one of the same size (one libdeflate call).
        let f = gz(&data);
        assert_eq!(&*load_all("/s.v00", &f).unwrap().data, &data[..]);
    }

    #[test]
    fn segment_too_large_for_the_lane_is_inflated_in_place() {
        let data = content(14 << 20, 3);
        let f = gz_chunked(&data, 9 << 19);
        paths();
        let m = load_module("/s.v00", &f, &LoadOptions { md5: false, ..LoadOptions::default() }).unwrap();
        let taken = paths();
        assert_eq!(taken, ["segment", "segment", "segment", "tail"]);
        assert_eq!(&*m.data, &data[..]);
    }

    #[test]
    fn chunks_that_reach_back_fall_back_to_zlib_and_still_match() {
        // One deflate stream with sync flushes but shared history (pigz
        // style): libdeflate cannot inflate a segment alone.
        let data: Vec<u8> = content(1 << 20, 3).repeat(4);
        let mut c = flate2::Compress::new(Compression::default(), false);
        let mut body = Vec::with_capacity(data.len());
        for (i, piece) in data.chunks(1 << 20).enumerate() {
            let flush = if i == 3 { flate2::FlushCompress::Finish } else { flate2::FlushCompress::Sync };
            body.reserve(piece.len() + 1024);
            c.compress_vec(piece, &mut body, flush).unwrap();
        }
        let mut f = vec![0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3];
        f.extend_from_slice(&body);
        f.extend_from_slice(&crc32fast::hash(&data).to_le_bytes());
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        paths();
        let m = load_module("/x", &f, &LoadOptions::default()).unwrap();
        let taken = paths();
        assert!(taken.contains(&"zlib takeover") && !taken.contains(&"reference"), "{taken:?}");
        assert_eq!(m, load_all("/x", &f).unwrap());
        assert_eq!(&*m.data, &data[..]);
        assert_eq!(m.md5, md5_of(&data));
    }

    #[test]
    fn uncompressed_module_with_warnings() {
        let m = load_all("/jumpstrt.gz", b"plain bytes").unwrap();
        assert_eq!(m.form, ModuleForm::Uncompressed);
        assert_eq!(&*m.data, b"plain bytes");
        assert_eq!(m.crc32, None);
        let md5 = md5_hex(&md5_of(b"plain bytes"));
        assert_eq!(
            m.warnings,
            vec!["Warning: uncompressed module /jumpstrt.gz".to_string(), format!("MD5: {md5}, size 11")]
        );
        let m = load_all("/e", b"").unwrap();
        assert_eq!((m.form, m.size), (ModuleForm::Uncompressed, 0));
        assert_eq!(m.warnings[1], "MD5: d41d8cd98f00b204e9800998ecf8427e, size 0");
        // One byte of magic is not gzip either.
        assert_eq!(load_all("/e", &[0x1F]).unwrap().form, ModuleForm::Uncompressed);
    }

    #[test]
    fn header_errors_are_fatal() {
        let e = load_all("/m", &[0x1F, 0x8B, 8, 0]).unwrap_err();
        assert!(matches!(e, LoadError::BadHeader { .. }));
        assert_eq!((e.status().code, e.name()), (37, "ERR_BAD_HEADER"));
        let mut f = gz(b"x");
        f[3] = 0x20;
        assert!(matches!(load_all("/m", &f), Err(LoadError::BadHeader { .. })));
        let mut f = gz(b"x");
        f[2] = 7;
        let e = load_all("/m", &f).unwrap_err();
        assert_eq!(e, LoadError::Unsupported { method: 7 });
        assert_eq!((e.status().code, e.name()), (4, "ERR_UNSUPPORTED"));
        let mut f = gz(b"x");
        f[3] = 0x08; // FNAME without a NUL
        f.truncate(12);
        f[10] = b'a';
        f[11] = b'b';
        assert!(matches!(load_all("/m", &f), Err(LoadError::BadHeader { .. })));
    }

    #[test]
    fn header_plus_trailer_only_is_inconsistent() {
        let mut f = vec![0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3];
        f.extend_from_slice(&[0; 8]);
        let e = load_all("/m", &f).unwrap_err();
        assert!(matches!(e, LoadError::InconsistentData { .. }));
        assert_eq!((e.status().code, e.name()), (33, "ERR_INCONSISTENT_DATA"));
    }

    #[test]
    fn isize_zero_rule_both_ways() {
        let mut f = gz(b"small");
        set_isize(&mut f, 0);
        let m = load_all("/m", &f).unwrap();
        assert_eq!((m.form, m.size, m.crc32), (ModuleForm::Empty, 0, None));
        assert_eq!(m.md5, md5_of(b""));
        let mut f = gz(&content(100_000, 4));
        set_isize(&mut f, 0);
        let e = load_all("/m", &f).unwrap_err();
        assert_eq!(e, LoadError::LikelyCorrupt);
        assert_eq!(e.to_string(), "Module content is likely corrupt.");
        assert_eq!((e.status().code, e.name()), (28, "ERR_CRC_ERROR"));
    }

    #[test]
    fn isize_smaller_is_buffer_too_small_and_larger_is_accepted() {
        let data = content(50_000, 5);
        let mut f = gz(&data);
        set_isize(&mut f, 49_999);
        let e = load_all("/m", &f).unwrap_err();
        assert_eq!(e, LoadError::BufferTooSmall { isize: 49_999 });
        assert_eq!((e.status().code, e.name()), (6, "ERR_BUFFER_TOO_SMALL"));
        set_isize(&mut f, 3 << 20);
        let m = load_all("/m", &f).unwrap();
        assert_eq!((m.size, &*m.data), (50_000, &data[..]));
    }

    #[test]
    fn truncated_and_corrupt_deflate() {
        let data = content(400_000, 6);
        let f = gz(&data);
        let mut t = f[..f.len() / 2].to_vec();
        t.extend_from_slice(&f[f.len() - 8..]);
        assert_eq!(load_all("/m", &t).unwrap_err(), LoadError::BufferTooSmall { isize: 400_000 });
        // A dynamic block header with BTYPE = 11 (reserved).
        let mut c = f.clone();
        c[10] |= 0x06;
        let e = load_all("/m", &c).unwrap_err();
        assert!(matches!(e, LoadError::InconsistentData { .. }), "{e:?}");
        assert_eq!(normalized(&LoadError::from(gzip::check_module(&c).outcome.unwrap_err())), normalized(&e));
    }

    #[test]
    fn wrong_crc() {
        let data = content(10_000, 7);
        let mut f = gz(&data);
        let n = f.len();
        f[n - 8] ^= 1;
        let good = crc32fast::hash(&data);
        let e = load_all("/m", &f).unwrap_err();
        assert_eq!(e, LoadError::CrcError { received: good ^ 1, calculated: good });
        assert_eq!(
            e.to_string(),
            format!("CRC error during decompression. Received CRC ({:#x}) != calculated CRC ({good:#x})", good ^ 1)
        );
        assert_eq!((e.status().code, e.name()), (28, "ERR_CRC_ERROR"));
    }

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

    #[test]
    fn budget_exceeded_is_out_of_resources() {
        let data = content(100_000, 9);
        let f = gz(&data);
        let tight = LoadOptions { memory_budget: 100_000 + f.len() as u64 - 1, ..LoadOptions::default() };
        let e = load_module("/m", &f, &tight).unwrap_err();
        assert_eq!(e, LoadError::OutOfResources { bytes: 100_000 });
        assert_eq!(e.to_string(), "Out of resources for decompressing data(100000)");
        assert_eq!((e.status().code, e.name()), (10, "ERR_OUT_OF_RESOURCES"));
        let exact = LoadOptions { memory_budget: 100_000 + f.len() as u64, ..LoadOptions::default() };
        assert!(load_module("/m", &f, &exact).is_ok());
        // 4 GiB with the default budget: refused before any allocation.
        let mut f = gz(b"tiny");
        set_isize(&mut f, u32::MAX);
        assert_eq!(load_all("/m", &f).unwrap_err(), LoadError::OutOfResources { bytes: u64::from(u32::MAX) });
    }

    #[test]
    fn parallel_load_equals_sequential() {
        let a = content(2 << 20, 10);
        let b = content(300_000, 11);
        let mut bad = gz(&content(50_000, 12));
        let n = bad.len();
        bad[n - 8] ^= 0xFF;
        let files: Vec<(String, Vec<u8>)> = vec![
            ("/b.b00".into(), gz(&a)),
            ("/plain".into(), b"uncompressed".to_vec()),
            ("/k.b00".into(), gz_chunked(&b, 100_000)),
            ("/bad".into(), bad),
            ("/after".into(), gz(&a)),
        ];
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, f)| (p.as_str(), f.as_slice())).collect();
        for b in Backend::ALL {
            let o = opts(b);
            let par = load_modules(&refs, &o);
            let seq: Vec<_> = refs.iter().map(|(p, f)| load_module(p, f, &o)).take(4).collect();
            assert_eq!(par, seq);
            assert_eq!(par.len(), 4, "stops at the first failure");
            // Without the failure: all of them.
            let good: Vec<_> = refs.iter().copied().filter(|(p, _)| *p != "/bad").collect();
            let par = load_modules(&good, &o);
            assert!(par.iter().all(Result::is_ok));
            assert_eq!(par, good.iter().map(|(p, f)| load_module(p, f, &o)).collect::<Vec<_>>());
        }
        // The budget is shared in list order.
        let a = content(100_000, 14);
        let f1 = gz(&a);
        let f2 = gz(&b);
        // Module 2 binds: it needs its file and ISIZE on top of module 1's ISIZE.
        let budget = a.len() as u64 + b.len() as u64 + f2.len() as u64;
        assert!(a.len() + f1.len() < budget as usize);
        let o = LoadOptions { memory_budget: budget, ..LoadOptions::default() };
        assert!(load_modules(&[("/1", &f1), ("/2", &f2)], &o).iter().all(Result::is_ok));
        let o = LoadOptions { memory_budget: budget - 1, ..LoadOptions::default() };
        let r = load_modules(&[("/1", &f1), ("/2", &f2)], &o);
        assert_eq!(r[1], Err(LoadError::OutOfResources { bytes: b.len() as u64 }));
        assert!(load_modules(&[], &o).is_empty());
    }

    #[test]
    fn md5_off_leaves_digests_zero() {
        let data = content(2 << 20, 13);
        let f = gz(&data);
        let m = load_module("/m", &f, &LoadOptions { md5: false, ..LoadOptions::default() }).unwrap();
        assert_eq!((m.md5, m.md5_compressed), ([0; 16], [0; 16]));
        assert_eq!(&*m.data, &data[..]);
    }

    /// A corruption to apply to a sound module.
    #[derive(Clone, Debug)]
    enum Fault {
        None,
        FlipBit(usize, u8),
        SetByte(usize, u8),
        Truncate(usize),
        Isize(u32),
        IsizeDelta(i32),
        Crc(u32),
        AppendZeros(usize),
    }

    fn apply(mut f: Vec<u8>, fault: &Fault) -> Vec<u8> {
        let n = f.len();
        match *fault {
            Fault::None => {}
            Fault::FlipBit(at, bit) => f[at % n] ^= 1 << (bit % 8),
            Fault::SetByte(at, v) => f[at % n] = v,
            Fault::Truncate(keep) => f.truncate(keep % (n + 1)),
            Fault::Isize(v) => set_isize(&mut f, v),
            Fault::IsizeDelta(d) => {
                let cur = u32::from_le_bytes(f[n - 4..].try_into().unwrap());
                set_isize(&mut f, cur.wrapping_add_signed(d));
            }
            Fault::Crc(v) => f[n - 8..n - 4].copy_from_slice(&v.to_le_bytes()),
            Fault::AppendZeros(k) => f.extend(std::iter::repeat_n(0, k % 16)),
        }
        f
    }

    fn fault() -> impl Strategy<Value = Fault> {
        prop_oneof![
            Just(Fault::None),
            (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Fault::FlipBit(a, b)),
            (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Fault::SetByte(a, b)),
            any::<usize>().prop_map(Fault::Truncate),
            prop_oneof![Just(0u32), Just(u32::MAX), 0u32..100_000].prop_map(Fault::Isize),
            (-3i32..4).prop_map(Fault::IsizeDelta),
            any::<u32>().prop_map(Fault::Crc),
            any::<usize>().prop_map(Fault::AppendZeros),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

        /// All backends agree with each other and with check_module, on
        /// sound and corrupted modules alike.
        #[test]
        fn backends_agree_with_each_other_and_check_module(
            len in 0usize..40_000,
            seed in any::<u32>(),
            chunked in any::<bool>(),
            level in 0u32..10,
            faults in proptest::collection::vec(fault(), 1..3),
            md5 in any::<bool>(),
        ) {
            let data = content(len, seed);
            let mut f = if chunked && len > 0 {
                gz_chunked(&data, len / 3 + 1)
            } else {
                let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
                e.write_all(&data).unwrap();
                e.finish().unwrap()
            };
            for fault in &faults {
                f = apply(f, fault);
            }
            // Without the MD5s, libdeflate inflates with two lanes.
            let o = LoadOptions { memory_budget: 8 << 30, md5, ..LoadOptions::default() };
            let results: Vec<_> = Backend::ALL.iter().map(|&b| load_module("/m", &f, &LoadOptions { backend: b, ..o })).collect();
            prop_assert_eq!(&results[0], &results[1]);
            prop_assert_eq!(&results[0], &results[2]);
            prop_assert_eq!(summary(&results[0]), check_summary(&f));
            if let Ok(m) = &results[0] {
                if md5 || m.form == ModuleForm::Uncompressed {
                    prop_assert_eq!(m.md5, md5_of(&m.data));
                    prop_assert_eq!(m.md5_compressed, md5_of(&f));
                } else {
                    prop_assert_eq!((m.md5, m.md5_compressed), ([0; 16], [0; 16]));
                }
                if m.form == ModuleForm::Gzip {
                    prop_assert_eq!(m.crc32, Some(crc32fast::hash(&m.data)));
                }
            }
        }
    }
}
