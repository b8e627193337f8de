//! Every `scenarios/**/*.json` as its own named test (`cargo test upgrade_rollback`
//! runs one). A failure prints the timeline and each unmet expectation;
//! finding no scenario file at all is a failure too.

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files = Vec::new();
    collect(&root, &mut files);
    if files.is_empty() {
        // Zero tests would pass: say so, and fail, instead.
        eprintln!(
            "error: no scenario files (*.json) under {}: the scenario tests would run nothing. \
             Has the scenarios/ directory moved, or is it empty?",
            root.display()
        );
        std::process::exit(1);
    }
    let trials = files
        .into_iter()
        .map(|path| {
            let name =
                path.strip_prefix(&root).unwrap_or(&path).with_extension("").display().to_string().replace('/', "::");
            Trial::test(name, move || {
                let scenario = visorsim_scenario::load_file(&path).map_err(|e| Failed::from(e.to_string()))?;
                let base = path.parent().unwrap_or(Path::new("."));
                let result = visorsim_scenario::run(&scenario, base)
                    .map_err(|e| Failed::from(format!("{}: {e}", path.display())))?;
                if result.passed() {
                    Ok(())
                } else {
                    Err(Failed::from(format!("{}\n{}", path.display(), result.render())))
                }
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
