//! The regression rule of the dashboard, a pure decision on two runs'
//! spreads of one figure: a change counts only when it is larger than the
//! noise band, the wider of the two runs' min–max ranges (and never less
//! than [`MIN_BAND`] of the earlier median, so two runs of identical
//! samples do not flag jitter).

use super::record::Spread;

/// The smallest band, as a fraction of the earlier median.
pub const MIN_BAND: f64 = 0.02;

/// How a figure moved from one run to the next (smaller is better).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Slower by more than the band.
    Regression,
    /// Faster by more than the band.
    Improvement,
    /// Within the band: noise.
    Within,
}

impl Change {
    /// A word for the page.
    pub fn name(self) -> &'static str {
        match self {
            Change::Regression => "regression",
            Change::Improvement => "improvement",
            Change::Within => "within noise",
        }
    }
}

/// The noise band between two runs of a figure.
pub fn band(before: &Spread, after: &Spread) -> f64 {
    (before.max - before.min).max(after.max - after.min).max(before.median.abs() * MIN_BAND)
}

/// How the figure moved from `before` to `after`.
pub fn classify(before: &Spread, after: &Spread) -> Change {
    let delta = after.median - before.median;
    let band = band(before, after);
    if delta > band {
        Change::Regression
    } else if -delta > band {
        Change::Improvement
    } else {
        Change::Within
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(median: f64, min: f64, max: f64) -> Spread {
        Spread { median, min, max }
    }

    #[test]
    fn a_change_inside_the_wider_spread_is_noise() {
        // Band 0.2 (the first run's spread): +0.15 is noise.
        assert_eq!(classify(&s(1.0, 0.9, 1.1), &s(1.15, 1.14, 1.16)), Change::Within);
        // The second run's spread is wider: 0.4.
        assert_eq!(classify(&s(1.0, 0.99, 1.01), &s(1.3, 1.1, 1.5)), Change::Within);
    }

    #[test]
    fn a_change_beyond_the_band_is_flagged_both_ways() {
        assert_eq!(classify(&s(1.0, 0.95, 1.05), &s(1.2, 1.18, 1.22)), Change::Regression);
        assert_eq!(classify(&s(1.0, 0.95, 1.05), &s(0.8, 0.79, 0.81)), Change::Improvement);
        // Exactly the band is still noise.
        assert_eq!(classify(&s(1.0, 0.9, 1.1), &s(1.2, 1.2, 1.2)), Change::Within);
    }

    #[test]
    fn identical_samples_get_the_minimum_band() {
        // One round each (no spread): 1% is noise, 3% is not.
        assert_eq!(classify(&s(1.0, 1.0, 1.0), &s(1.01, 1.01, 1.01)), Change::Within);
        assert_eq!(classify(&s(1.0, 1.0, 1.0), &s(1.03, 1.03, 1.03)), Change::Regression);
        assert!((band(&s(2.0, 2.0, 2.0), &s(2.0, 2.0, 2.0)) - 0.04).abs() < 1e-12);
    }
}
