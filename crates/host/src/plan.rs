//! The host's pure decisions: what its scripts decide from what they read,
//! as functions over plain data, with no device and no clock.
//!
//! ```text
//!   upgrade_staged       backup.sh 9.5 step 5: is an upgrade staged in /altbootbank?
//!   staged_boot_cfg      9.6: the new image's boot.cfg (updated + 1, bootstate=1)
//!   space_needed, fits   9.6: the image rounded to clusters vs the bank's capacity
//!   with_state_module    9.5 step 6: `modules=` must end with `--- state.tgz`
//!   set_bootstate_zero   9.1: jumpstart confirms a trial boot
//!   is_leftover          9.5 step 4: `local.tgz.*`, `state.tgz.*`
//!   errno, save_rc       what a failed step reports ([Errno 28] / [Errno 5], `$?`)
//! ```
//!
//! Invariants: every function is total and deterministic; the texts they
//! produce are ESXi's (byte for byte what the host's timeline shows).

use std::fmt;

use visorsim_boot::bootcfg::{BootCfg, SafebootConfig};

use crate::bank::{BankError, BankErrorKind, Capacity};

/// Whether the alt bank holds a staged upgrade: both boot.cfg files parse,
/// the alt bank's `updated` is higher than the boot bank's and its
/// bootstate is below 2.
pub fn upgrade_staged(boot: Option<&SafebootConfig>, alt: Option<&SafebootConfig>) -> bool {
    match (boot, alt) {
        (Some(b), Some(a)) => b.updated < a.updated && a.bootstate < 2,
        _ => false,
    }
}

/// The boot.cfg an upgrade writes into `/altbootbank`: the image's, with
/// `updated` = the running bank's + 1 (wrapping as the u32 it is) and
/// `bootstate=1`.
pub fn staged_boot_cfg(image: &BootCfg, running_updated: u32) -> BootCfg {
    let mut cfg = image.clone();
    cfg.updated = running_updated.wrapping_add(1);
    cfg.bootstate = 1;
    cfg
}

/// Bytes the files of `sizes` take in clusters of `cluster` bytes.
pub fn space_needed(sizes: impl IntoIterator<Item = u64>, cluster: u64) -> u64 {
    sizes.into_iter().map(|n| n.div_ceil(cluster) * cluster).sum()
}

/// An image larger than the bank: ESXi's refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "The pending transaction requires {} MB free space, however the maximum supported size is {} MB.",
    mb(*.needed),
    mb(*.capacity)
)]
pub struct TooLarge {
    /// Bytes needed (rounded to clusters).
    pub needed: u64,
    /// Bytes the bank holds.
    pub capacity: u64,
}

/// Megabytes as esxcli counts them (10^6 bytes, rounded up).
pub fn mb(bytes: u64) -> u64 {
    bytes.div_ceil(1_000_000)
}

/// Whether `needed` bytes fit in `capacity`.
///
/// # Errors
/// [`TooLarge`] when they do not.
pub fn fits(needed: u64, capacity: Capacity) -> Result<(), TooLarge> {
    if needed > capacity.bytes {
        Err(TooLarge { needed, capacity: capacity.bytes })
    } else {
        Ok(())
    }
}

/// boot.cfg `text` with `--- state.tgz` appended to its `modules=` line, or
/// `None` when nothing is to change (the last module already is
/// `state.tgz`, or the text is not a boot.cfg). Every line ends with `\n`.
pub fn with_state_module(text: &str) -> Option<String> {
    let cfg = BootCfg::parse(text.as_bytes()).ok()?;
    if cfg.modules.last().map(String::as_str) == Some("state.tgz") {
        return None;
    }
    Some(
        text.lines()
            .map(
                |l| {
                    if l.starts_with("modules=") {
                        format!("{} --- state.tgz\n", l.trim_end())
                    } else {
                        format!("{l}\n")
                    }
                },
            )
            .collect(),
    )
}

/// boot.cfg `text` with its (first) `bootstate=` line set to 0; every line
/// ends with `\n`.
pub fn set_bootstate_zero(text: &str) -> String {
    let mut done = false;
    text.lines()
        .map(|l| {
            if !done && l.trim_start().to_ascii_lowercase().starts_with("bootstate") {
                done = true;
                "bootstate=0\n".to_owned()
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

/// Whether `name` is a leftover of an interrupted backup.sh
/// (`local.tgz.<pid>`, `state.tgz.<pid>`).
pub fn is_leftover(name: &str) -> bool {
    name.starts_with("local.tgz.") || name.starts_with("state.tgz.")
}

/// The error numbers esxcli reports for a failed write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Errno {
    /// ENOSPC.
    NoSpace,
    /// EIO.
    Io,
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Errno::NoSpace => "[Errno 28] No space left on device",
            Errno::Io => "[Errno 5] Input/output error",
        })
    }
}

