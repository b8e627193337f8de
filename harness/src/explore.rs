//! `visorsim explore` and `visorsim report`: crash-point exploration of one
//! operation (every crash state's FAT checked in process, followed into the
//! next operation at depth 2), sharded, and the merge of shard outputs.
//!
//! What the user sees, in order: the verdict line (violations first, by
//! depth; FAT damage; the fsck.fat cross-check, loudly when it disagrees),
//! the command, the speed, what depth 2 followed and did not, the outcome
//! table per depth, FAT damage by class and violations by cause per depth,
//! then the crash windows of the operation.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use visorsim_boot::boot::BootOptions;
use visorsim_boot::safeboot::LoaderVersion;
use visorsim_host::bank::CacheMode;
use visorsim_host::host::HostBootOptions;
use visorsim_scenario::explore::{
    tally, write_reproducers, CustomerDisk, Exploration, ExploreOptions, FollowSummary, StateResult, DEFAULT_MAX_FOLLOW,
};
use visorsim_scenario::input::ImageInput;

use crate::args::{LoaderArg, OperationArg, SectorSizeArg};
use crate::failure::{Context, Failure, Status};
use crate::progress::Progress;

/// Arguments of `visorsim explore`.
#[derive(Args, Debug)]
pub struct ExploreArgs {
    /// The operation: backup, upgrade, shutdown or boot.
    #[arg(long, value_enum)]
    op: OperationArg,
    /// Start from this disk image instead of a fresh install: raw, vmdk,
    /// qcow2 or vhdx, a customer's boot device (only read; never modified).
    /// The host boots what the loader picks and restores its state.tgz,
    /// then the operation runs; reproducers name this file.
    #[arg(long, conflicts_with_all = ["payload_mb", "realistic"])]
    disk: Option<PathBuf>,
    /// Logical sector size of the --disk image [default: detected from its GPT header, else 512].
    #[arg(long, value_enum, requires = "disk")]
    sector_size: Option<SectorSizeArg>,
    /// Which bootloader decides every boot: current (ESXi 7.0 to 9.0) or
    /// 6.7u1 (ESXi 6.7u1/6.7u2: banks 5 and 6 only).
    #[arg(long, value_enum, default_value_t = LoaderArg::Current)]
    loader: LoaderArg,
    /// Seed of the disk and host (with --disk: of the host's randomness and the upgrade's build).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Compressed size of s.v00 in MB (other modules scale with it; the
    /// operation's writes, and so its crash states, grow with it). Not
    /// with --disk: the upgrade's build is then as large as the running one.
    #[arg(long, conflicts_with = "realistic", default_value_t = 1.0)]
    payload_mb: f64,
    /// s.v00 of about 124 MB compressed, like a real ESXi 5.0 image (many more crash states).
    #[arg(long)]
    realistic: bool,
    /// At most this many writes of an unflushed epoch may be lost at a cut.
    #[arg(long, default_value_t = 1)]
    reorder: usize,
    /// Tear points per write.
    #[arg(long, default_value_t = 2)]
    max_tears: usize,
    /// Only shard i of N (`--shard 0/4`): states with id % N == i.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(u64, u64)>,
    /// Also run the external fsck.fat -n on every N-th crash state (0:
    /// never), to cross-check the in-process FAT checker that judges every
    /// state; a disagreement is reported.
    #[arg(long, default_value_t = 1000)]
    fsck_every: u64,
    /// 1: judge the operation's crash states; 2: also boot each distinct
    /// one, run the next operation (the next backup; after an upgrade, the
    /// trial reboot) and judge its crash states [default: 2, 1 for boot].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
    depth: Option<u8>,
    /// At depth 2, follow at most this many distinct crash states (those
    /// with FAT damage first); how many were not followed is reported.
    #[arg(long, default_value_t = DEFAULT_MAX_FOLLOW)]
    max_follow: usize,
    /// What the banks' vfat does between sync calls: writeback (the default:
    /// backup.sh's steps share one unflushed epoch until its sync) or
    /// writethrough (a flush after every step).
    #[arg(long, default_value = "writeback", value_parser = parse_cache)]
    cache: CacheMode,
    /// Write one reproducing scenario per distinct violation here.
    #[arg(long)]
    reproducers: Option<PathBuf>,
    /// JSON lines: one per crash state, then a summary line.
    #[arg(long)]
    json: bool,
    /// No progress bar or progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// A `--shard` that is not `i/N` with `0 <= i < N` (clap prints it after
/// the value and the option).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum ShardError {
    /// No `/`.
    #[error("--shard is i/N, e.g. 0/4")]
    Syntax,
    /// `i` is not a number.
    #[error("bad shard index")]
    Index,
    /// `N` is not a number.
    #[error("bad shard count")]
    Count,
    /// Not `0 <= i < N`.
    #[error("shard {index}/{count}: need 0 <= i < N")]
    OutOfRange { index: u64, count: u64 },
}

