//! The on-disk cache of finished modules: [`cached_gzip_system_module`].
//!
//! One module is two files in the cache directory:
//!
//! ```text
//! <name>-<crc32(name)>-<seed:016x>-<uncompressed_len>-<mtime:08x>-g<GENERATOR_VERSION>-<fingerprint:08x>.gz
//!     the gzip module, byte for byte what gzip_system_module returns
//!     <name>: at most 64 characters, [A-Za-z0-9.-] kept, '_' for the rest
//!     <fingerprint>: CRC32 of a fixed small module, so a changed compressor misses
//! <that name>.sum
//!     "visorsim-cache size=<bytes> crc32=<crc32 of the .gz, 8 hex digits>\n"
//! ```
//!
//! A read checks the sidecar, the file size (also against an upper bound
//! for the module, before allocating), the whole file's CRC32, the gzip
//! magic and the trailer's ISIZE; anything wrong is a miss, and the module
//! is made again and rewritten. Writes are atomic: a unique temporary file
//! in the same directory, then a rename. Failing to write is a
//! [`CacheError`] naming the path.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::gzip::isize_of;
use super::{fill_system_bytes, gzip_bytes, gzip_system_module, GzipModule, GENERATOR_VERSION};

/// What the cache could not do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheErrorKind {
    /// Creating the cache directory failed.
    CreateDir,
    /// Writing a cache file (the module or its sidecar) failed.
    WriteFile,
}

/// A cache directory or file could not be written: what, where, and the
/// I/O error. Converts into an [`io::Error`] of the same
/// [`io::ErrorKind`] that carries it (see [`io::Error::get_ref`]).
#[derive(Debug, thiserror::Error)]
#[error("Cannot {} {}", match .kind { CacheErrorKind::CreateDir => "create cache directory", CacheErrorKind::WriteFile => "write cache file" }, .path.display())]
pub struct CacheError {
    kind: CacheErrorKind,
    path: PathBuf,
    #[source]
    source: io::Error,
}

impl CacheError {
    fn new(kind: CacheErrorKind, path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
        move |source| CacheError { kind, path: path.to_path_buf(), source }
    }

    /// What failed.
    pub fn kind(&self) -> CacheErrorKind {
        self.kind
    }

    /// The directory or file that could not be written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The I/O error behind it.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl From<CacheError> for io::Error {
    fn from(e: CacheError) -> io::Error {
        io::Error::new(e.source.kind(), e)
    }
}

/// A fingerprint of the deflate implementation's output: the CRC32 of a
/// small fixed module. Part of the cache key, so a changed compressor never
/// serves stale bytes.
fn compressor_fingerprint() -> u32 {
    static FINGERPRINT: OnceLock<u32> = OnceLock::new();
    *FINGERPRINT.get_or_init(|| {
        let mut data = vec![0u8; 256 * 1024];
        fill_system_bytes(0x5649_534f_5253_494d, 0, &mut data);
        crc32fast::hash(&gzip_bytes(Some("fingerprint"), &data, 0))
    })
}

/// The cache file name for a module: every input of the bytes, readable.
fn cache_file_name(name: &str, seed: u64, uncompressed_len: u64, mtime: u32) -> String {
    let safe: String = name
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    format!(
        "{safe}-{:08x}-{seed:016x}-{uncompressed_len}-{mtime:08x}-g{GENERATOR_VERSION}-{:08x}.gz",
        crc32fast::hash(name.as_bytes()),
        compressor_fingerprint(),
    )
}

/// The sidecar holding the size and CRC32 of a cache file.
fn sidecar_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".sum");
    PathBuf::from(s)
}

/// The sidecar text for `bytes`.
fn sidecar_text(bytes: &[u8]) -> String {
    format!("visorsim-cache size={} crc32={:08x}\n", bytes.len(), crc32fast::hash(bytes))
}

/// A cached module if `file` exists and checks out: its size is the
/// sidecar's and at most `max_size`, its CRC32 is the sidecar's, the gzip
/// header magic and the trailer's ISIZE are right.
fn read_cached(file: &Path, uncompressed_len: u64, max_size: u64) -> Option<GzipModule> {
    let mut sum = String::new();
    fs::File::open(sidecar_path(file)).ok()?.take(256).read_to_string(&mut sum).ok()?;
    let size: u64 = sum.strip_prefix("visorsim-cache size=")?.split(' ').next()?.parse().ok()?;
    let f = fs::File::open(file).ok()?;
    if size > max_size || f.metadata().ok()?.len() != size {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).ok()?);
    f.take(size).read_to_end(&mut bytes).ok()?;
    if sum != sidecar_text(&bytes) || bytes.len() < 18 || bytes[..3] != [0x1f, 0x8b, 8] {
        return None;
    }
    let tail: [u8; 8] = bytes[bytes.len() - 8..].try_into().ok()?;
    let [c0, c1, c2, c3, i0, i1, i2, i3] = tail;
    if u32::from_le_bytes([i0, i1, i2, i3]) != isize_of(uncompressed_len) {
        return None;
    }
    Some(GzipModule { bytes, uncompressed_len, crc32: u32::from_le_bytes([c0, c1, c2, c3]) })
}

