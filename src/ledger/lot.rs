//! Lots and the order in which they are consumed.

use crate::ledger::amount::Credits;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// What a lot is worth to the user, which decides refunds and the order of consumption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LotClass {
    Paid,
    Promotional,
    Free,
}

impl LotClass {
    pub const ALL: [LotClass; 3] = [LotClass::Paid, LotClass::Promotional, LotClass::Free];

    pub fn as_str(self) -> &'static str {
        match self {
            LotClass::Paid => "paid",
            LotClass::Promotional => "promotional",
            LotClass::Free => "free",
        }
    }
}

impl fmt::Display for LotClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LotClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LotClass::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| format!("unknown lot class {s:?}"))
    }
}

/// Where a lot came from (domain.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LotSource {
    Purchase,
    Subscription,
    MonthlyPlan,
    CheckIn,
    Referral,
    SignUp,
    Coupon,
    Feedback,
    Event,
    FirstPurchaseBonus,
    DailyFree,
    AdReward,
    Lucky,
    ProviderEarnings,
    Adjustment,
    /// A plan lot's unused credits carried into the next periods (`ledger::rollover`).
    Rollover,
}

impl LotSource {
    pub const ALL: [LotSource; 16] = [
        LotSource::Purchase,
        LotSource::Subscription,
        LotSource::MonthlyPlan,
        LotSource::CheckIn,
        LotSource::Referral,
        LotSource::SignUp,
        LotSource::Coupon,
        LotSource::Feedback,
        LotSource::Event,
        LotSource::FirstPurchaseBonus,
        LotSource::DailyFree,
        LotSource::AdReward,
        LotSource::Lucky,
        LotSource::ProviderEarnings,
        LotSource::Adjustment,
        LotSource::Rollover,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LotSource::Purchase => "purchase",
            LotSource::Subscription => "subscription",
            LotSource::MonthlyPlan => "monthly_plan",
            LotSource::CheckIn => "check_in",
            LotSource::Referral => "referral",
            LotSource::SignUp => "sign_up",
            LotSource::Coupon => "coupon",
            LotSource::Feedback => "feedback",
            LotSource::Event => "event",
            LotSource::FirstPurchaseBonus => "first_purchase_bonus",
            LotSource::DailyFree => "daily_free",
            LotSource::AdReward => "ad_reward",
            LotSource::Lucky => "lucky",
            LotSource::ProviderEarnings => "provider_earnings",
            LotSource::Adjustment => "adjustment",
            LotSource::Rollover => "rollover",
        }
    }
}

impl fmt::Display for LotSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LotSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LotSource::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| format!("unknown lot source {s:?}"))
    }
}

/// What the rules need to know about a lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lot {
    pub id: i64,
    pub class: LotClass,
    pub source: LotSource,
    pub granted: Credits,
    pub remaining: Credits,
    pub granted_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// 0 to 100 (`Priority`): within its tier, a lower priority is used first.
    pub priority: Priority,
}

/// A lot's priority within its tier of the order of consumption: 0 to 100, lower used first,
/// before soonest expiry; `DEFAULT` (50) when a grant names none, so lots granted without one
/// keep the order they always had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Priority(u8);

impl Priority {
    pub const DEFAULT: Priority = Priority(50);
    pub const MAX: u8 = 100;

