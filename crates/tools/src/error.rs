//! [`QemuError`]: what went wrong running `qemu-img`, with the command, the
//! path or the output that explains it.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

use crate::ImageFormat;

/// An error of [`crate::QemuImg`].
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// The program could not be started because it does not exist.
    #[error(
        "{tool} not found{}: install the Debian package {package} (apt-get install {package})",
        if .tool.contains('/') { "" } else { " on PATH" }
    )]
    ToolMissing {
        /// The program as it was looked up (`qemu-img`, or the path given).
        tool: String,
        /// The Debian package that provides it.
        package: String,
    },

    /// The program ran and exited unsuccessfully.
    #[error("Command `{tool} {args}` failed ({status}): {stderr}")]
    Failed {
        /// The program run.
        tool: String,
        /// Its arguments, shell-quoted, so the command can be rerun by hand.
        args: String,
        /// How it exited.
        status: ExitStatus,
        /// What it printed on stderr (trimmed, at most a few KiB).
        stderr: String,
    },

    /// Reading or writing a file (or starting the program) failed.
    #[error("I/O error on {}", .path.display())]
    Io {
        /// The file (or program) concerned.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// The program's output was not what we expected.
    #[error("Cannot parse {what}: {detail}")]
    Parse {
        /// What was being parsed (`qemu-img info output`, `image format`...).
        what: String,
        /// What was wrong with it.
        detail: String,
    },

    /// The request was refused before running anything.
    #[error("Refusing to run qemu-img on {}: {reason}", .path.display())]
    Refused {
        /// The image concerned.
        path: PathBuf,
        /// Why (a raw image has nothing to check; the output is the input...).
        reason: String,
    },
}

impl QemuError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> QemuError {
        QemuError::Io { path: path.into(), source }
    }

    pub(crate) fn parse(what: impl Into<String>, detail: impl Into<String>) -> QemuError {
        QemuError::Parse { what: what.into(), detail: detail.into() }
    }

    pub(crate) fn not_checkable(path: impl Into<PathBuf>, format: ImageFormat) -> QemuError {
        QemuError::Refused {
            path: path.into(),
            reason: format!("{format} images have no metadata that qemu-img check can verify"),
        }
    }
}
