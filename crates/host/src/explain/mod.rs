//! `explain`: the boot of a customer's disk told as a support engineer
//! needs it, each point with the rule that decides it.
//!
//! ```text
//!   the disk (never written: every boot below runs on an O(1) fork)
//!     ├─ partition table: primary GPT (the loader) vs backup (diagnostic tools)
//!     ├─ banks in scan order: UUID, boot.cfg as parsed (and the lines ignored),
//!     │  the bootstate byte on disk, modules with 8.3 names, FAT health
//!     ├─ next boot          boot::boot on fork A
//!     ├─ the boot after     boot::boot again on fork A (the trial not confirmed)
//!     ├─ Shift+R now        boot::boot with -r on fork B
//!     ├─ restore            the booted bank's state.tgz as the host reads it
//!     └─ risks ahead        staged/unconfirmed upgrades, space, FAT damage, rollback depth
//! ```
//!
//! It lives in the host crate because two of its answers are the running
//! host's: what `/etc` is restored from and how the next upgrade's space
//! check goes. Every decision is the emulator's own (the same `boot` and
//! `plan` functions the host runs), so explain cannot drift from a run.
//! Rules are named as sections of docs/bootloader.md and docs/host.md.

mod text;

use serde::Serialize;
use visorsim_boot::boot::{boot, BootOptions, BootReport, Outcome, ShiftR};
use visorsim_boot::bootcfg::{locate_bootstate, safeboot_line_notes, LineNote, SafebootConfig, WriterSlot};
use visorsim_boot::safeboot::{state_name, Answer, Level, LoaderVersion};
use visorsim_disk::{BlockDevice, MemDisk};
use visorsim_image::archive::{read_state_tgz, ArchiveLimits};
use visorsim_image::inspect::{inspect, DiskReport};
use visorsim_media::fat::check::check_volume;
use visorsim_media::fatread::{esx_short_name, FatReader};
use visorsim_media::gpt::{self, Table};
use visorsim_media::vmfat;

use crate::etc::EtcTree;
use crate::plan;

/// Largest boot.cfg and state.tgz explain reads (the host's own bounds).
const MAX_BOOT_CFG: u64 = 1 << 20;
const MAX_STATE_TGZ: u64 = 64 << 20;

/// One point of the story and the rule that decides it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Point {
    /// What happens, in plain words.
    pub text: String,
    /// The rule: a section of the project's docs (`docs/bootloader.md#bootstate`).
    pub rule: &'static str,
}

fn point(text: impl Into<String>, rule: &'static str) -> Point {
    Point { text: text.into(), rule }
}

/// Rules, as anchors of the project's docs.
mod rule {
    pub const BOOT_CFG: &str = "docs/bootloader.md#bootcfg";
    pub const SCAN: &str = "docs/bootloader.md#bank-scan";
    pub const STATE: &str = "docs/bootloader.md#bootstate";
    pub const WRITER: &str = "docs/bootloader.md#the-bootstate-writer";
    pub const SELECTION: &str = "docs/bootloader.md#selection";
    pub const ROLLBACK: &str = "docs/bootloader.md#rollback";
    pub const MODULES: &str = "docs/bootloader.md#modules";
    pub const FAILURES: &str = "docs/bootloader.md#failures";
    pub const OLDER: &str = "docs/bootloader.md#older-loader";
    pub const AFTER_BOOT: &str = "docs/host.md#after-the-boot";
    pub const BACKUP: &str = "docs/host.md#backupsh";
    pub const UPGRADE: &str = "docs/host.md#upgrade";
}

/// The partition table, as the loader and as a diagnostic tool see it.
#[derive(Clone, Debug, Serialize)]
pub struct TableStory {
    /// The primary GPT: "N partitions" or why it is unusable.
    pub primary: String,
    /// The backup GPT, likewise.
    pub backup: String,
    /// What differs between the two copies.
    pub differences: Vec<String>,
    /// The points.
    pub points: Vec<Point>,
}