/// An upper bound on the size of a module: deflate never grows data by more
/// than a few bytes per 64 KiB block, plus the header and trailer.
fn max_module_size(name: &str, uncompressed_len: u64) -> u64 {
    uncompressed_len.saturating_add(uncompressed_len / 64).saturating_add(name.len() as u64).saturating_add(1 << 20)
}

/// Writes `bytes` to `path` atomically: a unique temporary file in the same
/// directory, then a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{base}.tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.flush()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// [`gzip_system_module`], cached in `cache_dir` (no cache when `None`).
///
/// The cache file is keyed by `name`, `seed`, `uncompressed_len`, `mtime`,
/// [`GENERATOR_VERSION`] and a fingerprint of the compressor. A cache file
/// whose size or CRC32 does not match its sidecar (or is missing either) is
/// ignored and rewritten. On a hit `progress` is called once with
/// `uncompressed_len`.
///
/// # Errors
/// [`CacheError`] when creating `cache_dir` or writing the cache files
/// failed, naming the path; it converts into an [`io::Error`].
pub fn cached_gzip_system_module(
    cache_dir: Option<&Path>,
    name: &str,
    seed: u64,
    uncompressed_len: u64,
    mtime: u32,
    progress: &mut dyn FnMut(u64),
) -> Result<GzipModule, CacheError> {
    let Some(dir) = cache_dir else {
        return Ok(gzip_system_module(name, seed, uncompressed_len, mtime, progress));
    };
    let file = dir.join(cache_file_name(name, seed, uncompressed_len, mtime));
    if let Some(module) = read_cached(&file, uncompressed_len, max_module_size(name, uncompressed_len)) {
        progress(uncompressed_len);
        return Ok(module);
    }
    let module = gzip_system_module(name, seed, uncompressed_len, mtime, progress);
    fs::create_dir_all(dir).map_err(CacheError::new(CacheErrorKind::CreateDir, dir))?;
    write_atomically(&file, &module.bytes).map_err(CacheError::new(CacheErrorKind::WriteFile, &file))?;
    let sum = sidecar_path(&file);
    write_atomically(&sum, sidecar_text(&module.bytes).as_bytes())
        .map_err(CacheError::new(CacheErrorKind::WriteFile, &sum))?;
    Ok(module)
}

/// The default cache directory: `$VISORSIM_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/visorsim` (if absolute), else `$HOME/.cache/visorsim`;
/// `None` if none is set. Empty variables count as unset.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("VISORSIM_CACHE_DIR") {
        return Some(dir);
    }
    if let Some(xdg) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join("visorsim"));
    }
    var("HOME").map(|home| home.join(".cache").join("visorsim"))
}

