//! Scheduling the work of loading: one module as mboot loads it (the gzip
//! framing checks, the memory budget, the compressed file's MD5 on a helper
//! thread while inflating) and several modules in parallel, charged against
//! one budget in list order and reported as sequential mboot would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use super::backend::{inflate_checked, Checked};
use super::buffer::{ModuleBuffer, Pool, Repr};
use super::{md5_hex, md5_of, sys, LoadError, LoadOptions, LoadedModule, THREAD_MIN};
use crate::gzip::{self, ModuleForm, Payload, Trailer};

/// [`super::load_modules`]: parallel, results in list order up to the first failure.
///
/// With the MD5s, the largest module's uncompressed MD5 is the longest
/// serial chain of the whole load, and the MD5 of its file the second
/// longest, so they are scheduled first and ahead of everything else: that
/// module loads on a thread of its own at the caller's priority (its
/// inflater and its output's MD5), the MD5 of its file one step lower,
/// and the workers that load the others, largest first, two steps lower
/// ([`sys::lower_priority`]). The chain then runs
/// whenever it has output to hash, its inflater keeps it fed (and waits,
/// leaving its core to the others, once a pool's worth ahead), and the
/// other modules fill the cores around it. Without the MD5s nothing is
/// serial, and all modules load alike. Each worker streams through one
/// [`Pool`] for all of its modules. The caller's thread only waits.
pub(super) fn load_modules(files: &[(&str, &[u8])], opts: &LoadOptions) -> Vec<Result<LoadedModule, LoadError>> {
    let n = files.len();
    let mut budgets = Vec::with_capacity(n);
    let mut held = 0u64;
    for (_, file) in files {
        budgets.push(opts.memory_budget.saturating_sub(held));
        held = held.saturating_add(kept_after_load(file));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(files[i].1.len()));
    // The longest digest chain, when there is one worth a thread.
    let chain =
        order.iter().copied().max_by_key(|&i| (kept_after_load(files[i].1), std::cmp::Reverse(i))).filter(|&i| {
            opts.md5 && files[i].1.len() >= THREAD_MIN && gzip::header_len(files[i].1).is_ok_and(|h| h.is_some())
        });
    order.retain(|&i| Some(i) != chain);
    let workers = thread::available_parallelism().map_or(1, |p| p.get()).min(order.len());
    let next = AtomicUsize::new(0);
    let first_failure = AtomicUsize::new(usize::MAX);
    let load = |i: usize, pool: &Pool, is_chain: bool| {
        let (path, file) = files[i];
        let result = load_within(path, file, opts, budgets[i], pool, is_chain);
        if result.is_err() {
            first_failure.fetch_min(i, Ordering::Relaxed);
        }
        (i, result)
    };
    let work = || {
        if chain.is_some() {
            sys::lower_priority(2);
        }
        let pool = Pool::new();
        let mut done = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = order.get(k) else { break };
            if i > first_failure.load(Ordering::Relaxed) {
                continue;
            }
            done.push(load(i, &pool, false));
        }
        done
    };
    let mut slots: Vec<Option<Result<LoadedModule, LoadError>>> = (0..n).map(|_| None).collect();
    thread::scope(|s| {
        let chain_thread = chain.map(|i| s.spawn(move || vec![load(i, &Pool::new(), true)]));
        let handles: Vec<_> = chain_thread.into_iter().chain((0..workers).map(|_| s.spawn(work))).collect();
        for h in handles {
            for (i, r) in h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)) {
                slots[i] = Some(r);
            }
        }
    });
    let end = first_failure.into_inner().saturating_add(1).min(n);
    slots.truncate(end);
    slots.into_iter().map(|r| r.expect("every module up to the first failure was loaded")).collect()
}

/// [`super::charge`]: what the budget sees of one module file.
pub(super) fn charge(file: &[u8]) -> super::Charge {
    let n = file.len() as u64;
    match gzip::header_len(file) {
        Ok(None) => super::Charge { checked: None, file: n, kept: n },
        Ok(Some(header)) => {
            let trailer = Trailer::read(file);
            match gzip::framing(file, header, trailer) {
                Ok(Payload::Deflate(_)) => {
                    let isize = u64::from(trailer.isize);
                    super::Charge { checked: Some(isize), file: n, kept: isize }
                }
                Ok(Payload::Empty) | Err(_) => super::Charge { checked: None, file: n, kept: 0 },
            }
        }
        Err(_) => super::Charge { checked: None, file: n, kept: 0 },
    }
}

/// Memory a module keeps once loaded: mboot's `malloc(ISIZE)` for gzip, the
/// file buffer for an uncompressed module, nothing for an empty one.
fn kept_after_load(file: &[u8]) -> u64 {
    match gzip::header_len(file) {
        Ok(None) => file.len() as u64,
        Ok(Some(_)) => u64::from(Trailer::read(file).isize),
        Err(_) => 0,
    }
}

