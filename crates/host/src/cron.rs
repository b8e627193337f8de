//! The host's cron: the five-field schedule of a crontab line, as the
//! busybox `crond` of ESXi reads `/var/spool/cron/crontabs/root` (the
//! root crontab runs `/sbin/auto-backup.sh` at minute 1 of every hour).
//! Promises:
//!
//! - Firings are whole minutes (second 0); [`CronSchedule::matches`] looks
//!   at the minute that contains the given time.
//! - [`CronSchedule::next_after`] is strictly after its argument and
//!   searches a bounded window ([`MAX_SEARCH_DAYS`]): a schedule that can
//!   never fire (`0 0 31 2 *`) gives `None`, not a hang.
//! - [`due_between`] returns every firing in `(from, to]`, in order, or an
//!   error past [`MAX_DUE`] firings; it never allocates without bound.
//! - [`CronSchedule::count_between`] counts the firings in `(from, to]`
//!   without visiting them when only the minute is restricted (as in
//!   [`AUTO_BACKUP`]): a hundred million days is one division.
//! - Everything is a pure function of its arguments.

use std::fmt;
use std::str::FromStr;

use visorsim_image::time::{days_from_civil, Civil, SimTime, DAY, HOUR, MINUTE};

/// The ESXi root crontab's schedule for auto-backup, from
/// `1    *    *   *   *   /sbin/auto-backup.sh`: minute 1 of every hour.
pub const AUTO_BACKUP: &str = "1 * * * *";

/// How far [`CronSchedule::next_after`] looks: nine years, enough to find
/// the next February 29 across a non-leap century year (2096 to 2104).
pub const MAX_SEARCH_DAYS: u64 = 9 * 366;

/// Most firings [`due_between`] returns (about 11 years of an hourly job).
pub const MAX_DUE: usize = 100_000;

/// A field of a cron schedule, in crontab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CronField {
    /// Minute, 0-59.
    Minute,
    /// Hour, 0-23.
    Hour,
    /// Day of the month, 1-31.
    DayOfMonth,
    /// Month, 1-12.
    Month,
    /// Day of the week, 0-7 (0 and 7 are Sunday).
    DayOfWeek,
}

impl CronField {
    const ALL: [CronField; 5] =
        [CronField::Minute, CronField::Hour, CronField::DayOfMonth, CronField::Month, CronField::DayOfWeek];

    /// The values the field accepts, inclusive.
    pub fn range(self) -> (u32, u32) {
        match self {
            CronField::Minute => (0, 59),
            CronField::Hour => (0, 23),
            CronField::DayOfMonth => (1, 31),
            CronField::Month => (1, 12),
            CronField::DayOfWeek => (0, 7),
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
        })
    }
}

/// What went wrong with a cron schedule, for callers that match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CronErrorKind {
    /// The schedule does not have exactly five fields.
    FieldCount,
    /// One field is malformed or out of range.
    Field,
    /// [`due_between`] would return more than [`MAX_DUE`] firings.
    TooManyFirings,
}

/// An error parsing or expanding a cron schedule; names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// See [`CronErrorKind::FieldCount`].
    #[error("Cron schedule '{spec}' has {found} fields, expected 5 (minute hour day-of-month month day-of-week)")]
    FieldCount {
        /// The whole schedule.
        spec: String,
        /// How many whitespace-separated fields it has.
        found: usize,
    },
    /// See [`CronErrorKind::Field`].
    #[error("Invalid {field} field '{text}' in cron schedule '{spec}': {reason}")]
    Field {
        /// The whole schedule.
        spec: String,
        /// Which field.
        field: CronField,
        /// The field's text.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// See [`CronErrorKind::TooManyFirings`].
    #[error("Cron schedule '{spec}' fires more than {limit} times between {from} and {to}")]
    TooManyFirings {
        /// The whole schedule.
        spec: String,
        /// [`MAX_DUE`].
        limit: usize,
        /// Start of the window (exclusive).
        from: SimTime,
        /// End of the window (inclusive).
        to: SimTime,
    },
}