/// `--cache`: `writeback` or `writethrough`.
fn parse_cache(s: &str) -> Result<CacheMode, String> {
    CacheMode::from_name(s).ok_or_else(|| "give writeback or writethrough".to_owned())
}

fn parse_shard(s: &str) -> Result<(u64, u64), ShardError> {
    let (i, n) = s.split_once('/').ok_or(ShardError::Syntax)?;
    let index: u64 = i.parse().map_err(|_| ShardError::Index)?;
    let count: u64 = n.parse().map_err(|_| ShardError::Count)?;
    if count == 0 || index >= count {
        return Err(ShardError::OutOfRange { index, count });
    }
    Ok((index, count))
}

/// Runs an exploration.
pub fn explore(args: ExploreArgs) -> Result<Status, Failure> {
    let op = args.op.operation();
    let customer = match &args.disk {
        Some(path) => Some(customer_disk(path, args.sector_size)?),
        None => None,
    };
    let options = ExploreOptions {
        op,
        seed: args.seed,
        payload_mb: if args.realistic {
            visorsim_image::payload::REALISTIC_SV00_COMPRESSED as f64 / 1_000_000.0
        } else {
            args.payload_mb
        },
        reorder: args.reorder,
        max_tears: args.max_tears,
        shard: args.shard,
        fsck_every: args.fsck_every,
        depth: args.depth.unwrap_or(op.default_depth()),
        max_follow: args.max_follow,
        boot: HostBootOptions {
            cache: args.cache,
            loader: BootOptions { loader: args.loader.loader(), ..BootOptions::default() },
            ..HostBootOptions::default()
        },
        disk: customer,
    };
    let on = args.disk.as_ref().map(|p| format!(" on {}", p.display())).unwrap_or_default();
    let exploration = Exploration::prepare(&options)
        .map_err(|e| Failure::msg(format!("Preparing the {} exploration{on}: {e}", op.name())))?;
    let started = Instant::now();
    let mut results = run_with_progress(&exploration, &options, args.quiet);
    let seconds = started.elapsed().as_secs_f64();
    let mut follow = None;
    let mut follow_seconds = 0.0;
    if options.depth >= 2 {
        let started = Instant::now();
        let (deeper, summary) = follow_with_progress(&exploration, &options, &mut results, args.quiet);
        follow_seconds = started.elapsed().as_secs_f64();
        results.extend(deeper);
        follow = Some(summary);
    }
    let writes = exploration.log().iter().filter(|e| matches!(e, visorsim_disk::LoggedIo::Write { .. })).count();
    let flushes = exploration.log().len() - writes;
    let verdict = Verdict::of(&results);
    let first: Vec<StateResult> = results.iter().filter(|r| r.depth == 1).cloned().collect();
    let source = match &args.disk {
        Some(path) => format!("--disk {}", shell_word(&path.display().to_string())),
        None => format!("--payload-mb {}", options.payload_mb),
    };
    let loader = args.loader.loader();
    let command = format!(
        "visorsim explore --op {} {source}{} --seed {} --reorder {} --max-tears {} --cache {} --depth {}{}{}",
        op.name(),
        if loader == LoaderVersion::Current { String::new() } else { format!(" --loader {}", loader.name()) },
        args.seed,
        args.reorder,
        args.max_tears,
        args.cache.name(),
        options.depth,
        if options.depth >= 2 { format!(" --max-follow {}", options.max_follow) } else { String::new() },
        args.shard.map(|(i, n)| format!(" --shard {i}/{n}")).unwrap_or_default()
    );
    for r in results.iter().filter(|r| r.fsck_disagrees.is_some()) {
        eprintln!(
            "FAT CHECKER DISAGREES WITH fsck.fat -n on crash state {} (depth {}): {}",
            r.id,
            r.depth,
            r.fsck_disagrees.as_deref().unwrap_or_default()
        );
    }
    if args.json {
        for r in &results {
            println!("{}", serde_json::to_string(r).expect("json"));
        }
        let summary = serde_json::json!({ "summary": {
            "op": op.name(), "seed": args.seed, "shard": args.shard, "writes": writes, "flushes": flushes,
            "depth": options.depth, "command": command, "loader": loader.name(),
            "disk": args.disk.as_ref().map(|p| p.display().to_string()),
            "states": first.len(), "seconds": seconds, "follow_seconds": follow_seconds,
            "outcomes": tally(&first), "follow": follow,
            "verdict": verdict.json(), "by_depth": classes_json(&results), "windows": windows_json(&first),
        } });
        println!("{summary}");
    } else {
        println!("{}", verdict.line(args.fsck_every));
        println!("{command}");
        println!(
            "operation: {writes} writes, {flushes} flushes; {} crash states ({} distinct by content) judged in {seconds:.2} s ({:.0}/s), the FAT of each checked",
            first.len(),
            first.iter().filter(|r| r.same_as.is_none()).count(),
            first.len() as f64 / seconds.max(1e-9)
        );
        if let Some(f) = &follow {
            println!("{}", follow_line(f, options.max_follow, follow_seconds));
        }
        print!("{}", render_table(&results));
        print!("{}", render_classes(&results));
        print_windows(&first);
    }
    if let Some(dir) = &args.reproducers {
        let written = write_reproducers(&exploration, &results, dir)
            .context(|| format!("Writing reproducers into {}", dir.display()))?;
        for path in written {
            eprintln!("reproducer: {path}");
        }
    }
    Ok(verdict.status())
}

