//! `visorsim bench`: the boot hot path, the explorer and the image build
//! measured against their peers and the machine's limits in one run, with
//! interleaved rounds (see [`suite`]), printed as a table and kept as
//! history (JSON lines, [`record`]) for `visorsim dashboard`.
//!
//! ```text
//!   machine, commit ─┐
//!   fixture (image) ─┼─► suite: warm-up + N rounds of every contender ─► Run ─┬─► table on stdout
//!   peers (found?) ──┘                                                       ├─► --history (append a line)
//!                                                                            ├─► --github-json, --bmf-json
//!                                                                            └─► --out DIR (all three)
//! ```

pub mod compare;
pub mod machine;
pub mod peers;
pub mod record;
pub mod suite;
pub mod trend;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use visorsim_image::payload::default_cache_dir;

use crate::failure::{Context, Failure, Status};
use record::{Run, SCHEMA};
use suite::{Fixture, SuiteOptions};

/// Arguments of `visorsim bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A small payload and two rounds: checks the machinery in seconds (not a measurement).
    #[arg(long)]
    quick: bool,
    /// Measured rounds of every contender [default: 5; 2 with --quick].
    #[arg(long)]
    rounds: Option<u32>,
    /// Unmeasured rounds first [default: 1; 0 with --quick].
    #[arg(long)]
    warmup: Option<u32>,
    /// Append the run to this history file (JSON lines, docs/benchmarks.md).
    #[arg(long)]
    history: Option<PathBuf>,
    /// Write the run as github-action-benchmark `customSmallerIsBetter` JSON.
    #[arg(long)]
    github_json: Option<PathBuf>,
    /// Write the run as Bencher Metric Format JSON.
    #[arg(long)]
    bmf_json: Option<PathBuf>,
    /// Write run.json, github-benchmark.json and bmf.json into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the run as JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Where the image and module files go [default: a temporary directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Cache compressed payloads here (default: $VISORSIM_CACHE_DIR or ~/.cache/visorsim).
    #[arg(long, conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Do not cache compressed payloads (the build figure is then missing).
    #[arg(long)]
    no_cache: bool,
    /// No progress bar or lines.
    #[arg(long)]
    quiet: bool,
}

/// Runs `visorsim bench`.
pub fn run(args: BenchArgs) -> Result<Status, Failure> {
    let rounds = args.rounds.unwrap_or(if args.quick { 2 } else { 5 });
    if rounds == 0 {
        return Err(Failure::msg("--rounds must be at least 1"));
    }
    let warmup = args.warmup.unwrap_or(if args.quick { 0 } else { 1 });
    let temp;
    let work_dir = match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).context(|| format!("Creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context(|| "Creating a temporary directory".to_owned())?;
            temp.path().to_path_buf()
        }
    };
    let options = SuiteOptions {
        quick: args.quick,
        rounds,
        warmup,
        cache_dir: if args.no_cache { None } else { args.cache_dir.clone().or_else(default_cache_dir) },
        work_dir,
        quiet: args.quiet,
    };
    let date = machine::now_rfc3339();
    let (commit, dirty) = machine::commit();
    let mut machine_now = machine::machine();
    let peers = peers::peers(machine_now.cores);
    let fixture = Fixture::build(&options).map_err(Failure::msg)?;
    let measured = suite::run_suite(&fixture, &peers, &options, machine_now.cores);
    machine_now.load_after = machine::load_average();
    let run = Run {
        schema: SCHEMA.to_owned(),
        date,
        commit,
        dirty,
        machine: machine_now,
        settings: fixture.settings(&options),
        tools: peers.iter().map(|p| p.tool.clone()).chain(other_tools()).collect(),
        figures: measured.figures,
        bound: measured.bound,
        breakdown: measured.breakdown,
    };
    write_outputs(&args, &run)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&run).expect("serialisable"));
    } else {
        print!("{}", render(&run));
    }
    Ok(Status::Success)
}

/// The tools of the explore comparison (not peers of the boot).
fn other_tools() -> Vec<record::Tool> {
    [("fsck.fat", "--help", "apt-get install dosfstools"), ("mtype", "-V", "apt-get install mtools")]
        .into_iter()
        .map(|(name, flag, install)| {
            let path = peers::find_on_path(name);
            record::Tool {
                name: name.to_owned(),
                version: path.as_deref().and_then(|p| peers::version_line(p, &[flag])),
                path: path.map(|p| p.display().to_string()),
                install: install.to_owned(),
            }
        })
        .collect()
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).expect("serialisable") + "\n";
    std::fs::write(path, text).context(|| format!("Writing {}", path.display()))
}

