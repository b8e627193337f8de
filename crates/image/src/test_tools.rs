//! Helpers of the unit tests: running the external tools (GNU tar, gzip)
//! that check this crate's output, skipping when one is not installed
//! unless `VISORSIM_REQUIRE_TOOLS` says skipping is not allowed.

use std::io;
use std::process::{Command, Output, Stdio};

/// Runs `cmd`, or returns `None` (with a note) when it is not installed.
pub(crate) fn run(cmd: &mut Command) -> Option<Output> {
    match cmd.stdin(Stdio::null()).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // scripts/test.sh (and CI) install the tools and forbid skipping.
            assert!(std::env::var_os("VISORSIM_REQUIRE_TOOLS").is_none(), "{cmd:?}: not installed");
            eprintln!("{cmd:?}: not installed, skipping");
            None
        }
        Err(e) => panic!("{cmd:?}: {e}"),
    }
}
