//! `visorsim run FILE...`: play scenario files, print their timelines and a
//! total (`scenarios: N passed, M failed`), exit non-zero when an
//! expectation is unmet (showing expected vs actual) or a file is invalid
//! (with its line and column).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::failure::{Failure, Status};

/// Arguments of `visorsim run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Scenario files (JSON; see scenarios/README.md).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print each result as JSON, one line per file (no total line).
    #[arg(long)]
    json: bool,
    /// The host's memory (64M to 1T) for every scenario that does not set `disk.ram` (a scenario's own value wins) [default: 4G].
    #[arg(long, value_parser = crate::args::parse_ram)]
    ram: Option<u64>,
}

/// Runs the scenarios: exit 0 when all pass, 7 when an expectation is unmet.
pub fn run(args: RunArgs) -> Result<Status, Failure> {
    let mut failed = 0;
    for path in &args.files {
        let mut scenario = visorsim_scenario::load_file(path).map_err(|e| Failure::msg(e.to_string()))?;
        // `--ram` is the default a scenario's `disk.ram` overrides: a
        // scenario that sets its memory is testing that memory.
        scenario.disk.ram = scenario.disk.ram.or(args.ram);
        let base = path.parent().unwrap_or(Path::new("."));
        let result = visorsim_scenario::run(&scenario, base).map_err(|e| match e.step() {
            Some(step) => Failure::msg(format!("{}: step {step}: {e}", path.display())),
            None => Failure::msg(format!("{}: {e}", path.display())),
        })?;
        if args.json {
            println!("{}", serde_json::to_string(&result).expect("serialisable"));
        } else {
            println!(
                "== {}{}",
                path.display(),
                if scenario.description.is_empty() { String::new() } else { format!(": {}", scenario.description) }
            );
            print!("{}", result.render());
            println!("{}", if result.passed() { "PASS" } else { "FAIL" });
        }
        if !result.passed() {
            failed += 1;
        }
    }
    if !args.json {
        // Prefixed: a bare "N passed, M failed" line reads as a test
        // runner's summary to CI log parsers.
        println!("scenarios: {} passed, {failed} failed", args.files.len() - failed);
    }
    Ok(if failed == 0 { Status::Success } else { Status::Unmet })
}
