//! safeboot's behaviour tables (docs/bootloader.md: Bank scan, Bootstate,
//! Selection, Rollback), one named test per row, and property tests of its invariants. Banks are
//! described by their boot.cfg text, as on disk; writes are applied to that
//! text so a "next boot" sees what the disk would hold.

use proptest::prelude::*;
use visorsim_boot::safeboot::*;
use visorsim_boot::status::{self, EsxStatus};
use visorsim_media::vmfat::VmfatUuid;

/// A simulated disk: partition number → boot.cfg text (None: no UUID).
#[derive(Clone, Debug)]
struct Disk {
    parts: Vec<(u32, Option<Vec<u8>>)>,
    fail_writes: bool,
}

impl Disk {
    fn new(banks: &[(u32, &str)]) -> Disk {
        Disk { parts: banks.iter().map(|(n, t)| (*n, Some(t.as_bytes().to_vec()))).collect(), fail_writes: false }
    }

    fn facts(&self) -> Vec<PartitionFacts> {
        let mut parts = self.parts.clone();
        parts.sort_by_key(|p| p.0);
        parts
            .iter()
            .map(|(n, text)| PartitionFacts {
                number: *n,
                probe: match text {
                    Some(t) => Probe::from_boot_cfg(VmfatUuid([*n as u8; 16]), t),
                    None => Probe::NoUuid,
                },
            })
            .collect()
    }

    /// One safeboot pass; writes land in the texts unless they fail.
    fn boot(&mut self, options: SafebootOptions) -> Decision {
        let facts = self.facts();
        let fail = self.fail_writes;
        let mut landed = Vec::new();
        let decision = decide(&facts, options, &mut |w: &StateWrite| -> Result<(), EsxStatus> {
            if fail {
                return Err(status::WRITE_PROTECTED);
            }
            landed.push(*w);
            Ok(())
        });
        for w in landed {
            let text = self.parts.iter_mut().find(|p| p.0 == w.number).unwrap().1.as_mut().unwrap();
            text[w.offset] = b'0' + w.state;
        }
        decision
    }

    fn text(&self, n: u32) -> String {
        String::from_utf8_lossy(self.parts.iter().find(|p| p.0 == n).unwrap().1.as_ref().unwrap()).into_owned()
    }
}

fn cfg(state: &str, updated: &str) -> String {
    format!("bootstate={state}\ntitle=t\nbuild=6.7.0-1.0.1\nupdated={updated}\n")
}

fn normal() -> SafebootOptions {
    SafebootOptions::default()
}

fn shift_r() -> SafebootOptions {
    SafebootOptions { rollback: Some(Answer::Yes), ..Default::default() }
}

fn booted(d: &Decision) -> Option<u32> {
    match d.verdict {
        Verdict::Chainload { bank, .. } => Some(bank),
        _ => None,
    }
}

fn rollback_flag(d: &Decision) -> bool {
    matches!(d.verdict, Verdict::Chainload { rollback: true, .. })
}

fn bank(d: &Decision, n: u32) -> &BankState {
    d.banks.iter().find(|b| b.number == n).unwrap()
}

fn has_log(d: &Decision, text: &str) -> bool {
    d.log.iter().any(|l| l.text == text)
}

// ---- 3.1 transition table ----

#[test]
fn state_0_stays_valid_without_a_write() {
    for variant in ["bootstate=0\n", "", "bootstate=\n", "bootstate=-0\n", "bootstate=-\n"] {
        let mut disk = Disk::new(&[(5, &format!("{variant}build=6.7\nupdated=1\n"))]);
        let d = disk.boot(normal());
        assert!(d.writes.is_empty(), "{variant:?}");
        assert_eq!((bank(&d, 5).state_after, booted(&d)), (0, Some(5)), "{variant:?}");
    }
}

#[test]
fn state_1_becomes_dirty_written_and_bootable() {
    let mut disk = Disk::new(&[(5, &cfg("0", "1")), (6, &cfg("1", "2"))]);
    let d = disk.boot(normal());
    assert_eq!(bank(&d, 6).state_after, 2);
    assert!(bank(&d, 6).upgrading);
    assert_eq!(booted(&d), Some(6));
    assert!(disk.text(6).starts_with("bootstate=2"));
    assert!(
        matches!(&d.verdict, Verdict::Chainload { title, rollback: false, .. } if title == "Please wait while VMware Hypervisor is initializing...")
    );
}

