//! An in-process FAT12/16 checker that says what `fsck.fat -n` (dosfstools
//! 4.2) says about a volume, and a repair mode that leaves what
//! `fsck.fat -a` leaves ([`check_volume`], [`repair_volume`]).
//!
//! Why not call `fsck.fat`: the crash explorer judges every crash state,
//! tens of thousands a second; forking a tool and writing a 250 MB image
//! for each costs milliseconds. This runs in memory on the device.
//!
//! How it agrees with the real tool: it replays dosfstools' decisions in the
//! same order (facts taken from its behaviour and source; no code copied).
//! `fsck.fat -n` keeps its repairs in memory and reads through them, so a
//! later check sees the earlier repairs; it exits 1 exactly when it would
//! have written anything. This checker does the same on an overlay:
//!
//! ```text
//!   1 boot sector   fields dosfstools refuses (sector size, cluster size,
//!                   FAT count, sizes, cluster count) -> fatal, stop
//!   2 FATs          FAT[0]'s media bits decide which copy is intact; copies
//!                   differing -> use the intact one (FAT #1 if both);
//!                   entries 1 or past the last cluster -> end of chain
//!   3 root, then each directory depth first: entries in order, LFN slots
//!                   assembled (orphans deleted; others only reported),
//!                   every chain walked for loops (truncated); then names
//!                   (bad ones and duplicates renamed FSCK0000000..), then
//!                   each entry's chain: free or bad cluster -> end there;
//!                   longer than the size -> truncated; cluster owned by an
//!                   earlier entry -> cross-link, the later one truncated;
//!                   size past the chain -> size set to the chain's length;
//!                   `.`/`..` of each subdirectory checked first
//!   4 volume label  boot sector label vs. root directory label
//!   5 lost clusters allocated and owned by no entry -> freed
//!   6 dirty bit     boot sector byte 37 bit 0, and on FAT16 FAT[1] bit 15
//!                   clear -> cleared
//! ```
//!
//! Each [`Finding`] is [`Severity::Damage`] when fsck.fat would change
//! something for it (and so exit 1) and [`Severity::Warning`] when it only
//! prints a message (several long-name problems, a directory of mostly bad
//! names: "Not auto-correcting this"). [`FatCheck::is_clean`] is true
//! exactly when there is no damage, which is when `fsck.fat -n` exits 0.
//!
//! Contract: never panics; work and memory are bounded by the volume's
//! cluster count and FAT size (one owner slot per cluster, each chain walk
//! at most `clusters` steps, directory nesting at most [`MAX_DEPTH`],
//! entries at most [`MAX_ENTRIES`], findings at most [`MAX_FINDINGS`]).
//! The device is only read by [`check_volume`]; [`repair_volume`] writes the
//! repairs once the whole check has run (like fsck.fat, which writes at the
//! end and writes nothing when it gives up).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use visorsim_disk::{BlockDevice, DiskError};

use super::dirent::{ENTRY_BYTES, OFF_ATTR, OFF_CHECKSUM, OFF_LCASE, OFF_SIZE, OFF_START};
use super::names::lfn_checksum;
use crate::le::{le16, le32};

/// Deepest directory nesting followed (fsck.fat stops at paths of 1,023
/// bytes, which is at most about 500 levels).
pub const MAX_DEPTH: usize = 512;
/// Most directory entries examined in one check.
pub const MAX_ENTRIES: usize = 1 << 21;
/// Most findings kept (the rest are counted in [`FatCheck::findings_dropped`]).
pub const MAX_FINDINGS: usize = 4096;

const DELETED: u8 = 0xE5;
/// dosfstools takes exactly this attribute as a long-name slot.
const ATTR_LFN_EXACT: u8 = 0x0F;
const ATTR_VOLUME: u8 = 0x08;
const ATTR_DIR: u8 = 0x10;
/// Case-byte flag of patched kernels: the entry has no 8.3 name.
const NO_83NAME: u8 = 0x20;
/// Boot sector byte of FAT12/16 holding the "dirty" flag (bit 0).
const BOOT_FLAGS: usize = 37;
const FAT16_CLEAN_SHUTDOWN: u32 = 0x8000;
const FAT12_THRESHOLD: u64 = 4085;
const FAT16_THRESHOLD: u64 = 65525;
const NO_NAME: [u8; 11] = *b"NO NAME    ";
const END: u32 = u32::MAX;

/// The kind of volume a boot sector describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FatKind {
    /// FAT12 (fewer than 4,085 clusters).
    Fat12,
    /// FAT16.
    Fat16,
    /// FAT32: recognised, not checked.
    Fat32,
    /// Not a volume fsck.fat would check.
    NotFat,
}

/// Whether fsck.fat would change something for a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// fsck.fat repairs it (`-n`: would repair, and exits 1), or gives up.
    Damage,
    /// fsck.fat only reports it.
    Warning,
}

/// What kind of problem a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingClass {
    /// The boot sector does not describe a volume fsck.fat checks (it gives
    /// up), or a read past the volume's end.
    BootSector,
    /// FAT[0] lacks the media bits in every copy (fsck.fat gives up).
    FatMedia,
    /// The FAT copies differ.
    FatCopiesDiffer,
    /// The dirty bit is set (boot sector flag, or FAT16's FAT[1]).
    DirtyBit,
    /// A FAT entry or a start cluster points outside the data clusters.
    ChainOutOfRange,
    /// A chain reaches one of its own clusters again.
    ChainLoop,
    /// A file's chain is shorter than its size.
    ChainEndsEarly,
    /// Two entries' chains share clusters.
    CrossLink,
    /// A chain reaches a free cluster.
    FreeInChain,
    /// A chain reaches a cluster marked bad.
    BadCluster,
    /// Allocated clusters that no entry reaches.
    LostClusters,
    /// A file's chain is longer than its size.
    SizeMismatch,
    /// A bad directory entry: bad short name, a directory with a size or
    /// pointing at itself or its parent, a directory of mostly bad names.
    BadDirEntry,
    /// Two entries of a directory with the same short name.
    DuplicateEntry,
    /// A broken or orphaned long-name sequence.
    BadLongName,
    /// A subdirectory's `.` or `..` entry is missing or wrong.
    BadDotEntries,
    /// The volume labels of the boot sector and root directory disagree or
    /// are invalid.
    VolumeLabel,
    /// A volume this checker does not check (FAT32), or a limit reached.
    Unsupported,
}

impl FindingClass {
    /// Every class, in order.
    pub const ALL: [FindingClass; 18] = [
        FindingClass::BootSector,
        FindingClass::FatMedia,
        FindingClass::FatCopiesDiffer,
        FindingClass::DirtyBit,
        FindingClass::ChainOutOfRange,
        FindingClass::ChainLoop,
        FindingClass::ChainEndsEarly,
        FindingClass::CrossLink,
        FindingClass::FreeInChain,
        FindingClass::BadCluster,
        FindingClass::LostClusters,
        FindingClass::SizeMismatch,
        FindingClass::BadDirEntry,
        FindingClass::DuplicateEntry,
        FindingClass::BadLongName,
        FindingClass::BadDotEntries,
        FindingClass::VolumeLabel,
        FindingClass::Unsupported,
    ];

    /// The snake_case name (`"cross_link"`), as in JSON and scenarios.
    pub fn name(self) -> &'static str {
        match self {
            FindingClass::BootSector => "boot_sector",
            FindingClass::FatMedia => "fat_media",
            FindingClass::FatCopiesDiffer => "fat_copies_differ",
            FindingClass::DirtyBit => "dirty_bit",
            FindingClass::ChainOutOfRange => "chain_out_of_range",
            FindingClass::ChainLoop => "chain_loop",
            FindingClass::ChainEndsEarly => "chain_ends_early",
            FindingClass::CrossLink => "cross_link",
            FindingClass::FreeInChain => "free_in_chain",
            FindingClass::BadCluster => "bad_cluster",
            FindingClass::LostClusters => "lost_clusters",
            FindingClass::SizeMismatch => "size_mismatch",
            FindingClass::BadDirEntry => "bad_dir_entry",
            FindingClass::DuplicateEntry => "duplicate_entry",
            FindingClass::BadLongName => "bad_long_name",
            FindingClass::BadDotEntries => "bad_dot_entries",
            FindingClass::VolumeLabel => "volume_label",
            FindingClass::Unsupported => "unsupported",
        }
    }

    /// The class of a [`FindingClass::name`].
    pub fn from_name(name: &str) -> Option<FindingClass> {
        FindingClass::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for FindingClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One problem, where it is, and what fsck.fat does about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind of problem.
    pub class: FindingClass,
    /// Whether fsck.fat changes something for it.
    pub severity: Severity,
    /// The cluster concerned, if one is.
    pub cluster: Option<u32>,
    /// The directory entry concerned, as fsck.fat names it: its path from
    /// the root with long names where there are ones (`/state.tgz`).
    pub entry: Option<String>,
    /// Byte offset on the device of the bytes concerned (the directory
    /// entry, the FAT entry, the boot sector field).
    pub offset: u64,
    /// What is wrong and what fsck.fat does, in a sentence.
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.class)?;
        if let Some(entry) = &self.entry {
            write!(f, " {entry}")?;
        }
        if let Some(cluster) = self.cluster {
            write!(f, " cluster {cluster}")?;
        }
        write!(f, " at byte {}: {}", self.offset, self.detail)
    }
}

