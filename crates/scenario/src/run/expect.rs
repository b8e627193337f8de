//! `expect` steps: each field of an expectation is compared with the medium
//! (below the faults) or the host; every difference is one [`Mismatch`]
//! naming the step, what was checked, and both values. `fat_clean` and
//! `fat_findings` run the in-process FAT checker on the medium's partitions;
//! `bank_states`, `bootstate_chars` and `files` read any partition's files
//! the way the loader finds them (primary GPT, 8.3 names for `boot.cfg`).
//! `config` and `config_absent` need a running host: on one that is off,
//! each is a mismatch saying so (the RAM-disk's `/etc` is gone).

use sha2::{Digest, Sha256};
use visorsim_boot::bootcfg::{locate_bootstate, SafebootConfig, WriterSlot};
use visorsim_boot::volume::{scan_volumes, Volume};
use visorsim_disk::{BlockDevice, MemDisk};
use visorsim_host::bank::{Bank, BankErrorKind, BankLocation};
use visorsim_host::host::Host;
use visorsim_media::fat::check_volume;
use visorsim_media::fatread::{esx_short_name, FatReader};

use super::{Mismatch, World};
use crate::model::{BankStateName, BootOutcome, Expect, FileExpect, FindingName};

/// Largest boot.cfg read for `bank_states` and `bootstate_chars` (as the host reads it).
const MAX_BOOT_CFG: u64 = 1 << 20;

/// Largest file `files` reads (larger: a mismatch naming its size), as `corrupt` does.
const MAX_FILE: u64 = 1 << 30;

/// What a partition's boot.cfg is on the medium.
enum BootCfg {
    /// No such partition in the primary GPT (or MBR).
    NoPartition,
    /// A partition, but not a FAT12/16 volume the loader can read.
    NotFat,
    /// A FAT volume without a readable boot.cfg in its root directory.
    Unreadable,
    /// Its bytes.
    Text(Vec<u8>),
}

impl BootCfg {
    fn read(dev: &mut MemDisk, volumes: &[Volume], number: u32) -> BootCfg {
        let Some(v) = volumes.iter().find(|v| v.number == number) else { return BootCfg::NoPartition };
        let Ok(reader) = FatReader::open(dev, v.first_lba, v.sectors) else { return BootCfg::NotFat };
        let text = reader
            .find_short(dev, &esx_short_name(b"/boot.cfg"))
            .ok()
            .flatten()
            .and_then(|file| reader.read(dev, &file, MAX_BOOT_CFG).ok());
        text.map_or(BootCfg::Unreadable, BootCfg::Text)
    }

    /// The state the parser reads (`bank_states`).
    fn state(&self) -> BankStateName {
        match self {
            BootCfg::NoPartition | BootCfg::NotFat => BankStateName::Missing,
            BootCfg::Unreadable => BankStateName::Empty,
            BootCfg::Text(text) => SafebootConfig::parse(text)
                .map_or(BankStateName::Empty, |c| BankStateName::of_bootstate(Some(c.bootstate))),
        }
    }

    /// The byte the bootstate writer would patch (`bootstate_chars`).
    fn char(&self) -> Option<char> {
        let BootCfg::Text(text) = self else { return None };
        match locate_bootstate(text) {
            WriterSlot::At { digit, .. } => Some(char::from(digit)),
            WriterSlot::BadDigit { byte, .. } => Some(char::from(byte)),
            WriterSlot::NotFound => None,
        }
    }

    /// Both, as a mismatch shows them: `dirty (bootstate byte '2' on disk)`.
    fn shown(&self) -> String {
        let byte = match (self, self.char()) {
            (BootCfg::NoPartition, _) => "no such partition".to_owned(),
            (BootCfg::NotFat, _) => "not a FAT volume".to_owned(),
            (BootCfg::Unreadable, _) => "no readable boot.cfg".to_owned(),
            (_, Some(c)) => format!("bootstate byte {c:?} on disk"),
            (_, None) => "no bootstate line in boot.cfg's first 512 bytes".to_owned(),
        };
        format!("{} ({byte})", self.state().name())
    }
}

