//! Every command takes any image format, and no external program outlives
//! its limit or leaves a temporary behind:
//! - `inspect`, `boot` (`--dry-run`, `--json`) read vmdk and qcow2 as the
//!   raw image, never changing the file; `boot` without `--dry-run` says the
//!   writes were not kept (and how to keep them); `host` refuses a non-raw
//!   image naming the format and `import`;
//! - a vmdk descriptor whose extent is missing, a truncated qcow2, a file
//!   qemu-img cannot open and a qcow2 whose backing file is itself each end
//!   quickly in an error naming the file, leaving nothing behind;
//! - a qemu-img that hangs is killed at `--timeout` (or
//!   `VISORSIM_QEMU_IMG_TIMEOUT`) with its children, the error naming the
//!   program, the file and the limit; a SIGTERM mid-conversion leaves no
//!   temporary and no orphan.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use visorsim_testkit::require_tool;

use crate::util::*;

/// The esxi6 fixture converted to `ext` (vmdk, qcow2) in `dir`.
fn converted(dir: &Path, qemu_img: &Path, ext: &str) -> PathBuf {
    let out = dir.join(format!("cust.{ext}"));
    let (ok, text) =
        run_tool(qemu_img, &["convert", "-O", ext, esxi6().image.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(ok, "qemu-img convert: {text}");
    out
}

/// visorsim with extra environment variables.
fn visorsim_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_visorsim"))
        .args(args)
        .env("VISORSIM_CACHE_DIR", cache_dir())
        .envs(env.iter().copied())
        .output()
        .expect("run visorsim");
    assert!(!stderr(&out).contains("panicked"), "visorsim panicked: {}", stderr(&out));
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Whether process `pid` is gone (or a zombie waiting for its reaper),
/// waiting up to two seconds for it to go.
fn process_gone(pid: &str) -> bool {
    let stat = Path::new("/proc").join(pid.trim()).join("stat");
    (0..200).any(|_| {
        let state = fs::read_to_string(&stat).unwrap_or_default();
        let gone = state.is_empty() || state.rsplit(')').next().and_then(|s| s.split_whitespace().next()) == Some("Z");
        if !gone {
            std::thread::sleep(Duration::from_millis(10));
        }
        gone
    })
}

#[test]
fn inspect_and_boot_read_vmdk_and_qcow2_without_changing_them() {
    let Some(qemu_img) = require_tool!("qemu-img", "qemu-utils") else { return };
    let dir = tempfile::tempdir().unwrap();
    let raw_image = esxi6().image.to_str().unwrap();
    let raw_inspect = json(&visorsim(&["inspect", "--json", raw_image]));
    let raw_boot = json(&visorsim(&["boot", "--dry-run", "--json", raw_image]));
    assert_eq!(raw_inspect["format"], "raw");
    for ext in ["vmdk", "qcow2"] {
        let image = converted(dir.path(), &qemu_img, ext);
        let path = image.to_str().unwrap();
        let before = fs::read(&image).unwrap();

        let out = visorsim(&["inspect", "--json", path]);
        assert_eq!(out.status.code(), Some(0), "{ext}: {}", stderr(&out));
        let v = json(&out);
        assert_eq!(v["format"], ext);
        assert_eq!(v["partitions"], raw_inspect["partitions"], "{ext}: the raw image's partitions");
        assert_eq!(v["volumes"], raw_inspect["volumes"], "{ext}: the raw image's volumes");
        let text = visorsim(&["inspect", path]);
        assert!(stdout(&text).contains(&format!("(a {ext} image, read through a temporary raw copy")), "{ext}");

        let out = visorsim(&["boot", "--dry-run", "--json", path]);
        assert_eq!(out.status.code(), Some(0), "{ext}: {}", stderr(&out));
        let v = json(&out);
        assert_eq!((v["format"].as_str(), v["writes_kept"].as_bool()), (Some(ext), Some(false)));
        assert_eq!(v["selected"], raw_boot["selected"]);
        assert_eq!(v["kernel_cmdline"], raw_boot["kernel_cmdline"]);
        assert_eq!(fs::read(&image).unwrap(), before, "{ext} unchanged");
    }
}

/// `boot` writes bootstate digits; on a qcow2 they go to the temporary raw
/// copy, and the report says so in text and JSON, with the `import` that
/// would keep them. On a raw image they are kept (`writes_kept: true`).
#[test]
fn boot_on_a_qcow2_says_its_writes_were_not_kept() {
    let Some(qemu_img) = require_tool!("qemu-img", "qemu-utils") else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = converted(dir.path(), &qemu_img, "qcow2");
    let path = image.to_str().unwrap();
    let before = fs::read(&image).unwrap();

    let out = visorsim(&["boot", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let note = format!(
        "note: {path} is a qcow2 image: this boot ran on a temporary raw copy and its writes were not kept \
         ({path} is unchanged); to keep them, `visorsim import {path} --out {}` and use that raw image",
        dir.path().join("cust.img").display()
    );
    assert!(text.contains(&note), "{text}");

    let v = json(&visorsim(&["boot", "--json", path]));
    assert_eq!((v["format"].as_str(), v["writes_kept"].as_bool()), (Some("qcow2"), Some(false)));
    assert!(v["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("were not kept")), "{v}");
    assert_eq!(fs::read(&image).unwrap(), before, "the qcow2 is unchanged");

    let raw = dir.path().join("raw.img");
    extract(&esxi6().image, 0, fs::metadata(&esxi6().image).unwrap().len(), &raw);
    let v = json(&visorsim(&["boot", "--json", raw.to_str().unwrap()]));
    assert_eq!((v["format"].as_str(), v["writes_kept"].as_bool()), (Some("raw"), Some(true)));
    assert!(!v["notes"].to_string().contains("were not kept"));
}

/// `host` keeps the host's state in the image between invocations: a
/// qcow2 is refused (exit 1) naming its format and the `import` command,
/// and nothing is written beside it.
#[test]
fn host_refuses_a_qcow2_naming_the_format_and_import() {
    let Some(qemu_img) = require_tool!("qemu-img", "qemu-utils") else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = converted(dir.path(), &qemu_img, "qcow2");
    let before = fs::read(&image).unwrap();
    for step in [&["boot"][..], &["status"], &["set-hostname", "esx01"]] {
        let mut args = vec!["host", image.to_str().unwrap()];
        args.extend_from_slice(step);
        let out = visorsim(&args);
        assert_eq!(out.status.code(), Some(1), "{step:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("{} is a qcow2 image", image.display())), "{err}");
        assert!(err.contains(&format!("visorsim import {} --out", image.display())), "{err}");
    }
    assert_eq!(listing(dir.path()), ["cust.qcow2"], "no sidecar, no temporary");
    assert_eq!(fs::read(&image).unwrap(), before);
}

/// Images that cannot be read as the disk they held: each command ends at
/// once with an error naming the file (and what is wrong), exit 1, the
/// input unchanged and no temporary left.
#[test]
fn unreadable_images_are_refused_naming_the_file() {
    let Some(qemu_img) = require_tool!("qemu-img", "qemu-utils") else { return };
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    fs::create_dir(&cases).unwrap();
    // A descriptor whose flat extent is missing.
    let descriptor = cases.join("desc.vmdk");
    fs::write(
        &descriptor,
        "# Disk DescriptorFile\nversion=1\nCID=ab0a7a0e\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n\
         # Extent description\nRW 32768 FLAT \"desc-flat.vmdk\" 0\n",
    )
    .unwrap();
    // A qcow2 cut short: its header and tables are there, half its data is not.
    let whole = converted(dir.path(), &qemu_img, "qcow2");
    let bytes = fs::read(&whole).unwrap();
    let truncated = cases.join("cut.qcow2");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // The qcow2 magic and then nonsense.
    let garbage = cases.join("garbage.qcow2");
    fs::write(&garbage, b"QFI\xfb\0\0\0\x03not a qcow2 header at all").unwrap();

    let expectations: [(&Path, &str); 3] = [
        (&descriptor, "is a vmdk descriptor whose extent \"desc-flat.vmdk\" (line 8) does not exist"),
        (&truncated, "is a damaged qcow2 image"),
        (&garbage, "Could not open"),
    ];
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    for (image, says) in expectations {
        let path = image.to_str().unwrap();
        let before = fs::read(image).unwrap();
        let out_img = out_dir.join("x.img");
        for args in [
            vec!["inspect", path],
            vec!["inspect", "--json", path],
            vec!["boot", "--dry-run", path],
            vec!["boot", path],
            vec!["explain", path],
            vec!["import", path, "--out", out_img.to_str().unwrap()],
        ] {
            let started = Instant::now();
            let out = visorsim_env(&args, &[("TMPDIR", tmp.to_str().unwrap())]);
            assert!(started.elapsed() < Duration::from_secs(20), "{args:?}: {:?}", started.elapsed());
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
            let err = stderr(&out);
            assert!(err.contains(path) && err.contains(says), "{args:?}: {err}");
        }
        if image == truncated.as_path() {
            let err = stderr(&visorsim(&["inspect", path]));
            assert!(err.contains("the file is truncated"), "{err}");
        }
        assert_eq!(fs::read(image).unwrap(), before, "{path} unchanged");
    }
    assert_eq!(listing(&out_dir), Vec::<String>::new(), "import left nothing");
    assert_eq!(listing(&tmp), Vec::<String>::new(), "no conversion temporary left");
}

/// A qcow2 whose backing file is itself (the name written into its header,
/// bytes 8..20: backing_file_offset, backing_file_size): `qemu-img convert`
/// would spin on it. `import --timeout 2` ends well within the limit with
/// an error naming the file, exit 1, nothing left in the output directory.
#[test]
fn import_of_a_qcow2_backed_by_itself_ends_in_time_and_leaves_nothing() {
    let Some(qemu_img) = require_tool!("qemu-img", "qemu-utils") else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("self.qcow2");
    let (ok, text) = run_tool(&qemu_img, &["create", "-q", "-f", "qcow2", image.to_str().unwrap(), "64M"]);
    assert!(ok, "{text}");
    let mut bytes = fs::read(&image).unwrap();
    let name = b"self.qcow2";
    let at = 0x1000usize; // inside the header cluster, past the header and its extensions
    bytes[at..at + name.len()].copy_from_slice(name);
    bytes[8..16].copy_from_slice(&(at as u64).to_be_bytes());
    bytes[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
    fs::write(&image, &bytes).unwrap();

    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let out_img = out_dir.join("disk.img");
    let started = Instant::now();
    let out = visorsim(&["import", image.to_str().unwrap(), "--out", out_img.to_str().unwrap(), "--timeout", "2"]);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("self.qcow2") && err.contains("infinite loop"), "{err}");
    assert_eq!(listing(&out_dir), Vec::<String>::new());
    assert_eq!(fs::read(&image).unwrap(), bytes, "the input is unchanged");
}

/// A `qemu-img` (named by `VISORSIM_QEMU_IMG`) whose `convert` writes part
/// of its output, starts a child and hangs; its pid file says which child.
/// Every other subcommand is the real qemu-img's.
fn hanging_qemu_img(dir: &Path, real: &Path) -> (PathBuf, PathBuf) {
    let script = dir.join("qemu-img");
    let pid_file = dir.join("child.pid");
    let text = format!(
        "#!/bin/sh\ncase \"$1\" in\nconvert)\n  for last; do :; done\n  head -c 1048576 /dev/zero > \"$last\"\n  \
         sleep 60 &\n  echo $! > '{}'\n  wait\n  ;;\n*) exec '{}' \"$@\" ;;\nesac\n",
        pid_file.display(),
        real.display()
    );
    fs::write(&script, text).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    (script, pid_file)
}

/// `import --timeout 1` (and `VISORSIM_QEMU_IMG_TIMEOUT` for a command
/// converting its input) kills a hung qemu-img with its child: the error
/// names the program, the file and the limit; no temporary is left.
#[test]
fn a_hung_conversion_is_killed_at_its_limit_with_its_children() {
    let Some(qemu_img) = require_tool!("qemu-img", "qemu-utils") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (fake, pid_file) = hanging_qemu_img(dir.path(), &qemu_img);
    let image = converted(dir.path(), &qemu_img, "qcow2");
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let out_img = out_dir.join("disk.img");
    let fake_env = ("VISORSIM_QEMU_IMG", fake.to_str().unwrap());

    let started = Instant::now();
    let args = ["import", image.to_str().unwrap(), "--out", out_img.to_str().unwrap(), "--timeout", "1"];
    let out = visorsim_env(&args, &[fake_env]);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("{} convert", fake.display())), "names the program: {err}");
    assert!(err.contains(image.to_str().unwrap()), "names the file: {err}");
    assert!(err.contains("timed out after 1 s and was killed"), "names the limit: {err}");
    assert_eq!(listing(&out_dir), Vec::<String>::new(), "the partial output is removed");
    assert!(process_gone(&fs::read_to_string(&pid_file).unwrap()), "the hung qemu-img's child was killed");

    // The environment's limit, for a command that converts its input.
    fs::remove_file(&pid_file).unwrap();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let env = [fake_env, ("VISORSIM_QEMU_IMG_TIMEOUT", "1.5"), ("TMPDIR", tmp.to_str().unwrap())];
    let out = visorsim_env(&["inspect", image.to_str().unwrap()], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("timed out after 1.5 s"), "{}", stderr(&out));
    assert_eq!(listing(&tmp), Vec::<String>::new(), "no conversion temporary left");
    assert!(process_gone(&fs::read_to_string(&pid_file).unwrap()));

    // A limit that is not a number of seconds is an error naming the variable.
    let out = visorsim_env(&["inspect", image.to_str().unwrap()], &[("VISORSIM_QEMU_IMG_TIMEOUT", "soon")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("VISORSIM_QEMU_IMG_TIMEOUT") && stderr(&out).contains("soon"), "{}", stderr(&out));
    let out = visorsim(&["import", image.to_str().unwrap(), "--out", out_img.to_str().unwrap(), "--timeout", "0"]);
    assert_eq!(out.status.code(), Some(2), "a usage error: {}", stderr(&out));
}

/// SIGTERM to visorsim while qemu-img converts: visorsim exits 143, the
/// temporary in the output directory (import) or in `TMPDIR` (a command
/// converting its input) is removed, and qemu-img's child does not survive.
#[test]
fn sigterm_mid_conversion_leaves_no_temporary_and_no_orphan() {
    let Some(qemu_img) = require_tool!("qemu-img", "qemu-utils") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (fake, pid_file) = hanging_qemu_img(dir.path(), &qemu_img);
    let image = converted(dir.path(), &qemu_img, "qcow2");
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let out_img = out_dir.join("disk.img");

    let import = ["import", image.to_str().unwrap(), "--out", out_img.to_str().unwrap()];
    let inspect = ["inspect", image.to_str().unwrap()];
    for (args, watched) in [(&import[..], &out_dir), (&inspect[..], &tmp)] {
        let _ = fs::remove_file(&pid_file);
        let child = Command::new(env!("CARGO_BIN_EXE_visorsim"))
            .args(args)
            .env("VISORSIM_QEMU_IMG", &fake)
            .env("TMPDIR", &tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Mid-conversion: the fake has written its partial output.
        let started = Instant::now();
        while !pid_file.exists() || listing(watched).is_empty() {
            assert!(started.elapsed() < Duration::from_secs(20), "{args:?}: the conversion never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(143), "{args:?}: {}", stderr(&out));
        assert_eq!(listing(watched), Vec::<String>::new(), "{args:?}: the temporary is removed");
        assert!(process_gone(&fs::read_to_string(&pid_file).unwrap()), "{args:?}: no orphan");
    }
    assert_eq!(listing(&out_dir), Vec::<String>::new());
    assert_eq!(listing(&tmp), Vec::<String>::new());
}