/// What [`check_volume`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FatCheck {
    /// The kind of volume.
    pub kind: FatKind,
    /// Data clusters (0 when the boot sector was refused).
    pub clusters: u32,
    /// Bytes per cluster (0 when the boot sector was refused).
    pub cluster_bytes: u32,
    /// Files and directories found (fsck.fat's "N files").
    pub files: u32,
    /// The findings, in the order fsck.fat reports them.
    pub findings: Vec<Finding>,
    /// Findings past [`MAX_FINDINGS`], not kept.
    pub findings_dropped: u64,
    /// The check stopped where fsck.fat gives up (a fatal finding).
    pub gave_up: bool,
}

impl FatCheck {
    /// Whether `fsck.fat -n` would exit 0: nothing it would change.
    pub fn is_clean(&self) -> bool {
        !self.gave_up && self.findings_dropped == 0 && self.findings.iter().all(|f| f.severity == Severity::Warning)
    }

    /// The classes of all findings (warnings included).
    pub fn classes(&self) -> BTreeSet<FindingClass> {
        self.findings.iter().map(|f| f.class).collect()
    }

    /// The classes of the findings fsck.fat would repair.
    pub fn damage_classes(&self) -> BTreeSet<FindingClass> {
        self.findings.iter().filter(|f| f.severity == Severity::Damage).map(|f| f.class).collect()
    }

    /// The findings fsck.fat would repair.
    pub fn damage(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Damage)
    }

    /// A one-line summary: "clean", or "3 findings: cross_link, lost_clusters".
    pub fn summary(&self) -> String {
        if self.findings.is_empty() {
            return "clean".into();
        }
        let names: Vec<&str> = self.classes().into_iter().map(FindingClass::name).collect();
        let n = self.findings.len() as u64 + self.findings_dropped;
        let state = if self.is_clean() { " (warnings only)" } else { "" };
        format!("{n} finding{}{state}: {}", if n == 1 { "" } else { "s" }, names.join(", "))
    }
}

/// What [`repair_volume`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// The check before repairing (what `fsck.fat -a` prints).
    pub before: FatCheck,
    /// Whether anything was written (false when clean, or when fsck.fat
    /// would give up: it writes nothing then).
    pub changed: bool,
    /// Device sectors written.
    pub sectors_written: u64,
}

/// Why a repair could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The device failed.
    #[error("Writing the repaired FAT volume")]
    Disk(#[from] DiskError),
}

/// Checks the FAT volume of `sectors` device sectors at `first_lba` as
/// `fsck.fat -n` would check an image of exactly those sectors. Reads only.
pub fn check_volume<D: BlockDevice>(dev: &mut D, first_lba: u64, sectors: u64) -> FatCheck {
    let mut engine = Engine::new(dev, first_lba, sectors, false);
    engine.run();
    engine.into_check()
}

/// Repairs the volume as `fsck.fat -a` does: runs the check, then writes
/// every repair it decided (nothing when the check gave up). Check again
/// afterwards to see what is left (fsck.fat's own second run usually finds
/// nothing; some repairs, such as a cross-link truncation, leave lost
/// clusters for it).
pub fn repair_volume<D: BlockDevice>(dev: &mut D, first_lba: u64, sectors: u64) -> Result<RepairReport, RepairError> {
    let mut engine = Engine::new(dev, first_lba, sectors, true);
    engine.run();
    let writes = if engine.gave_up || !engine.changed { None } else { Some(engine.planned_writes()) };
    let before = engine.into_check();
    let Some(writes) = writes else {
        return Ok(RepairReport { before, changed: false, sectors_written: 0 });
    };
    let sectors_written = write_bytes(dev, first_lba, &writes)?;
    dev.flush()?;
    Ok(RepairReport { before, changed: true, sectors_written })
}

/// Writes byte ranges (relative to the volume) with read-modify-write of
/// whole device sectors; gives the sectors written.
fn write_bytes<D: BlockDevice>(dev: &mut D, first_lba: u64, writes: &[(u64, Vec<u8>)]) -> Result<u64, DiskError> {
    let ss = dev.sector_size().bytes_u64();
    // Merge per sector so each sector is read and written once.
    let mut sectors: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for (offset, bytes) in writes {
        let mut at = *offset;
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let lba = at / ss;
            let within = (at % ss) as usize;
            let n = rest.len().min(ss as usize - within);
            let sector = match sectors.entry(lba) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let mut buf = vec![0u8; ss as usize];
                    dev.read_sectors(first_lba + lba, &mut buf)?;
                    e.insert(buf)
                }
            };
            sector[within..within + n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            at += n as u64;
        }
    }
    for (lba, bytes) in &sectors {
        dev.write_sectors(first_lba + lba, bytes)?;
    }
    Ok(sectors.len() as u64)
}

/// Why the check stopped early: where fsck.fat gives up.
struct Stop;

/// The volume's layout as fsck.fat computes it from the boot sector, in
/// bytes from the volume's start.
#[derive(Clone, Copy)]
struct Layout {
    cluster_bytes: u64,
    fats: u32,
    fat_start: u64,
    fat_size: u64,
    root_start: u64,
    root_entries: u32,
    data_start: u64,
    clusters: u32,
    bits: u32,
    label: [u8; 11],
}

impl Layout {
    fn cluster_start(&self, cluster: u32) -> u64 {
        self.data_start + u64::from(cluster.saturating_sub(2)) * self.cluster_bytes
    }
    fn max_cluster(&self) -> u32 {
        self.clusters + 1
    }
    /// Bytes of a FAT that hold entries (the part fsck.fat compares).
    fn eff_size(&self) -> usize {
        ((u64::from(self.clusters) + 2) * u64::from(self.bits)).div_ceil(8) as usize
    }
    fn extd(&self) -> u32 {
        ((1u32 << self.bits) - 1) & !0xF
    }
    fn is_eof(&self, v: u32) -> bool {
        v >= (0xFF8 | self.extd())
    }
    fn is_bad(&self, v: u32) -> bool {
        v == (0xFF7 | self.extd())
    }
    fn eof(&self) -> u32 {
        0xFF8 | self.extd()
    }
}

/// An entry of the directory tree: a file or directory fsck.fat keeps.
struct Node {
    /// Entry offset in the volume; 0 for the root directory.
    offset: u64,
    ent: [u8; 32],
    lfn: Option<String>,
    lfn_offset: u64,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// The long-name slots collected so far (fsck.fat's LFN state).
struct LfnState {
    /// Slots still expected; -1 when no name is in progress.
    slot: i32,
    checksum: u8,
    units: Vec<u16>,
    offsets: Vec<u64>,
}

impl LfnState {
    fn reset(&mut self) {
        self.slot = -1;
        self.units.clear();
        self.offsets.clear();
    }
    fn so_far(&self) -> String {
        let start = (self.slot.max(0) as usize * 13).min(self.units.len());
        units_to_string(&self.units[start..])
    }
}

fn units_to_string(units: &[u16]) -> String {
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    String::from_utf16_lossy(&units[..end])
}

fn lfn_units_of(ent: &[u8; 32]) -> [u16; 13] {
    super::dirent::lfn_units(ent)
}

/// dosfstools' display of an 8.3 name ("NAME.EXT"; byte 0x05 shown as 0xE5).
fn file_name(name: &[u8]) -> String {
    let mut raw = [b' '; 11];
    raw.copy_from_slice(&name[..11]);
    if raw[0] == 0x05 {
        raw[0] = 0xE5;
    }
    super::names::display_name(&raw)
}

fn is_free_name(first: u8) -> bool {
    first == 0 || first == DELETED
}

struct Engine<'d, D: BlockDevice> {
    dev: &'d mut D,
    base: u64,
    dev_ss: u64,
    vol_bytes: u64,
    layout: Option<Layout>,
    kind: FatKind,
    /// FAT #1 as fsck.fat holds it (after choosing the intact copy), with
    /// every repair applied.
    fat: Vec<u8>,
    /// The same FAT decoded, one entry per cluster (0 and 1 included).
    links: Vec<u16>,
    fat_changed: bool,
    /// Repairs outside the FAT: whole directory entries by offset, and the
    /// boot sector's first 512 bytes.
    entries: BTreeMap<u64, [u8; 32]>,
    boot: Vec<u8>,
    boot_changed: bool,
    changed: bool,
    owner: Vec<u32>,
    nodes: Vec<Node>,
    root_children: Vec<usize>,
    lfn: LfnState,
    files: u32,
    findings: Vec<Finding>,
    dropped: u64,
    gave_up: bool,
    /// One directory cluster read ahead: (offset, bytes).
    cache: Option<(u64, Vec<u8>)>,
    /// `fsck.fat -a` mode: lost chains are saved as files, not freed.
    salvage: bool,
    /// The number the next FSCKnnnnREC name tries first.
    rec_number: u32,
}

