//! The simulated clock and cron, and the RAM-disk's `/etc` through their
//! public API: what auto-backup.sh sees (docs/host.md: What is saved, auto-backup.sh).

use visorsim_host::clock::{Clock, SimTime};
use visorsim_host::cron::{due_between, CronErrorKind, CronField, CronSchedule, AUTO_BACKUP, MAX_DUE};
use visorsim_host::etc::{EtcErrorKind, EtcTree, BACKUP_COUNTER, ESX_CONF, HOSTS, SHADOW};
use visorsim_image::archive::{local_tgz, read_state_tgz, state_tgz, ArchiveLimits, EtcFile};

fn t(s: &str) -> SimTime {
    SimTime::parse_rfc3339(s).unwrap()
}

fn cron(spec: &str) -> CronSchedule {
    CronSchedule::parse(spec).unwrap()
}

/// The tree as backup.sh would save it and the next boot restore it.
fn through_state_tgz(tree: &EtcTree) -> EtcTree {
    let local = local_tgz(&tree.saved_files(), 1_767_225_600);
    let state = state_tgz(&local, 1_767_225_600);
    EtcTree::from_files(read_state_tgz(&state, &ArchiveLimits::default()).unwrap())
}

fn host() -> EtcTree {
    EtcTree::defaults("esx01.example.com", 42, SimTime::START)
}

// ---------------------------------------------------------------------------
// Time

#[test]
fn rfc3339_and_ctime_on_known_dates() {
    let cases = [
        (0, "1970-01-01T00:00:00Z", "Thu Jan  1 00:00:00 UTC 1970"),
        (1_767_225_600, "2026-01-01T00:00:00Z", "Thu Jan  1 00:00:00 UTC 2026"),
        (1_767_225_660, "2026-01-01T00:01:00Z", "Thu Jan  1 00:01:00 UTC 2026"),
        (951_782_400, "2000-02-29T00:00:00Z", "Tue Feb 29 00:00:00 UTC 2000"),
        (1_709_164_799, "2024-02-28T23:59:59Z", "Wed Feb 28 23:59:59 UTC 2024"),
        (1_709_251_199, "2024-02-29T23:59:59Z", "Thu Feb 29 23:59:59 UTC 2024"),
        (1_709_251_200, "2024-03-01T00:00:00Z", "Fri Mar  1 00:00:00 UTC 2024"),
        (4_107_542_400, "2100-03-01T00:00:00Z", "Mon Mar  1 00:00:00 UTC 2100"),
        (1_798_761_599, "2026-12-31T23:59:59Z", "Thu Dec 31 23:59:59 UTC 2026"),
        (2_147_483_648, "2038-01-19T03:14:08Z", "Tue Jan 19 03:14:08 UTC 2038"),
        (253_402_300_799, "9999-12-31T23:59:59Z", "Fri Dec 31 23:59:59 UTC 9999"),
    ];
    for (secs, rfc, ctime) in cases {
        let time = SimTime(secs);
        assert_eq!(time.rfc3339(), rfc, "{secs}");
        assert_eq!(time.ctime(), ctime, "{secs}");
        assert_eq!(time.to_string(), rfc);
        assert_eq!(SimTime::parse_rfc3339(rfc), Ok(time), "{rfc}");
    }
    // 2100 is not a leap year: Feb 28 is followed by Mar 1.
    assert_eq!(SimTime(4_107_542_400 - 1).rfc3339(), "2100-02-28T23:59:59Z");
    assert_eq!(SimTime::START, SimTime(1_767_225_600));
    assert_eq!(SimTime(1_767_225_600 + 31 * 60 + 7).minute_of_hour(), 31);
}

#[test]
fn durations() {
    for (s, secs) in [("90s", 90), ("59m", 3540), ("2h", 7200), ("1h30m", 5400), ("3d", 259_200), ("0s", 0)] {
        assert_eq!(SimTime::parse_duration(s), Ok(secs), "{s}");
    }
    assert_eq!(SimTime::parse_duration("1d2h3m4s"), Ok(86_400 + 7200 + 180 + 4));
    for bad in ["", "90", "h", "1x", "1m1h", "1h1h", "1 h", "-1s", "99999999999999999999s", "300000000000000d"] {
        let e = SimTime::parse_duration(bad).unwrap_err();
        assert!(e.to_string().contains(&format!("'{bad}'")), "{bad}: {e}");
    }
}

