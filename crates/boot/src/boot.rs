//! A whole boot, as the real loader chain does it: the firmware starts the
//! loader from the system partition ([`crate::firmware`]; without it the
//! boot ends in [`Outcome::LoaderMissing`]), safeboot scans the banks
//! (writing bootstate digits in place), picks one and chainloads mboot,
//! which reads boot.cfg, offers the countdown (where Shift+R sends it back
//! to safeboot for a second scan) and loads the kernel and modules.
//!
//! ```text
//!   scan_volumes ─► probe each partition ─► safeboot::decide ─► write digits
//!        ▲                                        │ chainload BANKn
//!        └──── second pass (Shift+R in mboot) ◄── mboot: boot.cfg, countdown
//!                                                 │
//!                                                 ▼ load modules (cache) ─► report
//! ```
//!
//! The I/O here is thin: it gathers [`PartitionFacts`], applies the writes
//! the decision asks for the way `file_overwrite` does (one sector: the
//! first of boot.cfg's first cluster), and loads modules. A warm boot (the
//! same module bytes, e.g. a copy-on-write fork of a disk booted before)
//! takes verified module results from a [`ModuleCache`] without reading or
//! inflating them again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use visorsim_disk::{BlockDevice, ContentToken, DiskErrorKind};
use visorsim_media::fatread::{esx_short_name, FatFile, FatReader};
use visorsim_media::vmfat::{self, VmfatUuid};

use crate::bootcfg::MbootConfig;
use crate::firmware;
use crate::load::{charge, load_modules, md5_hex, Charge, LoadError, LoadOptions, LoadedModule};
use crate::mboot::{self, AfterFailure, ModuleSpec};
use crate::reason;
use crate::safeboot::{
    self, Answer, Decision, Level, LoaderVersion, LogLine, PartitionFacts, Probe, SafebootOptions, StateWrite, Verdict,
};
use crate::status::{self, EsxStatus};
use crate::volume::{scan_volumes, PartKind, Volume, VolumeTable};

/// Largest boot.cfg read (the real loader reads any size; this bounds a
/// hostile one). A 10 MB boot.cfg is still read and parsed.
pub const MAX_BOOT_CFG: u64 = 64 << 20;

/// When Shift+R (or `-r`) is pressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShiftR {
    /// No rollback request.
    #[default]
    None,
    /// safeboot started with `-r`: one scan, with the rollback.
    AtSafeboot(Answer),
    /// Shift+R during mboot's countdown: back to safeboot for a second scan
    /// after the first scan's writes are on disk.
    InMboot(Answer),
}

/// A monotonic clock: time since some fixed start. Injected (the library
/// never reads the wall clock itself), so a boot without one is a pure
/// function of the disk and the options.
pub type MonotonicClock = fn() -> Duration;

/// How to boot.
#[derive(Clone, Debug, Default)]
pub struct BootOptions {
    /// Rollback request.
    pub shift_r: ShiftR,
    /// safeboot's `-f`.
    pub fake_write_error: bool,
    /// Which esx-boot release decides (the current one by default).
    pub loader: LoaderVersion,
    /// Module loading.
    pub load: LoadOptions,
    /// Read before and after the module load to fill
    /// [`BootReport::load_micros`]; `None` (the default) leaves it `None`.
    pub clock: Option<MonotonicClock>,
}

/// How the boot ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// The kernel and every module loaded: control passes to the kernel.
    Booted,
    /// "No hypervisor found."
    NoHypervisor,
    /// The selected bank's build does not start with a digit.
    ChainloadFailed,
    /// mboot stopped with "Fatal error: `<code> (<text>)`".
    LoadFailed {
        /// The status.
        status: EsxStatus,
        /// The module, when a module failed.
        module: Option<String>,
    },
    /// The firmware could not start the loader: the system partition is
    /// missing or unreadable, or lacks the loader ([`crate::firmware`]). No
    /// bank was scanned, and Shift+R could not help: the loader that would
    /// see it never ran.
    LoaderMissing {
        /// Why, naming the partition and the file.
        reason: String,
    },
}