impl<'d, D: BlockDevice> Engine<'d, D> {
    fn new(dev: &'d mut D, first_lba: u64, sectors: u64, salvage: bool) -> Self {
        let dev_ss = dev.sector_size().bytes_u64();
        let sectors = sectors.min(dev.sector_count().saturating_sub(first_lba));
        Engine {
            base: first_lba.saturating_mul(dev_ss),
            dev_ss,
            vol_bytes: sectors.saturating_mul(dev_ss),
            dev,
            layout: None,
            kind: FatKind::NotFat,
            fat: Vec::new(),
            links: Vec::new(),
            fat_changed: false,
            entries: BTreeMap::new(),
            boot: Vec::new(),
            boot_changed: false,
            changed: false,
            owner: Vec::new(),
            nodes: Vec::new(),
            root_children: Vec::new(),
            lfn: LfnState { slot: -1, checksum: 0, units: Vec::new(), offsets: Vec::new() },
            files: 0,
            findings: Vec::new(),
            dropped: 0,
            gave_up: false,
            cache: None,
            salvage,
            rec_number: 0,
        }
    }

    fn into_check(self) -> FatCheck {
        let (clusters, cluster_bytes) =
            self.layout.map_or((0, 0), |l| (l.clusters, u32::try_from(l.cluster_bytes).unwrap_or(u32::MAX)));
        FatCheck {
            kind: self.kind,
            clusters,
            cluster_bytes,
            files: self.files,
            findings: self.findings,
            findings_dropped: self.dropped,
            gave_up: self.gave_up,
        }
    }

    // ---- findings -------------------------------------------------------

    fn push(
        &mut self,
        class: FindingClass,
        severity: Severity,
        cluster: Option<u32>,
        entry: Option<String>,
        rel: u64,
        detail: String,
    ) {
        if severity == Severity::Damage {
            self.changed = true;
        }
        if self.findings.len() >= MAX_FINDINGS {
            self.dropped += 1;
            return;
        }
        self.findings.push(Finding { class, severity, cluster, entry, offset: self.base.saturating_add(rel), detail });
    }

    fn damage(&mut self, class: FindingClass, cluster: Option<u32>, entry: Option<String>, rel: u64, detail: String) {
        self.push(class, Severity::Damage, cluster, entry, rel, detail);
    }

    fn warn(&mut self, class: FindingClass, cluster: Option<u32>, entry: Option<String>, rel: u64, detail: String) {
        self.push(class, Severity::Warning, cluster, entry, rel, detail);
    }

    /// fsck.fat gives up here: a fatal finding, and nothing is written.
    fn fatal(&mut self, class: FindingClass, cluster: Option<u32>, rel: u64, detail: String) -> Stop {
        self.gave_up = true;
        self.push(class, Severity::Damage, cluster, None, rel, detail);
        Stop
    }

    // ---- reading --------------------------------------------------------

    /// Reads `len` bytes at `rel` (from the volume start) from the device,
    /// without the overlay; past the volume's end fsck.fat gives up.
    fn read_raw(&mut self, rel: u64, len: usize) -> Result<Vec<u8>, Stop> {
        let end = rel.checked_add(len as u64);
        if end.is_none_or(|end| end > self.vol_bytes) {
            return Err(self.fatal(
                FindingClass::BootSector,
                None,
                rel,
                format!("reading {len} bytes here runs past the volume's end ({} bytes)", self.vol_bytes),
            ));
        }
        let ss = self.dev_ss;
        let first = (self.base + rel) / ss;
        let last = (self.base + rel + len as u64).div_ceil(ss);
        let mut buf = vec![0u8; ((last - first) * ss) as usize];
        if let Err(e) = self.dev.read_sectors(first, &mut buf) {
            return Err(self.fatal(FindingClass::BootSector, None, rel, format!("the device failed: {e}")));
        }
        let skip = ((self.base + rel) % ss) as usize;
        buf.drain(..skip);
        buf.truncate(len);
        Ok(buf)
    }

    /// The directory entry at `rel`, repairs applied.
    fn entry(&mut self, rel: u64) -> Result<[u8; 32], Stop> {
        if let Some(ent) = self.entries.get(&rel) {
            return Ok(*ent);
        }
        if let Some((at, bytes)) = &self.cache {
            if rel >= *at && rel + 32 <= *at + bytes.len() as u64 {
                let i = (rel - at) as usize;
                let mut ent = [0u8; 32];
                ent.copy_from_slice(&bytes[i..i + 32]);
                return Ok(ent);
            }
        }
        // Read the whole cluster (or root directory sector run) around it.
        let l = self.layout.ok_or(Stop)?;
        let (start, len) = if rel >= l.data_start {
            let c = (rel - l.data_start) / l.cluster_bytes;
            (l.data_start + c * l.cluster_bytes, l.cluster_bytes)
        } else {
            (l.root_start, u64::from(l.root_entries) * 32)
        };
        let len = len.min(self.vol_bytes.saturating_sub(start));
        if rel < start || rel + 32 > start + len {
            let bytes = self.read_raw(rel, 32)?;
            let mut ent = [0u8; 32];
            ent.copy_from_slice(&bytes);
            return Ok(ent);
        }
        let bytes = self.read_raw(start, len as usize)?;
        let i = (rel - start) as usize;
        let mut ent = [0u8; 32];
        ent.copy_from_slice(&bytes[i..i + 32]);
        self.cache = Some((start, bytes));
        Ok(ent)
    }

    /// Writes `bytes` into the directory entry at `rel` at `field`.
    fn write_entry(&mut self, rel: u64, field: usize, bytes: &[u8]) -> Result<(), Stop> {
        let mut ent = self.entry(rel)?;
        ent[field..field + bytes.len()].copy_from_slice(bytes);
        self.entries.insert(rel, ent);
        self.changed = true;
        Ok(())
    }

    // ---- FAT --------------------------------------------------------------

    fn get(&self, cluster: u32) -> u32 {
        self.links.get(cluster as usize).map_or(0, |&v| u32::from(v))
    }

    fn set(&mut self, cluster: u32, value: u32) {
        let Some(l) = self.layout else { return };
        let value = if value == END { l.eof() } else { value };
        let at = super::table::entry_offset(l.bits, cluster) as usize;
        let (Some(&lo), Some(&hi)) = (self.fat.get(at), self.fat.get(at + 1)) else { return };
        let mut pair = super::table::encode(l.bits, cluster, [lo, hi], value);
        // dosfstools zeroes the neighbour nibble of the last even FAT12 entry.
        if l.bits == 12 && cluster.is_multiple_of(2) && cluster == l.max_cluster() {
            pair[1] &= 0x0F;
        }
        self.fat[at] = pair[0];
        self.fat[at + 1] = pair[1];
        if let Some(e) = self.links.get_mut(cluster as usize) {
            *e = super::table::decode(l.bits, cluster, pair) as u16;
        }
        self.fat_changed = true;
        self.changed = true;
    }

    /// Relative byte offset of a cluster's entry in FAT #1.
    fn fat_offset(&self, cluster: u32) -> u64 {
        self.layout.map_or(0, |l| l.fat_start + super::table::entry_offset(l.bits, cluster))
    }

    /// The cluster after `cluster`, [`END`] at the end of a chain; fsck.fat
    /// gives up ("Internal error") when asked past a bad cluster.
    fn next(&mut self, cluster: u32) -> Result<u32, Stop> {
        let l = self.layout.ok_or(Stop)?;
        let v = self.get(cluster);
        if l.is_bad(v) {
            return Err(self.fatal(
                FindingClass::BadCluster,
                Some(cluster),
                self.fat_offset(cluster),
                "a chain runs into a cluster marked bad; fsck.fat stops (\"Internal error: next_cluster on bad cluster\")"
                    .into(),
            ));
        }
        Ok(if l.is_eof(v) { END } else { v })
    }

    fn start(&self, node: usize) -> u32 {
        // FAT12/16: only the low word (dosfstools ignores the high word).
        u32::from(le16(&self.nodes[node].ent, OFF_START))
    }

    fn owner_of(&self, cluster: u32) -> u32 {
        self.owner.get(cluster as usize).copied().unwrap_or(0)
    }

    fn set_owner(&mut self, cluster: u32, node: u32) {
        if let Some(slot) = self.owner.get_mut(cluster as usize) {
            *slot = node;
        }
    }

    // ---- paths ------------------------------------------------------------

