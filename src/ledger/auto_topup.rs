//! Auto top-up (issue 26): when what an account can spend falls under its threshold, buy more
//! before it runs dry. Pure rules: whether a setting is valid, and how much to buy now.
//!
//! The use case (`service::auto_topup`) runs them in the transaction that lowered the balance,
//! under the account's lock, so of two spends crossing the threshold together exactly one sees no
//! purchase outstanding and asks for one.

use crate::ledger::Credits;
use crate::ledger::amount::MICROS_PER_CREDIT;

/// How much a top-up buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopUp {
    /// The same number of credits every time.
    Amount(Credits),
    /// Enough to bring what is available back to this balance (whole credits, rounded up, at
    /// least the program's minimum purchase).
    Target(Credits),
}

/// An account's auto top-up setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Top up when what is available falls under this.
    pub threshold: Credits,
    pub top_up: TopUp,
    /// What auto top-ups may buy per UTC calendar month, pending and paid together.
    pub monthly_cap: Credits,
}

/// A setting the rules refuse, with what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("threshold must be more than zero")]
    NoThreshold,
    #[error("amount must be a whole number of credits, at least the minimum purchase of {minimum}")]
    Amount { minimum: Credits },
    #[error("targetBalance must be a whole number of credits above the threshold")]
    Target,
    #[error("monthlyCap must be a whole number of credits, at least one top-up ({least})")]
    Cap { least: Credits },
}

impl Setting {
    /// Checks a setting against the program's minimum purchase: a top-up is a purchase, so it
    /// buys whole credits and at least the minimum, and the cap allows at least one.
    pub fn validate(&self, minimum_purchase: Credits) -> Result<(), Invalid> {
        if self.threshold.is_zero() {
            return Err(Invalid::NoThreshold);
        }
        let least = match self.top_up {
            TopUp::Amount(amount) => {
                if !amount.is_whole() || amount < minimum_purchase || amount.is_zero() {
                    return Err(Invalid::Amount { minimum: minimum_purchase });
                }
                amount
            }
            TopUp::Target(target) => {
                if !target.is_whole() || target <= self.threshold {
                    return Err(Invalid::Target);
                }
                minimum_purchase.max(Credits::from_whole(1))
            }
        };
        if !self.monthly_cap.is_whole() || self.monthly_cap < least {
            return Err(Invalid::Cap { least });
        }
        Ok(())
    }
}

/// What to do after a change left `available` credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// At or over the threshold: nothing.
    NotNeeded,
    /// Buy this many credits.
    Buy(Credits),
    /// Under the threshold, but this month's cap leaves less than a purchase the program
    /// allows: nothing is bought until the month turns.
    CapReached,
}

/// Whether to top up, and by how much, when `available` is what is left and `this_month` is
/// what auto top-ups already bought (or are buying) this calendar month. A buy is whole credits,
/// at least `minimum_purchase`, and never takes the month past the cap: it is cut to what the
/// cap leaves, and if that is under the minimum nothing is bought.
pub fn decide(setting: &Setting, available: Credits, this_month: Credits, minimum_purchase: Credits) -> Decision {
    if available >= setting.threshold {
        return Decision::NotNeeded;
    }
    let wanted = match setting.top_up {
        TopUp::Amount(amount) => amount,
        TopUp::Target(target) => round_up_whole(target.checked_sub(available).expect("available is under the threshold, under the target")),
    };
    let floor = minimum_purchase.max(Credits::from_whole(1));
    let wanted = wanted.max(floor);
    let left = setting.monthly_cap.checked_sub(this_month).unwrap_or(Credits::ZERO);
    let buy = round_down_whole(wanted.min(left));
    if buy < floor { Decision::CapReached } else { Decision::Buy(buy) }
}

fn round_up_whole(credits: Credits) -> Credits {
    let whole = round_down_whole(credits);
    if whole == credits { whole } else { whole.checked_add(Credits::from_whole(1)).expect("a top-up fits") }
}

