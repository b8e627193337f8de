//! `imgdb.tgz`: a small image database resembling ESXi's, naming the build.
//!
//! ```text
//! var/db/esximg/profiles/ESXi-<version>-<build>-standard   <imageprofile> listing the VIBs
//! var/db/esximg/vibs/<vib>-<number>.xml                    one <vib> document per VIB
//! ```
//!
//! `<number>` is the CRC32 of the VIB name, version and build, so the file
//! names are stable per build. Version and build are XML-escaped in the
//! documents and reduced to `[A-Za-z0-9._-]` in file names. Written with the
//! same deterministic tar writer as the configuration archives.

use super::{tar_write::tar_of, EtcFile, MODE_FILE};
use crate::payload::gzip_bytes;

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
