//! Configuration and image-database archives: `local.tgz`, `state.tgz`,
//! `imgdb.tgz`, and a bounded reader for `state.tgz` from untrusted disks.
//!
//! On a real host `/etc` is saved by backup.sh as `local.tgz` (a gzip'd tar
//! of the saved files under `etc/`), which is then tarred alone into
//! `state.tgz` (ESXI-BOOT.md 9.1–9.2, 9.5):
//!
//! ```text
//! state.tgz = gzip( tar[ local.tgz ] )
//! local.tgz = gzip( tar[ etc/, etc/hosts, etc/shadow, etc/vmware/, ... ] )
//! ```
//!
//! Writing: archives are POSIX ustar (GNU `L` long-name headers for names
//! that do not fit in 255 bytes), members sorted by name with their parent
//! directories, uid/gid 0 (root/root), one caller-given mtime, padded to
//! GNU tar's 10240-byte records, gzip'd with
//! [`gzip_bytes`]. Same input, same bytes.
//!
//! Reading ([`read_state_tgz`]) treats the bytes as hostile: it never
//! panics, never allocates past [`ArchiveLimits`] (sizes are checked from the
//! header before any data is read), and rejects absolute paths, `..`
//! components, links and devices with an [`ArchiveError`] naming the
//! member. It never follows or creates anything: it only returns data.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};

use flate2::read::MultiGzDecoder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::payload::gzip_bytes;

/// One file of the saved configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcFile {
    /// Path relative to `/`, without a leading slash (`etc/vmware/esx.conf`).
    pub path: String,
    /// Permission bits, including setuid/setgid/sticky (`0o7777` at most).
    pub mode: u32,
    /// File contents.
    pub data: Vec<u8>,
}

// ---------------------------------------------------------------------------
// The /etc of a fresh install

/// Mode of a saved configuration file: rw-r--r-- plus the sticky bit, which
/// is how VisorFS marks a file to be saved by backup.sh.
const MODE_SAVED: u32 = 0o1644;
/// Mode of `etc/shadow`: r-------- plus the sticky bit.
const MODE_SHADOW: u32 = 0o1400;
/// Mode of directories in the archives.
const MODE_DIR: u32 = 0o755;
/// Mode of plain files in state.tgz and imgdb.tgz.
const MODE_FILE: u32 = 0o644;

/// A fixed SHA-512-crypt-looking root password hash (not the hash of any
/// chosen password).
const ROOT_HASH: &str =
    "$6$vIs0rS1m$Q8nZ2cW1kTq7yVb3LxR0pF6mD9sJ4hG5aE2uN8oK1iC7tY3wB0zX6vM9qL4rS2dP5fH8jU1gA7eT3yW0nK6cZ";

/// Replaces characters that would break a one-line, double-quoted value.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() || c == '"' || c == '\\' { '_' } else { c }).collect()
}

