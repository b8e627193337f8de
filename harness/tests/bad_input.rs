//! Bad input for `inspect` and `import`: every case gives a clear message
//! naming what is wrong and where, a non-zero exit, no panic, and leaves
//! the input file byte-for-byte unchanged.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::util::*;

/// Copies the fixture image (sparse) and applies `damage` to the copy.
fn damaged(name: &str, damage: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let src = &esxi6().image;
    extract(src, 0, fs::metadata(src).unwrap().len(), &path);
    damage(&path);
    (dir, path)
}

fn write_at(path: &Path, offset: u64, data: &[u8]) {
    fs::OpenOptions::new().write(true).open(path).unwrap().write_all_at(data, offset).unwrap();
}

/// Runs inspect (human and JSON) and import on `path`; checks exit codes,
/// that `expect` appears in what inspect says, and that the input is unchanged.
fn check(path: &Path, expect: &str, import_should_fail: bool) {
    let before = sparse_hash(path);
    let human = visorsim(&["inspect", path.to_str().unwrap()]);
    let text = format!("{}{}", stdout(&human), stderr(&human));
    assert!(!human.status.success(), "inspect must fail on {}: {text}", path.display());
    assert!(text.contains(expect), "inspect of {} should say {expect:?}: {text}", path.display());
    let (code, report) = inspect_json(path);
    assert_ne!(code, 0);
    assert!(
        report["problems"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().contains(expect)),
        "{}",
        report["problems"]
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("imported.img");
    let import = visorsim(&["import", path.to_str().unwrap(), "--out", out.to_str().unwrap(), "--format", "raw"]);
    if import_should_fail {
        assert_eq!(import.status.code(), Some(1), "import must fail: {}", stdout(&import));
        assert!(
            stderr(&import).contains(path.file_name().unwrap().to_str().unwrap()),
            "import names the file: {}",
            stderr(&import)
        );
        assert!(!out.exists(), "nothing is written on failure");
    } else {
        assert!(import.status.success(), "import: {}", stderr(&import));
        assert!(stdout(&import).contains("warning"), "import warns: {}", stdout(&import));
    }
    assert_eq!(
        fs::read_dir(out_dir.path()).unwrap().filter(|e| e.as_ref().unwrap().file_name() != "imported.img").count(),
        0,
        "no temp files left"
    );
    assert_eq!(sparse_hash(path), before, "the input was modified");
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.img");
    fs::write(&path, b"").unwrap();
    check(&path, "empty", true);
}

#[test]
fn zero_filled_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zeros.img");
    fs::write(&path, vec![0u8; 4 << 20]).unwrap();
    check(&path, "No usable GPT", true);
}

#[test]
fn random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.img");
    let mut state = 0x1234_5678_9abc_def0u64;
    let bytes: Vec<u8> = (0..(3 << 20) + 123)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fs::write(&path, bytes).unwrap();
    check(&path, "No usable GPT", true);
}

#[test]
fn truncated_image() {
    let (_dir, path) = damaged("truncated.img", |p| {
        fs::OpenOptions::new().write(true).open(p).unwrap().set_len(300 * 1024 * 1024 + 100).unwrap();
    });
    // The backup GPT is gone and partitions reach past the end.
    check(&path, "outside the disk", false);
    let (_, report) = inspect_json(&path);
    let text = report["problems"].to_string();
    assert!(text.contains("truncated"), "{text}");
    assert!(text.contains("Backup GPT"), "{text}");
}

#[test]
fn corrupt_primary_gpt_shows_the_backup() {
    let (_dir, path) = damaged("primary.img", |p| write_at(p, 512 + 16, &[0xDE, 0xAD, 0xBE, 0xEF]));
    check(&path, "backup GPT is intact", false);
    let (_, report) = inspect_json(&path);
    assert_eq!(report["gpt_source"], "backup");
    assert!(report["primary_gpt_error"].as_str().unwrap().contains("HeaderCRC32"));
    assert_eq!(report["partitions"].as_array().unwrap().len(), 8, "the backup's table is shown");
    let human = stdout(&visorsim(&["inspect", path.to_str().unwrap()]));
    assert!(human.contains("Backup header, primary is damaged"), "{human}");
}

