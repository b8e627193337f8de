//! The scenario file format (documented for users in `scenarios/README.md`).
//!
//! ```json
//! {
//!   "description": "what it shows",
//!   "references": ["docs/field-bugs.md#2"],
//!   "disk": { "layout": "esxi6", "seed": 1, "payload_mb": 1 },
//!   "steps": [
//!     { "boot": {} },
//!     { "set_hostname": "esxi-07" },
//!     { "advance": "59m" },
//!     "power_cut",
//!     { "expect": { "running": false } }
//!   ]
//! }
//! ```
//!
//! Every object rejects unknown fields, so a typo is an error with its line
//! and column, not a silently ignored step.
//!
//! The names are the CLI's (`visorsim host`, `visorsim boot`, `visorsim
//! build`) in snake_case: `set_hostname`, `configure`, `power_cut`,
//! `shift_r`/`shift_r_in_mboot`, `answer`, `build_number`. Older spellings
//! (`"shift_r": "mboot"`, `"answer_no": true`, `"build"`) still load;
//! [`deprecations`] lists them and [`load_file`] warns about each on stderr.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer, Serialize};
use visorsim_boot::boot::Outcome;
use visorsim_host::bank::CacheMode;
use visorsim_media::fat::FindingClass;
use visorsim_media::layout::Layout;

/// A whole scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Field bugs, KB articles or document sections it reproduces.
    #[serde(default)]
    pub references: Vec<String>,
    /// The disk to start from.
    pub disk: DiskSpec,
    /// The fault layer's settings for the whole run (`faults`).
    #[serde(default, skip_serializing_if = "FaultSettings::is_default")]
    pub faults: FaultSettings,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// The fault layer's settings for the whole run (`faults`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// Seed of the fault layer's random choices: which unflushed writes a
    /// power cut loses from a volatile cache (`fault.volatile_cache_reorder`).
    /// Default: `disk.seed`, so that changing it varies the losses and not
    /// the disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl FaultSettings {
    fn is_default(&self) -> bool {
        *self == FaultSettings::default()
    }
}

/// The disk: a fresh install built from a seed, or an imported raw image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    /// `esxi6` (default) or `esxi7`.
    #[serde(default, deserialize_with = "disk_layout")]
    pub layout: DiskLayout,
    /// Seed of the image and install.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Compressed size of s.v00 in MB (small by default: scenarios are tests).
    #[serde(default = "default_payload", deserialize_with = "crate::checked::payload_mb")]
    pub payload_mb: f64,
    /// Disk size such as "16G" (default: the layout's smallest).
    #[serde(default, deserialize_with = "crate::checked::disk_size")]
    pub size: Option<String>,
    /// The host's memory, such as "4G" (`ram`, as `--ram`; default
    /// [`visorsim_boot::load::DEFAULT_MEMORY_BUDGET`]): what mboot's module
    /// loads and the RAM-disk's `/etc` restore draw on.
    #[serde(default, deserialize_with = "crate::checked::ram", skip_serializing_if = "Option::is_none")]
    pub ram: Option<u64>,
    /// Build number of the installed image (`build_number`; `build` is the
    /// old spelling).
    #[serde(default = "default_build", rename = "build_number", alias = "build")]
    pub build: u32,
    /// A disk image to start from instead of a fresh install (relative to
    /// the scenario file): raw, or vmdk/qcow2/vhdx (converted through
    /// qemu-img into a sparse temporary; the file itself is never modified).
    #[serde(default)]
    pub image: Option<String>,
    /// Which bootloader decides every boot: `"current"` (the default) or
    /// `"6.7u1"` (ESXi 6.7u1/6.7u2: banks 5 and 6 only, no quickboot,
    /// options carried from bank 5 into bank 6).
    #[serde(default, skip_serializing_if = "is_current_loader")]
    pub loader: visorsim_boot::safeboot::LoaderVersion,
    /// What the banks' vfat does between `sync`s: `"writeback"` (the
    /// default) or `"writethrough"` (a flush after every script step).
    #[serde(default, deserialize_with = "cache_mode")]
    pub cache: CacheMode,
    /// backup.sh 1 (at shutdown) runs `dosfsck -a` on partitions 5, 6 and 8
    /// when the backup counter is a multiple of this (1: every shutdown,
    /// 0: never).
    #[serde(default = "default_fsck_every")]
    pub fsck_every: u64,
}

fn is_current_loader(loader: &visorsim_boot::safeboot::LoaderVersion) -> bool {
    *loader == visorsim_boot::safeboot::LoaderVersion::Current
}

/// A disk layout by name (`disk.layout`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskLayout {
    /// `esxi6`: ESXi 5.x/6.x, banks at partitions 5 and 6.
    #[default]
    Esxi6,
    /// `esxi7`: ESXi 7.x.
    Esxi7,
}

impl DiskLayout {
    /// The layout it names.
    pub fn layout(self) -> Layout {
        match self {
            DiskLayout::Esxi6 => Layout::Esxi6,
            DiskLayout::Esxi7 => Layout::Esxi7,
        }
    }

    /// The version string of the images the runner builds for it.
    pub fn version(self) -> &'static str {
        match self {
            DiskLayout::Esxi6 => "6.7.0",
            DiskLayout::Esxi7 => "7.0.3",
        }
    }
}

impl From<DiskLayout> for Layout {
    fn from(layout: DiskLayout) -> Layout {
        layout.layout()
    }
}

fn default_seed() -> u64 {
    1
}
fn default_payload() -> f64 {
    0.3
}
fn default_build() -> u32 {
    1000
}
fn default_fsck_every() -> u64 {
    visorsim_host::plan::DEFAULT_FSCK_EVERY
}

