//! The scenario crate's integration tests, one binary (ripgrep style):
//! typed run errors, and the property tests over random step sequences.

mod errors;
mod properties;
