//! The simulated clock of one host.
//!
//! A [`Clock`] only moves when it is told to: nothing reads the wall clock.
//! Time itself ([`SimTime`], the calendar, duration parsing) is
//! `visorsim_image::time`, re-exported here; the host's cron is
//! [`crate::cron`].

use serde::{Deserialize, Serialize};
pub use visorsim_image::time::{SimTime, TimeError, TimeErrorKind};

/// The simulated clock of one host: it moves only when told to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    now: SimTime,
}

impl Clock {
    /// A clock showing `start`.
    pub fn new(start: SimTime) -> Clock {
        Clock { now: start }
    }

    /// The current simulated time.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Moves the clock `secs` forward (stopping at `u64::MAX`) and returns
    /// the new time.
    pub fn advance(&mut self, secs: u64) -> SimTime {
        self.now = self.now.saturating_add(secs);
        self.now
    }

    /// Sets the clock, forward or backward (as an NTP step or a BIOS clock
    /// reset would).
    pub fn set(&mut self, t: SimTime) {
        self.now = t;
    }
}

// ---------------------------------------------------------------------------
// cron
