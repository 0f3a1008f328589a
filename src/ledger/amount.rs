//! Exact credit amounts.
//!
//! Credits are stored as integer micro-credits (10^-6 credit) so that SQL arithmetic stays exact
//! on both SQLite and PostgreSQL; the public API speaks decimals. No floating point anywhere.

use rust_decimal::Decimal;
use std::fmt;

/// Decimal places of a credit amount: the smallest unit is 0.000001 credit.
pub const CREDIT_SCALE: u32 = 6;
pub const MICROS_PER_CREDIT: i64 = 1_000_000;
/// The largest amount one operation may move: one billion credits. Sums of many such amounts
/// still fit an i64 of micro-credits (9.2 x 10^12 credits).
pub const MAX_OPERATION_CREDITS: i64 = 1_000_000_000;
pub const MAX_OPERATION_MICROS: i64 = MAX_OPERATION_CREDITS * MICROS_PER_CREDIT;
/// The most one account may hold, held credits included (domain.md, amounts and limits): 10^12
/// credits. An operation that would pass it is refused (`BALANCE_LIMIT_EXCEEDED`), so a cached
/// balance plus one operation always fits an i64 of micro-credits, on SQLite too (where an
/// integer sum that overflows silently becomes a REAL).
pub const MAX_BALANCE_CREDITS: i64 = 1_000_000_000_000;
pub const MAX_BALANCE_MICROS: i64 = MAX_BALANCE_CREDITS * MICROS_PER_CREDIT;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("the amount must be greater than zero")]
    NotPositive,
    #[error("the amount has more than {CREDIT_SCALE} decimal places")]
    TooPrecise,
    #[error("the amount is over the maximum of {MAX_OPERATION_CREDITS} credits")]
    TooLarge,
}

/// A non-negative number of credits, exact to the micro-credit. Serialized as micro-credits,
/// for stored outcomes only; the API speaks decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Credits(i64);

impl Credits {
    pub const ZERO: Credits = Credits(0);

    /// A stored value; the database's CHECK constraints keep it non-negative.
    pub fn from_micros(micros: i64) -> Credits {
        assert!(micros >= 0, "credit amounts are never negative: {micros}");
        Credits(micros)
    }

    pub fn from_whole(credits: i64) -> Credits {
        Credits::from_micros(credits.checked_mul(MICROS_PER_CREDIT).expect("whole credits overflow"))
    }

    /// Parses an amount a caller asked to move: positive, at most 6 places, at most the maximum.
    pub fn parse_positive(value: Decimal) -> Result<Credits, AmountError> {
        if value <= Decimal::ZERO {
            return Err(AmountError::NotPositive);
        }
        if value.normalize().scale() > CREDIT_SCALE {
            return Err(AmountError::TooPrecise);
        }
        if value > Decimal::from(MAX_OPERATION_CREDITS) {
            return Err(AmountError::TooLarge);
        }
        let micros = (value * Decimal::from(MICROS_PER_CREDIT)).trunc();
        let micros = i64::try_from(micros).map_err(|_| AmountError::TooLarge)?;
        Ok(Credits(micros))
    }

    /// The one rounding of a charged line (domain.md §2): `rate x quantity` computed exactly,
    /// then rounded once, half up, to 0.000001 credit. A line may round to zero.
    pub fn charge(rate: Decimal, quantity: Decimal) -> Result<Credits, AmountError> {
        if rate < Decimal::ZERO || quantity < Decimal::ZERO {
            return Err(AmountError::NotPositive);
        }
        let exact = rate.checked_mul(quantity).ok_or(AmountError::TooLarge)?;
        let rounded = exact.round_dp_with_strategy(CREDIT_SCALE, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        if rounded > Decimal::from(MAX_OPERATION_CREDITS) {
            return Err(AmountError::TooLarge);
        }
        let micros = i64::try_from(rounded * Decimal::from(MICROS_PER_CREDIT)).map_err(|_| AmountError::TooLarge)?;
        Ok(Credits(micros))
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, CREDIT_SCALE).normalize()
    }

    pub fn checked_add(self, other: Credits) -> Option<Credits> {
        self.0.checked_add(other.0).map(Credits)
    }

    pub fn checked_sub(self, other: Credits) -> Option<Credits> {
        self.0.checked_sub(other.0).filter(|v| *v >= 0).map(Credits)
    }

    pub fn min(self, other: Credits) -> Credits {
        Credits(self.0.min(other.0))
    }
}

impl std::iter::Sum for Credits {
    fn sum<I: Iterator<Item = Credits>>(iter: I) -> Credits {
        Credits(iter.map(|c| c.0).sum())
    }
}

impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_decimal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn parses_exact_amounts() {
        assert_eq!(Credits::parse_positive(dec("0.000001")).unwrap().micros(), 1);
        assert_eq!(Credits::parse_positive(dec("1.50")).unwrap().micros(), 1_500_000);
        assert_eq!(Credits::parse_positive(dec("1000000000")).unwrap().micros(), MAX_OPERATION_MICROS);
        // Trailing zeros beyond the scale are not extra precision.
        assert_eq!(Credits::parse_positive(dec("2.100000000")).unwrap().micros(), 2_100_000);
    }

    #[test]
    fn rejects_bad_amounts() {
        assert_eq!(Credits::parse_positive(dec("0")), Err(AmountError::NotPositive));
        assert_eq!(Credits::parse_positive(dec("-1")), Err(AmountError::NotPositive));
        assert_eq!(Credits::parse_positive(dec("0.0000001")), Err(AmountError::TooPrecise));
        assert_eq!(Credits::parse_positive(dec("1000000000.000001")), Err(AmountError::TooLarge));
        assert_eq!(Credits::parse_positive(Decimal::MAX), Err(AmountError::TooLarge));
    }

    #[test]
    fn displays_without_trailing_zeros() {
        assert_eq!(Credits::from_micros(1_500_000).to_string(), "1.5");
        assert_eq!(Credits::from_micros(18_000).to_string(), "0.018");
        assert_eq!(Credits::ZERO.to_string(), "0");
    }

    #[test]
    fn a_charged_line_is_rounded_once_half_up() {
        // gpt-5-nano cache reads cost 0.0000004 credits a token.
        assert_eq!(Credits::charge(dec("0.0000004"), dec("1")).unwrap().micros(), 0);
        assert_eq!(Credits::charge(dec("0.0000004"), dec("2")).unwrap().micros(), 1);
        assert_eq!(Credits::charge(dec("0.0000005"), dec("1")).unwrap().micros(), 1, "half rounds up");
        assert_eq!(Credits::charge(dec("0.0000004"), dec("1000001")).unwrap().micros(), 400_000);
        // Storage: 0.018 credits per GB-hour for 1.5 GB over 2.25 hours.
        assert_eq!(Credits::charge(dec("0.018"), dec("3.375")).unwrap().to_string(), "0.06075");
        assert_eq!(Credits::charge(dec("-1"), dec("1")), Err(AmountError::NotPositive));
        assert_eq!(Credits::charge(dec("1000000000"), dec("2")), Err(AmountError::TooLarge));
    }

    #[test]
    fn subtraction_never_goes_negative() {
        assert_eq!(Credits::from_micros(1).checked_sub(Credits::from_micros(2)), None);
    }
}
