//! A scenario that starts from a customer's disk image (`visorsim scenario
//! new --from IMAGE`): the disk as received, one boot, and what `explain`
//! says that boot does, as expectations a run checks.
//!
//! ```text
//!   Explanation (visorsim_host::explain) + ImageOrigin + Placement
//!     └─ scenario()  →  Scenario
//!          disk     image (a sparse copy beside the file, or the image itself), loader, layout
//!          step 1   expect: the disk as received (bank states, the bootstate
//!                   bytes, FAT health, modules boot.cfg lists but the bank lacks)
//!          step 2   boot {}
//!          step 3   expect: what explain says happens now (outcome, bank,
//!                   build, bank states and bytes after it, the host name
//!                   restored, the restore or its alert, the loader's
//!                   error and warning lines)
//! ```
//!
//! Promises:
//! - [`scenario`] and [`placement`] are pure: the same explanation, origin
//!   and placement give the same scenario; [`ImageOrigin::read`] is the one
//!   function here that reads a file (the user's, only read);
//! - every expectation is one of explain's facts, or what the host does on
//!   top of the loader by its documented rules (a trial boot is confirmed,
//!   `/etc` is restored from the booted bank's `state.tgz`); no value is
//!   taken from running the scenario;
//! - [`to_json`] writes the scenario through the model's own `Serialize`,
//!   leaves out fields that hold their defaults (null, `[]`, `{}`), and
//!   checks that the text parses back to the same scenario.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use visorsim_boot::boot::Outcome;
use visorsim_boot::safeboot::LoaderVersion;
use visorsim_disk::{BlockDevice, MemDisk};
use visorsim_host::explain::{BankStory, Explanation};
use visorsim_image::time::SimTime;
use visorsim_media::fat::FindingClass;
use visorsim_tools::ImageFormat;

use crate::input::{ImageInput, InputError};
use crate::model::{
    BankStateName, BootOutcome, BootStep, DiskLayout, DiskSpec, Expect, FileExpect, FindingName, Scenario, Step,
};

/// Files longer than this are not hashed: SHA-256 costs the file's length
/// (holes included), about 4 s for a 7.88 GiB sparse image, while
/// everything else here costs its data. The description then says how to
/// pin the file by hand.
pub const HASH_LIMIT: u64 = 1 << 30;

/// The default `--copy-threshold`: images holding more data than this are
/// referenced by path rather than copied beside the scenario (a repository
/// should not take a customer's 150 MB boot bank per test).
pub const DEFAULT_COPY_THRESHOLD: u64 = 16 << 20;

/// The user's image, as the scenario's description records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageOrigin {
    /// The file, made absolute.
    pub path: PathBuf,
    /// Its format, by magic.
    pub format: ImageFormat,
    /// The file's length in bytes.
    pub file_bytes: u64,
    /// The disk's size in bytes (the raw form's).
    pub disk_bytes: u64,
    /// Bytes of the disk that are not zero, in 4 KiB chunks: what a sparse
    /// copy holds.
    pub data_bytes: u64,
    /// The file's modification time.
    pub modified: Option<SimTime>,
    /// SHA-256 of the file's bytes (lower-case hex); `None` past [`HASH_LIMIT`].
    pub sha256: Option<String>,
}

impl ImageOrigin {
    /// The facts of `input`, whose raw form loaded as `disk`. Reads the
    /// user's file (its metadata, and its bytes for the hash when it is at
    /// most [`HASH_LIMIT`] long); writes nothing.
    pub fn read(input: &ImageInput, disk: &MemDisk) -> Result<ImageOrigin, InputError> {
        let original = input.original();
        let io_error = |source| InputError::Io { path: original.to_owned(), source };
        let path = original.canonicalize().map_err(io_error)?;
        let meta = std::fs::metadata(&path).map_err(io_error)?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| SimTime(d.as_secs()));
        let sha256 = if meta.len() <= HASH_LIMIT { Some(sha256_of(&path).map_err(io_error)?) } else { None };
        Ok(ImageOrigin {
            path,
            format: input.format(),
            file_bytes: meta.len(),
            disk_bytes: disk.size_bytes(),
            data_bytes: data_bytes(disk),
            modified,
            sha256,
        })
    }
}

