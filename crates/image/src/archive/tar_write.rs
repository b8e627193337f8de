//! The tar writer: deterministic POSIX ustar with the header fields GNU tar
//! writes, so that the same files and mtime always give the same bytes.
//!
//! Every header block is written field by field:
//!
//! ```text
//! offset size  field     written as
//!      0  100  name      the path, or its part after the ustar split
//!    100    8  mode      7 octal digits + NUL (permission bits only)
//!    108    8  uid       "0000000\0"
//!    116    8  gid       "0000000\0"
//!    124   12  size      11 octal digits + NUL; GNU base-256 when larger
//!    136   12  mtime     11 octal digits + NUL: the caller's mtime
//!    148    8  chksum    6 octal digits + NUL + space
//!    156    1  typeflag  '0' file, '5' directory, 'L' GNU long name
//!    157  100  linkname  empty
//!    257    8  magic     "ustar\0" "00" (POSIX), "ustar  \0" (GNU, next to 'L')
//!    265   32  uname     "root"
//!    297   32  gname     "root"
//!    329    8  devmajor  "0000000\0" (POSIX only)
//!    337    8  devminor  "0000000\0" (POSIX only)
//!    345  155  prefix    the directory part of a split name (POSIX only)
//!    500   12  -         zeros
//! ```
//!
//! Names up to 100 bytes go in `name`; longer ones are split at the first
//! `/` that leaves at most 100 bytes for `name` and 155 for `prefix`; names
//! that cannot be split get a GNU `././@LongLink` (`L`) header first, with
//! mode 0, the caller's mtime and root/root. The archive ends with two zero
//! blocks and is padded with zeros to a 10240-byte record.
//!
//! Why not `tar::Builder` (the `tar` crate is a workspace dependency): its
//! bytes differ, and these bytes are part of every image. tar 0.4 writes
//! the checksum as 7 octal digits + NUL where GNU tar writes 6 + NUL +
//! space; its `finish` does not pad to a 10240-byte record; its GNU
//! long-name header has mode 0644, mtime 0 and no user names; and it splits
//! a long ustar name at the longest prefix that fits, not the shortest.
//! Overriding all of that would leave only the block padding to the crate.

use std::collections::BTreeMap;

use super::{normalize, EtcFile, BLOCK, MODE_DIR};

/// GNU tar's record size (20 blocks); archives are padded to it.
const RECORD: usize = 20 * BLOCK;

/// Header type flag of a regular file.
pub(super) const TYPE_FILE: u8 = b'0';
/// Header type flag of a directory.
const TYPE_DIR: u8 = b'5';
/// Header type flag of a GNU long name (the data is the name).
const TYPE_GNU_LONGNAME: u8 = b'L';

/// Writes `v` into a numeric header field: zero-padded octal and a NUL, or
/// GNU base-256 when it does not fit.
pub(super) fn put_numeric(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    if digits >= 22 || v < 1u64 << (3 * digits) {
        let s = format!("{v:0digits$o}");
        field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
        field[digits] = 0;
    } else {
        field.fill(0);
        field[0] = 0x80;
        let be = v.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&be);
    }
}

/// An archive under construction.
pub(super) struct TarWriter {
    pub(super) out: Vec<u8>,
    mtime: u32,
}

impl TarWriter {
    pub(super) fn new(mtime: u32) -> TarWriter {
        TarWriter { out: Vec::new(), mtime }
    }

    /// Appends one header block. `gnu` selects the GNU magic (needed next to
    /// `L` headers) instead of POSIX ustar.
    pub(super) fn header(&mut self, name: &[u8], prefix: &[u8], kind: u8, mode: u32, size: u64, gnu: bool) {
        let mut h = [0u8; BLOCK];
        let n = name.len().min(100);
        h[..n].copy_from_slice(&name[..n]);
        put_numeric(&mut h[100..108], u64::from(mode & 0o7777));
        put_numeric(&mut h[108..116], 0);
        put_numeric(&mut h[116..124], 0);
        put_numeric(&mut h[124..136], size);
        put_numeric(&mut h[136..148], u64::from(self.mtime));
        h[156] = kind;
        if gnu {
            h[257..265].copy_from_slice(b"ustar  \0");
        } else {
            h[257..265].copy_from_slice(b"ustar\x0000");
        }
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        if !gnu {
            put_numeric(&mut h[329..337], 0);
            put_numeric(&mut h[337..345], 0);
            let p = prefix.len().min(155);
            h[345..345 + p].copy_from_slice(&prefix[..p]);
        }
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        let s = format!("{sum:06o}");
        h[148..154].copy_from_slice(&s.as_bytes()[s.len() - 6..]);
        h[154] = 0;
        self.out.extend_from_slice(&h);
    }

    /// Appends `data` padded to a whole block.
    fn data(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.out.resize(self.out.len() + pad, 0);
    }

    /// Appends an entry named `path` (directories end with `/`).
    pub(super) fn entry(&mut self, path: &str, kind: u8, mode: u32, data: &[u8]) {
        let p = path.as_bytes();
        let size = data.len() as u64;
        if p.len() <= 100 {
            self.header(p, &[], kind, mode, size, false);
        } else if let Some((prefix, name)) = split_ustar(p) {
            self.header(name, prefix, kind, mode, size, false);
        } else {
            let mut long = p.to_vec();
            long.push(0);
            self.header(b"././@LongLink", &[], TYPE_GNU_LONGNAME, 0, long.len() as u64, true);
            self.data(&long);
            self.header(p, &[], kind, mode, size, true);
        }
        self.data(data);
    }

    /// The archive: two zero blocks, padded to a whole record.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.out.resize(self.out.len() + 2 * BLOCK, 0);
        let pad = (RECORD - self.out.len() % RECORD) % RECORD;
        self.out.resize(self.out.len() + pad, 0);
        self.out
    }
}

/// Splits a path at a `/` into a ustar prefix (≤ 155 bytes) and name
/// (1–100 bytes), if possible.
fn split_ustar(p: &[u8]) -> Option<(&[u8], &[u8])> {
    let min_cut = p.len().saturating_sub(101);
    (min_cut..p.len().min(156))
        .find(|&i| p[i] == b'/' && p.len() - i - 1 <= 100 && i + 1 < p.len())
        .map(|i| (&p[..i], &p[i + 1..]))
}

/// A tar of `files` with an entry for every parent directory, sorted by
/// name. Paths are normalised ([`normalize`](super::normalize)); files whose path is empty
/// after that are left out; of files with the same path the last wins.
pub(super) fn tar_of(files: &[EtcFile], mtime: u32) -> Vec<u8> {
    // Keys are tar names: directories end with '/', which sorts a directory
    // before everything under it.
    let mut entries: BTreeMap<String, Option<&EtcFile>> = BTreeMap::new();
    for f in files {
        let Some(path) = normalize(&f.path) else { continue };
        for (i, _) in path.match_indices('/') {
            entries.insert(format!("{}/", &path[..i]), None);
        }
        entries.insert(path, Some(f));
    }
    let mut w = TarWriter::new(mtime);
    for (name, file) in &entries {
        match file {
            Some(f) => w.entry(name, TYPE_FILE, f.mode, &f.data),
            None => w.entry(name, TYPE_DIR, MODE_DIR, &[]),
        }
    }
    w.finish()
}
