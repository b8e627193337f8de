//! [`HostError`]: why a host operation failed, with a kind to match on
//! ([`HostErrorKind`]), the context, and the typed cause.
//!
//! Invariants:
//! - `Display` is exactly the alert the host's scripts printed (ESXi's own
//!   messages); the timeline holds it followed by its causes
//!   ([`HostError::with_causes`]: the bank, file, archive and member).
//! - The cause, when there is one, is a typed [`BankError`],
//!   [`ArchiveError`] or [`EtcError`], reachable as the error's `source`
//!   (a configuration error is transparent: its message is the alert).

use visorsim_image::archive::ArchiveError;

use crate::bank::{BankError, BankId};
use crate::etc::EtcError;
use crate::plan::{AltBankUnclean, Errno, TooLarge};

/// What went wrong, for callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostErrorKind {
    /// The host is not running.
    NotRunning,
    /// `/bootbank` is gone (the boot device was lost).
    BootbankMissing,
    /// auto-backup.sh could not extract the saved configuration.
    ExtractFailed,
    /// backup.sh failed twice to save state.tgz.
    SaveFailed,
    /// There is no `/altbootbank` to upgrade into.
    NoAltBank,
    /// The new image does not fit the alt bank; nothing was written.
    UpgradeTooLarge,
    /// Writing the new image ran out of space (`[Errno 28]`).
    UpgradeNoSpace,
    /// Writing the new image failed otherwise (`[Errno 5]`).
    UpgradeIo,
    /// The alt bank's FAT did not check clean; nothing was written.
    AltBankUnclean,
    /// A configuration change was refused (bad host name, key, user...).
    Config,
}

/// Why `/bootbank/state.tgz` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// It could not be read.
    #[error("cannot read /bootbank/state.tgz: {0}")]
    Read(BankError),
    /// It is not a usable state archive (corrupt, hostile, or a zip bomb
    /// past [`ArchiveLimits::max_ratio`](visorsim_image::archive::ArchiveLimits::max_ratio)).
    #[error("/bootbank/state.tgz in {bank}: {source}")]
    Extract {
        /// The bank it was read from.
        bank: BankId,
        /// The archive's error (names state.tgz or local.tgz and the member).
        source: ArchiveError,
    },
    /// Its files do not fit in the `/etc` RAM disk (or in the host's
    /// memory): the restore is refused, as tar's extraction into a full
    /// visorfs ramdisk fails.
    #[error("/bootbank/state.tgz in {bank}: {source}: the /etc RAM disk holds {limit} bytes")]
    EtcFull {
        /// The bank it was read from.
        bank: BankId,
        /// The archive's own error (names local.tgz and the member).
        source: ArchiveError,
        /// What `/etc` can hold: [`ETC_RAMDISK_BYTES`], or the host's RAM when smaller.
        limit: u64,
    },
}

/// The size of the `etc` ramdisk `/etc` lives in: 28 MiB (28672 KiB). This
/// is our choice, not a measured figure: a host shows its ramdisks' sizes
/// (`esxcli system visorfs ramdisk list`, `vdf -h`), but we found no public
/// listing of the `etc` ramdisk's to cite. 28 MiB is far above every `/etc`
/// visorsim writes (a fresh one is a few dozen KiB) and small enough that a
/// hostile state.tgz is refused long before it costs real memory (see
/// docs/host.md, Memory). Restoring a `state.tgz` whose files do not fit fails.
pub const ETC_RAMDISK_BYTES: u64 = 28 << 20;

/// Why a host operation failed (its alert is also in the timeline).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// See [`HostErrorKind::NotRunning`].
    #[error("The host is not running")]
    NotRunning,
    /// See [`HostErrorKind::BootbankMissing`].
    #[error("Bootbank cannot be found at path '{bank}'")]
    BootbankMissing {
        /// The bank path (`/bootbank`).
        bank: &'static str,
    },
    /// See [`HostErrorKind::ExtractFailed`]; the archive is not regenerated.
    #[error("Unable to extract system configuration.  Are you out of disk space?")]
    ExtractFailed {
        /// Why.
        #[source]
        source: StateError,
    },
    /// See [`HostErrorKind::SaveFailed`].
    #[error("Error ({rc}) saving state to {bank}")]
    SaveFailed {
        /// The bank path.
        bank: &'static str,
        /// backup.sh's return code.
        rc: i32,
        /// The last try's failure.
        #[source]
        source: BankError,
    },
    /// See [`HostErrorKind::NoAltBank`].
    #[error("No alternate boot bank to install into")]
    NoAltBank,
    /// See [`HostErrorKind::UpgradeTooLarge`].
    #[error(transparent)]
    UpgradeTooLarge(#[from] TooLarge),
    /// See [`HostErrorKind::UpgradeNoSpace`] and [`HostErrorKind::UpgradeIo`]:
    /// `<errno>: '/altbootbank<path>'`.
    #[error("{errno}: '/altbootbank{path}'")]
    UpgradeWrite {
        /// The error number reported.
        errno: Errno,
        /// `/<file>` that failed, or empty for the bank itself.
        path: String,
        /// The failed step; `None` when the device was already gone.
        #[source]
        source: Option<BankError>,
    },
    /// See [`HostErrorKind::AltBankUnclean`].
    #[error(transparent)]
    AltBankUnclean(#[from] AltBankUnclean),
    /// See [`HostErrorKind::Config`].
    #[error(transparent)]
    Config(#[from] EtcError),
}

impl HostError {
    /// The alert, then each cause that says more, in parentheses: where it
    /// failed ("Unable to extract system configuration.  Are you out of disk
    /// space? (/bootbank/state.tgz in partition 5: Member 'etc/a' of
    /// local.tgz ...)"). ESXi's own line says little; visorsim's user
    /// needs the place.
    pub fn with_causes(&self) -> String {
        let alert = self.to_string();
        let mut causes: Vec<String> = Vec::new();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            let text = cause.to_string();
            // A transparent variant's cause may repeat what is said already.
            if !alert.contains(&text) && !causes.iter().any(|c| c.contains(&text)) {
                causes.push(text);
            }
            next = cause.source();
        }
        if causes.is_empty() {
            alert
        } else {
            format!("{alert} ({})", causes.join(": "))
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> HostErrorKind {
        match self {
            HostError::NotRunning => HostErrorKind::NotRunning,
            HostError::BootbankMissing { .. } => HostErrorKind::BootbankMissing,
            HostError::ExtractFailed { .. } => HostErrorKind::ExtractFailed,
            HostError::SaveFailed { .. } => HostErrorKind::SaveFailed,
            HostError::NoAltBank => HostErrorKind::NoAltBank,
            HostError::UpgradeTooLarge(_) => HostErrorKind::UpgradeTooLarge,
            HostError::UpgradeWrite { errno: Errno::NoSpace, .. } => HostErrorKind::UpgradeNoSpace,
            HostError::UpgradeWrite { errno: Errno::Io, .. } => HostErrorKind::UpgradeIo,
            HostError::AltBankUnclean(_) => HostErrorKind::AltBankUnclean,
            HostError::Config(_) => HostErrorKind::Config,
        }
    }
}
