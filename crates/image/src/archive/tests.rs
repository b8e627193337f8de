//! Unit tests of the archives: the default `/etc`, the writer's bytes
//! (checked against GNU tar when it is installed), the reader's limits and
//! rejections, and round trips through both.

use std::process::Command;

use super::tar_read::{parse_numeric, read_tgz};
use super::tar_write::{put_numeric, tar_of, TarWriter, TYPE_FILE};
use super::*;
use crate::payload::gzip_bytes;
use crate::test_tools::run;

const LIMITS: ArchiveLimits =
    ArchiveLimits { max_members: 4096, max_member_bytes: 64 << 20, max_total_bytes: 128 << 20, max_ratio: 100 };

fn etc() -> Vec<EtcFile> {
    fresh_etc("esx01.example.com", 7, "Thu Jan  1 00:00:00 UTC 2026", 3)
}

fn gnu_tar(args: &[&str], dir: &std::path::Path) -> Option<String> {
    let out = run(Command::new("tar").args(args).current_dir(dir))?;
    assert!(out.status.success(), "tar {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "tar {args:?} warned: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).unwrap())
}

/// A raw header block, for archives this module would never write.
fn raw_header(name: &str, typeflag: u8, size: u64, link: &str) -> Vec<u8> {
    let mut w = TarWriter::new(0);
    w.header(name.as_bytes(), &[], typeflag, 0o644, size, false);
    let mut h = w.out;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    fix_checksum(&mut h);
    h
}

