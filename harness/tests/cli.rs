//! End-to-end tests of the `visorsim` binary: build → inspect round trip,
//! determinism, interop with real tools, and bad input.

use std::fs;

use visorsim_testkit::require_tool;
use visorsim_tools::Sgdisk;

use crate::util::*;

#[test]
fn build_then_inspect_gives_back_every_field() {
    for fixture in [esxi6(), esxi7()] {
        let (code, report) = inspect_json(&fixture.image);
        assert_eq!(code, 0, "a fresh image has no problems: {}", report["problems"]);
        let m = &fixture.manifest;
        assert_eq!(report["layout"], m["layout"]);
        assert_eq!(report["size"], m["size"]);
        assert_eq!(report["disk_guid"], m["disk_guid"]);
        assert_eq!(report["gpt_source"], "primary");
        let partition =
            |n: u64| report["partitions"].as_array().unwrap().iter().find(|p| p["number"] == n).unwrap().clone();
        for pair in m["bank_uuids"].as_array().unwrap() {
            let bank = partition(pair[0].as_u64().unwrap());
            assert_eq!(bank["fat"]["vmware_uuid"], pair[1], "bank UUID");
            assert!(pair[1].as_str().unwrap().starts_with('7'), "ESXi's installer makes the first nibble 7");
            assert_eq!(bank["fat"]["fat_type"], "Fat16");
        }
        let bank5 = partition(5);
        assert_eq!(bank5["fat"]["boot_cfg"], m["boot_cfg"], "boot.cfg round trip");
        assert_eq!(bank5["fat"]["boot_cfg"]["bootstate"], 0);
        assert_eq!(bank5["fat"]["boot_cfg"]["updated"], 1);
        let modules = bank5["fat"]["modules"].as_array().unwrap();
        let built = m["modules"].as_array().unwrap();
        assert_eq!(modules.len(), built.len(), "kernel + every module");
        for (got, want) in modules.iter().zip(built) {
            assert_eq!(got["name"], want[0]);
            assert_eq!(got["file_size"], want[1]);
            assert!(got["outcome"]["Ok"].is_string(), "{} is sound: {}", got["name"], got["outcome"]);
        }
        let bank6 = partition(6);
        assert_eq!(bank6["fat"]["files"].as_array().unwrap().len(), 0, "bank 6 formatted but empty");
        assert!(bank6["fat"]["boot_cfg"].is_null());
    }
}

#[test]
fn esxi6_partition_table_is_the_real_one() {
    let (_, report) = inspect_json(&esxi6().image);
    let rows: Vec<(u64, u64, u64)> = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["number"].as_u64().unwrap(), p["start"].as_u64().unwrap(), p["end"].as_u64().unwrap()))
        .collect();
    for want in [
        (1, 64, 8191),
        (5, 8224, 520191),
        (6, 520224, 1032191),
        (7, 1032224, 1257471),
        (8, 1257504, 1843199),
        (9, 1843200, 7086079),
        (2, 7086080, 15472639),
    ] {
        assert!(rows.contains(&want), "{want:?} in {rows:?}");
    }
    let human = stdout(&visorsim(&["inspect", esxi6().image.to_str().unwrap()]));
    assert!(human.contains("5 8224 520191 EBD0A0A2B9E5443387C068B6B72699C7 linuxNative"), "{human}");
}

#[test]
fn same_seed_gives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let again = dir.path().join("again.img");
    let out =
        visorsim(&["build", "--layout", "esxi6", "--out", again.to_str().unwrap(), "--seed", "7", "--payload-mb", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sparse_hash(&again), sparse_hash(&esxi6().image));
    let other = dir.path().join("other.img");
    assert!(visorsim(&["build", "--out", other.to_str().unwrap(), "--seed", "8", "--payload-mb", "1"])
        .status
        .success());
    assert_ne!(sparse_hash(&other), sparse_hash(&esxi6().image));
}

#[test]
fn output_is_sparse() {
    let meta = fs::metadata(&esxi6().image).unwrap();
    use std::os::unix::fs::MetadataExt;
    let allocated = meta.blocks() * 512;
    assert!(meta.len() >= 7 << 30, "an ESXi 6 disk is about 8 GiB virtual");
    assert!(allocated < 64 << 20, "only data is allocated: {allocated} bytes");
}

#[test]
fn sgdisk_verifies_the_gpt() {
    let Some(sgdisk) = require_tool!("sgdisk", "gdisk") else { return };
    let sgdisk = Sgdisk::with_program(sgdisk);
    for fixture in [esxi6(), esxi7()] {
        let report = sgdisk.verify(&fixture.image).expect("sgdisk -v runs");
        assert!(report.is_clean(), "sgdisk -v: {}", report.text());
    }
}

