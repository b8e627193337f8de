//! Boot-disk images as artefacts: the synthetic ESXi system image (a build
//! with its boot.cfg and modules, deterministic from a seed), its
//! installation on a fresh boot disk, and `inspect`, the diagnostic view of
//! any boot disk. Nothing here runs a host: the running host
//! (`visorsim-host`) uses these images to install and upgrade with.
//!
//! ```text
//!   time      simulated time: seconds since the epoch and their calendar
//!   payload/  "system binary" bytes, gzip'd in parallel, cached by (seed, size)
//!     content   the seeded generator        gzip    framing, parallel deflate
//!     cache     the on-disk module cache
//!   kernel    b.b00's content: a tiny real Multiboot kernel (ELF64; its 32-bit guest code in guest/)
//!   archive/  local.tgz / state.tgz (/etc) and imgdb.tgz
//!     etc_defaults  the /etc of a fresh install    imgdb     imgdb.tgz
//!     tar_write     deterministic ustar writer     tar_read  bounded reader
//!     error         ArchiveError
//!   system    SystemImage: the files of one build and its boot.cfg
//!   install   a fresh install: GPT, FAT16 volumes, bank 5 written, bank 6 empty
//!   inspect   what is on a boot disk, read as a diagnostic tool would
//! ```
//!
//! Same seed, same bytes: every image file, every installed disk and every
//! payload cache file is a function of the inputs only (never of the clock,
//! the OS or the number of threads).
//!
//! Errors are typed (`thiserror`): [`archive::ArchiveError`],
//! [`install::InstallError`], [`payload::CacheError`] and
//! [`time::TimeError`] each have a `kind()` and name where they happened.
//!
//! Layering: this crate sits on `visorsim-boot` (boot.cfg rendering, the
//! module checks `inspect` reports), `visorsim-media` and `visorsim-disk`,
//! and on nothing above them.

pub mod archive;
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
pub mod install;
pub mod kernel;
pub mod payload;
pub mod system;
pub mod time;

#[cfg(test)]
mod test_tools;