/// A partition as the scan saw it.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionScan {
    /// Partition number.
    pub number: u32,
    /// Type class.
    pub kind: PartKind,
    /// Its first LBA, as the partition table gives it.
    pub first_lba: u64,
    /// What the scan made of it ("bank", or why it was skipped).
    pub result: String,
}

/// One safeboot pass.
#[derive(Clone, Debug, Serialize)]
pub struct Pass {
    /// The partitions probed, in order.
    pub partitions: Vec<PartitionScan>,
    /// The decision.
    pub decision: Decision,
}

/// A module as loaded.
#[derive(Clone, Debug, Serialize)]
pub struct ModuleLoad {
    /// Name in boot.cfg.
    pub name: String,
    /// Path loaded.
    pub path: String,
    /// File size.
    pub compressed_size: u64,
    /// Loaded size.
    pub size: u64,
    /// gzip trailer CRC32 (none for an uncompressed module).
    pub crc32: Option<u32>,
    /// MD5 of the file (`None` when [`LoadOptions::md5`] is off: MD5s are
    /// computed only where a report shows them).
    pub md5_compressed: Option<String>,
    /// MD5 of the loaded bytes (`None` when not computed).
    pub md5: Option<String>,
    /// Whether the verified result came from the module cache.
    pub cached: bool,
}

/// Everything a boot did and saw.
#[derive(Clone, Debug, Serialize)]
pub struct BootReport {
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// "gpt" or "mbr", and why no partition was found if so.
    pub partition_scheme: &'static str,
    /// Why the partition table gave nothing, if it did.
    pub partition_error: Option<String>,
    /// When it did not boot: why, naming where (the table and its field,
    /// the partition and its LBA, the bank and the file), in visorsim's
    /// words beside the loader's own lines ([`crate::reason`]).
    pub reason: Option<String>,
    /// One or two safeboot passes.
    pub passes: Vec<Pass>,
    /// The bank chainloaded, if any.
    pub selected: Option<u32>,
    /// Its build.
    pub build: Option<String>,
    /// Its VMware FAT UUID.
    pub boot_uuid: Option<VmfatUuid>,
    /// The title mboot shows.
    pub title: Option<String>,
    /// The kernel command line.
    pub kernel_cmdline: Option<String>,
    /// Every module loaded, kernel first (up to the failure).
    pub modules: Vec<ModuleLoad>,
    /// Wall time of loading the modules not found in the cache, by
    /// [`BootOptions::clock`] (`None` without one). They load in parallel
    /// (largest first), so there is no meaningful time per module.
    pub load_micros: Option<u64>,
    /// What mboot does after a fatal error.
    pub after_failure: Option<AfterFailure>,
    /// The whole log, in order.
    pub log: Vec<LogLine>,
}

/// Bank details the I/O side keeps for writing.
struct BankIo {
    number: u32,
    reader: FatReader,
    boot_cfg: FatFile,
}

/// Probes every partition and returns the facts plus what is needed to write.
fn probe<D: BlockDevice>(
    dev: &mut D,
    volumes: &[Volume],
    max: u32,
    loader: LoaderVersion,
) -> (Vec<PartitionFacts>, Vec<PartitionScan>, Vec<BankIo>) {
    let mut facts = Vec::new();
    let mut scans = Vec::new();
    let mut banks = Vec::new();
    for number in 1..=max {
        let Some(v) = volumes.iter().find(|v| v.number == number) else {
            facts.push(PartitionFacts { number, probe: Probe::NotFound });
            continue;
        };
        if !loader.scans_partition(number) {
            continue;
        }
        let (probe, result) = probe_volume(dev, v, &mut banks, loader);
        if v.kind != PartKind::Empty {
            scans.push(PartitionScan { number, kind: v.kind, first_lba: v.first_lba, result });
        }
        facts.push(PartitionFacts { number, probe });
    }
    (facts, scans, banks)
}