#[test]
fn the_clock_moves_only_when_told() {
    let mut clock = Clock::default();
    assert_eq!(clock.now(), SimTime::START);
    assert_eq!(clock.advance(90), SimTime(SimTime::START.0 + 90));
    assert_eq!(clock.now(), SimTime(SimTime::START.0 + 90));
    clock.set(SimTime(5));
    assert_eq!(clock.now(), SimTime(5));
    assert_eq!(clock.advance(u64::MAX), SimTime(u64::MAX));
    assert_eq!(Clock::new(SimTime(7)).now(), SimTime(7));
}

// ---------------------------------------------------------------------------
// cron

#[test]
fn auto_backup_fires_at_minute_one_of_every_hour() {
    let s = cron(AUTO_BACKUP);
    assert!(s.matches(t("2026-01-01T00:01:00Z")));
    assert!(s.matches(t("2026-01-01T00:01:59Z")), "minute granularity");
    assert!(!s.matches(t("2026-01-01T00:00:59Z")));
    assert!(!s.matches(t("2026-01-01T00:02:00Z")));

    let mut at = SimTime::START;
    let mut fired = Vec::new();
    for _ in 0..3 {
        at = s.next_after(at).unwrap();
        fired.push(at.rfc3339());
    }
    assert_eq!(fired, ["2026-01-01T00:01:00Z", "2026-01-01T01:01:00Z", "2026-01-01T02:01:00Z"]);
    // Strictly after, also from inside the firing minute.
    assert_eq!(s.next_after(t("2026-01-01T00:01:00Z")), Some(t("2026-01-01T01:01:00Z")));
    assert_eq!(s.next_after(t("2026-01-01T00:01:30Z")), Some(t("2026-01-01T01:01:00Z")));
    assert_eq!(s.next_after(t("2026-12-31T23:30:00Z")), Some(t("2027-01-01T00:01:00Z")));
}

#[test]
fn due_between_three_hours_gives_three_backups() {
    let s = cron(AUTO_BACKUP);
    let from = SimTime::START;
    let to = SimTime(from.0 + 3 * 3600);
    let due = due_between(&s, from, to).unwrap();
    let due: Vec<String> = due.iter().map(|t| t.rfc3339()).collect();
    assert_eq!(due, ["2026-01-01T00:01:00Z", "2026-01-01T01:01:00Z", "2026-01-01T02:01:00Z"]);
    // (from, to]: a firing at `from` is excluded, one at `to` included.
    let from = t("2026-01-01T00:01:00Z");
    let to = t("2026-01-01T02:01:00Z");
    assert_eq!(due_between(&s, from, to).unwrap(), [t("2026-01-01T01:01:00Z"), to]);
    assert_eq!(due_between(&s, to, from).unwrap(), []);
    assert_eq!(s.firings_between(from, to).collect::<Vec<_>>(), [t("2026-01-01T01:01:00Z"), to]);
}

#[test]
fn due_between_is_bounded() {
    let every = cron("* * * * *");
    let e = due_between(&every, SimTime::START, SimTime(SimTime::START.0 + 365 * 86_400)).unwrap_err();
    assert_eq!(e.kind(), CronErrorKind::TooManyFirings);
    let ok = due_between(&every, SimTime::START, SimTime(SimTime::START.0 + 60 * MAX_DUE as u64)).unwrap();
    assert_eq!(ok.len(), MAX_DUE);
    // The lazy form has no limit.
    assert_eq!(every.firings_between(SimTime::START, SimTime(SimTime::START.0 + 60 * 200_000)).count(), 200_000);
}