/// A module of a bank's boot.cfg.
#[derive(Clone, Debug, Serialize)]
pub struct ModuleStory {
    /// Name as listed.
    pub name: String,
    /// The 8.3 name the loader looks up.
    pub short_name: String,
    /// Whether the bank holds it.
    pub present: bool,
    /// "loads (gzip, N bytes)" or why mboot would stop.
    pub health: String,
}

/// One partition the loader looked at, in scan order.
#[derive(Clone, Debug, Serialize)]
pub struct BankStory {
    /// Partition number.
    pub number: u32,
    /// Why the scan skipped it, when it did.
    pub skipped: Option<String>,
    /// VMware FAT UUID (32 hex digits).
    pub uuid: Option<String>,
    /// The bootstate byte the writer would patch, as on disk (`'1'`), or
    /// why there is none.
    pub bootstate_on_disk: Option<String>,
    /// That byte itself (the digit the writer patches, or the non-digit
    /// that stops it), when boot.cfg has a bootstate line in its first 512
    /// bytes: what a scenario's `bootstate_chars` compares.
    pub bootstate_byte: Option<char>,
    /// bootstate as safeboot parsed it.
    pub bootstate: Option<i32>,
    /// State after the next boot's scan.
    pub state_after: Option<i32>,
    /// `updated`.
    pub updated: Option<u32>,
    /// `build`.
    pub build: Option<String>,
    /// Whether the next boot may select it.
    pub bootable: bool,
    /// boot.cfg lines the loader ignores or reads other than written.
    pub ignored_lines: Vec<LineNote>,
    /// Modules, kernel first.
    pub modules: Vec<ModuleStory>,
    /// FAT health, as `fsck.fat -n` would report it.
    pub fat: Option<String>,
    /// The points.
    pub points: Vec<Point>,
}

/// One boot, as the emulated loader runs it.
#[derive(Clone, Debug, Serialize)]
pub struct BootStory {
    /// "boots BANK6 (build ...)", "No hypervisor found", ...
    pub outcome: String,
    /// The same, typed: the loader's [`Outcome`] (its `outcome` field
    /// names it: `booted`, `load_failed`...).
    pub ended: Outcome,
    /// The bank chainloaded.
    pub bank: Option<u32>,
    /// Its build.
    pub build: Option<String>,
    /// Whether control reaches the kernel.
    pub booted: bool,
    /// Bootstate bytes written on disk, as "BANK6: 1 -> 2".
    pub writes: Vec<String>,
    /// The loader's error and warning lines.
    pub log: Vec<String>,
    /// The points.
    pub points: Vec<Point>,
}

/// What the host would restore after the next boot.
#[derive(Clone, Debug, Serialize)]
pub struct RestoreStory {
    /// The bank whose state.tgz is read.
    pub bank: u32,
    /// Whether state.tgz is usable.
    pub usable: bool,
    /// The host name it holds.
    pub hostname: Option<String>,
    /// The backup counter it holds.
    pub backup_counter: Option<u64>,
    /// The saved files (what differs from a fresh install).
    pub files: Vec<String>,
    /// The points.
    pub points: Vec<Point>,
}

/// Everything explain found.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    /// The loader the story is told for.
    pub loader: LoaderVersion,
    /// Device size in bytes.
    pub size: u64,
    /// Logical sector size.
    pub sector_size: u32,
    /// The partition table.
    pub partition_table: TableStory,
    /// The partitions the loader looked at, in scan order.
    pub banks: Vec<BankStory>,
    /// The next boot.
    pub next_boot: BootStory,
    /// The boot after that, if the next one is not confirmed by the host.
    pub boot_after: BootStory,
    /// What Shift+R would do now.
    pub shift_r: BootStory,
    /// What the host would restore (when the next boot reaches the kernel).
    pub restore: Option<RestoreStory>,
    /// Risks ahead.
    pub risks: Vec<Point>,
}