    pub fn new(value: i64) -> Result<Priority, String> {
        match u8::try_from(value) {
            Ok(v) if v <= Priority::MAX => Ok(Priority(v)),
            _ => Err(format!("priority {value} is out of range: 0 to {} (lower is used first)", Priority::MAX)),
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Priority {
        Priority::DEFAULT
    }
}

impl TryFrom<u8> for Priority {
    type Error = String;

    fn try_from(value: u8) -> Result<Priority, String> {
        Priority::new(value.into())
    }
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> u8 {
        p.0
    }
}

impl Lot {
    /// The day's free credits (carat) as a lot granted at `now`: free, ending at the next UTC
    /// midnight, never carried over.
    pub fn of_the_day(id: i64, amount: Credits, now: DateTime<Utc>) -> Lot {
        Lot {
            id,
            class: LotClass::Free,
            source: LotSource::DailyFree,
            granted: amount,
            remaining: amount,
            granted_at: now,
            expires_at: Some(crate::ledger::time::next_day_start(now)),
            priority: Priority::DEFAULT,
        }
    }

    /// Expiry is exclusive: at its expiry instant a lot is already gone.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    pub fn is_spendable(&self, now: DateTime<Utc>) -> bool {
        !self.remaining.is_zero() && !self.is_expired(now)
    }
}

/// The program's order of consumption: ordered tiers of lot classes, then the day's free
/// credits. Within a tier the lowest priority goes first, then the lot that expires first
/// (never-expiring last), then the oldest grant, then the lowest id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumptionOrder {
    tiers: Vec<Vec<LotClass>>,
}

impl ConsumptionOrder {
    /// Every class must appear in exactly one tier, or some credits could never be spent.
    pub fn new(tiers: Vec<Vec<LotClass>>) -> Result<ConsumptionOrder, String> {
        for class in LotClass::ALL {
            let count = tiers.iter().flatten().filter(|c| **c == class).count();
            if count != 1 {
                return Err(format!("class {class} appears {count} times in the order of consumption; it must appear once"));
            }
        }
        Ok(ConsumptionOrder { tiers })
    }

    pub fn tiers(&self) -> &[Vec<LotClass>] {
        &self.tiers
    }

    fn tier_of(&self, class: LotClass) -> usize {
        self.tiers.iter().position(|t| t.contains(&class)).expect("constructor checked every class has a tier")
    }

    pub fn compare(&self, a: &Lot, b: &Lot) -> Ordering {
        let expiry = match (a.expires_at, b.expires_at) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        // The day's free credits (carat) are the last tier of every order: they are "only
        // activated when" everything else is used up (domain.md §4), whatever the tiers say.
        let last = |lot: &Lot| lot.source == LotSource::DailyFree;
        last(a)
            .cmp(&last(b))
            .then(self.tier_of(a.class).cmp(&self.tier_of(b.class)))
            .then(a.priority.cmp(&b.priority))
            .then(expiry)
            .then(a.granted_at.cmp(&b.granted_at))
            .then(a.id.cmp(&b.id))
    }
}

/// One lot's part of a spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Take {
    pub lot_id: i64,
    pub amount: Credits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("insufficient credits: {requested} requested, {available} available")]
pub struct Insufficient {
    pub requested: Credits,
    pub available: Credits,
}

/// Decides which lots pay for `amount` at `now`: all or nothing. Expired and empty lots are
/// skipped, whatever the caller passed in.
pub fn allocate(lots: &[Lot], amount: Credits, order: &ConsumptionOrder, now: DateTime<Utc>) -> Result<Vec<Take>, Insufficient> {
    assert!(!amount.is_zero(), "a spend of zero is rejected before the rules are asked");
    let mut spendable: Vec<&Lot> = lots.iter().filter(|l| l.is_spendable(now)).collect();
    let available: Credits = spendable.iter().map(|l| l.remaining).sum();
    if available < amount {
        return Err(Insufficient { requested: amount, available });
    }
    spendable.sort_by(|a, b| order.compare(a, b));
    let mut left = amount;
    let mut takes = Vec::new();
    for lot in spendable {
        if left.is_zero() {
            break;
        }
        let take = lot.remaining.min(left);
        left = left.checked_sub(take).expect("take is at most what is left");
        takes.push(Take { lot_id: lot.id, amount: take });
    }
    assert!(left.is_zero(), "available covered the amount, so the takes must too");
    assert_eq!(takes.iter().map(|t| t.amount).sum::<Credits>(), amount);
    Ok(takes)
}

