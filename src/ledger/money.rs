//! Money: what users pay, always an integer amount of the currency's minor unit (stored beside
//! its ISO currency code).

use crate::ledger::amount::{Credits, MICROS_PER_CREDIT};

/// Where a purchase stands; stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum PurchaseStatus {
    /// Created, waiting for the payment to be confirmed.
    Pending,
    /// Paid: its credits were granted.
    Paid,
    /// Refunded, in full or in part.
    Refunded,
    /// Ended unpaid: the buyer or the product called it off (`cancelPurchase`).
    Cancelled,
    /// Ended unpaid: the payment was declined or failed (`failPurchase`).
    Failed,
    /// Ended unpaid: nobody paid it within the program's pending lifetime.
    Expired,
}
use rust_decimal::{Decimal, RoundingStrategy};

/// The price of `credits` at `minor_per_credit` (which may be fractional, e.g. 0.2 cents),
/// rounded half up to the whole minor unit: the one rounding of a purchase price.
pub fn price_of(credits: Credits, minor_per_credit: Decimal) -> Option<i64> {
    let credits = Decimal::new(credits.micros(), 0) / Decimal::from(MICROS_PER_CREDIT);
    let exact = credits.checked_mul(minor_per_credit)?;
    i64::try_from(exact.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn prices_whole_and_fractional_rates() {
        assert_eq!(price_of(Credits::from_whole(50), Decimal::from(2)), Some(100));
        assert_eq!(price_of(Credits::from_whole(1000), Decimal::from_str("0.2").unwrap()), Some(200));
        // 3 credits at 0.5 cent = 1.5 cents: half up to 2.
        assert_eq!(price_of(Credits::from_whole(3), Decimal::from_str("0.5").unwrap()), Some(2));
    }
}