/// Which Shift+R.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShiftRWhen {
    /// `safeboot -r`.
    Safeboot,
    /// During mboot's countdown (a second scan).
    Mboot,
}

/// A boot (`visorsim host IMAGE boot`'s flags).
///
/// In a file: `shift_r` and `shift_r_in_mboot` (`true`/`false`, at most
/// one), `answer` (`"yes"`, the default, or `"no"`), `fake_write_error`,
/// `device_late`, `crash_before_confirm`. The old spellings
/// `"shift_r": "safeboot"|"mboot"` and `"answer_no": true` still load.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BootStepIn", into = "BootStepOut")]
pub struct BootStep {
    /// Shift+R.
    pub shift_r: Option<ShiftRWhen>,
    /// Answer "no" to the rollback prompt.
    pub answer_no: bool,
    /// safeboot's `-f`.
    pub fake_write_error: bool,
    /// The boot device is claimed after /bootbank was set up.
    pub device_late: bool,
    /// The host crashes before jumpstart confirms a trial boot.
    pub crash_before_confirm: bool,
    /// `qemu`: a boot that loaded a kernel is handed to qemu-system-x86_64
    /// and the guest's report compared with what mboot loaded
    /// (`visorsim_boot::handoff`); a difference, or a machine that cannot
    /// run, is the step's error `handoff`.
    pub qemu: bool,
}

/// The answer to "DO YOU REALLY WANT TO ROLL BACK?" (`answer`, as `--answer`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerName {
    /// `yes`: roll back.
    #[default]
    Yes,
    /// `no`: do not.
    No,
}

/// A boot step as written in a file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BootStepIn {
    #[serde(default, deserialize_with = "shift_r")]
    shift_r: Option<ShiftRWhen>,
    #[serde(default)]
    shift_r_in_mboot: bool,
    #[serde(default, deserialize_with = "answer")]
    answer: Option<AnswerName>,
    #[serde(default)]
    answer_no: Option<bool>,
    #[serde(default)]
    fake_write_error: bool,
    #[serde(default)]
    device_late: bool,
    #[serde(default)]
    crash_before_confirm: bool,
    #[serde(default)]
    qemu: bool,
}

impl TryFrom<BootStepIn> for BootStep {
    type Error = String;

    fn try_from(b: BootStepIn) -> Result<BootStep, String> {
        let shift_r = match (b.shift_r, b.shift_r_in_mboot) {
            (Some(ShiftRWhen::Safeboot), true) => {
                return Err("`shift_r` and `shift_r_in_mboot` cannot both be set".into());
            }
            (_, true) => Some(ShiftRWhen::Mboot),
            (when, false) => when,
        };
        let answer_no = match (b.answer, b.answer_no) {
            (Some(_), Some(_)) => {
                return Err("`answer_no` is the old spelling of `answer`: give only `answer`".into());
            }
            (Some(answer), None) => answer == AnswerName::No,
            (None, no) => no.unwrap_or(false),
        };
        Ok(BootStep {
            shift_r,
            answer_no,
            fake_write_error: b.fake_write_error,
            device_late: b.device_late,
            crash_before_confirm: b.crash_before_confirm,
            qemu: b.qemu,
        })
    }
}

/// A boot step as written out (the current spellings only).
#[derive(Serialize)]
struct BootStepOut {
    shift_r: bool,
    shift_r_in_mboot: bool,
    answer: AnswerName,
    fake_write_error: bool,
    device_late: bool,
    crash_before_confirm: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    qemu: bool,
}

impl From<BootStep> for BootStepOut {
    fn from(b: BootStep) -> BootStepOut {
        BootStepOut {
            shift_r: b.shift_r == Some(ShiftRWhen::Safeboot),
            shift_r_in_mboot: b.shift_r == Some(ShiftRWhen::Mboot),
            answer: if b.answer_no { AnswerName::No } else { AnswerName::Yes },
            fake_write_error: b.fake_write_error,
            device_late: b.device_late,
            crash_before_confirm: b.crash_before_confirm,
            qemu: b.qemu,
        }
    }
}

/// An upgrade.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeStep {
    /// Build number of the new image (`build_number`, as `--build-number`;
    /// `build` is the old spelling).
    #[serde(rename = "build_number", alias = "build")]
    pub build: u32,
    /// Seed of the new image (default: the build number).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Corrupt this module of the new image.
    #[serde(default)]
    pub broken: Option<String>,
    /// Extra MB of payload (a `tools.t00`) to make the image too big.
    #[serde(default, deserialize_with = "crate::checked::extra_mb")]
    pub extra_mb: u64,
}

/// A fault to arm (see `visorsim_disk::FaultPlan`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultStep {
    /// Power is cut after this many more writes (the operation under way fails).
    #[serde(default)]
    pub power_cut_after_writes: Option<u64>,
    /// Of the write the cut interrupts, only this many sectors land.
    #[serde(default)]
    pub torn_sectors: Option<u64>,
    /// Writes between flushes are cached and may be lost or reordered at a cut
    /// (at most this many of them).
    #[serde(default, deserialize_with = "crate::checked::reorder")]
    pub volatile_cache_reorder: Option<usize>,
    /// Of the writes after this step, these (1-based, counted as
    /// `power_cut_after_writes` counts them) are lost at the cut if no flush
    /// landed them: one exact crash state of `visorsim explore` (a write
    /// cache turns on; the write the cut interrupts always lands). At most
    /// 64 numbers, each at least 1.
    #[serde(default)]
    pub lost_writes: Vec<u64>,
    /// Reads of these LBAs fail (latent sector errors).
    #[serde(default)]
    pub bad_sectors: Vec<u64>,
    /// Reads of the clusters of this file fail: `{ "bank": 6, "file": "s.v00" }`.
    #[serde(default)]
    pub bad_file: Option<FileRef>,
    /// Silent bit flips on read inside this file.
    #[serde(default)]
    pub bit_rot: Option<FileRef>,
    /// The medium refuses writes.
    #[serde(default)]
    pub read_only: Option<bool>,
    /// Writes to not-yet-written sectors fail after this many more sectors.
    #[serde(default)]
    pub full_after_sectors: Option<u64>,
    /// Clear every fault armed so far.
    #[serde(default)]
    pub clear: bool,
}

