//! Fuzzing entry point, not API: the body of the `fuzz/` target
//! `scenario`, kept here so that `cargo test` replays the kept corpus
//! (`fuzz/corpus/scenario/`) through exactly the code libFuzzer ran
//! (`harness/tests/fuzz_corpus.rs`; CONTRIBUTING.md, Fuzzing).
//!
//! The input is a scenario file's text (bytes that are not UTF-8 are
//! refused before parsing, as [`crate::load_file`] refuses them).

use crate::model::{deprecations, parse, ScenarioError, Step};

const MIB: u64 = 1 << 20;

/// Heap budget of [`scenario`]: serde_json's parse keeps at most the text's
/// strings and numbers, plus one [`Step`] per step, and a step takes at
/// least 9 bytes of text (`"backup",`), with the step vector doubling; the
/// round trip holds the JSON text written back (at most a few times the
/// input: escapes and indentation) and a second scenario. Four times all
/// that.
pub fn scenario_max_alloc(input_len: usize) -> u64 {
    let steps = input_len as u64 / 9 + 1;
    4 * (2 * steps * std::mem::size_of::<Step>() as u64 + 16 * input_len as u64) + MIB
}

/// The `scenario` target: [`parse`] with its range checks, and
/// [`deprecations`].
///
/// Invariants: an error names the file and a line and column inside the
/// text (line 1 to the text's line count); a scenario that parses,
/// written back as JSON, parses to the same scenario (what `explore`
/// relies on when it writes reproducers); the deprecation scan never
/// panics and names lines of the text.
pub fn scenario(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lines = text.split('\n').count();
    for d in deprecations(text) {
        assert!((1..=lines).contains(&d.line), "deprecation on line {} of {lines}", d.line);
    }
    match parse(text, "fuzz.json") {
        Err(ScenarioError::Parse { path, line, column, message }) => {
            assert_eq!(path, "fuzz.json");
            assert!(line <= lines, "error on line {line} of {lines}: {message}");
            assert!(!message.is_empty());
            let _ = column;
        }
        Err(other) => panic!("parsing text gave a non-parse error: {other}"),
        Ok(scenario) => {
            let written = serde_json::to_string_pretty(&scenario).expect("a scenario serialises");
            match parse(&written, "written.json") {
                Ok(again) => assert!(again == scenario, "written back as {written}, it parses to another scenario"),
                Err(e) => panic!("the scenario written back does not parse: {e}\n{written}"),
            }
        }
    }
}