pub(super) fn check(w: &mut World, e: &Expect, step: usize) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut mismatch = |what: &str, expected: String, actual: String| {
        out.push(Mismatch { step, what: what.to_owned(), expected, actual });
    };
    let running = w.host.running();
    if let Some(r) = e.running {
        if r != running.is_some() {
            mismatch("running", r.to_string(), running.is_some().to_string());
        }
    }
    if let Some(bank) = e.booted_bank {
        let actual = w.last_boot.as_ref().and_then(|b| b.selected);
        if actual != Some(bank) {
            mismatch("booted_bank", bank.to_string(), shown(actual, "no bank booted"));
        }
    }
    if let Some(build) = &e.booted_build {
        let actual = running.map(|r| r.build.clone());
        if actual.as_deref() != Some(build.as_str()) {
            mismatch("booted_build", build.clone(), shown(actual, "not running"));
        }
    }
    if let Some(outcome) = e.outcome {
        let actual = w.last_boot.as_ref().map(|b| BootOutcome::of(&b.outcome));
        if actual != Some(outcome) {
            mismatch("outcome", outcome.name().to_owned(), shown(actual.map(BootOutcome::name), "no boot yet"));
        }
    }
    if !e.bank_states.is_empty() || !e.bootstate_chars.is_empty() || !e.files.is_empty() {
        let dev = w.dev.inner_mut();
        let volumes = scan_volumes(dev).volumes;
        for (&bank, &want) in &e.bank_states {
            let cfg = BootCfg::read(dev, &volumes, bank);
            if cfg.state() != want {
                mismatch(&format!("bank {bank} state"), want.name().to_owned(), cfg.shown());
            }
        }
        for (&bank, &want) in &e.bootstate_chars {
            let cfg = BootCfg::read(dev, &volumes, bank);
            if cfg.char() != Some(want) {
                mismatch(&format!("bank {bank} bootstate byte"), format!("{want:?}"), cfg.shown());
            }
        }
        for (&bank, files) in &e.files {
            for (name, want) in files {
                for (what, expected, actual) in check_file(dev, &volumes, bank, name, want) {
                    mismatch(&format!("file {bank}:{name} {what}"), expected, actual);
                }
            }
        }
    }
    let lookup =
        |host: &Host, key: &str| if key == "hostname" { host.etc().hostname() } else { host.etc().esx_conf_get(key) };
    // A host that is off has no /etc: the RAM-disk went with it, and what
    // `Host` still holds is the last run's memory, not configuration.
    let off = running.is_none().then(|| "the host is not running".to_owned());
    for (key, want) in &e.config {
        let actual = lookup(&w.host, key);
        if let Some(off) = &off {
            mismatch(&format!("config {key}"), want.clone(), off.clone());
        } else if actual.as_deref() != Some(want.as_str()) {
            mismatch(&format!("config {key}"), want.clone(), quoted(actual.as_deref(), "not set"));
        }
    }
    for (key, not) in &e.config_absent {
        let actual = lookup(&w.host, key);
        let what = format!("config {key} absent");
        if let Some(off) = &off {
            mismatch(&what, format!("anything but {not:?}"), off.clone());
        } else if actual.as_deref() == Some(not.as_str()) {
            mismatch(&what, format!("anything but {not:?}"), quoted(actual.as_deref(), "not set"));
        }
    }
    let log_lines =
        |text: &str| w.last_boot.as_ref().map_or(0, |b| b.log.iter().filter(|l| l.text.contains(text)).count() as u64);
    let events = |text: &str| w.host.timeline().iter().filter(|ev| ev.text.contains(text)).count() as u64;
    for text in &e.log_contains {
        if log_lines(text) == 0 {
            mismatch("log_contains", text.clone(), "not in the last boot's log".into());
        }
    }
    for text in &e.log_absent {
        if let Some(line) = w.last_boot.as_ref().and_then(|b| b.log.iter().find(|l| l.text.contains(text.as_str()))) {
            mismatch("log_absent", format!("no line with {text:?}"), format!("{:?}", line.text));
        }
    }
    for (text, &want) in &e.log_count {
        let found = log_lines(text);
        if found != want {
            mismatch(&format!("log_count {text:?}"), format!("{want} line(s)"), format!("{found} line(s)"));
        }
    }
    for text in &e.timeline_contains {
        if events(text) == 0 {
            mismatch("timeline_contains", text.clone(), "not in the host's timeline".into());
        }
    }
    for text in &e.timeline_absent {
        if let Some(ev) = w.host.timeline().iter().find(|ev| ev.text.contains(text.as_str())) {
            mismatch("timeline_absent", format!("no event with {text:?}"), format!("{} {:?}", ev.kind, ev.text));
        }
    }
    for (text, &want) in &e.timeline_count {
        let found = events(text);
        if found != want {
            mismatch(&format!("timeline_count {text:?}"), format!("{want} event(s)"), format!("{found} event(s)"));
        }
    }
    let last_error = w.last_error.as_ref().map(|f| &f.message);
    if let Some(text) = &e.error_contains {
        match last_error {
            Some(err) if err.contains(text.as_str()) => {}
            other => mismatch("error_contains", text.clone(), quoted(other.map(String::as_str), "no error")),
        }
    }
    if let Some(kind) = e.error_kind {
        let actual = w.last_error.as_ref().map(|f| f.kind);
        if !actual.is_some_and(|actual| kind.matches(actual)) {
            let found = match &w.last_error {
                Some(f) => format!("{} ({:?})", f.kind.name(), f.message),
                None => "no error".to_owned(),
            };
            mismatch("error_kind", kind.name().to_owned(), found);
        }
    }
    if let Some(ok) = e.step_ok {
        if ok != w.last_error.is_none() {
            mismatch("step_ok", ok.to_string(), quoted(last_error.map(String::as_str), "no error"));
        }
    }
    if !e.fat_clean.is_empty() || !e.fat_findings.is_empty() {
        let volumes = scan_volumes(w.dev.inner_mut()).volumes;
        let mut check = |number: u32| {
            let v = volumes.iter().find(|v| v.number == number)?;
            Some(check_volume(w.dev.inner_mut(), v.first_lba, v.sectors))
        };
        for &number in &e.fat_clean {
            match check(number) {
                Some(c) if c.is_clean() => {}
                Some(c) => mismatch(&format!("fat_clean {number}"), "clean".into(), c.summary()),
                None => mismatch(&format!("fat_clean {number}"), "clean".into(), "no such partition".into()),
            }
        }
        for (&number, wanted) in &e.fat_findings {
            let what = format!("fat_findings {number}");
            let Some(c) = check(number) else {
                mismatch(&what, names(wanted), "no such partition".into());
                continue;
            };
            let found = c.classes();
            if wanted.iter().any(|w| !found.contains(&w.0)) {
                mismatch(&what, names(wanted), c.summary());
            }
        }
    }
    out
}

