//! Names: 8.3 short names (esx-boot's lookup forms and Linux vfat's
//! generated ones), how a short name is shown, the checksum that ties LFN
//! slots to their short entry, and the long names Linux accepts.
//!
//! ```text
//!   "boot.cfg"          -> B O O T _ _ _ _ C F G     (11 bytes, space padded,
//!   "state.tgz.12345"   -> S T A T E T ~ 1 1 2 3      base 8 + extension 3)
//!   display  "BOOT    CFG" -> "BOOT.CFG",  "README     " -> "README"
//!   checksum sum = sum.rotate_right(1) + byte, over the 11 bytes
//! ```
//!
//! Contract: pure functions of their arguments, no I/O; none panics on any
//! input, and the search for a free generated short name is bounded.

use std::collections::HashSet;

use super::dirent::{CASE_LOWER_BASE, CASE_LOWER_EXT};

/// Characters Linux replaces by '_' in a short name.
const REPLACED: &str = "[];,+=";
/// Characters no FAT name may hold (besides controls).
const FORBIDDEN: &str = "*?<>|\":/\\";
/// Longest name in UTF-16 units (Linux's `FAT_LFN_LEN`).
const MAX_NAME_UNITS: usize = 255;

/// A long name FAT cannot hold (or this crate does not handle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{why}")]
pub struct InvalidName {
    /// What is wrong with it.
    pub why: &'static str,
}

/// Why no short name could be made for a long name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShortNameError {
    /// The name cannot have a short name, or its exact one is taken.
    #[error(transparent)]
    Invalid(#[from] InvalidName),
    /// Every generated form is taken.
    #[error("every generated short name is taken")]
    Exhausted,
}

/// The upper-case 11-byte short name ("BOOT    CFG") of a valid 8.3 name,
/// after dropping leading '/'s: a base of 1 to 8 characters, optionally a
/// dot and an extension of 1 to 3, each character an ASCII letter, digit or
/// one of ``!#$%&'()-@^_`{}~``. Anything else (a path, a second dot, a
/// space, a long name, non-ASCII) is `None`.
pub fn short_name(name: &str) -> Option<[u8; 11]> {
    let name = name.trim_start_matches('/');
    let (base, ext) = match name.split_once('.') {
        Some((base, ext)) => (base, Some(ext)),
        None => (name, None),
    };
    let valid = |part: &str, max: usize| {
        (1..=max).contains(&part.len())
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'()-@^_`{}~".contains(&b))
    };
    if !valid(base, 8) || ext.is_some_and(|ext| !valid(ext, 3)) {
        return None;
    }
    let mut short = [b' '; 11];
    short[..base.len()].copy_from_slice(base.as_bytes());
    if let Some(ext) = ext {
        short[8..8 + ext.len()].copy_from_slice(ext.as_bytes());
    }
    short.make_ascii_uppercase();
    Some(short)
}

/// The 11-byte short name esx-boot looks up for `name`
/// (`bootlib/file.c:fat_get_shortname`), which never refuses a name:
/// - leading '/'s are dropped; a NUL byte ends the name;
/// - the base is what precedes the first '.', spaces dropped, cut to 8
///   bytes; the extension is what follows that dot (further dots included),
///   spaces dropped, cut to 3 bytes; both padded with spaces;
/// - letters are upper-cased by esx-boot's ISO-8859-1 `toupper`: ASCII
///   letters, and 0xE0–0xFE except 0xF7 lose bit 5 (so 0xFF becomes 0xDF).
///
/// So "verylongname.v00" looks up `VERYLONGV00` and "a.b.c" `A       B.C`.
pub fn esx_short_name(name: &[u8]) -> [u8; 11] {
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let name = &name[..end];
    let name = &name[name.iter().position(|&b| b != b'/').unwrap_or(name.len())..];
    let (base, ext) = match name.iter().position(|&b| b == b'.') {
        Some(dot) => (&name[..dot], &name[dot + 1..]),
        None => (name, &name[name.len()..]),
    };
    let mut short = [b' '; 11];
    for (slot, &b) in short[..8].iter_mut().zip(base.iter().filter(|&&b| b != b' ')) {
        *slot = esx_toupper(b);
    }
    for (slot, &b) in short[8..].iter_mut().zip(ext.iter().filter(|&&b| b != b' ')) {
        *slot = esx_toupper(b);
    }
    short
}

