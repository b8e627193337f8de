//! The running host's `/etc` on the RAM-disk, what VisorFS marks for
//! saving, and the configuration API that changes it (ESXI-BOOT.md 9.1–9.2).
//!
//! ```text
//!   state.tgz ─read_state_tgz─▶ Vec<EtcFile> ─from_files─▶ EtcTree (all sticky)
//!   (missing/corrupt)            fresh_etc   ─defaults───▶ EtcTree (all sticky)
//!   EtcTree ─saved_files─▶ Vec<EtcFile> (sticky only) ─local_tgz/state_tgz─▶ bank
//! ```
//!
//! VisorFS marks a file for saving by showing a shadow `.#<name>` beside it
//! (`etc/vmware/.#esx.conf`); backup.sh finds the shadows with
//! `find etc -follow -type f -name '.#*'` and saves the originals. Here the
//! mark is [`EtcEntry::sticky`]; [`EtcTree::shadow_markers`] lists the
//! shadows VisorFS would show. Files are keyed by their path relative to
//! `/` (`etc/hosts`).
//!
//! Invariants:
//! - An entry is sticky exactly when its mode has the sticky bit (`0o1000`),
//!   the bit ESXi's saved configuration files carry (`-rw-r--r-T` in
//!   `local.tgz`). Marking sets the bit; the bit in a written mode marks.
//! - Once sticky, a file stays sticky: rewriting it keeps the mark.
//! - Every configuration setter leaves the files it touches sticky, as ESXi
//!   does for its configuration files; [`EtcTree::write`] of a new file
//!   without the sticky bit does not, and such a file is not saved.
//! - Paths are normalised (no leading `/`, no `.` or empty components),
//!   never contain `..`, and no component is a `.#` marker name. A path is
//!   never both a file and a directory; `etc` and `etc/vmware` are always
//!   directories.
//! - Everything is deterministic: no clock, no OS randomness. Password
//!   hashes are derived from the password and a caller-given salt seed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::SimTime;
use visorsim_image::archive::{fresh_etc, EtcFile};

/// `/etc/hosts`.
pub const HOSTS: &str = "etc/hosts";
/// `/etc/shadow`.
pub const SHADOW: &str = "etc/shadow";
/// `/etc/vmware/esx.conf`.
pub const ESX_CONF: &str = "etc/vmware/esx.conf";
/// `/etc/vmware/.backup.counter`, owned by backup.sh.
pub const BACKUP_COUNTER: &str = "etc/vmware/.backup.counter";

/// First line of [`BACKUP_COUNTER`].
const COUNTER_HEADER: &str = "# This file is owned and updated by /sbin/backup.sh";

/// The sticky bit of a mode.
const STICKY_BIT: u32 = 0o1000;
/// Mode of a new configuration file: `rw-r--r-T`.
const MODE_CONFIG: u32 = 0o1644;
/// Mode of a new `etc/shadow`: `r-------T`.
const MODE_SHADOW: u32 = 0o1400;

/// Directories present on every host: a file may not take their place.
const ALWAYS_DIRS: [&str; 2] = ["etc", "etc/vmware"];
/// Files the configuration API owns: a directory may not take their place.
const CONFIG_FILES: [&str; 4] = [HOSTS, SHADOW, ESX_CONF, BACKUP_COUNTER];

/// esx.conf keys the host name lives in.
const KEY_HOSTNAME: &str = "/adv/Misc/HostName";
const KEY_SYSTEM_HOSTNAME: &str = "/system/hostname";
const KEY_TCPIP_HOSTNAME: &str = "/net/tcpip/instance[defaultTcpipStack]/hostname";
const KEY_TCPIP_DOMAIN: &str = "/net/tcpip/instance[defaultTcpipStack]/domain";
/// esx.conf keys holding the management address, in order of preference.
const KEYS_IP: [&str; 2] = ["/adv/Misc/HostIPAddr", "/net/vmkernelnic/child[0000]/ipv4address"];

/// One file of the RAM-disk's `/etc`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcEntry {
    /// File contents.
    pub data: Vec<u8>,
    /// Permission bits (`0o7777` at most); has `0o1000` exactly when
    /// `sticky`.
    pub mode: u32,
    /// Marked for saving: a `.#<name>` shadow exists beside it.
    pub sticky: bool,
}