#[test]
fn bank_fat_boot_sector_overwritten() {
    let (_dir, path) = damaged("bootsector.img", |p| write_at(p, 8224 * 512, &[0u8; 512]));
    check(&path, "Partition 5 (LBA 8224, byte 4210688): no readable FAT boot sector", false);
}

#[test]
fn bank_without_vmware_uuid() {
    let (_dir, path) = damaged("nouuid.img", |p| write_at(p, 8225 * 512, &[0u8; 32]));
    check(&path, "no VMware FAT UUID", false);
    let (_, report) = inspect_json(&path);
    let p5 = report["partitions"].as_array().unwrap().iter().find(|p| p["number"] == 5).unwrap();
    assert!(p5["fat"]["vmware_uuid"].is_null());
    assert!(report["problems"].to_string().contains("byte 4211200"), "names the offset: {}", report["problems"]);
}

#[test]
fn missing_file_and_directory() {
    let out = visorsim(&["inspect", "/nonexistent/disk.img"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent/disk.img"), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let out = visorsim(&["inspect", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("directory"));
}

#[test]
fn a_file_of_partial_sectors_is_reported_with_one_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.img");
    fs::write(&path, vec![0x5Au8; (1 << 20) + 123]).unwrap();
    let out = visorsim(&["inspect", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let text = stdout(&out);
    assert!(text.contains("odd.img: 1048699 bytes"), "the header gives the file's size: {text}");
    assert!(text.contains("odd.img is 1048699 bytes, not a whole number of 512-byte sectors"), "{text}");
    assert!(!text.contains("1048576"), "one size per report: {text}");
    let (_, report) = inspect_json(&path);
    assert_eq!(report["size"], 1048699);
}

// ---------------------------------------------------------------------------
// The hostile-input campaign's kinds of input (issue 10): each run of the
// CLI is bounded in time (killed past RUN_LIMIT) and its peak memory is
// measured (the child's ru_maxrss), and must stay below the budget it ran
// with; the input file must be unchanged and the message must say where.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use visorsim_boot::volume::scan_volumes;
use visorsim_disk::{BlockDevice, FileDisk, SectorSize};
use visorsim_host::bank::{Bank, BankLocation};

/// Longest a hostile input may keep the CLI busy (a hang is killed and fails).
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A finished run: exit code, output, and peak resident memory in bytes.
struct Measured {
    code: Option<i32>,
    out: String,
    peak_rss: u64,
}

/// The high-water mark of `pid`'s resident memory (`VmHWM`), in bytes.
fn vm_hwm(pid: libc::pid_t) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// Runs the CLI with `args`, killing it past [`RUN_LIMIT`]; measures its peak RSS.
///
/// The peak is the child's `VmHWM`, sampled every 20 ms (the high-water
/// mark of its own memory since exec; a peak in its last 20 ms can be
/// missed), or its `ru_maxrss` when that is above all this test process
/// ever held: `ru_maxrss` also counts the memory the child shared with
/// this (large, parallel) test process before its exec, so below that it
/// may be ours, not the child's.
// The child is reaped by wait4 (which also yields its rusage), not by Child::wait.
#[allow(unsafe_code, clippy::zombie_processes)]
fn measured(args: &[&str]) -> Measured {
    let mut child = Command::new(env!("CARGO_BIN_EXE_visorsim"))
        .args(args)
        .env("VISORSIM_CACHE_DIR", cache_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run visorsim");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let read_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut s).ok();
        s
    });
    let read_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut s).ok();
        s
    });
    let started = Instant::now();
    let mut sampled = 0u64;
    let (status, rusage) = loop {
        sampled = sampled.max(vm_hwm(pid).unwrap_or(0));
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child, with pointers to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break (status, usage);
        }
        if started.elapsed() > RUN_LIMIT {
            child.kill().ok();
            panic!("visorsim {args:?} did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&read_out.join().unwrap()),
        String::from_utf8_lossy(&read_err.join().unwrap())
    );
    assert!(!out.contains("panicked"), "visorsim panicked: {out}");
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    // ru_maxrss is in KiB on Linux.
    let maxrss = rusage.ru_maxrss as u64 * 1024;
    // SAFETY: getpid has no preconditions.
    let own = vm_hwm(unsafe { libc::getpid() }).unwrap_or(u64::MAX);
    // Above everything this process ever held, ru_maxrss is the child's own.
    let peak_rss = if maxrss > own { maxrss.max(sampled) } else { sampled };
    Measured { code, out, peak_rss }
}