impl Explanation {
    /// The story as text, for a terminal.
    pub fn render(&self) -> String {
        text::render(self)
    }
}

/// Explains the boot of `disk` with `loader`. Never writes `disk`; never
/// panics on any content.
pub fn explain(disk: &MemDisk, loader: LoaderVersion) -> Explanation {
    let mut probe = disk.fork();
    let report = inspect(&mut probe);
    let gpt = gpt::read_gpt(&mut probe);
    let partition_table = table_story(&gpt);

    let options = BootOptions { loader, ..Default::default() };
    let mut after = disk.fork();
    let next = boot(&mut after, &options, None);
    let again = boot(&mut after, &options, None);
    let mut shifted = disk.fork();
    let shift = boot(&mut shifted, &BootOptions { shift_r: ShiftR::AtSafeboot(Answer::Yes), ..options.clone() }, None);

    let banks = bank_stories(&mut probe, &report, &next, loader);
    let next_boot = boot_story(&next, None);
    let boot_after = boot_story(&again, Some(&next));
    let shift_r = shift_story(&shift, &next);
    let restore = next.selected.filter(|_| next.outcome == Outcome::Booted).map(|n| restore_story(&mut probe, n));
    let risks = risks(&mut probe, &report, &banks, &next, &gpt);
    Explanation {
        loader,
        size: disk.size_bytes(),
        sector_size: disk.sector_size().bytes(),
        partition_table,
        banks,
        next_boot,
        boot_after,
        shift_r,
        restore,
        risks,
    }
}

fn describe_table(t: &Result<Table, gpt::GptError>) -> String {
    match t {
        Ok(t) => format!("sound, {} partitions (header at LBA {})", t.entries.len(), t.header_lba),
        Err(e) => format!("unusable: {e}"),
    }
}

fn table_story(gpt: &gpt::GptReport) -> TableStory {
    let mut points = Vec::new();
    let mut differences = Vec::new();
    match (&gpt.primary, &gpt.backup) {
        (Ok(p), Ok(b)) => {
            for e in &p.entries {
                match b.entries.iter().find(|x| x.number == e.number) {
                    None => differences.push(format!("partition {} is only in the primary", e.number)),
                    Some(x) if x != e => differences.push(format!(
                        "partition {}: primary {}–{} type {}, backup {}–{} type {}",
                        e.number,
                        e.first_lba,
                        e.last_lba,
                        gpt::type_alias(&e.type_guid),
                        x.first_lba,
                        x.last_lba,
                        gpt::type_alias(&x.type_guid)
                    )),
                    Some(_) => {}
                }
            }
            for x in &b.entries {
                if !p.entries.iter().any(|e| e.number == x.number) {
                    differences.push(format!("partition {} is only in the backup", x.number));
                }
            }
            if differences.is_empty() {
                points.push(point(
                    "The loader reads the primary GPT only; it agrees with the backup that diagnostic tools may use.",
                    rule::SCAN,
                ));
            } else {
                points.push(point(
                    format!(
                        "The loader reads the primary GPT only, and it differs from the backup that diagnostic tools show ({} difference{}): trust what the loader sees.",
                        differences.len(),
                        if differences.len() == 1 { "" } else { "s" }
                    ),
                    rule::SCAN,
                ));
            }
        }
        (Err(e), Ok(b)) => {
            differences.push(format!("the primary is unusable ({e}); the backup lists {} partitions", b.entries.len()));
            points.push(point(
                format!(
                    "The primary GPT is unusable, so the loader finds no partition at all and reports \"No hypervisor found.\", although the backup GPT (what gdisk or inspect show) still lists {} partitions. Repairing the primary from the backup (sgdisk -e or gdisk's recovery) makes the banks visible again.",
                    b.entries.len()
                ),
                rule::SCAN,
            ));
        }
        (Ok(_), Err(e)) => {
            differences.push(format!("the backup is unusable ({e})"));
            points.push(point(
                "The backup GPT is unusable; the loader never reads it, so the boot is unaffected, but diagnostic tools will complain.",
                rule::SCAN,
            ));
        }
        (Err(_), Err(_)) => points.push(point(
            "Neither GPT copy is usable: the loader sees no partition (unless an MBR partition table serves).",
            rule::SCAN,
        )),
    }
    TableStory { primary: describe_table(&gpt.primary), backup: describe_table(&gpt.backup), differences, points }
}

