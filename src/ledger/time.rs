//! Instants and validity periods, all in UTC.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveTime, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Instants are kept to the microsecond: PostgreSQL stores no finer, and SQLite must compare the
/// same way.
pub fn truncate(instant: DateTime<Utc>) -> DateTime<Utc> {
    instant.trunc_subsecs(6)
}

/// How long a grant stays valid, counted from its anchor (payment confirmation, claim, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Never,
    Hours(u32),
    Days(u32),
    Months(u32),
    /// Until the end of the anchor's month (UTC): the first instant of the next month.
    EndOfMonth,
}

impl Validity {
    /// The exclusive instant at which a grant anchored at `anchor` expires. Months are calendar
    /// months clamped to the month's end (Jan 31 + 1 month = Feb 28), always counted from the
    /// anchor so that renewals do not drift.
    pub fn expires_at(self, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let anchor = truncate(anchor);
        match self {
            Validity::Never => None,
            Validity::EndOfMonth => Some(next_month_start(anchor)),
            Validity::Hours(h) => Some(anchor + Duration::hours(i64::from(h))),
            Validity::Days(d) => Some(anchor + Duration::days(i64::from(d))),
            Validity::Months(m) => {
                Some(anchor.checked_add_months(Months::new(m)).expect("a validity of a few months stays within chrono's range"))
            }
        }
    }
}

/// The UTC day an instant falls in.
pub fn day_of(instant: DateTime<Utc>) -> NaiveDate {
    instant.date_naive()
}

/// The first instant of the UTC day after `instant`'s.
pub fn next_day_start(instant: DateTime<Utc>) -> DateTime<Utc> {
    let next = day_of(instant).succ_opt().expect("dates stay within chrono's range");
    next.and_time(NaiveTime::MIN).and_utc()
}

/// The first instant of `instant`'s UTC month.
pub fn month_start(instant: DateTime<Utc>) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(instant.year(), instant.month(), 1).expect("the first of a month exists").and_time(NaiveTime::MIN).and_utc()
}

/// The first instant of the UTC month after `instant`'s.
pub fn next_month_start(instant: DateTime<Utc>) -> DateTime<Utc> {
    let (year, month) = if instant.month() == 12 { (instant.year() + 1, 1) } else { (instant.year(), instant.month() + 1) };
    NaiveDate::from_ymd_opt(year, month, 1).expect("the first of a month exists").and_time(NaiveTime::MIN).and_utc()
}

/// A month as a period key, e.g. "2026-02".
pub fn month_key(instant: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", instant.year(), instant.month())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a validity is \"never\", \"end of month\" or a count with a unit: \"168 hours\", \"30 days\", \"1 month\"")]
pub struct ValidityParseError;

/// The largest count accepted in a validity, whatever the unit: a hundred years of months.
const MAX_VALIDITY_COUNT: u32 = 1200;

impl FromStr for Validity {
    type Err = ValidityParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        if s == "never" {
            return Ok(Validity::Never);
        }
        if s == "end of month" {
            return Ok(Validity::EndOfMonth);
        }
        let (count, unit) = s.split_once(' ').ok_or(ValidityParseError)?;
        let count: u32 = count.parse().map_err(|_| ValidityParseError)?;
        if count == 0 || count > MAX_VALIDITY_COUNT * 24 * 31 {
            return Err(ValidityParseError);
        }
        match unit.trim() {
            "hour" | "hours" => Ok(Validity::Hours(count)),
            "day" | "days" if count <= MAX_VALIDITY_COUNT * 31 => Ok(Validity::Days(count)),
            "month" | "months" if count <= MAX_VALIDITY_COUNT => Ok(Validity::Months(count)),
            _ => Err(ValidityParseError),
        }
    }
}

impl Validity {
    /// The form written to stored rows (a coupon's `valid_for`) and hashed into idempotency
    /// requests: always a plural unit ("1 months"), exactly as earlier versions wrote it, so
    /// rows and hashes already stored keep matching. `FromStr` reads it back; people read
    /// `Display`.
    pub fn canonical(&self) -> String {
        match self {
            Validity::Never => "never".to_string(),
            Validity::EndOfMonth => "end of month".to_string(),
            Validity::Hours(n) => format!("{n} hours"),
            Validity::Days(n) => format!("{n} days"),
            Validity::Months(n) => format!("{n} months"),
        }
    }
}

/// For people: "1 month", "2 months", "1 day", "168 hours". `FromStr` reads it back.
impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counted = |f: &mut fmt::Formatter<'_>, n: u32, unit: &str| write!(f, "{n} {unit}{}", if n == 1 { "" } else { "s" });
        match self {
            Validity::Never => write!(f, "never"),
            Validity::EndOfMonth => write!(f, "end of month"),
            Validity::Hours(n) => counted(f, *n, "hour"),
            Validity::Days(n) => counted(f, *n, "day"),
            Validity::Months(n) => counted(f, *n, "month"),
        }
    }
}

