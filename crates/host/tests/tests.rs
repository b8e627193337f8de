//! The integration tests of `visorsim-host`, one binary (ripgrep style):
//! each module covers one part through the public API.

mod advance;
mod checks;
mod durability;
mod etc;
mod lifecycle;