/// boot.cfg bytes of the FAT volume at `first_lba`, by the loader's 8.3 lookup.
fn read_boot_cfg(dev: &mut MemDisk, first_lba: u64, sectors: u64) -> Option<Vec<u8>> {
    let reader = FatReader::open(dev, first_lba, sectors).ok()?;
    let file = reader.find_short(dev, &esx_short_name(b"/boot.cfg")).ok()??;
    reader.read(dev, &file, MAX_BOOT_CFG).ok()
}

fn bank_stories(dev: &mut MemDisk, report: &DiskReport, next: &BootReport, loader: LoaderVersion) -> Vec<BankStory> {
    let Some(pass) = next.passes.first() else { return Vec::new() };
    let primary = gpt::read_primary(dev).ok();
    let mut stories = Vec::new();
    for scan in &pass.partitions {
        let n = scan.number;
        let entry = primary.as_ref().and_then(|t| t.entries.iter().find(|e| e.number == n)).cloned();
        let bank = pass.decision.banks.iter().find(|b| b.number == n);
        let skipped = pass.decision.skipped.iter().find(|(m, _)| *m == n).map(|(_, why)| why.clone());
        let mut story = BankStory {
            number: n,
            skipped: skipped.clone().or_else(|| (bank.is_none()).then(|| scan.result.clone())),
            uuid: bank.map(|b| b.uuid.to_hex()),
            bootstate_on_disk: None,
            bootstate_byte: None,
            bootstate: bank.map(|b| b.state_before),
            state_after: bank.map(|b| b.state_after),
            updated: bank.map(|b| b.updated),
            build: bank.and_then(|b| b.build.clone()),
            bootable: bank.is_some_and(|b| b.bootable),
            ignored_lines: Vec::new(),
            modules: Vec::new(),
            fat: None,
            points: Vec::new(),
        };
        if let Some(e) = &entry {
            let sectors = e.last_lba.saturating_sub(e.first_lba) + 1;
            if story.uuid.is_none() {
                story.uuid = vmfat::read_uuid(dev, e.first_lba).ok().flatten().map(|u| u.to_hex());
            }
            if let Some(text) = read_boot_cfg(dev, e.first_lba, sectors) {
                story.ignored_lines = safeboot_line_notes(&text, loader.checks_partition_type());
                story.bootstate_byte = match locate_bootstate(&text) {
                    WriterSlot::At { digit, .. } => Some(char::from(digit)),
                    WriterSlot::BadDigit { byte, .. } => Some(char::from(byte)),
                    WriterSlot::NotFound => None,
                };
                story.bootstate_on_disk = Some(match locate_bootstate(&text) {
                    WriterSlot::At { offset, .. } => format!("'{}' at byte {offset}", char::from(text[offset])),
                    WriterSlot::NotFound => "no bootstate line in the first 512 bytes".into(),
                    WriterSlot::BadDigit { .. } => "a bootstate line whose value is not a digit 0–3".into(),
                });
                explain_state_text(&mut story, &text);
            }
            if story.uuid.is_some() {
                let check = check_volume(dev, e.first_lba, sectors);
                story.fat = Some(check.summary());
            }
        }
        if let Some(fat) = report.partitions.iter().find(|p| p.number == n).and_then(|p| p.fat.as_ref()) {
            for m in &fat.modules {
                let health = match &m.check {
                    None => "missing: mboot stops with a fatal error when it gets here".to_owned(),
                    Some(c) if c.is_sound() => format!("loads ({} bytes on disk)", c.file_size),
                    Some(c) => match &c.outcome {
                        Err(e) => format!("does not load: {e}"),
                        Ok(_) => "loads".to_owned(),
                    },
                };
                let short = esx_short_name(format!("/{}", m.name).as_bytes());
                story.modules.push(ModuleStory {
                    name: m.name.clone(),
                    short_name: String::from_utf8_lossy(&short).trim_end().to_owned(),
                    present: m.present,
                    health,
                });
            }
        }
        bank_points(&mut story, bank, loader);
        stories.push(story);
    }
    stories
}

