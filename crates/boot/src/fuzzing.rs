//! Fuzzing entry points, not API: the bodies of the `fuzz/` targets
//! `bootcfg` and `gzip`, kept here so that `cargo test` replays the kept
//! corpus (`fuzz/corpus/<target>/`) through exactly the code libFuzzer ran
//! (`harness/tests/fuzz_corpus.rs`; CONTRIBUTING.md, Fuzzing).
//!
//! Each entry takes any bytes (a whole boot.cfg; a whole module file),
//! never panics on them, and asserts the invariants of the code it drives;
//! an assertion failing is a finding. Each has a heap budget,
//! `*_max_alloc(input length)`, which the callers enforce with a counting
//! allocator: the most heap bytes one call may hold at once.

use md5::{Digest, Md5};

use crate::bootcfg::{locate_bootstate, BootCfg, MbootConfig, SafebootConfig, WriterSlot, WRITER_WINDOW};
use crate::gzip::{check_module, header_len, LoadError, ModuleForm};
use crate::load::{load_module, load_modules, Backend, LoadOptions, LoadedModule};
use crate::mboot::{after_failure, module_specs};

const MIB: u64 = 1 << 20;

/// The loader's memory budget in the `gzip` target: modules of up to 16 MiB
/// load (a few KiB of deflate data can claim far more; those are refused
/// with "Out of resources", as mboot refuses them past its memory).
const GZIP_LOADER_BUDGET: u64 = 16 * MIB;

/// Heap budget of [`bootcfg`]: linear in the file. The parser keeps one
/// merged copy of a line and the values; the module list and the module
/// specs built from it hold up to three strings of bookkeeping (24 bytes
/// each) per item and an item can be four bytes of the file (`a---`), with
/// vectors doubling: 64 bytes per input byte covers it. Plus the four
/// patched copies of the writer check, one at a time.
pub fn bootcfg_max_alloc(input_len: usize) -> u64 {
    64 * input_len as u64 + MIB
}

/// The `bootcfg` target: safeboot's and mboot's parsers, the combined
/// [`BootCfg`] and its rendering, mboot's module list and specs, and the
/// bootstate writer's search (docs/bootloader.md, boot.cfg and The
/// bootstate writer).
///
/// Invariants:
/// - [`BootCfg::parse`] succeeds exactly when both loaders' parsers do, and
///   what it returns renders to a file that parses back to the same value;
/// - a syntax error names a line of the file;
/// - every module item has a non-empty name without whitespace or `---`,
///   and the specs are the kernel followed by the items;
/// - the writer's slot lies in the first 512 bytes and names the byte that
///   is there (a digit 0–3 for a slot it writes, anything else for a bad
///   digit);
/// - **where the parser and the writer must agree**: when the parser's
///   state depends on the byte the writer would patch (it is the digit of
///   the line the parser takes bootstate from), patching any digit 0–3
///   there gives that state. The disagreements the loader really has
///   (`bootstate = 1` ignored by the parser, two bootstate lines, a
///   bootstate past byte 512, a BOM, `bootstate=10`) are exactly the cases
///   where the state does not depend on that byte alone, so they pass.
pub fn bootcfg(data: &[u8]) {
    let safe = SafebootConfig::parse(data);
    let mboot = MbootConfig::parse(data);
    let both = BootCfg::parse(data);
    assert_eq!(both.is_ok(), safe.is_ok() && mboot.is_ok(), "BootCfg::parse against the two parsers");
    let lines = data.split(|&b| b == b'\n').count();
    for err in [safe.as_ref().err(), mboot.as_ref().err()].into_iter().flatten() {
        assert!((1..=lines).contains(&err.line), "syntax error on line {} of {lines}", err.line);
    }
    if let Ok(cfg) = &both {
        let rendered = cfg.render();
        let again = BootCfg::parse(rendered.as_bytes());
        assert_eq!(again.as_ref(), Ok(cfg), "rendered as {rendered:?}");
    }
    if let Ok(config) = &mboot {
        let items = config.module_list();
        for item in &items {
            assert!(!item.name.is_empty(), "an empty module name");
            assert!(!item.name.contains("---"), "module name {:?} holds a separator", item.name);
            assert!(
                !item.name.bytes().any(crate::bootcfg::is_esx_space),
                "module name {:?} holds whitespace",
                item.name
            );
        }
        if let Ok(specs) = module_specs(config) {
            assert_eq!(specs.len(), items.len() + 1, "the kernel, then each module");
            assert_eq!(Some(specs[0].name.as_str()), config.kernel.as_deref());
            for (spec, item) in specs[1..].iter().zip(&items) {
                assert_eq!(spec.name, item.name);
                assert!(!spec.path.contains("//"), "path {:?} keeps a double slash", spec.path);
            }
        }
        let _ = after_failure(config);
    }

    match locate_bootstate(data) {
        WriterSlot::NotFound => {}
        WriterSlot::BadDigit { offset, byte } => {
            assert!(offset < WRITER_WINDOW && data[offset] == byte, "bad digit {byte:#x} at {offset}");
            assert!(!(b'0'..=b'3').contains(&byte), "{byte:#x} at {offset} is a digit the writer writes");
        }
        WriterSlot::At { offset, digit } => {
            assert!(offset < WRITER_WINDOW && data[offset] == digit, "slot {digit:#x} at {offset}");
            assert!((b'0'..=b'3').contains(&digit), "slot holds {digit:#x}");
            writer_agrees_with_parser(data, offset, safe.as_ref().ok());
        }
    }
}

