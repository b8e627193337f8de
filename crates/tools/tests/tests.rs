//! The crate's one integration-test binary: each wrapper against the real
//! program (qemu-img, fsck.fat, sgdisk). A test whose program is missing
//! skips with a reason, or fails naming the Debian package under
//! `VISORSIM_REQUIRE_TOOLS` (the test kit's rule).

mod fsck_fat;
mod qemu;
mod sgdisk;

use std::fs;
use std::path::Path;

/// Sorted file names in `dir`.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}