#[test]
fn cron_fields_lists_ranges_steps() {
    let s = cron("*/15 0-5 * * *");
    let due = due_between(&s, t("2026-01-01T04:50:00Z"), t("2026-01-02T00:20:00Z")).unwrap();
    let due: Vec<String> = due.iter().map(|t| t.rfc3339()).collect();
    assert_eq!(
        due,
        [
            "2026-01-01T05:00:00Z",
            "2026-01-01T05:15:00Z",
            "2026-01-01T05:30:00Z",
            "2026-01-01T05:45:00Z",
            "2026-01-02T00:00:00Z",
            "2026-01-02T00:15:00Z",
        ]
    );
    let s = cron("1,31 12 * * *");
    assert_eq!(
        due_between(&s, SimTime::START, t("2026-01-02T12:01:00Z")).unwrap(),
        [t("2026-01-01T12:01:00Z"), t("2026-01-01T12:31:00Z"), t("2026-01-02T12:01:00Z")]
    );
    let s = cron("0 0-12/6 * * *");
    assert_eq!(
        due_between(&s, SimTime::START, t("2026-01-01T23:00:00Z")).unwrap(),
        [t("2026-01-01T06:00:00Z"), t("2026-01-01T12:00:00Z")]
    );
    // Tabs and runs of spaces, as in ESXi's crontab.
    assert_eq!(cron("1    *    *   *   *").to_string(), "1 * * * *");
    assert_eq!("1\t*\t*\t*\t*".parse::<CronSchedule>().unwrap(), cron(AUTO_BACKUP));
}

#[test]
fn cron_days_and_months() {
    // Day-of-week only: Mondays. 2026-01-05 is a Monday.
    assert_eq!(cron("0 9 * * 1").next_after(SimTime::START), Some(t("2026-01-05T09:00:00Z")));
    // Day-of-month only.
    assert_eq!(cron("0 0 15 * *").next_after(SimTime::START), Some(t("2026-01-15T00:00:00Z")));
    // Both restricted: either matches (the 10th, or a Monday).
    assert_eq!(cron("0 0 10 * 1").next_after(SimTime::START), Some(t("2026-01-05T00:00:00Z")));
    assert_eq!(cron("0 0 10 * 1").next_after(t("2026-01-05T00:00:00Z")), Some(t("2026-01-10T00:00:00Z")));
    // Month: March 1st, across a leap day.
    assert_eq!(cron("0 0 1 3 *").next_after(t("2028-01-01T00:00:00Z")), Some(t("2028-03-01T00:00:00Z")));
    // Leap day in a leap year only.
    assert_eq!(cron("0 0 29 2 *").next_after(SimTime::START), Some(t("2028-02-29T00:00:00Z")));
    // Never.
    assert_eq!(cron("0 0 30 2 *").next_after(SimTime::START), None);
    assert_eq!(due_between(&cron("0 0 30 2 *"), SimTime::START, SimTime(u64::MAX)).unwrap(), []);
}

#[test]
fn cron_errors_name_the_field() {
    let cases = [
        ("61 * * * *", CronField::Minute, "61"),
        ("* 24 * * *", CronField::Hour, "24"),
        ("* * 0 * *", CronField::DayOfMonth, "0"),
        ("* * * 13 *", CronField::Month, "13"),
        ("* * * * 8", CronField::DayOfWeek, "8"),
        ("x * * * *", CronField::Minute, "x"),
        ("*/0 * * * *", CronField::Minute, "*/0"),
        ("* 5-1 * * *", CronField::Hour, "5-1"),
        ("* * 1,,2 * *", CronField::DayOfMonth, "1,,2"),
        ("* * * */x *", CronField::Month, "*/x"),
        ("* * * * 5/2", CronField::DayOfWeek, "5/2"),
        ("* * * * mon", CronField::DayOfWeek, "mon"),
        ("99999999999 * * * *", CronField::Minute, "99999999999"),
    ];
    for (spec, field, text) in cases {
        let e = CronSchedule::parse(spec).unwrap_err();
        assert_eq!(e.kind(), CronErrorKind::Field, "{spec}");
        assert_eq!(e.field(), Some(field), "{spec}");
        let msg = e.to_string();
        assert!(msg.contains(&field.to_string()) && msg.contains(&format!("'{text}'")), "{msg}");
    }
    for spec in ["", "1 * * *", "1 * * * * /sbin/auto-backup.sh", "@hourly"] {
        let e = CronSchedule::parse(spec).unwrap_err();
        assert_eq!((e.kind(), e.field()), (CronErrorKind::FieldCount, None), "{spec}");
    }
}