/// The errno of a failed bank step of kind `kind`.
pub fn errno(kind: BankErrorKind) -> Errno {
    match kind {
        BankErrorKind::NoSpace => Errno::NoSpace,
        _ => Errno::Io,
    }
}

/// backup.sh's `rc` for a failed save: the OS error of the step, else 1.
pub fn save_rc(e: &BankError) -> i32 {
    e.os_error().unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bank::BankId;

    fn cfg(updated: u32, bootstate: i32) -> SafebootConfig {
        SafebootConfig { build: None, updated, bootstate, quickboot: false }
    }

    #[test]
    fn staged_upgrade_needs_a_newer_untried_alt_bank() {
        assert!(upgrade_staged(Some(&cfg(1, 0)), Some(&cfg(2, 1))));
        assert!(upgrade_staged(Some(&cfg(1, 0)), Some(&cfg(2, 0))));
        assert!(!upgrade_staged(Some(&cfg(1, 0)), Some(&cfg(2, 2))), "DIRTY: already tried");
        assert!(!upgrade_staged(Some(&cfg(2, 0)), Some(&cfg(2, 1))), "not newer");
        assert!(!upgrade_staged(Some(&cfg(3, 0)), Some(&cfg(2, 1))), "older: the rollback bank");
        assert!(!upgrade_staged(None, Some(&cfg(2, 1))));
        assert!(!upgrade_staged(Some(&cfg(1, 0)), None));
    }

    #[test]
    fn staged_cfg_bumps_updated_and_sets_bootstate_1() {
        let mut image = BootCfg::parse(b"bootstate=0\nupdated=7\nkernel=b.b00\nmodules=a\n").unwrap();
        image.build = "6.7.0-1.0.2000".into();
        let cfg = staged_boot_cfg(&image, 1);
        assert_eq!((cfg.updated, cfg.bootstate, cfg.build.as_str()), (2, 1, "6.7.0-1.0.2000"));
        assert_eq!(staged_boot_cfg(&image, u32::MAX).updated, 0, "wraps as safeboot's u32");
    }

    #[test]
    fn capacity_counts_whole_clusters() {
        assert_eq!(space_needed([0, 1, 4096, 4097], 4096), 4096 + 4096 + 2 * 4096);
        let cap = Capacity { bytes: 262_000_000, cluster: 4096 };
        assert_eq!(fits(262_000_000, cap), Ok(()));
        let err = fits(300_000_001, cap).unwrap_err();
        assert_eq!(
            err.to_string(),
            "The pending transaction requires 301 MB free space, however the maximum supported size is 262 MB."
        );
        assert_eq!(mb(0), 0);
        assert_eq!(mb(1), 1);
        assert_eq!(mb(1_000_000), 1);
    }

    #[test]
    fn state_module_is_appended_once() {
        let text = "bootstate=0\nkernel=b.b00\nmodules=a --- b \nbuild=x";
        assert_eq!(
            with_state_module(text).as_deref(),
            Some("bootstate=0\nkernel=b.b00\nmodules=a --- b --- state.tgz\nbuild=x\n")
        );
        assert_eq!(with_state_module("kernel=b.b00\nmodules=a --- state.tgz\n"), None);
    }

    #[test]
    fn bootstate_zero_rewrites_the_first_line_only() {
        assert_eq!(set_bootstate_zero("a=1\nbootstate=2\nbootstate=3"), "a=1\nbootstate=0\nbootstate=3\n");
        assert_eq!(set_bootstate_zero("  BootState = 1\n"), "bootstate=0\n");
        assert_eq!(set_bootstate_zero("a=1"), "a=1\n");
    }

    #[test]
    fn leftovers() {
        assert!(is_leftover("local.tgz.1001"));
        assert!(is_leftover("state.tgz.77"));
        assert!(!is_leftover("state.tgz"));
        assert!(!is_leftover("local.tgz"));
    }

    #[test]
    fn errno_follows_the_bank_error_kind() {
        assert_eq!(errno(BankErrorKind::NoSpace).to_string(), "[Errno 28] No space left on device");
        for k in [BankErrorKind::Io, BankErrorKind::NotFound, BankErrorKind::Corrupt, BankErrorKind::TooLarge] {
            assert_eq!(errno(k).to_string(), "[Errno 5] Input/output error");
        }
        let e = BankError::new(BankErrorKind::Io, BankId::Partition(5), None, std::io::Error::other("x"));
        assert_eq!(save_rc(&e), 1);
        let e = BankError::new(BankErrorKind::Io, BankId::Partition(5), None, std::io::Error::from_raw_os_error(5));
        assert_eq!(save_rc(&e), 5);
    }
}