/// esx-boot's `toupper` (`libc/include/ctype.h`, table in `libc/ctypes.c`):
/// clears bit 5 of the characters its ISO-8859-1 table calls lower case.
fn esx_toupper(b: u8) -> u8 {
    let lower = b.is_ascii_lowercase() || ((0xDF..=0xFF).contains(&b) && b != 0xF7);
    if lower {
        b & !0x20
    } else {
        b
    }
}

/// Base and extension of a short name, trailing spaces dropped, each byte
/// as the ISO-8859-1 character of its value.
fn split_short(name: &[u8; 11]) -> (String, String) {
    let trim = |part: &[u8]| -> String {
        let len = part.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
        part[..len].iter().map(|&b| char::from(b)).collect()
    };
    (trim(&name[..8]), trim(&name[8..]))
}

fn join(base: String, ext: String) -> String {
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

/// "NAME.EXT" from the 11 raw bytes, trailing spaces dropped; bytes above
/// 0x7F as ISO-8859-1 (the form of [`super::read::FatFile::short_name`]).
pub fn display_name(name: &[u8; 11]) -> String {
    let (base, ext) = split_short(name);
    join(base, ext)
}

/// The short name as Linux shows an entry without a long name: base and
/// extension lower-cased when the case byte `case` says so.
pub fn shown_short_name(name: &[u8; 11], case: u8) -> String {
    let (mut base, mut ext) = split_short(name);
    if case & CASE_LOWER_BASE != 0 {
        base = base.to_ascii_lowercase();
    }
    if case & CASE_LOWER_EXT != 0 {
        ext = ext.to_ascii_lowercase();
    }
    join(base, ext)
}

/// The short-name checksum stored in LFN slots.
pub fn lfn_checksum(name: &[u8; 11]) -> u8 {
    name.iter().fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// Whether two names are equal ignoring case (Unicode lower case, as
/// Linux's vfat compares long names).
pub fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}

/// A name as Linux's vfat takes it: leading '/'s dropped (root directory
/// only), trailing dots dropped; then non-empty, at most 255 UTF-16 units,
/// no control or forbidden character, not ending with a space.
pub fn clean_name(name: &str) -> Result<String, InvalidName> {
    let bad = |why| InvalidName { why };
    let cleaned = name.trim_start_matches('/').trim_end_matches('.');
    if cleaned.is_empty() {
        return Err(bad("is empty once leading '/'s and trailing dots are dropped"));
    }
    if cleaned.contains('/') {
        return Err(bad("is a path; only the root directory is handled"));
    }
    if cleaned.chars().any(|c| c < ' ' || FORBIDDEN.contains(c)) {
        return Err(bad("holds a control character or one of * ? < > | \" : \\"));
    }
    if cleaned.ends_with(' ') {
        return Err(bad("ends with a space"));
    }
    if cleaned.encode_utf16().count() > MAX_NAME_UNITS {
        return Err(bad("is longer than 255 UTF-16 units"));
    }
    Ok(cleaned.to_string())
}

/// A short name for a new entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortName {
    /// The 11 bytes.
    pub name: [u8; 11],
    /// The long name is this 8.3 name in upper case: no LFN slots needed.
    pub sfn_only: bool,
}

/// Case seen in a part of a name, as Linux's `shortname_info`.
struct PartInfo {
    lower: bool,
    upper: bool,
    valid: bool,
}

impl PartInfo {
    fn new() -> PartInfo {
        PartInfo { lower: true, upper: true, valid: true }
    }

    /// The short-name byte of `c`: `None` for a dropped '.' or ' '.
    fn map(&mut self, c: char) -> Option<u8> {
        if c == '.' || c == ' ' {
            self.valid = false;
            return None;
        }
        if REPLACED.contains(c) || !c.is_ascii() {
            self.valid = false;
            return Some(b'_');
        }
        if c.is_ascii_lowercase() {
            self.upper = false;
        } else if c.is_ascii_uppercase() {
            self.lower = false;
        }
        Some(c.to_ascii_uppercase() as u8)
    }
}

