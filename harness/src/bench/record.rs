//! The record of one `visorsim bench` run and the history file holding many
//! (JSON lines, one run per line; schema in docs/benchmarks.md), plus the
//! run written in the two formats dashboards already read:
//! github-action-benchmark's `customSmallerIsBetter` and Bencher's BMF.
//!
//! Pure data and (de)serialisation: nothing here measures or reads a clock.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The `schema` field of every run this visorsim writes.
pub const SCHEMA: &str = "visorsim-bench/1";
/// The schema family; a run of another version of it is refused by name.
const SCHEMA_FAMILY: &str = "visorsim-bench/";

/// One run of `visorsim bench`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// When the run started, UTC, RFC 3339 (`2026-12-02T09:15:00Z`).
    pub date: String,
    /// `git rev-parse HEAD` where the run was made (`None` outside a checkout).
    pub commit: Option<String>,
    /// Whether the checkout had uncommitted changes to tracked files.
    pub dirty: bool,
    /// The machine.
    pub machine: Machine,
    /// How the run was made.
    pub settings: Settings,
    /// Every external tool the suite knows, found or missing.
    pub tools: Vec<Tool>,
    /// The measured figures, in the suite's order.
    pub figures: Vec<Figure>,
    /// Bounds derived from the limit figures (see [`Bound`]).
    pub bound: Option<Bound>,
    /// Where the time of one cold boot goes.
    pub breakdown: Option<Breakdown>,
}

/// The machine a run was made on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `model name` of /proc/cpuinfo.
    pub cpu: String,
    /// Cores the process may use (`available_parallelism`).
    pub cores: u32,
    /// `uname -r`.
    pub kernel: String,
    /// Transparent huge pages mode (`[madvise]` of /sys/kernel/mm/transparent_hugepage/enabled).
    pub thp: Option<String>,
    /// 1, 5 and 15 minute load averages before the run.
    pub load_before: [f64; 3],
    /// The same after it.
    pub load_after: [f64; 3],
}

impl Machine {
    /// What tells machines apart on the dashboard: CPU model and cores.
    pub fn key(&self) -> String {
        format!("{} × {} cores", self.cpu, self.cores)
    }
}

/// How a run was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `--quick`: small payload, few rounds (a check of the machinery, not a measurement).
    pub quick: bool,
    /// Measured rounds (after the warm-up).
    pub rounds: u32,
    /// Unmeasured rounds first.
    pub warmup: u32,
    /// Compressed bytes of the image's `s.v00`.
    pub sv00_compressed: u64,
    /// Compressed bytes of every module of the image.
    pub modules_compressed: u64,
    /// Uncompressed bytes of every module.
    pub modules_uncompressed: u64,
}

/// An external tool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// The name the suite knows it by (`libdeflate-gunzip`, `zlib-ng`, ...).
    pub name: String,
    /// Its path, when found.
    pub path: Option<String>,
    /// Its version line, when found and it tells.
    pub version: Option<String>,
    /// How to get it when missing.
    pub install: String,
}

/// What a figure measures, which decides what it is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// visorsim loading the image's modules (compared with every peer).
    Visorsim,
    /// An external decompressor on the same modules.
    Peer,
    /// A limit of the machine (one core, or memory bandwidth).
    Limit,
    /// Anything else (explore, build), compared with its `versus`.
    Other,
}

/// One measured figure: seconds per run (or per `per`), smaller is better.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Stable identifier (`boot/cold`, `peer/libdeflate-gunzip`, ...): the
    /// key of its trend over runs.
    pub id: String,
    /// One line saying what was timed.
    pub label: String,
    /// What it is compared with.
    pub kind: Kind,
    /// Seconds of each measured round.
    pub samples: Vec<f64>,
    /// What one sample is the time of: `run`, or `state` for explore.
    pub per: String,
    /// Bytes of output one sample produces (for MB/s and the memcpy ratio).
    pub bytes: Option<u64>,
    /// The figure this one is compared with (explore's external tools, the dd write).
    pub versus: Option<String>,
    /// Why there are no samples (a tool missing, a run failing).
    pub missing: Option<String>,
}

impl Figure {
    /// Median, minimum and maximum of the samples; `None` without samples.
    pub fn spread(&self) -> Option<Spread> {
        Spread::of(&self.samples)
    }
}

/// Median and range of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// The median (mean of the middle two for an even count).
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
}

impl Spread {
    /// Of `samples`, ignoring non-finite ones; `None` when none is left.
    pub fn of(samples: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|s| s.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Spread { median, min: v[0], max: v[n - 1] })
    }
}

