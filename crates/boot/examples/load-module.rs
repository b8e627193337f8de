//! Loads module files the way mboot does ([`visorsim_boot::load`]) and
//! prints how long it took, for `scripts/bench-inflate.sh`.
//!
//! ```text
//! load-module [--backend libdeflate|zlib-rs|miniz] [--no-md5] [--runs N] FILE...
//! ```
//!
//! The files are read once; each run then loads all of them with
//! `load_modules` (one file: `load_module`), timing only the load. Prints one
//! line per run and a last line
//! `median_s=<s> out_bytes=<n> in_bytes=<n> mb_per_s=<output MB/s>`.

use std::process::ExitCode;
use std::time::Instant;

use visorsim_boot::load::{load_module, load_modules, Backend, LoadOptions};

fn main() -> ExitCode {
    let mut opts = LoadOptions::default();
    let mut runs = 1usize;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--backend" => {
                let name = args.next().unwrap_or_default();
                match Backend::ALL.into_iter().find(|b| b.name() == name) {
                    Some(b) => opts.backend = b,
                    None => return usage(&format!("unknown backend {name:?}")),
                }
            }
            "--no-md5" => opts.md5 = false,
            "--runs" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => runs = n,
                _ => return usage("--runs needs a positive number"),
            },
            _ if a.starts_with('-') => return usage(&format!("unknown option {a}")),
            _ => paths.push(a),
        }
    }
    if paths.is_empty() {
        return usage("no FILE");
    }
    let mut files = Vec::new();
    for p in &paths {
        match std::fs::read(p) {
            Ok(b) => files.push(b),
            Err(e) => {
                eprintln!("load-module: Cannot read {p}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let inputs: Vec<(&str, &[u8])> = paths.iter().map(String::as_str).zip(files.iter().map(Vec::as_slice)).collect();
    let in_bytes: usize = files.iter().map(Vec::len).sum();
    let mut times = Vec::new();
    let mut out_bytes = 0u64;
    for run in 0..runs {
        let start = Instant::now();
        let results = if inputs.len() == 1 {
            vec![load_module(inputs[0].0, inputs[0].1, &opts)]
        } else {
            load_modules(&inputs, &opts)
        };
        let secs = start.elapsed().as_secs_f64();
        out_bytes = 0;
        for (r, (path, _)) in results.iter().zip(&inputs) {
            match r {
                Ok(m) => out_bytes += m.size,
                Err(e) => {
                    eprintln!("load-module: {path}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        drop(results);
        println!("run {run}: {secs:.3} s");
        times.push(secs);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "median_s={median:.4} out_bytes={out_bytes} in_bytes={in_bytes} mb_per_s={:.0}",
        out_bytes as f64 / 1e6 / median
    );
    ExitCode::SUCCESS
}

fn usage(why: &str) -> ExitCode {
    eprintln!("load-module: {why}");
    eprintln!("usage: load-module [--backend libdeflate|zlib-rs|miniz] [--no-md5] [--runs N] FILE...");
    ExitCode::from(2)
}
