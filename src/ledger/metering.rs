//! When metered usage is charged (domain.md §4, arkain), as pure rules: how running time splits
//! into lines per UTC day, and what a settlement takes when it exceeds the balance.

use crate::ledger::Credits;
use crate::ledger::amount::{AmountError, split_plain_decimal};
use crate::ledger::time::next_day_start;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;

/// Decimal places of a measured quantity: storage in GB is exact to the byte (1 GB = 10^9 bytes).
pub const QUANTITY_PLACES: usize = 9;
/// Digits before the point of a measured quantity: enough for 10^15 bytes, and with
/// [`QUANTITY_PLACES`] still within a decimal's 28 exact digits.
pub const QUANTITY_DIGITS: usize = 16;
/// The API's text form of a measured quantity, as a pattern for people.
pub const QUANTITY_PATTERN: &str = r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,9})?$";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{0}")]
    Malformed(&'static str),
    #[error("a quantity has at most {QUANTITY_PLACES} decimal places")]
    TooPrecise,
    #[error("a quantity has at most {QUANTITY_DIGITS} digits before its point")]
    TooLarge,
}

/// Parses the API's text form of a measured quantity (GB, bytes): [`QUANTITY_PATTERN`], the
/// grammar of credit amounts with finer places. Each use checks its own range and unit (bytes
/// are whole).
pub fn parse_quantity(text: &str) -> Result<Decimal, QuantityError> {
    let (whole, fraction) = split_plain_decimal(text, QUANTITY_PLACES).map_err(|e| match e {
        AmountError::Malformed(why) => QuantityError::Malformed(why),
        _ => QuantityError::TooPrecise,
    })?;
    if whole.len() > QUANTITY_DIGITS {
        return Err(QuantityError::TooLarge);
    }
    // At most 25 digits: exact in an i128 and in a decimal's 96-bit mantissa.
    let mantissa = whole.bytes().chain(fraction.bytes()).fold(0i128, |n, b| n * 10 + i128::from(b - b'0'));
    Decimal::try_from_i128_with_scale(mantissa, fraction.len() as u32).map_err(|_| QuantityError::TooLarge)
}

/// What a settlement was triggered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Trigger {
    /// A container stopped: its time, add-on, and the account's storage and traffic so far.
    Stop,
    /// A container started: the storage used while it was stopped.
    Start,
    /// The 1st of the month: everything accrued by every container.
    Monthly,
    /// A plan change: everything accrued so far, at the old plan's quota.
    PlanChange,
    /// One AI use, charged as it happens.
    Ai,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Stop => "stop",
            Trigger::Start => "start",
            Trigger::Monthly => "monthly",
            Trigger::PlanChange => "plan_change",
            Trigger::Ai => "ai",
        }
    }
}

/// `[start, end)` cut at each UTC midnight, so each container line belongs to one day (the usage
/// page shows a container's logs per day).
pub fn day_segments(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut segments = Vec::new();
    let mut from = start;
    while from < end {
        let to = next_day_start(from).min(end);
        segments.push((from, to));
        from = to;
    }
    segments
}

/// The UTC day a line of `[start, end)` belongs to: the day of its last instant.
pub fn line_day(start: DateTime<Utc>, end: DateTime<Utc>) -> NaiveDate {
    if end > start { (end - Duration::microseconds(1)).date_naive() } else { end.date_naive() }
}

/// Whole seconds of `[start, end)`; instants are stored to the microsecond, and time is charged
/// per second, so the fraction is carried, not dropped: callers move `billed_until` by whole
/// seconds only.
pub fn whole_seconds(start: DateTime<Utc>, end: DateTime<Utc>) -> u64 {
    u64::try_from((end - start).num_seconds()).unwrap_or(0)
}

/// What a settlement of `total` takes from an account that can spend `available`: all of it
/// when it can, otherwise everything there is, and the rest is uncollected usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collection {
    pub charged: Credits,
    pub uncollected: Credits,
}

pub fn collect(total: Credits, available: Credits) -> Collection {
    let charged = total.min(available);
    Collection { charged, uncollected: total.checked_sub(charged).expect("charged <= total") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_text_follows_the_grammar() {
        let parsed = |s: &str| parse_quantity(s).map(|d| d.to_string());
        for (text, shown) in
            [("0", "0"), ("1", "1"), ("6.5", "6.5"), ("0.000000001", "0.000000001"), ("1000000000000000", "1000000000000000")]
        {
            assert_eq!(parsed(text), Ok(shown.to_string()), "{text:?}");
        }
        assert_eq!(parsed("9999999999999999.999999999"), Ok("9999999999999999.999999999".to_string()), "the widest is exact");
        for text in ["", "01", "1.", ".5", "1_000", "+5", "-1", "1e3", " 1", "1,5", "NaN"] {
            assert!(matches!(parse_quantity(text), Err(QuantityError::Malformed(_))), "{text:?}");
        }
        assert_eq!(parse_quantity("0.0000000001"), Err(QuantityError::TooPrecise));
        assert_eq!(parse_quantity("10000000000000000"), Err(QuantityError::TooLarge));
    }
    use chrono::TimeZone;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    #[test]
    fn running_time_splits_at_each_utc_midnight() {
        assert_eq!(
            day_segments(at(1, 22, 0), at(3, 1, 30)),
            vec![(at(1, 22, 0), at(2, 0, 0)), (at(2, 0, 0), at(3, 0, 0)), (at(3, 0, 0), at(3, 1, 30))]
        );
        assert_eq!(day_segments(at(1, 10, 0), at(1, 11, 0)), vec![(at(1, 10, 0), at(1, 11, 0))]);
        assert!(day_segments(at(1, 10, 0), at(1, 10, 0)).is_empty());
        assert_eq!(line_day(at(1, 22, 0), at(2, 0, 0)).to_string(), "2026-11-01", "a segment ending at midnight belongs to the day before");
    }

    #[test]
    fn overuse_takes_what_there_is() {
        let c = Credits::from_whole;
        assert_eq!(collect(c(10), c(25)), Collection { charged: c(10), uncollected: Credits::ZERO });
        assert_eq!(collect(c(30), c(25)), Collection { charged: c(25), uncollected: c(5) });
        assert_eq!(collect(c(30), Credits::ZERO), Collection { charged: Credits::ZERO, uncollected: c(30) });
    }
}