/// The bound a cold boot can reach on this machine, from single-core
/// throughputs measured in the same run: one stream's MD5 is serial, so
/// with digests the boot takes at least the longer of that chain and the
/// total CPU work spread over the cores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bound {
    /// Seconds of the longest single digest chain: MD5 of the uncompressed `s.v00`.
    pub chain: f64,
    /// Seconds of all the CPU work with digests on one core: inflate, CRC32
    /// and both MD5s of every module.
    pub work_with_md5: f64,
    /// The same without the MD5s.
    pub work_without_md5: f64,
    /// Cores.
    pub cores: u32,
    /// max(chain, work_with_md5 / cores).
    pub with_md5: f64,
    /// work_without_md5 / cores.
    pub without_md5: f64,
}

impl Bound {
    /// The bound from its parts.
    pub fn new(chain: f64, work_with_md5: f64, work_without_md5: f64, cores: u32) -> Bound {
        let cores_f = f64::from(cores.max(1));
        Bound {
            chain,
            work_with_md5,
            work_without_md5,
            cores,
            with_md5: chain.max(work_with_md5 / cores_f),
            without_md5: work_without_md5 / cores_f,
        }
    }
}

/// Where the time of one cold boot goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// Each module, in boot.cfg order.
    pub modules: Vec<ModuleCost>,
    /// Median seconds of the whole cold boot with MD5s (as `boot/cold`).
    pub boot_with_md5: f64,
    /// Median seconds of its module load alone (the boot report's `load_micros`).
    pub load_with_md5: f64,
    /// Median seconds of the cold boot without MD5s.
    pub boot_without_md5: f64,
    /// Median seconds of its module load alone.
    pub load_without_md5: f64,
}

/// One module's share of a cold boot, each step timed alone on one core.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModuleCost {
    /// File name.
    pub name: String,
    /// File bytes.
    pub compressed: u64,
    /// Uncompressed bytes.
    pub size: u64,
    /// Seconds to inflate it (libdeflate, one call).
    pub inflate: f64,
    /// Seconds of the CRC32 of its output.
    pub crc32: f64,
    /// Seconds of both MD5s (file and output).
    pub md5: f64,
}

/// Why a history file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be read.
    #[error("Cannot read {path}: {source}")]
    Io {
        /// The history file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a run.
    #[error("{path} line {line}: {reason}")]
    BadLine {
        /// The history file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads every run of a history file's text (`path` names it in errors).
/// Blank lines are skipped; any other line must be one run of [`SCHEMA`].
///
/// # Errors
/// [`HistoryError::BadLine`] naming the first line that is not a run.
pub fn parse_history(path: &str, text: &str) -> Result<Vec<Run>, HistoryError> {
    let mut runs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| HistoryError::BadLine { path: path.to_owned(), line: line_no, reason };
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON ({e})")))?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => {}
            Some(other) if other.starts_with(SCHEMA_FAMILY) => {
                return Err(bad(format!("schema {other:?}, but this visorsim reads {SCHEMA:?}")));
            }
            Some(other) => return Err(bad(format!("schema {other:?} is not a visorsim bench run"))),
            None => return Err(bad("no \"schema\" field: not a visorsim bench run".to_owned())),
        }
        let run: Run = serde_json::from_value(value).map_err(|e| bad(format!("not a {SCHEMA} run ({e})")))?;
        runs.push(run);
    }
    Ok(runs)
}

/// Reads a history file.
///
/// # Errors
/// [`HistoryError`].
pub fn read_history(path: &Path) -> Result<Vec<Run>, HistoryError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| HistoryError::Io { path: shown.clone(), source })?;
    parse_history(&shown, &text)
}

/// Appends `run` to the history file as one line (creating the file).
///
/// # Errors
/// Writing failed.
pub fn append_history(path: &Path, run: &Run) -> std::io::Result<()> {
    use std::io::Write;
    let mut line = serde_json::to_string(run).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(line.as_bytes())
}

/// The run as github-action-benchmark's `customSmallerIsBetter` input: one
/// entry per measured figure, its median in seconds, the range as `± half of
/// max − min`, and min–max in `extra`.
pub fn github_benchmark_json(run: &Run) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = run
        .figures
        .iter()
        .filter_map(|f| {
            let s = f.spread()?;
            Some(serde_json::json!({
                "name": f.id,
                "unit": if f.per == "run" { "s".to_owned() } else { format!("s/{}", f.per) },
                "value": s.median,
                "range": format!("±{:.6}", (s.max - s.min) / 2.0),
                "extra": format!("{}; min {:.6} max {:.6}; {} rounds; {}", f.label, s.min, s.max, f.samples.len(), run.machine.key()),
            }))
        })
        .collect();
    serde_json::Value::Array(entries)
}

