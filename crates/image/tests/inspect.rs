//! `inspect` on the fresh install and on damaged copies of it: a clean disk
//! has no problems, and every problem names where it is (partition, LBA
//! and byte offset, file).

use visorsim_disk::{BlockDevice, MemDisk, SectorSize};
use visorsim_image::inspect::{inspect, DiskReport};
use visorsim_image::install::write_files;
use visorsim_image::system::ImageFile;
use visorsim_media::layout::Layout;

use crate::util::{esxi6, esxi6_partition};

/// "Partition n (LBA l, byte b)", as every partition problem starts.
fn where_(number: u32) -> String {
    let lba = esxi6_partition(number).first_lba(512);
    format!("Partition {number} (LBA {lba}, byte {})", lba * 512)
}

/// Inspects `disk`, expecting exactly one problem; returns it.
fn one_problem(disk: &mut MemDisk) -> (DiskReport, String) {
    let report = inspect(disk);
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    let problem = report.problems[0].clone();
    (report, problem)
}

/// Zeroes sector `lba` of `disk`.
fn zero_sector(disk: &mut MemDisk, lba: u64) {
    disk.write_sectors(lba, &[0u8; 512]).unwrap();
}

#[test]
fn a_fresh_install_has_no_problems() {
    let report = inspect(&mut esxi6().disk.fork());
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_eq!(report.layout, Some(Layout::Esxi6));
    let bank5 = report.partitions.iter().find(|p| p.number == 5).and_then(|p| p.fat.as_ref()).unwrap();
    let names: Vec<_> = bank5.modules.iter().map(|m| m.name.as_str()).collect();
    let wanted: Vec<_> = esxi6().image.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, wanted, "every module listed and checked, kernel first");
    assert!(bank5.modules.iter().all(|m| m.present && m.check.as_ref().is_some_and(|c| c.outcome.is_ok())));
    let bank6 = report.partitions.iter().find(|p| p.number == 6).and_then(|p| p.fat.as_ref()).unwrap();
    assert!(bank6.files.is_empty() && bank6.vmware_uuid.is_some());
}

#[test]
fn a_corrupt_module_names_the_partition_and_file() {
    let fixture = esxi6();
    let mut disk = fixture.disk.fork();
    let mut sv00 = fixture.image.files.iter().find(|f| f.name == "s.v00").unwrap().clone();
    let n = sv00.data.len();
    sv00.data[n - 8] ^= 1; // trailer CRC
    write_files(&mut disk, &esxi6_partition(5), &[sv00]).unwrap();
    let (_, problem) = one_problem(&mut disk);
    assert!(problem.starts_with(&format!("{}: module s.v00: ", where_(5))), "{problem}");
    assert!(problem.contains("CRC"), "{problem}");
}

#[test]
fn a_module_missing_from_the_bank_is_named() {
    let fixture = esxi6();
    let mut disk = fixture.disk.fork();
    let mut cfg = fixture.image.boot_cfg.clone();
    cfg.modules.push("gone.v00".into());
    write_files(
        &mut disk,
        &esxi6_partition(5),
        &[ImageFile { name: "boot.cfg".into(), data: cfg.render().into_bytes() }],
    )
    .unwrap();
    let (_, problem) = one_problem(&mut disk);
    assert!(
        problem.starts_with(&format!("{}: module gone.v00 is listed in boot.cfg but missing", where_(5))),
        "{problem}"
    );
}

#[test]
fn a_wiped_vmware_uuid_names_its_byte_offset() {
    let mut disk = esxi6().disk.fork();
    let first = esxi6_partition(6).first_lba(512);
    zero_sector(&mut disk, first + 1);
    let (_, problem) = one_problem(&mut disk);
    assert!(problem.starts_with(&format!("{}: no VMware FAT UUID", where_(6))), "{problem}");
    assert!(problem.contains(&format!("at byte {} (sector 1)", (first + 1) * 512)), "{problem}");
}

#[test]
fn a_wiped_boot_sector_names_its_byte_offset() {
    let mut disk = esxi6().disk.fork();
    let first = esxi6_partition(5).first_lba(512);
    zero_sector(&mut disk, first);
    let (report, problem) = one_problem(&mut disk);
    assert!(
        problem.starts_with(&format!("{}: no readable FAT boot sector at byte {}: ", where_(5), first * 512)),
        "{problem}"
    );
    assert!(report.partitions.iter().find(|p| p.number == 5).unwrap().fat.is_none());
}

#[test]
fn a_damaged_primary_gpt_names_its_lba_and_falls_back_to_the_backup() {
    let mut disk = esxi6().disk.fork();
    zero_sector(&mut disk, 1);
    let (report, problem) = one_problem(&mut disk);
    assert!(problem.contains("LBA 1"), "{problem}");
    assert!(problem.contains("the backup GPT is intact and is shown instead"), "{problem}");
    assert_eq!(report.layout, Some(Layout::Esxi6), "the backup's table");
}

#[test]
fn an_empty_image_says_so() {
    let report = inspect(&mut MemDisk::new(0, SectorSize::S512));
    assert_eq!(report.problems, ["The image is empty (0 bytes): no partition table"]);
    assert!(report.partitions.is_empty());
}
