//! Rollover of plan credits (issue 25): when a plan lot ends with its period, what is left of it,
//! up to the plan's maximum, carries into a new lot that stays valid for a set number of later
//! periods. A program option per plan (`rollover = { max = "500", periods = 2 }`); without it
//! plan credits end with their period, as before.
//!
//! What carries, and why not more:
//! - only a plan lot, at the end of its own period, and only what remains in it then;
//! - never credits already rolled over: a rollover lot is not a plan lot, so it expires at its
//!   own end. Otherwise a maximum per period would let unused credits live for ever;
//! - never credits a reservation holds at the period's end: they are out of the lot. Given back
//!   after its end they expire, as credits returned to any expired lot do;
//! - never a plan lot whose expiry an operator moved: it no longer ends with its period, and the
//!   operator decided its end;
//! - never a plan lot of a plan the account has left: rollover is a benefit of being on the plan.
//!
//! The carry is a transfer within the account: it mints nothing, so conservation holds with no
//! new term, and the rest of the lot is written off as usual.

use crate::ledger::plans::{Period, PlanPeriod};
use crate::ledger::{Credits, Lot};
use chrono::{DateTime, Duration, Utc};

/// The most later periods carried credits may stay valid for: a year of months.
pub const MAX_ROLLOVER_PERIODS: u32 = 12;

/// A plan's rollover option: at most `max` credits carry from a period, valid until the end of
/// the `periods`th period after it (1: to the end of the next period, with its plan credits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollover {
    pub max: Credits,
    pub periods: u32,
}

impl Rollover {
    pub fn new(max: Credits, periods: u32) -> Result<Rollover, String> {
        if max.is_zero() {
            return Err("rollover.max must be more than 0".into());
        }
        if !(1..=MAX_ROLLOVER_PERIODS).contains(&periods) {
            return Err(format!("rollover.periods must be 1 to {MAX_ROLLOVER_PERIODS}"));
        }
        Ok(Rollover { max, periods })
    }
}

/// What carries over from an ending plan lot: the new lot's amount and expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carry {
    pub amount: Credits,
    pub expires_at: DateTime<Utc>,
}

/// Where a plan lot stands in its account's plan: what the decision needs besides the lot.
#[derive(Debug, Clone, Copy)]
pub struct PlanLot<'a> {
    /// The plan and period the lot was granted for (its grant key, `plans::split_grant_key`).
    pub plan: &'a str,
    pub period_key: &'a str,
    /// The account's plan now, and the anchor its periods count from.
    pub account_plan: &'a str,
    pub anchor: DateTime<Utc>,
    /// How the program's plan periods run.
    pub schedule: PlanPeriod,
}

/// What of `lot` carries over when it ends, under `rule`: none unless it ends exactly with the
/// period it was granted for, on the plan the account is still on; else what remains, at most
/// the maximum, valid until the end of the `rule.periods`th period after.
pub fn carry(rule: Rollover, lot: &Lot, plan_lot: &PlanLot<'_>) -> Option<Carry> {
    if plan_lot.plan != plan_lot.account_plan {
        return None;
    }
    let ends_at = lot.expires_at?;
    // The period whose last instant is just before the lot's end: its own, unless an operator
    // moved the expiry (or the plan's anchor moved since).
    let period: Period = plan_lot.schedule.period_at(plan_lot.anchor, ends_at - Duration::microseconds(1));
    if period.ends_at != ends_at || period.key != plan_lot.period_key {
        return None;
    }
    let amount = lot.remaining.min(rule.max);
    if amount.is_zero() {
        return None;
    }
    Some(Carry { amount, expires_at: plan_lot.schedule.end_after(plan_lot.anchor, &period, rule.periods) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{LotClass, LotSource, Priority};
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn c(n: i64) -> Credits {
        Credits::from_whole(n)
    }

    fn plan_lot(remaining: i64, expires_at: DateTime<Utc>) -> Lot {
        Lot {
            id: 1,
            class: LotClass::Free,
            source: LotSource::MonthlyPlan,
            granted: c(50),
            remaining: c(remaining),
            granted_at: at(2026, 1, 1, 0),
            expires_at: Some(expires_at),
            priority: Priority::DEFAULT,
            effective_at: None,
            features: None,
        }
    }

    const MONTHLY: PlanLot<'static> = PlanLot {
        plan: "free",
        period_key: "2026-01",
        account_plan: "free",
        anchor: chrono::DateTime::UNIX_EPOCH,
        schedule: PlanPeriod::CalendarMonth,
    };

    #[test]
    fn carries_what_remains_up_to_the_maximum_for_the_periods_after() {
        let rule = Rollover::new(c(20), 2).unwrap();
        let under = carry(rule, &plan_lot(12, at(2026, 2, 1, 0)), &MONTHLY);
        assert_eq!(under, Some(Carry { amount: c(12), expires_at: at(2026, 4, 1, 0) }));
        let over = carry(rule, &plan_lot(35, at(2026, 2, 1, 0)), &MONTHLY);
        assert_eq!(over.map(|c| c.amount), Some(c(20)));
        assert_eq!(carry(rule, &plan_lot(0, at(2026, 2, 1, 0)), &MONTHLY), None, "nothing left, nothing carried");
    }

    #[test]
    fn carries_nothing_off_its_own_period_end_or_plan() {
        let rule = Rollover::new(c(20), 1).unwrap();
        // An operator moved the expiry: earlier, later, or to another period's end.
        for moved in [at(2026, 1, 20, 0), at(2026, 2, 3, 0), at(2026, 3, 1, 0)] {
            assert_eq!(carry(rule, &plan_lot(10, moved), &MONTHLY), None, "{moved}");
        }
        let left = PlanLot { account_plan: "membership", ..MONTHLY };
        assert_eq!(carry(rule, &plan_lot(10, at(2026, 2, 1, 0)), &left), None, "a plan the account left");
    }

    #[test]
    fn a_subscription_carries_to_its_renewals_from_the_anchor() {
        let anchor = at(2026, 1, 31, 10);
        let first = PlanPeriod::FromRecharge.period_at(anchor, anchor);
        let plan_lot_of = PlanLot { period_key: &first.key, anchor, schedule: PlanPeriod::FromRecharge, ..MONTHLY };
        let rule = Rollover::new(c(100), 1).unwrap();
        let carried = carry(rule, &plan_lot(40, first.ends_at), &plan_lot_of).unwrap();
        assert_eq!((carried.amount, carried.expires_at), (c(40), at(2026, 3, 31, 10)));
    }

    #[test]
    fn options_are_bounded() {
        assert!(Rollover::new(Credits::ZERO, 1).is_err());
        assert!(Rollover::new(c(1), 0).is_err());
        assert!(Rollover::new(c(1), MAX_ROLLOVER_PERIODS + 1).is_err());
        assert!(Rollover::new(c(1), MAX_ROLLOVER_PERIODS).is_ok());
    }
}
