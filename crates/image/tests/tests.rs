//! The integration tests of `visorsim-image`, one binary (ripgrep style):
//! each module covers one part, `util` holds the fixture they share.
//!
//! `memory` (tests/memory.rs) is the one other binary: it reads the
//! process's peak RSS, which only it may drive.

mod boot_cache;
mod image_parts;
mod inspect;
mod install;
mod util;
