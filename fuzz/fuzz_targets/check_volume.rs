//! Fuzz target `check_volume`: [`visorsim_media::fuzzing::check_volume`] within its heap budget.

#![no_main]

use libfuzzer_sys::fuzz_target;
use visorsim_media::fuzzing::{check_volume, check_volume_max_alloc};
use visorsim_testkit::alloc::{assert_within, CountingAllocator};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

fuzz_target!(|data: &[u8]| assert_within("check_volume", data, check_volume, check_volume_max_alloc));