fn round_down_whole(credits: Credits) -> Credits {
    Credits::from_micros(credits.micros() / MICROS_PER_CREDIT * MICROS_PER_CREDIT)
}

/// Whether a run of failed top-up payments turns auto top-up off.
pub fn gives_up(failures_in_a_row: u32, max_failures: u32) -> bool {
    failures_in_a_row >= max_failures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(whole: i64) -> Credits {
        Credits::from_whole(whole)
    }

    fn fixed(threshold: i64, amount: i64, cap: i64) -> Setting {
        Setting { threshold: c(threshold), top_up: TopUp::Amount(c(amount)), monthly_cap: c(cap) }
    }

    #[test]
    fn it_buys_only_under_the_threshold() {
        let setting = fixed(10, 50, 500);
        assert_eq!(decide(&setting, c(10), Credits::ZERO, c(5)), Decision::NotNeeded, "exactly the threshold is enough");
        assert_eq!(decide(&setting, Credits::from_micros(9_999_999), Credits::ZERO, c(5)), Decision::Buy(c(50)));
        assert_eq!(decide(&setting, Credits::ZERO, Credits::ZERO, c(5)), Decision::Buy(c(50)));
    }

    #[test]
    fn a_target_buys_the_difference_in_whole_credits() {
        let setting = Setting { threshold: c(10), top_up: TopUp::Target(c(100)), monthly_cap: c(1000) };
        // 100 - 9.5 = 90.5, rounded up.
        assert_eq!(decide(&setting, Credits::from_micros(9_500_000), Credits::ZERO, c(5)), Decision::Buy(c(91)));
        // Never less than the minimum purchase.
        let near = Setting { threshold: c(10), top_up: TopUp::Target(c(12)), monthly_cap: c(1000) };
        assert_eq!(decide(&near, c(9), Credits::ZERO, c(5)), Decision::Buy(c(5)));
    }

    #[test]
    fn the_cap_cuts_a_top_up_and_then_stops_them() {
        let setting = fixed(10, 50, 120);
        assert_eq!(decide(&setting, c(1), c(100), c(5)), Decision::Buy(c(20)), "cut to what the cap leaves");
        assert_eq!(decide(&setting, c(1), c(116), c(5)), Decision::CapReached, "4 left is under the minimum purchase");
        assert_eq!(decide(&setting, c(1), c(120), c(5)), Decision::CapReached);
        assert_eq!(decide(&setting, c(1), c(500), c(5)), Decision::CapReached, "over the cap (lowered since) is not negative");
        // A fractional remainder of the cap is never bought: purchases are whole credits.
        assert_eq!(decide(&setting, c(1), Credits::from_micros(99_500_000), c(5)), Decision::Buy(c(20)));
    }

    #[test]
    fn settings_are_checked() {
        let minimum = c(5);
        assert_eq!(fixed(10, 50, 500).validate(minimum), Ok(()));
        assert_eq!(fixed(0, 50, 500).validate(minimum), Err(Invalid::NoThreshold));
        assert_eq!(fixed(10, 4, 500).validate(minimum), Err(Invalid::Amount { minimum }));
        let fraction = Setting { top_up: TopUp::Amount(Credits::from_micros(50_500_000)), ..fixed(10, 50, 500) };
        assert_eq!(fraction.validate(minimum), Err(Invalid::Amount { minimum }));
        assert_eq!(fixed(10, 50, 49).validate(minimum), Err(Invalid::Cap { least: c(50) }));
        let target = |t: i64| Setting { top_up: TopUp::Target(c(t)), ..fixed(10, 50, 500) };
        assert_eq!(target(10).validate(minimum), Err(Invalid::Target), "a target at the threshold would never lift it");
        assert_eq!(target(11).validate(minimum), Ok(()));
    }

    #[test]
    fn it_gives_up_after_the_configured_failures() {
        assert!(!gives_up(2, 3));
        assert!(gives_up(3, 3));
    }
}
