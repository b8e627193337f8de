//! What `export`, `import`, `build` and `demo` accept as input and output:
//! export takes a raw image only (probed with `qemu-img info`) and finds its
//! output format in the output's name; nothing replaces an existing file
//! unless `--force`.

use std::fs;

use visorsim_testkit::require_tool;
use visorsim_tools::{ImageFormat, QemuImg};

use crate::util::*;

#[test]
fn export_refuses_an_input_that_is_not_raw() {
    if require_tool!("qemu-img", "qemu-utils").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let qcow2 = dir.path().join("x.qcow2");
    let out =
        visorsim(&["export", esxi7().image.to_str().unwrap(), "--format", "qcow2", "--out", qcow2.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let raw = dir.path().join("y.img");
    let out = visorsim(&["export", qcow2.to_str().unwrap(), "--format", "raw", "--out", raw.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "a qcow2 input is refused: {}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("x.qcow2 is a qcow2 image, not a raw disk image") && err.contains("visorsim import"), "{err}");
    assert!(!raw.exists(), "nothing written");
}

#[test]
fn export_finds_the_format_in_the_output_name() {
    let Some(qemu_img) = require_tool!("qemu-img", "qemu-utils") else { return };
    let qemu = QemuImg::with_program(qemu_img);
    let dir = tempfile::tempdir().unwrap();
    let image = esxi7().image.to_str().unwrap();
    for (name, format) in [("d.vmdk", ImageFormat::Vmdk), ("d.qcow2", ImageFormat::Qcow2), ("d.raw", ImageFormat::Raw)]
    {
        let path = dir.path().join(name);
        let out = visorsim(&["export", image, "--out", path.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(stdout(&out).contains(&format!("as {format} to")), "{}", stdout(&out));
        assert_eq!(qemu.info(&path).unwrap().image_format(), Some(format), "{name}");
    }
    let odd = dir.path().join("d.bin");
    let out = visorsim(&["export", image, "--out", odd.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("give --format"), "{}", stderr(&out));
    assert!(!odd.exists());
}

#[test]
fn build_does_not_replace_a_file_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("existing.img");
    fs::write(&existing, b"keep me").unwrap();
    let path = existing.to_str().unwrap();
    let out = visorsim(&["build", "--out", path, "--payload-mb", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("existing.img already exists") && stderr(&out).contains("--force"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(&existing).unwrap(), b"keep me");
    let out = visorsim(&["build", "--out", path, "--payload-mb", "1", "--seed", "7", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sparse_hash(&existing), sparse_hash(&esxi6().image), "replaced by the new image");
}

#[test]
fn import_does_not_replace_a_file_without_force() {
    if require_tool!("qemu-img", "qemu-utils").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("existing.img");
    fs::write(&existing, b"keep me").unwrap();
    let image = esxi7().image.to_str().unwrap();
    let out = visorsim(&["import", image, "--out", existing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("existing.img already exists"), "{}", stderr(&out));
    assert_eq!(fs::read(&existing).unwrap(), b"keep me");
    let out = visorsim(&["import", image, "--out", existing.to_str().unwrap(), "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sparse_hash(&existing), sparse_hash(&esxi7().image));
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["existing.img"], "no temp files left");
}

#[test]
fn demo_does_not_replace_a_previous_demo_image_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let previous = dir.path().join("esxi6.img");
    fs::write(&previous, b"a previous demo").unwrap();
    let out = visorsim(&["demo", "--payload-mb", "1", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("esxi6.img already exists") && stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(fs::read(&previous).unwrap(), b"a previous demo");
}