/// Bytes of `disk` that a sparse copy holds (its stored, non-zero chunks).
pub fn data_bytes(disk: &MemDisk) -> u64 {
    disk.stored_chunks().map(|(_, data)| data.len() as u64).sum()
}

fn sha256_of(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// How the scenario reaches its disk (`disk.image`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// A sparse raw copy beside the scenario file, by its file name.
    Copy {
        /// The copy's file name (`name.img`).
        file_name: String,
    },
    /// The image itself: relative to the scenario's directory when it lies
    /// inside it, else absolute.
    Reference {
        /// The path as `disk.image` holds it.
        path: String,
    },
}

impl Placement {
    /// What `disk.image` holds.
    pub fn image(&self) -> &str {
        match self {
            Placement::Copy { file_name } => file_name,
            Placement::Reference { path } => path,
        }
    }
}

/// Where the scenario's disk comes from: a copy named `copy_name` in
/// `scenario_dir` when the image holds at most `threshold` bytes of data,
/// else the image itself. Both paths are absolute and canonical. An image
/// that already is the copy's path is referenced, never copied over itself.
pub fn placement(image: &Path, data_bytes: u64, threshold: u64, scenario_dir: &Path, copy_name: &str) -> Placement {
    let copy = scenario_dir.join(copy_name);
    if data_bytes <= threshold && image != copy {
        return Placement::Copy { file_name: copy_name.to_owned() };
    }
    let path = match image.strip_prefix(scenario_dir) {
        Ok(inside) => inside.display().to_string(),
        Err(_) => image.display().to_string(),
    };
    Placement::Reference { path }
}

/// The scenario: the disk of `placement` read with `story`'s loader, the
/// disk as received, one boot, and what `story` says that boot does.
pub fn scenario(story: &Explanation, origin: &ImageOrigin, placement: &Placement) -> Scenario {
    let next = &story.next_boot;
    let booted = next.ended == Outcome::Booted;
    // The banks: the partitions the loader scanned, and those it skipped
    // that carry the VMware FAT magic (a bank without a usable boot.cfg).
    let banks: Vec<&BankStory> = story.banks.iter().filter(|b| b.skipped.is_none() || b.uuid.is_some()).collect();
    let disk = DiskSpec {
        layout: layout_of(story),
        image: Some(placement.image().to_owned()),
        loader: story.loader,
        // Every other field as a file that omits it reads (DiskSpec's
        // defaults are serde's, it has no `Default`).
        ..serde_json::from_str::<DiskSpec>("{}").expect("an empty disk object parses")
    };

    // Step 1: the disk as received.
    let mut before = Expect { running: Some(false), ..Expect::default() };
    for b in &banks {
        if let Some(state) = received_state(b, story.loader) {
            before.bank_states.insert(b.number, state);
        }
        if let Some(byte) = b.bootstate_byte {
            before.bootstate_chars.insert(b.number, byte);
        }
        match b.fat.as_deref().map(fat_health) {
            Some(FatHealth::Clean) => before.fat_clean.push(b.number),
            Some(FatHealth::Findings(classes)) if !classes.is_empty() => {
                before.fat_findings.insert(b.number, classes);
            }
            _ => {}
        }
        let missing: BTreeMap<String, FileExpect> = b
            .modules
            .iter()
            .filter(|m| !m.present)
            .map(|m| (m.name.clone(), FileExpect { exists: Some(false), ..FileExpect::default() }))
            .collect();
        if !missing.is_empty() {
            before.files.insert(b.number, missing);
        }
    }

    // Banks 5 and 6 that the current loader's scan did not meet are not in
    // the primary GPT (it tries every number up to the table's last, and a
    // corrupt primary hides them all): the medium has no such partition
    // before the boot or after it. (No scan at all when the firmware could
    // not start the loader; the 6.7u1 loader lists both banks anyway.)
    let scan_ran = !matches!(next.ended, Outcome::LoaderMissing { .. });
    let absent: Vec<u32> = [5, 6]
        .into_iter()
        .filter(|n| scan_ran && story.loader == LoaderVersion::Current && !story.banks.iter().any(|b| b.number == *n))
        .collect();
    for &n in &absent {
        before.bank_states.insert(n, BankStateName::Missing);
    }

    // Step 3: what the next boot does.
    let mut after = Expect {
        running: Some(booted),
        outcome: Some(BootOutcome::of(&next.ended)),
        booted_bank: next.bank,
        booted_build: next.build.clone().filter(|_| booted),
        log_contains: next.log.clone(),
        ..Expect::default()
    };
    for b in &banks {
        let (Some(state), Some(state_after)) = (b.bootstate, b.state_after) else {
            // A skipped bank: the loader never writes it.
            if let Some(state) = received_state(b, story.loader) {
                after.bank_states.insert(b.number, state);
            }
            if let Some(byte) = b.bootstate_byte {
                after.bootstate_chars.insert(b.number, byte);
            }
            continue;
        };
        // The host confirms a trial boot at the end of its own boot
        // (jumpstart writes bootstate=0; docs/host.md, After the boot).
        let confirmed = booted && next.bank == Some(b.number) && state_after == 2;
        let end = if confirmed { 0 } else { state_after };
        after.bank_states.insert(b.number, BankStateName::of_bootstate(Some(end)));
        // The writer patches the byte only when the state changes.
        let byte = match u8::try_from(end) {
            Ok(digit @ 0..=3) if end != state || confirmed => Some(char::from(b'0' + digit)),
            _ => b.bootstate_byte,
        };
        if let Some(byte) = byte {
            after.bootstate_chars.insert(b.number, byte);
        }
        if confirmed {
            after.timeline_contains.push("jumpstart: the trial boot succeeded".to_owned());
        }
    }
    for &n in &absent {
        after.bank_states.insert(n, BankStateName::Missing);
    }
    if let (true, Some(restore)) = (booted, &story.restore) {
        if restore.usable {
            after.timeline_contains.push("/etc restored from /bootbank/state.tgz".to_owned());
            if let Some(name) = &restore.hostname {
                after.config.insert("hostname".to_owned(), name.clone());
            }
        } else {
            after.timeline_contains.push("Configuration not restored".to_owned());
        }
    }

    let mut references: Vec<String> = Vec::new();
    for p in next.points.iter().chain(story.restore.iter().flat_map(|r| &r.points)) {
        if !references.iter().any(|r| r == p.rule) {
            references.push(p.rule.to_owned());
        }
    }
    Scenario {
        description: description(story, origin, placement),
        references,
        disk,
        faults: Default::default(),
        steps: vec![Step::Expect(before), Step::Boot(BootStep::default()), Step::Expect(after)],
    }
}

