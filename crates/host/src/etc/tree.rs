//! The tree itself: paths, modes, the save marks, and what backup.sh and
//! auto-backup.sh take from it (`saved_files`, `diff`).
//!
//! Invariants (see [`crate::etc`]): paths are normalised and never clash
//! (a file where a directory is, or under a file); the sticky bit and the
//! mark agree; a sticky file stays sticky.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use visorsim_image::archive::{fresh_etc, EtcFile};

use super::{EtcError, ALWAYS_DIRS, CONFIG_FILES, STICKY_BIT};
use crate::clock::SimTime;

/// One file of the RAM-disk's `/etc`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcEntry {
    /// File contents; saved as base64 text (4 bytes per 3: a saved host
    /// stays about the size of its `/etc`), read back from that or from
    /// the array of numbers older saves used.
    #[serde(with = "contents")]
    pub data: Vec<u8>,
    /// Permission bits (`0o7777` at most); has `0o1000` exactly when
    /// `sticky`.
    pub mode: u32,
    /// Marked for saving: a `.#<name>` shadow exists beside it.
    pub sticky: bool,
}

/// [`EtcEntry::data`] in saved state: a base64 string (the standard
/// alphabet, padded), or, as older saves have it, an array of byte values.
mod contents {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(data))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Contents;
        impl<'de> Visitor<'de> for Contents {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("file contents as base64 text or an array of bytes")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
                STANDARD.decode(text).map_err(|e| E::custom(format_args!("file contents: {e}")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                // The hint comes from the input: it is not trusted for the allocation.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(byte) = seq.next_element::<u8>()? {
                    out.push(byte);
                }
                Ok(out)
            }
        }
        d.deserialize_any(Contents)
    }

    #[cfg(test)]
    mod tests {
        use super::super::EtcEntry;

        #[test]
        fn saved_as_base64_and_read_from_either_form() {
            let entry = EtcEntry { data: vec![0; 3000], mode: 0o644, sticky: true };
            let json = serde_json::to_string(&entry).unwrap();
            assert!(json.len() < 4100, "{} bytes for 3000", json.len());
            assert_eq!(serde_json::from_str::<EtcEntry>(&json).unwrap(), entry);
            let old: EtcEntry = serde_json::from_str(r#"{"data": [104, 105], "mode": 420, "sticky": false}"#).unwrap();
            assert_eq!(old.data, b"hi");
            assert!(
                serde_json::from_str::<EtcEntry>(r#"{"data": "not base64!", "mode": 420, "sticky": false}"#).is_err()
            );
        }
    }
}

/// Normalises `path`: no leading `/`, no empty or `.` components.
pub(super) fn normalize(path: &str) -> Result<String, EtcError> {
    let bad = |reason: &str| EtcError::BadPath { path: path.to_string(), reason: reason.to_string() };
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(bad("'..' components are not allowed")),
            c if c.starts_with(".#") => return Err(bad("'.#' names are VisorFS save markers, not files")),
            c if c.contains('\0') => return Err(bad("NUL in a file name")),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(bad("empty"));
    }
    Ok(parts.join("/"))
}

/// The lines of `data` without their `\n` (a final `\n` does not start a
/// new line).
pub(super) fn lines(data: &[u8]) -> Vec<&[u8]> {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|&b| b == b'\n').collect()
}

/// `lines`, each ending with `\n`.
pub(super) fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// The RAM-disk's `/etc`: every file with its mode and save mark.
///
/// It serialises as a map from path to entry (for snapshots of a host);
/// deserialising does not re-check the invariants above, so only feed it
/// what serialising produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcTree {
    pub(super) files: BTreeMap<String, EtcEntry>,
}

impl EtcTree {
    /// An empty tree (no files at all; a booted host never has this).
    pub fn new() -> EtcTree {
        EtcTree::default()
    }

    /// The tree restored from `local.tgz`: every file is sticky (it was
    /// saved because it was marked). Files are taken in order, as tar
    /// extracts them: a later file replaces an earlier one with the same
    /// path, and a file tar could not create (a `..` or `.#` path, one
    /// whose parent is a file, one where a directory is) is skipped.
    pub fn from_files(files: Vec<EtcFile>) -> EtcTree {
        let mut tree = EtcTree::default();
        for f in files {
            let Ok(path) = normalize(&f.path) else { continue };
            if tree.clash(&path).is_some() {
                continue;
            }
            let mode = (f.mode & 0o7777) | STICKY_BIT;
            tree.files.insert(path, EtcEntry { data: f.data, mode, sticky: true });
        }
        tree
    }

    /// What a host boots with when `state.tgz` is missing or corrupt: the
    /// [`fresh_etc`] content for `hostname` and `seed`, the backup counter
    /// at 0 created `now`, all sticky.
    pub fn defaults(hostname: &str, seed: u64, now: SimTime) -> EtcTree {
        EtcTree::from_files(fresh_etc(hostname, seed, &now.ctime(), 0))
    }

