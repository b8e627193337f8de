//! How a command ends, and its exit code: [`Status`] when it did its job
//! (success, or an answer such as "problems found" or "No hypervisor
//! found."), [`Failure`] when it could not (one error type for every
//! subcommand, printed with its whole cause chain). Every exit code of the
//! CLI is decided here:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | [`Status::Success`] |
//! | 1 | [`Failure`]: the command could not do its job |
//! | 2 | usage error (from clap, before any command runs) |
//! | 3 | [`Status::Problems`]: `inspect` found problems |
//! | 4 | [`Status::NoHypervisor`]: a boot found no hypervisor |
//! | 5 | [`Status::LoadFailed`]: mboot stopped with a fatal error |
//! | 6 | [`Status::ChainloadFailed`]: the selected bank failed to chainload |
//! | 7 | [`Status::Unmet`]: `run`: a scenario's expectation was not met; `explore`, `report`: an invariant was violated at a crash point |
//! | 8 | [`Status::HandoffMismatch`]: `boot --qemu`, `demo --qemu`: the guest received other modules or another command line than mboot loaded |
//! | 9 | [`Status::LoaderMissing`]: a boot's firmware could not start the loader (the system partition is missing, unreadable or lacks it) |

use std::error::Error;
use std::fmt;
use std::process::ExitCode;

use visorsim_boot::boot::Outcome;

/// How a command that did its job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Exit code 0 (for `inspect`: no problem found; for `boot`: a bank booted).
    Success,
    /// Exit code 3: `inspect` read the disk but found problems.
    Problems,
    /// Exit code 4: the boot ended in "No hypervisor found."
    NoHypervisor,
    /// Exit code 5: mboot stopped with a fatal error (a module or boot.cfg
    /// failed to load).
    LoadFailed,
    /// Exit code 6: the selected bank failed to chainload ("ESX version is unknown.").
    ChainloadFailed,
    /// Exit code 7: a scenario's expectation was not met, or a crash state violated an invariant.
    Unmet,
    /// Exit code 8: `--qemu`: the guest's report differs from what mboot loaded.
    HandoffMismatch,
    /// Exit code 9: the firmware could not start the loader.
    LoaderMissing,
}

impl Status {
    /// How a boot ended, as the CLI reports it.
    pub fn of_boot(outcome: &Outcome) -> Status {
        match outcome {
            Outcome::Booted => Status::Success,
            Outcome::NoHypervisor => Status::NoHypervisor,
            Outcome::LoadFailed { .. } => Status::LoadFailed,
            Outcome::ChainloadFailed => Status::ChainloadFailed,
            Outcome::LoaderMissing { .. } => Status::LoaderMissing,
        }
    }

    /// The exit code.
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Problems => 3,
            Status::NoHypervisor => 4,
            Status::LoadFailed => 5,
            Status::ChainloadFailed => 6,
            Status::Unmet => 7,
            Status::HandoffMismatch => 8,
            Status::LoaderMissing => 9,
        }
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status.code())
    }
}

/// A failed command: a message naming what failed, and the causes.
#[derive(Debug)]
pub struct Failure {
    message: String,
    source: Option<Box<dyn Error + Send + Sync>>,
}

impl Failure {
    /// A failure with no underlying cause.
    pub fn msg(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), source: None }
    }

    /// A failure caused by `source`.
    pub fn with(message: impl Into<String>, source: impl Error + Send + Sync + 'static) -> Failure {
        Failure { message: message.into(), source: Some(Box::new(source)) }
    }

    /// The exit code of every failure.
    pub const CODE: u8 = 1;

    /// Exit code 1: the command failed.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(Failure::CODE)
    }

    /// Whether an I/O error in the cause chain is a broken pipe: stdout's
    /// reader went away (`visorsim ... | head`), which ends a command
    /// quietly rather than as a failure.
    pub fn is_broken_pipe(&self) -> bool {
        let mut next: Option<&(dyn Error + 'static)> = self.source.as_deref().map(|e| e as _);
        while let Some(e) = next {
            if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
                return true;
            }
            next = e.source();
        }
        false
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        let mut next: Option<&(dyn Error + 'static)> = self.source.as_deref().map(|e| e as _);
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

/// Attaches a message to any error.
pub trait Context<T> {
    /// Wraps the error in a [`Failure`] with `message`.
    fn context(self, message: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T, E: Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn context(self, message: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|e| Failure::with(message(), e))
    }
}

#[cfg(test)]
mod tests {
    use visorsim_boot::boot::Outcome;

    use super::*;

    #[test]
    fn a_broken_pipe_anywhere_in_the_chain_is_recognised() {
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(Failure::with("Writing the report", pipe).is_broken_pipe());
        let other = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(!Failure::with("Opening x", other).is_broken_pipe());
        assert!(!Failure::msg("no").is_broken_pipe());
    }

    /// The codes the README and `main`'s table list.
    #[test]
    fn exit_codes_are_the_documented_ones() {
        assert_eq!(Failure::CODE, 1);
        let boot = |o: Outcome| Status::of_boot(&o).code();
        assert_eq!(boot(Outcome::Booted), 0);
        assert_eq!(boot(Outcome::NoHypervisor), 4);
        assert_eq!(boot(Outcome::ChainloadFailed), 6);
        let codes: Vec<u8> = [
            Status::Success,
            Status::Problems,
            Status::NoHypervisor,
            Status::LoadFailed,
            Status::ChainloadFailed,
            Status::Unmet,
            Status::HandoffMismatch,
            Status::LoaderMissing,
        ]
        .iter()
        .map(|s| s.code())
        .collect();
        assert_eq!(codes, [0, 3, 4, 5, 6, 7, 8, 9]);
    }
}
