//! Spend limits a user sets on their own account (issue 26): caps per feature (or for every
//! feature) per UTC day or calendar month, and a maximum per single charge.
//!
//! The rule is pure: the service reads the limits and the usage counted so far in each limit's
//! current period (one counter per scope and period key, kept in the same transaction as the
//! charges), and `check` decides. A charge that fits returns the counters it adds to; one that
//! does not returns what refused it. Reaching a cap exactly is allowed: `used + amount <= max`.

use crate::ledger::Credits;
use crate::ledger::time::{day_of, month_key, next_day_start, next_month_start};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// At most this many limits per account (the per-charge maximum not counted).
pub const MAX_LIMITS: usize = 32;

/// The scope stored for a limit on every feature. Feature names are labels
/// (`service::input::label`: letters, digits and `._:/-`), so this one can never be a feature.
pub const EVERY_FEATURE: &str = "*";

/// The period a cap counts over, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Period {
    /// A UTC day, 00:00 to 00:00.
    Day,
    /// A UTC calendar month, from the 1st 00:00.
    Month,
}

impl Period {
    /// The key of the period `now` falls in: "2026-12-03" for a day, "2026-12" for a month (the
    /// two forms never collide, so one column holds both).
    pub fn key(self, now: DateTime<Utc>) -> String {
        match self {
            Period::Day => day_of(now).to_string(),
            Period::Month => month_key(now),
        }
    }

    /// When the period `now` falls in ends: the next one's start.
    pub fn resets_at(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Period::Day => next_day_start(now),
            Period::Month => next_month_start(now),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    pub fn parse(text: &str) -> Option<Period> {
        match text {
            "day" => Some(Period::Day),
            "month" => Some(Period::Month),
            _ => None,
        }
    }
}

/// One cap: at most `max` credits charged for `feature` (none: every feature together) per
/// `period`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub feature: Option<String>,
    pub period: Period,
    pub max: Credits,
}

impl Limit {
    /// The counter scope: the feature's name, or `EVERY_FEATURE`.
    pub fn scope(&self) -> &str {
        self.feature.as_deref().unwrap_or(EVERY_FEATURE)
    }

    /// Whether a charge for `feature` counts against this limit.
    pub fn applies_to(&self, feature: &str) -> bool {
        self.feature.as_deref().is_none_or(|f| f == feature)
    }

    /// The counter this limit reads at `now`.
    pub fn counter(&self, now: DateTime<Utc>) -> Counter {
        Counter { scope: self.scope().to_string(), period_key: self.period.key(now) }
    }

    /// The limit's state with `used` counted in its current period.
    pub fn state(&self, used: Credits, now: DateTime<Utc>) -> LimitState {
        LimitState {
            used,
            remaining: self.max.checked_sub(used).filter(|r| !r.micros().is_negative()).unwrap_or(Credits::ZERO),
            resets_at: self.period.resets_at(now),
            // Only metered usage, which is charged whatever the limit says, can pass it.
            exceeded: used > self.max,
        }
    }
}

/// A limit's current period, as a read shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitState {
    pub used: Credits,
    /// `max - used`, never below zero.
    pub remaining: Credits,
    pub resets_at: DateTime<Utc>,
    /// `used > max`: metered usage went past the cap (it is charged, never refused).
    pub exceeded: bool,
}

/// One usage counter: what was charged for a scope in one period.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Counter {
    pub scope: String,
    pub period_key: String,
}

/// An account's limits, valid: each cap over zero, at most `MAX_LIMITS`, no two for the same
/// feature and period. In one order (scoped to a feature before every feature, by name, day before
/// month), so the same set given in another order is the same set and the refusal names the
/// same limit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits {
    limits: Vec<Limit>,
    max_per_charge: Option<Credits>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("at most {MAX_LIMITS} limits")]
    TooMany,
    #[error("a limit's max must be more than 0")]
    NotPositive,
    #[error("two limits for {0} per {1}: give one")]
    Duplicate(String, &'static str),
}

impl Limits {
    pub fn new(mut limits: Vec<Limit>, max_per_charge: Option<Credits>) -> Result<Limits, LimitsError> {
        if limits.len() > MAX_LIMITS {
            return Err(LimitsError::TooMany);
        }
        if limits.iter().map(|l| l.max).chain(max_per_charge).any(|max| max.micros() <= 0) {
            return Err(LimitsError::NotPositive);
        }
        limits.sort_by(|a, b| (a.feature.is_none(), &a.feature, a.period).cmp(&(b.feature.is_none(), &b.feature, b.period)));
        if let Some(pair) = limits.windows(2).find(|w| w[0].feature == w[1].feature && w[0].period == w[1].period) {
            let what = pair[0].feature.as_ref().map(|f| format!("feature {f:?}")).unwrap_or_else(|| "every feature".into());
            return Err(LimitsError::Duplicate(what, pair[0].period.as_str()));
        }
        Ok(Limits { limits, max_per_charge })
    }

