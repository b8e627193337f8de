//! The synthetic ESXi system image: a build with its boot.cfg and modules,
//! deterministic from a seed, and its installation on a boot disk.
//!
//! ```text
//!   payload   "system binary" bytes, gzip'd in parallel, cached by (seed, size)
//!   kernel    b.b00's content: a small ELF64 with a Multiboot header
//!   archive   local.tgz / state.tgz (/etc) and imgdb.tgz
//!   system    SystemImage: the files of one build and its boot.cfg
//!   install   a fresh install: GPT, FAT16 volumes, bank 5 written, bank 6 empty
//! ```

pub mod archive;
pub mod install;
pub mod kernel;
pub mod payload;
pub mod system;