/// The agreement check of [`bootcfg`] for a writer slot at `offset`.
fn writer_agrees_with_parser(data: &[u8], offset: usize, parsed: Option<&SafebootConfig>) {
    let mut patched = data.to_vec();
    let mut states = Vec::with_capacity(4);
    for digit in b'0'..=b'3' {
        patched[offset] = digit;
        let after = SafebootConfig::parse(&patched);
        assert_eq!(after.is_ok(), parsed.is_some(), "patching the bootstate digit changed whether the file parses");
        assert_eq!(locate_bootstate(&patched), WriterSlot::At { offset, digit }, "the writer finds its own write");
        if let Ok(after) = after {
            states.push((digit, after.bootstate));
        }
    }
    // The value ends at the digit (the parser reads `bootstate=10` as 10).
    let ends_at_digit = !data.get(offset + 1).is_some_and(u8::is_ascii_digit);
    let depends = states.windows(2).any(|w| w[0].1 != w[1].1);
    if ends_at_digit && depends {
        for (digit, state) in states {
            assert_eq!(state, i32::from(digit - b'0'), "the writer patched {} at {offset}", digit as char);
        }
    }
}

/// Heap budget of [`gzip`]: the check's 1 MiB output window; per loader
/// run, an output buffer of under 1 MiB on the heap (larger ones are
/// mappings, bounded by libFuzzer's RSS limit instead), the uncompressed
/// module's copy and the reference inflater's state; and the input itself,
/// once per module of [`load_modules`].
pub fn gzip_max_alloc(input_len: usize) -> u64 {
    4 * input_len as u64 + 8 * MIB
}

/// The `gzip` target: the gzip header, the trailer and mboot's rules
/// between them, through the streaming check (what `inspect` reports) and
/// the module loader with each inflate back end (what a boot loads).
///
/// Invariants: the loader's outcome is the check's for every back end
/// (form, size, CRC32; the same error, except zlib's wording of corrupt
/// data), unless ISIZE is beyond the loader's memory, which is "Out of
/// resources"; a loaded module holds exactly `size` bytes with the MD5s of
/// the file and of those bytes; loading the module twice in a list gives
/// the single load's result first.
pub fn gzip(data: &[u8]) {
    let check = check_module(data);
    let header = header_len(data);
    assert_eq!(check.header_len, header.clone().ok().flatten(), "header length");
    assert_eq!(check.file_size, data.len() as u64);
    let expected: Result<(ModuleForm, u64), LoadError> = match &check.outcome {
        Ok(form) => Ok((*form, check.loaded_size.expect("a sound module has a size"))),
        Err(e) => Err(e.error().clone()),
    };
    let beyond_memory =
        check.isize.is_some_and(|isize| u64::from(isize) > GZIP_LOADER_BUDGET.saturating_sub(data.len() as u64));

    for backend in Backend::ALL {
        let opts = LoadOptions { backend, memory_budget: GZIP_LOADER_BUDGET, md5: true, ..LoadOptions::default() };
        let loaded = load_module("fuzz.gz", data, &opts);
        let runs_out = beyond_memory && matches!(expected, Ok((ModuleForm::Gzip, _)) | Err(_));
        match (&loaded, &expected) {
            (Err(LoadError::OutOfResources { bytes }), _) if runs_out => {
                assert_eq!(Some(*bytes), check.isize.map(u64::from));
            }
            (Ok(module), Ok((form, size))) => {
                assert_eq!((module.form, module.size), (*form, *size), "{}", backend.name());
                check_loaded(data, module);
                if *form == ModuleForm::Gzip {
                    assert_eq!(module.crc32, check.crc32, "{}", backend.name());
                }
            }
            (Err(got), Err(want)) => {
                assert!(same_error(got, want), "{}: {got:?}, the check says {want:?}", backend.name())
            }
            (got, want) => panic!(
                "{}: the loader gives {:?}, the check {want:?}",
                backend.name(),
                got.as_ref().map(|m| (m.form, m.size))
            ),
        }
        if backend == Backend::default() {
            let listed = load_modules(&[("a.gz", data), ("b.gz", data)], &opts);
            assert!(!listed.is_empty() && listed.len() <= 2);
            match (&listed[0], &loaded) {
                (Ok(a), Ok(b)) => assert_eq!((a.form, a.size, a.crc32, a.md5), (b.form, b.size, b.crc32, b.md5)),
                (Err(a), Err(b)) => assert!(same_error(a, b), "{a:?} in a list, {b:?} alone"),
                (a, b) => panic!("in a list {:?}, alone {:?}", a.is_ok(), b.is_ok()),
            }
            assert_eq!(listed.len() == 2, listed[0].is_ok(), "the list stops at its first failure, and only there");
        }
    }
}

/// A loaded module's bytes against its own report.
fn check_loaded(file: &[u8], module: &LoadedModule) {
    assert_eq!(module.data().len() as u64, module.size);
    assert_eq!(module.compressed_size, file.len() as u64);
    let md5 = |bytes: &[u8]| -> [u8; 16] { Md5::digest(bytes).into() };
    assert_eq!(module.md5_compressed, md5(file), "MD5 of the file");
    assert_eq!(module.md5, md5(module.data()), "MD5 of the module");
    if module.form == ModuleForm::Uncompressed {
        assert!(module.data() == file, "an uncompressed module is the file");
    }
    if let Some(crc) = module.crc32 {
        assert_eq!(crc, crc32fast::hash(module.data()), "CRC32 of the module");
    }
}

/// The same error, ignoring zlib's wording of corrupt deflate data (which
/// depends on how the output was split between calls, and which mboot
/// never prints).
fn same_error(a: &LoadError, b: &LoadError) -> bool {
    match (a, b) {
        (LoadError::InconsistentData { .. }, LoadError::InconsistentData { .. }) => true,
        _ => a == b,
    }
}