/// A bank's state on the medium as received (`expect.bank_states`): its
/// parsed bootstate, or `empty` for a bank the current loader skipped for
/// want of a valid boot.cfg (the same parser decides both). The 6.7u1
/// loader parses with options carried over from the bank before, so what
/// it skipped may still parse on its own: nothing is said then.
fn received_state(b: &BankStory, loader: LoaderVersion) -> Option<BankStateName> {
    match (&b.skipped, b.bootstate) {
        (None, Some(state)) => Some(BankStateName::of_bootstate(Some(state))),
        (Some(why), _) if loader == LoaderVersion::Current && why.starts_with("no valid configuration file") => {
            Some(BankStateName::Empty)
        }
        _ => None,
    }
}

/// The layout the runner builds upgrade images for: ESXi 7.x when the
/// bank that boots (else the first scanned) runs a 7.x build.
fn layout_of(story: &Explanation) -> DiskLayout {
    let build = story.next_boot.build.clone().or_else(|| story.banks.iter().find_map(|b| b.build.clone()));
    if build.is_some_and(|b| b.starts_with("7.")) {
        DiskLayout::Esxi7
    } else {
        DiskLayout::Esxi6
    }
}

/// A bank's FAT health as explain words it ([`visorsim_media::fat::FatCheck::summary`]).
enum FatHealth {
    /// `clean`, or warnings only: what `expect.fat_clean` accepts.
    Clean,
    /// `N findings: class, class`: the classes (empty when one is not a
    /// class name, so that nothing is guessed).
    Findings(Vec<FindingName>),
}

