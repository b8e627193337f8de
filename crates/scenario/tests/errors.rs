//! A scenario that cannot run fails with a typed [`RunError`]: a kind to
//! match on, where it happened (step, field, bank, file, LBA, image path),
//! the cause, and the message the runner has always printed. And `expect`
//! can match the kind of a failed step's error.

use std::error::Error;
use std::path::Path;

use visorsim_scenario::{parse, run, RunError, RunErrorKind, ScenarioError};

fn run_text(text: &str) -> Result<visorsim_scenario::RunResult, RunError> {
    let scenario = parse(text, "test.json").expect("valid scenario");
    run(&scenario, Path::new("/nonexistent-base"))
}

fn run_error(text: &str) -> RunError {
    run_text(text).expect_err("the scenario cannot run")
}

#[test]
fn a_bad_disk_size_is_refused_when_the_file_is_read() {
    // Range and syntax checks run at parse time, so the error carries the
    // file, line and column (and the size error's own words).
    let e = parse(r#"{"disk": {"size": "16Q"}, "steps": []}"#, "test.json").expect_err("a bad size");
    let ScenarioError::Parse { path, line, column, message } = e else { panic!("not a parse error: {e}") };
    assert_eq!((path.as_str(), line, column), ("test.json", 1, 24));
    assert!(message.starts_with("disk.size: unknown size unit `q` in `16Q`"), "{message}");
}

#[test]
fn a_missing_image_names_its_path() {
    let e = run_error(r#"{"disk": {"image": "gone.img"}, "steps": []}"#);
    assert_eq!(e.kind(), RunErrorKind::Io);
    assert_eq!(e.field(), "disk.image");
    assert_eq!(e.path(), Some(Path::new("/nonexistent-base/gone.img")));
    assert!(e.to_string().starts_with("/nonexistent-base/gone.img: "), "{e}");
    assert!(e.source().is_some());
}

#[test]
fn step_errors_name_the_step_and_field() {
    // A bad duration is refused when the file is read, at its line and column.
    let e = parse(r#"{"disk": {}, "steps": [{"boot": {}}, {"advance": "soon"}]}"#, "test.json").expect_err("bad");
    assert!(e.to_string().starts_with("test.json:1:55: advance: "), "{e}");

    let e = run_error(r#"{"disk": {}, "steps": [{"boot": {}}, {"upgrade": {"build": 2000, "broken": "nope.v00"}}]}"#);
    assert_eq!(
        (e.kind(), e.field(), e.step(), e.file()),
        (RunErrorKind::Image, "upgrade.broken", Some(2), Some("nope.v00"))
    );
    assert_eq!(e.to_string(), "upgrade.broken: the image has no module nope.v00");

    let e = run_error(r#"{"disk": {}, "steps": [{"corrupt": {}}]}"#);
    assert_eq!((e.kind(), e.field(), e.step()), (RunErrorKind::Step, "corrupt", Some(1)));
    assert_eq!(e.to_string(), "corrupt: give `file` or `lba`");

    let e = run_error(r#"{"disk": {}, "steps": [{"corrupt": {"file": {"bank": 42, "file": "s.v00"}}}]}"#);
    assert_eq!((e.kind(), e.bank()), (RunErrorKind::Corrupt, Some(42)));
    assert_eq!(e.to_string(), "bank 42 not found");

    let e = run_error(r#"{"disk": {}, "steps": [{"fault": {"bad_file": {"bank": 6, "file": "s.v00"}}}]}"#);
    assert_eq!(
        (e.kind(), e.field(), e.bank(), e.file()),
        (RunErrorKind::Fault, "fault.bad_file", Some(6), Some("s.v00"))
    );
    assert_eq!(e.to_string(), "s.v00 not found in bank 6");
}

#[test]
fn errors_that_had_no_location_now_name_it() {
    let e = run_error(
        r#"{"disk": {}, "steps": [{"corrupt": {"fill": {"lba": 18446744073709551000, "count": 1000, "byte": 0}}}]}"#,
    );
    assert_eq!((e.kind(), e.field(), e.step()), (RunErrorKind::Corrupt, "corrupt", Some(1)));
    assert_eq!(e.lba(), Some(18446744073709551000));
    assert!(e.to_string().starts_with("corrupt: fill LBA 18446744073709551000+1000: past the end of the disk"), "{e}");

    let e = run_error(r#"{"disk": {}, "steps": [{"corrupt": {"lba": 99999999999}}]}"#);
    assert_eq!((e.kind(), e.lba()), (RunErrorKind::Corrupt, Some(99999999999)));
    assert!(e.to_string().starts_with("corrupt: LBA 99999999999: "), "{e}");
}

#[test]
fn expect_matches_the_kind_of_the_last_error() {
    let steps = |kind: &str| {
        format!(
            r#"{{"disk": {{}}, "steps": ["power_cut", {{"set_hostname": "x"}},
                {{"expect": {{"step_ok": false, "error_contains": "not running", "error_kind": "{kind}"}}}}]}}"#
        )
    };
    let result = run_text(&steps("not_running")).unwrap();
    assert!(result.passed(), "{}", result.render());
    let result = run_text(&steps("backup")).unwrap();
    assert_eq!(result.mismatches.len(), 1, "{}", result.render());
    let m = &result.mismatches[0];
    assert_eq!((m.step, m.what.as_str(), m.expected.as_str()), (3, "error_kind", "backup"));
    assert!(m.actual.starts_with("not_running ("), "{}", m.actual);

    let ok = r#"{"disk": {}, "steps": [{"boot": {}}, {"set_hostname": "x"}, {"expect": {"error_kind": "config"}}]}"#;
    let result = run_text(ok).unwrap();
    assert_eq!(result.mismatches[0].actual, "no error");
}

#[test]
fn error_kinds_match_their_group() {
    let steps = |kind: &str| {
        format!(
            r#"{{"disk": {{}}, "steps": [{{"boot": {{}}}}, {{"upgrade": {{"build": 2000, "extra_mb": 300}}}},
                {{"expect": {{"error_kind": "{kind}"}}}}]}}"#
        )
    };
    for kind in ["upgrade_too_large", "upgrade"] {
        let result = run_text(&steps(kind)).unwrap();
        assert!(result.passed(), "{kind}: {}", result.render());
    }
    for kind in ["upgrade_no_space", "backup", "config"] {
        let result = run_text(&steps(kind)).unwrap();
        assert_eq!(result.mismatches.len(), 1, "{kind}: {}", result.render());
        assert!(result.mismatches[0].actual.starts_with("upgrade_too_large ("), "{}", result.mismatches[0].actual);
    }
}
