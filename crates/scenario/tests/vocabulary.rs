//! The vocabulary a field reproduction needs: `corrupt` writes through a
//! file's clusters, file expectations, the absent and count forms, any
//! partition's bank state and bootstate byte, `config` on a host that is
//! off, and the write cache's losses drawn from `faults.seed` and shown in
//! the timeline. Each failing expectation is checked for what its mismatch
//! says.

use std::path::Path;

use sha2::{Digest, Sha256};
use visorsim_boot::volume::scan_volumes;
use visorsim_disk::{FileDisk, MemDisk, SectorSize};
use visorsim_host::bank::{Bank, BankLocation};
use visorsim_image::install::{install_fresh, InstallOptions};
use visorsim_image::payload::default_cache_dir;
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};
use visorsim_media::fatread::FatReader;
use visorsim_media::layout::Layout;
use visorsim_scenario::{parse, run, RunError, RunErrorKind, RunResult};

fn run_in(text: &str, base: &Path) -> Result<RunResult, RunError> {
    run(&parse(text, "test.json").expect("valid scenario"), base)
}

fn run_text(text: &str) -> RunResult {
    run_in(text, Path::new("/nonexistent-base")).expect("the scenario runs")
}

/// The mismatches as `what: expected | found` lines.
fn mismatches(result: &RunResult) -> Vec<String> {
    result.mismatches.iter().map(|m| format!("{}: {} | {}", m.what, m.expected, m.actual)).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh esxi6 install (small payload).
fn fresh_disk() -> MemDisk {
    let spec = ImageSpec {
        version: "6.7.0".into(),
        build_number: 1000,
        seed: 1,
        payload: PayloadSize::Compressed(100_000),
        hostname: "localhost".into(),
    };
    let image = SystemImage::build(&spec, default_cache_dir().as_deref(), &mut |_, _| {}).expect("image");
    let options = InstallOptions { layout: Layout::Esxi6, size: None, sector_size: SectorSize::S512, seed: 1 };
    install_fresh(&image, &options).expect("install").0
}

#[test]
fn corrupt_writes_through_the_files_clusters_and_across_sectors() {
    // A fragmented file in bank 5: c.dat takes the hole a.dat left (3
    // clusters), then continues after b.dat.
    let mut disk = fresh_disk();
    let v = *scan_volumes(&mut disk).volumes.iter().find(|v| v.number == 5).expect("bank 5");
    let mut bank = BankLocation::fat(5, v.first_lba, v.sectors);
    let reader = FatReader::open(&mut disk, v.first_lba, v.sectors).unwrap();
    let cluster = reader.cluster_bytes() as usize;
    bank.write(&mut disk, "a.dat", &vec![b'A'; 3 * cluster]).unwrap();
    let b = vec![b'B'; cluster];
    bank.write(&mut disk, "b.dat", &b).unwrap();
    bank.remove(&mut disk, "a.dat").unwrap();
    let mut c: Vec<u8> = (0..5 * cluster).map(|i| (i % 251) as u8).collect();
    bank.write(&mut disk, "c.dat", &c).unwrap();
    let file = reader.find(&mut disk, "c.dat").unwrap().unwrap();
    let runs = reader.runs(&mut disk, &file).unwrap();
    assert!(runs.len() >= 2, "c.dat must be fragmented for this test: {runs:?}");
    let boundary = runs[0].sectors * 512;
    let dir = tempfile::tempdir().unwrap();
    FileDisk::save_sparse(&disk, dir.path().join("frag.img")).unwrap();

    // Six bytes across the fragment boundary, and four across two sectors
    // of the second fragment, by LBA.
    let text_at = boundary - 3;
    c[text_at as usize..text_at as usize + 6].copy_from_slice(b"XYZxyz");
    let lba_at = boundary + 510;
    c[lba_at as usize..lba_at as usize + 4].copy_from_slice(&[1, 2, 3, 4]);
    let scenario = format!(
        r#"{{"disk": {{"image": "frag.img"}}, "steps": [
            {{"corrupt": {{"file": {{"bank": 5, "file": "c.dat"}}, "offset": {text_at}, "text": "XYZxyz"}}}},
            {{"corrupt": {{"lba": {}, "offset": 510, "bytes": "01 02 03 04"}}}},
            {{"expect": {{"files": {{"5": {{
                "c.dat": {{"size": {}, "sha256": "{}", "contains": ["XYZxyz"]}},
                "b.dat": {{"sha256": "{}"}}}}}}}}}}]}}"#,
        runs[1].lba,
        c.len(),
        sha256_hex(&c),
        sha256_hex(&b)
    );
    let result = run_in(&scenario, dir.path()).unwrap();
    assert!(result.passed(), "{}", result.render());
    assert_eq!(result.timeline[0].what, format!("write 6 byte(s) at 5/c.dat+{text_at}"));
    assert_eq!(result.timeline[1].what, format!("write 4 byte(s) at LBA {}+510", runs[1].lba));
}

