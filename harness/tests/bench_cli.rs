//! `visorsim bench --quick` end to end: two runs appended to a history
//! file (with the github-action-benchmark and Bencher exports), the
//! dashboard drawn from it, and the page loaded in a real headless
//! Chromium: no console message at all, its script ran, a screenshot is
//! written. No timing is asserted: the figures are whatever this machine
//! gives under whatever load.

use std::path::Path;
use std::process::Command;

use crate::util::{stderr, stdout, visorsim};

fn quick_run(dir: &Path, extra: &[&str]) -> String {
    let history = dir.join("history.jsonl");
    let mut args =
        vec!["bench", "--quick", "--rounds", "1", "--quiet", "--history", history.to_str().unwrap(), "--work-dir"];
    let work = dir.join("work");
    args.push(work.to_str().unwrap());
    args.extend_from_slice(extra);
    let out = visorsim(&args);
    assert!(out.status.success(), "bench failed: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn quick_bench_history_dashboard_and_a_headless_browser() {
    let dir = tempfile::tempdir().unwrap();
    let gh = dir.path().join("github.json");
    let bmf = dir.path().join("bmf.json");
    let table = quick_run(dir.path(), &["--github-json", gh.to_str().unwrap(), "--bmf-json", bmf.to_str().unwrap()]);
    for id in ["boot/cold ", "boot/cold_without_md5", "boot/warm_fork", "load/s.v00", "limit/memcpy", "explore/backup"]
    {
        assert!(table.contains(id), "{id} missing from\n{table}");
    }
    // Every peer is in the table, measured or listed as missing.
    for peer in ["libdeflate-gunzip", "rapidgzip", "igzip", "zlib-ng", "pigz", "gzip"] {
        assert!(table.contains(&format!("peer/{peer}")), "peer/{peer} missing from\n{table}");
    }
    assert!(table.contains("machine: ") && table.contains("bound on a cold boot"), "{table}");
    quick_run(dir.path(), &[]);

    let history = std::fs::read_to_string(dir.path().join("history.jsonl")).unwrap();
    let runs: Vec<serde_json::Value> = history.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(runs.len(), 2);
    for run in &runs {
        assert_eq!(run["schema"], "visorsim-bench/1");
        assert_eq!(run["settings"]["quick"], true);
        assert!(run["machine"]["cores"].as_u64().unwrap() >= 1);
        assert!(!run["machine"]["cpu"].as_str().unwrap().is_empty());
        let cold = run["figures"].as_array().unwrap().iter().find(|f| f["id"] == "boot/cold").unwrap();
        assert_eq!(cold["samples"].as_array().unwrap().len(), 1);
        assert!(run["breakdown"]["modules"].as_array().unwrap().iter().any(|m| m["name"] == "s.v00"));
    }
    let gh: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&gh).unwrap()).unwrap();
    assert!(gh.as_array().unwrap().iter().any(|e| e["name"] == "boot/cold" && e["unit"] == "s"));
    let bmf: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&bmf).unwrap()).unwrap();
    assert!(bmf["boot/cold"]["latency"]["value"].as_f64().unwrap() > 0.0);

    let site = dir.path().join("site");
    let out =
        visorsim(&["dashboard", dir.path().join("history.jsonl").to_str().unwrap(), "--out", site.to_str().unwrap()]);
    assert!(out.status.success(), "dashboard failed: {}", stderr(&out));
    assert!(stdout(&out).contains("2 runs, 1 machines"), "{}", stdout(&out));
    let page = site.join("index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    for part in ["id=\"latest\"", "id=\"bound\"", "id=\"breakdown\"", "<svg", "boot/cold"] {
        assert!(html.contains(part), "{part} missing from the page");
    }

    let Some(chromium) = visorsim_testkit::require_tool!("chromium", "chromium") else { return };
    let url = format!("file://{}", page.display());
    let browse = |extra: &[String]| {
        let out = Command::new(&chromium)
            .args(["--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0"])
            .arg(format!("--user-data-dir={}", dir.path().join("chromium-profile").display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("run chromium");
        assert!(out.status.success(), "chromium failed: {}", stderr(&out));
        out
    };
    let dom = browse(&["--dump-dom".to_owned()]);
    // The page logs nothing: any console line is an error or a stray log.
    let console: Vec<&str> =
        std::str::from_utf8(&dom.stderr).unwrap().lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(stdout(&dom).contains("data-ready=\"1\""), "the page's script did not run to its end");
    let shot = dir.path().join("dashboard.png");
    let out = browse(&[format!("--screenshot={}", shot.display()), "--window-size=1400,2400".to_owned()]);
    let console: Vec<&str> =
        std::str::from_utf8(&out.stderr).unwrap().lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot of {} bytes", png.len());
}

#[test]
fn dashboard_names_the_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("h.jsonl");
    std::fs::write(&history, "\n{broken\n").unwrap();
    let out = visorsim(&["dashboard", history.to_str().unwrap(), "--out", dir.path().join("site").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("h.jsonl line 2: not JSON"), "{}", stderr(&out));
    std::fs::write(&history, "").unwrap();
    let out = visorsim(&["dashboard", history.to_str().unwrap(), "--out", dir.path().join("site").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("holds no run"), "{}", stderr(&out));
}
