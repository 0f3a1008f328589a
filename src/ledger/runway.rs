//! Runway (issue 26): how long an account's credits last at its burn rate, and how many expire
//! before that rate would spend them. A projection, not a posting: no credits move, so the only
//! exactness it owes is a stated rounding (run-out to the nearest second, credits to the nearest
//! micro-credit: the rate is exact, but a rate like 10 a day is a repeating decimal).
//!
//! The walk: from now to a horizon, credits leave the lots at the burn rate in the program's
//! order of consumption (`ConsumptionOrder::compare`, the order every spend takes), lots that
//! start later join at their start, and what a lot still holds when it expires is counted as
//! expiring unused. The day's free credits are left out: they renew every day and never carry,
//! so they neither lengthen the runway nor expire "unused" in a way anyone could act on.

use crate::ledger::{ConsumptionOrder, Credits, Lot, LotSource};
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// How far ahead the walk looks: a run-out later than this is reported as none.
pub const HORIZON_DAYS: i64 = 5 * 365;

/// The window the recent-spending burn rate is averaged over.
pub const BURN_WINDOW_DAYS: i64 = 7;

/// The walk's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// When the spendable credits are used up at the rate: `None` when the rate is zero or the
    /// instant lies past the horizon. Credits that only start later do not fill a gap: the
    /// run-out is the first instant nothing is left to spend.
    pub runs_out_at: Option<DateTime<Utc>>,
    /// Credits that expire before the rate reaches them, per expiry instant, soonest first (up
    /// to the run-out, or the horizon when there is none).
    pub expiring_unused: Vec<(DateTime<Utc>, Credits)>,
}

impl Projection {
    /// The credits that expire unused, in all.
    pub fn expiring_unused_total(&self) -> Credits {
        self.expiring_unused.iter().map(|(_, c)| *c).sum()
    }
}

/// The burn rate of `spent` credits over the averaging window, in credits an hour.
pub fn recent_rate(spent: Credits) -> Decimal {
    spent.to_decimal() / Decimal::from(BURN_WINDOW_DAYS * 24)
}

/// Projects `lots` (an account's open lots, in any order; spent, expired and daily-free ones are
/// skipped) forward from `now` at `per_hour` credits an hour (negative counts as zero).
pub fn project(lots: &[Lot], order: &ConsumptionOrder, per_hour: Decimal, now: DateTime<Utc>) -> Projection {
    let horizon = now + Duration::days(HORIZON_DAYS);
    // Micro-credits a second, kept exact as a decimal: a rate of 1 credit a day is 11.574... a
    // second, and rounding it each step would drift over a long walk.
    let per_second = per_hour.max(Decimal::ZERO) * Decimal::from(crate::ledger::amount::MICROS_PER_CREDIT) / Decimal::from(3600);
    let mut pool: Vec<(&Lot, Decimal)> = lots
        .iter()
        .filter(|l| l.source != LotSource::DailyFree && !l.remaining.is_zero() && !l.is_expired(now))
        .map(|l| (l, Decimal::from(l.remaining.micros())))
        .collect();
    pool.sort_by(|(a, _), (b, _)| order.compare(a, b));
    let starts = |lot: &Lot| lot.effective_at.filter(|at| *at > now);
    let mut expiring_unused: Vec<(DateTime<Utc>, Credits)> = Vec::new();
    let mut t = now;
    loop {
        let next = pool
            .iter()
            .flat_map(|(l, _)| [l.expires_at, starts(l)])
            .flatten()
            .filter(|at| *at > t)
            .min()
            .map_or(horizon, |at| at.min(horizon));
        let active = |lot: &Lot| starts(lot).is_none_or(|at| at <= t);
        if !per_second.is_zero() {
            let left: Decimal = pool.iter().filter(|(l, _)| active(l)).map(|(_, r)| *r).sum();
            let need = per_second * seconds(next - t);
            if need >= left {
                // Rounded, not floored: a rate like 10 a day is a repeating decimal, and the quotient of
                // an exact 10 days can come out a hair under 864000 s.
                let lasts = (left / per_second).round().to_i64().unwrap_or(i64::MAX);
                let at = t.checked_add_signed(Duration::seconds(lasts)).filter(|at| *at <= horizon);
                return Projection { runs_out_at: at, expiring_unused };
            }
            let mut need = need;
            for (_, remaining) in pool.iter_mut().filter(|(l, _)| active(l)) {
                let take = need.min(*remaining);
                *remaining -= take;
                need -= take;
                if need.is_zero() {
                    break;
                }
            }
        }
        if next >= horizon {
            return Projection { runs_out_at: None, expiring_unused };
        }
        t = next;
        let unused: Decimal = pool.iter().filter(|(l, _)| l.expires_at.is_some_and(|at| at <= t)).map(|(_, r)| *r).sum();
        let unused = Credits::from_micros(unused.round().to_i64().expect("a lot's credits fit"));
        if !unused.is_zero() {
            expiring_unused.push((t, unused));
        }
        pool.retain(|(l, r)| l.expires_at.is_none_or(|at| at > t) && !r.is_zero());
    }
}

