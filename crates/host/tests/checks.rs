//! The checks ESXi runs itself: backup.sh 1's `dosfsck -a` of partitions
//! 5, 6 and 8 when a check is due, and the upgrade's check of
//! `/altbootbank` before it writes there (KB 2033564).

use visorsim_boot::volume::scan_volumes;
use visorsim_disk::{BlockDevice, MemDisk, SectorSize};
use visorsim_host::clock::SimTime;
use visorsim_host::host::{bank_summaries, EventKind, Host, HostBootOptions, HostErrorKind};
use visorsim_image::install::{install_fresh, InstallOptions};
use visorsim_image::system::{ImageSpec, PayloadSize, SystemImage};
use visorsim_media::fat::{check_volume, FindingClass, Geometry};
use visorsim_media::layout::Layout;

use super::lifecycle::{events, image, installed};

const KB_2033564: &str = "There was an error checking file system on altbootbank, please see log for detail.";

/// Partition `number`'s (first LBA, sectors).
fn partition(disk: &mut MemDisk, number: u32) -> (u64, u64) {
    let v = scan_volumes(disk).volumes.into_iter().find(|v| v.number == number).unwrap();
    (v.first_lba, v.sectors)
}

/// Where a FAT16 bank's parts are (512-byte sectors).
struct Regions {
    geometry: Geometry,
    first_lba: u64,
    fat_lba: u64,
    data_lba: u64,
}

impl Regions {
    fn max_cluster(&self) -> u32 {
        self.geometry.clusters + 1
    }
}

fn regions(disk: &mut MemDisk, number: u32) -> Regions {
    let (first_lba, sectors) = partition(disk, number);
    let mut boot = vec![0u8; 512];
    disk.read_sectors(first_lba, &mut boot).unwrap();
    let geometry = Geometry::from_boot_sector(&boot, 512, sectors).unwrap();
    let fat_lba = first_lba + u64::from(geometry.reserved_sectors);
    let root_lba = fat_lba + u64::from(geometry.fats * geometry.fat_sectors);
    let data_lba = root_lba + u64::from(geometry.root_entries) * 32 / 512;
    Regions { geometry, first_lba, fat_lba, data_lba }
}

/// Marks the last cluster of partition `number` allocated (end of chain)
/// in every FAT copy, owned by no file: a lost cluster, as a power cut
/// between allocating and linking leaves one.
fn lose_a_cluster(disk: &mut MemDisk, number: u32) {
    let r = regions(disk, number);
    let cluster = u64::from(r.max_cluster());
    let (sector, offset) = ((cluster * 2) / 512, ((cluster * 2) % 512) as usize);
    for copy in 0..u64::from(r.geometry.fats) {
        let lba = r.fat_lba + copy * u64::from(r.geometry.fat_sectors) + sector;
        let mut buf = vec![0u8; 512];
        disk.read_sectors(lba, &mut buf).unwrap();
        assert_eq!(&buf[offset..offset + 2], &[0, 0], "a free cluster");
        buf[offset..offset + 2].copy_from_slice(&[0xFF, 0xFF]);
        disk.write_sectors(lba, &buf).unwrap();
    }
}

fn check(disk: &mut MemDisk, number: u32) -> visorsim_media::fat::FatCheck {
    let (first, sectors) = partition(disk, number);
    check_volume(disk, first, sectors)
}

/// The sectors from a bank's boot sector through its root directory.
fn metadata(disk: &mut MemDisk, number: u32) -> Vec<u8> {
    let r = regions(disk, number);
    let mut buf = vec![0u8; ((r.data_lba - r.first_lba) * 512) as usize];
    disk.read_sectors(r.first_lba, &mut buf).unwrap();
    buf
}

fn up_with(disk: &mut MemDisk, options: &HostBootOptions) -> Host {
    let mut host = Host::new(3, SimTime::default());
    host.boot(disk, options, None);
    assert!(host.running().is_some());
    host
}

#[test]
fn a_due_check_at_shutdown_repairs_and_logs_possible_corruption() {
    let mut disk = installed();
    let mut host = up_with(&mut disk, &HostBootOptions { fsck_every: 1, ..Default::default() });
    lose_a_cluster(&mut disk, 6);
    assert_eq!(check(&mut disk, 6).damage_classes().into_iter().collect::<Vec<_>>(), [FindingClass::LostClusters]);
    host.shutdown(&mut disk).unwrap();
    let fsck = events(&host, EventKind::Fsck);
    assert_eq!(fsck.len(), 3, "partitions 5, 6 and 8 of the esxi6 layout: {fsck:?}");
    assert!(fsck[0].starts_with("dosfsck -a partition 5 (check due at backup 1): clean"), "{fsck:?}");
    assert!(fsck[1].contains("partition 6") && fsck[1].contains("lost_clusters") && fsck[1].ends_with("repaired"));
    assert!(fsck[2].starts_with("dosfsck -a partition 8"), "{fsck:?}");
    let alerts = events(&host, EventKind::Alert);
    assert_eq!(alerts, ["Possible corruption on /dev/disks/mpx.vmhba32:C0:T0:L0:6"]);
    assert!(check(&mut disk, 6).is_clean(), "{}", check(&mut disk, 6).summary());
    // The check runs after the backup, which is saved.
    let host = up_with(&mut disk, &HostBootOptions::default());
    assert_eq!(host.etc().backup_counter(), Some(1));
}

