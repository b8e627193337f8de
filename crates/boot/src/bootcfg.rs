//! boot.cfg: parsed exactly as esx-boot's `bootlib/parse.c` does, and
//! rendered for the image builder. Parser and renderer live together so a
//! rendered file always parses back to what was put in.
//!
//! The parser's quirks (docs/bootloader.md, boot.cfg), each kept on purpose:
//! - lines end at LF only; a NUL ends a line; zero-length lines are skipped;
//! - whitespace is esx-boot's set (space, TAB, LF, VT, FF, CR, BS, NBSP):
//!   trimmed at both ends, runs merged into one space;
//! - `#` starts a comment only as the first character of a normalised line;
//! - the key is everything before the first `=`; whitespace before `=` makes
//!   the key end in a space, so the line silently matches nothing;
//! - an option matches when its name *starts with* the key, ignoring case,
//!   in table order (so `b=` is build, `t=` is title, an empty key is the
//!   first option);
//! - integers must be `-?[0-9]*` or the whole file is rejected; `atoi` is
//!   strtol base 10, saturating to 64 bits, then truncated to 32;
//! - an empty value makes an integer 0 and a string unset;
//! - the last occurrence of a key wins.

use std::fmt::Write as _;

use serde::Serialize;

/// Which loader's option table to parse with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loader {
    /// safeboot: build, updated, bootstate, quickboot.
    Safeboot,
    /// mboot: kernel, kernelopt, modules, title, prefix, ...
    Mboot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
}

/// An option table: (name, kind) in the loader's order.
type OptionTable = &'static [(&'static str, Kind)];

/// safeboot's table (`safeboot/config.c`), in order.
const SAFEBOOT_OPTIONS: OptionTable =
    &[("build", Kind::Str), ("updated", Kind::Int), ("bootstate", Kind::Int), ("quickboot", Kind::Int)];

/// mboot's table (`mboot/config.c` MBOOT_OPTIONS), in order.
const MBOOT_OPTIONS: OptionTable = &[
    ("kernel", Kind::Str),
    ("kernelopt", Kind::Str),
    ("modules", Kind::Str),
    ("title", Kind::Str),
    ("prefix", Kind::Str),
    ("nobootif", Kind::Int),
    ("timeout", Kind::Int),
    ("noquirks", Kind::Int),
    ("norts", Kind::Int),
    ("crypto", Kind::Str),
    ("runtimewd", Kind::Int),
    ("tftpblksize", Kind::Int),
    ("acpitables", Kind::Str),
    ("runtimewdtimeout", Kind::Int),
    ("skip", Kind::Int),
    ("errtimeout", Kind::Int),
];

/// A value of one option after parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Str(Option<String>),
    Int(i32),
}

/// A syntax error: the loader rejects the whole file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("boot.cfg line {line}: `{key}` needs a number, got `{value}`")]
pub struct SyntaxError {
    /// 1-based line number.
    pub line: usize,
    /// The option the line matched.
    pub key: &'static str,
    /// The value that is not a number.
    pub value: String,
}

/// esx-boot's `isspace` (`libc/ctypes.c`): not glibc's set.
pub fn is_esx_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | 0x08 | 0xA0)
}

/// `str_merge_spaces`: trim, then merge every whitespace run into one space.
fn merge_spaces(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut pending_space = false;
    for &b in line {
        if is_esx_space(b) {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(b);
        }
    }
    out
}

/// `is_number`: an optional single leading `-`, then only digits (zero
/// digits allowed, so `-` alone passes).
fn is_number(s: &[u8]) -> bool {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    digits.iter().all(u8::is_ascii_digit)
}

/// `atoi` as esx-boot's libc does it: `strtol(s, NULL, 10)` saturating at
/// the 64-bit `long` range (x86_64/arm64 UEFI builds), truncated to `int`.
fn atoi(s: &[u8]) -> i32 {
    let (negative, digits) = match s.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, s),
    };
    let mut value: i64 = 0;
    for &d in digits {
        let digit = i64::from(d - b'0');
        value = if negative {
            value.saturating_mul(10).saturating_sub(digit)
        } else {
            value.saturating_mul(10).saturating_add(digit)
        };
    }
    value as i32
}

/// Parsed options of one loader.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Options {
    table: OptionTable,
    values: Vec<Value>,
}