/// A file of a bank.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// Partition number (5 or 6).
    #[serde(deserialize_with = "crate::checked::bank")]
    pub bank: u32,
    /// File name.
    pub file: String,
}

/// Corrupt bytes on the medium (persistent, unlike `bit_rot`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorruptStep {
    /// A file of a bank, or...
    #[serde(default)]
    pub file: Option<FileRef>,
    /// ...a sector.
    #[serde(default)]
    pub lba: Option<u64>,
    /// Byte offset in the file (default: the middle; 0 with `bytes` or
    /// `text`) or in the sector (default 0).
    #[serde(default)]
    pub offset: Option<u64>,
    /// Write these bytes, given in hex (`"00ff"`, spaces allowed), at
    /// `offset`, in place: through the file's clusters (the FAT and the
    /// directory entry are untouched; the bytes must lie inside the file),
    /// or from `offset` of sector `lba` on (across sectors, inside the disk).
    #[serde(
        default,
        deserialize_with = "crate::checked::corrupt_bytes",
        serialize_with = "hex_out",
        skip_serializing_if = "Option::is_none"
    )]
    pub bytes: Option<Vec<u8>>,
    /// Write this text (its UTF-8 bytes) the same way as `bytes`.
    #[serde(default, deserialize_with = "crate::checked::corrupt_text", skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Replace the file's content with nothing but this many bytes (truncate).
    #[serde(default)]
    pub truncate_to: Option<u64>,
    /// Delete the file.
    #[serde(default)]
    pub delete: bool,
    /// Overwrite a range of sectors with one byte value.
    #[serde(default)]
    pub fill: Option<FillRange>,
}

/// Sectors to overwrite.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillRange {
    /// First LBA.
    pub lba: u64,
    /// Number of sectors.
    #[serde(deserialize_with = "crate::checked::fill_count")]
    pub count: u64,
    /// The byte written.
    pub byte: u8,
}

/// What must hold after a step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Whether the host is up.
    #[serde(default)]
    pub running: Option<bool>,
    /// The bank the last boot chose.
    #[serde(default)]
    pub booted_bank: Option<u32>,
    /// The build running.
    #[serde(default)]
    pub booted_build: Option<String>,
    /// The last boot's outcome: booted, no_hypervisor, load_failed, chainload_failed.
    #[serde(default, deserialize_with = "outcome")]
    pub outcome: Option<BootOutcome>,
    /// bootstate on disk per partition (keyed by its number, any partition
    /// the loader may scan): "valid", "upgrading", "dirty", "invalid",
    /// "corrupted", "empty" (a FAT volume without a parsable boot.cfg) or
    /// "missing" (no bank: no such partition, or not a FAT volume) (any
    /// case).
    #[serde(default, deserialize_with = "bank_states", skip_serializing_if = "BTreeMap::is_empty")]
    pub bank_states: BTreeMap<u32, BankStateName>,
    /// The byte the bootstate writer patches in each partition's boot.cfg
    /// (the value after the first `bootstate=` line of its first 512
    /// bytes), as on disk: `{ "5": "3" }`. It can differ from what the
    /// parser takes (`bank_states`).
    #[serde(default, deserialize_with = "bootstate_chars", skip_serializing_if = "BTreeMap::is_empty")]
    pub bootstate_chars: BTreeMap<u32, char>,
    /// Files of a partition and what their bytes must be, keyed by
    /// partition number then file name (`dir/file` allowed):
    /// `{ "5": { "boot.cfg": { "contains": ["bootstate=3"] } } }`.
    #[serde(default, deserialize_with = "files", skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<u32, BTreeMap<String, FileExpect>>,
    /// Configuration values that must be present: "hostname" or an esx.conf key.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Configuration values that must NOT be present (the value differs or is missing).
    #[serde(default)]
    pub config_absent: BTreeMap<String, String>,
    /// Substrings of the last boot's log.
    #[serde(default)]
    pub log_contains: Vec<String>,
    /// Substrings no line of the last boot's log holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_absent: Vec<String>,
    /// How many lines of the last boot's log hold each substring.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub log_count: BTreeMap<String, u64>,
    /// Substrings of the host's timeline (alerts, script messages).
    #[serde(default)]
    pub timeline_contains: Vec<String>,
    /// Substrings no event of the host's timeline holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline_absent: Vec<String>,
    /// How many events of the host's timeline hold each substring.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timeline_count: BTreeMap<String, u64>,
    /// The last step's error contains this (an upgrade or backup that failed).
    #[serde(default)]
    pub error_contains: Option<String>,
    /// The last step failed with an error of this kind.
    #[serde(default, deserialize_with = "error_kind")]
    pub error_kind: Option<StepErrorKind>,
    /// The last step succeeded.
    #[serde(default)]
    pub step_ok: Option<bool>,
    /// Partitions whose FAT checks clean on the medium (what `fsck.fat -n`
    /// exits 0 for): `[5, 6]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fat_clean: Vec<u32>,
    /// Finding classes the FAT check of each partition must report (at
    /// least these; warnings count too): `{ "5": ["cross_link"] }`, with
    /// the checker's class names (`FindingClass::name`).
    #[serde(default, deserialize_with = "fat_findings", skip_serializing_if = "BTreeMap::is_empty")]
    pub fat_findings: BTreeMap<u32, Vec<FindingName>>,
}