#[test]
fn fsck_fat_finds_every_fat_partition_clean() {
    let Some(fsck) = require_tool!("fsck.fat", "dosfstools") else { return };
    for fixture in [esxi6(), esxi7()] {
        let (_, report) = inspect_json(&fixture.image);
        let fat_parts: Vec<u64> = report["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| !p["fat"].is_null())
            .map(|p| p["number"].as_u64().unwrap())
            .collect();
        assert!(fat_parts.contains(&5) && fat_parts.contains(&6) && fat_parts.contains(&1));
        for n in fat_parts {
            let (offset, len) = partition_extent(&report, n);
            let part = fixture.dir.path().join(format!("part{n}.fat"));
            extract(&fixture.image, offset, len, &part);
            let (ok, text) = run_tool(&fsck, &["-n", "-v", part.to_str().unwrap()]);
            assert!(ok, "fsck.fat -n on partition {n}: {text}");
            assert!(text.contains("16 bit entries"), "partition {n} is FAT16: {text}");
            for complaint in ["Dirty bit", "differ", "invalid", "Orphan", "lost"] {
                assert!(!text.contains(complaint), "fsck.fat on partition {n} complains ({complaint}): {text}");
            }
            fs::remove_file(part).unwrap();
        }
    }
}

#[test]
fn mtools_list_and_print_boot_cfg() {
    let Some(mdir) = require_tool!("mdir", "mtools") else { return };
    let Some(mtype) = require_tool!("mtype", "mtools") else { return };
    let fixture = esxi6();
    let (_, report) = inspect_json(&fixture.image);
    let (offset, _) = partition_extent(&report, 5);
    let target = format!("{}@@{offset}", fixture.image.display());
    let (ok, listing) = run_tool(&mdir, &["-i", &target, "::/"]);
    assert!(ok, "mdir: {listing}");
    for name in ["boot.cfg", "b.b00", "s.v00", "state.tgz", "imgdb.tgz"] {
        assert!(listing.lines().any(|l| l.ends_with(name)), "mdir lists {name}: {listing}");
    }
    let (ok, text) = run_tool(&mtype, &["-i", &target, "::/boot.cfg"]);
    assert!(ok, "mtype: {text}");
    let want = format!("build={}", fixture.manifest["boot_cfg"]["build"].as_str().unwrap());
    assert!(text.starts_with("bootstate=0\n") && text.contains(&want) && text.contains("updated=1"), "{text}");
}

#[test]
fn export_qcow2_passes_qemu_img_check() {
    let Some(qemu_img) = require_tool!("qemu-img", "qemu-utils") else { return };
    let dir = tempfile::tempdir().unwrap();
    let qcow2 = dir.path().join("disk.qcow2");
    let out =
        visorsim(&["export", esxi6().image.to_str().unwrap(), "--format", "qcow2", "--out", qcow2.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (ok, text) = run_tool(&qemu_img, &["check", qcow2.to_str().unwrap()]);
    assert!(ok && text.contains("No errors were found"), "qemu-img check: {text}");
    let entries: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, ["disk.qcow2"], "no temp files left");
}

#[test]
fn raw_to_vmdk_to_raw_is_byte_identical() {
    if require_tool!("qemu-img", "qemu-utils").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vmdk = dir.path().join("disk.vmdk");
    let back = dir.path().join("back.img");
    let image = &esxi7().image;
    let out = visorsim(&["export", image.to_str().unwrap(), "--format", "vmdk", "--out", vmdk.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = visorsim(&["import", vmdk.to_str().unwrap(), "--out", back.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Imported"), "{}", stdout(&out));
    assert_eq!(fs::metadata(&back).unwrap().len(), fs::metadata(image).unwrap().len());
    assert_eq!(sparse_hash(&back), sparse_hash(image));
}

#[test]
fn four_kn_disk_is_a_clean_fat16_with_the_uuid_at_4096() {
    let Some(fsck) = require_tool!("fsck.fat", "dosfstools") else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("4kn.img");
    let out = visorsim(&[
        "build",
        "--layout",
        "esxi6",
        "--sector-size",
        "4096",
        "--out",
        image.to_str().unwrap(),
        "--payload-mb",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = visorsim(&["inspect", "--json", "--sector-size", "4096", image.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["sector_size"], 4096);
    let p5 = report["partitions"].as_array().unwrap().iter().find(|p| p["number"] == 5).unwrap();
    let start = p5["start"].as_u64().unwrap();
    assert_eq!(start, 8224 / 8, "same byte layout as on 512-byte media");
    let len = (p5["end"].as_u64().unwrap() - start + 1) * 4096;
    let part = dir.path().join("p5.fat");
    extract(&image, start * 4096, len, &part);
    let bytes = fs::read(&part).unwrap();
    assert_eq!(&bytes[4096..4112], b"VMWARE FAT16    ", "UUID in the partition's second 4 KiB sector");
    let (ok, text) = run_tool(&fsck, &["-n", "-v", part.to_str().unwrap()]);
    assert!(ok && text.contains("4096 bytes per logical sector"), "{text}");
}
