//! `sgdisk -v` (Debian package `gdisk`): is a disk image's GPT sound?
//!
//! `-v` only reads; the image is never modified.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Run, ToolError};

/// The Debian package that provides `sgdisk`.
pub const PACKAGE: &str = "gdisk";

/// How long one `sgdisk` run may take before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What sgdisk prints when verification finds nothing wrong.
const NO_PROBLEMS: &str = "No problems found";

/// The `sgdisk` program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sgdisk {
    program: PathBuf,
    timeout: Duration,
}

impl Default for Sgdisk {
    fn default() -> Sgdisk {
        Sgdisk::new()
    }
}

impl Sgdisk {
    /// `sgdisk`, looked up on `PATH` when run. Does not fail: if there is
    /// none, each call returns [`ToolError::Missing`].
    pub fn new() -> Sgdisk {
        Sgdisk::with_program("sgdisk")
    }

    /// A specific program (a path, or a name looked up on `PATH` when run).
    pub fn with_program(program: impl Into<PathBuf>) -> Sgdisk {
        Sgdisk { program: program.into(), timeout: DEFAULT_TIMEOUT }
    }

    /// The same program with another time limit per call.
    pub fn with_timeout(self, timeout: Duration) -> Sgdisk {
        Sgdisk { timeout, ..self }
    }

    /// The program that will be run.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// How long one call may run ([`DEFAULT_TIMEOUT`] unless set).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `sgdisk -v image`. A missing image is [`ToolError::Io`]; a run
    /// killed by a signal is [`ToolError::Failed`]. Any exit code gives a
    /// report (sgdisk exits 0 on most problems it finds).
    pub fn verify(&self, image: &Path) -> Result<SgdiskReport, ToolError> {
        std::fs::metadata(image).map_err(|e| ToolError::io(image, e))?;
        // A relative path gets `./`, so a name starting with `-` is never an option.
        let image = if image.is_absolute() { image.to_owned() } else { Path::new(".").join(image) };
        let args = [OsString::from("-v"), image.into_os_string()];
        let out =
            Run { program: &self.program, package: PACKAGE, args: &args, locale: crate::LOCALE, limit: self.timeout }
                .output()?;
        let Some(exit_code) = out.status.code() else {
            return Err(ToolError::failed(&self.program, &args, &out));
        };
        Ok(SgdiskReport {
            exit_code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// What `sgdisk -v` printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgdiskReport {
    /// sgdisk's exit code.
    pub exit_code: i32,
    /// Its stdout: the verification report.
    pub stdout: String,
    /// Its stderr: warnings about the headers it read.
    pub stderr: String,
}

impl SgdiskReport {
    /// sgdisk exited 0 and printed `No problems found`.
    pub fn is_clean(&self) -> bool {
        self.exit_code == 0 && self.stdout.contains(NO_PROBLEMS)
    }

    /// The problems sgdisk listed: each paragraph of stdout starting with
    /// `Problem:`, joined onto one line.
    pub fn problems(&self) -> Vec<String> {
        self.stdout
            .split("\n\n")
            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|p| p.starts_with("Problem:"))
            .collect()
    }

    /// stdout then stderr, for a failure message.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_the_problem_paragraphs() {
        let report = SgdiskReport {
            exit_code: 0,
            stdout: "Verification may miss some problems!\n\nProblem: The CRC for the main GPT header is\ninvalid.\n\n\
                     Warning: a gap.\n\nProblem: Disk is too small!\n\nIdentified 2 problems!\n"
                .to_owned(),
            stderr: String::new(),
        };
        assert_eq!(
            report.problems(),
            ["Problem: The CRC for the main GPT header is invalid.", "Problem: Disk is too small!"]
        );
        assert!(!report.is_clean());
        let clean = SgdiskReport {
            exit_code: 0,
            stdout: "\nNo problems found. 2014 free sectors\n".into(),
            stderr: String::new(),
        };
        assert!(clean.is_clean() && clean.problems().is_empty());
    }
}