/// What went wrong changing `/etc`, for callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtcErrorKind {
    /// A path that is empty, has `..`, names a `.#` marker, or clashes with
    /// a file or directory.
    BadPath,
    /// No such file.
    NotFound,
    /// A host name that is not a valid DNS name.
    BadHostName,
    /// A user name that cannot appear in `etc/shadow`.
    BadUserName,
    /// An esx.conf key or advanced option name that cannot be written.
    BadKey,
}

/// An error changing `/etc`; names the path, name or key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EtcError {
    /// See [`EtcErrorKind::BadPath`].
    #[error("Invalid path '{path}': {reason}")]
    BadPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// See [`EtcErrorKind::NotFound`].
    #[error("No such file '{path}'")]
    NotFound {
        /// The path as given.
        path: String,
    },
    /// See [`EtcErrorKind::BadHostName`].
    #[error("Invalid host name '{name}': {reason}")]
    BadHostName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// See [`EtcErrorKind::BadUserName`].
    #[error("Invalid user name '{user}': {reason}")]
    BadUserName {
        /// The name as given.
        user: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// See [`EtcErrorKind::BadKey`].
    #[error("Invalid configuration key '{key}': {reason}")]
    BadKey {
        /// The key or option name as given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl EtcError {
    /// What went wrong.
    pub fn kind(&self) -> EtcErrorKind {
        match self {
            EtcError::BadPath { .. } => EtcErrorKind::BadPath,
            EtcError::NotFound { .. } => EtcErrorKind::NotFound,
            EtcError::BadHostName { .. } => EtcErrorKind::BadHostName,
            EtcError::BadUserName { .. } => EtcErrorKind::BadUserName,
            EtcError::BadKey { .. } => EtcErrorKind::BadKey,
        }
    }
}

/// Normalises `path`: no leading `/`, no empty or `.` components.
fn normalize(path: &str) -> Result<String, EtcError> {
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
fn lines(data: &[u8]) -> Vec<&[u8]> {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|&b| b == b'\n').collect()
}

/// `lines`, each ending with `\n`.
fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

// ---------------------------------------------------------------------------
// esx.conf lines: `/path/key = "value"`
//
// Quoting (our choice; the escapes real ESXi uses are not documented): `\`
// and `"` are written as `\\` and `\"`, newline, CR and tab as `\n`, `\r`,
// `\t`, other ASCII control characters as `\xHH`. Reading undoes these; an
// unknown escape keeps its backslash.

/// `value` quoted for esx.conf.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a quoted string starting after its opening `"`; stops at
/// the closing quote or the end of the line.
fn unquote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('x') => {
                    let rest = chars.as_str();
                    match rest.get(..2).and_then(|h| u8::from_str_radix(h, 16).ok()).filter(u8::is_ascii) {
                        Some(b) => {
                            out.push(char::from(b));
                            chars = rest[2..].chars();
                        }
                        None => out.push_str("\\x"),
                    }
                }
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// `(key, value)` of an esx.conf line, or `None` for anything else
/// (comments, blank or malformed lines, which are kept as they are).
fn parse_conf_line(line: &[u8]) -> Option<(&str, String)> {
    let line = std::str::from_utf8(line).ok()?;
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    if !key.starts_with('/') {
        return None;
    }
    let value = value.trim();
    let value = match value.strip_prefix('"') {
        Some(quoted) => unquote(quoted),
        None => value.to_string(),
    };
    Some((key, value))
}

/// Checks that `key` can be written as an esx.conf key.
fn check_key(key: &str) -> Result<(), EtcError> {
    let bad = |reason| Err(EtcError::BadKey { key: key.to_string(), reason });
    if !key.starts_with('/') || key.len() < 2 {
        return bad("must start with '/' and name something");
    }
    if key.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if key.ends_with('/') || key.contains("//") {
        return bad("empty path component");
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control() || c == '=' || c == '"' || c == '\\') {
        return bad("whitespace, control characters, '=', '\"' and '\\' are not allowed");
    }
    Ok(())
}

/// The esx.conf key of an advanced option: `Net.TcpipHeapMax`,
/// `/Net/TcpipHeapMax` (esxcli's form) and `/adv/Net/TcpipHeapMax` all give
/// `/adv/Net/TcpipHeapMax`.
fn advanced_key(name: &str) -> Result<String, EtcError> {
    let bad = |reason| EtcError::BadKey { key: name.to_string(), reason };
    let parts: Vec<&str> = match name.strip_prefix('/') {
        Some(rest) => {
            let parts: Vec<&str> = rest.split('/').collect();
            match parts.as_slice() {
                ["adv", group, option] => vec![*group, *option],
                ["adv", ..] => return Err(bad("/adv/ must be followed by a group and a name")),
                _ => parts,
            }
        }
        None => name.split('.').collect(),
    };
    if parts.len() != 2 {
        return Err(bad("an advanced option is Group.Name, /Group/Name or /adv/Group/Name"));
    }
    if parts.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
        return Err(bad("group and name are letters, digits and '_'"));
    }
    Ok(format!("/adv/{}/{}", parts[0], parts[1]))
}

