//! `visorsim explore` and `visorsim report`: crash-point exploration of one
//! operation, sharded, and the merge of shard outputs.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use visorsim_scenario::explore::{tally, write_reproducers, Exploration, ExploreOptions, StateResult};

use crate::args::OperationArg;
use crate::failure::{Context, Failure, Status};
use crate::progress::Progress;

/// Arguments of `visorsim explore`.
#[derive(Args, Debug)]
pub struct ExploreArgs {
    /// The operation: backup, upgrade, shutdown or boot.
    #[arg(long, value_enum)]
    op: OperationArg,
    /// Seed of the disk and host.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Compressed size of s.v00 in MB (other modules scale with it; the
    /// operation's writes, and so its crash states, grow with it).
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
    /// Run fsck.fat -n on every N-th crash state (0: never).
    #[arg(long, default_value_t = 100)]
    fsck_every: u64,
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
    };
    let exploration = Exploration::prepare(&options)
        .map_err(|e| Failure::msg(format!("Preparing the {} exploration: {e}", op.name())))?;
    let started = Instant::now();
    let results = run_with_progress(&exploration, &options, args.quiet);
    let seconds = started.elapsed().as_secs_f64();
    let writes = exploration.log().iter().filter(|e| matches!(e, visorsim_disk::LoggedIo::Write { .. })).count();
    let flushes = exploration.log().len() - writes;
    let verdict = Verdict::of(&results);
    if args.json {
        for r in &results {
            println!("{}", serde_json::to_string(r).expect("json"));
        }
        let summary = serde_json::json!({ "summary": {
            "op": op.name(), "seed": args.seed, "shard": args.shard, "writes": writes, "flushes": flushes,
            "states": results.len(), "seconds": seconds, "outcomes": tally(&results),
            "verdict": verdict.json(), "windows": windows_json(&results),
        } });
        println!("{summary}");
    } else {
        println!("{}", verdict.line(args.fsck_every));
        println!(
            "visorsim explore --op {} --seed {} --reorder {} --max-tears {}{}",
            op.name(),
            args.seed,
            args.reorder,
            args.max_tears,
            args.shard.map(|(i, n)| format!(" --shard {i}/{n}")).unwrap_or_default()
        );
        println!(
            "operation: {writes} writes, {flushes} flushes; {} crash states checked in {seconds:.2} s ({:.0}/s)",
            results.len(),
            results.len() as f64 / seconds.max(1e-9)
        );
        print!("{}", render_table(&results));
        print_windows(&results);
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

/// What was checked and what was found, over a set of crash states.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    /// Crash states checked.
    states: usize,
    /// Of them, how many `fsck.fat -n` checked.
    fsck_checked: usize,
    /// States that violate an invariant (unbootable, a half-written build
    /// booted, the configuration lost or mixed).
    violations: usize,
    /// States with only a repairable FAT finding.
    findings: usize,
}

impl Verdict {
    fn of(results: &[StateResult]) -> Verdict {
        Verdict {
            states: results.len(),
            fsck_checked: results.iter().filter(|r| r.fsck_checked).count(),
            violations: results.iter().filter(|r| r.kind() == "violation").count(),
            findings: results.iter().filter(|r| r.kind() == "finding").count(),
        }
    }

    /// Exit 7 when an invariant was violated, as a scenario's unmet expectation.
    fn status(&self) -> Status {
        if self.violations > 0 {
            Status::Unmet
        } else {
            Status::Success
        }
    }

    /// The first line of the output: what was checked, and the result.
    /// `fsck_every` is `None` when unknown (`report`).
    fn line(&self, fsck_every: impl Into<Option<u64>>) -> String {
        let result = if self.violations == 0 {
            format!("no invariant was violated in {} crash states", self.states)
        } else {
            format!("INVARIANT VIOLATED in {} of {} crash states", self.violations, self.states)
        };
        let fsck = match (self.fsck_checked, fsck_every.into()) {
            (0, Some(0)) => "fsck.fat not run (--fsck-every 0)".to_owned(),
            (0, Some(_)) => "fsck.fat checked none of them (not installed, or no state sampled)".to_owned(),
            (n, _) => format!("fsck.fat checked {n} of them: {} with a repairable FAT finding", self.findings),
        };
        format!("verdict: {result}; {fsck}")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "violated": self.violations > 0,
            "states": self.states,
            "fsck_checked": self.fsck_checked,
            "violations": self.violations,
            "findings": self.findings,
        })
    }
}

fn render_table(results: &[StateResult]) -> String {
    let mut s = format!("{:>8}  outcome\n", "states");
    for (outcome, count) in tally(results) {
        s.push_str(&format!("{count:>8}  {outcome}\n"));
    }
    s
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
        ("finding", "FAT findings (repairable by fsck.fat -a; no invariant violated)"),
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
    results.sort_by_key(|r| r.id);
    results.dedup_by_key(|r| r.id);
    let verdict = Verdict::of(&results);
    println!("{}", verdict.line(None));
    println!("{} crash states from {} file(s), {seconds:.2} s of checking", results.len(), args.files.len());
    print!("{}", render_table(&results));
    print_windows(&results);
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