#[test]
fn no_check_when_none_is_due() {
    let mut disk = installed();
    // Default: every 10th backup. The shutdown's backup is the first.
    let mut host = up_with(&mut disk, &HostBootOptions::default());
    lose_a_cluster(&mut disk, 6);
    host.shutdown(&mut disk).unwrap();
    assert!(events(&host, EventKind::Fsck).is_empty());
    assert!(events(&host, EventKind::Alert).is_empty());
    assert!(!check(&mut disk, 6).is_clean(), "left as it was");
    // fsck_every 0: never, even at counter 0 mod anything.
    let mut host = up_with(&mut disk, &HostBootOptions { fsck_every: 0, ..Default::default() });
    host.shutdown(&mut disk).unwrap();
    assert!(events(&host, EventKind::Fsck).is_empty());
    // And backup.sh 0 (hourly) never checks.
    let mut host = up_with(&mut disk, &HostBootOptions { fsck_every: 1, ..Default::default() });
    host.set_hostname("changed").unwrap();
    host.backup(&mut disk, false).unwrap();
    assert!(events(&host, EventKind::Fsck).is_empty());
}

#[test]
fn an_upgrade_into_a_damaged_alt_bank_is_refused_and_writes_nothing() {
    let mut disk = installed();
    let mut host = up_with(&mut disk, &HostBootOptions::default());
    lose_a_cluster(&mut disk, 6);
    let before = (metadata(&mut disk, 5), metadata(&mut disk, 6), bank_summaries(&mut disk));
    let err = host.upgrade(&mut disk, &image(2000, 4)).unwrap_err();
    assert_eq!(err.kind(), HostErrorKind::AltBankUnclean);
    assert_eq!(err.to_string(), KB_2033564);
    assert_eq!(events(&host, EventKind::Alert), [KB_2033564]);
    let fsck = events(&host, EventKind::Fsck);
    assert_eq!(fsck.len(), 1);
    assert!(fsck[0].starts_with("check of /altbootbank (partition 6): ") && fsck[0].contains("lost_clusters"));
    let after = (metadata(&mut disk, 5), metadata(&mut disk, 6), bank_summaries(&mut disk));
    assert!(before == after, "neither bank was written");
    // The running bank keeps booting; after a repair the upgrade goes through.
    let (first, sectors) = partition(&mut disk, 6);
    visorsim_media::fat::repair_volume(&mut disk, first, sectors).unwrap();
    host.upgrade(&mut disk, &image(2000, 4)).unwrap();
    let fsck = events(&host, EventKind::Fsck);
    assert_eq!(fsck.last().unwrap(), "check of /altbootbank (partition 6): clean");
}

#[test]
fn esxi_7_does_not_check_and_fails_while_writing_as_kb_442207_shows() {
    let seven = |build_number: u32, seed: u64| {
        let spec = ImageSpec {
            version: "7.0.3".into(),
            build_number,
            seed,
            payload: PayloadSize::Compressed(200_000),
            hostname: "h".into(),
        };
        SystemImage::build(&spec, None, &mut |_, _| {}).unwrap()
    };
    let options = InstallOptions { layout: Layout::Esxi7, size: None, sector_size: SectorSize::S512, seed: 3 };
    let mut disk = install_fresh(&seven(1000, 3), &options).unwrap().0;
    let mut host = up_with(&mut disk, &HostBootOptions::default());
    // Every FAT entry of the alt bank looks allocated.
    let r = regions(&mut disk, 6);
    let fats = vec![0xFF; (u64::from(r.geometry.fats * r.geometry.fat_sectors) * 512) as usize];
    disk.write_sectors(r.fat_lba, &fats).unwrap();
    let err = host.upgrade(&mut disk, &seven(2000, 4)).unwrap_err();
    assert_eq!(err.kind(), HostErrorKind::UpgradeNoSpace, "{err}");
    assert!(events(&host, EventKind::Fsck).is_empty(), "no check on 7.x");
}
