//! [`ArchiveError`]: why an untrusted archive was rejected, naming the
//! archive (`state.tgz` or `local.tgz`), the member when there is one, and
//! for corrupt tar data the offset in the uncompressed stream. Callers
//! match on [`ArchiveError::kind`]; the variants carry the context.

use std::fmt;
use std::io;

/// A member type that is never extracted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecialMember {
    /// A symbolic link to the given target.
    Symlink(String),
    /// A hard link to the given member.
    HardLink(String),
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
}

impl fmt::Display for SpecialMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecialMember::Symlink(t) => write!(f, "symbolic link to '{t}'"),
            SpecialMember::HardLink(t) => write!(f, "hard link to '{t}'"),
            SpecialMember::CharDevice => f.write_str("character device"),
            SpecialMember::BlockDevice => f.write_str("block device"),
            SpecialMember::Fifo => f.write_str("FIFO"),
        }
    }
}

/// What went wrong reading an archive, for callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveErrorKind {
    /// Not gzip, or the gzip stream is corrupt (bad deflate data, CRC).
    Gzip,
    /// The tar structure is corrupt (checksum, number field, truncation).
    Corrupt,
    /// A member name is not UTF-8 or is empty.
    BadName,
    /// A member has an absolute path.
    AbsolutePath,
    /// A member path has a `..` component.
    ParentDir,
    /// A member is a link or a device.
    SpecialFile,
    /// A member has a type this reader does not handle (sparse, volume...).
    Unsupported,
    /// More members than [`ArchiveLimits::max_members`](super::ArchiveLimits::max_members).
    TooManyMembers,
    /// A member larger than [`ArchiveLimits::max_member_bytes`](super::ArchiveLimits::max_member_bytes).
    MemberTooLarge,
    /// More data than [`ArchiveLimits::max_total_bytes`](super::ArchiveLimits::max_total_bytes).
    TotalTooLarge,
    /// The stream inflates more than [`ArchiveLimits::max_ratio`](super::ArchiveLimits::max_ratio)
    /// times its compressed bytes (a zip bomb).
    RatioTooHigh,
    /// state.tgz has no `local.tgz`.
    MissingLocalTgz,
}

/// An error reading `state.tgz` or the `local.tgz` inside it; names the
/// archive and, where there is one, the member.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// See [`ArchiveErrorKind::Gzip`].
    #[error("Corrupt gzip data in {archive}")]
    Gzip {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// What the decoder reported.
        #[source]
        source: io::Error,
    },
    /// See [`ArchiveErrorKind::Corrupt`].
    #[error("Corrupt tar data in {archive} at offset {offset}: {detail}")]
    Corrupt {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// Offset in the uncompressed tar stream.
        offset: u64,
        /// What is wrong, naming the member when known.
        detail: String,
    },
    /// See [`ArchiveErrorKind::BadName`].
    #[error("Member '{member}' of {archive} has an unusable name")]
    BadName {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The name, lossily decoded.
        member: String,
    },
    /// See [`ArchiveErrorKind::AbsolutePath`].
    #[error("Member '{member}' of {archive} has an absolute path")]
    AbsolutePath {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The member's name.
        member: String,
    },
    /// See [`ArchiveErrorKind::ParentDir`].
    #[error("Member '{member}' of {archive} has a '..' component")]
    ParentDir {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The member's name.
        member: String,
    },
    /// See [`ArchiveErrorKind::SpecialFile`].
    #[error("Member '{member}' of {archive} is a {what}, which is not extracted")]
    SpecialFile {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The member's name.
        member: String,
        /// What kind of member it is.
        what: SpecialMember,
    },
    /// See [`ArchiveErrorKind::Unsupported`].
    #[error("Member '{member}' of {archive} has unsupported type {typeflag:?}")]
    Unsupported {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The member's name.
        member: String,
        /// The tar type flag.
        typeflag: char,
    },
    /// See [`ArchiveErrorKind::TooManyMembers`].
    #[error("{archive} has more than {limit} members (at '{member}')")]
    TooManyMembers {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The first member over the limit.
        member: String,
        /// The limit.
        limit: usize,
    },
    /// See [`ArchiveErrorKind::MemberTooLarge`].
    #[error("Member '{member}' of {archive} is {size} bytes, over the limit of {limit}")]
    MemberTooLarge {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The member's name.
        member: String,
        /// The size its header claims.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// See [`ArchiveErrorKind::TotalTooLarge`].
    #[error("Member '{member}' of {archive} brings its data to {total} bytes, over the limit of {limit}")]
    TotalTooLarge {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The member that crosses the limit.
        member: String,
        /// The total including that member.
        total: u64,
        /// The limit.
        limit: u64,
    },
    /// See [`ArchiveErrorKind::RatioTooHigh`].
    #[error(
        "{archive} inflates {inflated} bytes from {compressed} compressed bytes by member '{member}', over the \
         ratio limit of {limit}:1 (a zip bomb)"
    )]
    RatioTooHigh {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The member being read when the ratio was crossed.
        member: String,
        /// Bytes inflated so far.
        inflated: u64,
        /// Compressed bytes consumed so far.
        compressed: u64,
        /// The limit.
        limit: u64,
    },
    /// See [`ArchiveErrorKind::MissingLocalTgz`].
    #[error("state.tgz has no member local.tgz")]
    MissingLocalTgz,
}