/// Where the bootstate byte on disk and the parsed value tell different stories.
fn explain_state_text(story: &mut BankStory, text: &[u8]) {
    let (Some(parsed), WriterSlot::At { offset, .. }) = (story.bootstate, locate_bootstate(text)) else { return };
    let byte = text[offset];
    if byte.is_ascii_digit() && i32::from(byte - b'0') != parsed && (0..=9).contains(&parsed) {
        story.points.push(point(
            format!(
                "The bootstate the writer patches reads '{}' on disk, but the parser takes {parsed}: the two look at different lines (a line the parser ignores, or a repeated key).",
                char::from(byte)
            ),
            rule::WRITER,
        ));
    }
}

fn bank_points(story: &mut BankStory, bank: Option<&visorsim_boot::safeboot::BankState>, loader: LoaderVersion) {
    let n = story.number;
    if let Some(why) = &story.skipped {
        // Only partitions that look like banks (the banks' numbers, or the
        // VMware magic) get a point; the others are listed in one line.
        if story.uuid.is_none() && !matches!(n, 5 | 6) {
            return;
        }
        let rule = if loader == LoaderVersion::V67u1 { rule::OLDER } else { rule::SCAN };
        story.points.push(point(format!("BANK{n} is not a bank for the loader: {why}."), rule));
        return;
    }
    if !story.ignored_lines.is_empty() {
        story.points.push(point(
            format!(
                "{} line{} of BANK{n}'s boot.cfg {} not read as written (listed above).",
                story.ignored_lines.len(),
                if story.ignored_lines.len() == 1 { "" } else { "s" },
                if story.ignored_lines.len() == 1 { "is" } else { "are" }
            ),
            rule::BOOT_CFG,
        ));
    }
    let Some(b) = bank else { return };
    if !b.ok {
        story.points.push(point(
            format!(
                "BANK{n} is never bootable: it needs a non-zero updated and a build (updated={}, build={}).",
                b.updated,
                b.build.as_deref().unwrap_or("unset")
            ),
            rule::STATE,
        ));
    }
    let change = match (b.state_before, b.state_after) {
        (1, 2) => format!("BANK{n} is UPGRADING: the next boot writes DIRTY (2) and boots it as a trial."),
        (2, 3) => format!(
            "BANK{n} is DIRTY: its trial boot was never confirmed, so the next boot writes INVALID (3) and it is out."
        ),
        (0, 0) => format!("BANK{n} is VALID and stays so."),
        (3, 3) => format!("BANK{n} is INVALID and stays so."),
        (before, 3) if b.quickboot => {
            format!("BANK{n} has quickboot set: it becomes INVALID (from {}).", state_name(before))
        }
        (before, after) => format!("BANK{n}: bootstate {} becomes {}.", state_name(before), state_name(after)),
    };
    story.points.push(point(change, rule::STATE));
    for m in &story.modules {
        if !m.present {
            story.points.push(point(
                format!("BANK{n} lists {} (8.3 name {}) but does not hold it.", m.name, m.short_name),
                rule::MODULES,
            ));
        }
    }
}

fn write_text(w: &visorsim_boot::safeboot::StateWrite, before: Option<i32>) -> String {
    if w.reason == visorsim_boot::safeboot::WriteReason::Rollback {
        return format!("BANK{}: -> {} ({}) by the rollback", w.number, state_name(i32::from(w.state)), w.state);
    }
    match before {
        Some(b) => format!("BANK{}: {} -> {} ({})", w.number, state_name(b), state_name(i32::from(w.state)), w.state),
        None => format!("BANK{}: -> {}", w.number, state_name(i32::from(w.state))),
    }
}

