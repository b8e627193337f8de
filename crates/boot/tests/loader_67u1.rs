//! The ESXi 6.7u1/6.7u2 loader against the current one (docs/bootloader.md:
//! Older loader): one named test per difference, each running the same
//! banks through both loaders and asserting both outcomes. Banks are given
//! as boot.cfg text, as on disk; the partition-type difference needs a real
//! partition table and is tested on a built disk in the CLI tests
//! (`harness/tests/explain.rs`).

use visorsim_boot::safeboot::*;
use visorsim_boot::status::EsxStatus;
use visorsim_media::vmfat::VmfatUuid;

/// Partition number → boot.cfg text (`None`: no VMware FAT magic).
fn facts(parts: &[(u32, Option<&str>)]) -> Vec<PartitionFacts> {
    parts
        .iter()
        .map(|(n, text)| PartitionFacts {
            number: *n,
            probe: match text {
                Some(t) => Probe::from_boot_cfg(VmfatUuid([*n as u8; 16]), t.as_bytes()),
                None => Probe::NoUuid,
            },
        })
        .collect()
}

fn run(parts: &[(u32, Option<&str>)], options: SafebootOptions, loader: LoaderVersion) -> Decision {
    decide_with(&facts(parts), options, loader, &mut |_: &StateWrite| -> Result<(), EsxStatus> { Ok(()) })
}

/// Both loaders over the same banks: (current, 6.7u1).
fn both(parts: &[(u32, Option<&str>)], options: SafebootOptions) -> (Decision, Decision) {
    (run(parts, options, LoaderVersion::Current), run(parts, options, LoaderVersion::V67u1))
}

fn booted(d: &Decision) -> Option<u32> {
    match d.verdict {
        Verdict::Chainload { bank, .. } => Some(bank),
        _ => None,
    }
}

fn scanned(d: &Decision) -> Vec<u32> {
    d.banks.iter().map(|b| b.number).collect()
}

fn logged(d: &Decision, level: Level, text: &str) -> bool {
    d.log.iter().any(|l| l.level == level && l.text == text)
}

const V1: &str = "bootstate=0\nbuild=6.7.0-1\nupdated=1\n";
const V2: &str = "bootstate=0\nbuild=6.7.0-2\nupdated=2\n";
const V3: &str = "bootstate=0\nbuild=6.7.0-3\nupdated=3\n";
const INVALID: &str = "bootstate=3\nbuild=6.7.0-2\nupdated=2\n";

fn shift_r() -> SafebootOptions {
    SafebootOptions { rollback: Some(Answer::Yes), ..Default::default() }
}

#[test]
fn only_partitions_5_and_6_are_banks_for_the_old_loader() {
    // A bank at partition 7 with the highest counter, and one at 3.
    let parts = [(3, Some(V3)), (5, Some(V1)), (6, Some(V2)), (7, Some(V3))];
    let (current, old) = both(&parts, SafebootOptions::default());
    assert_eq!(scanned(&current), vec![3, 5, 6], "the current loader walks every partition, three banks at most");
    assert_eq!(booted(&current), Some(3));
    assert_eq!(scanned(&old), vec![5, 6], "the old loader looks at 5 and 6 only");
    assert_eq!(booted(&old), Some(6));
}

#[test]
fn quickboot_is_an_unknown_key_for_the_old_loader() {
    let parts = [(5, Some(V1)), (6, Some("bootstate=0\nbuild=6.7.0-2\nupdated=2\nquickboot=1\n"))];
    let (current, old) = both(&parts, SafebootOptions::default());
    let six = |d: &Decision| d.banks.iter().find(|b| b.number == 6).cloned().unwrap();
    assert!(six(&current).quickboot && !six(&current).bootable, "current: quickboot makes the bank unbootable");
    assert_eq!(six(&current).state_after, 3);
    assert_eq!(booted(&current), Some(5));
    assert!(!six(&old).quickboot && six(&old).bootable, "6.7u1: quickboot= is ignored like any unknown key");
    assert_eq!(booted(&old), Some(6));
    assert!(old.writes.is_empty());
}

#[test]
fn options_carry_from_bank_5_into_bank_6_in_the_old_loader() {
    // Bank 6 sets no build: the old loader keeps bank 5's.
    let parts = [(5, Some(V1)), (6, Some("bootstate=0\nupdated=2\n"))];
    let (current, old) = both(&parts, SafebootOptions::default());
    assert!(logged(&current, Level::Error, "BANK6: invalid build number."));
    assert_eq!(booted(&current), Some(5), "current: options are reset, bank 6 has no build");
    assert!(!logged(&old, Level::Error, "BANK6: invalid build number."));
    assert_eq!(old.banks[1].build.as_deref(), Some("6.7.0-1"), "6.7u1: bank 5's build carried over");
    assert_eq!(booted(&old), Some(6));
}

