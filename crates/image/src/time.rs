//! Simulated time: a count of seconds and its calendar.
//!
//! Nothing here reads the wall clock: [`SimTime`] is a plain count of
//! seconds since the Unix epoch (UTC, no leap seconds, as `date` sees it on
//! an ESXi host). The civil calendar (proleptic Gregorian) is computed here
//! with Howard Hinnant's `days_from_civil` / `civil_from_days` algorithms,
//! so there is no time zone and no dependency on the machine running the
//! simulation. Promises:
//!
//! - Every function is pure and total: times up to `u64::MAX` seconds format
//!   without panicking; arithmetic saturates or says `None`.
//! - The parsers accept exactly the shapes they print and name the input in
//!   their [`TimeError`].
//!
//! It lives in the image crate because an image already carries dates (the
//! archives' mtimes, the backup counter's `CREATED` line); the running host's
//! clock and cron build on it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which parser refused its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeErrorKind {
    /// An RFC 3339 time (`YYYY-MM-DDTHH:MM:SSZ`).
    Time,
    /// A duration (`1h30m`).
    Duration,
}

/// A time or duration that does not parse, with the input and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Invalid {} '{input}': {why} ({})", self.kind_word(), self.hint())]
pub struct TimeError {
    kind: TimeErrorKind,
    input: String,
    why: String,
}

impl TimeError {
    fn new(kind: TimeErrorKind, input: &str, why: &str) -> TimeError {
        TimeError { kind, input: input.to_owned(), why: why.to_owned() }
    }

    /// Which parser refused.
    pub fn kind(&self) -> TimeErrorKind {
        self.kind
    }

    /// The refused text.
    pub fn input(&self) -> &str {
        &self.input
    }

    fn kind_word(&self) -> &'static str {
        match self.kind {
            TimeErrorKind::Time => "time",
            TimeErrorKind::Duration => "duration",
        }
    }

    fn hint(&self) -> &'static str {
        match self.kind {
            TimeErrorKind::Time => "expected YYYY-MM-DDTHH:MM:SSZ",
            TimeErrorKind::Duration => "e.g. 90s, 59m, 2h, 1h30m, 3d",
        }
    }
}

/// Seconds in a minute.
pub const MINUTE: u64 = 60;
/// Seconds in an hour.
pub const HOUR: u64 = 60 * MINUTE;
/// Seconds in a day.
pub const DAY: u64 = 24 * HOUR;

/// Days between 0000-03-01 and 1970-01-01 in the proleptic Gregorian
/// calendar (the shift used by `days_from_civil`).
const EPOCH_SHIFT: i64 = 719_468;
/// Days in a 400-year era.
const ERA_DAYS: i64 = 146_097;

/// Seconds since the Unix epoch, simulated: never reads the wall clock.
///
/// The default is [`SimTime::START`], 2026-01-01T00:00:00Z. It serialises
/// as the bare number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SimTime(pub u64);

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// The year (1970 or later).
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    /// 0..=23
    pub hour: u32,
    /// 0..=59
    pub minute: u32,
    /// 0..=59
    pub second: u32,
    /// 0 = Sunday .. 6 = Saturday
    pub weekday: u32,
}

/// Days from 1970-01-01 to `year-month-day` (proleptic Gregorian).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * ERA_DAYS + doe - EPOCH_SHIFT
}

/// `(year, month, day)` of the day `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + EPOCH_SHIFT;
    let era = z.div_euclid(ERA_DAYS);
    let doe = z.rem_euclid(ERA_DAYS); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction.
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