/// The `/etc` tree of a fresh install, sorted by path: `etc/hosts`,
/// `etc/shadow` (root with a fixed hash), `etc/vmware/esx.conf` (host name,
/// a `/system/uuid` and addresses derived from `seed`, a few realistic keys)
/// and `etc/vmware/.backup.counter` (four lines, CREATED and MODIFIED both
/// `created`, then `counter`). Control characters, `"` and `\` in
/// `hostname` and `created` become `_`.
pub fn fresh_etc(hostname: &str, seed: u64, created: &str, counter: u64) -> Vec<EtcFile> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let hostname = one_line(hostname);
    let created = one_line(created);
    let (short, fqdn) = match hostname.split_once('.') {
        Some((short, _)) => (short.to_string(), hostname.clone()),
        None => (hostname.clone(), format!("{hostname}.localdomain")),
    };

    let mut raw = [0u8; 16];
    rng.fill_bytes(&mut raw);
    let r = rng.next_u64().to_le_bytes();
    let ip = format!("10.{}.{}.{}", r[0], r[1], 2 + r[2] % 250);
    let pnic_mac = format!("00:50:56:{:02x}:{:02x}:{:02x}", r[3] & 0x3f, r[4], r[5]);
    let vmk_mac = format!("00:50:56:{:02x}:{:02x}:{:02x}", 0x40 | (r[3] & 0x3f), r[4], r[5]);
    // /system/uuid: 8-4-4-4-12 hex, the last group a VMware MAC as ESXi does.
    raw[10..13].copy_from_slice(&[0x00, 0x50, 0x56]);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let uuid = format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]);

    let hosts = format!(
        "# Do not remove the following line, or various programs\n\
         # that require network functionality will fail.\n\
         127.0.0.1\tlocalhost.localdomain localhost\n\
         ::1\tlocalhost.localdomain localhost\n\
         {ip}\t{fqdn} {short}\n"
    );
    let shadow = format!(
        "root:{ROOT_HASH}:17800:0:99999:7:::\n\
         daemon:*:17800:0:99999:7:::\n\
         nfsnobody:!!:17800:0:99999:7:::\n\
         dcui:*:17800:0:99999:7:::\n\
         vpxuser:*:17800:0:99999:7:::\n"
    );
    let vmk0 = "/net/vmkernelnic/child[0000]";
    let vsw0 = "/net/vswitch/child[0000]";
    let esx_conf = format!(
        "/adv/Misc/HostName = \"{hostname}\"\n\
         /adv/Misc/HostIPAddr = \"{ip}\"\n\
         /adv/Net/ManagementAddr = \"{ip}\"\n\
         /adv/Net/ManagementIface = \"vmk0\"\n\
         /adv/UserVars/HostClientCEIPOptIn = \"2\"\n\
         /firewall/services/sshServer/enabled = \"false\"\n\
         /net/pnic/child[0000]/name = \"vmnic0\"\n\
         /net/pnic/child[0000]/mac = \"{pnic_mac}\"\n\
         /net/pnic/child[0000]/virtualMac = \"{pnic_mac}\"\n\
         {vsw0}/name = \"vSwitch0\"\n\
         {vsw0}/mtu = \"1500\"\n\
         {vsw0}/uplinks/child[0000]/pnic = \"vmnic0\"\n\
         {vsw0}/portgroup/child[0000]/name = \"Management Network\"\n\
         {vsw0}/portgroup/child[0001]/name = \"VM Network\"\n\
         {vmk0}/name = \"vmk0\"\n\
         {vmk0}/mac = \"{vmk_mac}\"\n\
         {vmk0}/portgroup = \"Management Network\"\n\
         {vmk0}/enable = \"true\"\n\
         {vmk0}/ipv4address = \"{ip}\"\n\
         {vmk0}/ipv4netmask = \"255.255.255.0\"\n\
         {vmk0}/dhcp = \"true\"\n\
         /net/tcpip/instance[defaultTcpipStack]/hostname = \"{short}\"\n\
         /net/tcpip/instance[defaultTcpipStack]/domain = \"{domain}\"\n\
         /system/uuid = \"{uuid}\"\n\
         /system/hostname = \"{fqdn}\"\n",
        domain = fqdn.split_once('.').map_or("localdomain", |(_, d)| d),
    );
    let counter_file = format!(
        "# This file is owned and updated by /sbin/backup.sh\n\
         # CREATED: {created}\n\
         # MODIFIED: {created}\n\
         {counter}\n"
    );
    vec![
        EtcFile { path: "etc/hosts".into(), mode: MODE_SAVED, data: hosts.into_bytes() },
        EtcFile { path: "etc/shadow".into(), mode: MODE_SHADOW, data: shadow.into_bytes() },
        EtcFile { path: "etc/vmware/.backup.counter".into(), mode: MODE_SAVED, data: counter_file.into_bytes() },
        EtcFile { path: "etc/vmware/esx.conf".into(), mode: MODE_SAVED, data: esx_conf.into_bytes() },
    ]
}

// ---------------------------------------------------------------------------
// Writing tar

/// Tar block size.
const BLOCK: usize = 512;
/// GNU tar's record size (20 blocks); archives are padded to it.
const RECORD: usize = 20 * BLOCK;

/// Header type flags.
const TYPE_FILE: u8 = b'0';
const TYPE_DIR: u8 = b'5';
const TYPE_GNU_LONGNAME: u8 = b'L';

/// Writes `v` into a numeric header field: zero-padded octal and a NUL, or
/// GNU base-256 when it does not fit.
fn put_numeric(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    if digits >= 22 || v < 1u64 << (3 * digits) {
        let s = format!("{v:0digits$o}");
        field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
        field[digits] = 0;
    } else {
        field.fill(0);
        field[0] = 0x80;
        let be = v.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&be);
    }
}

/// An archive under construction.
struct TarWriter {
    out: Vec<u8>,
    mtime: u32,
}

impl TarWriter {
    fn new(mtime: u32) -> TarWriter {
        TarWriter { out: Vec::new(), mtime }
    }

    /// Appends one header block. `gnu` selects the GNU magic (needed next to
    /// `L` headers) instead of POSIX ustar.
    fn header(&mut self, name: &[u8], prefix: &[u8], kind: u8, mode: u32, size: u64, gnu: bool) {
        let mut h = [0u8; BLOCK];
        let n = name.len().min(100);
        h[..n].copy_from_slice(&name[..n]);
        put_numeric(&mut h[100..108], u64::from(mode & 0o7777));
        put_numeric(&mut h[108..116], 0);
        put_numeric(&mut h[116..124], 0);
        put_numeric(&mut h[124..136], size);
        put_numeric(&mut h[136..148], u64::from(self.mtime));
        h[156] = kind;
        if gnu {
            h[257..265].copy_from_slice(b"ustar  \0");
        } else {
            h[257..265].copy_from_slice(b"ustar\x0000");
        }
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        if !gnu {
            put_numeric(&mut h[329..337], 0);
            put_numeric(&mut h[337..345], 0);
            let p = prefix.len().min(155);
            h[345..345 + p].copy_from_slice(&prefix[..p]);
        }
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        let s = format!("{sum:06o}");
        h[148..154].copy_from_slice(&s.as_bytes()[s.len() - 6..]);
        h[154] = 0;
        self.out.extend_from_slice(&h);
    }

