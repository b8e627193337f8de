//! libdeflate segment by segment. A stream with byte-aligned sync-flush
//! points (`00 00 FF FF`, as visorsim's own modules and pigz-style files
//! have) is cut there into segments that libdeflate inflates alone, so the
//! output streams to the sink piece by piece; with `parallel`, a second lane
//! inflates every other segment on another core. A segment that does not
//! stand alone ends the lanes: zlib-rs takes over at that block boundary,
//! primed with the last [`WINDOW`] bytes of output.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;

use super::backend::{inflate_zlib, Out, Short, Sink};
use super::buffer::Pool;
use super::{note, sys, LoadError};

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
pub(super) const WINDOW: usize = 32 << 10;

/// The byte-aligned sync-flush points of `input` that can end a segment:
/// just after an `00 00 FF FF`, at least [`MIN_SEGMENT`] apart, and not at
/// the very end.
pub(super) fn sync_points(input: &[u8]) -> Vec<usize> {
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

/// A helper's inflate of one segment into a pool buffer: the buffer and
/// the bytes written, or `None` if libdeflate could not do it alone.
type Lane = (usize, Option<(sys::Region, usize)>);

/// A stream with byte-aligned sync-flush points (`00 00 FF FF`, at
/// `points`) inflated segment by segment: each segment, with an empty final block
/// appended, must be inflated by libdeflate alone and consume exactly all of
/// it. Then it starts and ends at block boundaries and reaches back into no
/// earlier segment, so its output is what zlib makes of those bytes (unless
/// a false `00 00 FF FF` inside compressed data also ends cleanly with the
/// appended block; the caller's CRC32 check stands behind that). Output
/// then streams to the sink, written into the ISIZE buffer or into pool
/// pieces ([`Out`]). With `parallel`, a helper inflates every other
/// segment into pool buffers while this thread inflates the others and
/// takes the helper's in, in order (or inflates one itself if the
/// helper has not started it yet, so a starved helper costs little). A segment that fails alone is
/// tried again ending at the next points (a false `00 00 FF FF` inside the
/// data); if that fails too, zlib-rs takes over at this block boundary,
/// primed with the last 32 KiB of output.
pub(super) fn inflate_segments<'o>(
    input: &[u8],
    mut out: Out<'o>,
    isize: u32,
    sink: &mut Sink<'o>,
    parallel: bool,
    points: &[usize],
    mut raw: sys::RawInflater,
) -> Result<(), LoadError> {
    sink.window = Some(Vec::with_capacity(WINDOW));
    let starts: Vec<usize> = std::iter::once(0).chain(points.iter().copied()).collect();
    // Segment k is input[starts[k]..points[k]]; then the tail, input[starts[n]..].
    let n = points.len();
    let helper_owns = |k: usize| parallel && n >= 2 && k < n && k % 2 == 1;

    // Who inflates each of the helper's segments: the first to set its flag.
    let claimed: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
    let pool = sink.pool();

    thread::scope(|s| {
        let (lane_tx, lane_rx) = mpsc::sync_channel::<Lane>(1);
        if parallel && n >= 2 {
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
                    let seg = segment_with_end(&mut scratch, &input[starts[k]..points[k]]);
                    let result = lane_inflate(&mut raw, pool, seg, isize as usize);
                    if let Err(mpsc::SendError((_, Some((r, _))))) = lane_tx.send((k, result)) {
                        pool.give(r);
                        return;
                    }
                }
            });
        } else {
            drop(lane_tx);
        }

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
                    if let Some((r, _)) = r {
                        pool.give(r);
                    }
                }
                if let Some((r, wrote)) = mine {
                    if out.put(sink, r, wrote) {
                        note("lane segment");
                        k += 1;
                        continue;
                    }
                }
            }
            // In place, ending at points[k], or at a later point if that fails.
            let mut next = None;
            for j in k..n.min(k + SEGMENT_TRIES) {
                let seg = segment_with_end(&mut scratch, &input[at..points[j]]);
                let filled = out.fill(sink, usize::MAX, |buf| match raw.inflate(seg, buf) {
                    Ok((used, wrote)) if used == seg.len() => Ok(wrote),
                    Ok(_) | Err(false) => Err(Short::Failed),
                    Err(true) => Err(Short::Space),
                });
                if filled.is_ok() {
                    note("segment");
                    next = Some(j + 1);
                    break;
                }
            }
            match next {
                Some(j) => k = j,
                None => {
                    // Stop the helper: its next send fails.
                    drop(lane_rx);
                    return zlib_takeover(&input[at..], out, isize, sink);
                }
            }
        }
        drop(lane_rx);
        // The tail ends the stream; it may reach back into the segment before.
        let at = starts[n];
        let filled = out.fill(sink, usize::MAX, |buf| match raw.inflate(&input[at..], buf) {
            Ok((_, wrote)) => Ok(wrote),
            Err(false) => Err(Short::Failed),
            Err(true) => Err(Short::Space),
        });
        match filled {
            Ok(_) => {
                note("tail");
                Ok(())
            }
            Err(_) => zlib_takeover(&input[at..], out, isize, sink),
        }
    })
}