#[test]
fn state_2_becomes_invalid_and_the_other_boots_without_rollback() {
    let mut disk = Disk::new(&[(5, &cfg("0", "1")), (6, &cfg("2", "2"))]);
    let d = disk.boot(normal());
    assert_eq!((bank(&d, 6).state_after, bank(&d, 6).bootable), (3, false));
    assert_eq!(booted(&d), Some(5));
    assert!(!rollback_flag(&d), "the ordinary failed-upgrade path does not set the rollback flag");
    assert!(disk.text(6).starts_with("bootstate=3"));
}

#[test]
fn state_3_stays_invalid_without_a_write() {
    let mut disk = Disk::new(&[(5, &cfg("3", "9")), (6, &cfg("0", "1"))]);
    let d = disk.boot(normal());
    assert!(d.writes.is_empty());
    assert_eq!(booted(&d), Some(6));
}

#[test]
fn other_numbers_become_invalid_with_a_write_attempt() {
    // 10: the writer finds a '1' and writes 3 over it ("30" on disk).
    let mut disk = Disk::new(&[(5, &cfg("10", "5")), (6, &cfg("0", "1"))]);
    let d = disk.boot(normal());
    assert!(has_log(&d, "BANK5: invalid boot state."));
    assert_eq!((bank(&d, 5).state_after, booted(&d)), (3, Some(6)));
    assert!(disk.text(5).starts_with("bootstate=30"));
    // -1 and 4: the writer refuses the digit, so the partition is dropped.
    for value in ["-1", "4", "99"] {
        let mut disk = Disk::new(&[(5, &cfg(value, "5")), (6, &cfg("0", "1"))]);
        let d = disk.boot(normal());
        assert!(d.banks.iter().all(|b| b.number != 5), "{value}: dropped");
        assert_eq!(d.countdowns, 1, "{value}");
        assert_eq!(booted(&d), Some(6));
    }
}

#[test]
fn quickboot_bank_is_never_bootable_and_sets_no_rollback_flag() {
    let mut disk = Disk::new(&[(5, &format!("{}quickboot=1\n", cfg("1", "9"))), (6, &cfg("0", "1"))]);
    let d = disk.boot(normal());
    let b = bank(&d, 5);
    assert_eq!((b.bootable, b.upgrading, b.state_after), (false, false, 3));
    assert!(disk.text(5).starts_with("bootstate=3"));
    assert!(!rollback_flag(&d));
    let mut already = Disk::new(&[(5, &format!("{}q=1\n", cfg("3", "9"))), (6, &cfg("0", "1"))]);
    assert!(already.boot(normal()).writes.is_empty(), "no write when already 3");
}

#[test]
fn upgrading_bank_that_is_not_ok_sets_the_rollback_flag() {
    let mut disk = Disk::new(&[(5, &cfg("0", "1")), (6, "bootstate=1\nupdated=2\n")]);
    let d = disk.boot(normal());
    assert!(has_log(&d, "BANK6: invalid build number."));
    assert!(has_log(&d, "BANK6: system has failed to upgrade."));
    assert_eq!(bank(&d, 6).state_after, 3);
    assert!(rollback_flag(&d));
    assert_eq!(booted(&d), Some(5));
}

#[test]
fn failed_disk_write_is_ignored_and_the_state_changes_in_memory() {
    let mut disk = Disk::new(&[(5, &cfg("1", "2"))]);
    disk.fail_writes = true;
    let d = disk.boot(normal());
    assert!(has_log(&d, "BANK5: failed to overwrite /boot.cfg: 9 (ignored)"));
    assert_eq!((bank(&d, 5).state_after, booted(&d)), (2, Some(5)));
    assert!(disk.text(5).starts_with("bootstate=1"), "the disk keeps the old digit");
    // So every boot is a "first boot" again: a boot loop instead of a rollback.
    assert_eq!(booted(&disk.boot(normal())), Some(5));
}

#[test]
fn fake_write_error_skips_the_disk_and_logs_code_1() {
    let mut disk = Disk::new(&[(5, &cfg("1", "2"))]);
    let d = disk.boot(SafebootOptions { fake_write_error: true, ..Default::default() });
    assert!(d.writes.is_empty());
    assert!(has_log(&d, "BANK5: failed to overwrite /boot.cfg: 1 (ignored)"));
    assert!(disk.text(5).starts_with("bootstate=1"));
}

// ---- 3.3 parser vs writer ----

#[test]
fn spaces_around_equals_make_an_invalid_bank_boot() {
    let mut disk = Disk::new(&[(5, "bootstate = 3\nbuild=6.7\nupdated=1\n")]);
    let d = disk.boot(normal());
    assert_eq!((booted(&d), d.writes.len()), (Some(5), 0));
}