    /// Appends `data` padded to a whole block.
    fn data(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.out.resize(self.out.len() + pad, 0);
    }

    /// Appends an entry named `path` (directories end with `/`).
    fn entry(&mut self, path: &str, kind: u8, mode: u32, data: &[u8]) {
        let p = path.as_bytes();
        let size = data.len() as u64;
        if p.len() <= 100 {
            self.header(p, &[], kind, mode, size, false);
        } else if let Some((prefix, name)) = split_ustar(p) {
            self.header(name, prefix, kind, mode, size, false);
        } else {
            let mut long = p.to_vec();
            long.push(0);
            self.header(b"././@LongLink", &[], TYPE_GNU_LONGNAME, 0, long.len() as u64, true);
            self.data(&long);
            self.header(p, &[], kind, mode, size, true);
        }
        self.data(data);
    }

    /// The archive: two zero blocks, padded to a whole record.
    fn finish(mut self) -> Vec<u8> {
        self.out.resize(self.out.len() + 2 * BLOCK, 0);
        let pad = (RECORD - self.out.len() % RECORD) % RECORD;
        self.out.resize(self.out.len() + pad, 0);
        self.out
    }
}

/// Splits a path at a `/` into a ustar prefix (≤ 155 bytes) and name
/// (1–100 bytes), if possible.
fn split_ustar(p: &[u8]) -> Option<(&[u8], &[u8])> {
    let min_cut = p.len().saturating_sub(101);
    (min_cut..p.len().min(156))
        .find(|&i| p[i] == b'/' && p.len() - i - 1 <= 100 && i + 1 < p.len())
        .map(|i| (&p[..i], &p[i + 1..]))
}

/// A path without empty, `.` and `..` components and leading slashes;
/// `None` if nothing is left.
fn normalize(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != "." && *c != "..").collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// A tar of `files` with an entry for every parent directory, sorted by
/// name. Paths are normalised ([`normalize`]); files whose path is empty
/// after that are left out; of files with the same path the last wins.
fn tar_of(files: &[EtcFile], mtime: u32) -> Vec<u8> {
    // Keys are tar names: directories end with '/', which sorts a directory
    // before everything under it.
    let mut entries: BTreeMap<String, Option<&EtcFile>> = BTreeMap::new();
    for f in files {
        let Some(path) = normalize(&f.path) else { continue };
        for (i, _) in path.match_indices('/') {
            entries.insert(format!("{}/", &path[..i]), None);
        }
        entries.insert(path, Some(f));
    }
    let mut w = TarWriter::new(mtime);
    for (name, file) in &entries {
        match file {
            Some(f) => w.entry(name, TYPE_FILE, f.mode, &f.data),
            None => w.entry(name, TYPE_DIR, MODE_DIR, &[]),
        }
    }
    w.finish()
}

/// `local.tgz`: a gzip'd ustar archive of `files` plus their parent
/// directories, uid/gid 0, mtime `mtime`, sorted by name. Deterministic.
/// Paths lose leading slashes and `.`/`..` components; of files with the
/// same path the last one wins.
pub fn local_tgz(files: &[EtcFile], mtime: u32) -> Vec<u8> {
    gzip_bytes(None, &tar_of(files, mtime), mtime)
}

/// `state.tgz`: a gzip'd tar holding exactly one member, `local.tgz`.
pub fn state_tgz(local_tgz: &[u8], mtime: u32) -> Vec<u8> {
    let mut w = TarWriter::new(mtime);
    w.entry("local.tgz", TYPE_FILE, MODE_FILE, local_tgz);
    gzip_bytes(None, &w.finish(), mtime)
}

/// Escapes text for XML character data and attributes.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' => out.push('_'),
            c => out.push(c),
        }
    }
    out
}

/// Keeps `[A-Za-z0-9._-]` for use in a file name, `_` for the rest.
fn file_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect()
}

/// The VIBs named in the image database: (name, summary, payload).
const VIBS: [(&str, &str, &str); 6] = [
    ("esx-base", "ESXi base system", "s"),
    ("esx-ui", "VMware Host Client", "esx_ui"),
    ("vsan", "ESXi VSAN", "vsan"),
    ("vmkusb", "USB Native Driver for VMware", "vmkusb"),
    ("net-e1000e", "Network driver for Intel PRO/1000 PCIe NICs", "net_e100"),
    ("tools-light", "VMware Tools light", "tools"),
];

