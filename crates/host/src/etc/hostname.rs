//! The host name: `esxcli system hostname set` across esx.conf (four keys)
//! and `etc/hosts`.
//!
//! Invariants: only DNS names are accepted; a short name keeps the current
//! domain; loopback lines of `etc/hosts` are never rewritten; both files
//! end up sticky.

use super::tree::{join, lines};
use super::{
    EtcError, EtcTree, HOSTS, KEYS_IP, KEY_HOSTNAME, KEY_SYSTEM_HOSTNAME, KEY_TCPIP_DOMAIN, KEY_TCPIP_HOSTNAME,
    MODE_CONFIG,
};

/// Checks a DNS host name (short or fully qualified).
fn check_hostname(name: &str) -> Result<(), EtcError> {
    let bad = |reason: String| Err(EtcError::BadHostName { name: name.to_string(), reason });
    if name.is_empty() || name.len() > 253 {
        return bad("must be 1 to 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad(format!("label '{label}' must be 1 to 63 characters"));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return bad(format!("label '{label}' may only have letters, digits and '-'"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad(format!("label '{label}' starts or ends with '-'"));
        }
    }
    Ok(())
}

impl EtcTree {
    /// The host name: `/adv/Misc/HostName` in esx.conf.
    pub fn hostname(&self) -> Option<String> {
        self.esx_conf_get(KEY_HOSTNAME)
    }

    /// Renames the host, as `esxcli system hostname set` does. A name
    /// without a dot keeps the current domain (the TCP/IP stack's, else
    /// that of `/system/hostname`, else `localdomain`).
    ///
    /// In esx.conf: `/adv/Misc/HostName` = `name` as given,
    /// `/system/hostname` = the FQDN, and the default TCP/IP stack's
    /// `hostname` (short) and `domain`. In `etc/hosts`: every non-loopback
    /// line naming the old host gets `<address>\t<fqdn> <short>`; if there
    /// is none and esx.conf knows the management address, such a line is
    /// added. Both files end up sticky.
    ///
    /// # Errors
    /// [`EtcErrorKind::BadHostName`] unless `name` is a DNS name (labels
    /// of 1–63 letters, digits and inner `-`, 253 characters at most).
    pub fn set_hostname(&mut self, name: &str) -> Result<(), EtcError> {
        check_hostname(name)?;
        let system = self.esx_conf_get(KEY_SYSTEM_HOSTNAME);
        let (short, domain) = match name.split_once('.') {
            Some((short, domain)) => (short.to_string(), domain.to_string()),
            None => {
                let domain = self
                    .esx_conf_get(KEY_TCPIP_DOMAIN)
                    .filter(|d| !d.is_empty())
                    .or_else(|| system.as_deref().and_then(|s| s.split_once('.')).map(|(_, d)| d.to_string()))
                    .unwrap_or_else(|| "localdomain".to_string());
                (name.to_string(), domain)
            }
        };
        let fqdn = format!("{short}.{domain}");

        // The names the host had, to find its line in etc/hosts.
        let mut old: Vec<String> = Vec::new();
        for v in [self.hostname(), system, self.esx_conf_get(KEY_TCPIP_HOSTNAME)].into_iter().flatten() {
            if let Some((s, _)) = v.split_once('.') {
                old.push(s.to_string());
            }
            old.push(v);
        }
        old.retain(|n| !n.is_empty() && n != "localhost" && n != "localhost.localdomain");

        // Keys are constants that pass check_key.
        for (key, value) in [
            (KEY_HOSTNAME, name),
            (KEY_SYSTEM_HOSTNAME, fqdn.as_str()),
            (KEY_TCPIP_HOSTNAME, short.as_str()),
            (KEY_TCPIP_DOMAIN, domain.as_str()),
        ] {
            self.esx_conf_set(key, value)?;
        }

        let host_line = |addr: &str| format!("{addr}\t{fqdn} {short}").into_bytes();
        let old_hosts = self.files.get(HOSTS).map(|e| e.data.as_slice()).unwrap_or_default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut found = false;
        for line in lines(old_hosts) {
            let text = std::str::from_utf8(line).unwrap_or("");
            let mut fields = text.split('#').next().unwrap_or("").split_whitespace();
            let addr = fields.next().unwrap_or("");
            let loopback = addr.starts_with("127.") || addr == "::1";
            if !addr.is_empty() && !loopback && fields.any(|f| old.iter().any(|o| o == f)) {
                out.push(host_line(addr));
                found = true;
            } else {
                out.push(line.to_vec());
            }
        }
        if !found {
            if let Some(ip) = KEYS_IP.iter().find_map(|k| self.esx_conf_get(k)).filter(|ip| !ip.is_empty()) {
                out.push(host_line(&ip));
            }
        }
        if self.files.contains_key(HOSTS) || !out.is_empty() {
            self.put_config(HOSTS, join(&out), MODE_CONFIG);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etc::EtcErrorKind;

    #[test]
    fn hostnames() {
        for ok in ["esx01", "esx-01.example.com", "a", &"a".repeat(63)] {
            assert!(check_hostname(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a b", "a_b", "é", &"a".repeat(64), &["a"; 130].join(".")] {
            assert_eq!(check_hostname(bad).unwrap_err().kind(), EtcErrorKind::BadHostName, "{bad}");
        }
    }
}