/// Whether `year` is a Gregorian leap year.
fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1..=12) of `year`.
fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// A value below 60 (or 24, 7, 12...) as `u32`.
fn small(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl SimTime {
    /// 2026-01-01T00:00:00Z, where simulations start unless told otherwise.
    pub const START: SimTime = SimTime(1_767_225_600);

    /// The time `year-month-day hour:minute:second` UTC, or `None` if a field
    /// is out of range or the date is before 1970.
    pub fn from_civil(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<SimTime> {
        if !(1970..=9_999_999).contains(&year)
            || !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
        let secs = u64::from(hour) * HOUR + u64::from(minute) * MINUTE + u64::from(second);
        days.checked_mul(DAY)?.checked_add(secs).map(SimTime)
    }

    /// Parses `YYYY-MM-DDTHH:MM:SSZ` (what [`SimTime::rfc3339`] prints; UTC
    /// only, no fractions or offsets).
    ///
    /// # Errors
    /// [`TimeError`] naming the input when it is not in that form or names a
    /// day that does not exist.
    pub fn parse_rfc3339(s: &str) -> Result<SimTime, TimeError> {
        let bad = |why: &str| TimeError::new(TimeErrorKind::Time, s, why);
        let b = s.as_bytes();
        if !s.is_ascii()
            || b.len() != 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(bad("wrong shape"));
        }
        if b[19] != b'Z' {
            return Err(bad("only UTC ('Z') is accepted"));
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, TimeError> {
            let t = &s[r];
            if t.bytes().all(|c| c.is_ascii_digit()) {
                t.parse().map_err(|_| bad("not a number"))
            } else {
                Err(bad("not a number"))
            }
        };
        let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
        SimTime::from_civil(i64::from(y), mo, d, h, mi, se).ok_or_else(|| bad("no such time, or before 1970"))
    }

    /// The broken-down UTC time.
    pub fn civil(self) -> Civil {
        let days = self.0 / DAY;
        let rem = self.0 % DAY;
        // u64::MAX / 86400 fits in i64.
        let days = i64::try_from(days).unwrap_or(i64::MAX);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: small(rem / HOUR),
            minute: small(rem % HOUR / MINUTE),
            second: small(rem % MINUTE),
            // 1970-01-01 was a Thursday.
            weekday: small((self.0 / DAY + 4) % 7),
        }
    }

    /// The minute of the hour, 0..=59.
    pub fn minute_of_hour(self) -> u32 {
        small(self.0 % HOUR / MINUTE)
    }

    /// RFC 3339 in UTC: `2026-01-01T00:01:00Z`.
    pub fn rfc3339(self) -> String {
        let c = self.civil();
        format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", c.year, c.month, c.day, c.hour, c.minute, c.second)
    }

    /// What `date` prints in ESXi's scripts (busybox, TZ=UTC):
    /// `Thu Jan  1 00:01:00 UTC 2026` (the day of the month is padded with
    /// a space to two characters).
    pub fn ctime(self) -> String {
        let c = self.civil();
        let weekday = WEEKDAYS[c.weekday as usize % 7];
        let month = MONTHS[(c.month as usize + 11) % 12];
        format!("{weekday} {month} {:>2} {:02}:{:02}:{:02} UTC {}", c.day, c.hour, c.minute, c.second, c.year)
    }

    /// `self + secs`, or `None` past `u64::MAX` seconds.
    pub fn checked_add(self, secs: u64) -> Option<SimTime> {
        self.0.checked_add(secs).map(SimTime)
    }

    /// `self + secs`, stopping at `u64::MAX` seconds.
    pub fn saturating_add(self, secs: u64) -> SimTime {
        SimTime(self.0.saturating_add(secs))
    }

    /// Seconds from `earlier` to `self`, or `None` if `earlier` is later.
    pub fn since(self, earlier: SimTime) -> Option<u64> {
        self.0.checked_sub(earlier.0)
    }

    /// Parses a duration in seconds: one or more `<number><unit>` groups
    /// with units `d`, `h`, `m`, `s`, each at most once and in that order,
    /// without spaces: `90s`, `59m`, `2h`, `1h30m`, `3d`, `1d2h3m4s`.
    ///
    /// # Errors
    /// [`TimeError`] naming the input: empty, a number without a unit, an
    /// unknown, repeated or out-of-order unit, or an overflow.
    pub fn parse_duration(s: &str) -> Result<u64, TimeError> {
        let bad = |why: String| TimeError::new(TimeErrorKind::Duration, s, &why);
        if s.is_empty() {
            return Err(bad("empty".into()));
        }
        let units = [('d', DAY), ('h', HOUR), ('m', MINUTE), ('s', 1)];
        let mut next_unit = 0; // index into `units` of the smallest unit still allowed
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            if digits.is_empty() {
                return Err(bad(format!("'{c}' without a number before it")));
            }
            let Some(i) = units.iter().position(|&(u, _)| u == c) else {
                return Err(bad(format!("unknown unit '{c}'")));
            };
            if i < next_unit {
                return Err(bad(format!("unit '{c}' repeated or out of order")));
            }
            next_unit = i + 1;
            let n: u64 = digits.parse().map_err(|_| bad(format!("number '{digits}' too large")))?;
            total =
                n.checked_mul(units[i].1).and_then(|v| total.checked_add(v)).ok_or_else(|| bad("too large".into()))?;
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(bad(format!("'{digits}' has no unit")));
        }
        Ok(total)
    }
}