#[test]
fn abbreviated_key_upgrading_bank_is_dropped() {
    for key in ["boot", "bootstat"] {
        let mut disk = Disk::new(&[(5, &cfg("0", "1")), (6, &format!("{key}=1\nbuild=6.7\nupdated=2\n"))]);
        let d = disk.boot(normal());
        assert!(d.banks.iter().all(|b| b.number != 6), "{key}");
        assert!(has_log(&d, "BANK6: boot state not found."));
        assert_eq!((d.countdowns, booted(&d)), (1, Some(5)));
    }
}

#[test]
fn abbreviated_key_works_when_no_write_is_needed() {
    let mut disk = Disk::new(&[(5, "boot=0\nb=6.7\nu=1\n"), (6, "bootstat=3\nbuild=6.7\nupdated=2\n")]);
    let d = disk.boot(normal());
    assert_eq!((booted(&d), d.writes.len(), d.banks.len()), (Some(5), 0, 2));
}

#[test]
fn two_bootstate_lines_boot_as_dirty_forever() {
    let mut disk = Disk::new(&[(5, "bootstate=0\nbootstate=1\nbuild=6.7\nupdated=1\n")]);
    for _ in 0..3 {
        let d = disk.boot(normal());
        assert_eq!((bank(&d, 5).state_before, bank(&d, 5).state_after, booted(&d)), (1, 2, Some(5)));
        assert!(disk.text(5).starts_with("bootstate=2\nbootstate=1\n"), "the first line is patched every boot");
    }
}

#[test]
fn bootstate_after_byte_512() {
    let pad = format!("#{}\n", "x".repeat(520));
    let mut fine = Disk::new(&[(5, &format!("{pad}build=6.7\nupdated=1\nbootstate=0\n"))]);
    assert_eq!(booted(&fine.boot(normal())), Some(5), "no write needed");
    let mut dropped = Disk::new(&[(5, &format!("{pad}build=6.7\nupdated=1\nbootstate=1\n"))]);
    let d = dropped.boot(normal());
    assert!(d.banks.is_empty() && has_log(&d, "BANK5: boot state not found."));
}

#[test]
fn value_byte_at_offset_512_is_not_found_and_511_is_written() {
    let at_512 = format!("#{}\nbootstate=1\nbuild=6.7\nupdated=1\n", "x".repeat(500));
    assert_eq!(at_512.find("bootstate=").unwrap() + 10, 512);
    assert!(Disk::new(&[(5, &at_512)]).boot(normal()).banks.is_empty());
    let at_511 = format!("#{}\nbootstate=1\nbuild=6.7\nupdated=1\n", "x".repeat(499));
    let mut disk = Disk::new(&[(5, &at_511)]);
    let d = disk.boot(normal());
    assert_eq!(d.writes[0].offset, 511);
}

#[test]
fn bom_before_bootstate_boots_as_valid() {
    let mut disk = Disk::new(&[(5, "\u{feff}bootstate=3\nbuild=6.7\nupdated=1\n")]);
    assert_eq!(booted(&disk.boot(normal())), Some(5));
}

#[test]
fn hash_comment_after_value_rejects_the_whole_file_without_countdown() {
    let mut disk = Disk::new(&[(5, "bootstate=0 # c\nbuild=6.7\nupdated=1\n"), (6, &cfg("0", "1"))]);
    let d = disk.boot(normal());
    assert!(has_log(&d, "BANK5: no valid configuration file."));
    assert_eq!((d.countdowns, booted(&d)), (0, Some(6)));
}

// ---- 2.3 at most three banks ----

#[test]
fn scan_stops_after_three_banks() {
    let mut disk = Disk::new(&[(1, &cfg("0", "1")), (2, &cfg("3", "1")), (3, &cfg("0", "0")), (5, &cfg("1", "9"))]);
    let d = disk.boot(normal());
    assert_eq!(d.banks.iter().map(|b| b.number).collect::<Vec<_>>(), [1, 2, 3], "non-bootable banks use a slot");
    assert!(disk.text(5).starts_with("bootstate=1"), "partition 5 is never read or written");
}

#[test]
fn skipped_partitions_do_not_use_a_slot() {
    let mut disk =
        Disk::new(&[(1, "bootstate=0 # x\n"), (2, &cfg("0", "1")), (3, &cfg("0", "2")), (5, &cfg("0", "3"))]);
    disk.parts.push((4, None));
    let d = disk.boot(normal());
    assert_eq!(d.banks.iter().map(|b| b.number).collect::<Vec<_>>(), [2, 3, 5]);
    assert_eq!(booted(&d), Some(5));
}