fn fix_checksum(h: &mut [u8]) {
    h[148..156].fill(b' ');
    let sum: u32 = h[..512].iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

/// A tgz of raw tar blocks with the end-of-archive blocks.
fn tgz(blocks: &[&[u8]]) -> Vec<u8> {
    let mut tar = blocks.concat();
    tar.resize(tar.len() + 1024, 0);
    gzip_bytes(None, &tar, 0)
}

fn state_of(local_blocks: &[&[u8]]) -> Vec<u8> {
    state_tgz(&tgz(local_blocks), 0)
}

fn err(state: &[u8], limits: &ArchiveLimits) -> ArchiveError {
    match read_state_tgz(state, limits) {
        Ok(files) => panic!("accepted: {files:?}"),
        Err(e) => e,
    }
}

#[test]
fn fresh_etc_has_the_expected_files() {
    let files = etc();
    let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["etc/hosts", "etc/shadow", "etc/vmware/.backup.counter", "etc/vmware/esx.conf"]);
    let text = |p: &str| String::from_utf8(files.iter().find(|f| f.path == p).unwrap().data.clone()).unwrap();
    let conf = text("etc/vmware/esx.conf");
    assert!(conf.contains("/adv/Misc/HostName = \"esx01.example.com\"\n"), "{conf}");
    let uuid = conf.lines().find_map(|l| l.strip_prefix("/system/uuid = \"")).unwrap().trim_end_matches('"');
    let groups: Vec<_> = uuid.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{uuid}");
    assert!(uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    assert_eq!(
        text("etc/vmware/.backup.counter"),
        "# This file is owned and updated by /sbin/backup.sh\n\
         # CREATED: Thu Jan  1 00:00:00 UTC 2026\n\
         # MODIFIED: Thu Jan  1 00:00:00 UTC 2026\n\
         3\n"
    );
    assert!(text("etc/shadow").starts_with("root:$6$"));
    assert!(text("etc/hosts").contains("esx01.example.com esx01\n"));
}

#[test]
fn fresh_etc_is_deterministic_per_seed() {
    assert_eq!(etc(), etc());
    let other = fresh_etc("esx01.example.com", 8, "Thu Jan  1 00:00:00 UTC 2026", 3);
    assert_ne!(other, etc());
    // Hostile strings stay on one line.
    let odd = fresh_etc("a\"b\nc", 1, "x\ny", 0);
    let conf = String::from_utf8(odd[3].data.clone()).unwrap();
    assert!(conf.contains("/adv/Misc/HostName = \"a_b_c\"\n"), "{conf}");
    assert_eq!(odd[2].data.iter().filter(|&&b| b == b'\n').count(), 4);
}

#[test]
fn archives_are_deterministic() {
    assert_eq!(local_tgz(&etc(), 100), local_tgz(&etc(), 100));
    assert_ne!(local_tgz(&etc(), 100), local_tgz(&etc(), 101));
    let local = local_tgz(&etc(), 100);
    assert_eq!(state_tgz(&local, 100), state_tgz(&local, 100));
    assert_eq!(imgdb_tgz("6.7.0", "8169922", 5), imgdb_tgz("6.7.0", "8169922", 5));
    // Input order does not matter: members are sorted.
    let mut reversed = etc();
    reversed.reverse();
    assert_eq!(local_tgz(&reversed, 100), local);
}

#[test]
fn round_trip() {
    let files = etc();
    let state = state_tgz(&local_tgz(&files, 1_700_000_000), 1_700_000_000);
    assert_eq!(read_state_tgz(&state, &ArchiveLimits::default()).unwrap(), files);
}

#[test]
fn round_trip_of_long_and_odd_paths() {
    let long_dir = "d".repeat(120);
    let files = vec![
        EtcFile { path: format!("etc/{long_dir}/f"), mode: 0o600, data: b"split".to_vec() },
        EtcFile { path: format!("etc/{}", "n".repeat(300)), mode: 0o644, data: b"gnu".to_vec() },
        EtcFile { path: "/etc//./x/../y".into(), mode: 0o4755, data: vec![0; 513] },
        EtcFile { path: "etc/empty".into(), mode: 0o644, data: vec![] },
        EtcFile { path: "..".into(), mode: 0o644, data: b"dropped".to_vec() },
    ];
    let got = read_state_tgz(&state_tgz(&local_tgz(&files, 0), 0), &LIMITS).unwrap();
    let mut want: Vec<(String, u32, Vec<u8>)> = vec![
        (format!("etc/{long_dir}/f"), 0o600, b"split".to_vec()),
        ("etc/empty".into(), 0o644, vec![]),
        (format!("etc/{}", "n".repeat(300)), 0o644, b"gnu".to_vec()),
        ("etc/x/y".into(), 0o4755, vec![0; 513]),
    ];
    want.sort();
    let mut got: Vec<_> = got.into_iter().map(|f| (f.path, f.mode, f.data)).collect();
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn gnu_tar_lists_and_extracts_our_archives() {
    let dir = tempfile::tempdir().unwrap();
    let local = local_tgz(&etc(), 1_700_000_000);
    std::fs::write(dir.path().join("local.tgz"), &local).unwrap();
    std::fs::write(dir.path().join("state.tgz"), state_tgz(&local, 1_700_000_000)).unwrap();
    let Some(list) = gnu_tar(&["tzf", "local.tgz"], dir.path()) else { return };
    assert_eq!(list, "etc/\netc/hosts\netc/shadow\netc/vmware/\netc/vmware/.backup.counter\netc/vmware/esx.conf\n");
    assert_eq!(gnu_tar(&["tzf", "state.tgz"], dir.path()).unwrap(), "local.tgz\n");
    let verbose = gnu_tar(&["tvzf", "local.tgz"], dir.path()).unwrap();
    assert!(verbose.lines().all(|l| l.contains(" root/root ")), "{verbose}");
    assert!(verbose.contains("-rw-r--r-T root/root"), "{verbose}");
    // Extract and compare.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    gnu_tar(&["xzf", "../local.tgz"], &out).unwrap();
    for f in etc() {
        assert_eq!(std::fs::read(out.join(&f.path)).unwrap(), f.data, "{}", f.path);
    }
}

#[test]
fn gnu_tar_accepts_long_names() {
    let files = vec![
        EtcFile { path: format!("etc/{}/f", "d".repeat(120)), mode: 0o644, data: b"a".to_vec() },
        EtcFile { path: format!("etc/{}", "n".repeat(300)), mode: 0o644, data: b"b".to_vec() },
    ];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("l.tgz"), local_tgz(&files, 0)).unwrap();
    let Some(list) = gnu_tar(&["tzf", "l.tgz"], dir.path()) else { return };
    for f in &files {
        assert!(list.lines().any(|l| l == f.path), "{} not in {list}", f.path);
    }
}

#[test]
fn reads_archives_made_by_gnu_tar() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let long = "l".repeat(150);
    std::fs::create_dir_all(root.join("etc/vmware")).unwrap();
    std::fs::write(root.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    std::fs::write(root.join("etc/vmware/esx.conf"), b"/adv/Misc/HostName = \"h\"\n").unwrap();
    std::fs::write(root.join("etc/vmware").join(&long), b"long\n").unwrap();
    for format in ["gnu", "pax", "ustar"] {
        std::fs::create_dir_all(root.join(format)).unwrap();
        let fmt = format!("--format={format}");
        let members: &[&str] = if format == "ustar" {
            &["etc/hosts", "etc/vmware/esx.conf"] // ustar cannot hold the long name
        } else {
            &["./etc"]
        };
        let mut args = vec!["czf", "local.tgz", fmt.as_str(), "-C", ".."];
        args.extend_from_slice(members);
        let Some(_) = gnu_tar(&args, &root.join(format)) else { return };
        gnu_tar(&["czf", "state.tgz", fmt.as_str(), "local.tgz"], &root.join(format)).unwrap();
        let state = std::fs::read(root.join(format).join("state.tgz")).unwrap();
        let files = read_state_tgz(&state, &LIMITS).unwrap();
        let find = |p: &str| files.iter().find(|f| f.path == p).map(|f| f.data.clone());
        assert_eq!(find("etc/hosts").unwrap(), b"127.0.0.1 localhost\n", "{format}");
        assert_eq!(find("etc/vmware/esx.conf").unwrap(), b"/adv/Misc/HostName = \"h\"\n", "{format}");
        if format != "ustar" {
            assert_eq!(find(&format!("etc/vmware/{long}")).unwrap(), b"long\n", "{format}");
        }
    }
}

#[test]
fn imgdb_names_the_build() {
    let imgdb = imgdb_tgz("6.7.0", "8169922", 0);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("imgdb.tgz"), &imgdb).unwrap();
    if let Some(list) = gnu_tar(&["tzf", "imgdb.tgz"], dir.path()) {
        assert!(list.contains("var/db/esximg/profiles/ESXi-6.7.0-8169922-standard\n"), "{list}");
        assert!(list.lines().filter(|l| l.starts_with("var/db/esximg/vibs/") && l.ends_with(".xml")).count() >= 3);
    }
    let files = read_tgz(&imgdb, "imgdb.tgz", &LIMITS, &mut |_| true).unwrap();
    let base = files.iter().find(|f| f.path.contains("/vibs/esx-base-")).unwrap();
    let text = String::from_utf8(base.data.clone()).unwrap();
    assert!(text.contains("<version>6.7.0-0.0.8169922</version>"), "{text}");
    // Odd strings are escaped and kept out of file names.
    let odd = imgdb_tgz("<&>", "../x", 0);
    let files = read_tgz(&odd, "imgdb.tgz", &LIMITS, &mut |_| true).unwrap();
    assert!(files.iter().all(|f| f.path.split('/').all(|c| c != "..") && !f.path.contains('<')));
    assert!(files.iter().any(|f| String::from_utf8_lossy(&f.data).contains("&lt;&amp;&gt;")));
}

