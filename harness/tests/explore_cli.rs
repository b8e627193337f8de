//! Issue 14: what `explore`, `report`, `run`, `demo` and `cache` tell the
//! user: a verdict first, violations apart from repairable findings, totals,
//! defaults that agree, and the disk space a demo and the cache take.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use crate::util::*;

/// Lines of `text` that show a crash window (`  write 14: ...`).
fn window_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("  write")).collect()
}

/// The first write of a window line.
fn first_write(line: &str) -> usize {
    let range = line.trim_start().split(':').next().unwrap();
    let digits: String = range.split_whitespace().nth(1).unwrap().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

#[test]
fn explore_prints_a_verdict_first_and_fat_findings_are_not_violations() {
    let fsck = visorsim_testkit::require_tool!("fsck.fat", "dosfstools");
    let out = visorsim(&["explore", "--op", "boot", "--payload-mb", "0.3", "--fsck-every", "50"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("verdict: no invariant was violated in "), "{text}");
    assert!(first.contains("the FAT of every state checked: "), "{first}");
    assert!(!text.contains("violation:"), "FAT findings are not violations: {text}");
    assert!(!text.contains("..="), "ranges are not Rust's: {text}");
    assert!(text.contains("--depth 1"), "boot explores at depth 1 by default: {text}");
    assert!(text.contains("FAT damage (repairable by fsck.fat -a"), "{text}");
    let windows = window_lines(&text);
    assert!(!windows.is_empty(), "{text}");
    let starts: Vec<usize> = windows.iter().map(|l| first_write(l)).collect();
    let mut sorted = starts.clone();
    sorted.sort_unstable();
    assert_eq!(starts, sorted, "windows in write order: {text}");
    assert!(windows.iter().all(|l| l.contains(": finding: ")), "{text}");
    if fsck.is_some() {
        assert!(first.contains("fsck.fat -n cross-checked "), "{first}");
        assert!(first.ends_with("it agrees"), "the checker agrees with fsck.fat -n: {first}\n{}", stderr(&out));
    }
}

#[test]
fn explore_json_carries_the_verdict() {
    let args = ["explore", "--op", "boot", "--payload-mb", "0.3", "--fsck-every", "0", "--json"];
    let out = visorsim_with_cache(&cache_dir(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // stderr is not a terminal: progress lines (every update here), not a bar.
    assert!(stderr(&out).contains("checking crash states: "), "{}", stderr(&out));
    let quiet = visorsim_with_cache(&cache_dir(), &[&args[..], &["--quiet"]].concat());
    assert_eq!(stderr(&quiet), "", "--quiet");
    assert_eq!(
        quiet.stdout.iter().filter(|&&b| b == b'\n').count(),
        out.stdout.iter().filter(|&&b| b == b'\n').count()
    );
    let lines: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).expect("JSON lines")).collect();
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["states"], lines.len() - 1, "the old fields stay: {summary}");
    assert!(summary["outcomes"].is_object(), "{summary}");
    let verdict = &summary["verdict"];
    assert_eq!(verdict["violated"], false, "{summary}");
    assert_eq!(verdict["violations"], 0, "{summary}");
    assert_eq!(verdict["fsck_checked"], 0, "{summary}");
    assert_eq!(verdict["states"], lines.len() - 1, "{summary}");
    assert_eq!(summary["depth"], 1, "{summary}");
    let windows = summary["windows"].as_array().unwrap();
    assert!(windows.iter().all(|w| w["kind"] == "finding"), "FAT damage of a trial boot: findings only: {summary}");
    assert_eq!(lines[0]["fsck_checked"], false, "{}", lines[0]);
}

/// A state line as `explore --json` prints it.
fn state(id: u64, writes: usize, outcome: &str, violation: bool) -> String {
    serde_json::json!({
        "id": id, "description": format!("prefix {writes}"), "outcome": outcome,
        "violation": violation, "writes_landed": writes, "torn": false,
    })
    .to_string()
}

#[test]
fn report_separates_violations_from_findings_and_exits_7() {
    let dir = tempfile::tempdir().unwrap();
    let lost = "violation: old build, config lost (defaults)";
    let finding = "finding: old build, old config, fsck: bank 5: Reclaimed 1 unused cluster (4096 bytes).";
    let mut text = String::new();
    for (id, writes, outcome, violation) in [
        (1, 9, finding, false),
        (2, 5, lost, true),
        (3, 3, lost, true),
        (4, 4, lost, true),
        (5, 1, "ok: old build, old config", false),
    ] {
        text.push_str(&state(id, writes, outcome, violation));
        text.push('\n');
    }
    text.push_str(r#"{"summary": {"seconds": 1.5}}"#);
    let path = dir.path().join("shard.jsonl");
    fs::write(&path, text).unwrap();
    let out = visorsim(&["report", path.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(7), "an invariant violated: exit 7: {text}{}", stderr(&out));
    assert!(text.starts_with("verdict: INVARIANT VIOLATED in 3 of 5 crash states"), "{text}");
    let windows = window_lines(&text);
    assert_eq!(windows, [format!("  writes 3\u{2013}5: {lost}"), format!("  write 9: {finding}")], "{text}");
    let violations = text.find("invariant violations").expect("a violations section");
    let findings = text.find("FAT damage (").expect("a findings section");
    assert!(violations < findings, "{text}");
}

/// A scenario file in `dir`.
fn scenario(dir: &Path, name: &str, expect_bank: u32) -> String {
    let path = dir.join(name);
    let text = format!(
        r#"{{"disk": {{"payload_mb": 0.3}}, "steps": [{{"boot": {{}}}}, {{"expect": {{"booted_bank": {expect_bank}}}}}]}}"#
    );
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn run_over_several_files_ends_with_a_total() {
    let dir = tempfile::tempdir().unwrap();
    let pass = scenario(dir.path(), "pass.json", 5);
    let fail = scenario(dir.path(), "fail.json", 6);
    let out = visorsim(&["run", &pass, &fail, &pass]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().last(), Some("scenarios: 2 passed, 1 failed"), "{text}");
    let out = visorsim(&["run", &pass]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().last(), Some("scenarios: 1 passed, 0 failed"), "{}", stdout(&out));
    // --json: one result per line, nothing else.
    let out = visorsim(&["run", "--json", &pass, &fail]);
    for line in stdout(&out).lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("JSON lines");
    }
}

/// `visorsim <command> --help`.
fn help(command: &str) -> String {
    let out = visorsim(&[command, "--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// The `--payload-mb` paragraph of a `--help`.
fn payload_help(text: &str) -> String {
    let start = text.find("--payload-mb").expect("--payload-mb");
    let rest = &text[start..];
    let end = rest[2..].find("\n  -").map_or(rest.len(), |e| e + 2);
    rest[..end].to_owned()
}

#[test]
fn quick_payload_defaults_agree_and_realistic_is_a_flag() {
    for command in ["explore", "build"] {
        assert!(payload_help(&help(command)).contains("[default: 1]"), "{command}: {}", help(command));
    }
    for command in ["explore", "demo"] {
        assert!(help(command).contains("--realistic"), "{command}: {}", help(command));
    }
    let demo = help("demo");
    assert!(demo.contains("--no-cache"), "{demo}");
}

/// Runs visorsim with its own cache directory.
fn visorsim_with_cache(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_visorsim"))
        .args(args)
        .env("VISORSIM_CACHE_DIR", cache)
        .env("VISORSIM_PROGRESS_SECONDS", "0")
        .output()
        .expect("run visorsim")
}

#[test]
fn demo_says_where_its_image_is_and_reuses_its_dir_without_a_cache() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for _ in 0..2 {
        let out = visorsim_with_cache(cache.path(), &["demo", "--no-cache", "--payload-mb", "1", "--dir", d]);
        let text = stdout(&out);
        assert!(out.status.success(), "{text}{}", stderr(&out));
        assert!(!text.contains("370 MB"), "{text}");
        assert!(text.contains("MiB of system modules"), "{text}");
        assert!(text.contains(&format!("rm -r {d}")), "how to remove it: {text}");
        assert!(text.contains("on disk"), "its size: {text}");
        assert!(stderr(&out).contains("generating system modules"), "progress lines: {}", stderr(&out));
    }
    let mut files: Vec<_> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, ["esxi6.img", "visorsim-demo.txt"], "one image, reused");
    assert_eq!(fs::read_dir(cache.path()).unwrap().count(), 0, "--no-cache writes no cache file");
}

#[test]
fn cache_shows_its_dir_and_size_and_cleans_only_its_files() {
    let cache = tempfile::tempdir().unwrap();
    let path = visorsim_with_cache(cache.path(), &["cache", "path"]);
    assert_eq!(stdout(&path).trim(), cache.path().to_str().unwrap());
    let image = cache.path().join("x.img");
    let out = visorsim_with_cache(
        cache.path(),
        &["build", "--out", image.to_str().unwrap(), "--payload-mb", "1", "--seed", "99"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    fs::write(cache.path().join("notes.txt"), "mine").unwrap();
    fs::write(cache.path().join("s.v00-keep.gz"), "not visorsim's").unwrap();
    let cached = fs::read_dir(cache.path()).unwrap().count() - 3;
    assert!(cached >= 2, "build filled the cache");
    let size = visorsim_with_cache(cache.path(), &["cache", "size"]);
    assert!(size.status.success(), "{}", stderr(&size));
    assert!(stdout(&size).contains(&format!("{cached} files")), "{}", stdout(&size));
    let clean = visorsim_with_cache(cache.path(), &["cache", "clean"]);
    assert!(clean.status.success(), "{}", stderr(&clean));
    assert!(stdout(&clean).contains(&format!("removed {cached} files")), "{}", stdout(&clean));
    let mut left: Vec<_> =
        fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, ["notes.txt", "s.v00-keep.gz", "x.img"], "only visorsim's cache files go");
}

/// `build` whose stderr is not a terminal prints progress lines (it used to
/// draw an invisible bar, and nothing reached a log).
#[test]
fn build_prints_progress_lines_when_stderr_is_not_a_terminal() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("b.img");
    let out = visorsim_with_cache(
        cache.path(),
        &["build", "--no-cache", "--payload-mb", "1", "--out", out_path.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.lines().any(|l| l.starts_with("generating system modules: ") && l.contains(" of ")), "{err}");
}

/// Issue 9: `explore --op backup --depth 2 --json` finds the latent-damage
/// window by itself: a crash around backup.sh's `mv -f state.tgz.$$
/// state.tgz` leaves state.tgz cross-linked with a leftover; the host boots
/// fine, but the next backup deletes the leftover (freeing clusters
/// state.tgz still uses) and a power cut in it leaves state.tgz unreadable.
/// The crash state is the violation, with its FAT damage. (`--max-follow
/// 3`: the most damaged states are followed first, so a few are enough; the
/// default follows more.)
#[test]
fn explore_depth_2_finds_the_latent_damage_of_a_backup_crash() {
    let args = ["explore", "--op", "backup", "--payload-mb", "0.3", "--json", "--quiet", "--max-follow", "3"];
    let out = visorsim(&args);
    assert_eq!(out.status.code(), Some(7), "a violation: exit 7: {}", stderr(&out));
    let lines: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).expect("JSON lines")).collect();
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["depth"], 2, "depth 2 is backup's default: {summary}");
    assert_eq!(summary["follow"]["followed"], 3, "{summary}");
    assert!(summary["follow"]["not_followed"].as_u64().unwrap() > 0, "the cap is reported: {summary}");
    assert!(summary["verdict"]["through_depth_2"].as_u64().unwrap() > 0, "{summary}");
    let states = &lines[..lines.len() - 1];
    let latent: Vec<&serde_json::Value> =
        states.iter().filter(|r| r["depth"] == 1 && r["violation"] == true && r["leads_to"].is_u64()).collect();
    assert!(!latent.is_empty(), "{summary}");
    for r in &latent {
        assert_eq!(r["boot"], "booted", "the first boot is fine: {r}");
        assert!(r["cause"].as_str().unwrap().starts_with("leads to: "), "{r}");
        let classes: Vec<&str> = r["fat"]["5"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        assert!(classes.contains(&"cross_link"), "the state's FAT damage is named: {r}");
        let child = states
            .iter()
            .find(|c| {
                let followed = if r["same_as"].is_u64() { &r["same_as"] } else { &r["id"] };
                c["depth"] == 2 && c["parent"] == *followed && c["id"] == r["leads_to"]
            })
            .expect("the depth-2 state it leads to");
        assert_eq!(child["violation"], true, "{child}");
        let outcome = child["outcome"].as_str().unwrap();
        assert!(
            // The boot's words name the bank and file (`bank 5 state.tgz:
            // Fatal error: ...`) since BootReport::reason; before, `loading state.tgz`.
            outcome.contains("state.tgz: Fatal error")
                || outcome.contains("loading state.tgz")
                || outcome.contains("config lost"),
            "the next backup's crash leaves state.tgz unreadable: {child}"
        );
    }
    let by_depth = &summary["by_depth"];
    assert!(by_depth["1"]["fat"]["cross_link"].as_u64().unwrap() > 0, "{by_depth}");
    assert!(by_depth["2"]["violations"]["unbootable"].as_u64().unwrap_or(0) > 0, "{by_depth}");
}

/// Issue 9: each reproducer `explore --reproducers` writes replays to the
/// outcome the explorer saw: at depth 2, the first operation cut, the boot,
/// the next backup cut, the boot after it.
#[test]
fn explore_reproducers_replay_to_the_same_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = visorsim(&[
        "explore",
        "--op",
        "backup",
        "--payload-mb",
        "0.3",
        "--quiet",
        "--max-follow",
        "2",
        "--reproducers",
        d,
    ]);
    assert_eq!(out.status.code(), Some(7), "{}{}", stdout(&out), stderr(&out));
    let mut files: Vec<String> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path().to_str().unwrap().to_owned()).collect();
    files.sort();
    assert!(!files.is_empty(), "reproducers written: {}", stderr(&out));
    assert!(files.iter().any(|f| f.contains("_then_state_")), "a depth-2 reproducer: {files:?}");
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        let scenario: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(text.contains("power_cut_after_writes"), "{text}");
        if file.contains("_then_state_") {
            let cuts =
                scenario["steps"].as_array().unwrap().iter().filter(|s| s["fault"]["power_cut_after_writes"].is_u64());
            assert_eq!(cuts.count(), 2, "two cuts: the operation's and the next backup's: {text}");
        }
        let run = visorsim(&["run", file]);
        assert_eq!(
            run.status.code(),
            Some(0),
            "{file} replays to the explored outcome:\n{}{}",
            stdout(&run),
            stderr(&run)
        );
    }
}