// ---------------------------------------------------------------------------
// /etc

#[test]
fn defaults_are_the_fresh_install_all_sticky() {
    let tree = host();
    let paths: Vec<&str> = tree.paths().collect();
    assert_eq!(paths, [HOSTS, SHADOW, BACKUP_COUNTER, ESX_CONF]);
    assert!(paths.iter().all(|p| tree.get(p).unwrap().sticky));
    assert_eq!(tree.hostname().as_deref(), Some("esx01.example.com"));
    assert_eq!(tree.backup_counter(), Some(0));
    assert!(tree.text(BACKUP_COUNTER).unwrap().contains("# CREATED: Thu Jan  1 00:00:00 UTC 2026\n"));
    assert_eq!(
        tree.shadow_markers(),
        ["etc/.#hosts", "etc/.#shadow", "etc/vmware/.#.backup.counter", "etc/vmware/.#esx.conf"]
    );
    assert_eq!(tree, EtcTree::defaults("esx01.example.com", 42, SimTime::START), "deterministic");
    assert_ne!(tree, EtcTree::defaults("esx01.example.com", 43, SimTime::START));
}

#[test]
fn round_trip_through_state_tgz_gives_an_equal_tree() {
    let mut tree = host();
    tree.set_hostname("esx02").unwrap();
    tree.esx_conf_set("/adv/UserVars/Note", "say \"hi\"\\now").unwrap();
    tree.set_password("admin", "s3cret", 9).unwrap();
    tree.write("etc/ssh/keys-root/authorized_keys", "ssh-ed25519 AAAA root\n", 0o1600).unwrap();
    tree.bump_backup_counter(SimTime(SimTime::START.0 + 3660));
    let back = through_state_tgz(&tree);
    assert_eq!(back, tree, "{:?}", back.diff(&tree));
    assert!(back.diff(&tree).is_empty());
    assert_eq!(back.get("etc/ssh/keys-root/authorized_keys").unwrap().mode, 0o1600);
}

#[test]
fn only_sticky_files_are_saved() {
    let mut tree = host();
    tree.write("etc/motd", "hello\n", 0o644).unwrap();
    assert!(!tree.get("etc/motd").unwrap().sticky);
    let saved: Vec<String> = tree.saved_files().into_iter().map(|f| f.path).collect();
    assert_eq!(saved, [HOSTS, SHADOW, BACKUP_COUNTER, ESX_CONF]);
    assert!(!tree.shadow_markers().contains(&"etc/.#motd".to_string()));
    // An unsaved file makes no difference to auto-backup.sh, and is gone
    // after the reboot.
    let back = through_state_tgz(&tree);
    assert!(tree.diff(&back).is_empty());
    assert_eq!(back.get("etc/motd"), None);

    // Marking it makes it saved, with the sticky bit in its mode.
    tree.mark_sticky("/etc/motd").unwrap();
    assert_eq!(tree.get("etc/motd").unwrap().mode, 0o1644);
    assert_eq!(tree.diff(&back), ["etc/motd"]);
    assert!(tree.shadow_markers().contains(&"etc/.#motd".to_string()));
    assert_eq!(through_state_tgz(&tree).text("etc/motd").as_deref(), Some("hello\n"));
    assert_eq!(tree.mark_sticky("etc/nothing").unwrap_err().kind(), EtcErrorKind::NotFound);

    // A mode with the sticky bit marks; a sticky file stays sticky.
    tree.write("etc/rc.local.d/local.sh", "#!/bin/sh\n", 0o1755).unwrap();
    assert!(tree.get("etc/rc.local.d/local.sh").unwrap().sticky);
    tree.write(HOSTS, "127.0.0.1 localhost\n", 0o644).unwrap();
    assert_eq!(tree.get(HOSTS).unwrap().mode, 0o1644);
    assert!(tree.get(HOSTS).unwrap().sticky);
    // Removing drops it from the saved set.
    tree.remove("etc/motd").unwrap();
    assert!(tree.saved_files().iter().all(|f| f.path != "etc/motd"));
}

