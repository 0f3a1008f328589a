//! Where a test clock may be moved and the instants an advance stops at on the way: every UTC
//! midnight it crosses, then its target. The scheduled work is all keyed by UTC days and months
//! (`schedule`), so a stop at each midnight runs each day's and each month's work in its own
//! period, in order, as the workers would have on time; continuous work (expiry, hold
//! deadlines, referral holds, webhook retries) runs at every stop and dates its effects by the
//! instant they fell due, not by the stop.

use crate::ledger::time::{Validity, next_day_start, truncate};
use chrono::{DateTime, Duration, Utc};

/// The longest single advance. A year of stops runs every job a few thousand times; longer
/// journeys take several advances, each of which answers within a request's time.
pub const MAX_ADVANCE_DAYS: i64 = 400;

/// Where an advance goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// To this instant.
    To(DateTime<Utc>),
    /// By this long from the clock's instant ("36 hours", "3 months", "end of month").
    By(Validity),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvanceError {
    #[error("the test clock moves forward only: it stands at {now}, which is not before {to}")]
    NotForward { now: DateTime<Utc>, to: DateTime<Utc> },
    #[error("an advance goes at most {MAX_ADVANCE_DAYS} days at once; advance in several steps")]
    TooFar,
    #[error("advance by a count and unit (\"36 hours\", \"3 days\", \"1 month\") or \"end of month\", not \"never\"")]
    Never,
}

impl Advance {
    /// The instant this advance ends at, from a clock standing at `now`.
    pub fn target(self, now: DateTime<Utc>) -> Result<DateTime<Utc>, AdvanceError> {
        let to = match self {
            Advance::To(to) => truncate(to),
            Advance::By(validity) => validity.expires_at(now).ok_or(AdvanceError::Never)?,
        };
        if to <= now {
            return Err(AdvanceError::NotForward { now, to });
        }
        if to - now > Duration::days(MAX_ADVANCE_DAYS) {
            return Err(AdvanceError::TooFar);
        }
        Ok(to)
    }
}

/// The stops of an advance from `now` to `to` (after `now`): each UTC midnight after `now` and
/// before `to`, in order, then `to` itself.
pub fn stops(now: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut stops = Vec::new();
    let mut next = next_day_start(now);
    while next < to {
        stops.push(next);
        next = next_day_start(next);
    }
    stops.push(to);
    stops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn an_advance_stops_at_every_midnight_it_crosses_then_at_its_target() {
        assert_eq!(
            stops(at("2026-01-30T10:00:00Z"), at("2026-02-01T12:00:00Z")),
            vec![at("2026-01-31T00:00:00Z"), at("2026-02-01T00:00:00Z"), at("2026-02-01T12:00:00Z")]
        );
        // A target on a midnight is stopped at once, not twice.
        assert_eq!(stops(at("2026-01-31T23:00:00Z"), at("2026-02-01T00:00:00Z")), vec![at("2026-02-01T00:00:00Z")]);
        // Within a day: the target only.
        assert_eq!(stops(at("2026-01-31T23:00:00Z"), at("2026-01-31T23:59:59.999999Z")), vec![at("2026-01-31T23:59:59.999999Z")]);
        // Three months: one stop per day, every month's first among them.
        let three = stops(at("2026-01-15T00:00:00Z"), at("2026-04-15T00:00:00Z"));
        assert_eq!(three.len(), 90);
        for first in ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"] {
            assert_eq!(three.iter().filter(|s| **s == at(first)).count(), 1, "{first}");
        }
        assert!(three.windows(2).all(|w| w[0] < w[1]), "in order");
    }

    #[test]
    fn the_clock_moves_forward_only_and_at_most_400_days_at_once() {
        let now = at("2026-01-31T10:00:00Z");
        assert_eq!(Advance::By(Validity::Months(1)).target(now), Ok(at("2026-02-28T10:00:00Z")));
        assert_eq!(Advance::By(Validity::EndOfMonth).target(now), Ok(at("2026-02-01T00:00:00Z")));
        assert_eq!(Advance::To(at("2026-01-31T10:00:00.0000009Z")).target(now), Err(AdvanceError::NotForward { now, to: now }));
        assert!(matches!(Advance::To(at("2026-01-01T00:00:00Z")).target(now), Err(AdvanceError::NotForward { .. })));
        assert_eq!(Advance::By(Validity::Never).target(now), Err(AdvanceError::Never));
        assert_eq!(Advance::By(Validity::Days(400)).target(now), Ok(now + Duration::days(400)));
        assert_eq!(Advance::By(Validity::Days(401)).target(now), Err(AdvanceError::TooFar));
    }
}