/// [`super::load_module`] with `budget` bytes left, streaming through
/// `pool` (see [`load_modules`] for `chain`: then the file's MD5 yields to
/// the output's).
pub(super) fn load_within(
    path: &str,
    file: &[u8],
    opts: &LoadOptions,
    budget: u64,
    pool: &Pool,
    chain: bool,
) -> Result<LoadedModule, LoadError> {
    let header = match gzip::header_len(file)? {
        Some(h) => h,
        None => return Ok(uncompressed(path, file, opts.keep)),
    };
    let n = file.len();
    let trailer = Trailer::read(file);
    let (received, isize) = (trailer.crc32, trailer.isize);
    // Raw inflate over the payload plus one byte (zlib's "dummy" byte).
    let input = match gzip::framing(file, header, trailer)? {
        Payload::Deflate(input) => input,
        Payload::Empty => {
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
    };
    // mboot holds the compressed file while it allocates ISIZE bytes.
    if u64::from(isize) > budget.saturating_sub(n as u64) {
        return Err(LoadError::OutOfResources { bytes: u64::from(isize) });
    }

    thread::scope(|s| {
        let md5c = (opts.md5 && n >= THREAD_MIN).then(|| {
            s.spawn(move || {
                if chain {
                    sys::lower_priority(1);
                }
                md5_of(file)
            })
        });
        let inflated = inflate_checked(input, isize, received, opts, pool);
        let md5_compressed = match md5c {
            Some(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            None if opts.md5 => md5_of(file),
            None => [0; 16],
        };
        let Checked { data, size, crc, md5 } = inflated?;
        Ok(LoadedModule {
            form: ModuleForm::Gzip,
            size,
            data,
            compressed_size: n as u64,
            crc32: Some(crc),
            md5_compressed,
            md5: md5.unwrap_or([0; 16]),
            warnings: Vec::new(),
        })
    })
}

/// Not gzip: accepted as is, with mboot's two warnings (PR 2273023); the
/// first `keep` bytes kept.
fn uncompressed(path: &str, file: &[u8], keep: usize) -> LoadedModule {
    // The warning names the MD5, so it is computed even when not asked for.
    let md5 = md5_of(file);
    LoadedModule {
        form: ModuleForm::Uncompressed,
        data: ModuleBuffer(Repr::Heap(file[..file.len().min(keep)].to_vec())),
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

#[cfg(test)]
mod tests {
    use super::super::buffer::{ModuleBuffer, Repr};
    use super::super::testutil::*;
    use super::super::*;
    use crate::gzip::ModuleForm;

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
    fn parallel_load_keeping_a_head_equals_keeping_all() {
        // The chain (the largest module, with the MD5s) on its own thread,
        // the others on lowered workers, every output streamed in pieces
        // (64 KiB under test) but for its first bytes: the same results
        // as keeping everything, failure included.
        let big = content(3 << 20, 20);
        let mid = content(1 << 20, 21);
        let mut bad = gz_chunked(&content(200_000, 22), 50_000);
        let n = bad.len();
        bad[n - 7] ^= 0x10; // trailer CRC
        let files: Vec<(String, Vec<u8>)> = vec![
            ("/k.b00".into(), gz_chunked(&mid, 300_000)),
            ("/s.v00".into(), gz_chunked(&big, 1 << 20)),
            ("/plain".into(), content(20_000, 23)),
            ("/one".into(), gz(&mid)),
            ("/bad".into(), bad),
            ("/after".into(), gz(&big)),
        ];
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, f)| (p.as_str(), f.as_slice())).collect();
        for b in Backend::ALL {
            for md5 in [true, false] {
                let all = LoadOptions { md5, ..opts(b) };
                let full = load_modules(&refs, &all);
                assert_eq!(full.len(), 5, "stops at the first failure");
                assert!(matches!(full[4], Err(LoadError::CrcError { .. })), "{:?}", full[4]);
                for keep in [0, 100, 70_000] {
                    let head = load_modules(&refs, &LoadOptions { keep, ..all });
                    let expected: Vec<_> = full
                        .iter()
                        .map(|r| {
                            r.clone().map(|mut m| {
                                m.data = ModuleBuffer(Repr::Heap(m.data[..m.data.len().min(keep)].to_vec()));
                                m
                            })
                        })
                        .collect();
                    assert_eq!(head, expected, "{} md5 {md5} keep {keep}", b.name());
                }
            }
        }
    }

    #[test]
    fn md5_off_leaves_digests_zero() {
        let data = content(2 << 20, 13);
        let f = gz(&data);
        let m = load_module("/m", &f, &LoadOptions { md5: false, ..LoadOptions::default() }).unwrap();
        assert_eq!((m.md5, m.md5_compressed), ([0; 16], [0; 16]));
        assert_eq!(&*m.data, &data[..]);
    }
}
