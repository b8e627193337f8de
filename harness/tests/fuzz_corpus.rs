//! Replays the kept fuzz corpus (`fuzz/corpus/<target>/*`) through the same
//! entry points the `cargo fuzz` targets call (`<crate>::fuzzing::<target>`),
//! each within its heap budget, so CI checks every input libFuzzer kept and
//! every fixed finding without nightly (CONTRIBUTING.md, Fuzzing).
//!
//! Its own test binary: it installs the counting global allocator it
//! measures with, and runs its trials one at a time so that one trial's
//! allocations never count against another's budget.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};
use visorsim_testkit::alloc::{assert_within, CountingAllocator};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

/// A fuzz target: its name (the `fuzz/fuzz_targets/<name>.rs` file and the
/// `fuzz/corpus/<name>/` directory), its entry and its heap budget.
type Target = (&'static str, fn(&[u8]), fn(usize) -> u64);

/// Every fuzz target, as `fuzz/fuzz_targets/` calls them.
const TARGETS: &[Target] = &[
    ("gpt", visorsim_media::fuzzing::gpt, visorsim_media::fuzzing::gpt_max_alloc),
    ("fat", visorsim_media::fuzzing::fat, visorsim_media::fuzzing::fat_max_alloc),
    ("bootcfg", visorsim_boot::fuzzing::bootcfg, visorsim_boot::fuzzing::bootcfg_max_alloc),
    ("gzip", visorsim_boot::fuzzing::gzip, visorsim_boot::fuzzing::gzip_max_alloc),
    ("state_tgz", visorsim_image::fuzzing::state_tgz, visorsim_image::fuzzing::state_tgz_max_alloc),
    ("scenario", visorsim_scenario::fuzzing::scenario, visorsim_scenario::fuzzing::scenario_max_alloc),
    ("check_volume", visorsim_media::fuzzing::check_volume, visorsim_media::fuzzing::check_volume_max_alloc),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of a directory, sorted; none when it does not exist.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Every target file has a row here and a non-empty corpus, and every
/// corpus directory belongs to a target: a new target cannot go unreplayed.
fn targets_and_corpora_match() -> Result<(), Failed> {
    let root = fuzz_dir();
    let mut problems = Vec::new();
    let stems = |dir: &Path, dirs: bool| -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir() == dirs)
            .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        names.sort();
        names
    };
    let sources = stems(&root.join("fuzz_targets"), false);
    let corpora = stems(&root.join("corpus"), true);
    if sources.is_empty() {
        problems.push(format!("no fuzz targets in {}", root.join("fuzz_targets").display()));
    }
    for name in &sources {
        if !TARGETS.iter().any(|(t, _, _)| t == name) {
            problems.push(format!("fuzz target {name} has no row in TARGETS (harness/tests/fuzz_corpus.rs)"));
        }
    }
    for (name, _, _) in TARGETS {
        if !sources.iter().any(|s| s == name) {
            problems.push(format!("TARGETS row {name} has no fuzz/fuzz_targets/{name}.rs"));
        }
        if files_in(&root.join("corpus").join(name)).is_empty() {
            problems.push(format!("fuzz target {name} has no corpus in fuzz/corpus/{name}/"));
        }
    }
    for name in &corpora {
        if !TARGETS.iter().any(|(t, _, _)| t == name) {
            problems.push(format!("fuzz/corpus/{name}/ belongs to no fuzz target"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

/// Every corpus file of one target through its entry, within its budget;
/// a failure names the file.
fn replay(name: &'static str, entry: fn(&[u8]), budget: fn(usize) -> u64) -> Result<(), Failed> {
    let dir = fuzz_dir().join("corpus").join(name);
    let files = files_in(&dir);
    if files.is_empty() {
        return Err(format!("no corpus files in {}", dir.display()).into());
    }
    let mut failed = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| assert_within(name, &bytes, entry, budget))) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {why}", file.display()));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} of {} corpus files fail:\n{}", failed.len(), files.len(), failed.join("\n")).into())
    }
}

fn main() {
    let mut args = Arguments::from_args();
    // One trial at a time: the allocation counter is process-wide.
    args.test_threads = Some(1);
    let mut trials = vec![Trial::test("targets_and_corpora_match", targets_and_corpora_match)];
    for &(name, entry, budget) in TARGETS {
        trials.push(Trial::test(format!("replay::{name}"), move || replay(name, entry, budget)));
    }
    libtest_mimic::run(&args, trials).exit();
}
