//! `visorsim explain` on the disks a support engineer receives: one built
//! by `visorsim build`, one built by standard tools only (sgdisk, mkfs.fat,
//! mtools, dd), the same as vmdk and qcow2, one with an unconfirmed
//! upgrade, one with a corrupt primary GPT, and one whose booted bank lists
//! a module it does not hold. Also the 6.7u1 loader's missing type check on
//! a real partition table (`--loader` on `explain` and `boot`).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use visorsim_testkit::require_tool;

use crate::util::*;

/// A private copy of the esxi6 fixture.
fn copy_fixture(dir: &Path) -> PathBuf {
    let path = dir.join("disk.img");
    let src = &esxi6().image;
    extract(src, 0, fs::metadata(src).unwrap().len(), &path);
    path
}

fn explain_json(image: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["explain", "--json", image.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = visorsim(&args);
    assert!(out.status.success(), "explain failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("explain --json prints JSON")
}

fn risks(v: &Value) -> Vec<String> {
    v["risks"].as_array().unwrap().iter().map(|r| r["text"].as_str().unwrap().to_owned()).collect()
}

fn bank(v: &Value, n: u64) -> &Value {
    v["banks"].as_array().unwrap().iter().find(|b| b["number"] == n).expect("bank in the story")
}

/// The disk `sh` builds with sgdisk, mkfs.fat, mtools and dd only: an ESP
/// with the loader files, bank 5 (VALID, updated=1) and bank 6 (UPGRADING,
/// updated=2, partition type `type6`), each with the VMware magic, a
/// boot.cfg and two tiny modules (the "kernel" is not a real one).
pub(crate) fn standard_tools_disk(dir: &Path, type6: &str) -> Option<PathBuf> {
    require_tool!("sgdisk", "gdisk")?;
    require_tool!("mkfs.fat", "dosfstools")?;
    require_tool!("mcopy", "mtools")?;
    let image = dir.join(format!("std-{type6}.img"));
    let script = r#"
set -e
img=$1; t6=$2; cd "$3"
truncate -s 100M "$img"
# mkfs.fat clears anything that looks like a partition table, so the file
# systems go first, at the offsets sgdisk's alignment gives, then the GPT.
mkfs.fat --offset=2048 "$img" 4096 >/dev/null 2>&1
mkfs.fat -F 16 -R 2 --offset=10240 "$img" 32768 >/dev/null 2>&1
mkfs.fat -F 16 -R 2 --offset=75776 "$img" 32768 >/dev/null 2>&1
sgdisk -o -n 1:2048:+4M -t 1:ef00 -n 5:10240:+32M -t 5:0700 -n 6:75776:+32M -t 6:$t6 "$img" >/dev/null
echo efi > loader.efi
mmd -i "$img@@1048576" ::/EFI ::/EFI/BOOT ::/EFI/VMware
mcopy -i "$img@@1048576" loader.efi ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$img@@1048576" loader.efi ::/EFI/VMware/mboot64.efi
for p in 5 6; do
  if [ $p = 5 ]; then start=10240; state=0; else start=75776; state=1; fi
  printf 'VMWARE FAT16    0123456789abcde'$p | dd of="$img" bs=1 seek=$(( (start+1)*512 )) conv=notrunc status=none
  printf "bootstate=$state\ntitle=Loading\nkernel=b.b00\nkernelopt=\nmodules=b.b00 --- s.v00\nbuild=6.7.0-$p\nupdated=$((p-4))\nbootstate = 3\n" > boot.cfg
  mcopy -o -i "$img@@$((start*512))" boot.cfg ::/boot.cfg
  echo not-a-kernel > b.b00; gzip -nc b.b00 > s.v00
  mcopy -o -i "$img@@$((start*512))" b.b00 s.v00 ::/
done
"#;
    let out = Command::new("sh")
        .args(["-c", script, "sh", image.to_str().unwrap(), type6, dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "building the disk: {}", String::from_utf8_lossy(&out.stderr));
    Some(image)
}

#[test]
fn explain_tells_a_fresh_install_with_its_restore() {
    let v = explain_json(&esxi6().image, &[]);
    assert_eq!(v["format"], "raw");
    assert_eq!(v["loader"], "current");
    assert_eq!(v["next_boot"]["bank"], 5);
    assert_eq!(v["next_boot"]["booted"], true);
    assert_eq!(v["restore"]["bank"], 5);
    assert_eq!(v["restore"]["usable"], true);
    assert_eq!(v["restore"]["hostname"], "esxi-01");
    assert!(v["restore"]["files"].as_array().unwrap().iter().any(|f| f == "etc/vmware/esx.conf"));
    let five = bank(&v, 5);
    assert_eq!(five["bootstate_on_disk"], "'0' at byte 10");
    assert_eq!(five["fat"], "clean");
    assert!(five["modules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "s.v00" && m["short_name"] == "S       V00"));
    assert!(v["next_boot"]["points"][0]["rule"].as_str().unwrap().starts_with("docs/bootloader.md#"));
    // The text tells the same story, with the rules.
    let out = visorsim(&["explain", esxi6().image.to_str().unwrap()]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("Next boot: boots BANK5"), "{text}");
    assert!(text.contains("[docs/bootloader.md#selection]"), "{text}");
    assert!(text.contains("Shift+R is refused"), "{text}");
    assert!(text.contains("host name esxi-01"), "{text}");
}

#[test]
fn explain_an_unconfirmed_upgrade_shows_the_trial_and_the_fallback_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    let img = image.to_str().unwrap();
    for step in [&["boot"][..], &["upgrade", "--payload-mb", "1", "--build-number", "2000"]] {
        let mut args = vec!["host", img];
        args.extend_from_slice(step);
        let out = visorsim(&args);
        assert!(out.status.success(), "{step:?}: {}", stderr(&out));
    }
    let before = fs::read(&image).unwrap().len();
    let v = explain_json(&image, &[]);
    assert_eq!(bank(&v, 6)["bootstate"], 1);
    assert_eq!(v["next_boot"]["bank"], 6, "the staged bank boots as a trial");
    assert!(v["next_boot"]["writes"][0].as_str().unwrap().contains("BANK6: UPGRADING -> DIRTY"));
    assert_eq!(v["boot_after"]["bank"], 5, "unconfirmed, the trial is invalidated and bank 5 boots");
    assert!(v["boot_after"]["writes"][0].as_str().unwrap().contains("BANK6: DIRTY -> INVALID"));
    assert!(risks(&v).iter().any(|r| r.contains("staged in BANK6")), "{:?}", risks(&v));
    assert_eq!(v["restore"]["bank"], 6);
    // explain never writes the image.
    assert_eq!(fs::read(&image).unwrap().len(), before);
    assert_eq!(explain_json(&image, &[])["next_boot"]["bank"], 6);
}

#[test]
fn explain_a_corrupt_primary_gpt_says_the_loader_sees_nothing_the_backup_shows() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    let file = fs::OpenOptions::new().write(true).open(&image).unwrap();
    file.write_all_at(b"XXXX", 512 + 16).unwrap(); // the primary header's CRC field
    drop(file);
    let v = explain_json(&image, &[]);
    assert!(v["partition_table"]["primary"].as_str().unwrap().starts_with("unusable"), "{}", v["partition_table"]);
    assert!(v["partition_table"]["backup"].as_str().unwrap().starts_with("sound"));
    assert!(!v["partition_table"]["differences"].as_array().unwrap().is_empty());
    assert_eq!(v["next_boot"]["booted"], false);
    assert!(risks(&v).iter().any(|r| r.contains("primary GPT is damaged")), "{:?}", risks(&v));
}

#[test]
fn explain_a_booted_bank_missing_a_module_fails_every_boot() {
    let Some(mdel) = require_tool!("mdel", "mtools") else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture(dir.path());
    let (_, report) = inspect_json(&image);
    let (offset, _) = partition_extent(&report, 5);
    let (ok, out) = run_tool(&mdel, &["-i", &format!("{}@@{offset}", image.display()), "::/sb.v00"]);
    assert!(ok, "{out}");
    let v = explain_json(&image, &[]);
    let five = bank(&v, 5);
    let sb = five["modules"].as_array().unwrap().iter().find(|m| m["name"] == "sb.v00").unwrap();
    assert_eq!(sb["present"], false);
    assert_eq!(sb["short_name"], "SB      V00");
    assert!(v["next_boot"]["outcome"].as_str().unwrap().contains("fatal error loading sb.v00"), "{}", v["next_boot"]);
    assert_eq!(v["boot_after"]["bank"], 5, "a VALID bank is selected again");
    assert!(risks(&v).iter().any(|r| r.contains("Every boot of BANK5 fails")), "{:?}", risks(&v));
}

#[test]
fn explain_reads_vmdk_and_qcow2_without_changing_them() {
    let Some(_) = require_tool!("qemu-img", "qemu-utils") else { return };
    let dir = tempfile::tempdir().unwrap();
    let raw = explain_json(&esxi6().image, &[]);
    for ext in ["vmdk", "qcow2"] {
        let out_path = dir.path().join(format!("disk.{ext}"));
        let out = visorsim(&["export", esxi6().image.to_str().unwrap(), "--out", out_path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        let bytes = fs::read(&out_path).unwrap();
        let v = explain_json(&out_path, &[]);
        assert_eq!(v["format"], ext);
        assert_eq!(v["next_boot"], raw["next_boot"], "{ext}: the same story as the raw image");
        assert_eq!(v["banks"], raw["banks"]);
        assert_eq!(fs::read(&out_path).unwrap(), bytes, "{ext} unchanged");
    }
}

#[test]
fn explain_a_disk_made_by_standard_tools() {
    let dir = tempfile::tempdir().unwrap();
    let Some(image) = standard_tools_disk(dir.path(), "0700") else { return };
    let v = explain_json(&image, &[]);
    assert!(v["partition_table"]["primary"].as_str().unwrap().starts_with("sound, 3 partitions"));
    let six = bank(&v, 6);
    assert_eq!(six["uuid"], "30313233343536373839616263646536");
    assert_eq!((six["bootstate"].as_i64(), six["updated"].as_u64()), (Some(1), Some(2)));
    assert_eq!(six["bootstate_on_disk"], "'1' at byte 10");
    // `bootstate = 3` (whitespace before `=`) is invisible to the parser.
    let ignored = six["ignored_lines"].as_array().unwrap();
    assert!(ignored.iter().any(|l| l["line"] == 8 && l["note"].as_str().unwrap().contains("whitespace before")));
    assert_eq!(v["next_boot"]["bank"], 6, "the higher updated, as a trial");
    assert!(v["next_boot"]["outcome"].as_str().unwrap().contains("fatal error loading b.b00"), "not a real kernel");
    assert_eq!(v["boot_after"]["bank"], 5);
    assert!(v["restore"].is_null(), "the next boot never reaches the host");
}

/// The 6.7u1 loader has no partition-type check: bank 6 with a Linux type
/// GUID is skipped by the current loader and scanned by the old one.
#[test]
fn loader_67u1_scans_a_bank_whatever_its_partition_type() {
    let dir = tempfile::tempdir().unwrap();
    let Some(image) = standard_tools_disk(dir.path(), "8300") else { return };
    let current = explain_json(&image, &[]);
    let old = explain_json(&image, &["--loader", "6.7u1"]);
    assert_eq!(old["loader"], "6.7u1");
    assert_eq!(bank(&current, 6)["skipped"], "partition type is not FAT or EFI");
    assert_eq!(current["next_boot"]["bank"], 5);
    assert!(bank(&old, 6)["skipped"].is_null(), "{}", bank(&old, 6));
    assert_eq!(old["next_boot"]["bank"], 6);
    // `boot --loader` decides the same way.
    let img = image.to_str().unwrap();
    let boot = |loader: &str| {
        let out = visorsim(&["boot", img, "--dry-run", "--json", "--loader", loader]);
        let v: Value = serde_json::from_slice(&out.stdout).expect("boot --json");
        v["selected"].as_u64()
    };
    assert_eq!((boot("current"), boot("6.7u1")), (Some(5), Some(6)));
}
