//! Fuzzing entry point, not API: the body of the `fuzz/` target
//! `state_tgz`, kept here so that `cargo test` replays the kept corpus
//! (`fuzz/corpus/state_tgz/`) through exactly the code libFuzzer ran
//! (`harness/tests/fuzz_corpus.rs`; CONTRIBUTING.md, Fuzzing).
//!
//! Input encoding: the first byte says what the rest is, so that mutations
//! reach the tar reader instead of dying on gzip's CRC:
//!
//! ```text
//!   | mode | bytes ...
//!     mode % 3 == 0   the whole state.tgz
//!     mode % 3 == 1   the tar inside local.tgz: gzip'd, put in a state.tgz
//!     mode % 3 == 2   the tar inside state.tgz: gzip'd
//! ```
//!
//! The wrapping gzip is stored blocks (`payload::gzip_stored`): deflating
//! each mutated input was most of the target's time. The writer under
//! test (the round trip's [`write_state_tgz`]) compresses as backups do.

use std::collections::{BTreeMap, HashSet};

use crate::archive::{local_tgz, read_state_tgz, state_tgz as write_state_tgz, ArchiveLimits, EtcFile};
use crate::payload::gzip_stored;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Limits small enough that a fuzzer reaches each of them.
const LIMITS: ArchiveLimits = ArchiveLimits {
    max_members: 64,
    max_member_bytes: 64 * KIB,
    max_total_bytes: 256 * KIB,
    max_ratio: crate::archive::DEFAULT_MAX_RATIO,
};

/// Heap budget of [`state_tgz`]: the wrapped input (gzip'd once or twice,
/// at most its size plus headers each), what the reader may keep (each
/// archive level's total, [`LIMITS`]: local.tgz, then the files), its
/// extended headers (8 of at most 64 KiB) and buffers, and the round trip's
/// archive of what was read.
pub fn state_tgz_max_alloc(input_len: usize) -> u64 {
    8 * input_len as u64 + 3 * LIMITS.max_total_bytes + 4 * MIB
}

/// The `state_tgz` target: [`read_state_tgz`], the bounded reader of an
/// untrusted disk's `state.tgz` (gzip, then tar, twice).
///
/// Invariants: what it returns is within the limits, every path is
/// normalised (relative, no empty, `.` or `..` component), paths are
/// unique and modes are permission bits; an error names the archive it is
/// about; and the files read, written back with [`local_tgz`] and
/// [`write_state_tgz`], read back the same.
pub fn state_tgz(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let wrapped;
    let bytes = match mode % 3 {
        0 => rest,
        1 => {
            wrapped = write_state_tgz(&gzip_stored(rest), 0);
            &wrapped[..]
        }
        _ => {
            wrapped = gzip_stored(rest);
            &wrapped[..]
        }
    };
    let files = match read_state_tgz(bytes, &LIMITS) {
        Ok(files) => files,
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains(e.archive()), "{message:?} does not name {}", e.archive());
            if let Some(member) = e.member() {
                assert!(message.contains(member), "{message:?} does not name member {member:?}");
            }
            return;
        }
    };
    assert!(files.len() <= LIMITS.max_members);
    let total: u64 = files.iter().map(|f| f.data.len() as u64).sum();
    assert!(total <= LIMITS.max_total_bytes, "{total} bytes returned");
    let mut seen = HashSet::new();
    for file in &files {
        assert!(file.data.len() as u64 <= LIMITS.max_member_bytes, "{}: {} bytes", file.path, file.data.len());
        assert!(file.mode <= 0o7777, "{}: mode {:o}", file.path, file.mode);
        assert!(
            !file.path.is_empty() && file.path.split('/').all(|c| !c.is_empty() && c != "." && c != ".."),
            "path {:?} is not normalised",
            file.path
        );
        assert!(seen.insert(file.path.as_str()), "{} returned twice", file.path);
    }
    // A path that is also a directory of another path cannot be written
    // back as a file (tar would make it both); the round trip skips those.
    let dirs: HashSet<&str> = files.iter().flat_map(|f| f.path.match_indices('/').map(|(i, _)| &f.path[..i])).collect();
    if files.iter().any(|f| dirs.contains(f.path.as_str())) {
        return;
    }
    let written = write_state_tgz(&local_tgz(&files, 0), 0);
    // Writing adds the parent directories as members, and its padding may
    // inflate better than the input did.
    let generous = ArchiveLimits { max_members: usize::MAX, max_ratio: u64::MAX, ..LIMITS };
    let again = read_state_tgz(&written, &generous).expect("what the reader returned writes and reads back");
    let as_map = |files: &[EtcFile]| -> BTreeMap<String, (u32, Vec<u8>)> {
        files.iter().map(|f| (f.path.clone(), (f.mode, f.data.clone()))).collect()
    };
    let (read, reread) = (as_map(&files), as_map(&again));
    if read != reread {
        let shown = |m: &BTreeMap<String, (u32, Vec<u8>)>| -> Vec<String> {
            m.iter().map(|(p, (mode, data))| format!("{p:?} {mode:o} {} bytes", data.len())).collect()
        };
        panic!("the round trip changed the files: read {:?}, read back {:?}", shown(&read), shown(&reread));
    }
}