fn probe_volume<D: BlockDevice>(
    dev: &mut D,
    v: &Volume,
    banks: &mut Vec<BankIo>,
    loader: LoaderVersion,
) -> (Probe, String) {
    match v.kind {
        PartKind::Empty => return (Probe::Empty, "empty".into()),
        // The 6.7u1 loader has no type check: it reads sector 1 of
        // partitions 5 and 6 whatever their type GUID.
        PartKind::Other if loader.checks_partition_type() => {
            return (Probe::WrongType, "skipped: not a FAT or EFI partition".into())
        }
        PartKind::Fat | PartKind::Efi | PartKind::Other => {}
    }
    let uuid = match vmfat::read_uuid(dev, v.first_lba) {
        Ok(Some(uuid)) => uuid,
        Ok(None) => return (Probe::NoUuid, "skipped: no bank UUID (\"VMWARE FAT16    \" not in sector 1)".into()),
        Err(e) => return (Probe::NoUuid, format!("skipped: sector 1 unreadable: {e}")),
    };
    let no_config = |reason: String| {
        (
            Probe::NoConfig { reason: reason.clone(), text: None },
            format!("skipped: no valid configuration file: {reason}"),
        )
    };
    let reader = match FatReader::open(dev, v.first_lba, v.sectors) {
        Ok(r) => r,
        Err(e) => return no_config(e.to_string()),
    };
    // esx-boot looks boot.cfg up by its 8.3 short name in the root directory.
    let file = match reader.find_short(dev, &esx_short_name(b"/boot.cfg")) {
        Ok(Some(f)) => f,
        Ok(None) => return no_config("/boot.cfg not found".into()),
        Err(e) => return no_config(e.to_string()),
    };
    let text = match reader.read(dev, &file, MAX_BOOT_CFG) {
        Ok(t) => t,
        Err(e) => return no_config(e.to_string()),
    };
    // A 0-byte boot.cfg: on UEFI (the build visorsim models) the read
    // succeeds and the bank scans as all defaults, never bootable.
    let probe = Probe::from_boot_cfg(uuid, &text);
    let result = match &probe {
        Probe::Bank { .. } => "bank".to_owned(),
        Probe::NoConfig { reason, .. } => format!("skipped: no valid configuration file: {reason}"),
        _ => unreachable!("from_boot_cfg gives Bank or NoConfig"),
    };
    if matches!(probe, Probe::Bank { .. }) {
        banks.push(BankIo { number: v.number, reader, boot_cfg: file });
    }
    (probe, result)
}

/// `file_overwrite`: reads boot.cfg's first sector (the first of its first
/// cluster), puts the digit at `offset`, writes that one sector back.
fn write_digit<D: BlockDevice>(dev: &mut D, bank: &BankIo, write: &StateWrite) -> Result<(), EsxStatus> {
    let Some(lba) = bank.reader.first_sector(&bank.boot_cfg) else {
        return Err(status::NOT_FOUND);
    };
    let mut sector = vec![0u8; dev.sector_size().len()];
    let fail = |e: visorsim_disk::DiskError| match e.kind() {
        DiskErrorKind::ReadOnly => status::WRITE_PROTECTED,
        _ => status::DEVICE_ERROR,
    };
    dev.read_sectors(lba, &mut sector).map_err(fail)?;
    sector[write.offset] = b'0' + write.state;
    dev.write_sectors(lba, &sector).map_err(fail)?;
    dev.flush().map_err(fail)
}

fn safeboot_pass<D: BlockDevice>(
    dev: &mut D,
    options: SafebootOptions,
    loader: LoaderVersion,
    log: &mut Vec<LogLine>,
) -> (Pass, Vec<BankIo>, VolumeTable) {
    let table = scan_volumes(dev);
    let (facts, partitions, banks) = probe(dev, &table.volumes, table.max_number, loader);
    let decision = safeboot::decide_with(&facts, options, loader, &mut |w| {
        let bank = banks.iter().find(|b| b.number == w.number).expect("writes name scanned banks");
        write_digit(dev, bank, w)
    });
    log.extend(decision.log.iter().cloned());
    (Pass { partitions, decision }, banks, table)
}