/// The `--disk` image, loaded (any format: a vmdk, qcow2 or vhdx through a
/// sparse raw temporary; the file itself only read), with the path
/// reproducers name (absolute). The scenario runner finds a 4Kn image's
/// sector size the way [`SectorSizeArg::resolve`] does, so its reproducers
/// replay too.
fn customer_disk(path: &Path, flag: Option<SectorSizeArg>) -> Result<CustomerDisk, Failure> {
    if path.is_dir() {
        return Err(Failure::msg(format!("--disk {}: a directory, not a disk image", path.display())));
    }
    let input = ImageInput::open(path).context(|| format!("Opening --disk {}", path.display()))?;
    let sector_size = SectorSizeArg::resolve(flag, input.raw_path());
    let disk = input.load(sector_size).context(|| format!("Reading --disk {}", path.display()))?;
    let image = std::path::absolute(path).context(|| format!("Resolving --disk {}", path.display()))?;
    Ok(CustomerDisk { disk, image: image.display().to_string() })
}

/// `word` as one shell word: as it is when it needs no quoting, else in
/// single quotes.
fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// [`Exploration::run`] with a progress bar or progress lines on stderr
/// (see `progress.rs`).
fn run_with_progress(exploration: &Exploration, options: &ExploreOptions, quiet: bool) -> Vec<StateResult> {
    let total = exploration.selected(options) as u64;
    let checked = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut progress = Progress::counting("checking crash states", quiet);
            while !done.load(Ordering::Relaxed) {
                progress.update(checked.load(Ordering::Relaxed) as u64, total);
                std::thread::sleep(Duration::from_millis(100));
            }
            progress.finish();
        });
        let results = exploration.run_counting(options, &checked);
        done.store(true, Ordering::Relaxed);
        results
    })
}