fn fat_health(summary: &str) -> FatHealth {
    if summary == "clean" || summary.contains("(warnings only)") {
        return FatHealth::Clean;
    }
    let names = summary.split_once(": ").map_or("", |(_, names)| names);
    let classes: Option<Vec<FindingName>> =
        names.split(", ").map(|n| FindingClass::from_name(n).map(FindingName)).collect();
    FatHealth::Findings(classes.unwrap_or_default())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

fn description(story: &Explanation, origin: &ImageOrigin, placement: &Placement) -> String {
    let hash = match &origin.sha256 {
        Some(h) => format!("SHA-256 {h}"),
        None => format!("not hashed (longer than {} GiB; `sha256sum` pins it)", HASH_LIMIT >> 30),
    };
    let modified = origin.modified.map_or(String::new(), |t| format!(", modified {}", t.rfc3339()));
    let placed = match placement {
        Placement::Copy { file_name } => format!("copied sparse to {file_name} beside this file"),
        Placement::Reference { path } => format!("referenced in place as {path} (more data than the copy threshold)"),
    };
    let mut text = format!(
        "From the image {} ({}, {} bytes, {} of data on a {} disk{modified}, {hash}), {placed}; never modified. \
         Written by `visorsim scenario new` with the {} loader. Step 1 is the disk as received, step 2 one boot, \
         step 3 what `visorsim explain` says that boot does: {}. To make it the field bug's test, add the steps \
         that reproduce it after step 3 (reboot, power_cut, upgrade, corrupt...: scenarios/README.md) with \
         expectations of what should happen, and keep steps 1 to 3 so that any change in how visorsim reads \
         this disk shows.",
        origin.path.display(),
        origin.format.name(),
        origin.file_bytes,
        mib(origin.data_bytes),
        mib(origin.disk_bytes),
        story.loader,
        story.next_boot.outcome,
    );
    if !story.risks.is_empty() {
        let risks: Vec<&str> = story.risks.iter().map(|r| r.text.as_str()).collect();
        text.push_str(&format!(" Risks explain sees: {}", risks.join(" ")));
    }
    text
}

/// Why [`to_json`] could not write a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ToJsonError {
    /// serde_json refused a value.
    #[error("Cannot write the scenario as JSON")]
    Serialize(#[source] serde_json::Error),
    /// The text would load as another scenario (a field that does not
    /// round-trip).
    #[error("The scenario written does not load back as the same scenario: {0}")]
    RoundTrip(String),
}

/// `scenario` as the text of a scenario file: pretty JSON through the
/// model's `Serialize`, without the members that hold their defaults
/// (null, `[]`, `{}`), checked to parse back to `scenario`.
pub fn to_json(scenario: &Scenario) -> Result<String, ToJsonError> {
    let mut value = serde_json::to_value(scenario).map_err(ToJsonError::Serialize)?;
    drop_defaults(&mut value);
    let text = serde_json::to_string_pretty(&value).map_err(ToJsonError::Serialize)? + "\n";
    match crate::parse(&text, "generated scenario") {
        Ok(back) if back == *scenario => Ok(text),
        Ok(_) => Err(ToJsonError::RoundTrip("a field changed".into())),
        Err(e) => Err(ToJsonError::RoundTrip(e.to_string())),
    }
}

/// Removes the members of every object that are null, `[]` or `{}` as
/// serialised (defaults); a member emptied only by this removal (an
/// `expect` whose every field is a default) stays, so no step vanishes.
fn drop_defaults(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            map.retain(|_, v| match v {
                Value::Null => false,
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
                _ => true,
            });
            map.values_mut().for_each(drop_defaults);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_defaults),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use visorsim_disk::{FileDisk, SectorSize};
    use visorsim_host::explain::explain;
    use visorsim_image::install::{install_fresh, InstallOptions};
    use visorsim_image::payload::default_cache_dir;
    use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};
    use visorsim_media::layout::Layout;

    fn fresh_disk() -> MemDisk {
        let spec = ImageSpec {
            version: "6.7.0".into(),
            build_number: 1000,
            seed: 3,
            payload: PayloadSize::Compressed(100_000),
            hostname: "esxi-03".into(),
        };
        let image = SystemImage::build(&spec, default_cache_dir().as_deref(), &mut |_, _| {}).expect("image");
        let options = InstallOptions { layout: Layout::Esxi6, size: None, sector_size: SectorSize::S512, seed: 3 };
        install_fresh(&image, &options).expect("install").0
    }

    fn origin(disk: &MemDisk) -> ImageOrigin {
        ImageOrigin {
            path: "/field/customer.img".into(),
            format: ImageFormat::Raw,
            file_bytes: disk.size_bytes(),
            disk_bytes: disk.size_bytes(),
            data_bytes: data_bytes(disk),
            modified: Some(SimTime(1_780_000_000)),
            sha256: None,
        }
    }

    /// The scenario made from a disk's explanation passes on that disk, and
    /// the same inputs give the same text.
    #[test]
    fn the_scenario_of_an_explanation_passes_on_its_disk() {
        let disk = fresh_disk();
        let dir = tempfile::tempdir().unwrap();
        FileDisk::save_sparse(&disk, dir.path().join("c.img")).unwrap();
        for loader in [LoaderVersion::Current, LoaderVersion::V67u1] {
            let story = explain(&disk, loader);
            let placement = Placement::Copy { file_name: "c.img".into() };
            let s = scenario(&story, &origin(&disk), &placement);
            assert_eq!(s.disk.loader, loader);
            assert_eq!(s.disk.image.as_deref(), Some("c.img"));
            let Step::Expect(now) = &s.steps[2] else { panic!("{:?}", s.steps[2]) };
            assert_eq!((now.booted_bank, now.config.get("hostname").map(String::as_str)), (Some(5), Some("esxi-03")));
            let result = crate::run(&s, dir.path()).unwrap();
            assert!(result.passed(), "{loader}:\n{}", result.render());
            let text = to_json(&s).unwrap();
            assert_eq!(text, to_json(&scenario(&story, &origin(&disk), &placement)).unwrap(), "deterministic");
            assert!(text.contains("modified 2026-05-28T"), "{text}");
        }
    }

    #[test]
    fn small_images_are_copied_large_ones_referenced_relative_inside_the_directory() {
        let dir = Path::new("/s/field");
        let copy = |data, image: &str| placement(Path::new(image), data, 100, dir, "bug.img");
        assert_eq!(copy(100, "/x/c.qcow2"), Placement::Copy { file_name: "bug.img".into() });
        assert_eq!(copy(101, "/x/c.qcow2"), Placement::Reference { path: "/x/c.qcow2".into() });
        assert_eq!(copy(101, "/s/field/images/c.img"), Placement::Reference { path: "images/c.img".into() });
        assert_eq!(copy(0, "/s/field/bug.img"), Placement::Reference { path: "bug.img".into() }, "never over itself");
        assert_eq!(copy(101, "/s/fieldwork/c.img"), Placement::Reference { path: "/s/fieldwork/c.img".into() });
    }

    #[test]
    fn fat_summaries_become_expectations_or_nothing() {
        assert!(matches!(fat_health("clean"), FatHealth::Clean));
        assert!(matches!(fat_health("1 finding (warnings only): dirty_bit"), FatHealth::Clean));
        let FatHealth::Findings(f) = fat_health("2 findings: cross_link, lost_clusters") else { panic!() };
        assert_eq!(f, [FindingName(FindingClass::CrossLink), FindingName(FindingClass::LostClusters)]);
        let FatHealth::Findings(f) = fat_health("2 findings: cross_link, something_new") else { panic!() };
        assert!(f.is_empty(), "an unknown class name is not guessed at");
    }

    #[test]
    fn defaults_are_left_out_and_the_text_loads_back() {
        let s = crate::parse(
            r#"{"disk": {"image": "a.img"}, "steps": [{"boot": {}}, {"expect": {"booted_bank": 5, "fat_clean": [5]}}]}"#,
            "x",
        )
        .unwrap();
        let text = to_json(&s).unwrap();
        assert!(!text.contains("null") && !text.contains("[]") && !text.contains("{}"), "{text}");
        assert!(text.contains("\"booted_bank\": 5"), "{text}");
        assert_eq!(crate::parse(&text, "x").unwrap(), s);
        let only_defaults = crate::parse(r#"{"disk": {}, "steps": [{"expect": {}}]}"#, "x").unwrap();
        assert!(to_json(&only_defaults).unwrap().contains("\"expect\": {}"), "a step never vanishes");
    }
}