    fn path(&self, node: usize) -> String {
        let mut parts = Vec::new();
        let mut at = Some(node);
        let mut guard = 0;
        while let Some(n) = at {
            if self.nodes[n].offset == 0 || guard > MAX_DEPTH {
                break;
            }
            let nd = &self.nodes[n];
            parts.push(nd.lfn.clone().unwrap_or_else(|| file_name(&nd.ent)));
            at = nd.parent;
            guard += 1;
        }
        if parts.is_empty() {
            return "/".into();
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    fn modify(&mut self, node: usize, field: usize, bytes: &[u8]) -> Result<(), Stop> {
        self.nodes[node].ent[field..field + bytes.len()].copy_from_slice(bytes);
        let offset = self.nodes[node].offset;
        if offset != 0 {
            self.write_entry(offset, field, bytes)?;
        }
        Ok(())
    }

    fn modify_start(&mut self, node: usize, cluster: u32) -> Result<(), Stop> {
        self.modify(node, OFF_START, &(cluster as u16).to_le_bytes())
    }

    // ---- the passes -------------------------------------------------------

    fn run(&mut self) {
        if self.run_inner().is_err() && !self.gave_up {
            self.gave_up = true;
        }
    }

    fn run_inner(&mut self) -> Result<(), Stop> {
        self.read_boot()?;
        if self.kind == FatKind::Fat32 {
            self.push(
                FindingClass::Unsupported,
                Severity::Damage,
                None,
                None,
                0,
                "a FAT32 volume: this checker handles FAT12 and FAT16 only".into(),
            );
            return Err(Stop);
        }
        self.read_fat()?;
        self.scan_root()?;
        self.check_label()?;
        if self.salvage {
            self.reclaim_file()?;
        } else {
            self.reclaim_free();
        }
        self.check_dirty_bits()?;
        Ok(())
    }

    fn read_boot(&mut self) -> Result<(), Stop> {
        let boot = self.read_raw(0, 512)?;
        self.boot = boot.clone();
        let b = &boot;
        let bad = |s: &mut Self, rel: u64, why: String| -> Stop { s.fatal(FindingClass::BootSector, None, rel, why) };
        let lss = u64::from(le16(b, 11));
        if lss == 0 {
            return Err(bad(self, 11, "logical sector size is zero; fsck.fat gives up".into()));
        }
        if lss % 512 != 0 {
            return Err(bad(
                self,
                11,
                format!("logical sector size {lss} is not a multiple of 512; fsck.fat gives up"),
            ));
        }
        let cluster_bytes = u64::from(b[13]) * lss;
        if cluster_bytes == 0 {
            return Err(bad(self, 13, "cluster size is zero; fsck.fat gives up".into()));
        }
        let fats = u32::from(b[16]);
        if fats != 1 && fats != 2 {
            return Err(bad(self, 16, format!("{fats} FATs (fsck.fat takes 1 or 2); it gives up")));
        }
        let total = match le16(b, 19) {
            0 => u64::from(le32(b, 32)),
            n => u64::from(n),
        };
        // fsck.fat reads the last even-numbered sector to see the volume is there.
        let probe = ((total as u32 & !1).wrapping_sub(1)) as u64 * lss;
        if probe + lss > self.vol_bytes {
            return Err(bad(
                self,
                19,
                format!("{total} sectors of {lss} bytes run past the partition's {} bytes", self.vol_bytes),
            ));
        }
        let fat16_len = u64::from(le16(b, 22));
        let fat32_len = u64::from(le32(b, 36));
        let fat_len = if fat16_len != 0 { fat16_len } else { fat32_len };
        if fat_len == 0 {
            return Err(bad(self, 22, "FAT size is zero; fsck.fat gives up".into()));
        }
        let reserved = u64::from(le16(b, 14));
        let fat_start = reserved * lss;
        let root_start = (reserved + u64::from(fats) * fat_len) * lss;
        let root_entries = u32::from(le16(b, 17));
        let data_start = root_start + (u64::from(root_entries) * 32).div_ceil(lss) * lss;
        let data_size = (total * lss).saturating_sub(data_start);
        if data_size < cluster_bytes {
            return Err(bad(self, 19, "no space for any data clusters; fsck.fat gives up".into()));
        }
        let clusters = data_size / cluster_bytes;
        if fat16_len == 0 && fat32_len != 0 {
            self.kind = FatKind::Fat32;
            return Ok(());
        }
        let bits = if clusters >= FAT12_THRESHOLD { 16 } else { 12 };
        if clusters >= FAT16_THRESHOLD {
            return Err(bad(self, 13, format!("{clusters} clusters are too many for FAT16; fsck.fat gives up")));
        }
        let fat_size = fat_len * lss;
        let fat_entries = fat_size * 8 / bits;
        if clusters + 2 > fat_entries {
            return Err(bad(
                self,
                22,
                format!("{clusters} clusters but the FAT has room for {} entries; fsck.fat gives up", fat_entries - 2),
            ));
        }
        if root_entries == 0 {
            return Err(bad(self, 17, "the root directory has zero size; fsck.fat gives up".into()));
        }
        if root_entries % 16 != 0 {
            return Err(bad(
                self,
                17,
                format!("{root_entries} root entries do not fill whole 512-byte sectors; fsck.fat gives up"),
            ));
        }
        let mut label = [0u8; 11];
        if b[38] == 0x29 {
            label.copy_from_slice(&b[43..54]);
        }
        self.kind = if bits == 12 { FatKind::Fat12 } else { FatKind::Fat16 };
        self.layout = Some(Layout {
            cluster_bytes,
            fats,
            fat_start,
            fat_size,
            root_start,
            root_entries,
            data_start,
            clusters: clusters as u32,
            bits: bits as u32,
            label,
        });
        Ok(())
    }

    fn read_fat(&mut self) -> Result<(), Stop> {
        let l = self.layout.ok_or(Stop)?;
        let eff = l.eff_size();
        // Both copies in one read when there are two.
        let span = if l.fats > 1 { l.fat_size as usize + eff } else { eff };
        let mut bytes = self.read_raw(l.fat_start, span)?;
        let alloc = if l.bits == 12 { ((u64::from(l.clusters) + 2) * 12).div_ceil(24) as usize * 3 } else { eff };
        let media_ok = |fat: &[u8]| {
            let v = super::table::decode(l.bits, 0, [fat[0], fat.get(1).copied().unwrap_or(0)]);
            v & l.extd() == l.extd()
        };
        let fs = l.fat_size as usize;
        let first_ok = media_ok(&bytes[..eff]);
        let second = l.fats > 1;
        let second_ok = second && media_ok(&bytes[fs..fs + eff]);
        if !first_ok && second && !second_ok {
            return Err(self.fatal(
                FindingClass::FatMedia,
                None,
                l.fat_start,
                "FAT[0] lacks the media bits in both FATs; fsck.fat gives up (\"Both FATs appear to be corrupt\")"
                    .into(),
            ));
        }
        if !first_ok && !second {
            return Err(self.fatal(
                FindingClass::FatMedia,
                None,
                l.fat_start,
                "FAT[0] lacks the media bits and there is no second FAT; fsck.fat gives up".into(),
            ));
        }
        let differ = if second { bytes[..eff] != bytes[fs..fs + eff] } else { false };
        if differ {
            let at = bytes[..eff].iter().zip(&bytes[fs..fs + eff]).position(|(a, b)| a != b).unwrap_or(0);
            let (detail, use_second) = if first_ok && !second_ok {
                ("the FATs differ; FAT #2's FAT[0] is damaged, FAT #1 is copied over it", false)
            } else if !first_ok {
                ("the FATs differ; FAT #1's FAT[0] is damaged, FAT #2 is copied over it", true)
            } else {
                ("the FATs differ but both look intact; FAT #1 is copied over FAT #2", false)
            };
            if use_second {
                bytes.copy_within(fs..fs + eff, 0);
            }
            self.fat_changed = true;
            self.damage(FindingClass::FatCopiesDiffer, None, None, l.fat_start + l.fat_size + at as u64, detail.into());
        }
        bytes.truncate(eff);
        bytes.resize(alloc, 0);
        self.fat = bytes;
        let n = l.clusters as usize + 2;
        self.links = if l.bits == 16 {
            self.fat.chunks_exact(2).take(n).map(|p| u16::from_le_bytes([p[0], p[1]])).collect()
        } else {
            (0..n as u32)
                .map(|c| {
                    let at = super::table::entry_offset(12, c) as usize;
                    let pair = [self.fat.get(at).copied().unwrap_or(0), self.fat.get(at + 1).copied().unwrap_or(0)];
                    super::table::decode(12, c, pair) as u16
                })
                .collect()
        };
        self.owner = vec![0; l.clusters as usize + 2];
        // Entries of 1, or past the last cluster and below "bad", become ends.
        let max = l.max_cluster();
        let min_bad = 0xFF7 | l.extd();
        for c in 2..=max {
            let v = self.get(c);
            if v == 1 || (v > max && v < min_bad) {
                let detail = format!("FAT entry of cluster {c} is {v} (past {max}); set to end of chain");
                self.set(c, END);
                self.damage(FindingClass::ChainOutOfRange, Some(c), None, self.fat_offset(c), detail);
            }
        }
        Ok(())
    }

    fn scan_root(&mut self) -> Result<(), Stop> {
        let l = self.layout.ok_or(Stop)?;
        self.nodes.push(Node {
            offset: 0,
            ent: root_ent(),
            lfn: None,
            lfn_offset: 0,
            parent: None,
            children: Vec::new(),
        });
        self.lfn.reset();
        let mut list = Vec::new();
        for i in 0..u64::from(l.root_entries) {
            self.add_file(&mut list, None, l.root_start + i * 32)?;
        }
        self.lfn_check_orphaned()?;
        self.root_children = list.clone();
        self.check_dir(&list, None)?;
        self.root_children = list.clone();
        self.check_files(&list)?;
        self.subdirs(&list, 0)
    }

    fn add_file(&mut self, list: &mut Vec<usize>, parent: Option<usize>, offset: u64) -> Result<(), Stop> {
        let ent = self.entry(offset)?;
        if is_free_name(ent[0]) {
            return self.lfn_check_orphaned();
        }
        if ent[OFF_ATTR] == ATTR_LFN_EXACT {
            return self.lfn_add_slot(&ent, offset);
        }
        if self.nodes.len() >= MAX_ENTRIES {
            return Err(self.fatal(
                FindingClass::Unsupported,
                None,
                offset,
                format!("more than {MAX_ENTRIES} directory entries; the check stops here"),
            ));
        }
        let (lfn, lfn_offset) = self.lfn_get(&ent, offset)?;
        let node = self.nodes.len();
        self.nodes.push(Node { offset, ent, lfn, lfn_offset, parent, children: Vec::new() });
        list.push(node);
        self.files += 1;
        self.test_file(node)
    }

    /// Walks an entry's chain for a loop of its own; truncates before it.
    fn test_file(&mut self, node: usize) -> Result<(), Stop> {
        let l = self.layout.ok_or(Stop)?;
        let id = node as u32;
        let max = l.max_cluster();
        let (mut prev, mut clusters) = (0u32, 0u32);
        let mut walk = self.start(node);
        while walk > 1 && walk <= max {
            let next = self.next(walk)?;
            let owner = self.owner_of(walk);
            if owner != 0 {
                if owner == id {
                    let path = self.path(node);
                    let at = self.fat_offset(if prev != 0 { prev } else { walk });
                    if prev != 0 {
                        self.set(prev, END);
                    } else {
                        self.modify_start(node, 0)?;
                    }
                    self.damage(
                        FindingClass::ChainLoop,
                        Some(walk),
                        Some(path),
                        at,
                        format!("circular cluster chain; truncated to {clusters} clusters"),
                    );
                }
                break;
            }
            prev = walk;
            clusters += 1;
            self.set_owner(walk, id);
            walk = next;
        }
        // Give the clusters back (ownership is decided by check_file).
        let mut walk = self.start(node);
        let mut steps = 0u32;
        while walk > 1 && walk <= max && steps <= max {
            if l.is_bad(self.get(walk)) {
                break;
            }
            if self.owner_of(walk) != id {
                break;
            }
            self.set_owner(walk, 0);
            walk = self.next(walk)?;
            steps += 1;
        }
        Ok(())
    }

    fn lfn_add_slot(&mut self, ent: &[u8; 32], offset: u64) -> Result<(), Stop> {
        let id = ent[0];
        let slot = i32::from(id & 0x1F);
        let is_start = id & 0x40 != 0;
        if self.lfn.slot == 0 {
            self.lfn_check_orphaned()?;
        }
        let part = units_to_string(&lfn_units_of(ent));
        if is_start && slot != 0 {
            if self.lfn.slot != -1 {
                self.warn(
                    FindingClass::BadLongName,
                    None,
                    None,
                    offset,
                    format!("a new long name (\"{part}\") starts within an old one; not corrected"),
                );
            }
            self.lfn.slot = slot;
            self.lfn.checksum = ent[OFF_CHECKSUM];
            self.lfn.units = vec![0; slot as usize * 13 + 1];
            self.lfn.offsets.clear();
        } else if self.lfn.slot == -1 && slot != 0 {
            self.warn(
                FindingClass::BadLongName,
                None,
                None,
                offset,
                format!("long-name fragment \"{part}\" outside a long-name sequence; not corrected"),
            );
            self.lfn.reset();
            return Ok(());
        } else if slot != self.lfn.slot {
            self.warn(
                FindingClass::BadLongName,
                None,
                None,
                offset,
                format!("long-name slot number {slot} where {} was expected; not corrected", self.lfn.slot),
            );
            self.lfn.reset();
            return Ok(());
        }
        if ent[OFF_CHECKSUM] != self.lfn.checksum {
            self.warn(
                FindingClass::BadLongName,
                None,
                None,
                offset + OFF_CHECKSUM as u64,
                format!(
                    "long-name slot checksum {:02x} differs from the name's {:02x}; not corrected",
                    ent[OFF_CHECKSUM], self.lfn.checksum
                ),
            );
        }
        if self.lfn.slot != -1 {
            self.lfn.slot -= 1;
            let at = self.lfn.slot.max(0) as usize * 13;
            let units = lfn_units_of(ent);
            if let Some(dst) = self.lfn.units.get_mut(at..at + 13) {
                dst.copy_from_slice(&units);
            }
            if is_start {
                if let Some(u) = self.lfn.units.get_mut(at + 13) {
                    *u = 0;
                }
            }
            self.lfn.offsets.push(offset);
        }
        if ent[12] != 0 {
            self.write_entry(offset, 12, &[0])?;
            self.damage(
                FindingClass::BadLongName,
                None,
                None,
                offset + 12,
                format!("reserved byte of a long-name slot is {:#04x}; set to 0", ent[12]),
            );
        }
        if le16(ent, OFF_START) != 0 {
            self.write_entry(offset, OFF_START, &[0, 0])?;
            self.damage(
                FindingClass::BadLongName,
                None,
                None,
                offset + OFF_START as u64,
                format!("start cluster field of a long-name slot is {:#06x}; set to 0", le16(ent, OFF_START)),
            );
        }
        Ok(())
    }

    fn lfn_get(&mut self, ent: &[u8; 32], offset: u64) -> Result<(Option<String>, u64), Stop> {
        if self.lfn.slot == -1 {
            return Ok((None, 0));
        }
        let short = file_name(ent);
        if self.lfn.slot != 0 {
            let so_far = self.lfn.so_far();
            self.warn(
                FindingClass::BadLongName,
                None,
                None,
                offset,
                format!("unfinished long name \"{so_far}\" before short name {short}; not corrected"),
            );
            self.lfn.reset();
            return Ok((None, 0));
        }
        let mut name = [0u8; 11];
        name.copy_from_slice(&ent[..11]);
        if lfn_checksum(&name) != self.lfn.checksum {
            let so_far = self.lfn.so_far();
            self.warn(
                FindingClass::BadLongName,
                None,
                None,
                offset,
                format!("long name \"{so_far}\" has the wrong checksum for short name {short}; not corrected"),
            );
        }
        let lfn_offset = self.lfn.offsets.first().copied().unwrap_or(0);
        let long = units_to_string(&self.lfn.units);
        self.lfn.reset();
        Ok((Some(long), lfn_offset))
    }

    fn lfn_check_orphaned(&mut self) -> Result<(), Stop> {
        if self.lfn.slot == -1 {
            return Ok(());
        }
        let so_far = self.lfn.so_far();
        let offsets = self.lfn.offsets.clone();
        let at = offsets.first().copied().unwrap_or(0);
        for off in offsets {
            self.clear_slot(off)?;
        }
        self.damage(
            FindingClass::BadLongName,
            None,
            None,
            at,
            format!("orphaned long-name part \"{so_far}\"; its slots are deleted"),
        );
        self.lfn.reset();
        Ok(())
    }

    /// A deleted entry as fsck.fat writes it: 0xE5 then zeros.
    fn clear_slot(&mut self, offset: u64) -> Result<(), Stop> {
        let mut empty = [0u8; 32];
        empty[0] = DELETED;
        self.write_entry(offset, 0, &empty)
    }

    fn bad_name(&self, node: usize) -> bool {
        let nd = &self.nodes[node];
        if nd.offset == 0 {
            return false;
        }
        let lcase = nd.ent[OFF_LCASE];
        if nd.lfn.is_none() && lcase & NO_83NAME != 0 {
            return true;
        }
        if lcase & NO_83NAME != 0 {
            return false;
        }
        let name = &nd.ent[..11];
        for (i, &c) in name.iter().enumerate() {
            if (c < b' ' && !(i == 0 && c == 0x05)) || c == 0x7F {
                return true;
            }
            if b"*?<>|\"\\/:.".contains(&c) {
                return true;
            }
        }
        name[0] == b' '
    }

    fn check_dir(&mut self, list: &[usize], parent: Option<usize>) -> Result<(), Stop> {
        if list.is_empty() {
            return Ok(());
        }
        let bad = list.iter().filter(|&&n| self.bad_name(n)).count();
        let good = list.len() - bad;
        if let Some(parent) = parent {
            if good + bad > 4 && bad > good / 2 {
                let path = self.path(parent);
                let offset = self.nodes[parent].offset;
                self.warn(
                    FindingClass::BadDirEntry,
                    None,
                    Some(path),
                    offset,
                    format!("has a large number of bad entries ({bad}/{}); not dropped", good + bad),
                );
            }
        }
        for w in 0..list.len() {
            let node = list[w];
            let is_volume = self.nodes[node].ent[OFF_ATTR] & ATTR_VOLUME != 0;
            if !is_volume && self.bad_name(node) {
                let old = file_name(&self.nodes[node].ent);
                let path = self.path(node);
                let offset = self.nodes[node].offset;
                self.auto_rename(list, node)?;
                let new = file_name(&self.nodes[node].ent);
                self.damage(
                    FindingClass::BadDirEntry,
                    None,
                    Some(path),
                    offset,
                    format!("bad short name ({old}); renamed to {new}"),
                );
            }
            if self.nodes[node].ent[OFF_ATTR] & ATTR_VOLUME == 0 {
                for s in w + 1..list.len() {
                    let other = list[s];
                    if self.nodes[other].ent[OFF_ATTR] & ATTR_VOLUME == 0
                        && self.nodes[node].ent[..11] == self.nodes[other].ent[..11]
                    {
                        let path = self.path(node);
                        let offset = self.nodes[other].offset;
                        self.auto_rename(list, other)?;
                        let new = file_name(&self.nodes[other].ent);
                        self.damage(
                            FindingClass::DuplicateEntry,
                            None,
                            Some(path),
                            offset,
                            format!("duplicate directory entry; the second renamed to {new}"),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    fn auto_rename(&mut self, list: &[usize], node: usize) -> Result<(), Stop> {
        let offset = self.nodes[node].offset;
        if offset == 0 {
            return Ok(());
        }
        let taken: BTreeSet<[u8; 11]> = list
            .iter()
            .filter(|&&n| n != node)
            .map(|&n| {
                let mut name = [0u8; 11];
                name.copy_from_slice(&self.nodes[n].ent[..11]);
                name
            })
            .collect();
        let mut name = [0u8; 11];
        let found = (0..=9_999_999u32).find(|n| {
            name.copy_from_slice(format!("FSCK{n:07}").as_bytes());
            !taken.contains(&name)
        });
        if found.is_none() {
            return Err(self.fatal(FindingClass::BadDirEntry, None, offset, "too many files need renaming".into()));
        }
        if self.nodes[node].ent[OFF_LCASE] & NO_83NAME != 0 {
            let mut ent = self.nodes[node].ent;
            ent[..11].copy_from_slice(&name);
            ent[OFF_LCASE] &= !NO_83NAME;
            ent[OFF_ATTR] &= !(ATTR_DIR | ATTR_VOLUME);
            self.modify(node, 0, &ent[..13])?;
        } else {
            self.modify(node, 0, &name)?;
        }
        if self.nodes[node].lfn.is_some() {
            let from = self.nodes[node].lfn_offset;
            self.lfn_remove(from, offset)?;
            self.nodes[node].lfn = None;
        }
        Ok(())
    }

    fn lfn_remove(&mut self, from: u64, to: u64) -> Result<(), Stop> {
        let mut at = from;
        let mut steps = 0;
        while at < to && steps < 64 {
            self.clear_slot(at)?;
            at += 32;
            steps += 1;
        }
        Ok(())
    }

    fn check_files(&mut self, list: &[usize]) -> Result<(), Stop> {
        for &node in list {
            self.check_file(node)?;
        }
        Ok(())
    }

    fn check_file(&mut self, node: usize) -> Result<(), Stop> {
        let l = self.layout.ok_or(Stop)?;
        let max = l.max_cluster();
        let cb = l.cluster_bytes;
        if is_free_name(self.nodes[node].ent[0]) {
            return Ok(());
        }
        let offset = self.nodes[node].offset;
        let is_dir = self.nodes[node].ent[OFF_ATTR] & ATTR_DIR != 0;
        if is_dir {
            if le32(&self.nodes[node].ent, OFF_SIZE) != 0 {
                let path = self.path(node);
                self.modify(node, OFF_SIZE, &[0; 4])?;
                self.damage(
                    FindingClass::BadDirEntry,
                    None,
                    Some(path),
                    offset,
                    "directory has a nonzero size; set to 0".into(),
                );
            }
            if self.start(node) == 0 {
                let path = self.path(node);
                self.modify(node, 0, &[DELETED])?;
                self.damage(
                    FindingClass::BadDirEntry,
                    None,
                    Some(path),
                    offset,
                    "directory starts at cluster 0 (the root directory); deleted".into(),
                );
                return Ok(());
            }
            if let Some(parent) = self.nodes[node].parent {
                let parent_start = self.start(parent);
                let grandp = self.nodes[parent].parent.map_or(0, |g| self.start(g));
                let start = self.start(node);
                if start == parent_start || start == grandp {
                    let path = self.path(node);
                    let whose = if start == parent_start { "its containing directory" } else { "its parent's parent" };
                    self.modify(node, 0, &[DELETED])?;
                    self.modify_start(node, 0)?;
                    self.damage(
                        FindingClass::BadDirEntry,
                        Some(start),
                        Some(path),
                        offset,
                        format!("directory starts at the cluster of {whose}; deleted"),
                    );
                    return Ok(());
                }
            }
        }
        let start = self.start(node);
        if start == 1 {
            let path = self.path(node);
            self.modify_start(node, 0)?;
            self.damage(
                FindingClass::ChainOutOfRange,
                Some(1),
                Some(path),
                offset,
                "start cluster 1; truncated to empty".into(),
            );
        } else if start > max {
            let path = self.path(node);
            self.modify_start(node, 0)?;
            self.damage(
                FindingClass::ChainOutOfRange,
                Some(start),
                Some(path),
                offset,
                format!("start cluster {start} past the last cluster {max}; truncated to empty"),
            );
        }
        let id = node as u32;
        let size = u64::from(le32(&self.nodes[node].ent, OFF_SIZE));
        let (mut clusters, mut prev) = (0u64, 0u32);
        let mut curr = if self.start(node) != 0 { self.start(node) } else { END };
        let mut steps = 0u32;
        while curr != END {
            steps += 1;
            if steps > max {
                return Err(self.fatal(
                    FindingClass::ChainLoop,
                    Some(curr),
                    self.fat_offset(curr),
                    "a chain longer than the volume".into(),
                ));
            }
            let v = self.get(curr);
            if v == 0 || l.is_bad(v) {
                let path = self.path(node);
                let (class, what) =
                    if v == 0 { (FindingClass::FreeInChain, "free") } else { (FindingClass::BadCluster, "bad") };
                if prev != 0 {
                    self.set(prev, END);
                } else {
                    self.modify_start(node, 0)?;
                }
                self.damage(
                    class,
                    Some(curr),
                    Some(path),
                    self.fat_offset(curr),
                    format!("contains a {what} cluster ({curr}); the chain ends before it"),
                );
                break;
            }
            if !is_dir && size <= clusters * cb {
                let path = self.path(node);
                self.truncate_file(node, clusters)?;
                self.damage(
                    FindingClass::SizeMismatch,
                    Some(curr),
                    Some(path),
                    offset,
                    format!(
                        "file size is {size} bytes, its chain is longer than {} bytes; chain truncated",
                        clusters * cb
                    ),
                );
                break;
            }
            let owner = self.owner_of(curr);
            if owner != 0 {
                let owner = owner as usize;
                let owner_path = self.path(owner);
                let path = self.path(node);
                if prev != 0 {
                    self.set(prev, END);
                } else {
                    self.modify_start(node, 0)?;
                }
                self.damage(
                    FindingClass::CrossLink,
                    Some(curr),
                    Some(path),
                    offset,
                    format!("shares cluster {curr} with {owner_path}; truncated to {} bytes", clusters * cb),
                );
                break;
            }
            self.set_owner(curr, id);
            clusters += 1;
            prev = curr;
            curr = self.next(curr)?;
        }
        if !is_dir && size > clusters * cb {
            let path = self.path(node);
            let new = (clusters * cb) as u32;
            self.modify(node, OFF_SIZE, &new.to_le_bytes())?;
            self.damage(
                FindingClass::ChainEndsEarly,
                None,
                Some(path),
                offset,
                format!("file size is {size} bytes, its chain is {} bytes; size set to the chain's", clusters * cb),
            );
        }
        Ok(())
    }

    fn truncate_file(&mut self, node: usize, keep: u64) -> Result<(), Stop> {
        let l = self.layout.ok_or(Stop)?;
        let mut walk = self.start(node);
        let mut deleting = keep == 0;
        let mut keep = keep;
        if deleting {
            self.modify_start(node, 0)?;
        }
        let mut steps = 0u32;
        while walk > 0 && walk != END && steps <= l.max_cluster() {
            let next = self.next(walk)?;
            if deleting {
                self.set(walk, 0);
            } else {
                keep -= 1;
                if keep == 0 {
                    deleting = true;
                    self.set(walk, END);
                }
            }
            walk = next;
            steps += 1;
        }
        Ok(())
    }

    fn subdirs(&mut self, list: &[usize], depth: usize) -> Result<(), Stop> {
        for &node in list {
            let ent = &self.nodes[node].ent;
            if !is_free_name(ent[0]) && ent[OFF_ATTR] & ATTR_DIR != 0 {
                if depth >= MAX_DEPTH {
                    let offset = self.nodes[node].offset;
                    return Err(self.fatal(
                        FindingClass::Unsupported,
                        None,
                        offset,
                        format!("directories nested deeper than {MAX_DEPTH}; the check stops here"),
                    ));
                }
                self.scan_dir(node, depth + 1)?;
            }
        }
        Ok(())
    }

    fn scan_dir(&mut self, this: usize, depth: usize) -> Result<(), Stop> {
        let l = self.layout.ok_or(Stop)?;
        let cb = l.cluster_bytes;
        let mut clu = self.start(this);
        self.lfn.reset();
        if clu != 0 && self.nodes[this].offset != 0 {
            let base = l.cluster_start(clu);
            self.handle_dot(this, base, false)?;
            self.handle_dot(this, base + 32, true)?;
        }
        let mut list = Vec::new();
        let mut i = 64u64;
        let mut clusters = 0u32;
        while clu > 0 && clu != END {
            if clu > l.max_cluster() {
                break;
            }
            self.add_file(&mut list, Some(this), l.cluster_start(clu) + i % cb)?;
            i += 32;
            if i.is_multiple_of(cb) {
                clusters += 1;
                clu = self.next(clu)?;
                if clu == 0 || clusters > l.max_cluster() {
                    break;
                }
            }
        }
        self.lfn_check_orphaned()?;
        self.nodes[this].children = list.clone();
        self.check_dir(&list, Some(this))?;
        self.check_files(&list)?;
        self.subdirs(&list, depth)
    }

    fn handle_dot(&mut self, dir: usize, offset: u64, dotdot: bool) -> Result<(), Stop> {
        let (name, expected): (&str, [u8; 11]) = if dotdot { ("..", *b"..         ") } else { (".", *b".          ") };
        let start = if dotdot {
            match self.nodes[dir].parent {
                Some(p) if self.nodes[p].offset != 0 => self.start(p),
                _ => 0,
            }
        } else {
            self.start(dir)
        };
        let mut ent = self.entry(offset)?;
        let slot = if dotdot { "second" } else { "first" };
        let ok = ent[OFF_ATTR] & ATTR_DIR != 0 && u32::from(le16(&ent, OFF_START)) == start && ent[..11] == expected;
        if !ok {
            let path = self.path(dir);
            let conjure;
            if is_free_name(ent[0]) {
                self.damage(
                    FindingClass::BadDotEntries,
                    None,
                    Some(path),
                    offset,
                    format!("the {slot} slot is free where '{name}' belongs; created"),
                );
                conjure = true;
            } else if ent[..11] == expected {
                self.write_entry(offset, OFF_START, &(start as u16).to_le_bytes())?;
                self.write_entry(offset, OFF_ATTR, &[ATTR_DIR])?;
                self.damage(
                    FindingClass::BadDotEntries,
                    None,
                    Some(path),
                    offset,
                    format!("invalid '{name}' entry in the {slot} slot; fixed"),
                );
                ent = self.entry(offset)?;
                conjure = false;
            } else {
                // The entry is moved to the first free slot of the directory.
                match self.scan_free_entry(dir)? {
                    Some(free) => {
                        self.write_entry(free, 0, &ent)?;
                        self.damage(
                            FindingClass::BadDotEntries,
                            None,
                            Some(path),
                            offset,
                            format!("'{name}' expected in the {slot} slot; the entry there is moved down"),
                        );
                        conjure = true;
                    }
                    None => {
                        self.warn(
                            FindingClass::BadDotEntries,
                            None,
                            Some(path),
                            offset,
                            format!("'{name}' expected in the {slot} slot; no free slot to move the entry to"),
                        );
                        return Ok(());
                    }
                }
            }
            if conjure {
                let mut new = [0u8; 32];
                new[..11].copy_from_slice(&expected);
                new[OFF_ATTR] = ATTR_DIR;
                new[OFF_START..OFF_START + 2].copy_from_slice(&(start as u16).to_le_bytes());
                self.write_entry(offset, 0, &new)?;
                return Ok(());
            }
        }
        if ent[OFF_LCASE] & NO_83NAME != 0 {
            let path = self.path(dir);
            self.write_entry(offset, OFF_LCASE, &[ent[OFF_LCASE] & !NO_83NAME])?;
            self.damage(
                FindingClass::BadDotEntries,
                None,
                Some(path),
                offset,
                format!("'{name}' has the no-8.3-name flag; cleared"),
            );
        }
        Ok(())
    }

    fn scan_free_entry(&mut self, dir: usize) -> Result<Option<u64>, Stop> {
        let l = self.layout.ok_or(Stop)?;
        let cb = l.cluster_bytes;
        let mut i = 64u64;
        let mut clu = self.start(dir);
        let mut clusters = 0u32;
        while clu > 0 && clu != END && clu <= l.max_cluster() {
            let offset = l.cluster_start(clu) + i % cb;
            let ent = self.entry(offset)?;
            if is_free_name(ent[0]) {
                return Ok(Some(offset));
            }
            i += 32;
            if i.is_multiple_of(cb) {
                clusters += 1;
                clu = self.next(clu)?;
                if clu == 0 || clusters > l.max_cluster() {
                    break;
                }
            }
        }
        Ok(None)
    }

    fn check_label(&mut self) -> Result<(), Stop> {
        let l = self.layout.ok_or(Stop)?;
        let mut label = l.label;
        let mut found = self.find_volume_de()?;
        if found.is_none() && label != NO_NAME && validate_label(&label) & !1 != 0 {
            self.write_boot_label(NO_NAME);
            label = NO_NAME;
            self.damage(
                FindingClass::VolumeLabel,
                None,
                None,
                43,
                "the boot sector's label is not valid; removed".into(),
            );
        }
        if found.is_none() && label != NO_NAME {
            self.write_boot_label(NO_NAME);
            label = NO_NAME;
            self.damage(
                FindingClass::VolumeLabel,
                None,
                None,
                43,
                "the boot sector has a label but the root directory has none; removed from the boot sector".into(),
            );
        }
        if let Some((offset, de)) = found {
            let mut doslabel = [0u8; 11];
            doslabel.copy_from_slice(&de[..11]);
            if doslabel[0] == 0x05 {
                doslabel[0] = 0xE5;
            }
            if validate_label(&doslabel) & !1 != 0 {
                self.write_boot_label(NO_NAME);
                let mut gone = de;
                gone[0] = DELETED;
                gone[OFF_ATTR] = 0;
                self.write_entry(offset, 0, &gone)?;
                self.damage(
                    FindingClass::VolumeLabel,
                    None,
                    None,
                    offset,
                    "the root directory's volume label is not valid; removed".into(),
                );
                found = None;
                label = NO_NAME;
            } else if label == NO_NAME && doslabel != NO_NAME {
                self.write_boot_label(doslabel);
                self.damage(
                    FindingClass::VolumeLabel,
                    None,
                    None,
                    43,
                    "the boot sector has no label but the root directory has one; copied to the boot sector".into(),
                );
                label = doslabel;
            }
            if found.is_some() && label != NO_NAME && label != doslabel {
                self.write_boot_label(doslabel);
                self.damage(
                    FindingClass::VolumeLabel,
                    None,
                    None,
                    43,
                    "the boot sector's and root directory's labels differ; the root directory's copied".into(),
                );
            }
        }
        Ok(())
    }

    fn find_volume_de(&mut self) -> Result<Option<(u64, [u8; 32])>, Stop> {
        let l = self.layout.ok_or(Stop)?;
        for i in 0..u64::from(l.root_entries) {
            let offset = l.root_start + i * 32;
            let de = self.entry(offset)?;
            if de[0] == 0 {
                return Ok(None);
            }
            if !is_free_name(de[0]) && de[OFF_ATTR] != ATTR_LFN_EXACT && de[OFF_ATTR] & ATTR_VOLUME != 0 {
                return Ok(Some((offset, de)));
            }
        }
        Ok(None)
    }

    fn write_boot_label(&mut self, label: [u8; 11]) {
        let kind_name: &[u8; 8] = if self.kind == FatKind::Fat12 { b"FAT12   " } else { b"FAT16   " };
        if self.boot.len() < 62 {
            return;
        }
        if self.boot[38] != 0x29 {
            self.boot[38] = 0x29;
            self.boot[39..43].fill(0);
            self.boot[43..54].copy_from_slice(&NO_NAME);
            self.boot[54..62].copy_from_slice(kind_name);
        }
        self.boot[43..54].copy_from_slice(&label);
        self.boot_changed = true;
        self.changed = true;
    }

    fn reclaim_free(&mut self) {
        let Some(l) = self.layout else { return };
        let (mut count, mut first) = (0u32, 0u32);
        for c in 2..=l.max_cluster() {
            let v = self.get(c);
            if self.owner_of(c) == 0 && v != 0 && !l.is_bad(v) {
                self.set(c, 0);
                if count == 0 {
                    first = c;
                }
                count += 1;
            }
        }
        if count > 0 {
            let at = self.fat_offset(first);
            self.damage(
                FindingClass::LostClusters,
                Some(first),
                None,
                at,
                format!(
                    "{count} allocated cluster{} reached from no entry, the first {first}; freed",
                    if count == 1 { "" } else { "s" }
                ),
            );
        }
    }

    /// `fsck.fat -a`'s handling of lost clusters: each lost chain becomes a
    /// root directory file `FSCKnnnnREC` (attribute 0, no dates, its size
    /// the chain's clusters), after chains running into owned, free or bad
    /// clusters are ended there and cycles are broken.
    fn reclaim_file(&mut self) -> Result<(), Stop> {
        let l = self.layout.ok_or(Stop)?;
        let total = l.clusters + 2;
        let mut refs = vec![0u32; total as usize];
        for i in 2..total {
            let next = self.get(i);
            if self.owner_of(i) == 0 && next != 0 && next < total {
                let after = self.get(next);
                if self.owner_of(next) != 0 || after == 0 || l.is_bad(after) {
                    self.set(i, END);
                } else {
                    refs[next as usize] += 1;
                }
            }
        }
        let mut changed = 0u32;
        let mut rounds = 0u32;
        loop {
            self.tag_free(&mut refs, changed)?;
            changed = 0;
            for i in 2..total {
                let v = self.get(i);
                if v != 0 && !l.is_bad(v) && self.owner_of(i) == 0 {
                    let Some(r) = refs.get_mut(v as usize).filter(|r| **r > 0) else {
                        return Err(self.fatal(
                            FindingClass::LostClusters,
                            Some(i),
                            self.fat_offset(i),
                            "fsck.fat stops (\"Internal error: num_refs going below zero\")".into(),
                        ));
                    };
                    *r -= 1;
                    let now_head = *r == 0;
                    self.set(i, END);
                    changed = v;
                    self.damage(
                        FindingClass::LostClusters,
                        Some(i),
                        None,
                        self.fat_offset(i),
                        format!("lost chain loops; the cycle is broken at cluster {i}"),
                    );
                    if now_head {
                        break;
                    }
                }
            }
            rounds += 1;
            if changed == 0 || rounds > total {
                break;
            }
        }
        let (mut reclaimed, mut files, mut first) = (0u64, 0u32, 0u32);
        for i in 2..total {
            if self.owner_of(i) == ORPHAN && refs[i as usize] == 0 {
                let offset = self.alloc_rootdir_entry()?;
                let mut de = [0u8; 32];
                de[..11].copy_from_slice(format!("FSCK{:04}REC", self.rec_number).as_bytes());
                de[OFF_START..OFF_START + 2].copy_from_slice(&(i as u16).to_le_bytes());
                let (mut walk, mut size, mut steps) = (i, 0u32, 0u32);
                while walk > 0 && walk != END && steps < total {
                    size = size.wrapping_add(l.cluster_bytes as u32);
                    reclaimed += 1;
                    walk = self.next(walk)?;
                    steps += 1;
                }
                de[OFF_SIZE..OFF_SIZE + 4].copy_from_slice(&size.to_le_bytes());
                self.write_entry(offset, 0, &de)?;
                self.files += 1;
                if files == 0 {
                    first = i;
                }
                files += 1;
            }
        }
        if reclaimed > 0 {
            self.damage(
                FindingClass::LostClusters,
                Some(first),
                None,
                self.fat_offset(first),
                format!(
                    "{reclaimed} lost clusters in {files} chains, the first at {first}; saved as FSCKnnnnREC files"
                ),
            );
        }
        Ok(())
    }

    /// Gives each unowned chain head (no lost cluster links to it) and its
    /// chain to the lost files; ends a chain where it runs into a cluster
    /// already taken.
    fn tag_free(&mut self, refs: &mut [u32], start: u32) -> Result<(), Stop> {
        let l = self.layout.ok_or(Stop)?;
        let total = l.clusters + 2;
        for i in start.max(2)..total {
            let v = self.get(i);
            if v == 0 || l.is_bad(v) || self.owner_of(i) != 0 || refs[i as usize] != 0 {
                continue;
            }
            let (mut prev, mut walk, mut steps) = (0u32, i, 0u32);
            while walk != END && (2..total).contains(&walk) && steps < total {
                if self.owner_of(walk) == 0 {
                    self.set_owner(walk, ORPHAN);
                } else {
                    self.set(prev, END);
                    if let Some(r) = refs.get_mut(walk as usize) {
                        *r = r.saturating_sub(1);
                    }
                    break;
                }
                prev = walk;
                walk = self.next(walk)?;
                steps += 1;
            }
        }
        Ok(())
    }

    /// The first free root slot (not an LFN slot) for a recovered file,
    /// and the next FSCKnnnnREC number no root entry has.
    fn alloc_rootdir_entry(&mut self) -> Result<u64, Stop> {
        let l = self.layout.ok_or(Stop)?;
        let mut names = Vec::with_capacity(l.root_entries as usize);
        let mut free = None;
        for k in 0..u64::from(l.root_entries) {
            let offset = l.root_start + k * 32;
            let de = self.entry(offset)?;
            if free.is_none() && is_free_name(de[0]) && de[OFF_ATTR] != ATTR_LFN_EXACT {
                free = Some(offset);
            }
            names.push((offset, de));
        }
        let Some(offset) = free else {
            return Err(self.fatal(
                FindingClass::LostClusters,
                None,
                l.root_start,
                "lost chains to save but the root directory is full; fsck.fat gives up".into(),
            ));
        };
        loop {
            let name = format!("FSCK{:04}REC", self.rec_number);
            let clash = names.iter().any(|(at, de)| *at != offset && c_name_eq(&de[..11], name.as_bytes()));
            if !clash {
                return Ok(offset);
            }
            self.rec_number += 1;
            if self.rec_number >= 10000 {
                return Err(self.fatal(
                    FindingClass::LostClusters,
                    None,
                    offset,
                    "no unique FSCKnnnnREC name left".into(),
                ));
            }
        }
    }

    fn check_dirty_bits(&mut self) -> Result<(), Stop> {
        let l = self.layout.ok_or(Stop)?;
        let boot_dirty = self.boot.get(BOOT_FLAGS).is_some_and(|b| b & 1 != 0);
        let fat_dirty = l.bits == 16 && self.get(1) & FAT16_CLEAN_SHUTDOWN == 0;
        if boot_dirty || fat_dirty {
            if boot_dirty {
                self.boot[BOOT_FLAGS] &= !1;
                self.boot_changed = true;
            }
            if fat_dirty {
                let v = self.get(1) | FAT16_CLEAN_SHUTDOWN;
                self.set(1, v);
            }
            let (at, what) = if boot_dirty {
                (BOOT_FLAGS as u64, "the boot sector's dirty flag is set")
            } else {
                (l.fat_start + 2, "FAT[1]'s clean-shutdown bit is clear")
            };
            self.damage(FindingClass::DirtyBit, None, None, at, format!("{what}; cleared"));
        }
        Ok(())
    }

    /// The byte ranges (relative to the volume) the repairs write.
    fn planned_writes(&self) -> Vec<(u64, Vec<u8>)> {
        let mut writes = Vec::new();
        if self.boot_changed {
            writes.push((0, self.boot.clone()));
        }
        if let (Some(l), true) = (self.layout, self.fat_changed) {
            let eff = l.eff_size().min(self.fat.len());
            for k in 0..u64::from(l.fats) {
                writes.push((l.fat_start + k * l.fat_size, self.fat[..eff].to_vec()));
            }
        }
        for (offset, ent) in &self.entries {
            writes.push((*offset, ent.to_vec()));
        }
        writes
    }
}

/// The owner of clusters of lost chains in `fsck.fat -a` mode.
const ORPHAN: u32 = u32::MAX;

/// `strncmp(a, b, 11) == 0`: equal up to the first NUL.
fn c_name_eq(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return false;
        }
        if *x == 0 {
            return true;
        }
    }
    true
}

fn root_ent() -> [u8; 32] {
    let mut ent = [0u8; 32];
    ent[..11].fill(b' ');
    ent[OFF_ATTR] = ATTR_DIR;
    ent
}

/// dosfstools' label validation bits: 0x01 lower case, 0x02 control byte
/// (bytes from 0x80 count: its `char` is signed), 0x04 forbidden
/// character, 0x08 all spaces, 0x10 leading space.
fn validate_label(label: &[u8; 11]) -> u8 {
    let mut ret = 0;
    if label.iter().any(|b| b.is_ascii_lowercase()) {
        ret |= 0x01;
    }
    for &c in label {
        if !(0x20..0x80).contains(&c) {
            ret |= 0x02;
        }
        if c == 0x22
            || (0x2A..=0x2C).contains(&c)
            || c == 0x2E
            || c == 0x2F
            || (0x3A..=0x3F).contains(&c)
            || (0x5B..=0x5D).contains(&c)
            || c == 0x7C
        {
            ret |= 0x04;
        }
    }
    if label == b"           " {
        ret |= 0x08;
    }
    if label[0] == b' ' {
        ret |= 0x10;
    }
    ret
}

const _: () = assert!(ENTRY_BYTES == 32);
