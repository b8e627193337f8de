//! The integration tests of the `visorsim` binary, one test binary, so the
//! fixture images (`util::esxi6`, `util::esxi7`, built once in a
//! `OnceLock`) are built once for all of them. Each module covers one part;
//! `util` holds what they share. (`scenarios.rs` is a binary of its own: it
//! turns every scenario file into a test.)

mod bad_input;
mod bench_cli;
mod boot;
mod cli;
mod epipe;
mod explain;
mod explore_cli;
mod explore_disk;
mod fat_check_cli;
mod four_kn;
mod host;
mod image_formats;
mod outputs;
mod qemu;
mod readme;
mod scenario_new;
mod util;