impl CronError {
    /// What went wrong.
    pub fn kind(&self) -> CronErrorKind {
        match self {
            CronError::FieldCount { .. } => CronErrorKind::FieldCount,
            CronError::Field { .. } => CronErrorKind::Field,
            CronError::TooManyFirings { .. } => CronErrorKind::TooManyFirings,
        }
    }

    /// The field the error is about, if any.
    pub fn field(&self) -> Option<CronField> {
        match self {
            CronError::Field { field, .. } => Some(*field),
            CronError::FieldCount { .. } | CronError::TooManyFirings { .. } => None,
        }
    }
}

/// A five-field cron schedule (`minute hour day-of-month month
/// day-of-week`), e.g. [`AUTO_BACKUP`].
///
/// Each field is a comma-separated list of items; an item is `*`, a number
/// `N`, a range `A-B` (`A <= B`), or `*/S` or `A-B/S` (every `S`th value
/// from the start of the range). Day-of-week 7 is Sunday, like 0. Names
/// (`jan`, `mon`) and `@hourly`-style shortcuts are not accepted, nor are
/// `N/S` and reversed ranges (busybox `crond` gives those surprising
/// meanings: a single value, and a range wrapping around).
///
/// Day of month and day of week combine as in busybox `crond`: if both are
/// restricted (not every value) a day matches either; otherwise both must
/// match (so the unrestricted one does not matter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronSchedule {
    spec: String,
    /// Bit `n` set: minute `n` matches.
    minutes: u64,
    /// Bit `n` set: hour `n` matches.
    hours: u32,
    /// Bit `n` set: day `n` (1..=31) matches.
    days: u32,
    /// Bit `n` set: month `n` (1..=12) matches.
    months: u16,
    /// Bit `n` set: weekday `n` (0 = Sunday..6) matches.
    weekdays: u8,
}

/// Parses one field into a bit set of its values.
fn parse_field(spec: &str, field: CronField, text: &str) -> Result<u64, CronError> {
    let err = |reason: String| CronError::Field { spec: spec.to_string(), field, text: text.to_string(), reason };
    let (lo, hi) = field.range();
    let number = |s: &str| -> Result<u32, CronError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(format!("'{s}' is not a number")));
        }
        let n: u32 = s.parse().map_err(|_| err(format!("{s} is out of range {lo}-{hi}")))?;
        if n < lo || n > hi {
            return Err(err(format!("{n} is out of range {lo}-{hi}")));
        }
        Ok(n)
    };
    let mut bits: u64 = 0;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(err("empty list item".into()));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err(format!("step '{step}' is not a number")));
                }
                let s: u32 = step.parse().unwrap_or(u32::MAX);
                if s == 0 {
                    return Err(err("step 0".into()));
                }
                (range, Some(s))
            }
            None => (item, None),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (number(a)?, number(b)?);
            if a > b {
                return Err(err(format!("range {a}-{b} is reversed")));
            }
            (a, b)
        } else {
            let n = number(range)?;
            if step.is_some() {
                return Err(err(format!("a step needs '*' or a range, not '{n}'")));
            }
            (n, n)
        };
        let step = step.unwrap_or(1);
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v = match v.checked_add(step) {
                Some(v) => v,
                None => break,
            };
        }
    }
    Ok(bits)
}

/// All of `lo..=hi` as a bit set.
fn all_bits(lo: u32, hi: u32) -> u64 {
    (lo..=hi).fold(0, |acc, v| acc | 1 << v)
}