/// Whether `name` is a file this cache writes: a module
/// (`<name>-<crc>-<seed>-<len>-<mtime>-g<version>-<fingerprint>.gz`, of any
/// generator version), its `.sum` sidecar, or a temporary file of either
/// left by an interrupted write (`.<file>.tmp-<pid>-<n>`).
pub fn is_cache_file_name(name: &str) -> bool {
    if let Some(rest) = name.strip_prefix('.') {
        return match rest.rsplit_once(".tmp-") {
            Some((base, tail)) => {
                let mut parts = tail.split('-');
                let numeric =
                    |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
                numeric(parts.next()) && numeric(parts.next()) && parts.next().is_none() && is_cache_file_name(base)
            }
            None => false,
        };
    }
    let Some(stem) = name.strip_suffix(".gz.sum").or_else(|| name.strip_suffix(".gz")) else { return false };
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let mut parts = stem.rsplitn(7, '-');
    let (Some(fp), Some(version), Some(mtime), Some(len), Some(seed), Some(crc), Some(module)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    hex(fp, 8)
        && version.strip_prefix('g').is_some_and(digits)
        && hex(mtime, 8)
        && digits(len)
        && hex(seed, 16)
        && hex(crc, 8)
        && !module.is_empty()
}

/// The files of this cache in `dir` ([`is_cache_file_name`]; regular files
/// only), with their sizes in bytes, sorted by name. Nothing else in `dir`
/// is listed. A missing `dir` has none.
///
/// # Errors
/// Reading `dir` failed.
pub fn cache_files(dir: &Path) -> io::Result<Vec<(PathBuf, u64)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        let meta = entry.metadata()?;
        if meta.is_file() && is_cache_file_name(&name) {
            files.push((entry.path(), meta.len()));
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::gzip_system_module;

    #[test]
    fn cache_hit_returns_identical_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let len = 300_000;
        let fresh = cached_gzip_system_module(Some(&cache), "s.v00", 4, len, 9, &mut |_| {}).unwrap();
        assert_eq!(fresh, gzip_system_module("s.v00", 4, len, 9, &mut |_| {}));
        let files: Vec<_> = fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files.len(), 2, "module and sidecar, no temporary files: {files:?}");

        let mut calls = Vec::new();
        let hit = cached_gzip_system_module(Some(&cache), "s.v00", 4, len, 9, &mut |d| calls.push(d)).unwrap();
        assert_eq!(hit, fresh);
        assert_eq!(calls, [len], "a hit reports completion once");

        // Every key input makes a different entry.
        let other = cached_gzip_system_module(Some(&cache), "s.v00", 4, len, 10, &mut |_| {}).unwrap();
        assert_ne!(other.bytes, fresh.bytes);
        assert_eq!(fs::read_dir(&cache).unwrap().count(), 4);

        // No cache directory: no cache.
        let none = cached_gzip_system_module(None, "s.v00", 4, len, 9, &mut |_| {}).unwrap();
        assert_eq!(none, fresh);
    }

    #[test]
    fn corrupt_cache_files_are_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let len = 200_000;
        let good = cached_gzip_system_module(Some(dir.path()), "t.v00", 4, len, 0, &mut |_| {}).unwrap();
        let file = dir.path().join(cache_file_name("t.v00", 4, len, 0));
        let sum = sidecar_path(&file);

        type Damage = fn(&Path, &Path);
        let damages: [(&str, Damage); 6] = [
            ("flipped byte", |f, _| {
                let mut b = fs::read(f).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0x40;
                fs::write(f, b).unwrap();
            }),
            ("truncated", |f, _| {
                let b = fs::read(f).unwrap();
                fs::write(f, &b[..b.len() - 100]).unwrap();
            }),
            ("empty", |f, _| fs::write(f, b"").unwrap()),
            ("sidecar missing", |_, s| fs::remove_file(s).unwrap()),
            ("sidecar garbage", |_, s| fs::write(s, b"size=1 crc32=zz").unwrap()),
            ("sidecar claims a huge size", |_, s| {
                fs::write(s, b"visorsim-cache size=99999999999999 crc32=00000000\n").unwrap()
            }),
        ];
        for (what, damage) in damages {
            damage(&file, &sum);
            let mut calls = 0;
            let got = cached_gzip_system_module(Some(dir.path()), "t.v00", 4, len, 0, &mut |_| calls += 1).unwrap();
            assert_eq!(got, good, "{what}");
            assert!(calls >= 1, "{what}");
            assert!(read_cached(&file, len, u64::MAX).is_some(), "{what}: cache not rewritten");
        }
    }

    #[test]
    fn cache_write_failure_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"not a directory").unwrap();
        let err = cached_gzip_system_module(Some(&blocker.join("sub")), "s", 0, 10, 0, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("sub"), "{err}");
        assert_eq!((err.kind(), err.path()), (CacheErrorKind::CreateDir, &*blocker.join("sub")));
        assert!(std::error::Error::source(&err).is_some(), "the I/O error is the source");
        // As an io::Error it keeps the kind and the typed error.
        let io = io::Error::from(err);
        assert!(io.get_ref().and_then(|e| e.downcast_ref::<CacheError>()).is_some());
    }

    #[test]
    fn cache_files_lists_only_this_caches_files() {
        let dir = tempfile::tempdir().unwrap();
        let name = cache_file_name("s.v00", 3, 1000, 0);
        assert!(is_cache_file_name(&name), "{name}");
        for own in [name.clone(), format!("{name}.sum"), format!(".{name}.tmp-12-0"), format!(".{name}.sum.tmp-1-2")] {
            assert!(is_cache_file_name(&own), "{own}");
            fs::write(dir.path().join(&own), b"x").unwrap();
        }
        for other in ["notes.txt", "s.v00.gz", "s.v00-keep.gz", ".hidden", ".x.tmp-1-2", "a-b-c-d-e-f-g.gz"] {
            assert!(!is_cache_file_name(other), "{other}");
            fs::write(dir.path().join(other), b"x").unwrap();
        }
        let listed = cache_files(dir.path()).unwrap();
        assert_eq!(listed.len(), 4, "{listed:?}");
        assert!(listed.iter().all(|(_, size)| *size == 1));
        assert!(cache_files(&dir.path().join("absent")).unwrap().is_empty());
    }

    #[test]
    fn cache_file_names_are_safe() {
        let n = cache_file_name("../../etc/passwd\0x", 1, 2, 3);
        assert!(!n.contains('/') && !n.contains('\0'), "{n}");
        assert_ne!(cache_file_name("a/b", 1, 2, 3), cache_file_name("a_b", 1, 2, 3));
    }
}
