//! Fuzz target `gzip`: [`visorsim_boot::fuzzing::gzip`] within its heap budget.

#![no_main]

use libfuzzer_sys::fuzz_target;
use visorsim_boot::fuzzing::{gzip, gzip_max_alloc};
use visorsim_testkit::alloc::{assert_within, CountingAllocator};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

fuzz_target!(|data: &[u8]| assert_within("gzip", data, gzip, gzip_max_alloc));
