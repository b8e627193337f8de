//! Fuzz target `state_tgz`: [`visorsim_image::fuzzing::state_tgz`] within its heap budget.

#![no_main]

use libfuzzer_sys::fuzz_target;
use visorsim_image::fuzzing::{state_tgz, state_tgz_max_alloc};
use visorsim_testkit::alloc::{assert_within, CountingAllocator};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

fuzz_target!(|data: &[u8]| assert_within("state_tgz", data, state_tgz, state_tgz_max_alloc));