impl CronSchedule {
    /// Parses a five-field schedule; fields are separated by any amount of
    /// spaces or tabs.
    ///
    /// # Errors
    /// [`CronErrorKind::FieldCount`] unless there are exactly five fields;
    /// [`CronErrorKind::Field`] naming the first bad field otherwise.
    pub fn parse(spec: &str) -> Result<CronSchedule, CronError> {
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError::FieldCount { spec: spec.to_string(), found: fields.len() });
        }
        let mut bits = [0u64; 5];
        for ((field, text), out) in CronField::ALL.into_iter().zip(&fields).zip(&mut bits) {
            *out = parse_field(spec, field, text)?;
        }
        // Fold Sunday-as-7 onto 0. The masks keep each set within its
        // field's range, so the narrowing casts below are lossless.
        let weekdays = (bits[4] | bits[4] >> 7) & 0x7f;
        Ok(CronSchedule {
            spec: fields.join(" "),
            minutes: bits[0],
            hours: (bits[1] & all_bits(0, 23)) as u32,
            days: (bits[2] & all_bits(1, 31)) as u32,
            months: (bits[3] & all_bits(1, 12)) as u16,
            weekdays: weekdays as u8,
        })
    }

    /// Whether the day `c` matches the day-of-month and day-of-week fields.
    fn day_matches(&self, c: &Civil) -> bool {
        let dom_all = u64::from(self.days) == all_bits(1, 31);
        let dow_all = self.weekdays == 0x7f;
        let dom = self.days & (1 << c.day) != 0;
        let dow = self.weekdays & (1 << c.weekday) != 0;
        match (dom_all, dow_all) {
            (false, false) => dom || dow,
            (true, false) => dow,
            (false, true) => dom,
            (true, true) => true,
        }
    }

    /// Whether the schedule fires in the minute containing `t`.
    pub fn matches(&self, t: SimTime) -> bool {
        let c = t.civil();
        self.months & (1 << c.month) != 0
            && self.day_matches(&c)
            && self.hours & (1 << c.hour) != 0
            && self.minutes & (1 << c.minute) != 0
    }

    /// The first firing strictly after `t` (a whole minute), or `None` if
    /// there is none within [`MAX_SEARCH_DAYS`] days or before `u64::MAX`.
    pub fn next_after(&self, t: SimTime) -> Option<SimTime> {
        let limit = t.0.saturating_add(MAX_SEARCH_DAYS * DAY);
        // The next minute boundary strictly after t.
        let mut at = (t.0 / MINUTE).checked_add(1)?.checked_mul(MINUTE)?;
        while at <= limit {
            let c = SimTime(at).civil();
            // Skip a whole month, day or hour at a time when it cannot match.
            at = if self.months & (1 << c.month) == 0 {
                let (y, m) = if c.month == 12 { (c.year + 1, 1) } else { (c.year, c.month + 1) };
                let days = u64::try_from(days_from_civil(y, m, 1)).ok()?;
                days.checked_mul(DAY)?
            } else if !self.day_matches(&c) {
                (at / DAY).checked_add(1)?.checked_mul(DAY)?
            } else if self.hours & (1 << c.hour) == 0 {
                (at / HOUR).checked_add(1)?.checked_mul(HOUR)?
            } else if self.minutes & (1 << c.minute) == 0 {
                at.checked_add(MINUTE)?
            } else {
                return Some(SimTime(at));
            };
        }
        None
    }

    /// Every firing in `(from, to]`, in order, computed lazily: unlike
    /// [`due_between`] there is no limit on the count.
    pub fn firings_between(&self, from: SimTime, to: SimTime) -> impl Iterator<Item = SimTime> + '_ {
        let mut t = from;
        std::iter::from_fn(move || {
            let next = self.next_after(t).filter(|&n| n <= to)?;
            t = next;
            Some(next)
        })
    }

    /// How many firings fall in `(from, to]`. For a schedule that
    /// restricts only the minute (hour, day, month and weekday are `*`),
    /// this is arithmetic: each matching minute fires once an hour.
    /// Otherwise the firings are visited one by one (lazily, nothing held).
    pub fn count_between(&self, from: SimTime, to: SimTime) -> u64 {
        let every_hour = self.hours == all_bits(0, 23) as u32
            && u64::from(self.days) == all_bits(1, 31)
            && self.months == all_bits(1, 12) as u16
            && self.weekdays == 0x7f;
        if to <= from {
            return 0;
        }
        if !every_hour {
            return self.firings_between(from, to).count() as u64;
        }
        // Firings of minute m are the times m * 60 + k * HOUR; the count in
        // (from, to] is the difference of two floors (in i128: no overflow,
        // and from < m * 60 floors below zero correctly).
        let floor = |t: u64, m: u64| (i128::from(t) - i128::from(m * MINUTE)).div_euclid(i128::from(HOUR));
        let mut count: i128 = 0;
        for m in (0..60u64).filter(|m| self.minutes & (1 << m) != 0) {
            // The last whole minute that fits in a u64 bounds the firings,
            // as next_after does.
            count += floor(to.0.min(u64::MAX / MINUTE * MINUTE), m) - floor(from.0, m);
        }
        u64::try_from(count.max(0)).unwrap_or(u64::MAX)
    }

    /// The schedule as parsed, fields separated by single spaces.
    pub fn as_str(&self) -> &str {
        &self.spec
    }
}

