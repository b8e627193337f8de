//! `visorsim explore` and `visorsim report`: crash-point exploration of one
//! operation, sharded, and the merge of shard outputs.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use visorsim_scenario::explore::{tally, write_reproducers, Exploration, ExploreOptions, StateResult};

use crate::args::OperationArg;
use crate::failure::{Context, Failure, Status};

/// Arguments of `visorsim explore`.
#[derive(Args, Debug)]
pub struct ExploreArgs {
    /// The operation: backup, upgrade, shutdown or boot.
    #[arg(long, value_enum)]
    op: OperationArg,
    /// Seed of the disk and host.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Compressed size of s.v00 in MB.
    #[arg(long, default_value_t = 0.3)]
    payload_mb: f64,
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
        payload_mb: args.payload_mb,
        reorder: args.reorder,
        max_tears: args.max_tears,
        shard: args.shard,
        fsck_every: args.fsck_every,
    };
    let exploration = Exploration::prepare(&options)
        .map_err(|e| Failure::msg(format!("Preparing the {} exploration: {e}", op.name())))?;
    let started = Instant::now();
    let results = exploration.run(&options);
    let seconds = started.elapsed().as_secs_f64();
    let writes = exploration.log().iter().filter(|e| matches!(e, visorsim_disk::LoggedIo::Write { .. })).count();
    let flushes = exploration.log().len() - writes;
    if args.json {
        for r in &results {
            println!("{}", serde_json::to_string(r).expect("json"));
        }
        let summary = serde_json::json!({ "summary": { "op": op.name(), "seed": args.seed, "shard": args.shard, "writes": writes, "flushes": flushes, "states": results.len(), "seconds": seconds, "outcomes": tally(&results) } });
        println!("{summary}");
    } else {
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
    Ok(Status::Success)
}

fn render_table(results: &[StateResult]) -> String {
    let mut s = format!("{:>8}  outcome\n", "states");
    for (outcome, count) in tally(results) {
        s.push_str(&format!("{count:>8}  {outcome}\n"));
    }
    s
}

/// Violations grouped into windows of consecutive landed-write counts.
fn print_windows(results: &[StateResult]) {
    let mut windows: Vec<(String, usize, usize)> = Vec::new();
    let mut sorted: Vec<&StateResult> = results.iter().filter(|r| r.violation).collect();
    sorted.sort_by_key(|r| (r.outcome.clone(), r.writes_landed));
    for r in sorted {
        match windows.last_mut() {
            Some((o, _, hi)) if *o == r.outcome && r.writes_landed <= *hi + 1 => *hi = r.writes_landed.max(*hi),
            _ => windows.push((r.outcome.clone(), r.writes_landed, r.writes_landed)),
        }
    }
    if windows.is_empty() {
        println!("no invariant was violated at any crash point");
        return;
    }
    println!("crash windows (after how many writes of the operation power was lost):");
    for (outcome, lo, hi) in windows {
        println!("  writes {lo}..={hi}: {outcome}");
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
    println!("{} crash states from {} file(s), {seconds:.2} s of checking", results.len(), args.files.len());
    print!("{}", render_table(&results));
    print_windows(&results);
    Ok(Status::Success)
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
