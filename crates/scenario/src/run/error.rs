//! [`RunError`]: why a scenario could not run at all (as opposed to failing
//! an expectation), with the step, field, file, bank or LBA it is about.

use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};

/// What a [`RunError`] is about, for callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunErrorKind {
    /// The starting disk cannot be built (`disk.size`, the install).
    Disk,
    /// A system image cannot be built (payload generation or its cache), or
    /// has no module the step names (`upgrade.broken`).
    Image,
    /// A step is invalid as written (a duration, a `corrupt` without target).
    Step,
    /// A `fault` step's target (a bank's file) is not on the medium.
    Fault,
    /// A `corrupt` step's target is not on the medium, or cannot be read or
    /// written.
    Corrupt,
    /// The raw image named by `disk.image` cannot be read.
    Io,
}

/// Why a scenario could not run at all (as opposed to failing an
/// expectation): a kind to match on, where it happened (the step, the
/// scenario field, the image file, the bank, the file, the LBA) and the
/// cause.
///
/// The message (`Display`) already includes the cause's own message;
/// [`Error::source`] gives the cause itself, to match on or downcast.
#[derive(Debug)]
pub struct RunError {
    // Boxed: a `Result<_, RunError>` stays one pointer wide on the error side.
    inner: Box<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: RunErrorKind,
    step: Option<usize>,
    field: &'static str,
    path: Option<PathBuf>,
    bank: Option<u32>,
    file: Option<String>,
    lba: Option<u64>,
    message: String,
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
}

impl RunError {
    pub(super) fn new(kind: RunErrorKind, field: &'static str, message: impl Into<String>) -> RunError {
        let inner = Inner {
            kind,
            step: None,
            field,
            path: None,
            bank: None,
            file: None,
            lba: None,
            message: message.into(),
            source: None,
        };
        RunError { inner: Box::new(inner) }
    }

    /// `message: cause` (the cause and its own causes), for errors whose
    /// cause does not say where it happened on its own.
    pub(super) fn caused(
        kind: RunErrorKind,
        field: &'static str,
        message: String,
        source: impl Error + Send + Sync + 'static,
    ) -> RunError {
        let mut text = message;
        let mut next: Option<&(dyn Error + 'static)> = Some(&source);
        while let Some(e) = next {
            let part = e.to_string();
            if !text.ends_with(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            next = e.source();
        }
        RunError::new(kind, field, text).with_source(source)
    }

    pub(super) fn with_source(mut self, source: impl Error + Send + Sync + 'static) -> RunError {
        self.inner.source = Some(Box::new(source));
        self
    }

    pub(super) fn with_path(mut self, path: &Path) -> RunError {
        self.inner.path = Some(path.to_owned());
        self
    }

    pub(super) fn with_bank(mut self, bank: u32) -> RunError {
        self.inner.bank = Some(bank);
        self
    }

    pub(super) fn with_file(mut self, file: &str) -> RunError {
        self.inner.file = Some(file.to_owned());
        self
    }

    pub(super) fn with_lba(mut self, lba: u64) -> RunError {
        self.inner.lba = Some(lba);
        self
    }

    pub(super) fn at_step(mut self, step: usize) -> RunError {
        self.inner.step = Some(step);
        self
    }

    /// What the error is about.
    pub fn kind(&self) -> RunErrorKind {
        self.inner.kind
    }

    /// The step (1-based) that failed; `None` while building the disk.
    pub fn step(&self) -> Option<usize> {
        self.inner.step
    }

    /// The scenario field that led to it: `disk.image`, `disk.size`, `disk`,
    /// `advance`, `upgrade`, `upgrade.broken`, `fault.bad_file`,
    /// `fault.bit_rot` or `corrupt`.
    pub fn field(&self) -> &'static str {
        self.inner.field
    }

    /// The image file (`disk.image`), resolved against the scenario's directory.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The bank (partition number).
    pub fn bank(&self) -> Option<u32> {
        self.inner.bank
    }

    /// The file of the bank, or the module of the image.
    pub fn file(&self) -> Option<&str> {
        self.inner.file.as_deref()
    }

    /// The LBA on the medium.
    pub fn lba(&self) -> Option<u64> {
        self.inner.lba
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl Error for RunError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.inner.source.as_deref().map(|e| e as _)
    }
}
