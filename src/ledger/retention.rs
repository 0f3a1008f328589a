//! How long the rows that are not the ledger are kept (issue 19).
//!
//! The ledger (accounts, lots, journal, purchases, reservations) and the claims (the
//! once-per-day markers and streaks) are never purged: they are the record and the rules read
//! them. Everything else is operational and ages out: the scheduler's finished ticks, delivered
//! webhook events (and received Stripe events), market rate snapshots, failed coupon guesses and
//! old period markers of the scheduled jobs (never the latest one of a job, and never inside the catch-up horizon).

use crate::ledger::schedule::MAX_CATCH_UP_DAYS;
use chrono::{DateTime, Duration, Utc};

/// Days each kind of operational row is kept, counted from when it stopped mattering: a tick
/// from when it finished, an event from its delivery, a snapshot or a guess from when it was
/// taken, a period marker from when its run finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub job_ticks_days: u32,
    pub delivered_events_days: u32,
    pub rate_snapshots_days: u32,
    pub coupon_failures_days: u32,
    pub job_markers_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            // A tick says only that the scheduler fired; a week covers any investigation of a
            // missed run, and job_runs keeps the periods' own record.
            job_ticks_days: 7,
            // Long enough to redeliver an event a receiver lost, on request. Received Stripe
            // events are kept as long (Stripe redelivers for 3 days).
            delivered_events_days: 30,
            // A quarter of rate history for charts and disputes about a job's price.
            rate_snapshots_days: 90,
            // Guesses are throttled over 15 minutes; a week keeps the evidence of an attack.
            coupon_failures_days: 7,
            // Three months of run history; at least the catch-up horizon (checked below).
            job_markers_days: 90,
        }
    }
}

/// The instants before which each kind of row may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    pub job_ticks: DateTime<Utc>,
    pub delivered_events: DateTime<Utc>,
    pub rate_snapshots: DateTime<Utc>,
    pub coupon_failures: DateTime<Utc>,
    pub job_markers: DateTime<Utc>,
}

/// The longest any retention may be: ten years.
pub const MAX_RETENTION_DAYS: u32 = 3650;

impl Retention {
    /// Refuses a retention of zero days or past ten years, and period markers kept for less than
    /// the catch-up horizon: a marker purged inside it would make a missed day run twice.
    pub fn check(&self) -> Result<(), String> {
        let all = [
            ("retain_job_ticks_days", self.job_ticks_days),
            ("retain_delivered_events_days", self.delivered_events_days),
            ("retain_rate_snapshots_days", self.rate_snapshots_days),
            ("retain_coupon_failures_days", self.coupon_failures_days),
            ("retain_job_markers_days", self.job_markers_days),
        ];
        if let Some((name, _)) = all.iter().find(|(_, days)| !(1..=MAX_RETENTION_DAYS).contains(days)) {
            return Err(format!("{name} must be between 1 and {MAX_RETENTION_DAYS}"));
        }
        if i64::from(self.job_markers_days) < MAX_CATCH_UP_DAYS {
            return Err(format!("retain_job_markers_days must be at least {MAX_CATCH_UP_DAYS}, the catch-up horizon"));
        }
        Ok(())
    }

    pub fn cutoffs(&self, now: DateTime<Utc>) -> Cutoffs {
        let before = |days: u32| now - Duration::days(i64::from(days));
        Cutoffs {
            job_ticks: before(self.job_ticks_days),
            delivered_events: before(self.delivered_events_days),
            rate_snapshots: before(self.rate_snapshots_days),
            coupon_failures: before(self.coupon_failures_days),
            job_markers: before(self.job_markers_days),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_kept_at_least_the_catch_up_horizon() {
        let short = Retention { job_markers_days: 30, ..Retention::default() };
        assert!(short.check().unwrap_err().contains("at least 31"));
        assert!(Retention { job_markers_days: 31, ..Retention::default() }.check().is_ok());
    }

    #[test]
    fn zero_and_past_ten_years_are_refused() {
        assert!(Retention { job_ticks_days: 0, ..Retention::default() }.check().unwrap_err().contains("retain_job_ticks_days"));
        let long = Retention { delivered_events_days: MAX_RETENTION_DAYS + 1, ..Retention::default() };
        assert!(long.check().unwrap_err().contains("retain_delivered_events_days"));
        assert!(Retention::default().check().is_ok());
    }

    #[test]
    fn cutoffs_count_whole_days_back_from_now() {
        let now: DateTime<Utc> = "2026-12-02T10:00:00Z".parse().unwrap();
        let cutoffs = Retention::default().cutoffs(now);
        assert_eq!(cutoffs.job_ticks, "2026-11-25T10:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(cutoffs.delivered_events, "2026-11-02T10:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(cutoffs.job_markers, "2026-09-03T10:00:00Z".parse::<DateTime<Utc>>().unwrap());
    }
}