/// Boots `dev`. Never panics on any disk content.
pub fn boot<D: BlockDevice>(dev: &mut D, options: &BootOptions, mut cache: Option<&mut ModuleCache>) -> BootReport {
    // The firmware starts safeboot from the system partition; without the
    // loader nothing below runs.
    if let Err(reason) = firmware::check_loader(dev) {
        return loader_missing(dev, reason);
    }
    let mut log = Vec::new();
    let first = match options.shift_r {
        ShiftR::AtSafeboot(answer) => {
            SafebootOptions { rollback: Some(answer), fake_write_error: options.fake_write_error }
        }
        _ => SafebootOptions { rollback: None, fake_write_error: options.fake_write_error },
    };
    let (pass, mut banks, mut table) = safeboot_pass(dev, first, options.loader, &mut log);
    let mut report = BootReport::nothing_loaded(Outcome::NoHypervisor, table.scheme, table.error.clone());
    report.passes.push(pass);
    let mut second_pass_done = false;
    loop {
        let decision = &report.passes.last().expect("one pass").decision;
        let (bank_no, title, rollback) = match &decision.verdict {
            Verdict::NoHypervisor => {
                report.outcome = Outcome::NoHypervisor;
                let pass = report.passes.last().expect("one pass");
                report.reason = Some(reason::no_hypervisor(&table, &pass.partitions, &pass.decision.banks));
                break;
            }
            Verdict::UnknownVersion { bank } => {
                report.selected = Some(*bank);
                report.outcome = Outcome::ChainloadFailed;
                let build = decision.banks.iter().find(|b| b.number == *bank).and_then(|b| b.build.as_deref());
                report.reason = Some(reason::chainload_failed(*bank, build));
                break;
            }
            Verdict::Chainload { bank, title, rollback, .. } => (*bank, title.clone(), *rollback),
        };
        let state = decision.banks.iter().find(|b| b.number == bank_no).expect("selected bank scanned");
        report.selected = Some(bank_no);
        report.build = state.build.clone();
        report.boot_uuid = Some(state.uuid);
        let bank = banks.iter().find(|b| b.number == bank_no).expect("selected bank has I/O");
        // mboot reads boot.cfg again (with its own table) from the bank.
        let config = match read_mboot_config(dev, bank) {
            Ok(c) => c,
            Err(fatal) => {
                fail(&mut report, &mut log, fatal, (bank_no, Some("/boot.cfg")), None, None);
                break;
            }
        };
        report.title = Some(config.title.clone().unwrap_or(title));
        report.after_failure = Some(mboot::after_failure(&config));
        if let ShiftR::InMboot(answer) = options.shift_r {
            if !second_pass_done {
                second_pass_done = true;
                if config.timeout > 0 {
                    // Shift+R during "Automatic boot in N seconds": mboot
                    // returns to safeboot, which scans again with the
                    // rollback request, after pass 1's writes are on disk.
                    log.push(LogLine {
                        level: Level::Info,
                        text: "Shift+R pressed: returning to safeboot for a rollback.".into(),
                    });
                    let opts = SafebootOptions { rollback: Some(answer), fake_write_error: options.fake_write_error };
                    let (pass, new_banks, new_table) = safeboot_pass(dev, opts, options.loader, &mut log);
                    report.passes.push(pass);
                    banks = new_banks;
                    table = new_table;
                    continue;
                }
                log.push(LogLine {
                    level: Level::Info,
                    text: format!("timeout={}: no countdown is shown, so Shift+R is never seen.", config.timeout),
                });
            }
        }
        let specs = match mboot::module_specs(&config) {
            Ok(s) => s,
            Err(fatal) => {
                fail(&mut report, &mut log, fatal, (bank_no, Some("/boot.cfg")), None, Some(&config));
                break;
            }
        };
        report.kernel_cmdline = Some(mboot::kernel_cmdline(&specs[0].options, &state.uuid.to_hex(), rollback));
        let bank = banks.iter().find(|b| b.number == bank_no).expect("selected bank has I/O");
        let mut warnings = Vec::new();
        let loaded = load_all(
            dev,
            bank,
            &specs,
            &options.load,
            cache.as_deref_mut(),
            &mut report.modules,
            &mut warnings,
            (options.clock, &mut report.load_micros),
        );
        log.extend(warnings.into_iter().map(|text| LogLine { level: Level::Warning, text }));
        match loaded {
            Ok(()) => report.outcome = Outcome::Booted,
            Err((fatal, module)) => {
                let path = module.as_ref().and_then(|m| specs.iter().find(|s| &s.name == m)).map(|s| s.path.clone());
                fail(&mut report, &mut log, fatal, (bank_no, path.as_deref()), module, Some(&config))
            }
        }
        break;
    }
    report.log = log;
    report
}