impl Options {
    fn get_str(&self, name: &str) -> Option<&str> {
        match &self.values[self.index(name)] {
            Value::Str(s) => s.as_deref(),
            Value::Int(_) => None,
        }
    }

    fn get_int(&self, name: &str) -> i32 {
        match self.values[self.index(name)] {
            Value::Int(v) => v,
            Value::Str(_) => 0,
        }
    }

    fn index(&self, name: &str) -> usize {
        self.table.iter().position(|(n, _)| *n == name).expect("option in table")
    }
}

/// `parse_config_file` with one loader's table and defaults.
fn parse_with(text: &[u8], loader: Loader) -> Result<Options, SyntaxError> {
    let (table, defaults): (OptionTable, &[(&str, i32)]) = match loader {
        Loader::Safeboot => (SAFEBOOT_OPTIONS, &[]),
        Loader::Mboot => (MBOOT_OPTIONS, &[("timeout", 5), ("errtimeout", -1)]),
    };
    let values: Vec<Value> = table
        .iter()
        .map(|(name, kind)| match kind {
            Kind::Str => Value::Str(None),
            Kind::Int => Value::Int(defaults.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)),
        })
        .collect();
    let (values, result) = parse_over(text, table, values);
    result.map(|()| Options { table, values })
}

/// The parse loop of `parse_config_file` over `values` as they stand: the
/// values reached (also when a syntax error stopped the parse part-way,
/// which is what the 6.7u1 loader carries into the next bank) and whether
/// the file was accepted.
fn parse_over(text: &[u8], table: OptionTable, mut values: Vec<Value>) -> (Vec<Value>, Result<(), SyntaxError>) {
    for (index, raw_line) in text.split(|&b| b == b'\n').enumerate() {
        let line = match raw_line.iter().position(|&b| b == 0) {
            Some(nul) => &raw_line[..nul],
            None => raw_line,
        };
        if raw_line.is_empty() {
            continue;
        }
        let line = merge_spaces(line);
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let Some(eq) = line.iter().position(|&b| b == b'=') else { continue };
        let key = &line[..eq];
        let value_start = line[eq + 1..].iter().position(|&b| b != b' ').map_or(line.len(), |p| eq + 1 + p);
        let value = &line[value_start..];
        // First option whose name starts with the key, ignoring case. Names
        // are ASCII, so ISO-8859-1 folding of the key can never make a match.
        let Some(slot) = table
            .iter()
            .position(|(name, _)| key.len() <= name.len() && name.as_bytes()[..key.len()].eq_ignore_ascii_case(key))
        else {
            continue;
        };
        let (name, kind) = table[slot];
        values[slot] = match kind {
            Kind::Str if value.is_empty() => Value::Str(None),
            Kind::Str => Value::Str(Some(String::from_utf8_lossy(value).into_owned())),
            Kind::Int if value.is_empty() => Value::Int(0),
            Kind::Int if is_number(value) => Value::Int(atoi(value)),
            Kind::Int => {
                let error =
                    SyntaxError { line: index + 1, key: name, value: String::from_utf8_lossy(value).into_owned() };
                return (values, Err(error));
            }
        };
    }
    (values, Ok(()))
}

/// A line of boot.cfg that a loader does not take as written, and why: the
/// points a support engineer needs when a file "says" something the loader
/// does not see (docs/bootloader.md: boot.cfg).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LineNote {
    /// 1-based line number.
    pub line: usize,
    /// The line as normalised by the loader (whitespace merged).
    pub text: String,
    /// Why it is ignored, or how it is read.
    pub note: String,
}