/// Rewrites file `name` of bank `bank` with `data` through the FAT layer.
fn bank_write(image: &Path, bank: u32, name: &str, data: &[u8]) {
    let mut dev = FileDisk::open(image, SectorSize::S512).unwrap();
    let v = scan_volumes(&mut dev).volumes.into_iter().find(|v| v.number == bank).unwrap();
    let mut location = BankLocation::fat(bank, v.first_lba, v.sectors);
    location.write(&mut dev, name, data).unwrap();
    location.sync(&mut dev).unwrap();
    dev.flush().unwrap();
}

/// Reads file `name` of bank `bank`.
fn bank_read(image: &Path, bank: u32, name: &str) -> Vec<u8> {
    let mut dev = FileDisk::open_read_only(image, SectorSize::S512).unwrap();
    let v = scan_volumes(&mut dev).volumes.into_iter().find(|v| v.number == bank).unwrap();
    BankLocation::fat(bank, v.first_lba, v.sectors).read(&mut dev, name, 1 << 30).unwrap()
}

/// boot.cfg of bank 5 with its `modules=` line replaced by `modules`.
fn boot_cfg_with_modules(image: &Path, modules: &str) -> Vec<u8> {
    let text = String::from_utf8(bank_read(image, 5, "boot.cfg")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("modules=") {
            out.push_str("modules=");
            out.push_str(modules);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out.into_bytes()
}

const MIB: u64 = 1 << 20;

#[test]
fn a_fat32_bank_whose_root_directory_chain_loops() {
    // Bank 5 rewritten as a FAT32 volume (4 sectors a cluster, 127,484
    // clusters) whose root directory cluster 2 links to itself.
    let (_dir, path) = damaged("fat32.img", |p| {
        let mut bs = [0u8; 512];
        bs[0..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
        bs[3..11].copy_from_slice(b"MSWIN4.1");
        bs[11..13].copy_from_slice(&512u16.to_le_bytes());
        bs[13] = 4;
        bs[14..16].copy_from_slice(&32u16.to_le_bytes());
        bs[16] = 2;
        bs[21] = 0xF8;
        bs[32..36].copy_from_slice(&511_968u32.to_le_bytes());
        bs[36..40].copy_from_slice(&1000u32.to_le_bytes());
        bs[44..48].copy_from_slice(&2u32.to_le_bytes());
        bs[48..50].copy_from_slice(&1u16.to_le_bytes());
        bs[50..52].copy_from_slice(&6u16.to_le_bytes());
        bs[82..90].copy_from_slice(b"FAT32   ");
        bs[510] = 0x55;
        bs[511] = 0xAA;
        write_at(p, 8224 * 512, &bs);
        // FAT #1: media entry, end-of-chain, then cluster 2 -> 2.
        let fat = [0xF8, 0xFF, 0xFF, 0x0F, 0xFF, 0xFF, 0xFF, 0x0F, 2, 0, 0, 0];
        write_at(p, (8224 + 32) * 512, &fat);
        write_at(p, (8224 + 32 + 1000) * 512, &fat);
    });
    let before = sparse_hash(&path);
    let run = measured(&["inspect", "--json", path.to_str().unwrap()]);
    assert_eq!(run.code, Some(3), "{}", run.out);
    assert!(run.out.contains("Partition 5 (LBA 8224, byte 4210688): not a FAT16 volume"), "{}", run.out);
    assert!(run.out.contains("FAT32"), "{}", run.out);
    let boot = measured(&["boot", "--dry-run", path.to_str().unwrap()]);
    assert!(boot.code.is_some_and(|c| c != 0 && c != 1), "{}", boot.out);
    assert!(boot.peak_rss < 512 * MIB, "{} bytes", boot.peak_rss);
    assert_eq!(sparse_hash(&path), before, "the input was modified");
}

#[test]
fn boot_cfg_listing_one_module_a_million_times() {
    let (_dir, path) = damaged("million.img", |p| {
        let modules = vec!["b.b00"; 1_000_000].join(" --- ");
        bank_write(p, 5, "boot.cfg", &boot_cfg_with_modules(p, &modules));
    });
    let before = sparse_hash(&path);
    let run = measured(&["inspect", "--json", path.to_str().unwrap()]);
    let tail = &run.out[run.out.len().saturating_sub(3000)..];
    assert_eq!(run.code, Some(3), "{tail}");
    assert!(run.out.contains("boot.cfg lists b.b00 1000001 times"), "{tail}");
    assert!(run.peak_rss < 1024 * MIB, "{} bytes", run.peak_rss);
    assert_eq!(sparse_hash(&path), before, "the input was modified");
}

#[test]
fn s_v00_listed_a_thousand_times_runs_out_of_the_budget() {
    let (_dir, path) = damaged("sv00x1000.img", |p| {
        let modules = vec!["s.v00"; 1000].join(" --- ");
        bank_write(p, 5, "boot.cfg", &boot_cfg_with_modules(p, &modules));
    });
    let before = sparse_hash(&path);
    let run = measured(&["boot", "--dry-run", "--ram", "256M", path.to_str().unwrap()]);
    assert_eq!(run.code, Some(5), "{}", run.out);
    assert!(run.out.contains("Out of resources"), "{}", run.out);
    assert!(run.out.contains("s.v00"), "names the module: {}", run.out);
    assert!(run.peak_rss < 256 * MIB, "{} bytes under a 256 MiB budget", run.peak_rss);
    assert_eq!(sparse_hash(&path), before, "the input was modified");
}

/// A gzip file of `len` zero bytes (ISIZE and CRC32 right), made by streaming.
fn zeros_gzip(len: u64) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; MIB as usize];
    for _ in 0..len / MIB {
        gz.write_all(&block).unwrap();
    }
    gz.finish().unwrap()
}

#[test]
fn a_gzip_bomb_kernel_is_out_of_resources_under_the_budget() {
    // 600 MiB of zeros in well under 1 MiB: mboot allocates ISIZE first.
    let bomb = zeros_gzip(600 * MIB);
    let (_dir, path) = damaged("bomb.img", |p| bank_write(p, 5, "k.b00", &bomb));
    let before = sparse_hash(&path);
    let run = measured(&["boot", "--dry-run", "--ram", "512M", path.to_str().unwrap()]);
    assert_eq!(run.code, Some(5), "{}", run.out);
    assert!(run.out.contains("Out of resources"), "{}", run.out);
    assert!(run.out.contains("k.b00"), "names the module: {}", run.out);
    assert!(run.peak_rss < 512 * MIB, "{} bytes under a 512 MiB budget", run.peak_rss);
    assert_eq!(sparse_hash(&path), before, "the input was modified");
}

/// Two 60 MiB files of zeros as `/etc` files.
fn two_files_of_zeros() -> Vec<visorsim_image::archive::EtcFile> {
    let zeros = |name: &str| visorsim_image::archive::EtcFile {
        path: format!("etc/{name}"),
        mode: 0o644,
        data: vec![0; 60 << 20],
    };
    vec![zeros("a"), zeros("b")]
}

/// `host … boot` on the fixture with bank 5's state.tgz replaced by
/// `state`: the host comes up with defaults (as a real host does when
/// state.tgz is unusable: docs/host.md), the alert says why and where, in
/// bounded memory, and the sidecar stays small.
fn state_tgz_is_refused(name: &str, state: &[u8], says: &[&str]) {
    let (_dir, path) = damaged(name, |p| bank_write(p, 5, "state.tgz", state));
    let run = measured(&["host", path.to_str().unwrap(), "boot"]);
    assert_eq!(run.code, Some(0), "{}", run.out);
    let alert =
        run.out.lines().find(|l| l.contains("Configuration not restored")).unwrap_or_else(|| panic!("{}", run.out));
    assert!(alert.contains("/bootbank/state.tgz in partition 5"), "names the bank: {alert}");
    assert!(alert.contains("booting with defaults"), "{alert}");
    for s in says {
        assert!(alert.contains(s), "{s:?} in {alert}");
    }
    assert!(run.out.contains("host localhost up"), "the host comes up with defaults: {}", run.out);
    assert!(run.peak_rss < 256 * MIB, "{} bytes", run.peak_rss);
    let saved = path.with_file_name(format!("{name}.host.json"));
    assert!(fs::metadata(&saved).unwrap().len() < MIB, "{} bytes", fs::metadata(&saved).unwrap().len());
    let run = measured(&["host", path.to_str().unwrap(), "advance", "100000000d"]);
    assert_eq!(run.code, Some(0), "{}", run.out);
    assert!(fs::metadata(&saved).unwrap().len() < 4 * MIB, "a bounded timeline");
}

#[test]
fn a_state_archive_whose_local_tgz_holds_zeros_is_refused_by_the_ratio() {
    use visorsim_image::archive::{local_tgz, state_tgz};
    // Gzip'd twice, 120 MiB of zeros are well under a KiB.
    let state = state_tgz(&local_tgz(&two_files_of_zeros(), 0), 0);
    assert!(state.len() < 2048, "{} bytes", state.len());
    state_tgz_is_refused("local0.img", &state, &["member 'local.tgz'", "over the ratio limit of 100:1"]);
}

#[test]
fn a_state_archive_holding_zeros_itself_is_refused() {
    use visorsim_image::archive::{fresh_etc, local_tgz, EtcFile};
    // state.tgz's own members: a sound local.tgz, then files of zeros
    // (skipped by the restore, but still inflated by tar).
    let state_with = |zeros: Vec<EtcFile>| {
        let local = local_tgz(&fresh_etc("esxi-01", 1, "Thu Jan  1 00:00:00 UTC 2026", 1), 0);
        let mut members = vec![EtcFile { path: "local.tgz".into(), mode: 0o644, data: local }];
        members.extend(zeros);
        // Deflate's best on zeros is about 1030:1: some 120 KiB.
        let state = local_tgz(&members, 0);
        assert!(state.len() < 256 << 10, "{} bytes", state.len());
        state
    };
    // Two 60 MiB files: each header claims more than /etc holds.
    let state = state_with(two_files_of_zeros());
    state_tgz_is_refused("state60.img", &state, &["Member 'etc/a' of state.tgz is 62914560 bytes", "RAM disk holds"]);
    // Files that fit one by one: the ratio stops the first while it inflates.
    let zeros = (0..4).map(|i| EtcFile { path: format!("etc/z{i}"), mode: 0o644, data: vec![0; 20 << 20] });
    let state = state_with(zeros.collect());
    state_tgz_is_refused("state20.img", &state, &["state.tgz inflates", "member 'etc/z0'", "ratio limit of 100:1"]);
}

#[test]
fn the_saved_host_stays_proportional_to_etc() {
    use visorsim_image::archive::{fresh_etc, local_tgz, state_tgz, EtcFile};
    // A sound configuration with a 4 MiB file that does not compress.
    let mut etc = fresh_etc("esxi-01", 1, "Thu Jan  1 00:00:00 UTC 2026", 1);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..4 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    etc.push(EtcFile { path: "etc/vmware/noise.bin".into(), mode: 0o644, data: noise });
    let etc_bytes: u64 = etc.iter().map(|f| f.data.len() as u64).sum();
    let state = state_tgz(&local_tgz(&etc, 0), 0);
    let (_dir, path) = damaged("noise.img", |p| bank_write(p, 5, "state.tgz", &state));
    let run = measured(&["host", path.to_str().unwrap(), "boot"]);
    assert_eq!(run.code, Some(0), "{}", run.out);
    assert!(run.out.contains("/etc restored from /bootbank/state.tgz"), "{}", run.out);
    let saved = fs::metadata(path.with_file_name("noise.img.host.json")).unwrap().len();
    // base64 is 4/3 of the bytes; the rest is the small files and the timeline.
    assert!(saved > etc_bytes && saved < etc_bytes * 3 / 2 + MIB, "{saved} bytes for {etc_bytes} bytes of /etc");
}

#[test]
fn a_large_module_whose_chain_loops() {
    // esxi7: s.v00's directory entry claims 400 MiB and its first cluster
    // links to itself.
    let src = &esxi7().image;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loop7.img");
    extract(src, 0, fs::metadata(src).unwrap().len(), &path);
    let (file, first_lba, reserved) = {
        let mut dev = FileDisk::open_read_only(&path, SectorSize::S512).unwrap();
        let v = scan_volumes(&mut dev).volumes.into_iter().find(|v| v.number == 5).unwrap();
        let reader = visorsim_media::fatread::FatReader::open(&mut dev, v.first_lba, v.sectors).unwrap();
        let file = reader.find(&mut dev, "s.v00").unwrap().unwrap();
        (file, v.first_lba, u64::from(reader.geometry().reserved_sectors))
    };
    write_at(&path, file.dir_entry_lba * 512 + file.dir_entry_offset as u64 + 28, &(400u32 << 20).to_le_bytes());
    let link = u16::try_from(file.first_cluster).unwrap().to_le_bytes();
    write_at(&path, (first_lba + reserved) * 512 + 2 * u64::from(file.first_cluster), &link);
    let before = sparse_hash(&path);
    let run = measured(&["inspect", "--json", path.to_str().unwrap()]);
    assert_eq!(run.code, Some(3), "{}", run.out);
    assert!(run.out.contains("S.V00") && run.out.contains("loops"), "{}", run.out);
    assert!(run.peak_rss < 256 * MIB, "{} bytes", run.peak_rss);
    assert_eq!(sparse_hash(&path), before, "the input was modified");
}

/// Runs `visorsim run` on a scenario file with `text`.
fn run_scenario(text: &str) -> (tempfile::TempDir, PathBuf, Measured) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.json");
    fs::write(&path, text).unwrap();
    let run = measured(&["run", path.to_str().unwrap()]);
    (dir, path, run)
}