/// `allocate`, then takes the amounts out of `lots`: how spends that follow one another under one
/// account lock see each other's takes (a batch of spends, `service::batch`). On a refusal the
/// lots are left as they were.
pub fn take(lots: &mut [Lot], amount: Credits, order: &ConsumptionOrder, now: DateTime<Utc>) -> Result<Vec<Take>, Insufficient> {
    let takes = allocate(lots, amount, order, now)?;
    for take in &takes {
        let lot = lots.iter_mut().find(|l| l.id == take.lot_id).expect("allocate returns the given lots");
        lot.remaining = lot.remaining.checked_sub(take.amount).expect("allocate never takes more than remains");
    }
    Ok(takes)
}

/// A spend decided: which lots pay, and what the account may still spend right after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spent {
    pub takes: Vec<Take>,
    pub available_after: Credits,
}

/// The spend decision, the one every spend makes (a batch's, and a batch of one): `amount` from
/// `lots` at `now` in the program's order, all or nothing, taken out of `lots` so that the next
/// spend of the account under the same lock sees it (`take`). A refusal says how short the
/// account is and leaves the lots as they were.
pub fn spend(lots: &mut [Lot], amount: Credits, order: &ConsumptionOrder, now: DateTime<Utc>) -> Result<Spent, Insufficient> {
    let available_before = balance(lots, now);
    let takes = take(lots, amount, order, now)?;
    let available_after = available_before.checked_sub(amount).expect("take checked the balance");
    Ok(Spent { takes, available_after })
}

/// The balance at `now`: remaining over lots not yet expired.
pub fn balance(lots: &[Lot], now: DateTime<Utc>) -> Credits {
    lots.iter().filter(|l| !l.is_expired(now)).map(|l| l.remaining).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn lot(id: i64, class: LotClass, priority: u8, expires_in_days: Option<i64>) -> Lot {
        let now = t0();
        Lot {
            id,
            class,
            source: LotSource::Adjustment,
            granted: Credits::from_whole(10),
            remaining: Credits::from_whole(10),
            granted_at: now - Duration::days(1),
            expires_at: expires_in_days.map(|d| now + Duration::days(d)),
            priority: Priority::new(priority.into()).unwrap(),
        }
    }

    fn t0() -> DateTime<Utc> {
        "2026-12-03T10:00:00Z".parse().unwrap()
    }

    fn order_of(lots: &[Lot], order: &ConsumptionOrder) -> Vec<i64> {
        let total: Credits = lots.iter().map(|l| l.remaining).sum();
        allocate(lots, total, order, t0()).unwrap().iter().map(|t| t.lot_id).collect()
    }

    #[test]
    fn within_a_tier_a_lower_priority_goes_before_a_sooner_expiry() {
        let order = ConsumptionOrder::new(vec![vec![LotClass::Free, LotClass::Promotional], vec![LotClass::Paid]]).unwrap();
        let lots = [
            lot(1, LotClass::Promotional, 50, Some(1)),
            lot(2, LotClass::Promotional, 10, Some(30)),
            lot(3, LotClass::Free, 50, Some(2)),
            lot(4, LotClass::Promotional, 90, None),
            // The tiers come first: priority 0 in a later tier still waits.
            lot(5, LotClass::Paid, 0, Some(1)),
        ];
        assert_eq!(order_of(&lots, &order), vec![2, 1, 3, 4, 5]);
        // Equal priorities fall back to the soonest expiry, as before priorities existed.
        let same = [lot(1, LotClass::Promotional, 50, Some(9)), lot(2, LotClass::Promotional, 50, Some(3))];
        assert_eq!(order_of(&same, &order), vec![2, 1]);
    }

    #[test]
    fn a_priority_is_0_to_100() {
        assert_eq!(Priority::new(0).unwrap().get(), 0);
        assert_eq!(Priority::new(100).unwrap().get(), 100);
        assert!(Priority::new(101).is_err());
        assert!(Priority::new(-1).is_err());
        assert_eq!(Priority::default(), Priority::DEFAULT);
        assert!(serde_json::from_str::<Priority>("101").is_err());
    }
}