/// The canonical form: a serialized validity may end up in a stored row or a hash.
impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.canonical())
    }
}

impl<'de> Deserialize<'de> for Validity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn months_clamp_to_the_month_end_without_drift() {
        let anchor = at(2026, 1, 31, 10);
        assert_eq!(Validity::Months(1).expires_at(anchor), Some(at(2026, 2, 28, 10)));
        assert_eq!(Validity::Months(2).expires_at(anchor), Some(at(2026, 3, 31, 10)));
        assert_eq!(Validity::Months(1).expires_at(at(2028, 1, 31, 0)), Some(at(2028, 2, 29, 0)));
        assert_eq!(Validity::Months(1).expires_at(at(2026, 4, 30, 0)), Some(at(2026, 5, 30, 0)));
    }

    #[test]
    fn days_and_hours_are_exact_durations() {
        assert_eq!(Validity::Days(7).expires_at(at(2026, 3, 1, 0)), Validity::Hours(168).expires_at(at(2026, 3, 1, 0)));
        assert_eq!(Validity::Days(30).expires_at(at(2026, 12, 15, 5)), Some(at(2027, 1, 14, 5)));
        assert_eq!(Validity::Never.expires_at(at(2026, 1, 1, 0)), None);
    }

    #[test]
    fn month_ends_of_every_length() {
        // 28, 29, 30 and 31 days; the last microsecond of the month is still inside it.
        for (y, m, next) in [(2026, 2, (2026, 3)), (2028, 2, (2028, 3)), (2026, 4, (2026, 5)), (2026, 12, (2027, 1))] {
            let start = at(y, m, 1, 0);
            let end = at(next.0, next.1, 1, 0);
            assert_eq!(Validity::EndOfMonth.expires_at(start), Some(end));
            assert_eq!(Validity::EndOfMonth.expires_at(end - Duration::microseconds(1)), Some(end));
            assert_eq!(Validity::EndOfMonth.expires_at(end), Some(next_month_start(end)));
        }
        assert_eq!(month_key(at(2026, 2, 28, 23)), "2026-02");
    }

    #[test]
    fn days_turn_at_utc_midnight() {
        let last_second = at(2026, 12, 31, 23) + Duration::minutes(59) + Duration::seconds(59);
        assert_eq!(day_of(last_second), NaiveDate::from_ymd_opt(2026, 12, 31).unwrap());
        assert_eq!(next_day_start(last_second), at(2027, 1, 1, 0));
        assert_eq!(day_of(at(2027, 1, 1, 0)), NaiveDate::from_ymd_opt(2027, 1, 1).unwrap());
        assert_eq!(next_day_start(at(2027, 1, 1, 0)), at(2027, 1, 2, 0));
    }

    #[test]
    fn parses_and_prints() {
        for s in ["never", "end of month", "168 hours", "30 days", "1 months", "60 days", "1 hour", "1 day"] {
            let v: Validity = s.parse().unwrap();
            assert_eq!(v.to_string().parse::<Validity>().unwrap(), v);
            assert_eq!(v.canonical().parse::<Validity>().unwrap(), v);
        }
        assert_eq!("1 month".parse::<Validity>(), Ok(Validity::Months(1)));
        for bad in ["", "0 days", "-1 days", "1 fortnight", "days", "99999999 months"] {
            assert!(bad.parse::<Validity>().is_err(), "{bad}");
        }
    }

    #[test]
    fn prints_one_unit_in_the_singular() {
        let shown = [
            (Validity::Hours(1), "1 hour"),
            (Validity::Hours(168), "168 hours"),
            (Validity::Days(1), "1 day"),
            (Validity::Days(30), "30 days"),
            (Validity::Months(1), "1 month"),
            (Validity::Months(2), "2 months"),
            (Validity::Never, "never"),
            (Validity::EndOfMonth, "end of month"),
        ];
        for (validity, text) in shown {
            assert_eq!(validity.to_string(), text);
        }
    }

    /// Stored coupons and idempotency hashes hold the form earlier versions wrote: it must not
    /// move with the display.
    #[test]
    fn the_stored_form_is_unchanged() {
        assert_eq!(Validity::Months(1).canonical(), "1 months");
        assert_eq!(Validity::Days(1).canonical(), "1 days");
        assert_eq!(Validity::Hours(1).canonical(), "1 hours");
        assert_eq!(serde_json::to_string(&Validity::Months(1)).unwrap(), "\"1 months\"");
    }

    #[test]
    fn truncates_to_microseconds() {
        let t = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(truncate(t).timestamp_subsec_nanos(), 123_456_000);
    }
}