    pub fn limits(&self) -> &[Limit] {
        &self.limits
    }

    pub fn max_per_charge(&self) -> Option<Credits> {
        self.max_per_charge
    }

    pub fn is_empty(&self) -> bool {
        self.limits.is_empty() && self.max_per_charge.is_none()
    }

    /// The counters a charge for `feature` at `now` adds to (one per limit that applies): what a
    /// charge that is never refused (metered usage) counts.
    pub fn counters(&self, feature: &str, now: DateTime<Utc>) -> Vec<Counter> {
        self.limits.iter().filter(|l| l.applies_to(feature)).map(|l| l.counter(now)).collect()
    }

    /// Whether a charge of `amount` for `feature` at `now` fits, given what each counter holds
    /// (`used`; a counter never written holds zero): the counters it adds to, or the first limit
    /// it would pass (the per-charge maximum, then the limits in their order).
    pub fn check(
        &self,
        feature: &str,
        amount: Credits,
        now: DateTime<Utc>,
        used: impl Fn(&Counter) -> Credits,
    ) -> Result<Vec<Counter>, Reached> {
        if let Some(max) = self.max_per_charge
            && amount > max
        {
            return Err(Reached { feature: None, period: None, limit: max, used: Credits::ZERO, requested: amount, resets_at: None });
        }
        let mut counters = Vec::new();
        for limit in self.limits.iter().filter(|l| l.applies_to(feature)) {
            let counter = limit.counter(now);
            let so_far = used(&counter);
            // Past the maximum balance nothing is charged anyway; saturating keeps this total.
            let after = so_far.checked_add(amount);
            if after.is_none_or(|after| after > limit.max) {
                return Err(Reached {
                    feature: limit.feature.clone(),
                    period: Some(limit.period),
                    limit: limit.max,
                    used: so_far,
                    requested: amount,
                    resets_at: Some(limit.period.resets_at(now)),
                });
            }
            counters.push(counter);
        }
        Ok(counters)
    }
}

