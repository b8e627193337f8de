//! `etc/shadow`: users and their (fake, deterministic) password hashes.
//!
//! Invariants: a password change keeps every other field of the user's
//! line; hashes depend only on the password and the caller's salt seed;
//! they are NOT cryptography (see below) and must never protect anything.

use super::tree::{join, lines};
use super::{EtcError, EtcTree, MODE_SHADOW, SHADOW};

/// Checks a user name for `etc/shadow`.
fn check_user(user: &str) -> Result<(), EtcError> {
    let bad = |reason| Err(EtcError::BadUserName { user: user.to_string(), reason });
    if user.is_empty() || user.len() > 32 {
        return bad("must be 1 to 32 characters");
    }
    if user.starts_with('-') || !user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return bad("only letters, digits, '.', '_' and '-', not starting with '-'");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Password hashes
//
// NOT cryptography. `$6$<salt>$<hash>` only looks like SHA-512-crypt: the
// 86-character "hash" is a splitmix64 stream seeded with FNV-1a of the salt
// and the password. It is deterministic, distinguishes passwords in tests,
// and must never protect anything.

/// The crypt(3) base-64 alphabet.
const CRYPT_ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// splitmix64: the next value of `state`'s stream.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `len` crypt-alphabet characters from the stream seeded by `seed`.
fn crypt_chars(seed: u64, len: usize) -> String {
    let mut state = seed;
    let mut out = String::with_capacity(len + 10);
    while out.len() < len {
        let v = splitmix64(&mut state);
        for i in 0..10 {
            out.push(char::from(CRYPT_ALPHABET[((v >> (6 * i)) & 63) as usize]));
        }
    }
    out.truncate(len);
    out
}

/// The fake hash of `password` with `salt` (see above: not cryptography).
fn fake_crypt(salt: &str, password: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in salt.as_bytes().iter().chain(b"$").chain(password.as_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("$6${salt}${}", crypt_chars(h, 86))
}

impl EtcTree {
    /// The `etc/shadow` line of `user`, split into fields.
    fn shadow_fields(&self, user: &str) -> Option<Vec<String>> {
        let data = &self.files.get(SHADOW)?.data;
        lines(data).into_iter().find_map(|l| {
            let l = std::str::from_utf8(l).ok()?;
            let fields: Vec<String> = l.split(':').map(str::to_string).collect();
            (fields.len() >= 2 && fields[0] == user).then_some(fields)
        })
    }

    /// Whether `user` has a line in `etc/shadow` (the only user database
    /// modelled).
    pub fn user_exists(&self, user: &str) -> bool {
        self.shadow_fields(user).is_some()
    }

    /// Sets `user`'s password in `etc/shadow` to
    /// `$6$<16-char salt from salt_seed>$<86-char fake hash>`, adding the
    /// user (`user:<hash>::0:99999:7:::`, no last-change date) if missing;
    /// the other fields of an existing line are kept. The hash is a simple
    /// deterministic function of the password and salt, NOT real crypto
    /// (see the module source). The file ends up sticky.
    ///
    /// # Errors
    /// [`EtcErrorKind::BadUserName`] unless `user` is 1–32 letters, digits,
    /// `.`, `_` or `-`, not starting with `-`.
    pub fn set_password(&mut self, user: &str, password: &str, salt_seed: u64) -> Result<(), EtcError> {
        check_user(user)?;
        let hash = fake_crypt(&crypt_chars(salt_seed, 16), password);
        let old = self.files.get(SHADOW).map(|e| e.data.as_slice()).unwrap_or_default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut found = false;
        for line in lines(old) {
            let fields: Option<Vec<&str>> = std::str::from_utf8(line).ok().map(|l| l.split(':').collect());
            match fields {
                Some(mut f) if !found && f.len() >= 2 && f[0] == user => {
                    f[1] = &hash;
                    out.push(f.join(":").into_bytes());
                    found = true;
                }
                _ => out.push(line.to_vec()),
            }
        }
        if !found {
            out.push(format!("{user}:{hash}::0:99999:7:::").into_bytes());
        }
        self.put_config(SHADOW, join(&out), MODE_SHADOW);
        Ok(())
    }

    /// Whether `password` is `user`'s password: `false` for an unknown
    /// user, a locked account (`*`, `!`) or a hash not made by
    /// [`EtcTree::set_password`].
    pub fn password_matches(&self, user: &str, password: &str) -> bool {
        let Some(fields) = self.shadow_fields(user) else { return false };
        let hash = &fields[1];
        let Some(salt) = hash.strip_prefix("$6$").and_then(|rest| rest.split_once('$')).map(|(salt, _)| salt) else {
            return false;
        };
        fake_crypt(salt, password) == *hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_crypt_looks_like_sha512_crypt() {
        let h = fake_crypt("saltsaltsaltsalt", "pw");
        assert_eq!(h.len(), 3 + 16 + 1 + 86);
        assert!(h[20..].bytes().all(|b| CRYPT_ALPHABET.contains(&b)));
        assert_ne!(h, fake_crypt("saltsaltsaltsalt", "pw2"));
        assert_ne!(h, fake_crypt("saltsaltsaltsalu", "pw"));
        assert_eq!(h, fake_crypt("saltsaltsaltsalt", "pw"));
    }
}
