//! When to tell people about their credits (domain.md §6), as pure rules.

use crate::ledger::{Credits, LotSource};
use rust_decimal::Decimal;

/// When the balance counts as low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowCreditRule {
    /// The balance covers less than this many hours of the account's current usage rate
    /// (arkain: 1). An account using nothing is never low.
    HoursOfUsage(u32),
    /// The balance is under this many credits (archipelag: 10).
    Below(Credits),
}

/// Why the balance is low, or None. `rate_per_hour` is what the account's running usage costs
/// an hour (containers, add-ons, storage over quota), exact.
pub fn low_credits(rule: LowCreditRule, balance: Credits, rate_per_hour: Decimal) -> Option<String> {
    match rule {
        LowCreditRule::HoursOfUsage(hours) => {
            let needed = rate_per_hour * Decimal::from(hours);
            (rate_per_hour > Decimal::ZERO && balance.to_decimal() < needed).then(|| {
                format!(
                    "{balance} credits cover less than {hours} hour(s) of the current usage at {} credits an hour",
                    rate_per_hour.normalize()
                )
            })
        }
        LowCreditRule::Below(threshold) => (balance < threshold).then(|| format!("{balance} credits is under {threshold}")),
    }
}

/// Whether a notice already sent stands: the hours-of-usage warning is sent once per purchase
/// cycle (only a purchase re-arms it); the threshold nudge once per crossing (it re-arms when the
/// balance is back at or above the threshold).
pub fn rearms_when_recovered(rule: LowCreditRule) -> bool {
    matches!(rule, LowCreditRule::Below(_))
}

/// Lots worth an expiry notice: not the ones that live a day or three by design (daily free,
/// lucky and ad-rewarded credits), which would make the notice a daily chore.
pub fn notice_worthy(source: LotSource) -> bool {
    !matches!(source, LotSource::DailyFree | LotSource::Lucky | LotSource::AdReward)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(whole: i64) -> Credits {
        Credits::from_whole(whole)
    }

    #[test]
    fn an_hour_of_usage() {
        let rule = LowCreditRule::HoursOfUsage(1);
        let rate = Decimal::new(392, 2); // two Micro containers: 3.92 an hour
        assert!(low_credits(rule, Credits::from_micros(3_919_999), rate).is_some());
        assert!(low_credits(rule, Credits::from_micros(3_920_000), rate).is_none(), "exactly an hour is enough");
        assert!(low_credits(rule, Credits::ZERO, Decimal::ZERO).is_none(), "nothing running, nothing to warn of");
    }

    #[test]
    fn a_threshold() {
        let rule = LowCreditRule::Below(c(10));
        assert!(low_credits(rule, Credits::from_micros(9_999_999), Decimal::ZERO).is_some());
        assert!(low_credits(rule, c(10), Decimal::ZERO).is_none());
        assert!(rearms_when_recovered(rule));
        assert!(!rearms_when_recovered(LowCreditRule::HoursOfUsage(1)));
    }

    #[test]
    fn short_lived_lots_get_no_expiry_notice() {
        assert!(!notice_worthy(LotSource::DailyFree));
        assert!(!notice_worthy(LotSource::Lucky));
        assert!(notice_worthy(LotSource::CheckIn));
        assert!(notice_worthy(LotSource::Purchase));
    }
}
