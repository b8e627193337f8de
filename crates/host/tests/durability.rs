//! The durability boundary of the boot banks (`CacheMode`): with the
//! default write-back, backup.sh's steps reach the device as the same
//! writes as with write-through, but only its `sync` is a flush, so a power
//! cut before that `sync` may lose any of them, across the steps.

use visorsim_disk::{CacheModel, FaultPlan, Faulty, LoggedIo, MemDisk, WriteLog};
use visorsim_host::bank::{Bank, BankEntry, BankLocation, CacheMode};
use visorsim_host::clock::SimTime;
use visorsim_host::host::{Host, HostBootOptions, HostState};

use super::lifecycle::installed;

/// A host up on a fresh install with its banks in `cache` mode, with one
/// backup made and a change not yet saved.
fn up_with(cache: CacheMode) -> (MemDisk, Host) {
    let mut disk = installed();
    let mut host = Host::new(3, SimTime::default());
    host.boot(&mut disk, &HostBootOptions { cache, ..Default::default() }, None);
    host.set_hostname("saved").unwrap();
    host.backup(&mut disk, false).unwrap();
    host.set_hostname("unsaved").unwrap();
    (disk, host)
}

/// backup.sh 0's I/O, as the device sees it.
fn backup_log(cache: CacheMode) -> Vec<LoggedIo> {
    let (disk, mut host) = up_with(cache);
    let mut log = WriteLog::new(disk);
    host.backup(&mut log, false).unwrap();
    log.into_parts().1
}

fn flushes(log: &[LoggedIo]) -> usize {
    log.iter().filter(|e| matches!(e, LoggedIo::Flush)).count()
}

fn writes(log: &[LoggedIo]) -> Vec<&LoggedIo> {
    log.iter().filter(|e| !matches!(e, LoggedIo::Flush)).collect()
}

fn bank5(host: &Host) -> BankLocation {
    host.running().unwrap().bootbank.clone()
}

fn names(entries: Vec<BankEntry>) -> Vec<String> {
    let mut names: Vec<String> = entries.into_iter().map(|e| e.name).collect();
    names.sort();
    names
}

#[test]
fn write_back_is_the_default_and_flushes_only_at_sync() {
    assert_eq!(CacheMode::default(), CacheMode::WriteBack);
    assert_eq!(HostBootOptions::default().cache, CacheMode::WriteBack);
    let back = backup_log(CacheMode::WriteBack);
    let through = backup_log(CacheMode::WriteThrough);
    assert_eq!(writes(&back), writes(&through), "the same writes in the same order; only the flushes differ");
    // Write-back: one flush, backup.sh's `sync` after `mv -f`; `rm -rf
    // state.$$` after it stays unflushed.
    assert_eq!(flushes(&back), 1, "{back:?}");
    let sync = back.iter().position(|e| matches!(e, LoggedIo::Flush)).unwrap();
    assert!(back[sync + 1..].iter().any(|e| matches!(e, LoggedIo::Write { .. })), "rm -rf state.$$ follows the sync");
    // Write-through: every step ends with one: write, mkdir, mv, write,
    // mv -f, sync, rm -rf at least.
    assert!(flushes(&through) >= 7, "{} flushes", flushes(&through));
    let first = through.iter().position(|e| matches!(e, LoggedIo::Flush)).unwrap();
    assert!(first < sync, "write-through's first epoch is one step, write-back's spans the steps up to sync");
}

/// Power is cut right after the last write before backup.sh's `sync`, with
/// a volatile cache that loses every unflushed write.
fn cut_before_sync(cache: CacheMode) -> (MemDisk, BankLocation) {
    let log = backup_log(CacheMode::WriteBack);
    let before_sync = log.iter().take_while(|e| !matches!(e, LoggedIo::Flush)).count() as u64;
    let (disk, mut host) = up_with(cache);
    let bank = bank5(&host);
    let plan = FaultPlan {
        power_cut_after_writes: Some(before_sync),
        volatile_cache: Some(CacheModel { max_reorder: usize::MAX, drop_probability_percent: 100 }),
        ..FaultPlan::default()
    };
    let mut faulty = Faulty::new(disk, plan);
    assert!(host.backup(&mut faulty, false).is_err(), "the sync meets the power cut");
    assert!(faulty.power_lost());
    host.power_off();
    (faulty.into_inner(), bank)
}

#[test]
fn a_cut_before_sync_loses_every_step_in_write_back_but_only_the_last_in_write_through() {
    // Write-back: nothing of the run reached the media; the bank is as the
    // first backup left it, and the next boot restores "saved".
    let (mut disk, bank) = cut_before_sync(CacheMode::WriteBack);
    let (mut before, _) = up_with(CacheMode::WriteBack);
    assert_eq!(names(bank.list(&mut disk, None).unwrap()), names(bank.list(&mut before, None).unwrap()));
    assert_eq!(
        bank.read(&mut disk, "state.tgz", 1 << 26).unwrap(),
        bank.read(&mut before, "state.tgz", 1 << 26).unwrap()
    );
    let mut host = Host::new(3, SimTime::default());
    host.boot(&mut disk, &HostBootOptions::default(), None);
    assert_eq!(host.etc().hostname().as_deref(), Some("saved"));

    // Write-through: the steps before `mv -f` were flushed, so their files
    // are there (state.tgz.$$, state.$$); the rename itself was lost.
    let (mut disk, bank) = cut_before_sync(CacheMode::WriteThrough);
    let listed = names(bank.list(&mut disk, None).unwrap());
    assert!(listed.iter().any(|n| n.starts_with("state.tgz.")), "{listed:?}");
    assert!(listed.iter().any(|n| n.starts_with("state.") && !n.starts_with("state.tgz")), "{listed:?}");
}

#[test]
fn an_orderly_shutdown_flushes_what_write_back_held() {
    let (disk, mut host) = up_with(CacheMode::WriteBack);
    let mut log = WriteLog::new(disk);
    host.shutdown(&mut log).unwrap();
    let log = log.into_parts().1;
    assert!(matches!(log.last(), Some(LoggedIo::Flush)), "the unmount at shutdown is the last I/O");
}

#[test]
fn the_mode_is_kept_by_the_banks_and_saved_with_the_host() {
    let (_, host) = up_with(CacheMode::WriteThrough);
    let running = host.running().unwrap();
    let BankLocation::Partition(bank) = &running.bootbank else { panic!("a FAT bank") };
    assert_eq!(bank.cache, CacheMode::WriteThrough);
    let value = serde_json::to_value(host.save()).unwrap();
    assert_eq!(value["running"]["bootbank"]["Partition"]["cache"], "writethrough");
    let back: HostState = serde_json::from_value(value).unwrap();
    assert_eq!(back, host.save());
    // The default is left out, so older host.json files keep their shape.
    let (_, host) = up_with(CacheMode::WriteBack);
    let value = serde_json::to_value(host.save()).unwrap();
    assert!(value["running"]["bootbank"]["Partition"].get("cache").is_none(), "{value}");
    assert_eq!(CacheMode::from_name("WriteThrough"), Some(CacheMode::WriteThrough));
    assert_eq!(CacheMode::from_name("none"), None);
    assert_eq!(CacheMode::WriteBack.to_string(), "writeback");
}