    /// Why a file cannot be at `path` (normalised), if it cannot.
    fn clash(&self, path: &str) -> Option<&'static str> {
        if ALWAYS_DIRS.contains(&path) {
            return Some("is a directory on every host");
        }
        for (i, _) in path.match_indices('/') {
            let parent = &path[..i];
            if self.files.contains_key(parent) {
                return Some("a parent is a file");
            }
            if CONFIG_FILES.contains(&parent) {
                return Some("a parent is a configuration file");
            }
        }
        let dir = format!("{path}/");
        if self.files.range(dir.clone()..).next().is_some_and(|(k, _)| k.starts_with(&dir)) {
            return Some("is a directory");
        }
        None
    }

    /// The file at `path`.
    pub fn get(&self, path: &str) -> Option<&EtcEntry> {
        self.files.get(&normalize(path).ok()?)
    }

    /// The file at `path` as text, or `None` if missing or not UTF-8.
    pub fn text(&self, path: &str) -> Option<String> {
        String::from_utf8(self.get(path)?.data.clone()).ok()
    }

    /// Every file path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Creates or replaces the file at `path` with `data` and `mode` (as a
    /// shell or `cp` would). A sticky file stays sticky; a new file is
    /// sticky only if `mode` has the sticky bit.
    ///
    /// # Errors
    /// [`EtcErrorKind::BadPath`] for a path with `..` or a `.#` component,
    /// an empty one, or one that clashes with a file or directory.
    pub fn write(&mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Result<(), EtcError> {
        let norm = normalize(path)?;
        if let Some(reason) = self.clash(&norm) {
            return Err(EtcError::BadPath { path: path.to_string(), reason: reason.to_string() });
        }
        let was_sticky = self.files.get(&norm).is_some_and(|e| e.sticky);
        let sticky = was_sticky || mode & STICKY_BIT != 0;
        let mode = if sticky { (mode & 0o7777) | STICKY_BIT } else { mode & 0o7777 };
        self.files.insert(norm, EtcEntry { data: data.into(), mode, sticky });
        Ok(())
    }

    /// Marks the file at `path` for saving (VisorFS creates `.#<name>`).
    ///
    /// # Errors
    /// [`EtcErrorKind::NotFound`] if there is no such file.
    pub fn mark_sticky(&mut self, path: &str) -> Result<(), EtcError> {
        let entry = normalize(path)
            .ok()
            .and_then(|p| self.files.get_mut(&p))
            .ok_or_else(|| EtcError::NotFound { path: path.to_string() })?;
        entry.sticky = true;
        entry.mode |= STICKY_BIT;
        Ok(())
    }

    /// Deletes the file at `path` (and with it its mark); returns it.
    pub fn remove(&mut self, path: &str) -> Option<EtcEntry> {
        self.files.remove(&normalize(path).ok()?)
    }

    /// Writes a configuration file the API owns: it ends up sticky, a new
    /// one with `new_mode`.
    pub(super) fn put_config(&mut self, path: &str, data: Vec<u8>, new_mode: u32) {
        let entry =
            self.files.entry(path.to_string()).or_insert(EtcEntry { data: Vec::new(), mode: new_mode, sticky: true });
        entry.data = data;
        entry.sticky = true;
        entry.mode |= STICKY_BIT;
    }

    /// Exactly the sticky files, sorted by path: what backup.sh puts into
    /// `local.tgz`.
    pub fn saved_files(&self) -> Vec<EtcFile> {
        self.files
            .iter()
            .filter(|(_, e)| e.sticky)
            .map(|(p, e)| EtcFile { path: p.clone(), mode: e.mode, data: e.data.clone() })
            .collect()
    }

    /// The `.#<name>` shadows VisorFS shows beside the sticky files
    /// (`etc/vmware/.#esx.conf`), sorted by the original's path.
    pub fn shadow_markers(&self) -> Vec<String> {
        self.files
            .iter()
            .filter(|(_, e)| e.sticky)
            .map(|(p, _)| match p.rsplit_once('/') {
                Some((dir, name)) => format!("{dir}/.#{name}"),
                None => format!(".#{p}"),
            })
            .collect()
    }

    /// Paths, sorted, whose saved content differs between `self` and
    /// `other`: saved in one but not the other, or saved in both with
    /// different data or mode. This is auto-backup.sh's comparison of the
    /// live files with those in `state.tgz`; an empty result means nothing
    /// needs saving.
    pub fn diff(&self, other: &EtcTree) -> Vec<String> {
        let saved = |t: &EtcTree| -> BTreeMap<String, (u32, Vec<u8>)> {
            t.files.iter().filter(|(_, e)| e.sticky).map(|(p, e)| (p.clone(), (e.mode, e.data.clone()))).collect()
        };
        let (a, b) = (saved(self), saved(other));
        let mut out: Vec<String> = a.iter().filter(|(p, v)| b.get(*p) != Some(*v)).map(|(p, _)| p.clone()).collect();
        out.extend(b.keys().filter(|p| !a.contains_key(*p)).cloned());
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etc::EtcErrorKind;

    #[test]
    fn paths_are_normalised_and_checked() {
        assert_eq!(normalize("/etc//./hosts").unwrap(), "etc/hosts");
        for bad in ["", "/", "etc/../x", "etc/.#hosts", "etc/\0"] {
            assert_eq!(normalize(bad).unwrap_err().kind(), EtcErrorKind::BadPath, "{bad:?}");
        }
    }
}