/// What a file of a partition must be (`expect.files`). Every field given
/// must hold; a file that does not exist fails each of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileExpect {
    /// Whether the file exists (default: it must; `false`: it must not,
    /// and no other field may be given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// Its size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The SHA-256 of its bytes (64 hex digits, any case; kept in lower case).
    #[serde(default, deserialize_with = "crate::checked::sha256", skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Texts its bytes hold (each as UTF-8 bytes, anywhere in the file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contains: Vec<String>,
}

/// A FAT checker's finding class by name (`expect.fat_findings`):
/// `cross_link`, `lost_clusters`... ([`FindingClass::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FindingName(pub FindingClass);

impl Serialize for FindingName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for FindingName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FindingName, D::Error> {
        finding_name(&String::deserialize(d)?, "finding class").map_err(de::Error::custom)
    }
}

/// The class named `name`, or an error naming `field` and every class.
fn finding_name(name: &str, field: &str) -> Result<FindingName, String> {
    FindingClass::from_name(name).map(FindingName).ok_or_else(|| {
        let all: Vec<String> = FindingClass::ALL.iter().map(|c| format!("`{}`", c.name())).collect();
        format!("{field}: unknown finding class `{name}`, expected one of {}", all.join(", "))
    })
}

/// `expect.fat_findings`: partition numbers to class names, each checked.
fn fat_findings<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u32, Vec<FindingName>>, D::Error> {
    by_partition(d, "fat_findings", |names: Vec<String>, field| names.iter().map(|n| finding_name(n, field)).collect())
}

/// A boot outcome by name (`expect.outcome`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootOutcome {
    /// `booted`: a bank booted.
    Booted,
    /// `no_hypervisor`: "No hypervisor found."
    NoHypervisor,
    /// `load_failed`: mboot stopped with a fatal error.
    LoadFailed,
    /// `chainload_failed`: the selected bank failed to chainload.
    ChainloadFailed,
    /// `loader_missing`: the firmware could not start the loader (the
    /// system partition is missing, unreadable or lacks it).
    LoaderMissing,
}

impl BootOutcome {
    /// The outcome class of a boot.
    pub fn of(outcome: &Outcome) -> BootOutcome {
        match outcome {
            Outcome::Booted => BootOutcome::Booted,
            Outcome::NoHypervisor => BootOutcome::NoHypervisor,
            Outcome::LoadFailed { .. } => BootOutcome::LoadFailed,
            Outcome::ChainloadFailed => BootOutcome::ChainloadFailed,
            Outcome::LoaderMissing { .. } => BootOutcome::LoaderMissing,
        }
    }

    /// The name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            BootOutcome::Booted => "booted",
            BootOutcome::NoHypervisor => "no_hypervisor",
            BootOutcome::LoadFailed => "load_failed",
            BootOutcome::ChainloadFailed => "chainload_failed",
            BootOutcome::LoaderMissing => "loader_missing",
        }
    }
}

/// A bank's state on the medium by name (`expect.bank_states`): its
/// `boot.cfg`'s `bootstate=`, or why there is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BankStateName {
    /// `bootstate=0` (VALID).
    Valid,
    /// `bootstate=1` (UPGRADING).
    Upgrading,
    /// `bootstate=2` (DIRTY).
    Dirty,
    /// `bootstate=3` (INVALID).
    Invalid,
    /// Any other `bootstate=` (the loader's CORRUPTED).
    Corrupted,
    /// A FAT volume without a parsable `boot.cfg`.
    Empty,
    /// No bank: no such partition, or one that is not a FAT volume.
    Missing,
}

impl BankStateName {
    /// The name of a bank's `bootstate=` (`None`: no parsable `boot.cfg`).
    pub fn of_bootstate(bootstate: Option<i32>) -> BankStateName {
        match bootstate {
            None => BankStateName::Empty,
            Some(0) => BankStateName::Valid,
            Some(1) => BankStateName::Upgrading,
            Some(2) => BankStateName::Dirty,
            Some(3) => BankStateName::Invalid,
            Some(_) => BankStateName::Corrupted,
        }
    }

    /// The name in scenario files (lower case).
    pub fn name(self) -> &'static str {
        match self {
            BankStateName::Valid => "valid",
            BankStateName::Upgrading => "upgrading",
            BankStateName::Dirty => "dirty",
            BankStateName::Invalid => "invalid",
            BankStateName::Corrupted => "corrupted",
            BankStateName::Empty => "empty",
            BankStateName::Missing => "missing",
        }
    }
}

/// The kind of error a host step failed with (`expect.error_kind`).
///
/// `backup` and `upgrade` name a group: they match each of the kinds listed
/// under them as well as themselves (see [`StepErrorKind::matches`]); a
/// failed step itself always has one of the other kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepErrorKind {
    /// `not_running`: the step needs a running host.
    NotRunning,
    /// `backup`: any of the next three (`backup.sh` failed).
    Backup,
    /// `bootbank_missing`: `/bootbank` is gone (the boot device was lost).
    BootbankMissing,
    /// `extract_failed`: the saved configuration could not be extracted.
    ExtractFailed,
    /// `save_failed`: `backup.sh` failed twice to save `state.tgz`.
    SaveFailed,
    /// `upgrade`: any of the next five (the upgrade failed).
    Upgrade,
    /// `no_alt_bank`: there is no `/altbootbank` to upgrade into.
    NoAltBank,
    /// `upgrade_too_large`: the new image does not fit; nothing was written.
    UpgradeTooLarge,
    /// `upgrade_no_space`: writing the new image ran out of space.
    UpgradeNoSpace,
    /// `upgrade_io`: writing the new image failed otherwise.
    UpgradeIo,
    /// `alt_bank_unclean`: `/altbootbank`'s FAT did not check clean
    /// (KB 2033564); nothing was written.
    AltBankUnclean,
    /// `config`: a configuration change was refused.
    Config,
    /// `handoff`: `boot`/`reboot` with `qemu`: the guest received other
    /// modules or another command line than mboot loaded, or
    /// qemu-system-x86_64 could not run it.
    Handoff,
}