#[test]
fn a_missing_bootstate_in_bank_6_keeps_bank_5s_state_in_the_old_loader() {
    // Bank 5 is a trial (UPGRADING); bank 6 has no bootstate line.
    let parts = [(5, Some("bootstate=1\nbuild=6.7.0-3\nupdated=3\n")), (6, Some("build=6.7.0-2\nupdated=2\n"))];
    let (current, old) = both(&parts, SafebootOptions::default());
    assert_eq!(scanned(&current), vec![5, 6]);
    assert_eq!((current.banks[1].state_before, current.banks[1].bootable), (0, true), "current: missing means VALID");
    // 6.7u1: bank 6 inherits bootstate=1, so it needs UPGRADING -> DIRTY
    // written, and the writer finds no bootstate line to put it in: the
    // bank is dropped with the countdown.
    assert!(logged(&old, Level::Error, "BANK6: boot state not found."), "{:?}", old.log);
    assert_eq!(scanned(&old), vec![5]);
    assert_eq!((current.countdowns, old.countdowns), (0, 1));
}

#[test]
fn lines_before_a_syntax_error_in_bank_5_carry_into_bank_6_in_the_old_loader() {
    // Bank 5 is rejected at its second line, after build= was applied.
    let parts = [(5, Some("build=6.7.0-9\nupdated=1x\n")), (6, Some("bootstate=0\nupdated=2\n"))];
    let (current, old) = both(&parts, SafebootOptions::default());
    assert_eq!(booted(&current), None, "current: bank 6 has no build, bank 5 is rejected");
    assert_eq!(booted(&old), Some(6), "6.7u1: build=6.7.0-9 from the rejected file stays set");
    assert_eq!((old.banks[0].number, old.banks[0].build.as_deref()), (6, Some("6.7.0-9")));
}

#[test]
fn shift_r_needs_both_of_the_two_banks_in_the_old_loader() {
    // Bank 6 is invalid; a third bank at 7 is valid.
    let parts = [(5, Some(V1)), (6, Some(INVALID)), (7, Some(V2))];
    let (current, old) = both(&parts, shift_r());
    assert_eq!(booted(&current), Some(5), "current: 7 is rolled back, 5 boots");
    assert!(matches!(current.verdict, Verdict::Chainload { rollback: true, .. }));
    assert!(logged(&old, Level::Error, "No alternate hypervisor to roll back to."));
    assert_eq!(booted(&old), Some(5), "6.7u1: only bank 5 is bootable, the default boots");
    assert!(matches!(old.verdict, Verdict::Chainload { rollback: false, .. }));
}

#[test]
fn the_old_loader_lists_hypervisor1_and_2_at_shift_r() {
    let parts = [(5, Some(V1)), (6, Some(V2))];
    let (current, old) = both(&parts, shift_r());
    assert!(!current.log.iter().any(|l| l.text.starts_with("HYPERVISOR")));
    assert!(logged(&old, Level::Info, "HYPERVISOR1: BANK5 build 6.7.0-1"), "{:?}", old.log);
    assert!(logged(&old, Level::Info, "HYPERVISOR2: BANK6 build 6.7.0-2"));
    assert_eq!((booted(&current), booted(&old)), (Some(5), Some(5)), "the rollback itself is the same");
}

#[test]
fn the_old_loader_logs_a_partition_without_the_magic_as_an_error() {
    let parts = [(5, None), (6, Some(V2))];
    let (current, old) = both(&parts, SafebootOptions::default());
    assert!(logged(&current, Level::Debug, "BANK5: no bank UUID: Not found."));
    assert!(logged(&old, Level::Error, "BANK5: not a VMware boot bank"));
    assert_eq!((booted(&current), booted(&old)), (Some(6), Some(6)));
}

#[test]
fn the_old_loader_logs_a_rejected_boot_cfg_as_invalid_configuration() {
    let parts = [(5, Some(V1)), (6, Some("bootstate=0 # c\nbuild=6.7.0-2\nupdated=2\n"))];
    let (current, old) = both(&parts, SafebootOptions::default());
    assert!(logged(&current, Level::Debug, "BANK6: no valid configuration file."));
    assert!(logged(&old, Level::Error, "BANK6: invalid configuration."));
    assert!(!old.log.iter().any(|l| l.text == "BANK6: no valid configuration file."));
}

#[test]
fn loader_names_round_trip() {
    for loader in LoaderVersion::ALL {
        assert_eq!(loader.name().parse::<LoaderVersion>(), Ok(loader));
    }
    assert_eq!("6.7u2".parse::<LoaderVersion>(), Ok(LoaderVersion::V67u1), "6.7u2 shipped the same loader");
    assert!("7.0".parse::<LoaderVersion>().is_err());
}