impl Default for SimTime {
    fn default() -> SimTime {
        SimTime::START
    }
}

impl fmt::Display for SimTime {
    /// RFC 3339, as [`SimTime::rfc3339`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_centuries() {
        // Every day from 1970 to 2500 converts both ways; weekdays advance.
        let end = days_from_civil(2500, 1, 1);
        let mut prev_weekday = 3; // 1969-12-31 was a Wednesday
        for days in 0..end {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
            assert!(d >= 1 && d <= days_in_month(y, m));
            let c = SimTime(u64::try_from(days).unwrap() * DAY).civil();
            assert_eq!(c.weekday, (prev_weekday + 1) % 7);
            prev_weekday = c.weekday;
        }
    }

    #[test]
    fn start_is_new_year_2026() {
        assert_eq!(SimTime::START.rfc3339(), "2026-01-01T00:00:00Z");
        assert_eq!(SimTime::default(), SimTime::START);
        assert_eq!(SimTime::from_civil(2026, 1, 1, 0, 0, 0), Some(SimTime::START));
    }

    #[test]
    fn from_civil_rejects_impossible_dates() {
        assert_eq!(SimTime::from_civil(2023, 2, 29, 0, 0, 0), None);
        assert!(SimTime::from_civil(2024, 2, 29, 0, 0, 0).is_some());
        assert_eq!(SimTime::from_civil(2100, 2, 29, 0, 0, 0), None);
        assert!(SimTime::from_civil(2000, 2, 29, 0, 0, 0).is_some());
        assert_eq!(SimTime::from_civil(1969, 12, 31, 23, 59, 59), None);
        assert_eq!(SimTime::from_civil(2026, 4, 31, 0, 0, 0), None);
        assert_eq!(SimTime::from_civil(2026, 1, 1, 24, 0, 0), None);
        assert_eq!(SimTime::from_civil(2026, 13, 1, 0, 0, 0), None);
    }

    #[test]
    fn rfc3339_rejects_other_shapes() {
        for s in ["2026-01-01 00:00:00Z", "2026-01-01T00:00:00", "2026-01-01T00:00:00+00:00", "2026-1-01T00:00:00Z"] {
            assert!(SimTime::parse_rfc3339(s).is_err(), "{s}");
        }
        let e = SimTime::parse_rfc3339("2026-02-30T00:00:00Z").unwrap_err();
        assert!(e.to_string().contains("2026-02-30T00:00:00Z"), "{e}");
        assert_eq!(e.input(), "2026-02-30T00:00:00Z");
        assert_eq!(e.kind(), TimeErrorKind::Time);
        assert!(SimTime::parse_rfc3339("+026-01-01T00:00:00Z").is_err());
    }
}
