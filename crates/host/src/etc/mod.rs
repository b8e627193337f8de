//! The running host's `/etc` on the RAM-disk, what VisorFS marks for
//! saving, and the configuration API that changes it (docs/host.md: After the boot, What is saved).
//!
//! ```text
//!   state.tgz ─read_state_tgz─▶ Vec<EtcFile> ─from_files─▶ EtcTree (all sticky)
//!   (missing/corrupt)            fresh_etc   ─defaults───▶ EtcTree (all sticky)
//!   EtcTree ─saved_files─▶ Vec<EtcFile> (sticky only) ─local_tgz/state_tgz─▶ bank
//! ```
//!
//! VisorFS marks a file for saving by showing a shadow `.#<name>` beside it
//! (`etc/vmware/.#esx.conf`); backup.sh finds the shadows with
//! `find etc -follow -type f -name '.#*'` and saves the originals. Here the
//! mark is [`EtcEntry::sticky`]; [`EtcTree::shadow_markers`] lists the
//! shadows VisorFS would show. Files are keyed by their path relative to
//! `/` (`etc/hosts`).
//!
//! Invariants:
//! - An entry is sticky exactly when its mode has the sticky bit (`0o1000`),
//!   the bit ESXi's saved configuration files carry (`-rw-r--r-T` in
//!   `local.tgz`). Marking sets the bit; the bit in a written mode marks.
//! - Once sticky, a file stays sticky: rewriting it keeps the mark.
//! - Every configuration setter leaves the files it touches sticky, as ESXi
//!   does for its configuration files; [`EtcTree::write`] of a new file
//!   without the sticky bit does not, and such a file is not saved.
//! - Paths are normalised (no leading `/`, no `.` or empty components),
//!   never contain `..`, and no component is a `.#` marker name. A path is
//!   never both a file and a directory; `etc` and `etc/vmware` are always
//!   directories.
//! - Everything is deterministic: no clock, no OS randomness. Password
//!   hashes are derived from the password and a caller-given salt seed.
//!
//! ```text
//!   tree       EtcTree: paths, modes, save marks, saved_files, diff
//!   esx_conf   etc/vmware/esx.conf keys and advanced options
//!   hostname   the host name across esx.conf and etc/hosts
//!   shadow     etc/shadow users and (fake) password hashes
//!   counter    etc/vmware/.backup.counter
//!   error      EtcError, EtcErrorKind
//! ```

mod counter;
mod error;
mod esx_conf;
mod hostname;
mod shadow;
mod tree;

pub use error::{EtcError, EtcErrorKind};
pub use tree::{EtcEntry, EtcTree};

/// `/etc/hosts`.
pub const HOSTS: &str = "etc/hosts";
/// `/etc/shadow`.
pub const SHADOW: &str = "etc/shadow";
/// `/etc/vmware/esx.conf`.
pub const ESX_CONF: &str = "etc/vmware/esx.conf";
/// `/etc/vmware/.backup.counter`, owned by backup.sh.
pub const BACKUP_COUNTER: &str = "etc/vmware/.backup.counter";

/// The sticky bit of a mode.
const STICKY_BIT: u32 = 0o1000;
/// Mode of a new configuration file: `rw-r--r-T`.
const MODE_CONFIG: u32 = 0o1644;
/// Mode of a new `etc/shadow`: `r-------T`.
const MODE_SHADOW: u32 = 0o1400;

/// Directories present on every host: a file may not take their place.
const ALWAYS_DIRS: [&str; 2] = ["etc", "etc/vmware"];
/// Files the configuration API owns: a directory may not take their place.
const CONFIG_FILES: [&str; 4] = [HOSTS, SHADOW, ESX_CONF, BACKUP_COUNTER];

/// esx.conf keys the host name lives in.
const KEY_HOSTNAME: &str = "/adv/Misc/HostName";
const KEY_SYSTEM_HOSTNAME: &str = "/system/hostname";
const KEY_TCPIP_HOSTNAME: &str = "/net/tcpip/instance[defaultTcpipStack]/hostname";
const KEY_TCPIP_DOMAIN: &str = "/net/tcpip/instance[defaultTcpipStack]/domain";
/// esx.conf keys holding the management address, in order of preference.
const KEYS_IP: [&str; 2] = ["/adv/Misc/HostIPAddr", "/net/vmkernelnic/child[0000]/ipv4address"];