impl StepErrorKind {
    /// The name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            StepErrorKind::NotRunning => "not_running",
            StepErrorKind::Backup => "backup",
            StepErrorKind::BootbankMissing => "bootbank_missing",
            StepErrorKind::ExtractFailed => "extract_failed",
            StepErrorKind::SaveFailed => "save_failed",
            StepErrorKind::Upgrade => "upgrade",
            StepErrorKind::NoAltBank => "no_alt_bank",
            StepErrorKind::UpgradeTooLarge => "upgrade_too_large",
            StepErrorKind::UpgradeNoSpace => "upgrade_no_space",
            StepErrorKind::UpgradeIo => "upgrade_io",
            StepErrorKind::AltBankUnclean => "alt_bank_unclean",
            StepErrorKind::Config => "config",
            StepErrorKind::Handoff => "handoff",
        }
    }

    /// The group a kind belongs to: `backup`, `upgrade`, or itself.
    pub fn group(self) -> StepErrorKind {
        match self {
            StepErrorKind::BootbankMissing | StepErrorKind::ExtractFailed | StepErrorKind::SaveFailed => {
                StepErrorKind::Backup
            }
            StepErrorKind::NoAltBank
            | StepErrorKind::UpgradeTooLarge
            | StepErrorKind::UpgradeNoSpace
            | StepErrorKind::UpgradeIo
            | StepErrorKind::AltBankUnclean => StepErrorKind::Upgrade,
            other => other,
        }
    }

    /// Whether an expected kind (`self`) matches the kind a step failed
    /// with: the same kind, or its group.
    pub fn matches(self, actual: StepErrorKind) -> bool {
        self == actual || self == actual.group()
    }
}

/// Reads a closed set's name through `T`'s derived `Deserialize`, naming
/// `field` in the error (serde's own message names only the value). With
/// `fold_case` the name is matched case-insensitively.
fn by_name<T: DeserializeOwned>(text: &str, field: &str, fold_case: bool) -> Result<T, de::value::Error> {
    let parse = |s: &str| T::deserialize(StrDeserializer::<de::value::Error>::new(s));
    match fold_case.then(|| parse(&text.to_lowercase()).ok()).flatten() {
        Some(value) => Ok(value),
        None => parse(text).map_err(|e| de::Error::custom(format_args!("{field}: {e}"))),
    }
}

/// An optional closed-set field (see [`by_name`]).
fn optional<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D, field: &str) -> Result<Option<T>, D::Error> {
    Option::<String>::deserialize(d)?.map(|s| by_name(&s, field, false)).transpose().map_err(de::Error::custom)
}

fn disk_layout<'de, D: Deserializer<'de>>(d: D) -> Result<DiskLayout, D::Error> {
    by_name(&String::deserialize(d)?, "disk.layout", false).map_err(de::Error::custom)
}

fn cache_mode<'de, D: Deserializer<'de>>(d: D) -> Result<CacheMode, D::Error> {
    by_name(&String::deserialize(d)?, "disk.cache", false).map_err(de::Error::custom)
}

/// `shift_r`: `true`/`false`, or the old `"safeboot"`/`"mboot"`.
fn shift_r<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ShiftRWhen>, D::Error> {
    struct Visitor;
    impl de::Visitor<'_> for Visitor {
        type Value = Option<ShiftRWhen>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("true or false (or the old \"safeboot\" or \"mboot\")")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(v.then_some(ShiftRWhen::Safeboot))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            by_name(v, "shift_r", false).map(Some).map_err(de::Error::custom)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Visitor)
}

fn answer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AnswerName>, D::Error> {
    optional(d, "answer")
}

fn outcome<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BootOutcome>, D::Error> {
    optional(d, "expect.outcome")
}

fn error_kind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<StepErrorKind>, D::Error> {
    optional(d, "expect.error_kind")
}

/// A map keyed by partition number, each key checked
/// ([`crate::checked::partition_key`]) and each value read by `value`
/// with its field's name (`expect.<field>.<key>`).
fn by_partition<'de, D: Deserializer<'de>, In: Deserialize<'de>, Out>(
    d: D,
    field: &str,
    value: impl Fn(In, &str) -> Result<Out, String>,
) -> Result<BTreeMap<u32, Out>, D::Error> {
    BTreeMap::<String, In>::deserialize(d)?
        .into_iter()
        .map(|(key, v)| {
            let name = format!("expect.{field}.{key}");
            let number = crate::checked::partition_key(&key, &name).map_err(de::Error::custom)?;
            Ok((number, value(v, &name).map_err(de::Error::custom)?))
        })
        .collect()
}

fn bank_states<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u32, BankStateName>, D::Error> {
    by_partition(d, "bank_states", |state: String, name| by_name(&state, name, true).map_err(|e| e.to_string()))
}

fn bootstate_chars<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u32, char>, D::Error> {
    by_partition(d, "bootstate_chars", |text: String, name| {
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(format!("{name}: {text:?} is not one character (the byte after `bootstate=`, such as \"3\")")),
        }
    })
}

