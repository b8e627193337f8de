//! [`Failure`]: one error type for every subcommand, printed with its whole
//! cause chain, mapped to one exit code.

use std::error::Error;
use std::fmt;
use std::process::ExitCode;

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

    /// Exit code 1: the command failed.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(1)
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