// ---- 4 selection ----

#[test]
fn ties_go_to_the_lowest_partition_number() {
    assert_eq!(booted(&Disk::new(&[(5, &cfg("0", "3")), (6, &cfg("0", "3"))]).boot(normal())), Some(5));
    assert_eq!(
        booted(&Disk::new(&[(5, &cfg("0", "2")), (6, &cfg("0", "3")), (7, &cfg("0", "3"))]).boot(normal())),
        Some(6)
    );
}

#[test]
fn updated_zero_is_never_bootable() {
    let d = Disk::new(&[(5, &cfg("0", "0"))]).boot(normal());
    assert!(has_log(&d, "BANK5: invalid update counter."));
    assert_eq!(d.verdict, Verdict::NoHypervisor);
    assert!(has_log(&d, "No hypervisor found."));
}

#[test]
fn negative_updated_wraps_and_wins() {
    assert_eq!(booted(&Disk::new(&[(5, &cfg("0", "100")), (6, &cfg("0", "-5"))]).boot(normal())), Some(6));
}

#[test]
fn build_not_starting_with_a_digit_fails_to_chainload_without_trying_the_other() {
    let d = Disk::new(&[(5, "build=ESXi-6.7\nupdated=2\n"), (6, &cfg("0", "1"))]).boot(normal());
    assert_eq!(d.verdict, Verdict::UnknownVersion { bank: 5 });
    assert!(has_log(&d, "ESX version is unknown.") && has_log(&d, "Failed to chainload BANK5."));
}

#[test]
fn major_version_below_5_passes_legacy_flag() {
    let d = Disk::new(&[(5, "build=4.1.0\nupdated=1\n")]).boot(normal());
    assert!(matches!(d.verdict, Verdict::Chainload { legacy: true, .. }));
    assert!(matches!(&d.verdict, Verdict::Chainload { title, .. } if title == "Loading VMware Hypervisor"));
}

// ---- 5 rollback ----

#[test]
fn rollback_refused_with_one_bootable_bank() {
    let mut disk = Disk::new(&[(5, &cfg("0", "1")), (6, "")]);
    let d = disk.boot(shift_r());
    assert!(has_log(&d, "No alternate hypervisor to roll back to."));
    assert_eq!((booted(&d), rollback_flag(&d), d.countdowns), (Some(5), false, 1));
    assert!(d.writes.is_empty());
}

#[test]
fn rollback_confirmed_invalidates_the_default_and_boots_the_other() {
    let mut disk = Disk::new(&[(5, &cfg("0", "1")), (6, &cfg("0", "2"))]);
    let d = disk.boot(shift_r());
    assert!(has_log(&d, "CURRENT DEFAULT HYPERVISOR WILL BE REPLACED PERMANENTLY."));
    assert_eq!((booted(&d), rollback_flag(&d)), (Some(5), true));
    assert!(disk.text(6).starts_with("bootstate=3"), "permanent");
    assert_eq!(booted(&disk.boot(normal())), Some(5), "the next normal boot stays on the old bank");
}

#[test]
fn rollback_cancelled_by_user() {
    let mut disk = Disk::new(&[(5, &cfg("0", "1")), (6, &cfg("0", "2"))]);
    let d = disk.boot(SafebootOptions { rollback: Some(Answer::No), ..Default::default() });
    assert!(has_log(&d, "Roll back cancelled by user."));
    assert_eq!((booted(&d), rollback_flag(&d), d.writes.len()), (Some(6), false, 0));
}

#[test]
fn rollback_fails_when_the_writer_cannot_place_the_digit() {
    // Bank 6 has no locatable bootstate (`boot=0` parses as 0, the writer
    // does not accept the abbreviation).
    let mut disk = Disk::new(&[(5, &cfg("0", "1")), (6, "boot=0\nbuild=6.7\nupdated=2\n")]);
    let d = disk.boot(shift_r());
    assert!(has_log(&d, "System has failed to roll back."));
    assert_eq!((booted(&d), rollback_flag(&d)), (Some(6), false));
}

#[test]
fn rollback_with_fake_write_error_changes_nothing_on_disk() {
    let mut disk = Disk::new(&[(5, &cfg("0", "1")), (6, &cfg("0", "2"))]);
    let d = disk.boot(SafebootOptions { rollback: Some(Answer::Yes), fake_write_error: true });
    assert_eq!((booted(&d), rollback_flag(&d)), (Some(5), true));
    assert_eq!(booted(&disk.boot(normal())), Some(6), "the next boot returns to the killed bank");
}

