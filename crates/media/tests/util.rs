//! Helpers shared by the integration tests: the test disks' constants,
//! deterministic bytes, and finding the external tools some checks use.

use std::path::PathBuf;

/// Partition start on every test disk.
pub const FIRST: u64 = 64;
/// One MiB.
pub const MIB: u64 = 1024 * 1024;

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The path of the external tool `name` (from the Debian package
/// `package`), searched on `PATH` then in `/usr/sbin` and `/sbin`.
///
/// Missing: with `VISORSIM_REQUIRE_TOOLS` set (as `scripts/test.sh` and CI
/// set it) this panics, naming the package to install; unset, it prints
/// why the check is skipped and gives `None`.
pub fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    let found = dirs.map(|d| d.join(name)).find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("VISORSIM_REQUIRE_TOOLS").is_none(),
            "{name} is required (VISORSIM_REQUIRE_TOOLS is set) but not installed: \
             install the Debian package {package} (apt-get install {package})"
        );
        eprintln!("skipping the {name} checks: {name} is not installed (Debian package {package})");
    }
    found
}