/// The short name Linux's `vfat_create_shortname` gives `long` (cleaned by
/// [`clean_name`]) when the names in `taken` exist. For ASCII names that is
/// the 8.3 name itself when it is one, else `NAME~1`..`NAME~9` on at most 6
/// characters of the base (agreeing with `fatfs` up to `~4`). After `~9`
/// Linux puts a clock-derived hex number after 2 characters of the base;
/// this takes `fatfs`'s checksum of the long name instead, counting up, so
/// the result is deterministic. A non-ASCII character becomes '_'.
pub fn short_name_for(long: &str, taken: &HashSet<[u8; 11]>) -> Result<ShortName, ShortNameError> {
    let chars: Vec<char> = long.chars().collect();
    // The extension follows the last dot, unless only dots and spaces
    // precede it (".profile" has none).
    let (base_chars, ext_chars) = match chars.iter().rposition(|&c| c == '.') {
        Some(dot) if chars[..dot].iter().any(|&c| c != '.' && c != ' ') => (&chars[..dot], &chars[dot + 1..]),
        _ => (&chars[..], &chars[chars.len()..]),
    };
    let mut lossless = true;
    let (mut base_info, mut ext_info) = (PartInfo::new(), PartInfo::new());
    let mut base = Vec::with_capacity(8);
    for (i, &c) in base_chars.iter().enumerate() {
        if let Some(b) = base_info.map(c) {
            base.push(b);
            if base.len() == 8 {
                lossless &= i + 1 == base_chars.len();
                break;
            }
        }
    }
    if base.is_empty() {
        return Err(InvalidName { why: "gives an empty short name" }.into());
    }
    let mut ext = Vec::with_capacity(3);
    for (i, &c) in ext_chars.iter().enumerate() {
        if let Some(b) = ext_info.map(c) {
            ext.push(b);
            if ext.len() == 3 {
                lossless &= i + 1 == ext_chars.len();
                break;
            }
        }
    }
    let mut name = [b' '; 11];
    name[..base.len()].copy_from_slice(&base);
    name[8..8 + ext.len()].copy_from_slice(&ext);
    if lossless && base_info.valid && ext_info.valid {
        if taken.contains(&name) {
            return Err(InvalidName { why: "is the short name of another entry" }.into());
        }
        return Ok(ShortName { name, sfn_only: base_info.upper && ext_info.upper });
    }

    // A numeric tail: NAME~1 .. NAME~9 on at most 6 characters of the base.
    let mut base_len = base.len();
    if base_len > 6 {
        base_len = 6;
        name[7] = b' ';
    }
    name[base_len] = b'~';
    for digit in b'1'..=b'9' {
        name[base_len + 1] = digit;
        if !taken.contains(&name) {
            return Ok(ShortName { name, sfn_only: false });
        }
    }
    // Linux then puts a clock-derived hex number after 2 characters of the
    // base; we take `fatfs`'s checksum of the long name, counting up.
    let base_len = base_len.min(2);
    name[base_len..8].fill(b' ');
    let mut hash = long.chars().fold(0u16, |sum, c| (sum >> 1).wrapping_add(sum << 15).wrapping_add(c as u16));
    for _ in 0..=u16::MAX {
        name[base_len..base_len + 4].copy_from_slice(format!("{hash:04X}").as_bytes());
        name[base_len + 4] = b'~';
        for digit in b'1'..=b'9' {
            name[base_len + 5] = digit;
            if !taken.contains(&name) {
                return Ok(ShortName { name, sfn_only: false });
            }
        }
        hash = hash.wrapping_add(1);
    }
    Err(ShortNameError::Exhausted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_of_valid_8_3_names() {
        assert_eq!(short_name("boot.cfg"), Some(*b"BOOT    CFG"));
        assert_eq!(short_name("/Boot.Cfg"), Some(*b"BOOT    CFG"));
        assert_eq!(short_name("//S.V00"), Some(*b"S       V00"));
        assert_eq!(short_name("/state.tgz"), Some(*b"STATE   TGZ"));
        assert_eq!(short_name("README"), Some(*b"README     "));
        assert_eq!(short_name("IMGDB-~1.TGZ"), Some(*b"IMGDB-~1TGZ"));
        for bad in ["", "/", ".", "..", "a.", ".cfg", "verylongname.cfg", "a.cfgx", "a.b.c", "a b.cfg", "dir/boot.cfg"]
        {
            assert_eq!(short_name(bad), None, "{bad:?}");
        }
        assert_eq!(short_name("bóot.cfg"), None);
        assert_eq!(short_name("a*.cfg"), None);
    }

    #[test]
    fn esx_short_names_truncate_instead_of_refusing() {
        assert_eq!(&esx_short_name(b"/boot.cfg"), b"BOOT    CFG");
        assert_eq!(&esx_short_name(b"verylongname.v000"), b"VERYLONGV00");
        assert_eq!(&esx_short_name(b"a.b.c"), b"A       B.C");
        assert_eq!(&esx_short_name(b"a b.c d"), b"AB      CD ");
        assert_eq!(&esx_short_name(b"dir/x"), b"DIR/X      ");
        assert_eq!(&esx_short_name(b"boot\0.cfg"), b"BOOT       ");
        assert_eq!(&esx_short_name(b""), b"           ");
        assert_eq!(&esx_short_name(&[0xE9, 0xFF, 0xF7, 0xDF]), &[0xC9, 0xDF, 0xF7, 0xDF, 32, 32, 32, 32, 32, 32, 32]);
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name(b"BOOT    CFG"), "BOOT.CFG");
        assert_eq!(display_name(b"README     "), "README");
        assert_eq!(display_name(b"A B     C  "), "A B.C");
        assert_eq!(display_name(&[0xC9, b'T', 32, 32, 32, 32, 32, 32, 32, 32, 32]), "\u{c9}T");
        assert_eq!(shown_short_name(b"STATE   TGZ", CASE_LOWER_BASE), "state.TGZ");
        assert_eq!(shown_short_name(b"STATE   TGZ", CASE_LOWER_BASE | CASE_LOWER_EXT), "state.tgz");
    }

    fn short(long: &str, taken: &[&[u8; 11]]) -> ([u8; 11], bool) {
        let taken = taken.iter().map(|n| **n).collect();
        let s = short_name_for(long, &taken).unwrap();
        (s.name, s.sfn_only)
    }

    #[test]
    fn short_names_follow_linux() {
        assert_eq!(short("BOOT.CFG", &[]), (*b"BOOT    CFG", true));
        assert_eq!(short("state.tgz", &[]), (*b"STATE   TGZ", false));
        assert_eq!(short("State.Tgz", &[]), (*b"STATE   TGZ", false));
        assert_eq!(short("12345678.123", &[]), (*b"12345678123", true));
        assert_eq!(short("state.tgz.12345", &[]), (*b"STATET~1123", false));
        assert_eq!(short("state.tgz.12345", &[b"STATET~1123"]), (*b"STATET~2123", false));
        assert_eq!(short("state.12345", &[]), (*b"STATE~1 123", false));
        assert_eq!(short("a+b.txt", &[]), (*b"A_B~1   TXT", false));
        assert_eq!(short("verylongname.txt", &[]), (*b"VERYLO~1TXT", false));
        assert_eq!(short(".profile", &[]), (*b"PROFIL~1   ", false));
        assert_eq!(short("x.y.z", &[]), (*b"XY~1    Z  ", false));
        assert_eq!(short("caf\u{e9}.txt", &[]), (*b"CAF_~1  TXT", false));
        let all: Vec<[u8; 11]> =
            (1..=9).map(|d| <[u8; 11]>::try_from(format!("STATET~{d}123").as_bytes()).unwrap()).collect();
        let refs: Vec<&[u8; 11]> = all.iter().collect();
        let (name, _) = short("state.tgz.12345", &refs);
        assert_eq!(&name[..2], b"ST");
        assert_eq!(&name[6..], b"~1123");
        let taken = [*b"BOOT    CFG"].into_iter().collect();
        assert!(matches!(short_name_for("BOOT.CFG", &taken), Err(ShortNameError::Invalid(_))));
    }

    #[test]
    fn names_are_cleaned_like_linux() {
        assert_eq!(clean_name("/state.tgz").unwrap(), "state.tgz");
        assert_eq!(clean_name("state.tgz...").unwrap(), "state.tgz");
        for bad in ["", "/", ".", "..", "a/b", "a*b", "tab\there", "trailing ", "q?"] {
            assert!(clean_name(bad).is_err(), "{bad:?}");
        }
        assert!(clean_name(&"x".repeat(256)).is_err());
        assert!(clean_name(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn checksum_matches_the_known_value() {
        // fatfs and Linux agree on this rotate-and-add sum.
        let by_formula = b"STATE   TGZ".iter().fold(0u8, |s, &b| ((s & 1) << 7).wrapping_add(s >> 1).wrapping_add(b));
        assert_eq!(lfn_checksum(b"STATE   TGZ"), by_formula);
    }
}