fn files<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u32, BTreeMap<String, FileExpect>>, D::Error> {
    by_partition(d, "files", |files: BTreeMap<String, FileExpect>, name| {
        for (file, f) in &files {
            if f.exists == Some(false) && (f.size.is_some() || f.sha256.is_some() || !f.contains.is_empty()) {
                return Err(format!("{name}.{file}: `exists: false` cannot be given with size, sha256 or contains"));
            }
        }
        Ok(files)
    })
}

/// Bytes as lower-case hex (`corrupt.bytes` written back).
fn hex_out<S: serde::Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    let text = bytes.as_ref().map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>());
    text.serialize(s)
}

/// One step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Power on.
    Boot(BootStep),
    /// Set the host name.
    SetHostname(String),
    /// Set an esx.conf key: `{ "key": ..., "value": ... }`.
    Configure {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// Set an advanced option: `{ "name": "Misc.HostName", "value": ... }`.
    Advanced {
        /// Name.
        name: String,
        /// Value.
        value: String,
    },
    /// Set a user's password.
    Password {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// Let time pass ("59m", "2h"): hourly auto-backups run.
    #[serde(deserialize_with = "crate::checked::duration")]
    Advance(String),
    /// backup.sh 0 now.
    Backup,
    /// Install a new build into the alt bank.
    Upgrade(UpgradeStep),
    /// Orderly reboot.
    Reboot(BootStep),
    /// Orderly shutdown.
    Shutdown,
    /// Power loss now.
    PowerCut,
    /// The boot device disappears while running.
    LoseDevice,
    /// The boot device is plugged back in (for the next boot).
    RestoreDevice,
    /// Arm a fault.
    Fault(FaultStep),
    /// Corrupt the medium.
    Corrupt(CorruptStep),
    /// Check expectations.
    Expect(Expect),
}

/// A scenario file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The JSON does not match the schema.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// File.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde expected.
        message: String,
    },
}

/// Parses scenario text; `path` names it in errors.
pub fn parse(text: &str, path: &str) -> Result<Scenario, ScenarioError> {
    serde_json::from_str(text).map_err(|e| ScenarioError::Parse {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// Reads and parses a scenario file; each old spelling it uses (see
/// [`deprecations`]) is a warning on stderr naming the file, the line and
/// the new spelling.
pub fn load_file(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })?;
    let scenario = parse(&text, &path.display().to_string())?;
    for d in deprecations(&text) {
        eprintln!("warning: {}:{}: {}", path.display(), d.line, d);
    }
    Ok(scenario)
}

/// An old spelling a scenario file uses, and the current one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deprecation {
    /// 1-based line.
    pub line: usize,
    /// As written, e.g. `"answer_no": true`.
    pub old: String,
    /// What to write instead, e.g. `"answer": "no"`.
    pub new: String,
}

impl std::fmt::Display for Deprecation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is deprecated; write {}", self.old, self.new)
    }
}