fn boot_story(report: &BootReport, previous: Option<&BootReport>) -> BootStory {
    let mut points = Vec::new();
    let last = report.passes.last();
    let writes: Vec<String> = report
        .passes
        .iter()
        .flat_map(|p| {
            p.decision.writes.iter().map(|w| {
                let before = p.decision.banks.iter().find(|b| b.number == w.number).map(|b| b.state_before);
                write_text(w, before)
            })
        })
        .collect();
    let log: Vec<String> = report
        .log
        .iter()
        .filter(|l| matches!(l.level, Level::Error | Level::Warning))
        .map(|l| l.text.clone())
        .collect();
    let outcome = match &report.outcome {
        Outcome::Booted => {
            format!("boots BANK{} (build {})", report.selected.unwrap_or(0), report.build.as_deref().unwrap_or("?"))
        }
        Outcome::NoHypervisor => "No hypervisor found: nothing boots".to_owned(),
        Outcome::ChainloadFailed => format!(
            "selects BANK{} but cannot chainload it (\"ESX version is unknown.\")",
            report.selected.unwrap_or(0)
        ),
        Outcome::LoadFailed { status, module } => format!(
            "selects BANK{} and stops with a fatal error{}: {status}",
            report.selected.unwrap_or(0),
            module.as_ref().map(|m| format!(" loading {m}")).unwrap_or_default()
        ),
        Outcome::LoaderMissing { reason } => format!("the firmware cannot start the loader: {reason}"),
    };
    if let Some(pass) = last {
        if let Some(n) = report.selected {
            let bootable: Vec<_> = pass.decision.banks.iter().filter(|b| b.bootable).collect();
            let chosen = pass.decision.banks.iter().find(|b| b.number == n);
            if let Some(c) = chosen {
                let others: Vec<String> = bootable
                    .iter()
                    .filter(|b| b.number != n)
                    .map(|b| format!("BANK{} updated={}", b.number, b.updated))
                    .collect();
                let why = if others.is_empty() {
                    format!("BANK{n} is the only bootable bank")
                } else {
                    format!(
                        "BANK{n} has updated={}, the highest among the bootable banks (others: {}; ties go to the lower partition)",
                        c.updated,
                        others.join(", ")
                    )
                };
                points.push(point(format!("{why}."), rule::SELECTION));
                if c.state_after == 2 {
                    points.push(point(
                        format!("This is BANK{n}'s trial boot: the host confirms it (bootstate back to 0) only at the end of its boot."),
                        rule::AFTER_BOOT,
                    ));
                }
            }
        } else if report.outcome == Outcome::NoHypervisor {
            points.push(point(
                "No scanned bank is bootable, so the loader stops: \"No hypervisor found.\"",
                rule::SELECTION,
            ));
        }
    }
    if let Outcome::LoaderMissing { .. } = &report.outcome {
        points.push(point(
            "The system partition is shared by both banks: while its loader files are broken no bank boots, and Shift+R cannot help.",
            rule::SCAN,
        ));
    }
    if let Outcome::LoadFailed { .. } = &report.outcome {
        points.push(point(
            "mboot never tries the other bank in the same boot; recovery, if any, comes at the next boot through the bootstate, or by Shift+R.",
            rule::FAILURES,
        ));
    }
    if let Some(prev) = previous {
        let trial = prev
            .passes
            .last()
            .and_then(|p| p.decision.banks.iter().find(|b| Some(b.number) == prev.selected))
            .is_some_and(|b| b.state_after == 2);
        if trial {
            points.insert(
                0,
                point(
                    "If the host does not confirm the trial boot (a crash or power loss before the end of its boot), the next boot finds the bank DIRTY:",
                    rule::STATE,
                ),
            );
        } else {
            points.insert(0, point("Nothing the next boot writes changes the choice after it:", rule::STATE));
        }
    }
    BootStory {
        outcome,
        ended: report.outcome.clone(),
        bank: report.selected,
        build: report.build.clone(),
        booted: report.outcome == Outcome::Booted,
        writes,
        log,
        points,
    }
}

