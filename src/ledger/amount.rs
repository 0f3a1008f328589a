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

/// The API's text form of a credit amount (domain.md, "Amounts and limits"), as a pattern for
/// people: the parser below checks it byte by byte.
pub const AMOUNT_PATTERN: &str = r"^(0|[1-9][0-9]*)(\.[0-9]{1,6})?$";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("the amount must be greater than zero")]
    NotPositive,
    #[error("the amount has more than {CREDIT_SCALE} decimal places")]
    TooPrecise,
    #[error("the amount is over the maximum of {MAX_OPERATION_CREDITS} credits")]
    TooLarge,
    /// The text is not a plain decimal; says what is wrong.
    #[error("{0}")]
    Malformed(&'static str),
}

/// A plain decimal's text split at its point: `0|[1-9][0-9]*`, then optionally `.` and 1 to
/// `max_places` digits. ASCII digits only: no sign, exponent, underscore, comma, spaces or `+`.
/// Checked by hand on bytes; the parts are returned as ASCII digit strings (`fraction` may be
/// empty).
pub fn split_plain_decimal(text: &str, max_places: usize) -> Result<(&str, &str), AmountError> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if text.is_empty() {
        return Err(AmountError::Malformed("it is empty: give digits, such as \"12.5\""));
    }
    if text.starts_with(['-', '+']) {
        return Err(AmountError::Malformed("no sign: neither '+' nor '-'"));
    }
    if !digits(whole) {
        return Err(AmountError::Malformed("only digits and at most one '.': no exponent, underscore, comma or spaces"));
    }
    if whole.len() > 1 && whole.starts_with('0') {
        return Err(AmountError::Malformed("no leading zeros"));
    }
    let Some(fraction) = fraction else { return Ok((whole, "")) };
    if !digits(fraction) {
        return Err(AmountError::Malformed("a '.' comes between digits"));
    }
    if fraction.len() > max_places {
        return Err(AmountError::TooPrecise);
    }
    Ok((whole, fraction))
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

    /// Parses the API's text form of an amount ([`AMOUNT_PATTERN`]): `0`, `12`, `12.5`,
    /// `0.000001`, `1.50`; at most [`MAX_OPERATION_CREDITS`]. Zero is a valid amount here (a
    /// capture of nothing); operations that move credits also call [`Credits::require_positive`].
    pub fn parse_str(text: &str) -> Result<Credits, AmountError> {
        let (whole, fraction) = split_plain_decimal(text, CREDIT_SCALE as usize)?;
        // Without leading zeros, more digits than the maximum's is over the maximum (and would
        // not fit the arithmetic below).
        if whole.len() > MAX_OPERATION_CREDITS.ilog10() as usize + 1 {
            return Err(AmountError::TooLarge);
        }
        let number = |digits: &str| digits.bytes().fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
        let scale = 10i64.pow(CREDIT_SCALE - fraction.len() as u32);
        let micros = number(whole) * MICROS_PER_CREDIT + number(fraction) * scale;
        if micros > MAX_OPERATION_MICROS {
            return Err(AmountError::TooLarge);
        }
        Ok(Credits(micros))
    }

    /// An amount one operation may move: more than zero, at most [`MAX_OPERATION_CREDITS`].
    pub fn require_positive(self) -> Result<Credits, AmountError> {
        if self.0 <= 0 {
            return Err(AmountError::NotPositive);
        }
        if self.0 > MAX_OPERATION_MICROS {
            return Err(AmountError::TooLarge);
        }
        Ok(self)
    }

    /// A whole number of credits.
    pub fn is_whole(self) -> bool {
        self.0 % MICROS_PER_CREDIT == 0
    }

    /// The sum, or `None` if it would not fit (an i64 of micro-credits: 9.2 x 10^12 credits).
    pub fn checked_sum(amounts: impl IntoIterator<Item = Credits>) -> Option<Credits> {
        amounts.into_iter().try_fold(Credits::ZERO, Credits::checked_add)
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

/// For sums that stay small by the rules (an account's lots, one operation's takes). It panics
/// on overflow, in release builds too, rather than wrap: use [`Credits::checked_sum`] wherever
/// the terms are not bounded that way.
impl std::iter::Sum for Credits {
    fn sum<I: Iterator<Item = Credits>>(iter: I) -> Credits {
        Credits::checked_sum(iter).expect("a sum of credits overflowed i64 micro-credits (9.2 x 10^12 credits)")
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
    fn amount_text_follows_the_grammar() {
        let micros = |s: &str| Credits::parse_str(s).map(Credits::micros);
        for (text, expected) in [
            ("0", 0),
            ("12", 12_000_000),
            ("12.5", 12_500_000),
            ("0.000001", 1),
            ("0.5", 500_000),
            ("1.50", 1_500_000),
            ("0.000000", 0),
            ("1000000000", MAX_OPERATION_MICROS),
            ("1000000000.000000", MAX_OPERATION_MICROS),
            ("999999999.999999", MAX_OPERATION_MICROS - 1),
        ] {
            assert_eq!(micros(text), Ok(expected), "{text:?}");
        }
        let malformed = |s: &str| matches!(Credits::parse_str(s), Err(AmountError::Malformed(_)));
        for text in [
            "", "01", "00", "00.5", "1.", ".5", ".", "1_000", "+5", "-1", "-0", "1e3", "1E3", "1e-6", " 1", "1 ", "1.2.3", "1,5", "0x10",
            "NaN", "Infinity", "abc", "１２", "١٢", "1.5a", "1.-5",
        ] {
            assert!(malformed(text), "{text:?} is malformed: {:?}", Credits::parse_str(text));
        }
        for text in ["0.0000001", "1.0000000", "0.00000099999999999999999999999999", "1.000000000000000000000000000001"] {
            assert_eq!(Credits::parse_str(text), Err(AmountError::TooPrecise), "{text:?}");
        }
        for text in ["1000000000.000001", "1000000001", "9999999999", "10000000000", "79228162514264337593543950336", &"9".repeat(400)] {
            assert_eq!(Credits::parse_str(text), Err(AmountError::TooLarge), "{text:?}");
        }
    }

    #[test]
    fn amount_text_round_trips_through_display() {
        for micros in [0, 1, 10, 500_000, 1_500_000, 123_456_789, MAX_OPERATION_MICROS] {
            let credits = Credits::from_micros(micros);
            assert_eq!(Credits::parse_str(&credits.to_string()), Ok(credits));
        }
    }

    #[test]
    fn only_positive_amounts_move() {
        assert_eq!(Credits::ZERO.require_positive(), Err(AmountError::NotPositive));
        assert_eq!(Credits::from_micros(1).require_positive(), Ok(Credits::from_micros(1)));
        assert_eq!(Credits::from_micros(MAX_OPERATION_MICROS + 1).require_positive(), Err(AmountError::TooLarge));
        assert!(Credits::from_whole(50).is_whole() && !Credits::from_micros(50_000_001).is_whole());
    }

    #[test]
    fn sums_are_checked() {
        let big = Credits::from_micros(i64::MAX / 2 + 1);
        assert_eq!(Credits::checked_sum([Credits::from_whole(1), Credits::from_micros(5)]), Some(Credits::from_micros(1_000_005)));
        assert_eq!(Credits::checked_sum([]), Some(Credits::ZERO));
        assert_eq!(Credits::checked_sum([big, big]), None);
        let summed = std::panic::catch_unwind(|| [big, big].into_iter().sum::<Credits>());
        let message = summed.expect_err("an overflowing sum panics, never wraps");
        assert!(message.downcast_ref::<String>().is_some_and(|m| m.contains("overflowed")), "a clear message");
    }

    #[test]
    fn subtraction_never_goes_negative() {
        assert_eq!(Credits::from_micros(1).checked_sub(Credits::from_micros(2)), None);
    }
}