impl FromStr for CronSchedule {
    type Err = CronError;

    fn from_str(s: &str) -> Result<CronSchedule, CronError> {
        CronSchedule::parse(s)
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

/// Every firing time of `schedule` in `(from, to]`, in order.
///
/// # Errors
/// [`CronErrorKind::TooManyFirings`] if there are more than [`MAX_DUE`]
/// (nothing past the limit is computed).
pub fn due_between(schedule: &CronSchedule, from: SimTime, to: SimTime) -> Result<Vec<SimTime>, CronError> {
    let mut out = Vec::new();
    for next in schedule.firings_between(from, to) {
        if out.len() == MAX_DUE {
            return Err(CronError::TooManyFirings { spec: schedule.spec.clone(), limit: MAX_DUE, from, to });
        }
        out.push(next);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> SimTime {
        SimTime::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn far_future_does_not_panic() {
        let end = SimTime(u64::MAX);
        let _ = end.rfc3339();
        let _ = end.ctime();
        let every = CronSchedule::parse("* * * * *").unwrap();
        assert_eq!(every.next_after(end), None);
        // The last whole minute that fits is still found.
        let last = SimTime(u64::MAX / 60 * 60);
        assert_eq!(every.next_after(SimTime(u64::MAX - 30)), Some(last));
        assert_eq!(every.next_after(last), None);
        assert!(due_between(&every, SimTime(u64::MAX - 600), end).is_ok());
    }

    #[test]
    fn day_of_week_seven_is_sunday() {
        let a = CronSchedule::parse("0 0 * * 7").unwrap();
        let b = CronSchedule::parse("0 0 * * 0").unwrap();
        assert_eq!(a.weekdays, b.weekdays);
        // 2026-01-04 is a Sunday.
        assert_eq!(a.next_after(SimTime::START), Some(t("2026-01-04T00:00:00Z")));
    }

    #[test]
    fn counting_agrees_with_visiting() {
        let hourly = CronSchedule::parse(AUTO_BACKUP).unwrap();
        let twice = CronSchedule::parse("1,31 * * * *").unwrap();
        let nightly = CronSchedule::parse("0 3 * * *").unwrap();
        let start = SimTime::START;
        for s in [&hourly, &twice, &nightly] {
            for (a, b) in [(0, 0), (0, 59), (0, 60), (0, 61), (59, 3661), (61, 7 * DAY + 5), (3600, 3660)] {
                let (from, to) = (SimTime(start.0 + a), SimTime(start.0 + b));
                assert_eq!(s.count_between(from, to), s.firings_between(from, to).count() as u64, "{s} {a}..{b}");
            }
        }
        // A hundred million days of hourly runs, counted without visiting them.
        let to = SimTime(start.0 + 100_000_000 * DAY);
        assert_eq!(hourly.count_between(start, to), 2_400_000_000);
        let (late, end) = (SimTime(u64::MAX - 7300), SimTime(u64::MAX));
        assert_eq!(hourly.count_between(late, end), hourly.firings_between(late, end).count() as u64);
    }

    #[test]
    fn next_after_skips_quickly_to_rare_dates() {
        let leap = CronSchedule::parse("30 12 29 2 *").unwrap();
        assert_eq!(leap.next_after(t("2096-03-01T00:00:00Z")), Some(t("2104-02-29T12:30:00Z")));
        assert_eq!(CronSchedule::parse("0 0 31 2 *").unwrap().next_after(SimTime::START), None);
    }
}