#[test]
fn write_rejects_bad_paths() {
    let mut tree = host();
    for bad in ["", "/", "etc/../x", "etc/vmware/.#esx.conf", "etc", "etc/vmware", "etc/hosts/x", "etc/shadow/x"] {
        assert_eq!(tree.write(bad, "x", 0o644).unwrap_err().kind(), EtcErrorKind::BadPath, "{bad:?}");
    }
    tree.write("etc/a", "file", 0o644).unwrap();
    assert_eq!(tree.write("etc/a/b", "x", 0o644).unwrap_err().kind(), EtcErrorKind::BadPath);
    tree.write("etc/d/f", "x", 0o644).unwrap();
    assert_eq!(tree.write("etc/d", "x", 0o644).unwrap_err().kind(), EtcErrorKind::BadPath);
    // Normalised paths name the same file.
    tree.write("/etc//./d/f", "y", 0o644).unwrap();
    assert_eq!(tree.text("etc/d/f").as_deref(), Some("y"));
    // A restored archive with such clashes keeps what tar could extract.
    let files = vec![
        EtcFile { path: "etc/x".into(), mode: 0o644, data: b"1".to_vec() },
        EtcFile { path: "etc/x/y".into(), mode: 0o644, data: b"2".to_vec() },
        EtcFile { path: "etc/vmware".into(), mode: 0o644, data: b"3".to_vec() },
        EtcFile { path: "etc/x".into(), mode: 0o600, data: b"4".to_vec() },
    ];
    let tree = EtcTree::from_files(files);
    assert_eq!(tree.paths().collect::<Vec<_>>(), ["etc/x"]);
    assert_eq!(tree.get("etc/x").unwrap().mode, 0o1600);
}

#[test]
fn set_hostname_changes_esx_conf_and_hosts() {
    let mut tree = host();
    let ip = tree.esx_conf_get("/adv/Misc/HostIPAddr").unwrap();
    assert!(tree.text(HOSTS).unwrap().contains(&format!("{ip}\tesx01.example.com esx01\n")));

    tree.set_hostname("esx02").unwrap();
    assert_eq!(tree.hostname().as_deref(), Some("esx02"));
    assert_eq!(tree.advanced_option_get("Misc.HostName").as_deref(), Some("esx02"));
    assert_eq!(tree.esx_conf_get("/system/hostname").as_deref(), Some("esx02.example.com"), "domain kept");
    assert_eq!(tree.esx_conf_get("/net/tcpip/instance[defaultTcpipStack]/hostname").as_deref(), Some("esx02"));
    let hosts = tree.text(HOSTS).unwrap();
    assert!(hosts.contains(&format!("{ip}\tesx02.example.com esx02\n")), "{hosts}");
    assert!(!hosts.contains("esx01"), "{hosts}");
    assert!(hosts.contains("127.0.0.1\tlocalhost.localdomain localhost\n"), "{hosts}");
    assert_eq!(tree.diff(&host()), [HOSTS, ESX_CONF]);

    tree.set_hostname("lab7.corp.example").unwrap();
    assert_eq!(tree.esx_conf_get("/net/tcpip/instance[defaultTcpipStack]/domain").as_deref(), Some("corp.example"));
    assert!(tree.text(HOSTS).unwrap().contains(&format!("{ip}\tlab7.corp.example lab7\n")));
    assert_eq!(tree.text(HOSTS).unwrap().lines().count(), host().text(HOSTS).unwrap().lines().count());

    for bad in ["", "bad name", "-x", "a..b", "x_y"] {
        assert_eq!(tree.set_hostname(bad).unwrap_err().kind(), EtcErrorKind::BadHostName, "{bad:?}");
    }
    assert_eq!(tree.hostname().as_deref(), Some("lab7.corp.example"), "unchanged by a rejected name");

    // No host line yet: one is added for the management address.
    let mut bare = host();
    bare.write(HOSTS, "127.0.0.1\tlocalhost\n", 0o644).unwrap();
    bare.set_hostname("esx03").unwrap();
    assert_eq!(bare.text(HOSTS).unwrap(), format!("127.0.0.1\tlocalhost\n{ip}\tesx03.example.com esx03\n"));
}