fn shift_story(report: &BootReport, normal: &BootReport) -> BootStory {
    let mut story = boot_story(report, None);
    let refused = report.log.iter().any(|l| l.text == "No alternate hypervisor to roll back to.");
    let failed = report.log.iter().any(|l| l.text == "System has failed to roll back.");
    story.points.insert(
        0,
        if refused {
            point(
                "Shift+R is refused: there is no second bootable bank to roll back to, and the default boots.",
                rule::ROLLBACK,
            )
        } else if failed {
            point(
                "Shift+R fails: the default bank's bootstate cannot be written in place, so the default boots.",
                rule::ROLLBACK,
            )
        } else if report.selected != normal.selected {
            point(
                format!(
                    "Shift+R writes INVALID into BANK{} permanently and boots the other bank instead.",
                    normal.selected.unwrap_or(0)
                ),
                rule::ROLLBACK,
            )
        } else {
            point("Shift+R changes nothing here.", rule::ROLLBACK)
        },
    );
    story
}

fn restore_story(dev: &mut MemDisk, bank: u32) -> RestoreStory {
    let location = gpt::read_primary(dev)
        .ok()
        .and_then(|t| t.entries.iter().find(|e| e.number == bank).cloned())
        .map(|e| crate::bank::BankLocation::fat(bank, e.first_lba, e.last_lba.saturating_sub(e.first_lba) + 1));
    let read = location.ok_or_else(|| "the bank is not in the primary GPT".to_owned()).and_then(|loc| {
        let bytes =
            crate::bank::Bank::read(&loc, dev, "state.tgz", MAX_STATE_TGZ).map_err(|e| format!("state.tgz: {e}"))?;
        read_state_tgz(&bytes, &ArchiveLimits::default()).map_err(|e| format!("state.tgz: {e}"))
    });
    let fallback = "When state.tgz is missing or unreadable the host boots with a default /etc (host name localhost, no saved settings) and raises an alert.";
    match read {
        Ok(files) => {
            let etc = EtcTree::from_files(files);
            let hostname = etc.hostname();
            let backup_counter = etc.backup_counter();
            let files: Vec<String> = etc.saved_files().into_iter().map(|f| f.path).collect();
            let points = vec![
                point(
                    format!(
                        "The host restores /etc from BANK{bank}'s state.tgz: host name {}, backup counter {}, {} saved file{}.",
                        hostname.as_deref().unwrap_or("(none)"),
                        backup_counter.map_or("(none)".to_owned(), |c| c.to_string()),
                        files.len(),
                        if files.len() == 1 { "" } else { "s" }
                    ),
                    rule::AFTER_BOOT,
                ),
                point(fallback, rule::AFTER_BOOT),
            ];
            RestoreStory { bank, usable: true, hostname, backup_counter, files, points }
        }
        Err(why) => RestoreStory {
            bank,
            usable: false,
            hostname: None,
            backup_counter: None,
            files: Vec::new(),
            points: vec![point(
                format!("BANK{bank}'s configuration cannot be restored ({why}). {fallback}"),
                rule::AFTER_BOOT,
            )],
        },
    }
}

