//! Simulated time and the host's cron.
//!
//! Nothing here reads the wall clock: [`SimTime`] is a plain count of
//! seconds since the Unix epoch (UTC, no leap seconds, as `date` sees it on
//! an ESXi host), and a [`Clock`] only moves when it is told to. The civil
//! calendar (proleptic Gregorian) is computed here with Howard Hinnant's
//! `days_from_civil` / `civil_from_days` algorithms, so there is no time
//! zone and no dependency on the machine running the simulation.
//!
//! [`CronSchedule`] is the five-field schedule of a crontab line, as the
//! busybox `crond` of ESXi reads `/var/spool/cron/crontabs/root`
//! (ESXI-BOOT.md 9.3). Promises:
//!
//! - Firings are whole minutes (second 0); [`CronSchedule::matches`] looks
//!   at the minute that contains the given time.
//! - [`CronSchedule::next_after`] is strictly after its argument and
//!   searches a bounded window ([`MAX_SEARCH_DAYS`]): a schedule that can
//!   never fire (`0 0 31 2 *`) gives `None`, not a hang.
//! - [`due_between`] returns every firing in `(from, to]`, in order, or an
//!   error past [`MAX_DUE`] firings; it never allocates without bound.
//! - Everything is a pure function of its arguments.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Seconds in a minute, an hour, a day.
const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

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
struct Civil {
    year: i64,
    /// 1..=12
    month: u32,
    /// 1..=31
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Sunday .. 6 = Saturday
    weekday: u32,
}

/// Days from 1970-01-01 to `year-month-day` (proleptic Gregorian).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
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
    /// A message naming the input when it is not in that form or names a
    /// day that does not exist.
    pub fn parse_rfc3339(s: &str) -> Result<SimTime, String> {
        let bad = |why: &str| format!("Invalid time '{s}': {why} (expected YYYY-MM-DDTHH:MM:SSZ)");
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
        let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
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
    fn civil(self) -> Civil {
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
    /// A message naming the input: empty, a number without a unit, an
    /// unknown, repeated or out-of-order unit, or an overflow.
    pub fn parse_duration(s: &str) -> Result<u64, String> {
        let bad = |why: String| format!("Invalid duration '{s}': {why} (e.g. 90s, 59m, 2h, 1h30m, 3d)");
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
        assert!(e.contains("2026-02-30T00:00:00Z"), "{e}");
        assert!(SimTime::parse_rfc3339("+026-01-01T00:00:00Z").is_err());
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
    fn next_after_skips_quickly_to_rare_dates() {
        let leap = CronSchedule::parse("30 12 29 2 *").unwrap();
        assert_eq!(leap.next_after(t("2096-03-01T00:00:00Z")), Some(t("2104-02-29T12:30:00Z")));
        assert_eq!(CronSchedule::parse("0 0 31 2 *").unwrap().next_after(SimTime::START), None);
    }
}
