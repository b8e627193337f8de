//! One checked inflate run, by the chosen back end: libdeflate (whole
//! stream, or [`lanes`](super::lanes) between sync-flush points), zlib-rs
//! (streaming, zlib's exact rules: the reference) or miniz_oxide (one call).
//! The output goes into the ISIZE buffer, or, when it is not kept
//! ([`LoadOptions::keep`]) and the back end can stream (zlib-rs; libdeflate
//! between sync-flush points), through reused [`Pool`] pieces ([`Out`]).
//! Output pieces go to a [`Sink`] once final (CRC32 here, MD5 here or on a
//! helper thread). Only a CRC-clean success is taken from a fast back end;
//! anything else is decided again by the reference.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;

use flate2::{Decompress, FlushDecompress, Status};
use md5::{Digest, Md5};

use super::buffer::{self, ModuleBuffer, Pool, Repr};
use super::lanes::{self, WINDOW};
use super::{note, sys, Backend, LoadError, LoadOptions, THREAD_MIN};

/// Output bytes per call of a streaming inflater.
const STREAM_STEP: usize = if cfg!(test) { 4 << 10 } else { 1 << 20 };

/// What one inflate run produced.
struct Inflated {
    produced: usize,
    crc: u32,
    md5: Option<[u8; 16]>,
    /// The kept head of a streamed run (`None`: the output is in the ISIZE buffer).
    head: Option<Vec<u8>>,
}

/// A module inflated and checked.
pub(super) struct Checked {
    /// The bytes kept.
    pub(super) data: ModuleBuffer,
    /// All the bytes produced.
    pub(super) size: u64,
    pub(super) crc: u32,
    /// The output's MD5, when asked for.
    pub(super) md5: Option<[u8; 16]>,
}

/// Inflates into a fresh ISIZE buffer (or streams, keeping the first
/// [`LoadOptions::keep`] bytes) and checks the CRC, falling back on the
/// zlib-rs reference for anything but a CRC-clean success.
pub(super) fn inflate_checked(
    input: &[u8],
    isize: u32,
    received: u32,
    opts: &LoadOptions,
    pool: &Pool,
) -> Result<Checked, LoadError> {
    // The ISIZE buffer, allocated when a run cannot stream.
    let mut whole: Option<Repr> = None;
    let first = run(opts.backend, input, &mut whole, isize, opts, pool);
    let done = match first {
        Ok(d) if d.crc == received => d,
        Ok(d) if opts.backend == Backend::Zlibrs => {
            return Err(LoadError::CrcError { received, calculated: d.crc });
        }
        Err(e) if opts.backend == Backend::Zlibrs => return Err(e),
        // Decide again with zlib's rules (this also yields the exact error).
        _ => {
            note("reference");
            let d = run(Backend::Zlibrs, input, &mut whole, isize, opts, pool)?;
            if d.crc != received {
                return Err(LoadError::CrcError { received, calculated: d.crc });
            }
            d
        }
    };
    let data = match (done.head, whole) {
        (Some(head), _) => ModuleBuffer(Repr::Heap(head)),
        (None, Some(out)) if done.produced <= opts.keep => out.finish(done.produced),
        (None, Some(out)) => ModuleBuffer(Repr::Heap(out.finish(opts.keep).as_slice().to_vec())),
        (None, None) => unreachable!("a run without a head wrote into the ISIZE buffer"),
    };
    Ok(Checked { data, size: done.produced as u64, crc: done.crc, md5: done.md5 })
}

/// A piece of output on its way to the MD5 thread.
enum Piece<'o> {
    /// Part of the ISIZE buffer.
    Borrowed(&'o [u8]),
    /// The first bytes of a pool buffer, which goes back to the pool once hashed.
    Pooled(sys::Region, usize),
}

/// Where output pieces go once final: CRC32 here, MD5 here or on a thread.
pub(super) struct Sink<'o> {
    crc: crc32fast::Hasher,
    md5: Md5Sink<'o>,
    produced: usize,
    /// The last [`WINDOW`] bytes of output, kept only when asked for.
    pub(super) window: Option<Vec<u8>>,
    /// A streamed run's first bytes, and how many to keep.
    head: Option<(Vec<u8>, usize)>,
    pool: &'o Pool,
}

