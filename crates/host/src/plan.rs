//! The host's pure decisions: what its scripts decide from what they read,
//! as functions over plain data, with no device and no clock.
//!
//! ```text
//!   upgrade_staged       backup.sh 9.5 step 5: is an upgrade staged in /altbootbank?
//!   staged_boot_cfg      9.6: the new image's boot.cfg (updated + 1, bootstate=1)
//!   space_needed, fits   9.6: the image rounded to clusters vs the bank's capacity
//!   with_state_module    9.5 step 6: `modules=` must end with `--- state.tgz`
//!   fsck_due, FSCK_PARTITIONS, possible_corruption
//!                        9.5 step 7: when backup.sh 1 runs `dosfsck -a`, on what, what it logs
//!   alt_bank_checked, AltBankUnclean
//!                        9.6: the upgrade's check of /altbootbank's FAT and its refusal
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

/// backup.sh 1's file-system check is due every this many backups
/// (see [`fsck_due`]).
pub const DEFAULT_FSCK_EVERY: u64 = 10;

/// The partitions backup.sh 1 checks with `dosfsck -a` when a check is due:
/// the two boot banks and the store (8 on ESXi 6.x); one that does not exist
/// or is not a FAT partition on the disk is skipped.
pub const FSCK_PARTITIONS: [u32; 3] = [5, 6, 8];

/// Whether backup.sh 1 (at shutdown) runs its file-system check, given the
/// `.backup.counter` it just bumped: when the counter is a multiple of
/// `every` (`every` = 1: at every shutdown; 0: never).
///
/// *visorsim's choice:* the scripts' copies public KBs quote say only that
/// the check runs at shutdown "when due", not what makes it due; a rule on
/// the persistent backup counter is deterministic, survives reboots (the
/// counter is saved in state.tgz), and lets a scenario choose it.
pub fn fsck_due(counter: u64, every: u64) -> bool {
    every != 0 && counter.is_multiple_of(every)
}

/// What backup.sh logs when `dosfsck -a` repaired partition `number`.
///
/// The device path is visorsim's name for the emulated boot device: the
/// USB boot device path KB 2033564's example shows (`mpx.vmhba32:C0:T0:L0`).
pub fn possible_corruption(number: u32) -> String {
    format!("Possible corruption on {BOOT_DEVICE}:{number}")
}

/// The emulated boot device's path in ESXi's `/dev/disks` (see [`possible_corruption`]).
pub const BOOT_DEVICE: &str = "/dev/disks/mpx.vmhba32:C0:T0:L0";

/// Whether an upgrade checks the alt bank's FAT before writing into it, for
/// a host running `version` (`6.7.0`...): esxupdate on ESXi 5.x and 6.x does
/// (KB 2033564 lists 5.0 to 6.5, and we take 6.7 to do the same); on 7.x and
/// later an install into a damaged alt bank goes ahead and fails while
/// writing (KB 442207 lists 7.x to 9.x), so no check is made there. An
/// unknown version is checked.
pub fn alt_bank_checked(version: Option<&str>) -> bool {
    let major = version.and_then(|v| v.split('.').next()).and_then(|m| m.parse::<u32>().ok());
    major.is_none_or(|m| m < 7)
}

/// An upgrade refused because `/altbootbank`'s FAT does not check clean:
/// esxupdate's `InstallationError` as KB 2033564 quotes it; nothing is
/// written. `findings` names what our checker found (for the log; the
/// message itself is the KB's, word for word).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("There was an error checking file system on altbootbank, please see log for detail.")]
pub struct AltBankUnclean {
    /// The partition checked.
    pub partition: u32,
    /// The checker's finding classes, in order (`cross_link`, `lost_cluster`...).
    pub findings: Vec<String>,
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
    fn fsck_is_due_on_multiples_of_the_interval() {
        assert!(fsck_due(10, 10));
        assert!(fsck_due(20, 10));
        assert!(!fsck_due(11, 10));
        assert!(fsck_due(3, 1), "1: every shutdown");
        assert!(!fsck_due(10, 0), "0: never");
        assert!(fsck_due(0, 10), "a counter of 0 is a multiple too");
        assert_eq!(possible_corruption(6), "Possible corruption on /dev/disks/mpx.vmhba32:C0:T0:L0:6");
    }

    #[test]
    fn the_alt_bank_is_checked_before_7_0() {
        assert!(alt_bank_checked(Some("6.7.0")));
        assert!(alt_bank_checked(Some("5.5")));
        assert!(!alt_bank_checked(Some("7.0.3")));
        assert!(!alt_bank_checked(Some("8.0.2")));
        assert!(alt_bank_checked(None));
        assert!(alt_bank_checked(Some("x")));
        let e = AltBankUnclean { partition: 6, findings: vec!["cross_link".into()] };
        assert_eq!(e.to_string(), "There was an error checking file system on altbootbank, please see log for detail.");
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