fn risks(
    dev: &mut MemDisk,
    report: &DiskReport,
    banks: &[BankStory],
    next: &BootReport,
    gpt: &gpt::GptReport,
) -> Vec<Point> {
    let mut risks = Vec::new();
    if gpt.primary.is_err() && gpt.backup.is_ok() {
        risks.push(point("The primary GPT is damaged: no bank boots until it is rebuilt from the backup.", rule::SCAN));
    }
    let parsed = |n: u32| -> Option<SafebootConfig> {
        let b = banks.iter().find(|b| b.number == n)?;
        Some(SafebootConfig { build: b.build.clone(), updated: b.updated?, bootstate: b.bootstate?, quickboot: false })
    };
    for b in banks {
        match b.bootstate {
            Some(2) => risks.push(point(
                format!("BANK{} holds an unconfirmed trial (DIRTY): the next boot invalidates it and falls back.", b.number),
                rule::STATE,
            )),
            Some(1) => risks.push(point(
                format!(
                    "An upgrade to build {} is staged in BANK{}: the next boot is its trial, and it stays only if that boot completes.",
                    b.build.as_deref().unwrap_or("?"),
                    b.number
                ),
                rule::UPGRADE,
            )),
            _ => {}
        }
    }
    let Some(selected) = next.selected else { return risks };
    let booted_ok = next.outcome == Outcome::Booted;
    let selected_valid = next
        .passes
        .last()
        .and_then(|p| p.decision.banks.iter().find(|b| b.number == selected))
        .is_some_and(|b| b.state_after == 0);
    if let (Outcome::LoadFailed { module, .. }, true) = (&next.outcome, selected_valid) {
        risks.push(point(
            format!(
                "Every boot of BANK{selected} fails{} while it stays VALID: only Shift+R (or fixing the bank) gets past it.",
                module.as_ref().map(|m| format!(" at {m}")).unwrap_or_default()
            ),
            rule::FAILURES,
        ));
    }
    let alt = banks.iter().find(|b| b.number != selected && b.skipped.is_none() && matches!(b.number, 5 | 6));
    if let Some(alt) = alt {
        if booted_ok && plan::upgrade_staged(parsed(selected).as_ref(), parsed(alt.number).as_ref()) {
            risks.push(point(
                format!("BANK{} has a higher updated than the booted bank and bootstate below 2: the shutdown backup also writes state.tgz there.", alt.number),
                rule::BACKUP,
            ));
        }
        if alt.bootable || alt.bootstate == Some(0) {
            risks.push(point(
                format!(
                    "One level of rollback only: BANK{} (build {}) is the fallback until the next upgrade overwrites it.",
                    alt.number,
                    alt.build.as_deref().unwrap_or("?")
                ),
                rule::UPGRADE,
            ));
        }
        if let Some(r) = space_risk(dev, report, selected, alt.number) {
            risks.push(r);
        }
    }
    if let Some(b) = banks.iter().find(|b| b.number == selected) {
        if let Some(fat) = &b.fat {
            if fat != "clean" && !fat.contains("warnings only") {
                risks.push(point(
                    format!("BANK{selected}'s FAT is damaged ({fat}): the next backup.sh writes state.tgz into it and can turn the damage into a lost configuration."),
                    rule::BACKUP,
                ));
            }
        }
    }
    risks
}

/// Whether an upgrade the size of the booted bank's image fits the alt bank.
fn space_risk(dev: &mut MemDisk, report: &DiskReport, booted: u32, alt: u32) -> Option<Point> {
    let files = |n: u32| report.partitions.iter().find(|p| p.number == n).and_then(|p| p.fat.as_ref());
    let (boot_fat, alt_fat) = (files(booted)?, files(alt)?);
    let cluster = u64::from(alt_fat.cluster_bytes.max(1));
    let capacity = u64::from(alt_fat.clusters) * cluster;
    let image = boot_fat.files.iter().filter(|f| f.name != "state.tgz").map(|f| f.size);
    let needed = plan::space_needed(image, cluster);
    let _ = dev;
    let cap = crate::bank::Capacity { bytes: capacity, cluster };
    match plan::fits(needed, cap) {
        Ok(()) => None,
        Err(too_large) => Some(point(
            format!(
                "The next upgrade (an image about the size of the booted one) does not fit BANK{alt}: \"{too_large}\""
            ),
            rule::UPGRADE,
        )),
    }
}
