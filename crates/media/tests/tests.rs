//! The integration tests of `visorsim-media`, one binary (ripgrep style):
//! each module covers one part, `util` holds what they share.

mod fatcheck;
mod fatops;
mod fatread;
mod util;