/// The run as Bencher Metric Format: `{figure: {"latency": {value, lower_value,
/// upper_value}}}` in nanoseconds (BMF's unit for latency).
pub fn bencher_bmf_json(run: &Run) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for f in &run.figures {
        let Some(s) = f.spread() else { continue };
        map.insert(
            f.id.clone(),
            serde_json::json!({ "latency": {
                "value": s.median * 1e9,
                "lower_value": s.min * 1e9,
                "upper_value": s.max * 1e9,
            }}),
        );
    }
    serde_json::Value::Object(map)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small run for tests.
    pub(crate) fn sample_run(commit: &str, cold: &[f64]) -> Run {
        Run {
            schema: SCHEMA.into(),
            date: "2026-12-02T07:00:00Z".into(),
            commit: Some(commit.into()),
            dirty: false,
            machine: Machine {
                cpu: "AMD EPYC".into(),
                cores: 2,
                kernel: "6.1.0".into(),
                thp: Some("madvise".into()),
                load_before: [0.1, 0.2, 0.3],
                load_after: [0.4, 0.5, 0.6],
            },
            settings: Settings {
                quick: true,
                rounds: cold.len() as u32,
                warmup: 1,
                sv00_compressed: 2_000_000,
                modules_compressed: 2_600_000,
                modules_uncompressed: 8_000_000,
            },
            tools: vec![Tool {
                name: "pigz".into(),
                path: None,
                version: None,
                install: "apt-get install pigz".into(),
            }],
            figures: vec![
                Figure {
                    id: "boot/cold".into(),
                    label: "cold boot".into(),
                    kind: Kind::Visorsim,
                    samples: cold.to_vec(),
                    per: "run".into(),
                    bytes: Some(8_000_000),
                    versus: None,
                    missing: None,
                },
                Figure {
                    id: "peer/pigz".into(),
                    label: "pigz -dc".into(),
                    kind: Kind::Peer,
                    samples: vec![],
                    per: "run".into(),
                    bytes: Some(8_000_000),
                    versus: None,
                    missing: Some("pigz is not installed".into()),
                },
            ],
            bound: Some(Bound::new(0.01, 0.05, 0.03, 2)),
            breakdown: None,
        }
    }

    #[test]
    fn spread_is_median_min_max() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(Spread::of(&[]).is_none());
        assert!(Spread::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn history_round_trips_and_skips_blank_lines() {
        let a = sample_run("aaa", &[1.0, 1.2]);
        let b = sample_run("bbb", &[0.9, 1.1]);
        let text = format!("{}\n\n{}\n", serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        assert_eq!(parse_history("h.jsonl", &text).unwrap(), vec![a, b]);
        assert!(parse_history("h.jsonl", "").unwrap().is_empty());
    }

    #[test]
    fn bad_lines_are_errors_naming_the_line() {
        let good = serde_json::to_string(&sample_run("aaa", &[1.0])).unwrap();
        let cases = [
            (format!("{good}\n{{not json\n"), 2, "not JSON"),
            (format!("{good}\n{good}\n{{\"x\": 1}}\n"), 3, "no \"schema\" field"),
            ("{\"schema\": \"visorsim-bench/9\"}\n".to_owned(), 1, "but this visorsim reads"),
            ("{\"schema\": \"other/1\"}\n".to_owned(), 1, "is not a visorsim bench run"),
            (format!("\n{}\n", good.replace("\"cores\":2", "\"cores\":\"two\"")), 2, "not a visorsim-bench/1 run"),
            ("[1, 2]\n".to_owned(), 1, "no \"schema\" field"),
        ];
        for (text, line, why) in cases {
            let e = parse_history("h.jsonl", &text).unwrap_err();
            let HistoryError::BadLine { line: got, ref reason, .. } = e else { panic!("{e}") };
            assert_eq!(got, line, "{e}");
            assert!(reason.contains(why), "{e}");
            assert!(e.to_string().starts_with(&format!("h.jsonl line {line}: ")), "{e}");
        }
    }

    #[test]
    fn exports_carry_only_measured_figures() {
        let run = sample_run("aaa", &[1.0, 3.0, 2.0]);
        let gh = github_benchmark_json(&run);
        let gh = gh.as_array().unwrap();
        assert_eq!(gh.len(), 1, "the missing peer has no entry");
        assert_eq!(gh[0]["name"], "boot/cold");
        assert_eq!(gh[0]["unit"], "s");
        assert_eq!(gh[0]["value"], 2.0);
        assert_eq!(gh[0]["range"], "±1.000000");
        let bmf = bencher_bmf_json(&run);
        assert_eq!(bmf["boot/cold"]["latency"]["value"], 2e9);
        assert_eq!(bmf["boot/cold"]["latency"]["lower_value"], 1e9);
        assert_eq!(bmf["boot/cold"]["latency"]["upper_value"], 3e9);
        assert!(bmf.get("peer/pigz").is_none());
    }

    #[test]
    fn the_bound_is_the_chain_or_the_work_over_the_cores() {
        let b = Bound::new(0.5, 1.6, 0.8, 2);
        assert_eq!((b.with_md5, b.without_md5), (0.8, 0.4));
        let b = Bound::new(0.9, 1.6, 0.8, 2);
        assert_eq!(b.with_md5, 0.9);
    }
}
