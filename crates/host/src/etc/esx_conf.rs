//! `etc/vmware/esx.conf`: `/path/key = "value"` lines, and the advanced
//! options that live in it as `/adv/Group/Name`.
//!
//! Invariants: setting a key rewrites only its line (in place; later
//! duplicates go), other lines (comments, malformed ones) are kept byte
//! for byte; reading gives the last line's value; quoting round-trips.

use super::tree::{join, lines};
use super::{EtcError, EtcTree, ESX_CONF, MODE_CONFIG};

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

impl EtcTree {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etc::EtcErrorKind;

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
}