/// The differences between partition `bank`'s file `name` and `want`:
/// (what, expected, found) each. The file is read through the bank the way
/// the host's scripts read it (`dir/file` allowed), at most the partition's
/// size and [`MAX_FILE`].
fn check_file(
    dev: &mut MemDisk,
    volumes: &[Volume],
    bank: u32,
    name: &str,
    want: &FileExpect,
) -> Vec<(&'static str, String, String)> {
    let Some(v) = volumes.iter().find(|v| v.number == bank) else {
        return vec![("exists", "a file".into(), format!("no partition {bank}"))];
    };
    let location = BankLocation::fat(bank, v.first_lba, v.sectors);
    let max = v.sectors.saturating_mul(dev.sector_size().bytes_u64()).min(MAX_FILE);
    let data = match location.read(dev, name, max) {
        Ok(data) => data,
        Err(e) if e.kind() == BankErrorKind::NotFound => {
            return match want.exists {
                Some(false) => Vec::new(),
                _ => vec![("exists", "a file".into(), format!("no such file in partition {bank}"))],
            };
        }
        Err(e) => return vec![("exists", "a file".into(), format!("not readable in partition {bank}: {e}"))],
    };
    let mut out = Vec::new();
    if want.exists == Some(false) {
        out.push(("exists", "no such file".into(), format!("a file of {} bytes", data.len())));
    }
    if let Some(size) = want.size {
        if size != data.len() as u64 {
            out.push(("size", format!("{size} bytes"), format!("{} bytes", data.len())));
        }
    }
    if let Some(sha) = &want.sha256 {
        let found: String = Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect();
        if *sha != found {
            out.push(("sha256", sha.clone(), found));
        }
    }
    for text in &want.contains {
        let needle = text.as_bytes();
        if !needle.is_empty() && !data.windows(needle.len()).any(|w| w == needle) {
            out.push(("contains", format!("{text:?}"), format!("not in its {} bytes", data.len())));
        }
    }
    out
}

/// Class names as a mismatch shows them: `cross_link, lost_clusters`.
fn names(classes: &[FindingName]) -> String {
    classes.iter().map(|c| c.0.name()).collect::<Vec<_>>().join(", ")
}

/// A found value as a mismatch shows it: the value, or what its absence means.
fn shown(value: Option<impl std::fmt::Display>, absent: &str) -> String {
    value.map_or_else(|| absent.to_owned(), |v| v.to_string())
}

/// A found text, quoted, or what its absence means.
fn quoted(value: Option<&str>, absent: &str) -> String {
    value.map_or_else(|| absent.to_owned(), |v| format!("{v:?}"))
}