/// Depth 2 of [`Exploration::follow`] with a progress bar or lines on stderr.
fn follow_with_progress(
    exploration: &Exploration,
    options: &ExploreOptions,
    results: &mut [StateResult],
    quiet: bool,
) -> (Vec<StateResult>, FollowSummary) {
    let total = exploration.to_follow(options, results) as u64;
    let followed = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut progress = Progress::counting("following crash states into the next operation", quiet);
            while !done.load(Ordering::Relaxed) {
                progress.update(followed.load(Ordering::Relaxed) as u64, total);
                std::thread::sleep(Duration::from_millis(100));
            }
            progress.finish();
        });
        let out = exploration.follow(options, results, &followed);
        done.store(true, Ordering::Relaxed);
        out
    })
}

/// What depth 2 followed, what it did not, and how fast.
fn follow_line(f: &FollowSummary, max_follow: usize, seconds: f64) -> String {
    let mut line = format!(
        "depth 2: {} of {} distinct crash states that booted followed into the {} ({}); {} of its crash states ({} distinct) judged in {seconds:.2} s ({:.0}/s)",
        f.followed,
        f.candidates,
        f.next,
        if f.not_followed == 0 {
            "all of them".to_owned()
        } else {
            format!("{} NOT FOLLOWED: --max-follow {max_follow}", f.not_followed)
        },
        f.states,
        f.distinct,
        f.states as f64 / seconds.max(1e-9)
    );
    for failure in &f.failed {
        line.push_str(&format!("\n  could not follow {failure}"));
    }
    line
}

/// What was checked and what was found, over a set of crash states.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    /// Crash states checked, per depth (index 0: depth 1).
    states: [usize; 2],
    /// Of them, how many `fsck.fat -n` cross-checked.
    fsck_checked: usize,
    /// Of those, where it disagreed with the in-process checker.
    fsck_disagreed: usize,
    /// States that violate an invariant (unbootable, a half-written build
    /// booted, the configuration lost or mixed; at depth 1 also: leading to
    /// such a state at depth 2), per depth.
    violations: [usize; 2],
    /// Of the depth-1 violations, those found through depth 2.
    through_depth_2: usize,
    /// States with FAT damage and no violation, per depth.
    findings: [usize; 2],
}

impl Verdict {
    fn of(results: &[StateResult]) -> Verdict {
        let at = |depth: u8, kind: &str| results.iter().filter(|r| r.depth == depth && r.kind() == kind).count();
        let count = |depth: u8| results.iter().filter(|r| r.depth == depth).count();
        Verdict {
            states: [count(1), count(2)],
            fsck_checked: results.iter().filter(|r| r.fsck_checked).count(),
            fsck_disagreed: results.iter().filter(|r| r.fsck_disagrees.is_some()).count(),
            violations: [at(1, "violation"), at(2, "violation")],
            through_depth_2: results.iter().filter(|r| r.depth == 1 && r.leads_to.is_some()).count(),
            findings: [at(1, "finding"), at(2, "finding")],
        }
    }

    /// Exit 7 when an invariant was violated, as a scenario's unmet expectation.
    fn status(&self) -> Status {
        if self.violations.iter().sum::<usize>() > 0 {
            Status::Unmet
        } else {
            Status::Success
        }
    }