fn write_outputs(args: &BenchArgs, run: &Run) -> Result<(), Failure> {
    if let Some(path) = &args.history {
        record::append_history(path, run).context(|| format!("Appending to {}", path.display()))?;
    }
    if let Some(path) = &args.github_json {
        write_json(path, &record::github_benchmark_json(run))?;
    }
    if let Some(path) = &args.bmf_json {
        write_json(path, &record::bencher_bmf_json(run))?;
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).context(|| format!("Creating {}", dir.display()))?;
        write_json(&dir.join("run.json"), &serde_json::to_value(run).expect("serialisable"))?;
        write_json(&dir.join("github-benchmark.json"), &record::github_benchmark_json(run))?;
        write_json(&dir.join("bmf.json"), &record::bencher_bmf_json(run))?;
    }
    Ok(())
}

/// Seconds for people: `1.234 s`, `12.3 ms`, `45.6 µs`.
pub fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// The run as the command prints it.
pub fn render(run: &Run) -> String {
    let mut s = String::new();
    let m = &run.machine;
    let _ = writeln!(
        s,
        "machine: {} ({} cores), Linux {}, THP {}",
        m.cpu,
        m.cores,
        m.kernel,
        m.thp.as_deref().unwrap_or("?")
    );
    let _ = writeln!(
        s,
        "commit {}{}, {}; load average {:.2} {:.2} {:.2} before, {:.2} {:.2} {:.2} after",
        run.commit.as_deref().map_or("(none)", |c| &c[..c.len().min(12)]),
        if run.dirty { " (with uncommitted changes)" } else { "" },
        run.date,
        m.load_before[0],
        m.load_before[1],
        m.load_before[2],
        m.load_after[0],
        m.load_after[1],
        m.load_after[2],
    );
    let st = &run.settings;
    let _ = writeln!(
        s,
        "image: {} MB of modules ({} MB uncompressed, s.v00 {} MB){}; {} rounds after {} warm-up, medians",
        st.modules_compressed / 1_000_000,
        st.modules_uncompressed / 1_000_000,
        st.sv00_compressed / 1_000_000,
        if st.quick { ", --quick: not a measurement" } else { "" },
        st.rounds,
        st.warmup
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<28} {:>10} {:>21} {:>9} {:>9} {:>12}",
        "figure", "median", "min–max", "MB/s", "vs ldg", "vs limit"
    );
    for f in &run.figures {
        let Some(sp) = f.spread() else {
            let _ = writeln!(s, "{:<28} missing: {}", f.id, f.missing.as_deref().unwrap_or("no samples"));
            continue;
        };
        let per = if f.per == "run" { String::new() } else { format!("/{}", f.per) };
        let mbs = compare::throughput(f).map_or("-".to_owned(), |t| format!("{:.0}", t / 1e6));
        let vs_ldg = compare::peer_ratios(run, f)
            .into_iter()
            .find(|(id, _)| id == "peer/libdeflate-gunzip")
            .map(|(_, r)| format!("{r:.2}×"))
            .or_else(|| compare::versus_ratio(run, f).map(|(_, r)| format!("{r:.1}×")))
            .unwrap_or_else(|| "-".to_owned());
        let vs_limit = compare::limit_ratio(run, f).map_or("-".to_owned(), |(what, r)| format!("{r:.2}× {what}"));
        let _ = writeln!(
            s,
            "{:<28} {:>10} {:>21} {:>9} {:>9} {:>12}",
            f.id,
            seconds(sp.median) + &per,
            format!("{}–{}", seconds(sp.min), seconds(sp.max)),
            mbs,
            vs_ldg,
            vs_limit
        );
    }
    if let Some(b) = &run.bound {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "bound on a cold boot ({} cores): with MD5s {} = max(s.v00 MD5 chain {}, CPU work {} / {}); without {}",
            b.cores,
            seconds(b.with_md5),
            seconds(b.chain),
            seconds(b.work_with_md5),
            b.cores,
            seconds(b.without_md5)
        );
    }
    for t in compare::targets(run) {
        let _ = writeln!(s, "target: {}: {:.2}× — {}", t.goal, t.ratio, if t.met { "met" } else { "NOT met" });
    }
    let missing: Vec<&record::Tool> = run.tools.iter().filter(|t| t.path.is_none()).collect();
    if !missing.is_empty() {
        let _ = writeln!(s);
        for t in missing {
            let _ =
                writeln!(s, "missing: {} ({}; scripts/install-bench-peers.sh installs every peer)", t.name, t.install);
        }
    }
    let _ = writeln!(s, "(vs ldg: libdeflate-gunzip's median / this one, above 1 = faster; explore and build: against the external path)");
    s
}
