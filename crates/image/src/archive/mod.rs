//! Configuration and image-database archives: `local.tgz`, `state.tgz`,
//! `imgdb.tgz`, and a bounded reader for `state.tgz` from untrusted disks.
//!
//! On a real host `/etc` is saved by backup.sh as `local.tgz` (a gzip'd tar
//! of the saved files under `etc/`), which is then tarred alone into
//! `state.tgz` (docs/host.md: After the boot, What is saved, backup.sh):
//!
//! ```text
//! state.tgz = gzip( tar[ local.tgz ] )
//! local.tgz = gzip( tar[ etc/, etc/hosts, etc/shadow, etc/vmware/, ... ] )
//! imgdb.tgz = gzip( tar[ var/, ..., var/db/esximg/profiles/<profile>,
//!                        var/db/esximg/vibs/<vib>-<number>.xml, ... ] )
//!
//! a tar stream:
//! +--------+------+------+-----+--------+------+------------+-------------+
//! | header | data | pad  | ... | header | data | 2 zero     | zeros up to |
//! | 512 B  | size | →512 |     |        |      | blocks     | 10240 B     |
//! +--------+------+------+-----+--------+------+------------+-------------+
//! ```
//!
//! Writing: archives are POSIX ustar (GNU `L` long-name headers for names
//! that do not fit in 255 bytes), members sorted by name with their parent
//! directories, uid/gid 0 (root/root), one caller-given mtime, padded to
//! GNU tar's 10240-byte records, gzip'd with [`gzip_bytes`]. Same input,
//! same bytes. The header fields are in the contract of `tar_write.rs`.
//!
//! Reading ([`read_state_tgz`]) treats the bytes as hostile: it never
//! panics, never allocates past [`ArchiveLimits`] (sizes are checked from the
//! header before any data is read), and rejects absolute paths, `..`
//! components, links and devices with an [`ArchiveError`] naming the
//! member. It never follows or creates anything: it only returns data.
//!
//! ```text
//!   mod.rs         the API: EtcFile, local_tgz, state_tgz, read_state_tgz, ArchiveLimits
//!   etc_defaults   fresh_etc: the /etc of a fresh install
//!   imgdb          imgdb_tgz: the image database
//!   tar_write      the deterministic ustar writer
//!   tar_read       the bounded tar reader
//!   error          ArchiveError, its kind, SpecialMember
//! ```

mod error;
mod etc_defaults;
mod imgdb;
mod tar_read;
mod tar_write;
#[cfg(test)]
mod tests;

pub use error::{ArchiveError, ArchiveErrorKind, SpecialMember};
pub use etc_defaults::fresh_etc;
pub use imgdb::imgdb_tgz;
pub use tar_read::RATIO_GRACE_BYTES;

use crate::payload::gzip_bytes;

/// One file of the saved configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcFile {
    /// Path relative to `/`, without a leading slash (`etc/vmware/esx.conf`).
    pub path: String,
    /// Permission bits, including setuid/setgid/sticky (`0o7777` at most).
    pub mode: u32,
    /// File contents.
    pub data: Vec<u8>,
}

/// Mode of directories in the archives.
const MODE_DIR: u32 = 0o755;
/// Mode of plain files in state.tgz and imgdb.tgz.
const MODE_FILE: u32 = 0o644;

/// Tar block size: headers are one block, data is padded to whole blocks.
const BLOCK: usize = 512;

/// A path without empty, `.` and `..` components and leading slashes;
/// `None` if nothing is left. The writer stores and the reader returns
/// paths in this form.
fn normalize(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != "." && *c != "..").collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// `local.tgz`: a gzip'd ustar archive of `files` plus their parent
/// directories, uid/gid 0, mtime `mtime`, sorted by name. Deterministic.
/// Paths lose leading slashes and `.`/`..` components; of files with the
/// same path the last one wins.
pub fn local_tgz(files: &[EtcFile], mtime: u32) -> Vec<u8> {
    gzip_bytes(None, &tar_write::tar_of(files, mtime), mtime)
}

/// `state.tgz`: a gzip'd tar holding exactly one member, `local.tgz`.
pub fn state_tgz(local_tgz: &[u8], mtime: u32) -> Vec<u8> {
    let mut w = tar_write::TarWriter::new(mtime);
    w.entry("local.tgz", tar_write::TYPE_FILE, MODE_FILE, local_tgz);
    gzip_bytes(None, &w.finish(), mtime)
}

/// Bounds for reading an untrusted archive. Each applies to each of the two
/// archive levels (state.tgz, then local.tgz) separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Most members (files, directories, anything) in one archive.
    pub max_members: usize,
    /// Largest regular member, in bytes.
    pub max_member_bytes: u64,
    /// Most bytes of member data (including extended headers) in one
    /// archive.
    pub max_total_bytes: u64,
    /// Most inflated bytes per gzip'd byte consumed, checked as the stream
    /// inflates once past [`RATIO_GRACE_BYTES`] (a zip-bomb guard).
    pub max_ratio: u64,
}

/// The default [`ArchiveLimits::max_ratio`]: 100:1, the ratio Apache POI's
/// zip-bomb guard refuses by default (`ZipSecureFile`'s minimum inflate
/// ratio of 0.01, <https://poi.apache.org/apidocs/org/apache/poi/openxml4j/util/ZipSecureFile.html>).
/// Deflate itself reaches about 1030:1 on zeros; a real `/etc` archive
/// inflates about 5–20:1 (text and tar header blocks), and `local.tgz`
/// inside `state.tgz` barely at all (it is gzip'd already).
pub const DEFAULT_MAX_RATIO: u64 = 100;

impl Default for ArchiveLimits {
    /// 4096 members, 64 MiB per member, 128 MiB in all, 100:1.
    fn default() -> ArchiveLimits {
        ArchiveLimits {
            max_members: 4096,
            max_member_bytes: 64 << 20,
            max_total_bytes: 128 << 20,
            max_ratio: DEFAULT_MAX_RATIO,
        }
    }
}

/// The files saved in a `state.tgz` (state.tgz → local.tgz → files), read
/// as untrusted input within `limits` (applied to each archive level).
///
/// Returns the regular files of `local.tgz` in archive order (directories
/// are not returned; for duplicate paths the last wins). Paths lose a
/// leading `./`. Other regular members of state.tgz are ignored.
///
/// # Errors
/// Corrupt gzip or tar data, a missing `local.tgz`, and any member with an
/// absolute path, a `..` component, a link or device type, or beyond the
/// limits, in either archive; the error names the archive and member.
pub fn read_state_tgz(bytes: &[u8], limits: &ArchiveLimits) -> Result<Vec<EtcFile>, ArchiveError> {
    let outer = tar_read::read_tgz(bytes, "state.tgz", limits, &mut |p| p == "local.tgz")?;
    let local = outer.into_iter().find(|f| f.path == "local.tgz").ok_or(ArchiveError::MissingLocalTgz)?;
    tar_read::read_tgz(&local.data, "local.tgz", limits, &mut |_| true)
}