#[test]
fn esx_conf_set_and_get_round_trip_with_quotes() {
    let mut tree = host();
    let before = tree.text(ESX_CONF).unwrap();
    let values = ["plain", "", "with \"quotes\"", "back\\slash\\", "two\nlines", "tab\there", "x = \"y\""];
    for v in values {
        tree.esx_conf_set("/adv/UserVars/Test", v).unwrap();
        assert_eq!(tree.esx_conf_get("/adv/UserVars/Test").as_deref(), Some(v), "{v:?}");
        let back = through_state_tgz(&tree);
        assert_eq!(back.esx_conf_get("/adv/UserVars/Test").as_deref(), Some(v), "{v:?}");
    }
    let after = tree.text(ESX_CONF).unwrap();
    // Added once, at the end; everything else untouched and in order.
    assert_eq!(after.strip_prefix(before.as_str()).unwrap(), "/adv/UserVars/Test = \"x = \\\"y\\\"\"\n");

    // Changing an existing key keeps its place.
    let first = before.lines().next().unwrap().to_string();
    tree.esx_conf_set("/adv/Misc/HostName", "renamed").unwrap();
    let text = tree.text(ESX_CONF).unwrap();
    assert_eq!(text.lines().next(), Some("/adv/Misc/HostName = \"renamed\""));
    assert_eq!(text.lines().count(), after.lines().count());
    assert_ne!(first, text.lines().next().unwrap());

    // Duplicates: the last wins on reading; setting leaves one line.
    tree.write(ESX_CONF, "/a/b = \"1\"\n# comment\n/a/b = \"2\"\n", 0o644).unwrap();
    assert_eq!(tree.esx_conf_get("/a/b").as_deref(), Some("2"));
    tree.esx_conf_set("/a/b", "3").unwrap();
    assert_eq!(tree.text(ESX_CONF).unwrap(), "/a/b = \"3\"\n# comment\n");

    // Advanced options by either name.
    tree.advanced_option_set("Net.TcpipHeapMax", "1536").unwrap();
    assert_eq!(tree.esx_conf_get("/adv/Net/TcpipHeapMax").as_deref(), Some("1536"));
    assert_eq!(tree.advanced_option_get("/Net/TcpipHeapMax").as_deref(), Some("1536"));
    assert_eq!(tree.advanced_option_get("/adv/Net/TcpipHeapMax").as_deref(), Some("1536"));
    assert_eq!(tree.advanced_option_set("Net", "1").unwrap_err().kind(), EtcErrorKind::BadKey);
    assert_eq!(tree.esx_conf_set("no/slash", "1").unwrap_err().kind(), EtcErrorKind::BadKey);
    assert_eq!(tree.esx_conf_set("/a b", "1").unwrap_err().kind(), EtcErrorKind::BadKey);

    // A config setter creates esx.conf if needed, sticky.
    let mut empty = EtcTree::new();
    empty.esx_conf_set("/adv/Misc/HostName", "h").unwrap();
    let conf = empty.get(ESX_CONF).unwrap();
    assert!(conf.sticky);
    assert_eq!(conf.mode, 0o1644);
    // ...and marks an unsaved one.
    let mut tree = host();
    tree.remove(ESX_CONF);
    tree.write(ESX_CONF, "", 0o644).unwrap();
    assert!(!tree.get(ESX_CONF).unwrap().sticky);
    tree.esx_conf_set("/x/y", "z").unwrap();
    assert!(tree.get(ESX_CONF).unwrap().sticky);
}