    /// The first line of the output: what was checked, and the result.
    /// `fsck_every` is `None` when unknown (`report`).
    fn line(&self, fsck_every: impl Into<Option<u64>>) -> String {
        let [states, deeper] = self.states;
        let result = match (self.violations, deeper) {
            ([0, 0], 0) => format!("no invariant was violated in {states} crash states"),
            ([0, 0], _) => format!(
                "no invariant was violated in {states} crash states, nor in the {deeper} crash states of the next operation they led to"
            ),
            ([v, _], 0) => format!("INVARIANT VIOLATED in {v} of {states} crash states"),
            ([v, v2], _) => format!(
                "INVARIANT VIOLATED: {v} of {states} crash states violate an invariant or lead to a violation in the next operation ({} through it; {v2} of its {deeper} crash states violate one)",
                self.through_depth_2
            ),
        };
        let damage = self.findings[0] + self.findings[1];
        let fat = format!("the FAT of every state checked: {damage} with FAT damage and no violation");
        let fsck = match (self.fsck_checked, self.fsck_disagreed, fsck_every.into()) {
            (0, _, Some(0)) => "fsck.fat cross-check off (--fsck-every 0)".to_owned(),
            (0, _, Some(_)) => "fsck.fat cross-checked none (not installed, or no state sampled)".to_owned(),
            (n, 0, _) => format!("fsck.fat -n cross-checked {n}: it agrees"),
            (n, d, _) => format!("fsck.fat -n cross-checked {n}: IT DISAGREES WITH THE CHECKER ON {d}"),
        };
        format!("verdict: {result}; {fat}; {fsck}")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "violated": self.violations.iter().sum::<usize>() > 0,
            "states": self.states[0],
            "fsck_checked": self.fsck_checked,
            "fsck_disagreed": self.fsck_disagreed,
            "violations": self.violations[0],
            "findings": self.findings[0],
            "through_depth_2": self.through_depth_2,
            "depth_2": { "states": self.states[1], "violations": self.violations[1], "findings": self.findings[1] },
        })
    }
}

/// The outcome table: states per outcome, depth 1 then depth 2.
fn render_table(results: &[StateResult]) -> String {
    let mut s = String::new();
    for depth in [1u8, 2] {
        let at: Vec<StateResult> = results.iter().filter(|r| r.depth == depth).cloned().collect();
        if at.is_empty() {
            continue;
        }
        let title = if depth == 1 {
            "outcome (depth 1: the operation's crash states)"
        } else {
            "outcome (depth 2: the next operation's crash states)"
        };
        s.push_str(&format!("{:>8}  {title}\n", "states"));
        for (outcome, count) in tally(&at) {
            s.push_str(&format!("{count:>8}  {outcome}\n"));
        }
    }
    s
}

/// Per depth: crash states with FAT damage by class, and violations by cause.
fn class_counts(results: &[StateResult]) -> BTreeMap<(u8, &'static str, String), usize> {
    let mut counts = BTreeMap::new();
    for r in results {
        let mut classes: Vec<&String> = r.fat.values().flatten().collect();
        classes.sort();
        classes.dedup();
        for class in classes {
            *counts.entry((r.depth, "FAT damage", class.clone())).or_insert(0) += 1;
        }
        if let Some(cause) = r.cause.as_ref().filter(|_| r.violation) {
            *counts.entry((r.depth, "violation", cause.clone())).or_insert(0) += 1;
        }
    }
    counts
}

fn render_classes(results: &[StateResult]) -> String {
    let counts = class_counts(results);
    let mut s = String::new();
    for kind in ["violation", "FAT damage"] {
        let rows: Vec<_> = counts.iter().filter(|((_, k, _), _)| *k == kind).collect();
        if rows.is_empty() {
            continue;
        }
        let title = if kind == "violation" {
            "violations by depth and cause"
        } else {
            "crash states with FAT damage, by depth and class"
        };
        s.push_str(&format!("{title}:\n"));
        for ((depth, _, name), count) in rows {
            s.push_str(&format!("  depth {depth}  {count:>8}  {name}\n"));
        }
    }
    s
}

/// [`class_counts`] for `--json`: `{"1": {"fat": {...}, "violations": {...}}, ...}`.
fn classes_json(results: &[StateResult]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for ((depth, kind, name), count) in class_counts(results) {
        let d = out.entry(depth.to_string()).or_insert_with(|| serde_json::json!({ "fat": {}, "violations": {} }));
        let key = if kind == "violation" { "violations" } else { "fat" };
        d[key][name] = serde_json::json!(count);
    }
    serde_json::Value::Object(out)
}

/// A crash window: consecutive landed-write counts with one outcome.
#[derive(Debug, PartialEq, Eq)]
struct Window {
    kind: &'static str,
    outcome: String,
    first: usize,
    last: usize,
}

impl Window {
    /// `write 329` or `writes 329–341`.
    fn range(&self) -> String {
        if self.first == self.last {
            format!("write {}", self.first)
        } else {
            format!("writes {}\u{2013}{}", self.first, self.last)
        }
    }
}