fn seconds(d: Duration) -> Decimal {
    Decimal::from(d.num_microseconds().expect("the horizon bounds every step")) / Decimal::from(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{LotClass, Priority};

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z").unwrap().to_utc()
    }

    fn order() -> ConsumptionOrder {
        ConsumptionOrder::new(vec![vec![LotClass::Free, LotClass::Promotional], vec![LotClass::Paid]]).unwrap()
    }

    fn lot(id: i64, class: LotClass, credits: i64, expires_in_days: Option<i64>) -> Lot {
        Lot {
            id,
            class,
            source: if class == LotClass::Paid { LotSource::Purchase } else { LotSource::Coupon },
            granted: Credits::from_whole(credits),
            remaining: Credits::from_whole(credits),
            granted_at: t0() - Duration::days(1),
            expires_at: expires_in_days.map(|d| t0() + Duration::days(d)),
            priority: Priority::DEFAULT,
            effective_at: None,
            features: None,
        }
    }

    fn per_day(credits: i64) -> Decimal {
        Decimal::from(credits) / Decimal::from(24)
    }

    #[test]
    fn credits_that_never_expire_last_balance_over_rate() {
        let p = project(&[lot(1, LotClass::Paid, 100, None)], &order(), per_day(10), t0());
        assert_eq!(p.runs_out_at, Some(t0() + Duration::days(10)));
        assert!(p.expiring_unused.is_empty());
    }

    #[test]
    fn no_burn_no_run_out_and_every_expiring_credit_is_unused() {
        let lots = [lot(1, LotClass::Paid, 100, None), lot(2, LotClass::Promotional, 30, Some(5))];
        let p = project(&lots, &order(), Decimal::ZERO, t0());
        assert_eq!(p.runs_out_at, None);
        assert_eq!(p.expiring_unused, vec![(t0() + Duration::days(5), Credits::from_whole(30))]);
    }

    #[test]
    fn what_the_rate_cannot_reach_before_expiry_expires_unused_and_shortens_the_runway() {
        // 10 a day from the promotional lot first (its tier comes first): 50 of its 80 are spent
        // by day 5, when the other 30 expire; the 100 paid then last 10 days more.
        let lots = [lot(1, LotClass::Paid, 100, None), lot(2, LotClass::Promotional, 80, Some(5))];
        let p = project(&lots, &order(), per_day(10), t0());
        assert_eq!(p.expiring_unused, vec![(t0() + Duration::days(5), Credits::from_whole(30))]);
        assert_eq!(p.runs_out_at, Some(t0() + Duration::days(15)));
        assert_eq!(p.expiring_unused_total(), Credits::from_whole(30));
    }

    #[test]
    fn the_order_of_consumption_decides_what_is_left_to_expire() {
        // Paid first here: the expiring promotional lot waits behind it and expires whole.
        let paid_first = ConsumptionOrder::new(vec![vec![LotClass::Paid], vec![LotClass::Free, LotClass::Promotional]]).unwrap();
        let lots = [lot(1, LotClass::Paid, 100, None), lot(2, LotClass::Promotional, 80, Some(5))];
        let p = project(&lots, &paid_first, per_day(10), t0());
        assert_eq!(p.expiring_unused, vec![(t0() + Duration::days(5), Credits::from_whole(80))]);
        assert_eq!(p.runs_out_at, Some(t0() + Duration::days(10)));
    }

    #[test]
    fn upcoming_credits_join_at_their_start_but_do_not_fill_a_gap_before_it() {
        let mut later = lot(2, LotClass::Paid, 50, None);
        later.effective_at = Some(t0() + Duration::days(3));
        let lots = [lot(1, LotClass::Paid, 20, None), later.clone()];
        // 20 at 10 a day run out on day 2, before the 50 start on day 3.
        let p = project(&lots, &order(), per_day(10), t0());
        assert_eq!(p.runs_out_at, Some(t0() + Duration::days(2)));
        // 40 last to day 4: the 50 joined on day 3 carry on 5 days more.
        let lots = [lot(1, LotClass::Paid, 40, None), later];
        let p = project(&lots, &order(), per_day(10), t0());
        assert_eq!(p.runs_out_at, Some(t0() + Duration::days(9)));
    }

    #[test]
    fn daily_free_spent_and_expired_lots_are_left_out() {
        let mut daily = lot(1, LotClass::Free, 10, Some(1));
        daily.source = LotSource::DailyFree;
        let mut spent = lot(2, LotClass::Paid, 10, None);
        spent.remaining = Credits::ZERO;
        let expired = lot(3, LotClass::Paid, 10, Some(-1));
        let p = project(&[daily, spent, expired], &order(), per_day(10), t0());
        assert_eq!(p.runs_out_at, Some(t0()));
        assert!(p.expiring_unused.is_empty());
    }

    #[test]
    fn a_run_out_past_the_horizon_is_none_and_rounding_is_down_to_the_second() {
        let p = project(&[lot(1, LotClass::Paid, 1_000_000, None)], &order(), per_day(1), t0());
        assert_eq!(p.runs_out_at, None);
        // 1 credit at 7 an hour: 514.28... s, to the nearest second.
        let p = project(&[lot(1, LotClass::Paid, 1, None)], &order(), Decimal::from(7), t0());
        assert_eq!(p.runs_out_at, Some(t0() + Duration::seconds(514)));
    }

    #[test]
    fn the_recent_rate_is_the_window_average() {
        assert_eq!(recent_rate(Credits::from_whole(168)), Decimal::ONE);
    }
}
