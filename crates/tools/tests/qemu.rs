//! `QemuImg` against the real `qemu-img` (Debian package qemu-utils; each
//! test skips, or fails under `VISORSIM_REQUIRE_TOOLS`, without it).
//!
//! Each test makes a 4 MiB raw image with a few non-zero blocks in a fresh
//! temporary directory, converts it with qemu-img and checks the result
//! byte for byte, with `qemu-img check`, and by listing the directory (no
//! temporary file may survive, on success or on failure).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use visorsim_tools::{ImageFormat, QemuError, QemuImg};

use crate::listing;

const SIZE: usize = 4 << 20;

/// The raw test image: zeros except a few recognisable blocks, including
/// the first and the last sector.
fn raw_image() -> Vec<u8> {
    let mut data = vec![0u8; SIZE];
    for (at, len, byte) in [(0, 512, 0xEB), (70_000, 5, b'h'), (1 << 20, 64 << 10, 0x5A), (SIZE - 512, 512, 0xAA)] {
        for (i, b) in data[at..at + len].iter_mut().enumerate() {
            *b = byte ^ [0, 1, 2, 3, 4, 5, 6][i % 7];
        }
    }
    data
}

/// The installed qemu-img, or `None` when the test should skip.
fn qemu_img() -> Option<QemuImg> {
    visorsim_testkit::require_tool!("qemu-img", "qemu-utils").map(QemuImg::with_program)
}

/// A directory holding `input.raw` (the test image), and the tool; `None`
/// when the test should skip.
fn setup() -> Option<(TempDir, PathBuf, QemuImg)> {
    let qemu = qemu_img()?;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.raw");
    fs::write(&input, raw_image()).unwrap();
    Some((dir, input, qemu))
}

/// Converts `input.raw` to `format` in a subdirectory of its own, checks
/// that only the output is there, converts it back to raw, and checks that
/// the result is the original, byte for byte.
fn round_trip(format: ImageFormat) {
    let Some((dir, input, qemu)) = setup() else { return };
    let before = fs::read(&input).unwrap();
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let exported = out_dir.join(format!("disk.{format}"));
    qemu.convert(&input, Some(ImageFormat::Raw), &exported, format).unwrap();
    assert_eq!(listing(&out_dir), [format!("disk.{format}")]);

    let info = qemu.info(&exported).unwrap();
    assert_eq!(info.image_format(), Some(format), "{info:?}");
    assert_eq!(info.virtual_size, SIZE as u64);

    // Import with probing, as for a customer's image of unknown format.
    let back_dir = dir.path().join("back");
    fs::create_dir(&back_dir).unwrap();
    let back = back_dir.join("disk.raw");
    qemu.convert(&exported, None, &back, ImageFormat::Raw).unwrap();
    assert_eq!(listing(&back_dir), ["disk.raw"]);
    assert!(fs::read(&back).unwrap() == before, "{format} round trip changed the image");
    assert!(fs::read(&input).unwrap() == before, "input changed");

    // Raw output stays sparse: a 4 MiB image with ~70 KiB of data.
    let meta = fs::metadata(&back).unwrap();
    assert_eq!(meta.len(), SIZE as u64);
    assert!(meta.blocks() * 512 < meta.len() / 4, "raw output not sparse: {} blocks", meta.blocks());
}

#[test]
fn vmdk_round_trip_is_byte_identical() {
    round_trip(ImageFormat::Vmdk);
}

#[test]
fn vhdx_round_trip_is_byte_identical() {
    round_trip(ImageFormat::Vhdx);
}

#[test]
fn qcow2_export_passes_check() {
    round_trip(ImageFormat::Qcow2);
    let Some((dir, input, qemu)) = setup() else { return };
    let out = dir.path().join("disk.qcow2");
    qemu.convert(&input, None, &out, ImageFormat::Qcow2).unwrap();
    let report = qemu.check(&out, ImageFormat::Qcow2).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.format, "qcow2");
    for format in [ImageFormat::Vmdk, ImageFormat::Vhdx] {
        let out = dir.path().join(format!("disk.{format}"));
        qemu.convert(&input, None, &out, format).unwrap();
        assert!(qemu.check(&out, format).unwrap().is_clean(), "{format}");
    }
}

