//! The integration tests of `visorsim-disk`, one binary (ripgrep style):
//! each module checks one concern through the public API only.
//!
//! - `conformance`: the `BlockDevice` contract of `src/lib.rs`, on every
//!   device the crate offers, at both sector sizes;
//! - `fault`: the fault layer, `Faulty` and the crash-state enumeration;
//! - `model`: property tests of devices against a plain `Vec<u8>` model
//!   (its proptest regressions are in `model.proptest-regressions`, found
//!   next to `model.rs` by proptest's default persistence);
//! - `sparse`: memory and disk cost follow the data written;
//! - `util`: helpers the modules share.

// Test disks are a few KiB to 8 GiB, so u64 -> usize casts cannot truncate;
// u8 casts build byte patterns and truncate on purpose.
#![allow(clippy::cast_possible_truncation)]

mod conformance;
mod fault;
mod model;
mod sparse;
mod util;