#[test]
fn rejects_absolute_paths() {
    let e = err(&state_of(&[&raw_header("/etc/passwd", b'0', 0, "")]), &LIMITS);
    assert_eq!(e.kind(), ArchiveErrorKind::AbsolutePath);
    assert_eq!((e.archive(), e.member()), ("local.tgz", Some("/etc/passwd")));
}

#[test]
fn rejects_parent_components() {
    for name in ["../etc/passwd", "etc/../../x", "etc/.."] {
        let e = err(&state_of(&[&raw_header(name, b'0', 0, "")]), &LIMITS);
        assert_eq!(e.kind(), ArchiveErrorKind::ParentDir, "{name}");
        assert_eq!(e.member(), Some(name));
    }
}

#[test]
fn rejects_links_and_devices_without_following_them() {
    let cases = [
        (b'2', SpecialMember::Symlink("/etc/shadow".into())),
        (b'1', SpecialMember::HardLink("etc/shadow".into())),
        (b'3', SpecialMember::CharDevice),
        (b'4', SpecialMember::BlockDevice),
        (b'6', SpecialMember::Fifo),
    ];
    for (flag, want) in cases {
        let link = match &want {
            SpecialMember::Symlink(t) | SpecialMember::HardLink(t) => t.as_str(),
            _ => "",
        };
        let e = err(&state_of(&[&raw_header("etc/hosts", flag, 0, link)]), &LIMITS);
        assert_eq!(e.kind(), ArchiveErrorKind::SpecialFile);
        assert_eq!(e.member(), Some("etc/hosts"));
        let ArchiveError::SpecialFile { what, .. } = &e else { unreachable!() };
        assert_eq!(*what, want);
        assert!(e.to_string().contains("etc/hosts"), "{e}");
    }
    // A symlink posing as local.tgz in the outer archive.
    let outer = tgz(&[&raw_header("local.tgz", b'2', 0, "/etc/shadow")]);
    let e = err(&outer, &LIMITS);
    assert_eq!((e.kind(), e.archive()), (ArchiveErrorKind::SpecialFile, "state.tgz"));
}

