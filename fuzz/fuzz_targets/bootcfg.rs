//! Fuzz target `bootcfg`: [`visorsim_boot::fuzzing::bootcfg`] within its heap budget.

#![no_main]

use libfuzzer_sys::fuzz_target;
use visorsim_boot::fuzzing::{bootcfg, bootcfg_max_alloc};
use visorsim_testkit::alloc::{assert_within, CountingAllocator};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

fuzz_target!(|data: &[u8]| assert_within("bootcfg", data, bootcfg, bootcfg_max_alloc));
