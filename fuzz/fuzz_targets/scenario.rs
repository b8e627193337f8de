//! Fuzz target `scenario`: [`visorsim_scenario::fuzzing::scenario`] within its heap budget.

#![no_main]

use libfuzzer_sys::fuzz_target;
use visorsim_scenario::fuzzing::{scenario, scenario_max_alloc};
use visorsim_testkit::alloc::{assert_within, CountingAllocator};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

fuzz_target!(|data: &[u8]| assert_within("scenario", data, scenario, scenario_max_alloc));
