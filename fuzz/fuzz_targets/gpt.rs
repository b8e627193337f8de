//! Fuzz target `gpt`: [`visorsim_media::fuzzing::gpt`] within its heap budget.

#![no_main]

use libfuzzer_sys::fuzz_target;
use visorsim_media::fuzzing::{gpt, gpt_max_alloc};
use visorsim_testkit::alloc::{assert_within, CountingAllocator};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

fuzz_target!(|data: &[u8]| assert_within("gpt", data, gpt, gpt_max_alloc));
