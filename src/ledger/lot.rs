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
    /// Paid credits another user gave this account (`ledger::gift`), with the expiry they had.
    Gift,
}

impl LotSource {
    pub const ALL: [LotSource; 17] = [
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
        LotSource::Gift,
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
            LotSource::Gift => "gift",
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
    /// A future-effective grant's start: before it the lot is upcoming, shown but not
    /// spendable. `None`: spendable from its grant.
    pub effective_at: Option<DateTime<Utc>>,
    /// The features a scoped lot may pay for; `None` pays for any use.
    pub features: Option<Features>,
}

/// Whether `value` is a name the API takes for a feature, model or resource: 1 to 64 letters,
/// digits and `._:/-`.
pub fn is_name(value: &str) -> bool {
    (1..=MAX_NAME_CHARS).contains(&value.chars().count()) && value.chars().all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c))
}

/// The longest feature, model or resource name.
pub const MAX_NAME_CHARS: usize = 64;

/// The features a scoped lot may pay for: 1 to `MAX` names, sorted and without repeats, so
/// that a scope has one form wherever it is kept or compared (storage, hashes, balances).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Features(Vec<String>);

impl Features {
    pub const MAX: usize = 16;

    pub fn new(names: Vec<String>) -> Result<Features, String> {
        if let Some(bad) = names.iter().find(|n| !is_name(n)) {
            return Err(format!("feature {bad:?} is not a feature name: 1 to {MAX_NAME_CHARS} letters, digits and . _ : / -"));
        }
        let mut names = names;
        names.sort_unstable();
        names.dedup();
        if names.is_empty() || names.len() > Features::MAX {
            return Err(format!("a lot is scoped to 1 to {} features; leave features out for credits any use may take", Features::MAX));
        }
        Ok(Features(names))
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    pub fn contains(&self, feature: &str) -> bool {
        self.0.binary_search_by(|n| n.as_str().cmp(feature)).is_ok()
    }
}

impl TryFrom<Vec<String>> for Features {
    type Error = String;

    fn try_from(names: Vec<String>) -> Result<Features, String> {
        Features::new(names)
    }
}

impl From<Features> for Vec<String> {
    fn from(f: Features) -> Vec<String> {
        f.0
    }
}

/// What a draw on an account's lots is for, which decides the lots that may pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose<'a> {
    /// A use of this feature (a spend, a hold, a settlement): unscoped lots and the lots scoped
    /// to it.
    Feature(&'a str),
    /// Not a use: an operator's debit, a refund taking back a bonus. Any lot, scoped or not.
    Any,
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
            effective_at: None,
            features: None,
        }
    }

    /// Expiry is exclusive: at its expiry instant a lot is already gone.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// A future-effective lot before its start: shown as upcoming, not spendable.
    pub fn is_upcoming(&self, now: DateTime<Utc>) -> bool {
        self.effective_at.is_some_and(|at| at > now)
    }

    pub fn is_spendable(&self, now: DateTime<Utc>) -> bool {
        !self.remaining.is_zero() && !self.is_expired(now) && !self.is_upcoming(now)
    }

    /// Whether a draw for `purpose` may take from this lot (spendable or not).
    pub fn applies_to(&self, purpose: Purpose<'_>) -> bool {
        match (purpose, &self.features) {
            (Purpose::Any, _) | (_, None) => true,
            (Purpose::Feature(feature), Some(scope)) => scope.contains(feature),
        }
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
    /// What the draw's purpose could take: for a feature, the unscoped credits and the ones
    /// scoped to it.
    pub available: Credits,
    /// Spendable credits scoped to other features only, which this draw could not take.
    pub elsewhere: Credits,
}

impl Insufficient {
    /// A refusal with nothing scoped elsewhere to mention.
    pub fn short(requested: Credits, available: Credits) -> Insufficient {
        Insufficient { requested, available, elsewhere: Credits::ZERO }
    }
}

