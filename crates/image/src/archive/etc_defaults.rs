//! The `/etc` of a fresh install: [`fresh_etc`].
//!
//! Four files, sorted by path, every byte a function of the arguments (the
//! seed drives a ChaCha8 generator for the addresses and `/system/uuid`):
//!
//! ```text
//!   etc/hosts                    1644  localhost and the host's address
//!   etc/shadow                   1400  root with a fixed hash, system users
//!   etc/vmware/.backup.counter   1644  backup.sh's counter: CREATED, MODIFIED, n
//!   etc/vmware/esx.conf          1644  host name, addresses, NIC, vSwitch, vmk0, uuid
//! ```
//!
//! The sticky bit on the saved files is how VisorFS marks a file for
//! backup.sh. Strings given by the caller are made one-line and quote-safe
//! before they are written.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::EtcFile;

/// Mode of a saved configuration file: rw-r--r-- plus the sticky bit, which
/// is how VisorFS marks a file to be saved by backup.sh.
const MODE_SAVED: u32 = 0o1644;
/// Mode of `etc/shadow`: r-------- plus the sticky bit.
const MODE_SHADOW: u32 = 0o1400;

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
