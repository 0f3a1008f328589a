//! Gifts between users (issue 26): which of the sender's lots a gift takes, the lots it makes
//! on the recipient, and the per-day limits. Pure rules; `service::gifts` runs them under both
//! accounts' locks.
//!
//! Only paid credits are gifted: promotional and free credits are the product's gift to this
//! user (a check-in, a plan's month, a bonus tied to a purchase that a refund revokes), and
//! passing them on would let one user farm them for another. Of the paid lots, only unscoped
//! ones: a scope is a promise about what the credits pay for, made to the account they were
//! granted to, and a recipient's uses are not the sender's. Upcoming and expired lots are not
//! spendable now, so they are not gifted either.
//!
//! A gift takes the giftable lots in the program's order of consumption (`allocate`), so the
//! credits the sender would have spent first leave first, and each part becomes a lot of its own
//! on the recipient with the same expiry: a gift never makes credits last longer, nor shorter.

use crate::ledger::time::next_day_start;
use crate::ledger::{ConsumptionOrder, Credits, Insufficient, Lot, LotClass, Purpose, allocate};
use chrono::{DateTime, Utc};

/// Whether `lot` may be gifted at `now`: paid, unscoped, spendable now.
pub fn is_giftable(lot: &Lot, now: DateTime<Utc>) -> bool {
    lot.class == LotClass::Paid && lot.features.is_none() && lot.is_spendable(now)
}

/// What the sender could gift at `now`.
pub fn giftable(lots: &[Lot], now: DateTime<Utc>) -> Credits {
    lots.iter().filter(|l| is_giftable(l, now)).map(|l| l.remaining).sum()
}

/// One part of a gift: what leaves one of the sender's lots, and the expiry the recipient's
/// lot made of it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiftPart {
    pub from_lot: i64,
    pub amount: Credits,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Which of the sender's `lots` pay for a gift of `amount` at `now`: only giftable lots, in the
/// program's order, all or nothing. A refusal's `available` is what could be gifted (paid
/// credits only), and its `elsewhere` the other spendable credits, which a gift cannot take.
pub fn choose(lots: &[Lot], amount: Credits, order: &ConsumptionOrder, now: DateTime<Utc>) -> Result<Vec<GiftPart>, Insufficient> {
    let (giftable, others): (Vec<Lot>, Vec<Lot>) = lots.iter().cloned().partition(|l| is_giftable(l, now));
    let takes = allocate(&giftable, amount, order, now, Purpose::Any)
        .map_err(|short| Insufficient { elsewhere: others.iter().filter(|l| l.is_spendable(now)).map(|l| l.remaining).sum(), ..short })?;
    Ok(takes
        .into_iter()
        .map(|take| {
            let lot = giftable.iter().find(|l| l.id == take.lot_id).expect("allocate returns the given lots");
            GiftPart { from_lot: take.lot_id, amount: take.amount, expires_at: lot.expires_at }
        })
        .collect())
}

/// The program's limits on gifts (`[gifts]`), per sender and UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiftLimits {
    /// The most credits a sender may give in one UTC day, over all recipients.
    pub daily_limit: Credits,
    /// The most credits one gift may carry; none: up to the daily limit.
    pub max_per_gift: Option<Credits>,
    /// The most gifts a sender may make in one UTC day; none: no count.
    pub daily_count: Option<u32>,
}

/// The most gifts a program may allow per sender and day.
pub const MAX_DAILY_COUNT: u32 = 1000;

impl GiftLimits {
    pub fn new(daily_limit: Credits, max_per_gift: Option<Credits>, daily_count: Option<u32>) -> Result<GiftLimits, String> {
        if max_per_gift.is_some_and(|max| max > daily_limit) {
            return Err("gifts: max_per_gift must be at most daily_limit".into());
        }
        if daily_count.is_some_and(|n| !(1..=MAX_DAILY_COUNT).contains(&n)) {
            return Err(format!("gifts: daily_count must be 1 to {MAX_DAILY_COUNT}"));
        }
        Ok(GiftLimits { daily_limit, max_per_gift, daily_count })
    }

    /// Whether a gift of `amount` is within the per-gift maximum: decided from the request alone.
    pub fn within_max_per_gift(&self, amount: Credits) -> bool {
        self.max_per_gift.is_none_or(|max| amount <= max)
    }