/// `imgdb.tgz`: a small gzip'd tar resembling ESXi's image database: one
/// image profile `var/db/esximg/profiles/ESXi-<version>-<build>-standard`
/// and a few `var/db/esximg/vibs/<vib>-<number>.xml`, all naming the version
/// and build. Deterministic.
pub fn imgdb_tgz(version: &str, build: &str, mtime: u32) -> Vec<u8> {
    let vib_version = xml(&format!("{version}-0.0.{build}"));
    let profile = format!("ESXi-{version}-{build}-standard");
    let mut files = Vec::new();
    let mut vib_list = String::new();
    for (name, summary, payload) in VIBS {
        let id = format!("VMware_bootbank_{name}_{vib_version}");
        let number = crc32fast::hash(format!("{name}\0{version}\0{build}").as_bytes());
        let doc = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
             <vib version=\"5.0\">\n  \
               <type>bootbank</type>\n  \
               <name>{name}</name>\n  \
               <version>{vib_version}</version>\n  \
               <vendor>VMware</vendor>\n  \
               <summary>{summary}</summary>\n  \
               <description>{summary} for VMware ESXi {v} build-{b}</description>\n  \
               <acceptance-level>certified</acceptance-level>\n  \
               <system-requires><maintenance-mode>true</maintenance-mode></system-requires>\n  \
               <payloads>\n    <payload name=\"{payload}\" type=\"vgz\"/>\n  </payloads>\n\
             </vib>\n",
            v = xml(version),
            b = xml(build),
        );
        files.push(EtcFile {
            path: format!("var/db/esximg/vibs/{name}-{number}.xml"),
            mode: MODE_FILE,
            data: doc.into_bytes(),
        });
        vib_list.push_str(&format!("    <vib><vibid>{id}</vibid></vib>\n"));
    }
    let profile_doc = format!(
        "<imageprofile>\n  \
           <name>{name}</name>\n  \
           <creator>VMware, Inc.</creator>\n  \
           <description>VMware ESXi {v} build-{b} standard image profile</description>\n  \
           <acceptancelevel>partner</acceptancelevel>\n  \
           <viblist>\n{vib_list}  </viblist>\n\
         </imageprofile>\n",
        name = xml(&profile),
        v = xml(version),
        b = xml(build),
    );
    files.push(EtcFile {
        path: format!("var/db/esximg/profiles/{}", file_safe(&profile)),
        mode: MODE_FILE,
        data: profile_doc.into_bytes(),
    });
    gzip_bytes(None, &tar_of(&files, mtime), mtime)
}

// ---------------------------------------------------------------------------
// Reading untrusted archives

/// Bounds for reading an untrusted archive. Each applies to each of the two
/// archive levels (state.tgz, then local.tgz) separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Most members (files, directories, anything) in one archive.
    pub max_members: usize,
    /// Largest regular member, in bytes.
    pub max_member_bytes: u64,
    /// Most bytes of member data (including extended headers) in one
    /// archive.
    pub max_total_bytes: u64,
}

impl Default for ArchiveLimits {
    /// 4096 members, 64 MiB per member, 128 MiB in all.
    fn default() -> ArchiveLimits {
        ArchiveLimits { max_members: 4096, max_member_bytes: 64 << 20, max_total_bytes: 128 << 20 }
    }
}

/// A member type that is never extracted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecialMember {
    /// A symbolic link to the given target.
    Symlink(String),
    /// A hard link to the given member.
    HardLink(String),
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
}

impl fmt::Display for SpecialMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecialMember::Symlink(t) => write!(f, "symbolic link to '{t}'"),
            SpecialMember::HardLink(t) => write!(f, "hard link to '{t}'"),
            SpecialMember::CharDevice => f.write_str("character device"),
            SpecialMember::BlockDevice => f.write_str("block device"),
            SpecialMember::Fifo => f.write_str("FIFO"),
        }
    }
}

/// What went wrong reading an archive, for callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveErrorKind {
    /// Not gzip, or the gzip stream is corrupt (bad deflate data, CRC).
    Gzip,
    /// The tar structure is corrupt (checksum, number field, truncation).
    Corrupt,
    /// A member name is not UTF-8 or is empty.
    BadName,
    /// A member has an absolute path.
    AbsolutePath,
    /// A member path has a `..` component.
    ParentDir,
    /// A member is a link or a device.
    SpecialFile,
    /// A member has a type this reader does not handle (sparse, volume...).
    Unsupported,
    /// More members than [`ArchiveLimits::max_members`].
    TooManyMembers,
    /// A member larger than [`ArchiveLimits::max_member_bytes`].
    MemberTooLarge,
    /// More data than [`ArchiveLimits::max_total_bytes`].
    TotalTooLarge,
    /// state.tgz has no `local.tgz`.
    MissingLocalTgz,
}

