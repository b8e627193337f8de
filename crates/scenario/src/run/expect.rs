//! `expect` steps: each field of an expectation is compared with the medium
//! (below the faults) or the host; every difference is one [`Mismatch`]
//! naming the step, what was checked, and both values. `fat_clean` and
//! `fat_findings` run the in-process FAT checker on the medium's partitions.

use visorsim_boot::volume::scan_volumes;
use visorsim_host::host::{bank_summaries, Host};
use visorsim_media::fat::check_volume;

use super::{Mismatch, World};
use crate::model::{BankStateName, BootOutcome, Expect, FindingName};

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
    if !e.bank_states.is_empty() {
        let banks = bank_summaries(w.dev.inner_mut());
        for (bank, &want) in &e.bank_states {
            let actual = banks
                .iter()
                .find(|b| b.number.to_string() == *bank)
                .map_or(BankStateName::Missing, |b| BankStateName::of_bootstate(b.bootstate));
            if actual != want {
                mismatch(&format!("bank {bank} state"), want.name().to_owned(), actual.name().to_owned());
            }
        }
    }
    let lookup =
        |host: &Host, key: &str| if key == "hostname" { host.etc().hostname() } else { host.etc().esx_conf_get(key) };
    for (key, want) in &e.config {
        let actual = lookup(&w.host, key);
        if actual.as_deref() != Some(want.as_str()) {
            mismatch(&format!("config {key}"), want.clone(), quoted(actual.as_deref(), "not set"));
        }
    }
    for (key, not) in &e.config_absent {
        let actual = lookup(&w.host, key);
        if actual.as_deref() == Some(not.as_str()) {
            mismatch(
                &format!("config {key} absent"),
                format!("anything but {not:?}"),
                quoted(actual.as_deref(), "not set"),
            );
        }
    }
    for text in &e.log_contains {
        let found = w.last_boot.as_ref().is_some_and(|b| b.log.iter().any(|l| l.text.contains(text.as_str())));
        if !found {
            mismatch("log_contains", text.clone(), "not in the last boot's log".into());
        }
    }
    for text in &e.timeline_contains {
        if !w.host.timeline().iter().any(|ev| ev.text.contains(text.as_str())) {
            mismatch("timeline_contains", text.clone(), "not in the host's timeline".into());
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