#[test]
fn rollback_flag_is_assigned_not_ored() {
    // The scan sets the flag (bank 7 failed to upgrade), and a refused
    // Shift+R then loses it.
    let mut disk = Disk::new(&[(5, &cfg("0", "1")), (7, "bootstate=2\nupdated=0\n")]);
    let plain = disk.clone().boot(normal());
    assert!(rollback_flag(&plain));
    let d = disk.boot(shift_r());
    assert!(has_log(&d, "No alternate hypervisor to roll back to."));
    assert!(!rollback_flag(&d));
}

#[test]
fn rollback_ties_go_to_the_lowest_partition_number() {
    let mut disk = Disk::new(&[(5, &cfg("0", "1")), (6, &cfg("0", "1")), (7, &cfg("0", "2"))]);
    assert_eq!(booted(&disk.boot(shift_r())), Some(5));
}

#[test]
fn no_hypervisor_means_no_rollback_prompt() {
    let d = Disk::new(&[(5, &cfg("3", "1"))]).boot(shift_r());
    assert_eq!(d.verdict, Verdict::NoHypervisor);
    assert!(!has_log(&d, "No alternate hypervisor to roll back to."));
}

// ---- invariants ----

fn arb_bank() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("0".to_owned()),
            Just("1".to_owned()),
            Just("2".to_owned()),
            Just("3".to_owned()),
            Just("4".to_owned()),
            Just("-1".to_owned()),
            Just(String::new())
        ],
        prop_oneof![Just(0u32), 1u32..5, Just(u32::MAX)],
        prop::bool::ANY,
        prop::bool::weighted(0.1),
    )
        .prop_map(|(state, updated, build, quickboot)| {
            let mut t = format!("bootstate={state}\nupdated={updated}\n");
            if build {
                t.push_str("build=7.0.3-1.0.1\n");
            }
            if quickboot {
                t.push_str("quickboot=1\n");
            }
            t
        })
}

fn arb_disk() -> impl Strategy<Value = Disk> {
    prop::collection::vec(arb_bank(), 1..5).prop_map(|banks| Disk {
        parts: banks.into_iter().enumerate().map(|(i, t)| (i as u32 + 5, Some(t.into_bytes()))).collect(),
        fail_writes: false,
    })
}

proptest! {
    #[test]
    fn selection_invariants(mut disk in arb_disk(), rollback in prop::option::of(prop_oneof![Just(Answer::Yes), Just(Answer::No)])) {
        let d = disk.boot(SafebootOptions { rollback, fake_write_error: false });
        if let Some(n) = booted(&d) {
            let b = bank(&d, n);
            prop_assert!(b.state_after == 0 || b.state_after == 2, "never INVALID or UPGRADING: {b:?}");
            prop_assert!(b.bootable);
            let best = d.banks.iter().filter(|x| x.bootable).map(|x| x.updated).max().unwrap();
            prop_assert_eq!(b.updated, best, "highest updated among bootable banks");
        }
        for b in &d.banks {
            let rolled_back = d.writes.iter().any(|w| w.number == b.number && w.reason == WriteReason::Rollback)
                || (matches!(d.verdict, Verdict::Chainload { rollback: true, .. }) && b.state_after == 3 && !b.bootable && b.state_before == 1);
            if b.state_before == 1 && b.ok && !b.quickboot && !rolled_back {
                prop_assert_eq!(b.state_after, 2, "UPGRADING becomes DIRTY");
            }
            if b.state_before == 2 {
                prop_assert_eq!(b.state_after, 3, "DIRTY becomes INVALID");
            }
        }
    }

    #[test]
    fn upgrading_becomes_dirty_exactly_once_then_invalid(mut disk in arb_disk()) {
        let first = disk.boot(normal());
        let second = disk.boot(normal());
        for b in first.banks.iter().filter(|b| b.state_before == 1 && b.state_after == 2) {
            let again = second.banks.iter().find(|x| x.number == b.number);
            if let Some(again) = again {
                prop_assert_eq!(again.state_before, 2);
                prop_assert_eq!(again.state_after, 3);
            }
        }
    }

    #[test]
    fn refused_shift_r_changes_nothing(disk in arb_disk()) {
        let plain = disk.clone().boot(normal());
        if plain.banks.iter().filter(|b| b.bootable).count() < 2 {
            let mut with = disk.clone();
            let d = with.boot(shift_r());
            let mut without = disk.clone();
            without.boot(normal());
            prop_assert_eq!(booted(&d), booted(&plain));
            prop_assert_eq!(&d.writes, &plain.writes);
            prop_assert_eq!(with.parts, without.parts);
        }
    }
}
