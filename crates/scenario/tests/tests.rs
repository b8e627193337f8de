//! The scenario crate's integration tests, one binary (ripgrep style):
//! typed run errors, the property tests over random step sequences, and
//! crash-point exploration's deduplication and depth-2 cap.

mod errors;
mod explore;
mod properties;
