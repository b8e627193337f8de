//! Progress of a long step (generating system modules, checking crash
//! states): a bar on a
//! terminal, else one line every few seconds on stderr, so a log (CI, a
//! pipe) shows the work going on instead of nothing.
//!
//! - stderr is a terminal: an indicatif bar, cleared when done.
//! - stderr is not a terminal: `<label>: <done> of <total> (<percent>%)`
//!   every [`INTERVAL`] (`$VISORSIM_PROGRESS_SECONDS` overrides it; `0`
//!   prints every update, for tests); nothing for a step that ends sooner.
//! - `quiet`: nothing at all.
//!
//! Sizes are binary units (`456.62 MiB`), as the bar shows them.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

/// How often a progress line is printed when stderr is not a terminal.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// The progress of one step.
pub struct Progress {
    label: String,
    bytes: bool,
    bar: Option<ProgressBar>,
    lines: Option<(Duration, Instant)>,
}

impl Progress {
    /// A bar (stderr is a terminal), progress lines (it is not), or nothing
    /// (`quiet`).
    pub fn new(label: &str, quiet: bool) -> Progress {
        Progress::with_unit(label, quiet, true)
    }

    /// [`Progress::new`] counting items (crash states) instead of bytes.
    pub fn counting(label: &str, quiet: bool) -> Progress {
        Progress::with_unit(label, quiet, false)
    }

    fn with_unit(label: &str, quiet: bool, bytes: bool) -> Progress {
        let mut progress = Progress { label: label.to_owned(), bytes, bar: None, lines: None };
        if quiet {
            return progress;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(if bytes {
                    "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})"
                } else {
                    "{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})"
                })
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(label.to_owned());
            progress.bar = Some(bar);
        } else {
            let interval = std::env::var("VISORSIM_PROGRESS_SECONDS")
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map_or(INTERVAL, Duration::from_secs_f64);
            progress.lines = Some((interval, Instant::now()));
        }
        progress
    }

    /// `done` of `total` bytes.
    pub fn update(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
        }
        if let Some((interval, last)) = &mut self.lines {
            if last.elapsed() >= *interval {
                let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100);
                if self.bytes {
                    eprintln!("{}: {} of {} ({percent}%)", self.label, HumanBytes(done), HumanBytes(total));
                } else {
                    eprintln!("{}: {done} of {total} ({percent}%)", self.label);
                }
                *last = Instant::now();
            }
        }
    }

    /// Clears the bar.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