/// An error reading `state.tgz` or the `local.tgz` inside it; names the
/// archive and, where there is one, the member.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// See [`ArchiveErrorKind::Gzip`].
    #[error("Corrupt gzip data in {archive}")]
    Gzip {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// What the decoder reported.
        #[source]
        source: io::Error,
    },
    /// See [`ArchiveErrorKind::Corrupt`].
    #[error("Corrupt tar data in {archive} at offset {offset}: {detail}")]
    Corrupt {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// Offset in the uncompressed tar stream.
        offset: u64,
        /// What is wrong, naming the member when known.
        detail: String,
    },
    /// See [`ArchiveErrorKind::BadName`].
    #[error("Member '{member}' of {archive} has an unusable name")]
    BadName {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The name, lossily decoded.
        member: String,
    },
    /// See [`ArchiveErrorKind::AbsolutePath`].
    #[error("Member '{member}' of {archive} has an absolute path")]
    AbsolutePath {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The member's name.
        member: String,
    },
    /// See [`ArchiveErrorKind::ParentDir`].
    #[error("Member '{member}' of {archive} has a '..' component")]
    ParentDir {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The member's name.
        member: String,
    },
    /// See [`ArchiveErrorKind::SpecialFile`].
    #[error("Member '{member}' of {archive} is a {what}, which is not extracted")]
    SpecialFile {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The member's name.
        member: String,
        /// What kind of member it is.
        what: SpecialMember,
    },
    /// See [`ArchiveErrorKind::Unsupported`].
    #[error("Member '{member}' of {archive} has unsupported type {typeflag:?}")]
    Unsupported {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The member's name.
        member: String,
        /// The tar type flag.
        typeflag: char,
    },
    /// See [`ArchiveErrorKind::TooManyMembers`].
    #[error("{archive} has more than {limit} members (at '{member}')")]
    TooManyMembers {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The first member over the limit.
        member: String,
        /// The limit.
        limit: usize,
    },
    /// See [`ArchiveErrorKind::MemberTooLarge`].
    #[error("Member '{member}' of {archive} is {size} bytes, over the limit of {limit}")]
    MemberTooLarge {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The member's name.
        member: String,
        /// The size its header claims.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// See [`ArchiveErrorKind::TotalTooLarge`].
    #[error("Member '{member}' of {archive} brings its data to {total} bytes, over the limit of {limit}")]
    TotalTooLarge {
        /// `state.tgz` or `local.tgz`.
        archive: &'static str,
        /// The member that crosses the limit.
        member: String,
        /// The total including that member.
        total: u64,
        /// The limit.
        limit: u64,
    },
    /// See [`ArchiveErrorKind::MissingLocalTgz`].
    #[error("state.tgz has no member local.tgz")]
    MissingLocalTgz,
}

impl ArchiveError {
    /// What went wrong.
    pub fn kind(&self) -> ArchiveErrorKind {
        match self {
            ArchiveError::Gzip { .. } => ArchiveErrorKind::Gzip,
            ArchiveError::Corrupt { .. } => ArchiveErrorKind::Corrupt,
            ArchiveError::BadName { .. } => ArchiveErrorKind::BadName,
            ArchiveError::AbsolutePath { .. } => ArchiveErrorKind::AbsolutePath,
            ArchiveError::ParentDir { .. } => ArchiveErrorKind::ParentDir,
            ArchiveError::SpecialFile { .. } => ArchiveErrorKind::SpecialFile,
            ArchiveError::Unsupported { .. } => ArchiveErrorKind::Unsupported,
            ArchiveError::TooManyMembers { .. } => ArchiveErrorKind::TooManyMembers,
            ArchiveError::MemberTooLarge { .. } => ArchiveErrorKind::MemberTooLarge,
            ArchiveError::TotalTooLarge { .. } => ArchiveErrorKind::TotalTooLarge,
            ArchiveError::MissingLocalTgz => ArchiveErrorKind::MissingLocalTgz,
        }
    }

    /// The archive the error is in (`state.tgz` or `local.tgz`).
    pub fn archive(&self) -> &'static str {
        match self {
            ArchiveError::Gzip { archive, .. }
            | ArchiveError::Corrupt { archive, .. }
            | ArchiveError::BadName { archive, .. }
            | ArchiveError::AbsolutePath { archive, .. }
            | ArchiveError::ParentDir { archive, .. }
            | ArchiveError::SpecialFile { archive, .. }
            | ArchiveError::Unsupported { archive, .. }
            | ArchiveError::TooManyMembers { archive, .. }
            | ArchiveError::MemberTooLarge { archive, .. }
            | ArchiveError::TotalTooLarge { archive, .. } => archive,
            ArchiveError::MissingLocalTgz => "state.tgz",
        }
    }

    /// The member the error is about, if any.
    pub fn member(&self) -> Option<&str> {
        match self {
            ArchiveError::BadName { member, .. }
            | ArchiveError::AbsolutePath { member, .. }
            | ArchiveError::ParentDir { member, .. }
            | ArchiveError::SpecialFile { member, .. }
            | ArchiveError::Unsupported { member, .. }
            | ArchiveError::TooManyMembers { member, .. }
            | ArchiveError::MemberTooLarge { member, .. }
            | ArchiveError::TotalTooLarge { member, .. } => Some(member),
            ArchiveError::Gzip { .. } | ArchiveError::Corrupt { .. } | ArchiveError::MissingLocalTgz => None,
        }
    }
}