/// The lines of `text` that safeboot (with `loader`'s table) ignores or
/// reads other than as written: no `=`; whitespace before `=` (the key then
/// ends in a space and matches nothing); a key neither safeboot nor mboot
/// knows; an abbreviated key; a key repeated later (the last one wins); a
/// `#` inside a value. Comment and empty lines are not listed. Lines after
/// a syntax error are not read at all, and are listed as such.
pub fn safeboot_line_notes(text: &[u8], with_quickboot: bool) -> Vec<LineNote> {
    let table: OptionTable = if with_quickboot { SAFEBOOT_OPTIONS } else { SAFEBOOT_67U1_OPTIONS };
    let mut notes = Vec::new();
    let mut last_line_of: Vec<Option<usize>> = vec![None; table.len()];
    let mut matched: Vec<(usize, usize, String)> = Vec::new();
    let mut rejected_at: Option<usize> = None;
    for (index, raw_line) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let line = match raw_line.iter().position(|&b| b == 0) {
            Some(nul) => &raw_line[..nul],
            None => raw_line,
        };
        let line = merge_spaces(line);
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let shown = String::from_utf8_lossy(&line).into_owned();
        if rejected_at.is_some() {
            notes.push(LineNote {
                line: line_no,
                text: shown,
                note: "never read: the parse stopped at the syntax error above".into(),
            });
            continue;
        }
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            notes.push(LineNote { line: line_no, text: shown, note: "no `=`: not an option line, ignored".into() });
            continue;
        };
        let key = &line[..eq];
        let key_text = String::from_utf8_lossy(key).into_owned();
        let slot = table
            .iter()
            .position(|(name, _)| key.len() <= name.len() && name.as_bytes()[..key.len()].eq_ignore_ascii_case(key));
        let Some(slot) = slot else {
            let mboot = MBOOT_OPTIONS
                .iter()
                .any(|(name, _)| key.len() <= name.len() && name.as_bytes()[..key.len()].eq_ignore_ascii_case(key));
            if key.last() == Some(&b' ') {
                notes.push(LineNote {
                    line: line_no,
                    text: shown,
                    note: format!(
                        "whitespace before `=`: the key is `{key_text}` with a trailing space, which matches no option, so neither loader sees this line"
                    ),
                });
            } else if !with_quickboot
                && b"quickboot".len() >= key.len()
                && b"quickboot"[..key.len()].eq_ignore_ascii_case(key)
                && !mboot
            {
                notes.push(LineNote {
                    line: line_no,
                    text: shown,
                    note: "the 6.7u1 loader has no quickboot key: ignored".into(),
                });
            } else if !mboot {
                notes.push(LineNote {
                    line: line_no,
                    text: shown,
                    note: format!("`{key_text}` is no option of safeboot or mboot: ignored"),
                });
            }
            continue;
        };
        let (name, kind) = table[slot];
        let value_start = line[eq + 1..].iter().position(|&b| b != b' ').map_or(line.len(), |p| eq + 1 + p);
        let value = &line[value_start..];
        if kind == Kind::Int && !value.is_empty() && !is_number(value) {
            notes.push(LineNote {
                line: line_no,
                text: shown,
                note: format!("`{name}` needs a number: syntax error, safeboot rejects the whole file"),
            });
            rejected_at = Some(line_no);
            continue;
        }
        if !key.eq_ignore_ascii_case(name.as_bytes()) {
            let shown_key = if key.is_empty() { "an empty key".to_owned() } else { format!("`{key_text}`") };
            notes.push(LineNote {
                line: line_no,
                text: shown.clone(),
                note: format!("{shown_key} is read as `{name}` (the first option whose name starts with it)"),
            });
        }
        if kind == Kind::Str && value.contains(&b'#') {
            notes.push(LineNote {
                line: line_no,
                text: shown.clone(),
                note: "`#` inside a value is not a comment: it is part of the value".into(),
            });
        }
        if let Some(prev) = last_line_of[slot] {
            matched.push((prev, line_no, name.to_owned()));
        }
        last_line_of[slot] = Some(line_no);
    }
    for (earlier, later, name) in matched {
        let text = text
            .split(|&b| b == b'\n')
            .nth(earlier - 1)
            .map(|l| String::from_utf8_lossy(&merge_spaces(l)).into_owned())
            .unwrap_or_default();
        notes.push(LineNote {
            line: earlier,
            text,
            note: format!("`{name}` is set again on line {later}: the last one wins"),
        });
    }
    notes.sort_by_key(|n| n.line);
    notes
}

/// safeboot's table in the ESXi 6.7u1/6.7u2 loader: no `quickboot` key
/// (so `quickboot=1` and `q=1` are ignored like any unknown key).
const SAFEBOOT_67U1_OPTIONS: OptionTable = &[("build", Kind::Str), ("updated", Kind::Int), ("bootstate", Kind::Int)];

/// The option values the ESXi 6.7u1/6.7u2 safeboot holds between banks: it
/// does not reset them before parsing the next bank's boot.cfg, so a key a
/// file does not set keeps the value from the bank parsed before it
/// (docs/bootloader.md: Older loader). [`Carried::default`] is the
/// state before the first bank: every option at its default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Carried {
    values: Vec<Value>,
}

impl Default for Carried {
    fn default() -> Carried {
        Carried { values: vec![Value::Str(None), Value::Int(0), Value::Int(0)] }
    }
}

