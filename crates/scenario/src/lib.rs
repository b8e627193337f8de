//! Scenarios: a disk, a sequence of steps (host operations, faults) and
//! expectations after any step, read from JSON files and run against the
//! emulated host; plus crash-point exploration of one operation.
//!
//! ```text
//!   model     the JSON schema (serde, unknown fields rejected)
//!   checked   the range of every number of a scenario, checked while it is read
//!   run       the runner: builds the disk, plays the steps over the fault layer,
//!             checks the expectations, records the timeline
//!   explore   crash-point exploration of one operation
//!   size      byte sizes ("16G", "500MB"), for scenario files and the CLI
//!   input     a user's image (raw, vmdk, qcow2, vhdx) opened read-only, loaded by extents
//!   from_image  a scenario from a user's image and what `explain` says of it (`scenario new`)
//! ```

pub mod checked;
pub mod explore;
pub mod from_image;
#[doc(hidden)]
pub mod fuzzing;
pub mod input;
pub mod model;
pub mod run;
pub mod size;

pub use model::{load_file, parse, Scenario, ScenarioError};
pub use run::{run, Mismatch, RunError, RunErrorKind, RunResult, TimelineRow};