#[test]
fn passwords() {
    let mut tree = host();
    assert!(tree.user_exists("root"));
    assert!(!tree.user_exists("admin"));
    assert!(!tree.password_matches("root", ""), "the fresh hash is of no chosen password");

    tree.set_password("root", "VMware1!", 1).unwrap();
    assert!(tree.password_matches("root", "VMware1!"));
    assert!(!tree.password_matches("root", "VMware1"));
    let shadow = tree.text(SHADOW).unwrap();
    let root = shadow.lines().next().unwrap();
    let fields: Vec<&str> = root.split(':').collect();
    assert_eq!(fields[0], "root");
    assert!(fields[1].starts_with("$6$") && fields[1].len() == 3 + 16 + 1 + 86, "{root}");
    assert_eq!(&fields[2..], ["17800", "0", "99999", "7", "", "", ""], "other fields kept");
    assert_eq!(shadow.lines().count(), host().text(SHADOW).unwrap().lines().count());

    // Deterministic; another salt gives another hash of the same password.
    let mut again = host();
    again.set_password("root", "VMware1!", 1).unwrap();
    assert_eq!(again, tree);
    again.set_password("root", "VMware1!", 2).unwrap();
    assert_ne!(again.text(SHADOW), tree.text(SHADOW));
    assert!(again.password_matches("root", "VMware1!"));

    // New users are added at the end.
    tree.set_password("admin", "pw", 3).unwrap();
    assert!(tree.user_exists("admin"));
    assert!(tree.password_matches("admin", "pw"));
    assert!(!tree.password_matches("root", "pw"));
    assert!(tree.text(SHADOW).unwrap().lines().last().unwrap().starts_with("admin:$6$"));
    assert!(!tree.password_matches("nobody", "pw"));
    // Survives the backup.
    assert!(through_state_tgz(&tree).password_matches("admin", "pw"));

    for bad in ["", "a:b", "a\nb", "-x", "root "] {
        assert_eq!(tree.set_password(bad, "pw", 0).unwrap_err().kind(), EtcErrorKind::BadUserName, "{bad:?}");
    }
    assert_eq!(tree.get(SHADOW).unwrap().mode, 0o1400);
}

#[test]
fn counter_bump_keeps_created() {
    let mut tree = host();
    let one = SimTime(SimTime::START.0 + 3660);
    let two = t("2026-02-03T04:05:06Z");
    assert_eq!(tree.bump_backup_counter(one), 1);
    assert_eq!(tree.bump_backup_counter(two), 2);
    assert_eq!(tree.backup_counter(), Some(2));
    assert_eq!(
        tree.text(BACKUP_COUNTER).unwrap(),
        "# This file is owned and updated by /sbin/backup.sh\n\
         # CREATED: Thu Jan  1 00:00:00 UTC 2026\n\
         # MODIFIED: Tue Feb  3 04:05:06 UTC 2026\n\
         2\n"
    );
    assert!(tree.get(BACKUP_COUNTER).unwrap().sticky);
    assert_eq!(tree.diff(&host()), [BACKUP_COUNTER]);

    // Missing or unreadable: starts again at 1, created now.
    let mut tree = host();
    tree.remove(BACKUP_COUNTER);
    assert_eq!(tree.backup_counter(), None);
    assert_eq!(tree.bump_backup_counter(two), 1);
    assert!(tree.text(BACKUP_COUNTER).unwrap().contains("# CREATED: Tue Feb  3 04:05:06 UTC 2026\n"));
    tree.write(BACKUP_COUNTER, "# CREATED: long ago\ngarbage\n", 0o644).unwrap();
    assert_eq!(tree.backup_counter(), None);
    assert_eq!(tree.bump_backup_counter(two), 1);
    assert!(tree.text(BACKUP_COUNTER).unwrap().contains("# CREATED: long ago\n"));
    assert!(tree.get(BACKUP_COUNTER).unwrap().sticky);
}

#[test]
fn diff_lists_changed_added_and_removed_saved_files() {
    let base = host();
    let mut tree = base.clone();
    assert!(tree.diff(&base).is_empty());
    tree.write("etc/new", "n", 0o1644).unwrap();
    tree.remove(SHADOW);
    tree.esx_conf_set("/a/b", "c").unwrap();
    assert_eq!(tree.diff(&base), ["etc/new", SHADOW, ESX_CONF]);
    assert_eq!(base.diff(&tree), ["etc/new", SHADOW, ESX_CONF]);
    // A mode change is a change too.
    let mut chmod = base.clone();
    chmod.write(HOSTS, base.get(HOSTS).unwrap().data.clone(), 0o1600).unwrap();
    assert_eq!(chmod.diff(&base), [HOSTS]);
}