/// The report of a boot whose loader never started.
fn loader_missing<D: BlockDevice>(dev: &mut D, reason: String) -> BootReport {
    let table = scan_volumes(dev);
    let line = LogLine { level: Level::Error, text: format!("The firmware could not start the loader: {reason}") };
    let why = match reason::table_reason(&table) {
        Some(table_reason) => format!("{reason}; {table_reason}"),
        None => reason.clone(),
    };
    let mut report = BootReport::nothing_loaded(Outcome::LoaderMissing { reason }, table.scheme, table.error.clone());
    report.reason = Some(why);
    report.log.push(line);
    report
}

impl BootReport {
    /// A report with `outcome` and the partition table, before any pass,
    /// bank choice or module load has filled it in.
    fn nothing_loaded(outcome: Outcome, partition_scheme: &'static str, partition_error: Option<String>) -> BootReport {
        BootReport {
            outcome,
            partition_scheme,
            partition_error,
            reason: None,
            passes: Vec::new(),
            selected: None,
            build: None,
            boot_uuid: None,
            title: None,
            kernel_cmdline: None,
            modules: Vec::new(),
            load_micros: None,
            after_failure: None,
            log: Vec::new(),
        }
    }
}

fn read_mboot_config<D: BlockDevice>(dev: &mut D, bank: &BankIo) -> Result<MbootConfig, mboot::Fatal> {
    let text = bank.reader.read(dev, &bank.boot_cfg, MAX_BOOT_CFG).map_err(|e| mboot::Fatal {
        status: status::DEVICE_ERROR,
        lines: vec![format!("Could not read /boot.cfg: {e}")],
    })?;
    MbootConfig::parse(&text).map_err(|e| mboot::Fatal { status: status::SYNTAX, lines: vec![e.to_string()] })
}

fn fail(
    report: &mut BootReport,
    log: &mut Vec<LogLine>,
    fatal: mboot::Fatal,
    (bank, path): (u32, Option<&str>),
    module: Option<String>,
    config: Option<&MbootConfig>,
) {
    let fatal_line = fatal.fatal_line();
    report.reason = Some(reason::load_failed(bank, path, &fatal_line, &fatal.lines));
    for line in fatal.lines {
        log.push(LogLine { level: Level::Error, text: line });
    }
    log.push(LogLine { level: Level::Error, text: fatal_line });
    if let Some(config) = config {
        report.after_failure = Some(mboot::after_failure(config));
    }
    report.outcome = Outcome::LoadFailed { status: fatal.status, module };
}

/// Most bytes of module files [`load_all`] holds at once: files are read
/// and loaded in batches of at most this much (a single file may be larger).
const BATCH_BYTES: u64 = 256 << 20;

/// One file of the bank's module list, loaded once however often it is listed.
struct UniqueModule {
    result: Option<Result<Arc<LoadedModule>, LoadError>>,
    charge: Option<Charge>,
    read_failure: Option<String>,
    cached: bool,
    token: Option<ModuleKey>,
}

/// Files read but not loaded yet: (index into the unique modules, path, bytes).
type Batch = Vec<(usize, String, Vec<u8>)>;