/// The old spellings in a scenario file's text (one that parses): `"build"`
/// (now `"build_number"`), `"shift_r": "safeboot"` (now `"shift_r": true`),
/// `"shift_r": "mboot"` (now `"shift_r_in_mboot": true`) and `"answer_no"`
/// (now `"answer"`), each with its line.
pub fn deprecations(text: &str) -> Vec<Deprecation> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(offset) = text[at..].find('"') {
        let start = at + offset;
        // A string: its end, skipping escapes.
        let mut end = start + 1;
        while end < bytes.len() && bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        let Some(name) = text.get(start + 1..end.min(text.len())) else { break };
        at = (end + 1).min(text.len());
        // A key: the string is followed by a colon.
        let rest = text[at..].trim_start();
        let Some(value) = rest.strip_prefix(':') else { continue };
        let value = value.trim_start();
        let line = text[..start].matches('\n').count() + 1;
        let mut note = |old: String, new: &str| found.push(Deprecation { line, old, new: new.to_owned() });
        match name {
            "build" => note("\"build\"".into(), "\"build_number\""),
            "answer_no" => {
                let no = !value.starts_with("false");
                let old = format!("\"answer_no\": {no}");
                note(old, if no { "\"answer\": \"no\"" } else { "\"answer\": \"yes\" (the default)" });
            }
            "shift_r" if value.starts_with("\"safeboot\"") => {
                note("\"shift_r\": \"safeboot\"".into(), "\"shift_r\": true")
            }
            "shift_r" if value.starts_with("\"mboot\"") => {
                note("\"shift_r\": \"mboot\"".into(), "\"shift_r_in_mboot\": true")
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_scenario_parses() {
        let s = parse(
            r#"{"disk": {}, "steps": [{"boot": {}}, "power_cut", {"advance": "1h"}, {"expect": {"running": false}}]}"#,
            "x",
        )
        .unwrap();
        assert_eq!(s.steps.len(), 4);
        assert_eq!(s.disk.layout, DiskLayout::Esxi6);
    }

    #[test]
    fn unknown_field_names_line_and_column() {
        let err =
            parse("{\n  \"disk\": {},\n  \"steps\": [{\"boot\": {\"shfit_r\": \"mboot\"}}]\n}", "s.json").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("s.json:3:"), "{text}");
        assert!(text.contains("unknown field `shfit_r`"), "{text}");
        assert!(text.contains("expected one of"), "{text}");
    }

    #[test]
    fn unknown_step_is_an_error() {
        let err = parse(r#"{"disk": {}, "steps": ["reboot_now"]}"#, "s.json").unwrap_err();
        assert!(err.to_string().contains("unknown variant `reboot_now`"), "{err}");
    }

    #[test]
    fn closed_sets_parse_into_enums() {
        let s = parse(
            r#"{"disk": {"layout": "esxi7"}, "steps": [
                {"boot": {"shift_r_in_mboot": true}},
                {"expect": {"outcome": "load_failed", "bank_states": {"5": "VALID", "6": "Dirty"},
                            "error_kind": "not_running"}}]}"#,
            "x",
        )
        .unwrap();
        assert_eq!(s.disk.layout, DiskLayout::Esxi7);
        assert_eq!(Layout::from(s.disk.layout), Layout::Esxi7);
        let Step::Expect(e) = &s.steps[1] else { panic!("{:?}", s.steps[1]) };
        assert_eq!(e.outcome, Some(BootOutcome::LoadFailed));
        assert_eq!(e.bank_states[&5], BankStateName::Valid, "bank states are case-insensitive, as before");
        assert_eq!(e.bank_states[&6], BankStateName::Dirty);
        assert_eq!(e.error_kind, Some(StepErrorKind::NotRunning));
        let back: Scenario = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s, "serialises to names that parse back");
    }

    #[test]
    fn old_spellings_load_as_the_new_ones_and_are_listed() {
        let old = r#"{"disk": {"build": 7},
            "steps": [{"boot": {"shift_r": "safeboot", "answer_no": true}},
                      {"reboot": {"shift_r": "mboot"}}, {"upgrade": {"build": 2000}},
                      {"set_hostname": "build"}]}"#;
        let new = r#"{"disk": {"build_number": 7},
            "steps": [{"boot": {"shift_r": true, "answer": "no"}},
                      {"reboot": {"shift_r_in_mboot": true}}, {"upgrade": {"build_number": 2000}},
                      {"set_hostname": "build"}]}"#;
        assert_eq!(parse(old, "x").unwrap(), parse(new, "x").unwrap());
        assert!(deprecations(new).is_empty(), "{:?}", deprecations(new));
        let found: Vec<(usize, String)> = deprecations(old).iter().map(|d| (d.line, d.to_string())).collect();
        assert_eq!(
            found,
            [
                (1, r#""build" is deprecated; write "build_number""#.to_owned()),
                (2, r#""shift_r": "safeboot" is deprecated; write "shift_r": true"#.to_owned()),
                (2, r#""answer_no": true is deprecated; write "answer": "no""#.to_owned()),
                (3, r#""shift_r": "mboot" is deprecated; write "shift_r_in_mboot": true"#.to_owned()),
                (3, r#""build" is deprecated; write "build_number""#.to_owned()),
            ]
        );
        let Step::Boot(b) = &parse(old, "x").unwrap().steps[0] else { panic!() };
        assert_eq!(b.shift_r, Some(ShiftRWhen::Safeboot));
        assert!(b.answer_no);
        for conflict in [
            r#"{"disk": {}, "steps": [{"boot": {"shift_r": true, "shift_r_in_mboot": true}}]}"#,
            r#"{"disk": {}, "steps": [{"boot": {"answer": "no", "answer_no": true}}]}"#,
        ] {
            assert!(parse(conflict, "x").is_err(), "{conflict}");
        }
        let s =
            parse(r#"{"disk": {}, "steps": [{"advanced": {"name": "Misc.HostName", "value": "a"}}]}"#, "x").unwrap();
        assert_eq!(s.steps[0], Step::Advanced { name: "Misc.HostName".into(), value: "a".into() });
    }

    #[test]
    fn fat_expectations_parse_and_unknown_classes_are_errors() {
        let s = parse(
            r#"{"disk": {"cache": "writethrough", "fsck_every": 1}, "steps": [
                {"expect": {"fat_clean": [5, 6], "fat_findings": {"5": ["cross_link", "lost_clusters"]}}}]}"#,
            "x",
        )
        .unwrap();
        assert_eq!((s.disk.cache, s.disk.fsck_every), (CacheMode::WriteThrough, 1));
        let Step::Expect(e) = &s.steps[0] else { panic!("{:?}", s.steps[0]) };
        assert_eq!(e.fat_clean, [5, 6]);
        assert_eq!(e.fat_findings[&5], [FindingName(FindingClass::CrossLink), FindingName(FindingClass::LostClusters)]);
        let back: Scenario = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s, "serialises to names that parse back");
        let defaults = parse(r#"{"disk": {}, "steps": []}"#, "x").unwrap();
        assert_eq!((defaults.disk.cache, defaults.disk.fsck_every), (CacheMode::WriteBack, 10));
        for (text, wanted) in [
            (
                "{\"disk\": {},\n \"steps\": [{\"expect\": {\"fat_findings\": {\"5\": [\"crosslink\"]}}}]}",
                "expect.fat_findings.5: unknown finding class `crosslink`, expected one of `boot_sector`",
            ),
            (
                "{\"disk\": {},\n \"steps\": [{\"expect\": {\"fat_findings\": {\"five\": []}}}]}",
                "expect.fat_findings.five: `five` is not a partition number",
            ),
        ] {
            let err = parse(text, "s.json").unwrap_err().to_string();
            assert!(err.starts_with("s.json:2:"), "{err}");
            assert!(err.contains(wanted), "{err}");
        }
    }

    #[test]
    fn field_reproduction_vocabulary_parses_and_round_trips() {
        let s = parse(
            r#"{"disk": {}, "faults": {"seed": 7}, "steps": [
                {"corrupt": {"file": {"bank": 5, "file": "boot.cfg"}, "offset": 10, "bytes": "0D 0a ff"}},
                {"corrupt": {"lba": 8224, "text": "bootstate=3"}},
                {"expect": {"bank_states": {"7": "empty"}, "bootstate_chars": {"5": "3"},
                            "files": {"5": {"boot.cfg": {"size": 299, "contains": ["x"],
                                      "sha256": "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"},
                                      "state.tgz": {"exists": false}}},
                            "log_absent": ["a"], "log_count": {"b": 2}, "timeline_absent": ["c"], "timeline_count": {"d": 0}}}]}"#,
            "x",
        )
        .unwrap();
        assert_eq!(s.faults.seed, Some(7));
        let Step::Corrupt(c) = &s.steps[0] else { panic!("{:?}", s.steps[0]) };
        assert_eq!(c.bytes.as_deref(), Some(&[0x0d, 0x0a, 0xff][..]));
        let Step::Corrupt(c) = &s.steps[1] else { panic!("{:?}", s.steps[1]) };
        assert_eq!(c.text.as_deref(), Some("bootstate=3"));
        let Step::Expect(e) = &s.steps[2] else { panic!("{:?}", s.steps[2]) };
        assert_eq!((e.bank_states[&7], e.bootstate_chars[&5]), (BankStateName::Empty, '3'));
        let boot_cfg = &e.files[&5]["boot.cfg"];
        assert_eq!(
            boot_cfg.sha256.as_deref(),
            Some("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789")
        );
        assert_eq!(e.files[&5]["state.tgz"].exists, Some(false));
        assert_eq!((e.log_count["b"], e.timeline_count["d"]), (2, 0));
        let written = serde_json::to_string(&s).unwrap();
        assert!(written.contains(r#""bytes":"0d0aff""#), "{written}");
        assert_eq!(parse(&written, "x").unwrap(), s, "serialises to names that parse back");
        let plain = parse(r#"{"disk": {}, "steps": [{"expect": {}}]}"#, "x").unwrap();
        let written = serde_json::to_string(&plain).unwrap();
        assert!(!written.contains("faults") && !written.contains("files"), "defaults stay out: {written}");
    }

    #[test]
    fn field_reproduction_vocabulary_errors_name_line_and_field() {
        for (step, says) in [
            (r#"{"corrupt": {"lba": 1, "bytes": "0g"}}"#, "corrupt.bytes: 'g' is not a hex digit"),
            (
                r#"{"corrupt": {"lba": 1, "bytes": "abc"}}"#,
                "corrupt.bytes: 3 hex digit(s) is not a whole number of bytes",
            ),
            (
                r#"{"corrupt": {"lba": 1, "bytes": ""}}"#,
                "corrupt.bytes: 0 byte(s) is out of range (1 to 1048576 bytes)",
            ),
            (r#"{"corrupt": {"lba": 1, "text": ""}}"#, "corrupt.text: 0 byte(s) is out of range"),
            (
                r#"{"expect": {"bank_states": {"five": "valid"}}}"#,
                "expect.bank_states.five: `five` is not a partition number",
            ),
            (
                r#"{"expect": {"bank_states": {"0": "valid"}}}"#,
                "expect.bank_states.0: 0 is out of range (a partition number, 1 to 128)",
            ),
            (
                r#"{"expect": {"bootstate_chars": {"5": "33"}}}"#,
                "expect.bootstate_chars.5: \"33\" is not one character",
            ),
            (r#"{"expect": {"files": {"129": {}}}}"#, "expect.files.129: 129 is out of range"),
            (r#"{"expect": {"files": {"5": {"x": {"sha256": "abc"}}}}}"#, "sha256: \"abc\" is not 64 hex digits"),
            (
                r#"{"expect": {"files": {"5": {"x": {"exists": false, "size": 1}}}}}"#,
                "expect.files.5.x: `exists: false` cannot be given",
            ),
            (r#"{"expect": {"files": {"5": {"x": {"md5": "abc"}}}}}"#, "unknown field `md5`"),
            (r#"{"expect": {"log_count": {"x": -1}}}"#, "invalid value: integer `-1`"),
        ] {
            let text = format!("{{\"disk\": {{}},\n \"steps\": [\n {step}]}}");
            let err = parse(&text, "s.json").expect_err(step).to_string();
            assert!(err.starts_with("s.json:3:"), "{err}");
            assert!(err.contains(says), "{says:?} in {err}");
        }
        let err = parse("{\"disk\": {}, \"faults\": {\"sed\": 1}, \"steps\": []}", "s.json").unwrap_err();
        assert!(err.to_string().contains("unknown field `sed`, expected `seed`"), "{err}");
    }

    #[test]
    fn unknown_names_are_errors_naming_the_field() {
        for (text, field, value) in [
            (r#"{"disk": {"layout": "esxi8"}, "steps": []}"#, "disk.layout", "esxi8"),
            (r#"{"disk": {}, "steps": [{"boot": {"shift_r": "grub"}}]}"#, "shift_r", "grub"),
            (r#"{"disk": {}, "steps": [{"boot": {"answer": "maybe"}}]}"#, "answer", "maybe"),
            (r#"{"disk": {}, "steps": [{"expect": {"outcome": "Booted"}}]}"#, "expect.outcome", "Booted"),
            (
                r#"{"disk": {}, "steps": [{"expect": {"bank_states": {"6": "broken"}}}]}"#,
                "expect.bank_states.6",
                "broken",
            ),
            (r#"{"disk": {}, "steps": [{"expect": {"error_kind": "io"}}]}"#, "expect.error_kind", "io"),
            (r#"{"disk": {"cache": "none"}, "steps": []}"#, "disk.cache", "none"),
        ] {
            let err = parse(text, "s.json").unwrap_err().to_string();
            assert!(err.starts_with("s.json:1:"), "{err}");
            assert!(err.contains(&format!("{field}: unknown variant `{value}`, expected")), "{err}");
        }
    }
}