#[test]
fn scenario_numbers_out_of_range_name_their_line_and_column() {
    for (disk, step, says) in [
        (r#"{"payload_mb": 1e300}"#, r#""power_cut""#, "disk.payload_mb"),
        ("{}", r#"{"upgrade": {"build_number": 2000, "extra_mb": 18446744073709551615}}"#, "upgrade.extra_mb"),
        ("{}", r#"{"corrupt": {"fill": {"lba": 0, "count": 18446744073709551615, "byte": 0}}}"#, "corrupt.fill.count"),
        ("{}", r#"{"advance": "100000000y"}"#, "advance"),
    ] {
        let text = format!("{{\n  \"disk\": {disk},\n  \"steps\": [\n    {step}\n  ]\n}}\n");
        let (_dir, path, run) = run_scenario(&text);
        assert_eq!(run.code, Some(1), "{text}: {}", run.out);
        let line = if disk == "{}" { 4 } else { 2 };
        assert!(run.out.contains(&format!("hostile.json:{line}:")), "{text}: {}", run.out);
        assert!(run.out.contains(says), "{text}: {}", run.out);
        assert_eq!(fs::read_to_string(&path).unwrap(), text, "the scenario file is unchanged");
    }
}

#[test]
fn scenario_bit_rot_on_an_empty_file_and_a_hundred_million_days() {
    let text = r#"{
  "disk": {},
  "steps": [
    { "boot": {} },
    { "advance": "100000000d" },
    { "expect": { "running": true } },
    { "corrupt": { "file": { "bank": 5, "file": "state.tgz" }, "truncate_to": 0 } },
    { "fault": { "bit_rot": { "bank": 5, "file": "state.tgz" } } }
  ]
}
"#;
    let (_dir, _path, run) = run_scenario(text);
    assert_eq!(run.code, Some(1), "{}", run.out);
    assert!(run.out.contains("fault.bit_rot: bank 5: state.tgz has no data to rot"), "{}", run.out);
    assert!(run.out.contains("step 5"), "names the step: {}", run.out);
}

// ---------------------------------------------------------------------------
// Messages that say where (issue 10 point 4): text `boot` prints the
// loader's own line and a "why (visorsim)" line naming the table, partition,
// bank or file; `host … boot`'s timeline says the same.

/// `boot --dry-run` (text) and `host … boot` on `path`: both exit with
/// `code`, text boot prints the loader's line `esx` and both say `why`.
fn boot_says_where(path: &Path, code: i32, esx: &str, why: &[&str]) {
    let before = sparse_hash(path);
    let boot = measured(&["boot", "--dry-run", path.to_str().unwrap()]);
    assert_eq!(boot.code, Some(code), "{}", boot.out);
    assert!(boot.out.contains(esx), "the loader's own line: {}", boot.out);
    let line = boot.out.lines().find(|l| l.starts_with("why (visorsim): ")).unwrap_or_else(|| panic!("{}", boot.out));
    for w in why {
        assert!(line.contains(w), "{w:?} in {line:?}");
    }
    assert!(boot.peak_rss < 256 * MIB, "{} bytes", boot.peak_rss);
    assert_eq!(sparse_hash(path), before, "--dry-run modified the input");
    // The host's boot (which writes bootstate digits, as a real boot does).
    let host = measured(&["host", path.to_str().unwrap(), "boot"]);
    assert_eq!(host.code, Some(code), "{}", host.out);
    let event = host.out.lines().find(|l| l.contains("  boot  ")).unwrap_or_else(|| panic!("{}", host.out));
    for w in why {
        assert!(event.contains(w), "{w:?} in the timeline's {event:?}");
    }
}

#[test]
fn text_boot_says_why_a_corrupt_primary_gpt_finds_no_hypervisor() {
    let (_dir, path) = damaged("gpt.img", |p| write_at(p, 512 + 16, &[0xDE, 0xAD, 0xBE, 0xEF]));
    boot_says_where(
        &path,
        4,
        "No hypervisor found.",
        &["Primary GPT header at LBA 1: HeaderCRC32", "esx-boot reads only the primary GPT"],
    );
    // The JSON report carries the same reason beside the table's error.
    let json = measured(&["boot", "--dry-run", "--json", path.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_str(&json.out).unwrap();
    assert!(report["reason"].as_str().unwrap().starts_with(report["partition_error"].as_str().unwrap()), "{report}");
}

#[test]
fn text_boot_names_a_fat32_bank_and_its_lba() {
    let (_dir, path) = damaged("fat32bank.img", |p| {
        // Bank 5's boot sector says FAT32 (no FAT16 FAT size); its sector 1
        // (the bank UUID) is intact.
        let mut bs = vec![0u8; 512];
        let mut f = fs::File::open(p).unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(8224 * 512)).unwrap();
        std::io::Read::read_exact(&mut f, &mut bs).unwrap();
        bs[22..24].fill(0);
        bs[36..40].copy_from_slice(&1000u32.to_le_bytes());
        write_at(p, 8224 * 512, &bs);
    });
    boot_says_where(&path, 4, "No hypervisor found.", &["partition 5 (LBA 8224)", "FAT32", "partition 6 (LBA"]);
}

#[test]
fn an_empty_mbr_gives_a_reason() {
    let (_dir, path) = damaged("nombr.img", |p| write_at(p, 0, &[0u8; 512]));
    boot_says_where(
        &path,
        9,
        "The firmware could not start the loader",
        &["no EFI system partition", "LBA 0 holds no partition table"],
    );
}

#[test]
fn a_gpt_with_no_entries_gives_a_reason() {
    let (_dir, path) = damaged("noentries.img", |p| {
        // The primary's entry array (LBA 2..34) zeroed, its CRCs made right.
        let array = vec![0u8; 128 * 128];
        write_at(p, 2 * 512, &array);
        let mut header = vec![0u8; 92];
        let mut f = fs::File::open(p).unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(512)).unwrap();
        std::io::Read::read_exact(&mut f, &mut header).unwrap();
        header[88..92].copy_from_slice(&crc32fast::hash(&array).to_le_bytes());
        header[16..20].fill(0);
        let crc = crc32fast::hash(&header);
        header[16..20].copy_from_slice(&crc.to_le_bytes());
        write_at(p, 512, &header);
    });
    boot_says_where(
        &path,
        9,
        "The firmware could not start the loader",
        &["no EFI system partition in the GPT", "the primary GPT (header at LBA 1) has no used entry among its 128"],
    );
}

#[test]
fn a_module_with_a_bad_crc_names_the_bank_and_file() {
    let (_dir, path) = damaged("crc.img", |p| {
        let mut s = bank_read(p, 5, "s.v00");
        let n = s.len();
        s[n - 8] ^= 0xFF; // the gzip trailer's CRC32
        bank_write(p, 5, "s.v00", &s);
    });
    boot_says_where(
        &path,
        5,
        "Fatal error: 28 (CRC error)",
        &["bank 5 s.v00: Fatal error: 28 (CRC error)", "Received CRC"],
    );
}

// ---------------------------------------------------------------------------
// The memory budget on `run` and `inspect` (`--ram`).

#[test]
fn run_ram_is_the_default_a_scenario_disk_ram_overrides() {
    // s.v00 (3 MB loaded) listed 30 times: about 90 MB of modules.
    let (dir, path) = damaged("sv00x30.img", |p| {
        let modules = vec!["s.v00"; 30].join(" --- ");
        bank_write(p, 5, "boot.cfg", &boot_cfg_with_modules(p, &modules));
    });
    let before = sparse_hash(&path);
    let scenario = |name: &str, ram: &str| {
        let file = dir.path().join(name);
        fs::write(
            &file,
            format!(
                "{{\n  \"disk\": {{ \"image\": \"sv00x30.img\"{ram} }},\n  \"steps\": [\n    {{ \"boot\": {{}} }},\n    \
                 {{ \"expect\": {{ \"running\": true }} }}\n  ]\n}}\n"
            ),
        )
        .unwrap();
        file
    };
    let plain = scenario("plain.json", "");
    let own = scenario("own.json", ", \"ram\": \"4G\"");
    let run = measured(&["run", plain.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "the default 4 GiB holds the modules: {}", run.out);
    let run = measured(&["run", "--ram", "64M", plain.to_str().unwrap()]);
    assert_eq!(run.code, Some(7), "64 MiB does not: {}", run.out);
    assert!(run.out.contains("Out of resources"), "{}", run.out);
    let run = measured(&["run", "--ram", "64M", own.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "the scenario's own disk.ram wins: {}", run.out);
    assert_eq!(sparse_hash(&path), before, "the image was modified");
}

#[test]
fn inspect_reads_draw_on_the_ram_budget() {
    // An uncompressed s.v00 of 80 MiB: more than a 64 MiB budget.
    let (_dir, path) = damaged("bigmodule.img", |p| bank_write(p, 5, "s.v00", &vec![0x5Au8; 80 << 20]));
    let before = sparse_hash(&path);
    let run = measured(&["inspect", "--ram", "64M", path.to_str().unwrap()]);
    assert_eq!(run.code, Some(3), "{}", run.out);
    assert!(
        run.out.contains("s.v00 is 83886080 bytes, more than the memory budget of 67108864 bytes (--ram)"),
        "{}",
        run.out
    );
    assert!(run.out.contains("Partition 5"), "names the partition: {}", run.out);
    assert!(run.peak_rss < 64 * MIB, "{} bytes under a 64 MiB budget", run.peak_rss);
    // Within the default budget it is read and checked.
    let run = measured(&["inspect", path.to_str().unwrap()]);
    assert!(!run.out.contains("memory budget"), "{}", run.out);
    assert_eq!(sparse_hash(&path), before, "the input was modified");
}