    /// Whether a sender who gave `sent_today` in `count_today` gifts since the UTC day of `now`
    /// began may give `amount` more now; if not, which limit and when it resets.
    pub fn check_day(&self, sent_today: Credits, count_today: u32, amount: Credits, now: DateTime<Utc>) -> Result<(), DayLimit> {
        let resets_at = next_day_start(now);
        if self.daily_count.is_some_and(|max| count_today >= max) {
            return Err(DayLimit::Count { max: self.daily_count.expect("checked"), resets_at });
        }
        let after = sent_today.checked_add(amount);
        if after.is_none_or(|after| after > self.daily_limit) {
            let left = self.daily_limit.checked_sub(sent_today).unwrap_or(Credits::ZERO);
            return Err(DayLimit::Credits { limit: self.daily_limit, left, resets_at });
        }
        Ok(())
    }
}

/// A per-day limit a gift would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DayLimit {
    #[error("today's gift limit of {limit} credits leaves {left} to give; it resets at {}", resets_at.to_rfc3339())]
    Credits { limit: Credits, left: Credits, resets_at: DateTime<Utc> },
    #[error("today's {max} gifts are made; the count resets at {}", resets_at.to_rfc3339())]
    Count { max: u32, resets_at: DateTime<Utc> },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Features, LotSource, Priority};
    use chrono::Duration;

    fn t0() -> DateTime<Utc> {
        "2026-12-03T10:00:00Z".parse().unwrap()
    }

    fn c(n: i64) -> Credits {
        Credits::from_whole(n)
    }

    fn lot(id: i64, class: LotClass, remaining: i64, expires_in_days: Option<i64>) -> Lot {
        Lot {
            id,
            class,
            source: LotSource::Purchase,
            granted: c(100),
            remaining: c(remaining),
            granted_at: t0() - Duration::days(1),
            expires_at: expires_in_days.map(|d| t0() + Duration::days(d)),
            priority: Priority::DEFAULT,
            effective_at: None,
            features: None,
        }
    }

    fn arkain() -> ConsumptionOrder {
        ConsumptionOrder::new(vec![vec![LotClass::Free, LotClass::Promotional], vec![LotClass::Paid]]).unwrap()
    }

    #[test]
    fn a_gift_takes_paid_unscoped_spendable_lots_in_order_keeping_each_expiry() {
        let mut scoped = lot(5, LotClass::Paid, 50, Some(1));
        scoped.features = Some(Features::new(vec!["ai".into()]).unwrap());
        let mut upcoming = lot(6, LotClass::Paid, 50, None);
        upcoming.effective_at = Some(t0() + Duration::hours(1));
        let lots = [
            lot(1, LotClass::Paid, 30, None),
            lot(2, LotClass::Paid, 20, Some(10)),
            lot(3, LotClass::Promotional, 40, Some(2)),
            lot(4, LotClass::Free, 40, Some(1)),
            scoped,
            upcoming,
            lot(7, LotClass::Paid, 10, Some(-1)),
        ];
        assert_eq!(giftable(&lots, t0()), c(50));
        let parts = choose(&lots, c(35), &arkain(), t0()).unwrap();
        assert_eq!(
            parts,
            vec![
                GiftPart { from_lot: 2, amount: c(20), expires_at: Some(t0() + Duration::days(10)) },
                GiftPart { from_lot: 1, amount: c(15), expires_at: None },
            ]
        );
        // Short: only paid credits count; the rest is named apart.
        let short = choose(&lots, c(51), &arkain(), t0()).unwrap_err();
        assert_eq!((short.requested, short.available, short.elsewhere), (c(51), c(50), c(130)));
    }

    #[test]
    fn the_day_limits_count_credits_and_gifts_and_reset_at_midnight() {
        let limits = GiftLimits::new(c(500), Some(c(200)), Some(3)).unwrap();
        assert!(limits.within_max_per_gift(c(200)));
        assert!(!limits.within_max_per_gift(Credits::from_micros(200_000_001)));
        let midnight: DateTime<Utc> = "2026-12-04T00:00:00Z".parse().unwrap();
        assert_eq!(limits.check_day(c(300), 2, c(200), t0()), Ok(()));
        assert_eq!(
            limits.check_day(c(400), 2, Credits::from_micros(100_000_001), t0()),
            Err(DayLimit::Credits { limit: c(500), left: c(100), resets_at: midnight })
        );
        assert_eq!(limits.check_day(c(10), 3, c(1), t0()), Err(DayLimit::Count { max: 3, resets_at: midnight }));
        // The last microsecond of a day resets at the next midnight; the midnight is a new day.
        let last = midnight - Duration::microseconds(1);
        assert!(limits.check_day(c(500), 0, c(1), last).unwrap_err().to_string().contains("2026-12-04T00:00:00+00:00"));
        assert!(GiftLimits::new(c(10), Some(c(11)), None).is_err());
        assert!(GiftLimits::new(c(10), None, Some(0)).is_err());
        assert_eq!(GiftLimits::new(c(10), None, None).unwrap().check_day(Credits::ZERO, 999, c(10), t0()), Ok(()));
    }
}