impl Carried {
    /// The values as a config (quickboot is always false: no such key).
    pub fn config(&self) -> SafebootConfig {
        let o = Options { table: SAFEBOOT_67U1_OPTIONS, values: self.values.clone() };
        SafebootConfig {
            build: o.get_str("build").map(str::to_owned),
            updated: o.get_int("updated") as u32,
            bootstate: o.get_int("bootstate"),
            quickboot: false,
        }
    }
}

impl SafebootConfig {
    /// Parses `text` as the 6.7u1/6.7u2 safeboot does, starting from the
    /// values `carried` over from the previous bank, and updates `carried`
    /// to the values reached, whether or not the file is accepted (a file
    /// rejected part-way leaves the lines before the error applied).
    pub fn parse_67u1(text: &[u8], carried: &mut Carried) -> Result<SafebootConfig, SyntaxError> {
        let (values, result) = parse_over(text, SAFEBOOT_67U1_OPTIONS, std::mem::take(&mut carried.values));
        carried.values = values;
        result.map(|()| carried.config())
    }
}

/// What safeboot reads from a bank's boot.cfg.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SafebootConfig {
    /// `build`, unset when missing or empty.
    pub build: Option<String>,
    /// `updated`, stored unsigned 32-bit (`-5` is 4294967291).
    pub updated: u32,
    /// `bootstate` (0 when missing: a missing bootstate means VALID).
    pub bootstate: i32,
    /// `quickboot` (any non-zero value is true).
    pub quickboot: bool,
}

impl SafebootConfig {
    /// Parses with safeboot's table.
    pub fn parse(text: &[u8]) -> Result<SafebootConfig, SyntaxError> {
        let o = parse_with(text, Loader::Safeboot)?;
        Ok(SafebootConfig {
            build: o.get_str("build").map(str::to_owned),
            updated: o.get_int("updated") as u32,
            bootstate: o.get_int("bootstate"),
            quickboot: o.get_int("quickboot") != 0,
        })
    }
}

/// What mboot reads from boot.cfg.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MbootConfig {
    /// `kernel` (required by mboot).
    pub kernel: Option<String>,
    /// `kernelopt`.
    pub kernelopt: Option<String>,
    /// `modules`, unsplit.
    pub modules: Option<String>,
    /// `title`.
    pub title: Option<String>,
    /// `prefix`.
    pub prefix: Option<String>,
    /// `timeout` (default 5).
    pub timeout: i32,
    /// `nobootif`.
    pub nobootif: i32,
    /// `noquirks`.
    pub noquirks: i32,
    /// `norts`.
    pub norts: i32,
    /// `crypto`.
    pub crypto: Option<String>,
    /// `runtimewd`.
    pub runtimewd: i32,
    /// `tftpblksize`.
    pub tftpblksize: i32,
    /// `acpitables`.
    pub acpitables: Option<String>,
    /// `runtimewdtimeout`.
    pub runtimewdtimeout: i32,
    /// `skip`.
    pub skip: i32,
    /// `errtimeout` (default -1: hang forever after a fatal error).
    pub errtimeout: i32,
}

impl MbootConfig {
    /// Parses with mboot's table.
    pub fn parse(text: &[u8]) -> Result<MbootConfig, SyntaxError> {
        let o = parse_with(text, Loader::Mboot)?;
        let s = |n| o.get_str(n).map(str::to_owned);
        Ok(MbootConfig {
            kernel: s("kernel"),
            kernelopt: s("kernelopt"),
            modules: s("modules"),
            title: s("title"),
            prefix: s("prefix"),
            timeout: o.get_int("timeout"),
            nobootif: o.get_int("nobootif"),
            noquirks: o.get_int("noquirks"),
            norts: o.get_int("norts"),
            crypto: s("crypto"),
            runtimewd: o.get_int("runtimewd"),
            tftpblksize: o.get_int("tftpblksize"),
            acpitables: s("acpitables"),
            runtimewdtimeout: o.get_int("runtimewdtimeout"),
            skip: o.get_int("skip"),
            errtimeout: o.get_int("errtimeout"),
        })
    }

    /// The module list as mboot splits it (`find_next_listitem`,
    /// `parse_filelist`): split at every `---`, empty items skipped, the
    /// first word of an item is the file name and the rest its options.
    pub fn module_list(&self) -> Vec<ModuleItem> {
        split_module_list(self.modules.as_deref().unwrap_or(""))
    }
}