#[test]
fn corrupt_writes_past_the_end_are_errors_naming_the_place() {
    let step = |corrupt: &str| format!(r#"{{"disk": {{}}, "steps": [{{"corrupt": {corrupt}}}]}}"#);
    let error = |corrupt: &str| {
        run_in(&step(corrupt), Path::new("/nonexistent-base")).expect_err("the corrupt step cannot run")
    };
    let e = error(r#"{"file": {"bank": 5, "file": "boot.cfg"}, "offset": 298, "text": "abc"}"#);
    assert_eq!((e.kind(), e.step(), e.bank(), e.file()), (RunErrorKind::Corrupt, Some(1), Some(5), Some("boot.cfg")));
    assert!(
        e.to_string().starts_with("corrupt: bank 5: boot.cfg: 3 byte(s) at offset 298 pass the end of the file ("),
        "{e}"
    );

    let e = error(r#"{"file": {"bank": 5, "file": "gone.txt"}, "text": "abc"}"#);
    assert_eq!(e.to_string(), "corrupt: bank 5: gone.txt: no such file");
    let e = error(r#"{"lba": 99999999999, "offset": 3, "bytes": "00"}"#);
    assert_eq!((e.kind(), e.lba()), (RunErrorKind::Corrupt, Some(99999999999)));
    assert!(e.to_string().starts_with("corrupt: 1 byte(s) at LBA 99999999999 + 3 pass the end of the disk ("), "{e}");
    let e = error(r#"{"lba": 18446744073709551615, "offset": 18446744073709551615, "bytes": "00"}"#);
    assert_eq!(e.kind(), RunErrorKind::Corrupt, "an overflowing position is past the end: {e}");
    for (corrupt, says) in [
        (r#"{"lba": 1, "bytes": "00", "text": "a"}"#, "corrupt: give `bytes` or `text`, not both"),
        (r#"{"lba": 1, "text": "a", "delete": true}"#, "corrupt: `bytes` and `text` cannot be combined"),
        (
            r#"{"lba": 1, "file": {"bank": 5, "file": "boot.cfg"}, "text": "a"}"#,
            "corrupt: give `file` or `lba`, not both",
        ),
        (r#"{"text": "a"}"#, "corrupt: give `file` or `lba`"),
    ] {
        let e = error(corrupt);
        assert_eq!((e.kind(), e.field()), (RunErrorKind::Step, "corrupt"), "{corrupt}");
        assert!(e.to_string().starts_with(says), "{says:?} in {e}");
    }
}

#[test]
fn file_expectations_name_the_partition_and_the_file() {
    let result = run_text(
        r#"{"disk": {}, "steps": [{"expect": {"files": {
            "5": {"boot.cfg": {"size": 1, "sha256": "00000000000000000000000000000000000000000000000000000000000000AA",
                               "contains": ["bootstate=0", "no such text"]},
                  "nothere.txt": {"size": 1}, "state.tgz": {"exists": false}},
            "20": {"boot.cfg": {}}}}}]}"#,
    );
    let found = mismatches(&result);
    assert_eq!(found.len(), 6, "{found:#?}");
    assert!(found[0].starts_with("file 5:boot.cfg size: 1 bytes | "), "{found:#?}");
    assert!(found[1]
        .starts_with("file 5:boot.cfg sha256: 00000000000000000000000000000000000000000000000000000000000000aa | "));
    assert!(found[2].starts_with(r#"file 5:boot.cfg contains: "no such text" | not in its "#), "{found:#?}");
    assert!(found[3] == "file 5:nothere.txt exists: a file | no such file in partition 5", "{found:#?}");
    assert!(found[4].starts_with("file 5:state.tgz exists: no such file | a file of "), "{found:#?}");
    assert_eq!(found[5], "file 20:boot.cfg exists: a file | no partition 20");
}

#[test]
fn bank_states_and_bootstate_bytes_show_both_views_for_any_partition() {
    let result = run_text(
        r#"{"disk": {"layout": "esxi7"}, "steps": [
            {"corrupt": {"file": {"bank": 5, "file": "boot.cfg"}, "offset": 10, "text": "2"}},
            {"expect": {"bank_states": {"5": "valid", "6": "valid", "7": "valid", "1": "empty", "42": "missing"},
                        "bootstate_chars": {"5": "0", "6": "0", "42": "0"}}}]}"#,
    );
    assert_eq!(
        mismatches(&result),
        [
            "bank 5 state: valid | dirty (bootstate byte '2' on disk)",
            "bank 6 state: valid | empty (no readable boot.cfg)",
            "bank 7 state: valid | missing (not a FAT volume)",
            "bank 5 bootstate byte: '0' | dirty (bootstate byte '2' on disk)",
            "bank 6 bootstate byte: '0' | empty (no readable boot.cfg)",
            "bank 42 bootstate byte: '0' | missing (no such partition)",
        ]
    );
}

#[test]
fn config_on_a_host_that_is_off_is_a_mismatch_not_stale_memory() {
    let result = run_text(
        r#"{"disk": {}, "steps": [{"boot": {}}, {"set_hostname": "x"}, "power_cut",
            {"expect": {"config": {"hostname": "x"}, "config_absent": {"hostname": "y"}}}]}"#,
    );
    assert_eq!(
        mismatches(&result),
        [
            "config hostname: x | the host is not running",
            r#"config hostname absent: anything but "y" | the host is not running"#,
        ]
    );
}

#[test]
fn absent_and_count_forms_say_what_they_found() {
    let steps = |expect: &str| format!(r#"{{"disk": {{}}, "steps": [{{"boot": {{}}}}, {{"expect": {expect}}}]}}"#);
    let pass = run_text(&steps(
        r#"{"log_absent": ["No hypervisor found."], "log_count": {"state=VALID": 1, "nowhere": 0},
            "timeline_absent": ["power lost"], "timeline_count": {"up on build": 1, "nowhere": 0}}"#,
    ));
    assert!(pass.passed(), "{}", pass.render());
    let fail = run_text(&steps(
        r#"{"log_absent": ["state=VALID"], "log_count": {"state=VALID": 2},
            "timeline_absent": ["up on build"], "timeline_count": {"up on build": 0}}"#,
    ));
    let found = mismatches(&fail);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(found[0].starts_with(r#"log_absent: no line with "state=VALID" | "BANK5: state=VALID"#), "{found:#?}");
    assert_eq!(found[1], r#"log_count "state=VALID": 2 line(s) | 1 line(s)"#);
    assert_eq!(
        found[2],
        r#"timeline_absent: no event with "up on build" | up "host localhost up on build 6.7.0-1.0.1000""#
    );
    assert_eq!(found[3], r#"timeline_count "up on build": 0 event(s) | 1 event(s)"#);
}

/// A power cut in the middle of backup.sh with a volatile cache, the fault
/// layer seeded by `faults` (e.g. `"faults": {"seed": 7},`); the backup row.
fn cut_row(faults: &str) -> String {
    let result = run_text(&format!(
        r#"{{"disk": {{"seed": 52}}, {faults} "steps": [
            {{"boot": {{}}}}, {{"set_hostname": "old"}}, "backup", {{"set_hostname": "new"}},
            {{"fault": {{"volatile_cache_reorder": 16, "power_cut_after_writes": 12}}}}, "backup"]}}"#
    ));
    result.timeline[5].result.clone()
}

#[test]
fn the_write_caches_losses_follow_the_fault_seed_and_are_shown() {
    let seven = cut_row(r#""faults": {"seed": 7},"#);
    assert!(
        seven.starts_with(
            "failed: Error (1) saving state to /bootbank; power cut: 12 unflushed write(s) in the cache, 7 lost (fault seed 7): lost #393 LBA 8729+1 (partition 5, root directory), #394 LBA 8224+1 (partition 5, boot sector)"
        ),
        "{seven}"
    );
    assert_eq!(cut_row(r#""faults": {"seed": 7},"#), seven, "the same seed, the same losses");
    let eight = cut_row(r#""faults": {"seed": 8},"#);
    assert!(eight.contains("(fault seed 8): lost #"), "{eight}");
    assert_ne!(eight, seven, "another seed, other losses on the same disk");
    assert!(cut_row("").contains("(fault seed 52)"), "the fault seed defaults to disk.seed");

    // A cut with nothing in the cache adds nothing to the row.
    let plain = run_text(r#"{"disk": {}, "steps": [{"boot": {}}, "power_cut"]}"#);
    assert_eq!(plain.timeline[1].result, "host off");
}

#[test]
fn a_failed_boot_row_says_where_it_failed() {
    // s.v00's deflate data overwritten: mboot stops with a fatal error, and
    // the row names the bank and the module beside the loader's words.
    let result = run_text(
        r#"{"disk": {}, "steps": [
            {"corrupt": {"file": {"bank": 5, "file": "s.v00"}, "offset": 64, "bytes": "ff ff ff ff ff ff ff ff"}},
            {"boot": {}}]}"#,
    );
    let row = &result.timeline[1].result;
    assert!(row.starts_with("Fatal error: "), "{row}");
    assert!(row.contains("(why: bank 5 s.v00: Fatal error: "), "{row}");
}
