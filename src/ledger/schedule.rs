//! Which periods of a scheduled job are due: the rules of catching up after downtime, with no
//! clock or database in them.

use crate::ledger::time::{month_key, next_day_start, next_month_start};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// Once per UTC day, from 00:00.
    Daily,
    /// Once per UTC month, from the 1st 00:00.
    Monthly,
}

/// One period of a job: its key (unique per job) and when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub key: String,
    pub starts_at: DateTime<Utc>,
}

/// The most daily periods caught up after downtime; older ones are skipped (the work they stood
/// for, such as writing off expired credits, is done by the first caught-up run anyway).
pub const MAX_CATCH_UP_DAYS: i64 = 31;

fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

impl Cadence {
    pub fn slot_at(self, instant: DateTime<Utc>) -> Slot {
        match self {
            Cadence::Daily => Slot { key: instant.date_naive().to_string(), starts_at: day_start(instant.date_naive()) },
            Cadence::Monthly => {
                Slot { key: month_key(instant), starts_at: day_start(instant.date_naive().with_day(1).expect("day 1 exists")) }
            }
        }
    }

    pub fn parse_key(self, key: &str) -> Option<DateTime<Utc>> {
        match self {
            Cadence::Daily => key.parse::<NaiveDate>().ok().map(day_start),
            Cadence::Monthly => format!("{key}-01").parse::<NaiveDate>().ok().map(day_start),
        }
    }

    /// When the period after the one containing `now` starts.
    pub fn next_start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Cadence::Daily => next_day_start(now),
            Cadence::Monthly => next_month_start(now),
        }
    }

    /// The periods due at `now`, oldest first, given the start of the last one done. Daily jobs
    /// catch up every missed day (at most `MAX_CATCH_UP_DAYS`); a monthly job only runs the
    /// current month: a missed month's plan credits would already have ended.
    pub fn due(self, last_done: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Vec<Slot> {
        let current = self.slot_at(now);
        match (self, last_done) {
            (_, Some(done)) if done >= current.starts_at => Vec::new(),
            (Cadence::Daily, Some(done)) => {
                let oldest = (done + Duration::days(1)).max(current.starts_at - Duration::days(MAX_CATCH_UP_DAYS - 1));
                let days = (current.starts_at - oldest).num_days();
                (0..=days).map(|n| self.slot_at(oldest + Duration::days(n))).collect()
            }
            _ => vec![current],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap()
    }

    #[test]
    fn daily_jobs_catch_up_missed_days_in_order() {
        let done = Cadence::Daily.parse_key("2026-02-26");
        let keys: Vec<String> = Cadence::Daily.due(done, at(2026, 3, 1, 0, 0, 0)).into_iter().map(|s| s.key).collect();
        assert_eq!(keys, ["2026-02-27", "2026-02-28", "2026-03-01"], "three missed days across a 28-day month end");
        assert!(Cadence::Daily.due(Cadence::Daily.parse_key("2026-03-01"), at(2026, 3, 1, 23, 59, 59)).is_empty());
        assert_eq!(Cadence::Daily.due(None, at(2026, 3, 1, 0, 0, 0)).len(), 1);
        let long = Cadence::Daily.due(Cadence::Daily.parse_key("2025-01-01"), at(2026, 3, 1, 0, 0, 0));
        assert_eq!(long.len() as i64, MAX_CATCH_UP_DAYS);
        assert_eq!(long.last().unwrap().key, "2026-03-01");
    }

    #[test]
    fn monthly_jobs_run_the_current_month_once() {
        let feb = Cadence::Monthly.parse_key("2026-02");
        assert_eq!(Cadence::Monthly.due(feb, at(2026, 2, 28, 23, 59, 59)), Vec::new());
        let due = Cadence::Monthly.due(feb, at(2026, 3, 1, 0, 0, 0));
        assert_eq!(due, vec![Slot { key: "2026-03".into(), starts_at: at(2026, 3, 1, 0, 0, 0) }]);
        assert_eq!(
            Cadence::Monthly.due(Cadence::Monthly.parse_key("2025-11"), at(2026, 3, 15, 0, 0, 0)).len(),
            1,
            "only the current month"
        );
        assert_eq!(Cadence::Monthly.next_start(at(2026, 12, 31, 23, 59, 59)), at(2027, 1, 1, 0, 0, 0));
    }
}