/// One entry of `modules=`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModuleItem {
    /// File name as written.
    pub name: String,
    /// The module's own option string (may be empty).
    pub options: String,
}

/// Splits a `modules=` value as mboot does.
pub fn split_module_list(list: &str) -> Vec<ModuleItem> {
    list.split("---")
        .filter_map(|item| {
            let item = item.trim_matches(|c: char| c.is_ascii() && is_esx_space(c as u8));
            let mut words = item.splitn(2, ' ');
            let name = words.next().filter(|w| !w.is_empty())?;
            Some(ModuleItem { name: name.to_owned(), options: words.next().unwrap_or("").trim().to_owned() })
        })
        .collect()
}

/// The boot.cfg of an ESXi system image, as the image builder writes it and
/// as `inspect` reads it back (safeboot's and mboot's views combined).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BootCfg {
    /// 0 valid, 1 upgrading, 2 dirty, 3 invalid.
    pub bootstate: i32,
    /// Title shown by mboot.
    pub title: String,
    /// Countdown in seconds.
    pub timeout: i32,
    /// Directory prefix for module names (empty: the bank's root).
    pub prefix: String,
    /// Kernel file (module 0).
    pub kernel: String,
    /// Kernel command line.
    pub kernelopt: String,
    /// Module file names, in load order, after the kernel.
    pub modules: Vec<String>,
    /// Build string, e.g. `6.7.0-1.0.12345`.
    pub build: String,
    /// The `updated` counter: the valid bank with the higher value boots.
    pub updated: u32,
}

impl BootCfg {
    /// Renders the file in the order ESXi writes it, LF line ends.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "bootstate={}", self.bootstate);
        let _ = writeln!(s, "title={}", self.title);
        let _ = writeln!(s, "timeout={}", self.timeout);
        let _ = writeln!(s, "prefix={}", self.prefix);
        let _ = writeln!(s, "kernel={}", self.kernel);
        let _ = writeln!(s, "kernelopt={}", self.kernelopt);
        let _ = writeln!(s, "modules={}", self.modules.join(" --- "));
        let _ = writeln!(s, "build={}", self.build);
        let _ = writeln!(s, "updated={}", self.updated);
        s
    }

    /// Reads a file back through both loaders' parsers. Fields a loader
    /// leaves unset come back empty.
    pub fn parse(text: &[u8]) -> Result<BootCfg, SyntaxError> {
        let safe = SafebootConfig::parse(text)?;
        let mboot = MbootConfig::parse(text)?;
        Ok(BootCfg {
            bootstate: safe.bootstate,
            title: mboot.title.clone().unwrap_or_default(),
            timeout: mboot.timeout,
            prefix: mboot.prefix.clone().unwrap_or_default(),
            kernel: mboot.kernel.clone().unwrap_or_default(),
            kernelopt: mboot.kernelopt.clone().unwrap_or_default(),
            modules: mboot.module_list().into_iter().map(|m| m.name).collect(),
            build: safe.build.unwrap_or_default(),
            updated: safe.updated,
        })
    }
}

/// Where safeboot's in-place writer would put the new bootstate digit
/// (`bank_set_bootstate`; docs/bootloader.md, The bootstate writer), found
/// in the first min(size, 512) bytes of boot.cfg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriterSlot {
    /// The value byte is at this offset and is a digit `0`–`3`.
    At {
        /// Byte offset in boot.cfg (always < 512).
        offset: usize,
        /// The digit there now.
        digit: u8,
    },
    /// No `bootstate` the writer accepts: "boot state not found."
    NotFound,
    /// The value byte is not `0`–`3` (`-`, `4`, LF, CR...): "invalid boot state."
    BadDigit {
        /// Byte offset.
        offset: usize,
        /// The byte found there.
        byte: u8,
    },
}

/// The writer only ever looks at this many bytes ("Our BIOS utils library is
/// not able to write a file beyond 512 bytes").
pub const WRITER_WINDOW: usize = 512;