/// Reads and loads every module, kernel first; the first failure in list
/// order is the boot's failure, as in sequential mboot.
///
/// Memory stays bounded whatever boot.cfg lists: files are read and loaded
/// in batches (at most [`BATCH_BYTES`] of files held at once, never every
/// module first), a file listed again is read and loaded once and its
/// result shared, and every listing is charged against
/// [`LoadOptions::memory_budget`] in list order as mboot's allocations are.
/// mboot loads each listing into a buffer of its own, so `s.v00` listed a
/// thousand times needs a thousand times its size, and the listing that no
/// longer fits fails with `Out of resources`; nothing is read past it.
#[allow(clippy::too_many_arguments)] // the boot's I/O context, passed explicitly
fn load_all<D: BlockDevice>(
    dev: &mut D,
    bank: &BankIo,
    specs: &[ModuleSpec],
    options: &LoadOptions,
    mut cache: Option<&mut ModuleCache>,
    out: &mut Vec<ModuleLoad>,
    warnings: &mut Vec<String>,
    (clock, load_micros): (Option<MonotonicClock>, &mut Option<u64>),
) -> Result<(), (mboot::Fatal, Option<String>)> {
    let budget = options.memory_budget;
    // Locate every file first, each name looked up once: a missing one
    // stops the boot at its turn.
    let mut by_name: HashMap<[u8; 11], Option<FatFile>> = HashMap::new();
    let mut located: Vec<(&ModuleSpec, Option<FatFile>)> = Vec::new();
    for spec in specs {
        let short = esx_short_name(spec.path.as_bytes());
        let found = by_name.entry(short).or_insert_with(|| bank.reader.find_short(dev, &short).ok().flatten()).clone();
        let missing = found.is_none();
        located.push((spec, found));
        if missing {
            break;
        }
    }
    // One load per file (a directory entry's first cluster and size name
    // the same bytes), cache lookups by content, the rest in batches.
    let mut uniques: Vec<UniqueModule> = Vec::new();
    let mut unique_of: HashMap<(u32, u32), usize> = HashMap::new();
    let mut listing: Vec<usize> = Vec::with_capacity(located.len());
    let mut batch: Batch = Vec::new();
    let mut batch_bytes = 0u64;
    let mut held = 0u64;
    let mut micros: Option<u64> = None;
    for (spec, file) in &located {
        let Some(file) = file else { break };
        let u = match unique_of.get(&(file.first_cluster, file.size)) {
            Some(&u) => u,
            None => {
                let u = uniques.len();
                unique_of.insert((file.first_cluster, file.size), u);
                let token = bank.reader.runs(dev, file).ok().and_then(|runs| content_key(dev, file, &runs));
                let mut unique = UniqueModule { result: None, charge: None, read_failure: None, cached: false, token };
                if let (Some(key), Some(cache)) = (&unique.token, cache.as_deref_mut()) {
                    if let Some((hit, charge)) = cache.get(key) {
                        unique.result = Some(hit);
                        unique.charge = Some(charge);
                        unique.cached = true;
                        unique.token = None;
                    }
                }
                if unique.result.is_none() {
                    match bank.reader.read(dev, file, budget) {
                        Ok(bytes) => {
                            unique.charge = Some(charge(&bytes));
                            batch_bytes = batch_bytes.saturating_add(bytes.len() as u64);
                            batch.push((u, spec.path.clone(), bytes));
                        }
                        Err(e) => unique.read_failure = Some(e.to_string()),
                    }
                }
                uniques.push(unique);
                u
            }
        };
        listing.push(u);
        // This listing's share of the budget: past it, nothing more is read.
        let stop = match uniques[u].charge {
            Some(c) => {
                let over = c.check(budget.saturating_sub(held)).is_err();
                held = held.saturating_add(c.kept);
                over
            }
            None => true,
        };
        if stop || batch_bytes >= BATCH_BYTES {
            load_batch(&mut batch, &mut uniques, options, cache.as_deref_mut(), clock, &mut micros);
            batch_bytes = 0;
        }
        if stop {
            break;
        }
    }
    load_batch(&mut batch, &mut uniques, options, cache, clock, &mut micros);
    *load_micros = micros;
    // The listings in order, each charged as mboot charges it.
    let mut held = 0u64;
    for (i, (spec, file)) in located.iter().enumerate() {
        let name = || Some(spec.name.clone());
        let not_found = || {
            let lines = vec![format!("Could not load {}", spec.path)];
            Err((mboot::Fatal { status: status::NOT_FOUND, lines }, name()))
        };
        let (Some(file), Some(&u)) = (file, listing.get(i)) else { return not_found() };
        let unique = &uniques[u];
        if let Some(why) = &unique.read_failure {
            let lines = vec![format!("Could not load {}: {why}", spec.path)];
            return Err((mboot::Fatal { status: status::LOAD_ERROR, lines }, name()));
        }
        if let Some(c) = unique.charge {
            c.check(budget.saturating_sub(held)).map_err(|e| (mboot::Fatal::from(&e), name()))?;
            held = held.saturating_add(c.kept);
        }
        let module = match &unique.result {
            Some(Ok(m)) => Arc::clone(m),
            Some(Err(e)) => return Err((mboot::Fatal::from(e), name())),
            None => return not_found(),
        };
        if i == 0 {
            mboot::check_kernel(module.data.as_slice()).map_err(|f| (f, name()))?;
        }
        warnings.extend(module.warnings.iter().cloned());
        out.push(ModuleLoad {
            name: spec.name.clone(),
            path: spec.path.clone(),
            compressed_size: u64::from(file.size),
            size: module.size,
            crc32: module.crc32,
            md5_compressed: options.md5.then(|| md5_hex(&module.md5_compressed)),
            md5: options.md5.then(|| md5_hex(&module.md5)),
            cached: unique.cached,
        });
    }
    Ok(())
}

