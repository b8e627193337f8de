//! The test kit every visorsim test uses when it needs something from
//! outside the repository (a dev-dependency only; never published).
//!
//! One rule decides what a missing external tool means, so no test passes
//! silently because a tool was absent:
//!
//! - with `VISORSIM_REQUIRE_TOOLS` set (what `scripts/test.sh` and CI set),
//!   a missing tool **fails** the test, naming the Debian package to
//!   install;
//! - without it, the test is **skipped** with a printed reason.
//!
//! ```
//! fn fsck_agrees() {
//!     let Some(fsck) = visorsim_testkit::require_tool!("fsck.fat", "dosfstools") else { return };
//!     // ... run `fsck` (a full path) on a test image ...
//!     # let _ = fsck;
//! }
//! # std::env::remove_var("VISORSIM_REQUIRE_TOOLS");
//! # fsck_agrees();
//! ```

use std::path::{Path, PathBuf};

pub mod alloc;

/// The environment variable that turns a missing tool into a failure.
pub const REQUIRE_TOOLS_ENV: &str = "VISORSIM_REQUIRE_TOOLS";

/// Where `program` is on `PATH` (or `program` itself when it is a path to
/// an executable file).
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return is_executable(p).then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Whether missing tools must fail tests (`VISORSIM_REQUIRE_TOOLS` is set).
pub fn tools_required() -> bool {
    std::env::var_os(REQUIRE_TOOLS_ENV).is_some()
}

/// The full path of `program`, or `None` (after printing why the caller
/// skips) when it is missing and tools are not required.
///
/// # Panics
/// When `program` is missing and [`tools_required`]: the message names the
/// Debian `package` that provides it and the script that installs it.
pub fn tool(program: &str, package: &str, test: &str) -> Option<PathBuf> {
    if let Some(found) = find_program(program) {
        return Some(found);
    }
    assert!(
        !tools_required(),
        "{test}: {program} is required ({REQUIRE_TOOLS_ENV} is set) but not installed: \
         apt-get install {package}, or run scripts/test.sh, which installs it"
    );
    eprintln!("skipping {test}: {program} is not installed (Debian package {package})");
    None
}

/// `require_tool!("fsck.fat", "dosfstools")`: the tool's path, or `None`
/// when the calling test should return early (skip). Fails the test instead
/// when `VISORSIM_REQUIRE_TOOLS` is set. The test is named by its module
/// path and line in the messages.
#[macro_export]
macro_rules! require_tool {
    ($program:expr, $package:expr) => {
        $crate::tool($program, $package, concat!(module_path!(), ":", line!()))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_not_a_made_up_tool() {
        assert!(find_program("sh").is_some());
        assert!(find_program("visorsim-no-such-tool").is_none());
        assert!(find_program("/bin/sh").is_some());
        assert!(find_program("/nonexistent/sh").is_none());
    }
}