#[test]
fn rejects_too_many_members() {
    let header = raw_header("etc/f", b'0', 0, "");
    let blocks: Vec<&[u8]> = vec![&header; 10_000];
    // 10,000 identical headers inflate about 300:1: without the ratio
    // guard, the member count stops them.
    let e = err(&state_of(&blocks), &ArchiveLimits { max_ratio: u64::MAX, ..LIMITS });
    assert_eq!(e.kind(), ArchiveErrorKind::TooManyMembers);
    assert_eq!(err(&state_of(&blocks), &LIMITS).kind(), ArchiveErrorKind::RatioTooHigh);
    let small = ArchiveLimits { max_members: 3, ..LIMITS };
    let e = err(&state_of(&blocks[..4]), &small);
    assert_eq!(e.kind(), ArchiveErrorKind::TooManyMembers);
    assert!(read_state_tgz(&state_of(&blocks[..3]), &small).is_ok());
}

#[test]
fn rejects_a_member_claiming_a_gigabyte() {
    let huge = raw_header("etc/huge", b'0', 1 << 30, "");
    let e = err(&state_of(&[&huge, &[0u8; 4096]]), &LIMITS);
    assert_eq!(e.kind(), ArchiveErrorKind::MemberTooLarge);
    assert_eq!(e.member(), Some("etc/huge"));
    // Base-256 sizes are understood too.
    let mut b256 = raw_header("etc/b256", b'0', 0, "");
    b256[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0]);
    fix_checksum(&mut b256);
    assert_eq!(err(&state_of(&[&b256]), &LIMITS).kind(), ArchiveErrorKind::MemberTooLarge);
}

#[test]
fn rejects_too_much_data_in_all() {
    let limits = ArchiveLimits { max_member_bytes: 1000, max_total_bytes: 1500, ..LIMITS };
    let a = raw_header("etc/a", b'0', 1000, "");
    let b = raw_header("etc/b", b'0', 1000, "");
    let data = [7u8; 1024]; // 1000 bytes and their padding
    let e = err(&state_of(&[&a, &data, &b, &data]), &limits);
    assert_eq!((e.kind(), e.member()), (ArchiveErrorKind::TotalTooLarge, Some("etc/b")));
    assert!(read_state_tgz(&state_of(&[&a, &data]), &limits).is_ok());
    // The outer archive has the same limits.
    let e = err(&state_of(&[&a, &data]), &ArchiveLimits { max_member_bytes: 20, ..LIMITS });
    assert_eq!((e.kind(), e.archive()), (ArchiveErrorKind::MemberTooLarge, "state.tgz"));
}

#[test]
fn rejects_unsupported_types() {
    let e = err(&state_of(&[&raw_header("etc/sparse", b'S', 0, "")]), &LIMITS);
    assert_eq!(e.kind(), ArchiveErrorKind::Unsupported);
}

#[test]
fn rejects_corrupt_data() {
    let good = state_tgz(&local_tgz(&etc(), 0), 0);
    // Not gzip at all.
    assert_eq!(err(b"", &LIMITS).kind(), ArchiveErrorKind::Gzip);
    assert_eq!(err(b"hello, this is not gzip data", &LIMITS).kind(), ArchiveErrorKind::Gzip);
    // Truncated.
    assert_eq!(err(&good[..good.len() - 20], &LIMITS).kind(), ArchiveErrorKind::Gzip);
    // A flipped bit in the deflate data or the CRC.
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    let kind = err(&flipped, &LIMITS).kind();
    assert!(matches!(kind, ArchiveErrorKind::Gzip | ArchiveErrorKind::Corrupt), "{kind:?}");
    let mut crc = good.clone();
    let at = crc.len() - 8;
    crc[at] ^= 1;
    assert_eq!(err(&crc, &LIMITS).kind(), ArchiveErrorKind::Gzip);
    // A bad tar header checksum.
    let mut bad = raw_header("etc/hosts", b'0', 0, "");
    bad[0] = b'E';
    assert_eq!(err(&state_of(&[&bad]), &LIMITS).kind(), ArchiveErrorKind::Corrupt);
    // A member cut short.
    let short = raw_header("etc/hosts", b'0', 5000, "");
    let local = gzip_bytes(None, &[&short[..], &[1u8; 600]].concat(), 0);
    assert_eq!(err(&state_tgz(&local, 0), &LIMITS).kind(), ArchiveErrorKind::Corrupt);
}