/// The helper lane's inflate of `seg` into a pool buffer, grown while
/// libdeflate runs out of space (up to `isize`, which no module exceeds).
fn lane_inflate(raw: &mut sys::RawInflater, pool: &Pool, seg: &[u8], isize: usize) -> Option<(sys::Region, usize)> {
    let mut r = pool.take()?;
    loop {
        let n = r.as_slice().len().min(isize);
        match raw.inflate(seg, &mut r.as_mut_slice()[..n]) {
            Ok((used, wrote)) if used == seg.len() => return Some((r, wrote)),
            Err(true) if n < isize => r = pool.grow(r, n.saturating_mul(2).min(isize))?,
            _ => {
                pool.give(r);
                return None;
            }
        }
    }
}

/// `segment` followed by [`FINAL_EMPTY_BLOCK`], in `scratch`.
fn segment_with_end<'s>(scratch: &'s mut Vec<u8>, segment: &[u8]) -> &'s [u8] {
    scratch.clear();
    scratch.extend_from_slice(segment);
    scratch.extend_from_slice(&FINAL_EMPTY_BLOCK);
    scratch
}

/// zlib-rs inflates the rest of the stream from a block boundary, primed
/// with the output so far (its last 32 KiB).
fn zlib_takeover<'o>(input: &[u8], out: Out<'o>, isize: u32, sink: &mut Sink<'o>) -> Result<(), LoadError> {
    note("zlib takeover");
    let window = sink.window.take().unwrap_or_default();
    inflate_zlib(input, out, isize, &window, sink)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use flate2::Compression;

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
    fn segments_larger_than_a_piece_grow_their_buffer() {
        // Segments of 4.5 MiB output, pieces of 64 KiB: streamed, each
        // segment (in this thread or the helper's lane) grows its buffer.
        let data = content(14 << 20, 3);
        let f = gz_chunked(&data, 9 << 19);
        let full = load_module("/s.v00", &f, &LoadOptions::default()).unwrap();
        for md5 in [true, false] {
            paths();
            let o = LoadOptions { md5, keep: 100, ..LoadOptions::default() };
            let m = load_module("/s.v00", &f, &o).unwrap();
            let taken = paths();
            assert!(taken.contains(&"streamed") && taken.contains(&"grown piece"), "{taken:?}");
            assert!(!taken.contains(&"reference") && !taken.contains(&"zlib takeover"), "{taken:?}");
            assert_eq!(taken.iter().filter(|p| p.ends_with("segment")).count(), 3, "{taken:?}");
            assert_eq!(&*m.data, &data[..100]);
            assert_eq!((m.size, m.crc32), (full.size, full.crc32));
            if md5 {
                assert_eq!((m.md5, m.md5_compressed), (full.md5, full.md5_compressed));
            }
        }
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
}
