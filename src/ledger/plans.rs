//! Plan credit periods: when a plan's credits are granted and when they expire.
//!
//! - `CalendarMonth` (arkain): one grant per calendar month (UTC), expiring at the month's end.
//! - `FromRecharge` (carat): a subscription renews every calendar month from the day it started,
//!   counted from that original anchor (Jan 31 -> Feb 28 -> Mar 31), each grant valid until the
//!   next renewal.

use crate::ledger::time::{month_key, next_month_start};
use chrono::{DateTime, Datelike, Months, NaiveTime, Utc};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanPeriod {
    CalendarMonth,
    FromRecharge,
}

/// One period of a plan's credits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Unique per plan and period: what makes a grant happen once.
    pub key: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// The most renewals looked through: a century of months.
const MAX_RENEWALS: u32 = 1200;

/// A plan grant's key, as its claim and its lot's `origin_id` carry it: the plan's code, then
/// the period's key (plan codes have no `:`, so the first one splits them again).
pub fn grant_key(plan_code: &str, period_key: &str) -> String {
    format!("{plan_code}:{period_key}")
}

/// The plan code and period key of a `grant_key`.
pub fn split_grant_key(key: &str) -> Option<(&str, &str)> {
    key.split_once(':')
}

impl PlanPeriod {
    /// The period containing `now` for a plan that started at `anchor`.
    pub fn period_at(self, anchor: DateTime<Utc>, now: DateTime<Utc>) -> Period {
        match self {
            PlanPeriod::CalendarMonth => {
                let starts_at = now.date_naive().with_day(1).expect("day 1 exists").and_time(NaiveTime::MIN).and_utc();
                Period { key: month_key(now), starts_at, ends_at: next_month_start(now) }
            }
            PlanPeriod::FromRecharge => {
                let renewal = |n: u32| anchor.checked_add_months(Months::new(n)).expect("renewals stay within chrono's range");
                // Months between the two, then step back while the renewal is still ahead.
                let months = (now.year() - anchor.year()) * 12 + now.month() as i32 - anchor.month() as i32;
                let mut n = months.clamp(0, MAX_RENEWALS as i32) as u32;
                while n > 0 && renewal(n) > now {
                    n -= 1;
                }
                Period { key: format!("{}#{n}", anchor.timestamp()), starts_at: renewal(n), ends_at: renewal(n + 1) }
            }
        }
    }

    /// The end of the `n`th period after `period` (1: the end of the next one), counted on the
    /// same anchor, so a subscription's months do not drift.
    pub fn end_after(self, anchor: DateTime<Utc>, period: &Period, n: u32) -> DateTime<Utc> {
        (0..n).fold(period.ends_at, |end, _| self.period_at(anchor, end).ends_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn calendar_months_turn_at_utc_midnight_of_the_first() {
        let anchor = at(2025, 6, 15, 0);
        let last = at(2026, 2, 28, 23) + Duration::minutes(59) + Duration::seconds(59);
        let feb = PlanPeriod::CalendarMonth.period_at(anchor, last);
        assert_eq!((feb.key.as_str(), feb.starts_at, feb.ends_at), ("2026-02", at(2026, 2, 1, 0), at(2026, 3, 1, 0)));
        let mar = PlanPeriod::CalendarMonth.period_at(anchor, at(2026, 3, 1, 0));
        assert_eq!((mar.key.as_str(), mar.ends_at), ("2026-03", at(2026, 4, 1, 0)));
    }

    #[test]
    fn renewals_count_from_the_original_anchor_without_drift() {
        let anchor = at(2026, 1, 31, 10);
        let p = |now| PlanPeriod::FromRecharge.period_at(anchor, now);
        assert_eq!((p(anchor).starts_at, p(anchor).ends_at), (anchor, at(2026, 2, 28, 10)));
        let before = p(at(2026, 2, 28, 10) - Duration::microseconds(1));
        assert_eq!(before.starts_at, anchor);
        let second = p(at(2026, 2, 28, 10));
        assert_eq!((second.starts_at, second.ends_at), (at(2026, 2, 28, 10), at(2026, 3, 31, 10)));
        assert_ne!(before.key, second.key);
        let leap = PlanPeriod::FromRecharge.period_at(at(2028, 1, 31, 0), at(2028, 2, 29, 0));
        assert_eq!(leap.ends_at, at(2028, 3, 31, 0));
        // Thirty-day month.
        let april = PlanPeriod::FromRecharge.period_at(at(2026, 3, 31, 0), at(2026, 4, 30, 0));
        assert_eq!((april.starts_at, april.ends_at), (at(2026, 4, 30, 0), at(2026, 5, 31, 0)));
    }

    #[test]
    fn periods_after_one_count_on_its_anchor() {
        let anchor = at(2026, 1, 31, 10);
        let first = PlanPeriod::FromRecharge.period_at(anchor, anchor);
        assert_eq!(PlanPeriod::FromRecharge.end_after(anchor, &first, 0), at(2026, 2, 28, 10));
        // Feb 28 -> Mar 31 -> Apr 30: from the anchor, never Mar 28.
        assert_eq!(PlanPeriod::FromRecharge.end_after(anchor, &first, 1), at(2026, 3, 31, 10));
        assert_eq!(PlanPeriod::FromRecharge.end_after(anchor, &first, 2), at(2026, 4, 30, 10));
        let january = PlanPeriod::CalendarMonth.period_at(anchor, at(2026, 1, 15, 0));
        assert_eq!(PlanPeriod::CalendarMonth.end_after(anchor, &january, 2), at(2026, 4, 1, 0));
    }

    #[test]
    fn grant_keys_split_back_into_plan_and_period() {
        let key = grant_key("free", "1769853600#3");
        assert_eq!(split_grant_key(&key), Some(("free", "1769853600#3")));
        assert_eq!(split_grant_key("no-plan"), None);
    }
}