/// Checks a DNS host name (short or fully qualified).
fn check_hostname(name: &str) -> Result<(), EtcError> {
    let bad = |reason: String| Err(EtcError::BadHostName { name: name.to_string(), reason });
    if name.is_empty() || name.len() > 253 {
        return bad("must be 1 to 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad(format!("label '{label}' must be 1 to 63 characters"));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return bad(format!("label '{label}' may only have letters, digits and '-'"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad(format!("label '{label}' starts or ends with '-'"));
        }
    }
    Ok(())
}

/// Checks a user name for `etc/shadow`.
fn check_user(user: &str) -> Result<(), EtcError> {
    let bad = |reason| Err(EtcError::BadUserName { user: user.to_string(), reason });
    if user.is_empty() || user.len() > 32 {
        return bad("must be 1 to 32 characters");
    }
    if user.starts_with('-') || !user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return bad("only letters, digits, '.', '_' and '-', not starting with '-'");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Password hashes
//
// NOT cryptography. `$6$<salt>$<hash>` only looks like SHA-512-crypt: the
// 86-character "hash" is a splitmix64 stream seeded with FNV-1a of the salt
// and the password. It is deterministic, distinguishes passwords in tests,
// and must never protect anything.

/// The crypt(3) base-64 alphabet.
const CRYPT_ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// splitmix64: the next value of `state`'s stream.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `len` crypt-alphabet characters from the stream seeded by `seed`.
fn crypt_chars(seed: u64, len: usize) -> String {
    let mut state = seed;
    let mut out = String::with_capacity(len + 10);
    while out.len() < len {
        let v = splitmix64(&mut state);
        for i in 0..10 {
            out.push(char::from(CRYPT_ALPHABET[((v >> (6 * i)) & 63) as usize]));
        }
    }
    out.truncate(len);
    out
}

/// The fake hash of `password` with `salt` (see above: not cryptography).
fn fake_crypt(salt: &str, password: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in salt.as_bytes().iter().chain(b"$").chain(password.as_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("$6${salt}${}", crypt_chars(h, 86))
}

// ---------------------------------------------------------------------------

/// The RAM-disk's `/etc`: every file with its mode and save mark.
///
/// It serialises as a map from path to entry (for snapshots of a host);
/// deserialising does not re-check the invariants above, so only feed it
/// what serialising produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcTree {
    files: BTreeMap<String, EtcEntry>,
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
    fn put_config(&mut self, path: &str, data: Vec<u8>, new_mode: u32) {
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

    // -- esx.conf -----------------------------------------------------------

    /// The value of `key` (`/adv/Misc/HostName`) in `etc/vmware/esx.conf`;
    /// if the key appears more than once, the last line wins.
    pub fn esx_conf_get(&self, key: &str) -> Option<String> {
        let data = &self.files.get(ESX_CONF)?.data;
        lines(data).into_iter().rev().filter_map(parse_conf_line).find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Sets `key` to `value` in `etc/vmware/esx.conf` as `key = "value"`:
    /// the line keeps its place (later duplicates are removed), a new key
    /// goes at the end, other lines are untouched. Creates the file if
    /// needed; leaves it sticky.
    ///
    /// # Errors
    /// [`EtcErrorKind::BadKey`] if `key` does not start with `/`, has an
    /// empty component, whitespace, a control character, `=`, `"` or `\`.
    pub fn esx_conf_set(&mut self, key: &str, value: &str) -> Result<(), EtcError> {
        check_key(key)?;
        let new_line = format!("{key} = {}", quote(value)).into_bytes();
        let old = self.files.get(ESX_CONF).map(|e| e.data.as_slice()).unwrap_or_default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut placed = false;
        for line in lines(old) {
            if parse_conf_line(line).is_some_and(|(k, _)| k == key) {
                if !placed {
                    out.push(new_line.clone());
                    placed = true;
                }
            } else {
                out.push(line.to_vec());
            }
        }
        if !placed {
            out.push(new_line);
        }
        self.put_config(ESX_CONF, join(&out), MODE_CONFIG);
        Ok(())
    }

    /// The value of an advanced option (`Misc.HostName`,
    /// `/Misc/HostName` or `/adv/Misc/HostName`); `None` if unset or the
    /// name is malformed.
    pub fn advanced_option_get(&self, name: &str) -> Option<String> {
        self.esx_conf_get(&advanced_key(name).ok()?)
    }

    /// Sets an advanced option: `Group.Name`, `/Group/Name` and
    /// `/adv/Group/Name` all write `/adv/Group/Name` in esx.conf. Only the
    /// option is written (setting `Misc.HostName` this way does not touch
    /// `etc/hosts`; use [`EtcTree::set_hostname`]).
    ///
    /// # Errors
    /// [`EtcErrorKind::BadKey`] unless the name is a group and a name of
    /// letters, digits and `_`.
    pub fn advanced_option_set(&mut self, name: &str, value: &str) -> Result<(), EtcError> {
        let key = advanced_key(name)?;
        self.esx_conf_set(&key, value)
    }

    // -- host name ----------------------------------------------------------

    /// The host name: `/adv/Misc/HostName` in esx.conf.
    pub fn hostname(&self) -> Option<String> {
        self.esx_conf_get(KEY_HOSTNAME)
    }

    /// Renames the host, as `esxcli system hostname set` does. A name
    /// without a dot keeps the current domain (the TCP/IP stack's, else
    /// that of `/system/hostname`, else `localdomain`).
    ///
    /// In esx.conf: `/adv/Misc/HostName` = `name` as given,
    /// `/system/hostname` = the FQDN, and the default TCP/IP stack's
    /// `hostname` (short) and `domain`. In `etc/hosts`: every non-loopback
    /// line naming the old host gets `<address>\t<fqdn> <short>`; if there
    /// is none and esx.conf knows the management address, such a line is
    /// added. Both files end up sticky.
    ///
    /// # Errors
    /// [`EtcErrorKind::BadHostName`] unless `name` is a DNS name (labels
    /// of 1–63 letters, digits and inner `-`, 253 characters at most).
    pub fn set_hostname(&mut self, name: &str) -> Result<(), EtcError> {
        check_hostname(name)?;
        let system = self.esx_conf_get(KEY_SYSTEM_HOSTNAME);
        let (short, domain) = match name.split_once('.') {
            Some((short, domain)) => (short.to_string(), domain.to_string()),
            None => {
                let domain = self
                    .esx_conf_get(KEY_TCPIP_DOMAIN)
                    .filter(|d| !d.is_empty())
                    .or_else(|| system.as_deref().and_then(|s| s.split_once('.')).map(|(_, d)| d.to_string()))
                    .unwrap_or_else(|| "localdomain".to_string());
                (name.to_string(), domain)
            }
        };
        let fqdn = format!("{short}.{domain}");

        // The names the host had, to find its line in etc/hosts.
        let mut old: Vec<String> = Vec::new();
        for v in [self.hostname(), system, self.esx_conf_get(KEY_TCPIP_HOSTNAME)].into_iter().flatten() {
            if let Some((s, _)) = v.split_once('.') {
                old.push(s.to_string());
            }
            old.push(v);
        }
        old.retain(|n| !n.is_empty() && n != "localhost" && n != "localhost.localdomain");

        // Keys are constants that pass check_key.
        for (key, value) in [
            (KEY_HOSTNAME, name),
            (KEY_SYSTEM_HOSTNAME, fqdn.as_str()),
            (KEY_TCPIP_HOSTNAME, short.as_str()),
            (KEY_TCPIP_DOMAIN, domain.as_str()),
        ] {
            self.esx_conf_set(key, value)?;
        }

        let host_line = |addr: &str| format!("{addr}\t{fqdn} {short}").into_bytes();
        let old_hosts = self.files.get(HOSTS).map(|e| e.data.as_slice()).unwrap_or_default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut found = false;
        for line in lines(old_hosts) {
            let text = std::str::from_utf8(line).unwrap_or("");
            let mut fields = text.split('#').next().unwrap_or("").split_whitespace();
            let addr = fields.next().unwrap_or("");
            let loopback = addr.starts_with("127.") || addr == "::1";
            if !addr.is_empty() && !loopback && fields.any(|f| old.iter().any(|o| o == f)) {
                out.push(host_line(addr));
                found = true;
            } else {
                out.push(line.to_vec());
            }
        }
        if !found {
            if let Some(ip) = KEYS_IP.iter().find_map(|k| self.esx_conf_get(k)).filter(|ip| !ip.is_empty()) {
                out.push(host_line(&ip));
            }
        }
        if self.files.contains_key(HOSTS) || !out.is_empty() {
            self.put_config(HOSTS, join(&out), MODE_CONFIG);
        }
        Ok(())
    }

    // -- users --------------------------------------------------------------

    /// The `etc/shadow` line of `user`, split into fields.
    fn shadow_fields(&self, user: &str) -> Option<Vec<String>> {
        let data = &self.files.get(SHADOW)?.data;
        lines(data).into_iter().find_map(|l| {
            let l = std::str::from_utf8(l).ok()?;
            let fields: Vec<String> = l.split(':').map(str::to_string).collect();
            (fields.len() >= 2 && fields[0] == user).then_some(fields)
        })
    }

    /// Whether `user` has a line in `etc/shadow` (the only user database
    /// modelled).
    pub fn user_exists(&self, user: &str) -> bool {
        self.shadow_fields(user).is_some()
    }

    /// Sets `user`'s password in `etc/shadow` to
    /// `$6$<16-char salt from salt_seed>$<86-char fake hash>`, adding the
    /// user (`user:<hash>::0:99999:7:::`, no last-change date) if missing;
    /// the other fields of an existing line are kept. The hash is a simple
    /// deterministic function of the password and salt, NOT real crypto
    /// (see the module source). The file ends up sticky.
    ///
    /// # Errors
    /// [`EtcErrorKind::BadUserName`] unless `user` is 1–32 letters, digits,
    /// `.`, `_` or `-`, not starting with `-`.
    pub fn set_password(&mut self, user: &str, password: &str, salt_seed: u64) -> Result<(), EtcError> {
        check_user(user)?;
        let hash = fake_crypt(&crypt_chars(salt_seed, 16), password);
        let old = self.files.get(SHADOW).map(|e| e.data.as_slice()).unwrap_or_default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut found = false;
        for line in lines(old) {
            let fields: Option<Vec<&str>> = std::str::from_utf8(line).ok().map(|l| l.split(':').collect());
            match fields {
                Some(mut f) if !found && f.len() >= 2 && f[0] == user => {
                    f[1] = &hash;
                    out.push(f.join(":").into_bytes());
                    found = true;
                }
                _ => out.push(line.to_vec()),
            }
        }
        if !found {
            out.push(format!("{user}:{hash}::0:99999:7:::").into_bytes());
        }
        self.put_config(SHADOW, join(&out), MODE_SHADOW);
        Ok(())
    }

    /// Whether `password` is `user`'s password: `false` for an unknown
    /// user, a locked account (`*`, `!`) or a hash not made by
    /// [`EtcTree::set_password`].
    pub fn password_matches(&self, user: &str, password: &str) -> bool {
        let Some(fields) = self.shadow_fields(user) else { return false };
        let hash = &fields[1];
        let Some(salt) = hash.strip_prefix("$6$").and_then(|rest| rest.split_once('$')).map(|(salt, _)| salt) else {
            return false;
        };
        fake_crypt(salt, password) == *hash
    }

    // -- backup counter -----------------------------------------------------

    /// The count in `etc/vmware/.backup.counter`: its last line that is not
    /// a comment, if that is a number.
    pub fn backup_counter(&self) -> Option<u64> {
        let data = &self.files.get(BACKUP_COUNTER)?.data;
        let text = std::str::from_utf8(data).ok()?;
        text.lines().map(str::trim).rfind(|l| !l.is_empty() && !l.starts_with('#'))?.parse().ok()
    }

    /// What backup.sh does first: rewrites the four-line counter file with
    /// the count plus one (1 if missing or unreadable), keeping its
    /// `CREATED` date (`now` for a new file) and setting `MODIFIED` to
    /// `now` in `date`'s format. Leaves it sticky; returns the new count.
    pub fn bump_backup_counter(&mut self, now: SimTime) -> u64 {
        let created = self
            .files
            .get(BACKUP_COUNTER)
            .and_then(|e| std::str::from_utf8(&e.data).ok())
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix("# CREATED:")).map(|d| d.trim().to_string()))
            .unwrap_or_else(|| now.ctime());
        let count = self.backup_counter().unwrap_or(0).saturating_add(1);
        let text = format!("{COUNTER_HEADER}\n# CREATED: {created}\n# MODIFIED: {}\n{count}\n", now.ctime());
        self.put_config(BACKUP_COUNTER, text.into_bytes(), MODE_CONFIG);
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips() {
        for v in ["", "plain", "a \"quoted\" word", "back\\slash", "line\nbreak\ttab\r", "\x01\x7f", "é ü", "\\x41"] {
            let q = quote(v);
            assert!(!q.contains('\n'), "{q}");
            assert_eq!(unquote(&q[1..]), v, "{q}");
        }
        // Malformed escapes keep their text.
        assert_eq!(unquote("a\\q\\x4\\xzz\\"), "a\\q\\x4\\xzz\\");
    }

    #[test]
    fn conf_lines() {
        assert_eq!(parse_conf_line(b"/a/b = \"v\""), Some(("/a/b", "v".to_string())));
        assert_eq!(parse_conf_line(b"  /a/b=v  "), Some(("/a/b", "v".to_string())));
        assert_eq!(parse_conf_line(b"/a/b = \"x = y\" trailing"), Some(("/a/b", "x = y".to_string())));
        assert_eq!(parse_conf_line(b"# comment = 1"), None);
        assert_eq!(parse_conf_line(b"no equals"), None);
        assert_eq!(parse_conf_line(b"\xff/a = 1"), None);
    }

    #[test]
    fn keys() {
        assert!(check_key("/net/tcpip/instance[defaultTcpipStack]/hostname").is_ok());
        for k in ["", "/", "a/b", "/a b", "/a=b", "/a\"", "/a//b", "/a/", "/a\n"] {
            assert_eq!(check_key(k).unwrap_err().kind(), EtcErrorKind::BadKey, "{k:?}");
        }
        assert_eq!(advanced_key("Net.TcpipHeapMax").unwrap(), "/adv/Net/TcpipHeapMax");
        assert_eq!(advanced_key("/Net/TcpipHeapMax").unwrap(), "/adv/Net/TcpipHeapMax");
        assert_eq!(advanced_key("/adv/Net/TcpipHeapMax").unwrap(), "/adv/Net/TcpipHeapMax");
        for n in ["Net", "Net.", ".x", "A.B.C", "/adv/A", "A B.C", "A.B-C"] {
            assert!(advanced_key(n).is_err(), "{n}");
        }
    }

    #[test]
    fn hostnames() {
        for ok in ["esx01", "esx-01.example.com", "a", &"a".repeat(63)] {
            assert!(check_hostname(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a b", "a_b", "é", &"a".repeat(64), &["a"; 130].join(".")] {
            assert_eq!(check_hostname(bad).unwrap_err().kind(), EtcErrorKind::BadHostName, "{bad}");
        }
    }

    #[test]
    fn paths_are_normalised_and_checked() {
        assert_eq!(normalize("/etc//./hosts").unwrap(), "etc/hosts");
        for bad in ["", "/", "etc/../x", "etc/.#hosts", "etc/\0"] {
            assert_eq!(normalize(bad).unwrap_err().kind(), EtcErrorKind::BadPath, "{bad:?}");
        }
    }

    #[test]
    fn fake_crypt_looks_like_sha512_crypt() {
        let h = fake_crypt("saltsaltsaltsalt", "pw");
        assert_eq!(h.len(), 3 + 16 + 1 + 86);
        assert!(h[20..].bytes().all(|b| CRYPT_ALPHABET.contains(&b)));
        assert_ne!(h, fake_crypt("saltsaltsaltsalt", "pw2"));
        assert_ne!(h, fake_crypt("saltsaltsaltsalu", "pw"));
        assert_eq!(h, fake_crypt("saltsaltsaltsalt", "pw"));
    }
}