/// Decides which lots pay for `amount` at `now` for `purpose`: all or nothing. Expired, empty
/// and upcoming lots are skipped, whatever the caller passed in, and so are the lots scoped to
/// other features.
pub fn allocate(
    lots: &[Lot],
    amount: Credits,
    order: &ConsumptionOrder,
    now: DateTime<Utc>,
    purpose: Purpose<'_>,
) -> Result<Vec<Take>, Insufficient> {
    assert!(!amount.is_zero(), "a spend of zero is rejected before the rules are asked");
    let (mut spendable, elsewhere): (Vec<&Lot>, Vec<&Lot>) =
        lots.iter().filter(|l| l.is_spendable(now)).partition(|l| l.applies_to(purpose));
    let available: Credits = spendable.iter().map(|l| l.remaining).sum();
    if available < amount {
        return Err(Insufficient { requested: amount, available, elsewhere: elsewhere.iter().map(|l| l.remaining).sum() });
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
pub fn take(
    lots: &mut [Lot],
    amount: Credits,
    order: &ConsumptionOrder,
    now: DateTime<Utc>,
    purpose: Purpose<'_>,
) -> Result<Vec<Take>, Insufficient> {
    let takes = allocate(lots, amount, order, now, purpose)?;
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
/// the `lots` that apply to `feature`, at `now` in the program's order, all or nothing, taken
/// out of `lots` so that the next spend of the account under the same lock sees it (`take`). A
/// refusal says how short the account is for that feature and leaves the lots as they were.
pub fn spend(
    lots: &mut [Lot],
    amount: Credits,
    order: &ConsumptionOrder,
    now: DateTime<Utc>,
    feature: &str,
) -> Result<Spent, Insufficient> {
    let available_before = balance(lots, now);
    let takes = take(lots, amount, order, now, Purpose::Feature(feature))?;
    let available_after = available_before.checked_sub(amount).expect("take checked the balance");
    Ok(Spent { takes, available_after })
}

/// The balance at `now`: what remains of the lots spendable now, scoped or not (upcoming and
/// expired lots do not count).
pub fn balance(lots: &[Lot], now: DateTime<Utc>) -> Credits {
    lots.iter().filter(|l| l.is_spendable(now)).map(|l| l.remaining).sum()
}

/// What a draw for `purpose` could take at `now`.
pub fn available_for(lots: &[Lot], now: DateTime<Utc>, purpose: Purpose<'_>) -> Credits {
    lots.iter().filter(|l| l.is_spendable(now) && l.applies_to(purpose)).map(|l| l.remaining).sum()
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
            effective_at: None,
            features: None,
        }
    }

    fn t0() -> DateTime<Utc> {
        "2026-12-03T10:00:00Z".parse().unwrap()
    }

    fn order_of(lots: &[Lot], order: &ConsumptionOrder) -> Vec<i64> {
        let total: Credits = lots.iter().map(|l| l.remaining).sum();
        allocate(lots, total, order, t0(), Purpose::Any).unwrap().iter().map(|t| t.lot_id).collect()
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

    fn scoped(mut lot: Lot, names: &[&str]) -> Lot {
        lot.features = Some(Features::new(names.iter().map(|n| n.to_string()).collect()).unwrap());
        lot
    }

    #[test]
    fn a_use_takes_unscoped_lots_and_the_ones_scoped_to_it_in_the_usual_order() {
        let order = ConsumptionOrder::new(vec![vec![LotClass::Free, LotClass::Promotional], vec![LotClass::Paid]]).unwrap();
        let lots = [
            lot(1, LotClass::Paid, 50, Some(1)),
            scoped(lot(2, LotClass::Promotional, 50, Some(5)), &["ai", "storage"]),
            scoped(lot(3, LotClass::Promotional, 50, Some(2)), &["container"]),
            lot(4, LotClass::Free, 50, Some(9)),
        ];
        let takes = |amount, feature| allocate(&lots, Credits::from_whole(amount), &order, t0(), Purpose::Feature(feature));
        let ids = |t: Vec<Take>| t.iter().map(|t| t.lot_id).collect::<Vec<_>>();
        assert_eq!(ids(takes(30, "ai").unwrap()), vec![2, 4, 1]);
        assert_eq!(ids(takes(30, "container").unwrap()), vec![3, 4, 1]);
        // Short for a feature: what applies is available, what is scoped elsewhere is named apart.
        assert_eq!(
            takes(31, "ai"),
            Err(Insufficient {
                requested: Credits::from_whole(31),
                available: Credits::from_whole(30),
                elsewhere: Credits::from_whole(10)
            })
        );
        assert_eq!(takes(21, "chat").unwrap_err().available, Credits::from_whole(20));
        // Not a use: every lot.
        assert_eq!(allocate(&lots, Credits::from_whole(40), &order, t0(), Purpose::Any).unwrap().len(), 4);
        assert_eq!(available_for(&lots, t0(), Purpose::Feature("storage")), Credits::from_whole(30));
        assert_eq!(balance(&lots, t0()), Credits::from_whole(40), "the balance counts scoped credits too");
    }

    #[test]
    fn an_upcoming_lot_is_not_spendable_before_it_starts() {
        let order = ConsumptionOrder::new(vec![vec![LotClass::Free, LotClass::Promotional, LotClass::Paid]]).unwrap();
        let mut upcoming = lot(1, LotClass::Paid, 0, None);
        upcoming.effective_at = Some(t0() + Duration::hours(1));
        let lots = [upcoming, lot(2, LotClass::Paid, 50, None)];
        assert_eq!(balance(&lots, t0()), Credits::from_whole(10));
        assert_eq!(allocate(&lots, Credits::from_whole(11), &order, t0(), Purpose::Any).unwrap_err().available, Credits::from_whole(10));
        let later = t0() + Duration::hours(1);
        assert!(lots[0].is_spendable(later), "effective at its start instant");
        assert_eq!(allocate(&lots, Credits::from_whole(11), &order, later, Purpose::Any).unwrap()[0].lot_id, 1);
    }

    #[test]
    fn a_scope_has_one_form() {
        let f = |names: &[&str]| Features::new(names.iter().map(|n| n.to_string()).collect());
        assert_eq!(f(&["b", "a", "b"]).unwrap().names(), ["a", "b"]);
        assert!(f(&[]).is_err());
        assert!(f(&["has space"]).is_err());
        assert!(f(&[""]).is_err());
        let many: Vec<String> = (0..17).map(|i| format!("f{i}")).collect();
        assert!(Features::new(many).is_err());
        assert!(serde_json::from_str::<Features>("[]").is_err());
        assert_eq!(serde_json::to_string(&f(&["z", "a"]).unwrap()).unwrap(), r#"["a","z"]"#);
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