enum Md5Sink<'o> {
    Off,
    Inline(Md5),
    Thread(mpsc::Sender<Piece<'o>>),
}

impl<'o> Sink<'o> {
    /// The run's pool.
    pub(super) fn pool(&self) -> &'o Pool {
        self.pool
    }

    /// Takes `piece` of the ISIZE buffer as final output.
    #[inline]
    pub(super) fn emit(&mut self, piece: &'o [u8]) {
        self.account(piece);
        match &mut self.md5 {
            Md5Sink::Off => {}
            Md5Sink::Inline(h) => h.update(piece),
            Md5Sink::Thread(tx) => {
                // The receiver lives until the sender is dropped.
                let _ = tx.send(Piece::Borrowed(piece));
            }
        }
    }

    /// Takes the first `len` bytes of a pool buffer as final output; the
    /// buffer goes back to the pool once hashed.
    pub(super) fn emit_pooled(&mut self, r: sys::Region, len: usize) {
        self.account(&r.as_slice()[..len]);
        match &mut self.md5 {
            Md5Sink::Thread(tx) => {
                if let Err(mpsc::SendError(Piece::Pooled(r, _))) = tx.send(Piece::Pooled(r, len)) {
                    self.pool.give(r);
                }
            }
            Md5Sink::Inline(h) => {
                h.update(&r.as_slice()[..len]);
                self.pool.give(r);
            }
            Md5Sink::Off => self.pool.give(r),
        }
    }

    /// Counts, checksums and keeps what is asked for of a final piece.
    #[inline]
    fn account(&mut self, piece: &[u8]) {
        self.produced += piece.len();
        self.crc.update(piece);
        if let Some((head, keep)) = &mut self.head {
            let take = keep.saturating_sub(head.len()).min(piece.len());
            head.extend_from_slice(&piece[..take]);
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

/// Why a [`Out::fill`] gave no output.
pub(super) enum Short {
    /// The inflater needed more room than it was given.
    Space,
    /// Any other failure of the inflater.
    Failed,
    /// A pool buffer could not be mapped.
    NoMemory,
}

/// Where an inflate run writes.
pub(super) enum Out<'o> {
    /// The rest of the ISIZE buffer.
    Whole(&'o mut [u8]),
    /// Pieces from `pool`, with `room` bytes of ISIZE left.
    Pieces { pool: &'o Pool, room: usize },
}

impl<'o> Out<'o> {
    /// Bytes of ISIZE not written yet.
    pub(super) fn room(&self) -> usize {
        match self {
            Out::Whole(rest) => rest.len(),
            Out::Pieces { room, .. } => *room,
        }
    }

    /// Runs `fill` on the next at most `max` bytes of output room; what it
    /// wrote (its `Ok`) becomes final output in `sink`. In pieces, a fill
    /// short of space is tried again in a larger buffer, up to the room left.
    pub(super) fn fill(
        &mut self,
        sink: &mut Sink<'o>,
        max: usize,
        mut fill: impl FnMut(&mut [u8]) -> Result<usize, Short>,
    ) -> Result<usize, Short> {
        match self {
            Out::Whole(rest) => {
                let n = rest.len().min(max);
                let wrote = fill(&mut rest[..n])?.min(n);
                let (done, tail) = std::mem::take(rest).split_at_mut(wrote);
                *rest = tail;
                sink.emit(done);
                Ok(wrote)
            }
            Out::Pieces { pool, room } => {
                let limit = (*room).min(max);
                let mut r = pool.take().ok_or(Short::NoMemory)?;
                loop {
                    let n = r.as_slice().len().min(limit);
                    match fill(&mut r.as_mut_slice()[..n]) {
                        Ok(wrote) => {
                            let wrote = wrote.min(n);
                            *room -= wrote;
                            if wrote == 0 {
                                pool.give(r);
                            } else {
                                sink.emit_pooled(r, wrote);
                            }
                            return Ok(wrote);
                        }
                        Err(Short::Space) if n < limit => {
                            note("grown piece");
                            r = pool.grow(r, n.saturating_mul(2).min(limit)).ok_or(Short::NoMemory)?;
                        }
                        Err(e) => {
                            pool.give(r);
                            return Err(e);
                        }
                    }
                }
            }
        }
    }

    /// Takes a lane's output, the first `wrote` bytes of `r`, as the next
    /// output (copied into the ISIZE buffer, or passed on as a piece);
    /// false (and `r` back in the pool) if it does not fit the room left.
    pub(super) fn put(&mut self, sink: &mut Sink<'o>, r: sys::Region, wrote: usize) -> bool {
        match self {
            Out::Whole(rest) if wrote <= rest.len() => {
                let (done, tail) = std::mem::take(rest).split_at_mut(wrote);
                done.copy_from_slice(&r.as_slice()[..wrote]);
                *rest = tail;
                sink.pool.give(r);
                sink.emit(done);
                true
            }
            Out::Pieces { room, .. } if wrote <= *room => {
                *room -= wrote;
                sink.emit_pooled(r, wrote);
                true
            }
            _ => {
                sink.pool.give(r);
                false
            }
        }
    }
}

/// One inflate run of `engine`, hashing as it goes: streamed through
/// `pool` when the output is not kept and the engine can stream, else into
/// the ISIZE buffer `whole` (allocated on first use).
fn run(
    engine: Backend,
    input: &[u8],
    whole: &mut Option<Repr>,
    isize: u32,
    opts: &LoadOptions,
    pool: &Pool,
) -> Result<Inflated, LoadError> {
    let len = isize as usize;
    let points = if engine == Backend::Libdeflate { lanes::sync_points(input) } else { Vec::new() };
    let streams = opts.keep < len
        && match engine {
            Backend::Zlibrs => true,
            Backend::Libdeflate => !points.is_empty(),
            Backend::Miniz => false,
        };
    let (out, prefault) = if streams {
        note("streamed");
        (Out::Pieces { pool, room: len }, None)
    } else {
        if whole.is_none() {
            // mboot's malloc failing.
            *whole = Some(Repr::allocate(len).ok_or(LoadError::OutOfResources { bytes: u64::from(isize) })?);
        }
        let (slice, prefault) = whole.as_mut().expect("allocated above").split_prefault();
        (Out::Whole(slice), prefault)
    };
    let md5 = opts.md5;
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        if let Some(p) = prefault {
            buffer::prefault(s, p, len, input.len(), &stop);
        }
        let mut md5_thread = None;
        let md5_sink = if !md5 {
            Md5Sink::Off
        } else if len >= THREAD_MIN {
            let (tx, rx) = mpsc::channel::<Piece>();
            md5_thread = Some(s.spawn(move || {
                let mut h = Md5::new();
                for piece in rx {
                    match piece {
                        Piece::Borrowed(p) => h.update(p),
                        Piece::Pooled(r, n) => {
                            h.update(&r.as_slice()[..n]);
                            pool.give(r);
                        }
                    }
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
        let head = streams.then(|| (Vec::with_capacity(opts.keep.min(len)), opts.keep));
        let mut sink = Sink { crc: crc32fast::Hasher::new(), md5: md5_sink, produced: 0, window: None, head, pool };
        let result = match (engine, out) {
            (Backend::Libdeflate, out) => inflate_libdeflate(input, out, isize, &mut sink, parallel, &points),
            (Backend::Zlibrs, out) => inflate_zlib(input, out, isize, &[], &mut sink),
            (Backend::Miniz, Out::Whole(slice)) => inflate_miniz(input, slice, &mut sink),
            (Backend::Miniz, Out::Pieces { .. }) => unreachable!("miniz_oxide never streams"),
        };
        stop.store(true, Ordering::Relaxed);
        let Sink { crc, md5: md5_sink, produced, head, .. } = sink;
        let md5 = match md5_sink {
            Md5Sink::Off => None,
            Md5Sink::Inline(h) => Some(h.finalize().into()),
            Md5Sink::Thread(tx) => {
                drop(tx);
                md5_thread.map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            }
        };
        result.map(|()| Inflated { produced, crc: crc.finalize(), md5, head: head.map(|(h, _)| h) })
    })
}

/// zlib-rs, streaming: zlib's exact rules (the same decisions as
/// [`crate::gzip::check_module`]). `dict` primes the window when resuming at a block
/// boundary.
pub(super) fn inflate_zlib<'o>(
    input: &[u8],
    mut out: Out<'o>,
    isize: u32,
    dict: &[u8],
    sink: &mut Sink<'o>,
) -> Result<(), LoadError> {
    let mut z = Decompress::new(false);
    if !dict.is_empty() {
        z.set_dictionary(dict).map_err(|e| LoadError::InconsistentData { detail: e.to_string() })?;
    }
    loop {
        let in_before = z.total_in();
        let out_before = z.total_out();
        let at = usize::try_from(in_before).unwrap_or(input.len()).min(input.len());
        let mut outcome = None;
        let wrote = out.fill(sink, STREAM_STEP, |buf| {
            let room = buf.len();
            match z.decompress(&input[at..], buf, FlushDecompress::Finish) {
                Ok(status) => {
                    outcome = Some(Ok(status));
                    Ok(usize::try_from(z.total_out() - out_before).unwrap_or(room).min(room))
                }
                Err(e) => {
                    outcome = Some(Err(e));
                    Err(Short::Failed)
                }
            }
        });
        let (wrote, status) = match (wrote, outcome) {
            (Ok(wrote), Some(Ok(status))) => (wrote, status),
            (_, Some(Err(e))) => return Err(LoadError::InconsistentData { detail: e.to_string() }),
            _ => return Err(LoadError::OutOfResources { bytes: u64::from(isize) }),
        };
        match status {
            Status::StreamEnd => return Ok(()),
            // Output full before the end of the stream.
            _ if out.room() == 0 => return Err(LoadError::BufferTooSmall { isize }),
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

/// libdeflate. A stream with byte-aligned sync-flush points (`points`) is
/// inflated segment by segment ([`lanes::inflate_segments`]); without
/// them: one call into the ISIZE buffer.
fn inflate_libdeflate<'o>(
    input: &[u8],
    out: Out<'o>,
    isize: u32,
    sink: &mut Sink<'o>,
    parallel: bool,
    points: &[usize],
) -> Result<(), LoadError> {
    let raw = if points.is_empty() { None } else { sys::RawInflater::new() };
    match (raw, out) {
        (Some(raw), out) => lanes::inflate_segments(input, out, isize, sink, parallel, points, raw),
        (None, Out::Whole(out)) => {
            note("one call");
            let wrote = libdeflater::Decompressor::new().deflate_decompress(input, out).map_err(|_| not_decided())?;
            let (done, _) = out.split_at_mut(wrote);
            sink.emit(done);
            Ok(())
        }
        // A streamed run has sync points; without a decompressor, the reference decides.
        (None, Out::Pieces { .. }) => Err(not_decided()),
    }
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

#[cfg(test)]
mod tests {
    use super::super::buffer::Repr;
    use super::super::testutil::*;
    use super::super::*;
    use crate::gzip::{self, ModuleForm};
    use flate2::{write::GzEncoder, Compression};
    use proptest::prelude::*;
    use std::io::Write;

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
        assert_eq!(normalized(&gzip::check_module(&c).outcome.unwrap_err().0), normalized(&e));
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
            keep in prop_oneof![Just(0usize), 0usize..50_000],
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
            // Streamed, keeping only the first `keep` bytes: the same result
            // but for the bytes kept.
            for &b in &Backend::ALL {
                let streamed = load_module("/m", &f, &LoadOptions { backend: b, keep, ..o });
                let head = results[0].clone().map(|mut m| {
                    m.data = ModuleBuffer(Repr::Heap(m.data[..m.data.len().min(keep)].to_vec()));
                    m
                });
                prop_assert_eq!(&streamed, &head, "{} keeping {} bytes", b.name(), keep);
            }
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