impl ArchiveError {
    /// What went wrong.
    pub fn kind(&self) -> ArchiveErrorKind {
        match self {
            ArchiveError::Gzip { .. } => ArchiveErrorKind::Gzip,
            ArchiveError::Corrupt { .. } => ArchiveErrorKind::Corrupt,
            ArchiveError::BadName { .. } => ArchiveErrorKind::BadName,
            ArchiveError::AbsolutePath { .. } => ArchiveErrorKind::AbsolutePath,
            ArchiveError::ParentDir { .. } => ArchiveErrorKind::ParentDir,
            ArchiveError::SpecialFile { .. } => ArchiveErrorKind::SpecialFile,
            ArchiveError::Unsupported { .. } => ArchiveErrorKind::Unsupported,
            ArchiveError::TooManyMembers { .. } => ArchiveErrorKind::TooManyMembers,
            ArchiveError::MemberTooLarge { .. } => ArchiveErrorKind::MemberTooLarge,
            ArchiveError::TotalTooLarge { .. } => ArchiveErrorKind::TotalTooLarge,
            ArchiveError::RatioTooHigh { .. } => ArchiveErrorKind::RatioTooHigh,
            ArchiveError::MissingLocalTgz => ArchiveErrorKind::MissingLocalTgz,
        }
    }

    /// The archive the error is in (`state.tgz` or `local.tgz`).
    pub fn archive(&self) -> &'static str {
        match self {
            ArchiveError::Gzip { archive, .. }
            | ArchiveError::Corrupt { archive, .. }
            | ArchiveError::BadName { archive, .. }
            | ArchiveError::AbsolutePath { archive, .. }
            | ArchiveError::ParentDir { archive, .. }
            | ArchiveError::SpecialFile { archive, .. }
            | ArchiveError::Unsupported { archive, .. }
            | ArchiveError::TooManyMembers { archive, .. }
            | ArchiveError::MemberTooLarge { archive, .. }
            | ArchiveError::TotalTooLarge { archive, .. }
            | ArchiveError::RatioTooHigh { archive, .. } => archive,
            ArchiveError::MissingLocalTgz => "state.tgz",
        }
    }

    /// The member the error is about, if any.
    pub fn member(&self) -> Option<&str> {
        match self {
            ArchiveError::BadName { member, .. }
            | ArchiveError::AbsolutePath { member, .. }
            | ArchiveError::ParentDir { member, .. }
            | ArchiveError::SpecialFile { member, .. }
            | ArchiveError::Unsupported { member, .. }
            | ArchiveError::TooManyMembers { member, .. }
            | ArchiveError::MemberTooLarge { member, .. }
            | ArchiveError::TotalTooLarge { member, .. }
            | ArchiveError::RatioTooHigh { member, .. } => Some(member),
            ArchiveError::Gzip { .. } | ArchiveError::Corrupt { .. } | ArchiveError::MissingLocalTgz => None,
        }
    }
}