/// Largest GNU long name or pax extended header accepted.
const MAX_META_BYTES: u64 = 64 * 1024;
/// Most extended headers (`L`, `K`, `x`, `g`) in front of one member.
const MAX_META_HEADERS: usize = 8;

/// A member as the reader returns it.
enum Member {
    /// A regular file (data read only when asked for).
    File { path: String, mode: u32, data: Option<Vec<u8>> },
    /// A directory (nothing to return).
    Dir,
}

/// The text of a NUL-terminated header field.
fn field_str(field: &[u8]) -> &[u8] {
    field.split(|&b| b == 0).next().unwrap_or(&[])
}

/// A numeric header field: octal (spaces and NULs around it allowed) or
/// GNU base-256. `None` if malformed or over 2^64.
fn parse_numeric(field: &[u8]) -> Option<u64> {
    let first = *field.first()?;
    if first & 0x80 != 0 {
        if first != 0x80 {
            return None; // negative or huge
        }
        return field[1..].iter().try_fold(0u64, |acc, &b| acc.checked_mul(256)?.checked_add(u64::from(b)));
    }
    let text = field_str(field);
    let text = text.trim_ascii();
    text.iter().try_fold(0u64, |acc, &b| match b {
        b'0'..=b'7' => acc.checked_mul(8)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// Sequential reader of one tar stream with limits.
struct TarReader<R> {
    r: R,
    archive: &'static str,
    limits: ArchiveLimits,
    offset: u64,
    members: usize,
    total: u64,
}

impl<R: Read> TarReader<R> {
    fn new(r: R, archive: &'static str, limits: ArchiveLimits) -> TarReader<R> {
        TarReader { r, archive, limits, offset: 0, members: 0, total: 0 }
    }

    fn corrupt(&self, detail: impl Into<String>) -> ArchiveError {
        ArchiveError::Corrupt { archive: self.archive, offset: self.offset, detail: detail.into() }
    }

    /// Reads until `buf` is full or the stream ends; returns the count.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let mut n = 0;
        while n < buf.len() {
            match self.r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(ArchiveError::Gzip { archive: self.archive, source }),
            }
        }
        self.offset += n as u64;
        Ok(n)
    }

    /// Counts `size` more bytes of data against the total limit.
    fn account(&mut self, member: &str, size: u64) -> Result<(), ArchiveError> {
        let total = self.total.saturating_add(size);
        if total > self.limits.max_total_bytes {
            return Err(ArchiveError::TotalTooLarge {
                archive: self.archive,
                member: member.to_string(),
                total,
                limit: self.limits.max_total_bytes,
            });
        }
        self.total = total;
        Ok(())
    }

    /// Reads a member's `size` bytes of data and its padding. The caller
    /// has checked `size` against the limits.
    fn read_data(&mut self, member: &str, size: u64) -> Result<Vec<u8>, ArchiveError> {
        let mut data = Vec::with_capacity(usize::try_from(size.min(1 << 20)).unwrap_or(0));
        let mut left = size;
        let mut buf = [0u8; 8192];
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let got = self.fill(&mut buf[..want])?;
            data.extend_from_slice(&buf[..got]);
            if got < want {
                return Err(self.corrupt(format!("member '{member}' is truncated")));
            }
            left -= got as u64;
        }
        self.skip_padding(member, size)?;
        Ok(data)
    }

    /// Skips a member's `size` bytes of data and its padding.
    fn skip_data(&mut self, member: &str, size: u64) -> Result<(), ArchiveError> {
        let mut left = size;
        let mut buf = [0u8; 8192];
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let got = self.fill(&mut buf[..want])?;
            if got < want {
                return Err(self.corrupt(format!("member '{member}' is truncated")));
            }
            left -= got as u64;
        }
        self.skip_padding(member, size)
    }

    fn skip_padding(&mut self, member: &str, size: u64) -> Result<(), ArchiveError> {
        let pad = usize::try_from((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64).unwrap_or(0);
        let mut buf = [0u8; BLOCK];
        if self.fill(&mut buf[..pad])? < pad {
            return Err(self.corrupt(format!("member '{member}' is truncated")));
        }
        Ok(())
    }

    /// Reads an extended header's data (bounded).
    fn read_meta(&mut self, size: u64) -> Result<Vec<u8>, ArchiveError> {
        if size > MAX_META_BYTES {
            return Err(self.corrupt(format!("extended header of {size} bytes")));
        }
        self.account("extended header", size)?;
        self.read_data("extended header", size)
    }

    /// After the end-of-archive blocks: reads what is left of the stream
    /// (bounded) so the gzip CRC and length get checked.
    fn drain(&mut self) -> Result<(), ArchiveError> {
        let mut buf = [0u8; 8192];
        let mut left = self.limits.max_total_bytes.max(1 << 20);
        loop {
            let got = self.fill(&mut buf)?;
            if got == 0 {
                return Ok(());
            }
            left = left.saturating_sub(got as u64);
            if left == 0 {
                return Err(self.corrupt("too much data after the end of the archive"));
            }
        }
    }

    /// The next member, or `None` at the end of the archive. Regular files'
    /// data is read when `want(path)` says so, skipped otherwise.
    fn next(&mut self, want: &mut dyn FnMut(&str) -> bool) -> Result<Option<Member>, ArchiveError> {
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        let mut metas = 0;
        loop {
            let mut h = [0u8; BLOCK];
            let got = self.fill(&mut h)?;
            if got == 0 && metas == 0 {
                return Ok(None); // end of stream without end blocks, as tar allows
            }
            if got < BLOCK {
                return Err(self.corrupt("truncated header"));
            }
            if h.iter().all(|&b| b == 0) {
                if metas > 0 {
                    return Err(self.corrupt("extended header without a member"));
                }
                self.drain()?;
                return Ok(None);
            }
            let header_at = self.offset - BLOCK as u64;
            let stored = parse_numeric(&h[148..156]);
            let mut blank = h;
            blank[148..156].fill(b' ');
            let unsigned: u64 = blank.iter().map(|&b| u64::from(b)).sum();
            let signed: i64 = blank.iter().map(|&b| i64::from(i8::from_ne_bytes([b]))).sum();
            let ok = stored.is_some_and(|s| s == unsigned || i64::try_from(s).is_ok_and(|s| s == signed));
            if !ok {
                return Err(ArchiveError::Corrupt {
                    archive: self.archive,
                    offset: header_at,
                    detail: "bad header checksum".into(),
                });
            }
            let typeflag = h[156];
            let header_size = parse_numeric(&h[124..136]);
            let Some(header_size) = header_size else {
                return Err(self.corrupt("bad size field"));
            };
            let size = pax_size.unwrap_or(header_size);

            if matches!(typeflag, b'L' | b'K' | b'x' | b'g') {
                metas += 1;
                if metas > MAX_META_HEADERS {
                    return Err(self.corrupt("too many extended headers"));
                }
                let mut meta = self.read_meta(header_size)?;
                match typeflag {
                    b'L' => {
                        meta.truncate(field_str(&meta).len());
                        long_name = Some(meta);
                    }
                    b'K' => {
                        meta.truncate(field_str(&meta).len());
                        long_link = Some(meta);
                    }
                    b'x' => {
                        for (key, value) in pax_records(&meta) {
                            match key {
                                b"path" => long_name = Some(value.to_vec()),
                                b"linkpath" => long_link = Some(value.to_vec()),
                                b"size" => {
                                    let v = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                                    let Some(v) = v else {
                                        return Err(self.corrupt("bad pax size"));
                                    };
                                    pax_size = Some(v);
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {} // 'g': global pax header, ignored
                }
                continue;
            }

            // A member.
            let ustar = &h[257..263] == b"ustar\0";
            let name_bytes = match long_name.take() {
                Some(n) => n,
                None => {
                    let name = field_str(&h[..100]);
                    let prefix = if ustar { field_str(&h[345..500]) } else { &[] };
                    if prefix.is_empty() {
                        name.to_vec()
                    } else {
                        [prefix, b"/", name].concat()
                    }
                }
            };
            let lossy = String::from_utf8_lossy(&name_bytes).into_owned();

            self.members += 1;
            if self.members > self.limits.max_members {
                return Err(ArchiveError::TooManyMembers {
                    archive: self.archive,
                    member: lossy,
                    limit: self.limits.max_members,
                });
            }
            let Ok(name) = String::from_utf8(name_bytes) else {
                return Err(ArchiveError::BadName { archive: self.archive, member: lossy });
            };
            if name.starts_with('/') {
                return Err(ArchiveError::AbsolutePath { archive: self.archive, member: name });
            }
            if name.split('/').any(|c| c == "..") {
                return Err(ArchiveError::ParentDir { archive: self.archive, member: name });
            }
            let path = normalize(&name);

            let link = || {
                let raw = long_link.clone().unwrap_or_else(|| field_str(&h[157..257]).to_vec());
                String::from_utf8_lossy(&raw).into_owned()
            };
            let special = match typeflag {
                b'1' => Some(SpecialMember::HardLink(link())),
                b'2' => Some(SpecialMember::Symlink(link())),
                b'3' => Some(SpecialMember::CharDevice),
                b'4' => Some(SpecialMember::BlockDevice),
                b'6' => Some(SpecialMember::Fifo),
                _ => None,
            };
            if let Some(what) = special {
                return Err(ArchiveError::SpecialFile { archive: self.archive, member: name, what });
            }
            match typeflag {
                b'5' => {
                    self.account(&name, size)?;
                    self.skip_data(&name, size)?;
                    return Ok(Some(Member::Dir));
                }
                b'0' | 0 | b'7' => {
                    let Some(path) = path else {
                        return Err(ArchiveError::BadName { archive: self.archive, member: name });
                    };
                    if size > self.limits.max_member_bytes {
                        return Err(ArchiveError::MemberTooLarge {
                            archive: self.archive,
                            member: name,
                            size,
                            limit: self.limits.max_member_bytes,
                        });
                    }
                    self.account(&name, size)?;
                    let mode = parse_numeric(&h[100..108]).unwrap_or(0o644) & 0o7777;
                    let mode = u32::try_from(mode).unwrap_or(0o644);
                    let data = if want(&path) {
                        Some(self.read_data(&name, size)?)
                    } else {
                        self.skip_data(&name, size)?;
                        None
                    };
                    return Ok(Some(Member::File { path, mode, data }));
                }
                other => {
                    return Err(ArchiveError::Unsupported {
                        archive: self.archive,
                        member: name,
                        typeflag: char::from(other),
                    })
                }
            }
        }
    }
}

/// The `key=value` records of a pax extended header; malformed records end
/// the list.
fn pax_records(mut data: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let Some(sp) = data.iter().position(|&b| b == b' ') else { break };
        let Some(len) = std::str::from_utf8(&data[..sp]).ok().and_then(|s| s.parse::<usize>().ok()) else {
            break;
        };
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            break;
        }
        let record = &data[sp + 1..len - 1];
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            out.push((&record[..eq], &record[eq + 1..]));
        }
        data = &data[len..];
    }
    out
}

/// The regular files of the tgz `bytes` (named `archive` in errors), in
/// archive order, the last of duplicates winning (as extraction does).
/// Data is kept only for files `want` selects.
fn read_tgz(
    bytes: &[u8],
    archive: &'static str,
    limits: &ArchiveLimits,
    want: &mut dyn FnMut(&str) -> bool,
) -> Result<Vec<EtcFile>, ArchiveError> {
    if bytes.len() < 18 || bytes[..2] != [0x1f, 0x8b] {
        return Err(ArchiveError::Gzip {
            archive,
            source: io::Error::new(io::ErrorKind::InvalidData, "not a gzip file"),
        });
    }
    let mut reader = TarReader::new(MultiGzDecoder::new(bytes), archive, *limits);
    let mut files: Vec<EtcFile> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(member) = reader.next(want)? {
        if let Member::File { path, mode, data } = member {
            let Some(data) = data else { continue };
            let file = EtcFile { path: path.clone(), mode, data };
            match index.get(&path) {
                Some(&i) => files[i] = file,
                None => {
                    index.insert(path, files.len());
                    files.push(file);
                }
            }
        }
    }
    Ok(files)
}

/// The files saved in a `state.tgz` (state.tgz → local.tgz → files), read
/// as untrusted input within `limits` (applied to each archive level).
///
/// Returns the regular files of `local.tgz` in archive order (directories
/// are not returned; for duplicate paths the last wins). Paths lose a
/// leading `./`. Other regular members of state.tgz are ignored.
///
/// # Errors
/// Corrupt gzip or tar data, a missing `local.tgz`, and any member with an
/// absolute path, a `..` component, a link or device type, or beyond the
/// limits, in either archive; the error names the archive and member.
pub fn read_state_tgz(bytes: &[u8], limits: &ArchiveLimits) -> Result<Vec<EtcFile>, ArchiveError> {
    let outer = read_tgz(bytes, "state.tgz", limits, &mut |p| p == "local.tgz")?;
    let local = outer.into_iter().find(|f| f.path == "local.tgz").ok_or(ArchiveError::MissingLocalTgz)?;
    read_tgz(&local.data, "local.tgz", limits, &mut |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    const LIMITS: ArchiveLimits =
        ArchiveLimits { max_members: 4096, max_member_bytes: 64 << 20, max_total_bytes: 128 << 20 };

    fn etc() -> Vec<EtcFile> {
        fresh_etc("esx01.example.com", 7, "Thu Jan  1 00:00:00 UTC 2026", 3)
    }

    /// Runs `cmd`, or returns `None` (with a note) when it is not installed.
    fn run(cmd: &mut Command) -> Option<std::process::Output> {
        match cmd.stdin(Stdio::null()).output() {
            Ok(out) => Some(out),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // scripts/test.sh (and CI) install the tools and forbid skipping.
                assert!(std::env::var_os("VISORSIM_REQUIRE_TOOLS").is_none(), "{cmd:?}: not installed");
                eprintln!("{cmd:?}: not installed, skipping");
                None
            }
            Err(e) => panic!("{cmd:?}: {e}"),
        }
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
        let e = err(&state_of(&blocks), &LIMITS);
        assert_eq!(e.kind(), ArchiveErrorKind::TooManyMembers);
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
}