/// The limit a charge would pass: `period` none is the per-charge maximum (it never resets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    /// The limit's feature; none for a limit on every feature (and the per-charge maximum).
    pub feature: Option<String>,
    pub period: Option<Period>,
    pub limit: Credits,
    /// What the period had counted before this charge (zero for the per-charge maximum).
    pub used: Credits,
    pub requested: Credits,
    pub resets_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::HashMap;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap()
    }

    fn limit(feature: Option<&str>, period: Period, max: i64) -> Limit {
        Limit { feature: feature.map(str::to_string), period, max: Credits::from_whole(max) }
    }

    fn used_from(map: &HashMap<Counter, Credits>) -> impl Fn(&Counter) -> Credits + '_ {
        |c| map.get(c).copied().unwrap_or(Credits::ZERO)
    }

    #[test]
    fn periods_are_utc_days_and_calendar_months() {
        let now = at(2026, 2, 28, 23, 59, 59);
        assert_eq!(Period::Day.key(now), "2026-02-28");
        assert_eq!(Period::Month.key(now), "2026-02");
        assert_eq!(Period::Day.resets_at(now), at(2026, 3, 1, 0, 0, 0));
        assert_eq!(Period::Month.resets_at(now), at(2026, 3, 1, 0, 0, 0));
        assert_eq!(Period::Month.resets_at(at(2026, 12, 31, 12, 0, 0)), at(2027, 1, 1, 0, 0, 0));
        // The first instant of a day is in that day.
        assert_eq!(Period::Day.key(at(2026, 3, 1, 0, 0, 0)), "2026-03-01");
        assert_eq!(Period::Day.resets_at(at(2026, 3, 1, 0, 0, 0)), at(2026, 3, 2, 0, 0, 0));
    }

    #[test]
    fn reaching_the_cap_exactly_is_allowed_and_one_micro_more_is_not() {
        let now = at(2026, 12, 3, 10, 0, 0);
        let limits = Limits::new(vec![limit(None, Period::Day, 100)], None).unwrap();
        let mut used = HashMap::new();
        used.insert(Counter { scope: "*".into(), period_key: "2026-12-03".into() }, Credits::from_whole(60));
        let fits = limits.check("ai", Credits::from_whole(40), now, used_from(&used)).unwrap();
        assert_eq!(fits, vec![Counter { scope: "*".into(), period_key: "2026-12-03".into() }]);
        let reached = limits.check("ai", Credits::from_micros(40_000_001), now, used_from(&used)).unwrap_err();
        assert_eq!(
            reached,
            Reached {
                feature: None,
                period: Some(Period::Day),
                limit: Credits::from_whole(100),
                used: Credits::from_whole(60),
                requested: Credits::from_micros(40_000_001),
                resets_at: Some(at(2026, 12, 4, 0, 0, 0)),
            }
        );
    }

    #[test]
    fn a_feature_limit_applies_to_its_feature_only() {
        let now = at(2026, 12, 3, 10, 0, 0);
        let limits = Limits::new(vec![limit(Some("image"), Period::Month, 10)], None).unwrap();
        assert!(limits.check("chat", Credits::from_whole(50), now, |_| Credits::ZERO).unwrap().is_empty());
        let reached = limits.check("image", Credits::from_whole(11), now, |_| Credits::ZERO).unwrap_err();
        assert_eq!((reached.feature.as_deref(), reached.period), (Some("image"), Some(Period::Month)));
        assert_eq!(reached.resets_at, Some(at(2027, 1, 1, 0, 0, 0)));
        assert_eq!(limits.counters("image", now), vec![Counter { scope: "image".into(), period_key: "2026-12".into() }]);
        assert!(limits.counters("chat", now).is_empty());
    }

    #[test]
    fn the_per_charge_maximum_comes_first_and_never_resets() {
        let now = at(2026, 12, 3, 10, 0, 0);
        let limits = Limits::new(vec![limit(None, Period::Day, 1)], Some(Credits::from_whole(5))).unwrap();
        let reached = limits.check("ai", Credits::from_whole(6), now, |_| Credits::ZERO).unwrap_err();
        assert_eq!((reached.period, reached.limit, reached.resets_at), (None, Credits::from_whole(5), None));
        // Within the per-charge maximum, the daily cap decides.
        assert_eq!(limits.check("ai", Credits::from_whole(2), now, |_| Credits::ZERO).unwrap_err().period, Some(Period::Day));
    }

    #[test]
    fn every_limit_that_applies_must_fit_and_all_are_counted() {
        let now = at(2026, 12, 3, 10, 0, 0);
        let limits =
            Limits::new(vec![limit(None, Period::Month, 1000), limit(Some("ai"), Period::Day, 50), limit(None, Period::Day, 80)], None)
                .unwrap();
        let mut used = HashMap::new();
        used.insert(Counter { scope: "*".into(), period_key: "2026-12-03".into() }, Credits::from_whole(70));
        // The ai cap has room (0 of 50), the every-feature day cap has 10 left.
        let reached = limits.check("ai", Credits::from_whole(20), now, used_from(&used)).unwrap_err();
        assert_eq!((reached.feature, reached.period, reached.used), (None, Some(Period::Day), Credits::from_whole(70)));
        let counters = limits.check("ai", Credits::from_whole(10), now, used_from(&used)).unwrap();
        assert_eq!(counters.len(), 3, "{counters:?}");
    }

    #[test]
    fn the_set_is_validated_and_kept_in_one_order() {
        assert_eq!(Limits::new(vec![limit(None, Period::Day, 0)], None), Err(LimitsError::NotPositive));
        assert_eq!(Limits::new(vec![], Some(Credits::ZERO)), Err(LimitsError::NotPositive));
        let twice = vec![limit(Some("ai"), Period::Day, 1), limit(Some("ai"), Period::Day, 2)];
        assert_eq!(Limits::new(twice, None), Err(LimitsError::Duplicate("feature \"ai\"".into(), "day")));
        let many = (0..=MAX_LIMITS).map(|i| limit(Some(&format!("f{i}")), Period::Day, 1)).collect();
        assert_eq!(Limits::new(many, None), Err(LimitsError::TooMany));
        let a = Limits::new(vec![limit(None, Period::Day, 1), limit(Some("b"), Period::Month, 1), limit(Some("b"), Period::Day, 1)], None);
        let b = Limits::new(vec![limit(Some("b"), Period::Day, 1), limit(None, Period::Day, 1), limit(Some("b"), Period::Month, 1)], None);
        assert_eq!(a, b);
        assert_eq!(a.unwrap().limits()[2].feature, None, "every-feature limits come last");
        assert!(Limits::new(vec![], None).unwrap().is_empty());
    }

    #[test]
    fn state_says_what_is_left_and_whether_it_was_passed() {
        let now = at(2026, 12, 3, 10, 0, 0);
        let cap = limit(None, Period::Day, 10);
        let within = cap.state(Credits::from_whole(4), now);
        assert_eq!((within.remaining, within.exceeded), (Credits::from_whole(6), false));
        let at_cap = cap.state(Credits::from_whole(10), now);
        assert_eq!((at_cap.remaining, at_cap.exceeded), (Credits::ZERO, false));
        let past = cap.state(Credits::from_whole(12), now);
        assert_eq!((past.remaining, past.exceeded, past.resets_at), (Credits::ZERO, true, at(2026, 12, 4, 0, 0, 0)));
    }
}