/// Locates the bootstate value byte the way the writer does. Unlike the
/// parser it accepts `bootstate = 1` and `bootstate<TAB>=1`; unlike the
/// parser it rejects the abbreviations `boot=`/`bootstat=` and a BOM before
/// the word. The first acceptable occurrence wins.
pub fn locate_bootstate(text: &[u8]) -> WriterSlot {
    const WORD: &[u8] = b"bootstate";
    let window = &text[..text.len().min(WRITER_WINDOW)];
    let mut from = 0;
    while let Some(found) = window[from..].windows(WORD.len()).position(|w| w.eq_ignore_ascii_case(WORD)) {
        let start = from + found;
        from = start + 1;
        // First word of its line: only whitespace other than LF since the
        // previous LF (or the start of the file).
        let line_start = window[..start].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        if !window[line_start..start].iter().all(|&b| b != b'\n' && is_esx_space(b)) {
            continue;
        }
        let mut at = start + WORD.len();
        while at < window.len() && matches!(window[at], b' ' | b'\t') {
            at += 1;
        }
        if at >= window.len() || window[at] != b'=' {
            continue;
        }
        at += 1;
        while at < window.len() && matches!(window[at], b' ' | b'\t') {
            at += 1;
        }
        if at >= window.len() {
            continue;
        }
        return match window[at] {
            digit @ b'0'..=b'3' => WriterSlot::At { offset: at, digit },
            byte => WriterSlot::BadDigit { offset: at, byte },
        };
    }
    WriterSlot::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safe(text: &str) -> SafebootConfig {
        SafebootConfig::parse(text.as_bytes()).unwrap()
    }

    fn sample() -> BootCfg {
        BootCfg {
            bootstate: 0,
            title: "Loading VMware ESXi".into(),
            timeout: 5,
            prefix: String::new(),
            kernel: "b.b00".into(),
            kernelopt: "no-auto-partition".into(),
            modules: vec!["k.b00".into(), "s.v00".into(), "state.tgz".into()],
            build: "6.7.0-1.0.8169922".into(),
            updated: 1,
        }
    }

    #[test]
    fn render_parses_back() {
        let cfg = sample();
        assert_eq!(BootCfg::parse(cfg.render().as_bytes()).unwrap(), cfg);
    }

    #[test]
    fn missing_bootstate_means_valid() {
        assert_eq!(safe("build=1\nupdated=2\n").bootstate, 0);
    }

    #[test]
    fn whitespace_before_equals_hides_the_line() {
        assert_eq!(safe("bootstate = 1\nupdated\t=9\n").bootstate, 0);
        assert_eq!(safe("bootstate = 1\nupdated\t=9\n").updated, 0);
        assert_eq!(safe("bootstate= 2\n").bootstate, 2);
    }

    #[test]
    fn prefix_and_case_insensitive_key_matching() {
        let c = safe("B=7.0\nUP=3\nboot=1\nq=1\n");
        assert_eq!((c.build.as_deref(), c.updated, c.bootstate, c.quickboot), (Some("7.0"), 3, 1, true));
        assert_eq!(safe("=6.7\n").build.as_deref(), Some("6.7"), "empty key matches the first option");
        assert_eq!(safe("buildnumber=9\nbootstates=3\n").bootstate, 0, "longer keys never match");
        let m = MbootConfig::parse(b"t=Hello\ntim=3\nk=b.b00\n").unwrap();
        assert_eq!((m.title.as_deref(), m.timeout, m.kernel.as_deref()), (Some("Hello"), 3, Some("b.b00")));
    }

    #[test]
    fn hash_is_a_comment_only_at_line_start() {
        assert_eq!(safe("# bootstate=3\n  #x\nbuild=1 # two\n").build.as_deref(), Some("1 # two"));
        assert!(SafebootConfig::parse(b"bootstate=0 # ok\n").is_err());
    }

    #[test]
    fn is_number_and_atoi_rules() {
        assert_eq!(safe("updated=-\n").updated, 0);
        assert_eq!(safe("updated=007\n").updated, 7);
        assert_eq!(safe("updated=-5\n").updated, 4294967291);
        assert_eq!(safe("updated=4294967297\n").updated, 1, "kept modulo 2^32 on 64-bit builds");
        assert_eq!(safe("updated=99999999999999999999999\n").updated, u32::MAX, "saturates at LONG_MAX, low 32 bits");
        for bad in ["+3", "0x10", "1e3", "3abc", "1 2"] {
            let err = SafebootConfig::parse(format!("build=1\nupdated={bad}\n").as_bytes()).unwrap_err();
            assert_eq!((err.line, err.key), (2, "updated"), "{bad}");
        }
    }

    #[test]
    fn syntax_error_depends_on_the_loader() {
        assert!(SafebootConfig::parse(b"timeout=5s\n").is_ok());
        assert!(MbootConfig::parse(b"timeout=5s\n").is_err());
        assert!(MbootConfig::parse(b"updated=3abc\n").is_ok());
    }

    #[test]
    fn empty_values() {
        let c = safe("build=\nupdated=\nbootstate=\n");
        assert_eq!((c.build, c.updated, c.bootstate), (None, 0, 0));
    }

    #[test]
    fn crlf_and_tabs_parse_like_lf() {
        let c = safe("build=6.7\r\nupdated=\t2\r\nbootstate=1\r\n");
        assert_eq!((c.build.as_deref(), c.updated, c.bootstate), (Some("6.7"), 2, 1));
    }

    #[test]
    fn cr_alone_is_not_a_line_end() {
        assert!(SafebootConfig::parse(b"bootstate=1\rtitle=x\n").is_err());
    }

    #[test]
    fn nul_ends_a_line_and_last_key_wins() {
        let c = safe("build=6.7\0garbage\nbootstate=0\nbootstate=1\n");
        assert_eq!((c.build.as_deref(), c.bootstate), (Some("6.7"), 1));
    }

    #[test]
    fn module_list_splits_at_every_triple_dash() {
        let names: Vec<String> =
            split_module_list("a.gz---b.gz --- --- c.gz opt=1 x").into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["a.gz", "b.gz", "c.gz"]);
        assert_eq!(split_module_list("c.gz  opt=1 x")[0].options, "opt=1 x");
    }

    #[test]
    fn writer_accepts_spaces_around_equals_that_the_parser_ignores() {
        assert_eq!(locate_bootstate(b"bootstate = 1\n"), WriterSlot::At { offset: 12, digit: b'1' });
        assert_eq!(locate_bootstate(b"bootstate\t=3\n"), WriterSlot::At { offset: 11, digit: b'3' });
        assert_eq!(safe("bootstate = 3\n").bootstate, 0, "the parser ignores it: an INVALID bank boots");
    }

    #[test]
    fn writer_rejects_abbreviations_bom_and_words_inside_lines() {
        assert_eq!(locate_bootstate(b"boot=1\nbootstat=1\n"), WriterSlot::NotFound);
        assert_eq!(locate_bootstate(b"\xEF\xBB\xBFbootstate=3\n"), WriterSlot::NotFound);
        assert_eq!(locate_bootstate(b"kernelopt=bootstate=1\n# bootstate=1\nbootstate_old=1\n"), WriterSlot::NotFound);
        assert_eq!(
            locate_bootstate(b"kernelopt=bootstate=1\n  bootstate=2\n"),
            WriterSlot::At { offset: 34, digit: b'2' }
        );
    }

    #[test]
    fn writer_patches_the_first_of_two_bootstate_lines() {
        assert_eq!(locate_bootstate(b"bootstate=0\nbootstate=1\n"), WriterSlot::At { offset: 10, digit: b'0' });
        assert_eq!(safe("bootstate=0\nbootstate=1\n").bootstate, 1, "the parser takes the last");
    }

    #[test]
    fn writer_window_is_512_bytes() {
        let mut text = vec![b'#'; 501];
        text.push(b'\n');
        text.extend_from_slice(b"bootstate=1\n"); // '=' at 511, value at 512
        assert_eq!(text.len(), 514);
        assert_eq!(locate_bootstate(&text), WriterSlot::NotFound);
        assert_eq!(locate_bootstate(&text[1..]), WriterSlot::At { offset: 511, digit: b'1' }, "one byte earlier");
    }

    #[test]
    fn writer_bad_digits() {
        assert_eq!(locate_bootstate(b"bootstate=-1\n"), WriterSlot::BadDigit { offset: 10, byte: b'-' });
        assert_eq!(locate_bootstate(b"bootstate=4\n"), WriterSlot::BadDigit { offset: 10, byte: b'4' });
        assert_eq!(locate_bootstate(b"bootstate=\n"), WriterSlot::BadDigit { offset: 10, byte: b'\n' });
        assert_eq!(locate_bootstate(b"bootstate=10\n"), WriterSlot::At { offset: 10, digit: b'1' });
    }

    #[test]
    fn binary_garbage_never_panics() {
        let garbage: Vec<u8> = (0..10_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let _ = SafebootConfig::parse(&garbage);
        let _ = MbootConfig::parse(&garbage);
    }
}
