//! What can go wrong changing `/etc`: [`EtcError`], naming the path, name
//! or key, with [`EtcErrorKind`] to match on.
//!
//! Invariant: every error is raised before anything is changed.

/// What went wrong changing `/etc`, for callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtcErrorKind {
    /// A path that is empty, has `..`, names a `.#` marker, or clashes with
    /// a file or directory.
    BadPath,
    /// No such file.
    NotFound,
    /// A host name that is not a valid DNS name.
    BadHostName,
    /// A user name that cannot appear in `etc/shadow`.
    BadUserName,
    /// An esx.conf key or advanced option name that cannot be written.
    BadKey,
}

/// An error changing `/etc`; names the path, name or key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EtcError {
    /// See [`EtcErrorKind::BadPath`].
    #[error("Invalid path '{path}': {reason}")]
    BadPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// See [`EtcErrorKind::NotFound`].
    #[error("No such file '{path}'")]
    NotFound {
        /// The path as given.
        path: String,
    },
    /// See [`EtcErrorKind::BadHostName`].
    #[error("Invalid host name '{name}': {reason}")]
    BadHostName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// See [`EtcErrorKind::BadUserName`].
    #[error("Invalid user name '{user}': {reason}")]
    BadUserName {
        /// The name as given.
        user: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// See [`EtcErrorKind::BadKey`].
    #[error("Invalid configuration key '{key}': {reason}")]
    BadKey {
        /// The key or option name as given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl EtcError {
    /// What went wrong.
    pub fn kind(&self) -> EtcErrorKind {
        match self {
            EtcError::BadPath { .. } => EtcErrorKind::BadPath,
            EtcError::NotFound { .. } => EtcErrorKind::NotFound,
            EtcError::BadHostName { .. } => EtcErrorKind::BadHostName,
            EtcError::BadUserName { .. } => EtcErrorKind::BadUserName,
            EtcError::BadKey { .. } => EtcErrorKind::BadKey,
        }
    }
}