#[test]
fn requires_local_tgz() {
    assert_eq!(err(&tgz(&[]), &LIMITS).kind(), ArchiveErrorKind::MissingLocalTgz);
    let other = raw_header("other.tgz", b'0', 0, "");
    assert_eq!(err(&tgz(&[&other]), &LIMITS).kind(), ArchiveErrorKind::MissingLocalTgz);
    // ./local.tgz is local.tgz.
    let mut w = TarWriter::new(0);
    w.entry("./local.tgz", TYPE_FILE, 0o644, &local_tgz(&etc(), 0));
    let state = gzip_bytes(None, &w.finish(), 0);
    assert_eq!(read_state_tgz(&state, &LIMITS).unwrap(), etc());
}

#[test]
fn numeric_fields() {
    assert_eq!(parse_numeric(b"0000644\0"), Some(0o644));
    assert_eq!(parse_numeric(b"  644 \0"), Some(0o644));
    assert_eq!(parse_numeric(b"\0\0\0"), Some(0));
    assert_eq!(parse_numeric(b"0009\0"), None);
    assert_eq!(parse_numeric(&[0x80, 0, 0, 1, 0]), Some(256));
    assert_eq!(parse_numeric(&[0xff, 0xff]), None);
    assert_eq!(parse_numeric(&[0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None, "over 2^64");
    let mut f = [0u8; 12];
    put_numeric(&mut f, 1 << 40);
    assert_eq!(f[0], 0x80);
    assert_eq!(parse_numeric(&f), Some(1 << 40));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Damaged archives give an error or files, never a panic.
    #[test]
    fn damaged_archives_never_panic(
        edits in proptest::collection::vec((0usize..6144, proptest::prelude::any::<u8>()), 1..8),
        cut in 0usize..6144,
    ) {
        let mut tar = tar_of(&etc(), 0);
        for (at, v) in edits {
            let n = tar.len();
            tar[at % n] = v;
        }
        tar.truncate(cut.max(512));
        let state = state_tgz(&gzip_bytes(None, &tar, 0), 0);
        let _ = read_state_tgz(&state, &LIMITS);
        let mut outer = tar_of(&[EtcFile { path: "local.tgz".into(), mode: 0o644, data: tar }], 0);
        let n = outer.len();
        outer[cut % n] ^= 0x55;
        let _ = read_state_tgz(&gzip_bytes(None, &outer, 0), &LIMITS);
    }
}

/// Fuzz finding (state_tgz target): a pax `path` record holding a NUL gave a
/// name with a NUL in it, which no file system can hold and which the writer
/// then cut short. busybox tar ends the name at the NUL; so does the reader.
#[test]
fn pax_path_ends_at_a_nul_like_busybox_tar() {
    let record = b"20 path=etc/a\0junk\xff\n";
    let mut pax = raw_header("PaxHeader", b'x', record.len() as u64, "");
    pax.extend_from_slice(record);
    pax.resize(1024, 0);
    let mut file = raw_header("etc/ignored", b'0', 2, "");
    file.extend_from_slice(b"hi");
    file.resize(1024, 0);
    let files = read_state_tgz(&state_of(&[&pax, &file]), &ArchiveLimits::default()).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!((files[0].path.as_str(), &files[0].data[..]), ("etc/a", &b"hi"[..]));
}

#[test]
fn rejects_an_archive_that_inflates_past_the_ratio_naming_the_level_and_member() {
    let zeros = |name: &str| EtcFile { path: name.to_owned(), mode: 0o644, data: vec![0; 8 << 20] };
    // local.tgz of zeros: refused at local.tgz, while reading etc/a.
    let state = state_tgz(&local_tgz(&[zeros("etc/a"), zeros("etc/b")], 0), 0);
    let e = err(&state, &LIMITS);
    assert_eq!((e.kind(), e.archive(), e.member()), (ArchiveErrorKind::RatioTooHigh, "local.tgz", Some("etc/a")));
    assert!(e.to_string().contains("over the ratio limit of 100:1"), "{e}");
    // Zeros in state.tgz itself, beside local.tgz: refused at state.tgz.
    let mut w = TarWriter::new(0);
    w.entry("local.tgz", TYPE_FILE, 0o644, &local_tgz(&etc(), 0));
    w.entry("etc/zeros", TYPE_FILE, 0o644, &vec![0; 8 << 20]);
    let outer = gzip_bytes(None, &w.finish(), 0);
    let e = err(&outer, &LIMITS);
    assert_eq!((e.kind(), e.archive(), e.member()), (ArchiveErrorKind::RatioTooHigh, "state.tgz", Some("etc/zeros")));
    // A fresh install's archive is far below the ratio.
    assert!(read_state_tgz(&state_tgz(&local_tgz(&etc(), 0), 0), &LIMITS).is_ok());
}
