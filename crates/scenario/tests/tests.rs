//! The scenario crate's integration tests, one binary (ripgrep style):
//! typed run errors, the property tests over random step sequences,
//! crash-point exploration's deduplication and depth-2 cap, and the
//! vocabulary of field reproductions (corrupt writes, file expectations...).

mod errors;
mod explore;
mod properties;
mod vocabulary;