/// Violations and findings grouped into windows of consecutive landed-write
/// counts, in write order.
fn windows(results: &[StateResult]) -> Vec<Window> {
    let mut windows: Vec<Window> = Vec::new();
    let mut sorted: Vec<&StateResult> = results.iter().filter(|r| r.kind() != "ok").collect();
    sorted.sort_by_key(|r| (r.outcome.clone(), r.writes_landed));
    for r in sorted {
        match windows.last_mut() {
            Some(w) if w.outcome == r.outcome && r.writes_landed <= w.last + 1 => w.last = r.writes_landed.max(w.last),
            _ => windows.push(Window {
                kind: r.kind(),
                outcome: r.outcome.clone(),
                first: r.writes_landed,
                last: r.writes_landed,
            }),
        }
    }
    windows.sort_by(|a, b| (a.first, a.last, &a.outcome).cmp(&(b.first, b.last, &b.outcome)));
    windows
}

fn windows_json(results: &[StateResult]) -> serde_json::Value {
    windows(results)
        .iter()
        .map(|w| serde_json::json!({ "kind": w.kind, "first_write": w.first, "last_write": w.last, "outcome": w.outcome }))
        .collect()
}

/// The windows, invariant violations first, then the repairable findings.
fn print_windows(results: &[StateResult]) {
    let windows = windows(results);
    for (kind, title) in [
        ("violation", "invariant violations"),
        ("finding", "FAT damage (repairable by fsck.fat -a; no invariant violated, here or in what followed)"),
    ] {
        let of_kind: Vec<&Window> = windows.iter().filter(|w| w.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        println!("{title}, by crash window (after how many writes of the operation power was lost):");
        for w in of_kind {
            println!("  {}: {}", w.range(), w.outcome);
        }
    }
}

/// Arguments of `visorsim report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// JSON-lines outputs of `visorsim explore --json` (one per shard).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Merges shard outputs into one table.
pub fn report(args: ReportArgs) -> Result<Status, Failure> {
    let mut results = Vec::new();
    let mut seconds = 0.0;
    for path in &args.files {
        let file = std::fs::File::open(path).context(|| format!("Opening {}", path.display()))?;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.context(|| format!("Reading {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| Failure::msg(format!("{}:{}: {e}", path.display(), n + 1)))?;
            if let Some(summary) = value.get("summary") {
                seconds += summary["seconds"].as_f64().unwrap_or(0.0);
                continue;
            }
            let r: StateResult = serde_json::from_value(value)
                .map_err(|e| Failure::msg(format!("{}:{}: {e}", path.display(), n + 1)))?;
            results.push(r);
        }
    }
    results.sort_by_key(StateResult::key);
    results.dedup_by_key(|r| r.key());
    let verdict = Verdict::of(&results);
    println!("{}", verdict.line(None));
    println!("{} crash states from {} file(s), {seconds:.2} s of checking", results.len(), args.files.len());
    print!("{}", render_table(&results));
    print!("{}", render_classes(&results));
    let first: Vec<StateResult> = results.iter().filter(|r| r.depth == 1).cloned().collect();
    print_windows(&first);
    Ok(verdict.status())
}

#[cfg(test)]
mod tests {
    use super::{parse_shard, ShardError};

    #[test]
    fn shards() {
        assert_eq!(parse_shard("0/4"), Ok((0, 4)));
        assert_eq!(parse_shard("3/4"), Ok((3, 4)));
        assert_eq!(parse_shard("4"), Err(ShardError::Syntax));
        assert_eq!(parse_shard("a/4"), Err(ShardError::Index));
        assert_eq!(parse_shard("1/x"), Err(ShardError::Count));
        assert_eq!(parse_shard("4/4"), Err(ShardError::OutOfRange { index: 4, count: 4 }));
        assert_eq!(parse_shard("0/0").unwrap_err().to_string(), "shard 0/0: need 0 <= i < N");
        assert_eq!(parse_shard("4").unwrap_err().to_string(), "--shard is i/N, e.g. 0/4");
    }
}