/// A qcow2 whose first L1 entry points past the end of the file: `check`
/// returns the counts (qemu-img exits 2), it is not an error.
#[test]
fn check_reports_corruption() {
    let Some((dir, input, qemu)) = setup() else { return };
    let out = dir.path().join("disk.qcow2");
    qemu.convert(&input, None, &out, ImageFormat::Qcow2).unwrap();
    let mut bytes = fs::read(&out).unwrap();
    let l1 = usize::try_from(u64::from_be_bytes(bytes[40..48].try_into().unwrap())).unwrap();
    let entry = u64::from_be_bytes(bytes[l1..l1 + 8].try_into().unwrap());
    assert_ne!(entry, 0, "test image has no L2 table");
    let bogus = (entry & (1 << 63)) | (64 << 20); // far past the end
    bytes[l1..l1 + 8].copy_from_slice(&bogus.to_be_bytes());
    fs::write(&out, bytes).unwrap();
    let report = qemu.check(&out, ImageFormat::Qcow2).unwrap();
    assert!(!report.is_clean(), "{report:?}");
    assert!(report.corruptions > 0, "{report:?}");
}

#[test]
fn raw_is_not_checkable() {
    let Some((_dir, input, qemu)) = setup() else { return };
    let err = qemu.check(&input, ImageFormat::Raw).unwrap_err();
    assert!(matches!(err, QemuError::Refused { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("raw") && message.contains("input.raw"), "{message}");
}

#[test]
fn info_of_raw_probes_the_format() {
    let Some((_dir, input, qemu)) = setup() else { return };
    let info = qemu.info(&input).unwrap();
    assert_eq!(info.image_format(), Some(ImageFormat::Raw));
    assert_eq!(info.virtual_size, SIZE as u64);
    assert!(info.actual_size.is_some());
}

#[test]
fn version_is_a_number() {
    let Some(qemu) = qemu_img() else { return };
    let version = qemu.version().unwrap();
    assert!(version.chars().next().is_some_and(|c| c.is_ascii_digit()), "{version}");
    assert!(version.contains('.'), "{version}");
}

#[test]
fn missing_tool_names_the_package() {
    let qemu = QemuImg::with_program("/nonexistent/qemu-img");
    let err = qemu.version().unwrap_err();
    assert!(matches!(err, QemuError::ToolMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("qemu-utils"), "{err}");
    assert!(err.to_string().contains("/nonexistent/qemu-img"), "{err}");

    // convert fails the same way, and leaves nothing behind.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.raw");
    fs::write(&input, raw_image()).unwrap();
    let err = qemu.convert(&input, None, &dir.path().join("out.vmdk"), ImageFormat::Vmdk).unwrap_err();
    assert!(matches!(err, QemuError::ToolMissing { .. }), "{err:?}");
    assert_eq!(listing(dir.path()), ["input.raw"]);
}

#[test]
fn missing_input_names_the_path_and_leaves_nothing() {
    let Some((dir, _input, qemu)) = setup() else { return };
    let missing = dir.path().join("no-such-disk.raw");
    let out = dir.path().join("out.vmdk");
    let err = qemu.convert(&missing, None, &out, ImageFormat::Vmdk).unwrap_err();
    assert!(err.to_string().contains("no-such-disk.raw"), "{err}");
    assert_eq!(listing(dir.path()), ["input.raw"]);

    // `info` of a missing file: qemu-img's own error, naming the path.
    let err = qemu.info(&missing).unwrap_err();
    assert!(matches!(err, QemuError::Failed { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-disk.raw"), "{err}");
}

/// qemu-img itself fails after the temporary output exists: the temporary
/// is removed, an existing output is left exactly as it was, and the error
/// holds the command and qemu-img's message.
#[test]
fn failed_conversion_leaves_no_temporary_and_keeps_the_old_output() {
    let Some((dir, input, qemu)) = setup() else { return };
    let out = dir.path().join("out.raw");
    fs::write(&out, b"previous export").unwrap();
    let err = qemu.convert(&input, Some(ImageFormat::Qcow2), &out, ImageFormat::Raw).unwrap_err();
    let QemuError::Failed { ref args, ref stderr, .. } = err else { panic!("{err:?}") };
    assert!(args.contains("input.raw"), "{args}");
    assert!(!stderr.is_empty(), "{err}");
    assert!(err.to_string().contains("input.raw"), "{err}");
    assert_eq!(listing(dir.path()), ["input.raw", "out.raw"]);
    assert_eq!(fs::read(&out).unwrap(), b"previous export");
    assert!(fs::read(&input).unwrap() == raw_image(), "input changed");
}

#[test]
fn conversion_replaces_an_existing_output() {
    let Some((dir, input, qemu)) = setup() else { return };
    let out = dir.path().join("out.raw");
    fs::write(&out, b"previous export").unwrap();
    qemu.convert(&input, None, &out, ImageFormat::Raw).unwrap();
    assert!(fs::read(&out).unwrap() == raw_image());
    assert_eq!(listing(dir.path()), ["input.raw", "out.raw"]);
}

#[test]
fn converting_onto_the_input_is_refused() {
    let Some((dir, input, qemu)) = setup() else { return };
    let err = qemu.convert(&input, None, &input, ImageFormat::Qcow2).unwrap_err();
    assert!(matches!(err, QemuError::Refused { .. }), "{err:?}");
    // Through a symlink too.
    let link = dir.path().join("link.raw");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let err = qemu.convert(&input, None, &link, ImageFormat::Vmdk).unwrap_err();
    assert!(matches!(err, QemuError::Refused { .. }), "{err:?}");
    assert!(fs::read(&input).unwrap() == raw_image(), "input changed");
    assert_eq!(listing(dir.path()), ["input.raw", "link.raw"]);
}

/// Relative paths, including names qemu-img would otherwise read as a
/// protocol, work from the current directory.
#[test]
fn relative_and_colon_names_are_files() {
    let Some((dir, input, qemu)) = setup() else { return };
    let odd = dir.path().join("nbd:odd name.raw");
    fs::copy(&input, &odd).unwrap();
    let out = dir.path().join("json:{out}.vmdk");
    qemu.convert(&odd, None, &out, ImageFormat::Vmdk).unwrap();
    assert_eq!(qemu.info(&out).unwrap().image_format(), Some(ImageFormat::Vmdk));
    // A relative path (the test's working directory is the crate root, so
    // go through the absolute directory as a relative hop from "/").
    let relative = PathBuf::from(dir.path().strip_prefix("/").unwrap()).join("input.raw");
    let from_root = std::env::current_dir().unwrap().components().count() - 1;
    let up: PathBuf = std::iter::repeat_n("..", from_root).collect();
    let info = qemu.info(&up.join(relative)).unwrap();
    assert_eq!(info.image_format(), Some(ImageFormat::Raw));
}

/// `QemuImg::new()` finds the installed qemu-img (or the one named by
/// `VISORSIM_QEMU_IMG`).
#[test]
fn new_finds_qemu_img() {
    if qemu_img().is_none() {
        return;
    }
    let qemu = QemuImg::new();
    assert!(qemu.program().to_string_lossy().contains("qemu-img"), "{qemu:?}");
    qemu.version().unwrap();
}

/// A qemu-img that never answers is killed at the time limit, and the
/// error names the command; a convert leaves no temporary behind.
#[test]
fn a_hung_qemu_img_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let hung = dir.path().join("qemu-img");
    fs::write(&hung, "#!/bin/sh\nexec sleep 30\n").unwrap();
    fs::set_permissions(&hung, fs::Permissions::from_mode(0o755)).unwrap();
    let qemu = QemuImg::with_program(&hung).with_timeout(Duration::from_millis(300));
    assert_eq!(qemu.timeout(), Duration::from_millis(300));
    assert_eq!(QemuImg::with_program(&hung).timeout(), visorsim_tools::qemu_img::DEFAULT_TIMEOUT);

    let started = Instant::now();
    let err = qemu.version().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    let QemuError::TimedOut { ref command, limit } = err else { panic!("{err:?}") };
    assert!(command.ends_with("qemu-img --version"), "{command}");
    assert_eq!(limit, Duration::from_millis(300));
    assert!(err.to_string().contains("timed out after 0.3 s"), "{err}");

    let input = dir.path().join("input.raw");
    fs::write(&input, raw_image()).unwrap();
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let err = qemu.convert(&input, None, &out_dir.join("disk.vmdk"), ImageFormat::Vmdk).unwrap_err();
    let QemuError::TimedOut { ref command, .. } = err else { panic!("{err:?}") };
    assert!(command.contains(" convert ") && command.contains("input.raw"), "{command}");
    assert_eq!(listing(&out_dir), Vec::<String>::new());
}

/// A new output gets the mode a plain create gives (0666 less the umask),
/// not the temporary file's 0600.
#[test]
fn a_new_output_is_not_private() {
    let Some((dir, input, qemu)) = setup() else { return };
    let out = dir.path().join("disk.vmdk");
    qemu.convert(&input, None, &out, ImageFormat::Vmdk).unwrap();
    let plain = dir.path().join("plain");
    fs::write(&plain, b"").unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out), mode(&plain));
}

/// `verify` passes a sound image of every format, and refuses a qcow2 cut
/// in half (damaged, truncated: `convert` alone would read its missing
/// clusters as zeros and succeed) and a qcow2 whose backing file is itself
/// (at once: `convert` would spin until its limit).
#[test]
fn verify_refuses_a_truncated_qcow2_and_a_backing_loop() {
    let Some((dir, input, qemu)) = setup() else { return };
    qemu.verify(&input, ImageFormat::Raw).unwrap();
    for format in [ImageFormat::Qcow2, ImageFormat::Vmdk, ImageFormat::Vhdx] {
        let out = dir.path().join(format!("disk.{format}"));
        qemu.convert(&input, Some(ImageFormat::Raw), &out, format).unwrap();
        qemu.verify(&out, format).unwrap_or_else(|e| panic!("{format}: {e}"));
    }

    let whole = fs::read(dir.path().join("disk.qcow2")).unwrap();
    let cut = dir.path().join("cut.qcow2");
    fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let convert_alone = dir.path().join("cut.raw");
    qemu.convert(&cut, Some(ImageFormat::Qcow2), &convert_alone, ImageFormat::Raw)
        .expect("qemu-img convert itself does not notice the truncation");
    let err = qemu.verify(&cut, ImageFormat::Qcow2).unwrap_err();
    let QemuError::Damaged { corruptions, truncated, file_size, .. } = err else { panic!("{err:?}") };
    assert!(corruptions > 0 && truncated, "{err}");
    assert_eq!(file_size, (whole.len() / 2) as u64);
    assert!(err.to_string().contains("cut.qcow2 is a damaged qcow2 image"), "{err}");

    // The backing file's name written into the header (offset and size at
    // bytes 8..20), pointing at the image itself.
    let mut looped = whole.clone();
    let name = b"self.qcow2";
    looped[0x1000..0x1000 + name.len()].copy_from_slice(name);
    looped[8..16].copy_from_slice(&0x1000u64.to_be_bytes());
    looped[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
    let this = dir.path().join("self.qcow2");
    fs::write(&this, &looped).unwrap();
    let started = Instant::now();
    let err = qemu.with_timeout(Duration::from_secs(20)).verify(&this, ImageFormat::Qcow2).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "refused at once: {:?}", started.elapsed());
    assert!(matches!(err, QemuError::Failed { .. }) && err.to_string().contains("infinite loop"), "{err}");
}