/// Loads the files of `batch` (in parallel, with the whole budget: each
/// listing's own share is checked by [`load_all`]), records each result
/// and caches it; the time spent is added to `micros`.
fn load_batch(
    batch: &mut Batch,
    uniques: &mut [UniqueModule],
    options: &LoadOptions,
    mut cache: Option<&mut ModuleCache>,
    clock: Option<MonotonicClock>,
    micros: &mut Option<u64>,
) {
    if batch.is_empty() {
        return;
    }
    let started = clock.map(|now| now());
    let inputs: Vec<(&str, &[u8])> = batch.iter().map(|(_, p, b)| (p.as_str(), b.as_slice())).collect();
    // Of each module only what the kernel check reads is kept (any module
    // may be the kernel of a later boot sharing the cache); the rest
    // streams through the loader, checked and hashed, never held.
    let keep = options.keep.min(mboot::KERNEL_CHECK_BYTES);
    let loaded = load_modules(&inputs, &LoadOptions { keep, ..*options });
    if let Some(spent) = clock.zip(started).map(|(now, started)| now().saturating_sub(started).as_micros() as u64) {
        *micros = Some(micros.unwrap_or(0).saturating_add(spent));
    }
    for ((u, _, _), result) in batch.iter().zip(loaded) {
        let unique = &mut uniques[*u];
        let result = result.map(Arc::new);
        if let (Some(key), Some(cache), Some(charge)) = (unique.token.take(), cache.as_deref_mut(), unique.charge) {
            cache.insert(key, result.clone(), charge);
        }
        unique.result = Some(result);
    }
    batch.clear();
}

/// A module's content identity: its size and the device's token for each
/// cluster run (only devices with tokens, such as memory disks, have one).
fn content_key<D: BlockDevice>(
    dev: &D,
    file: &FatFile,
    runs: &[visorsim_media::fatread::SectorRun],
) -> Option<ModuleKey> {
    let tokens = runs.iter().map(|r| dev.content_token(r.lba, r.sectors)).collect::<Option<Vec<_>>>()?;
    Some(ModuleKey { size: file.size, tokens })
}

/// Key of a cached module result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleKey {
    size: u32,
    tokens: Vec<ContentToken>,
}

/// Verified module results keyed by content, least recently used dropped
/// first. A hit costs a FAT chain walk and a comparison of chunk pointers:
/// no module byte is read, inflated or hashed again.
#[derive(Debug)]
pub struct ModuleCache {
    capacity: usize,
    entries: VecDeque<(ModuleKey, Result<Arc<LoadedModule>, LoadError>, Charge)>,
    hits: u64,
    misses: u64,
}

impl ModuleCache {
    /// A cache of at most `capacity` module results.
    pub fn new(capacity: usize) -> ModuleCache {
        ModuleCache { capacity, entries: VecDeque::new(), hits: 0, misses: 0 }
    }

    fn get(&mut self, key: &ModuleKey) -> Option<(Result<Arc<LoadedModule>, LoadError>, Charge)> {
        match self.entries.iter().position(|(k, _, _)| k == key) {
            Some(i) => {
                self.hits += 1;
                let entry = self.entries.remove(i).expect("index found");
                let value = (entry.1.clone(), entry.2);
                self.entries.push_front(entry);
                Some(value)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    fn insert(&mut self, key: ModuleKey, value: Result<Arc<LoadedModule>, LoadError>, charge: Charge) {
        self.entries.push_front((key, value, charge));
        self.entries.truncate(self.capacity);
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}
