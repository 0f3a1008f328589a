//! The one rounding: a priced line is one exact fraction of integers, rounded once, half up, to
//! the micro-credit.

use super::PricingError;
use crate::ledger::amount::{CREDIT_SCALE, MAX_OPERATION_MICROS};
use crate::ledger::{AmountError, Credits};
use rust_decimal::Decimal;

/// `sum over terms of (product of factors) / divisor`, exactly, rounded once half up to the
/// micro-credit. Each term is an integer over a power of ten and the divisor a whole number, so
/// the line is one fraction of i128 integers and nothing is rounded before the end.
pub(super) fn round_once<T: AsRef<[Decimal]>>(terms: impl IntoIterator<Item = T>, divisor: u64) -> Result<Credits, PricingError> {
    assert!(divisor > 0, "divisors are seconds an hour, bytes a GB or a default length");
    let too_large = PricingError::Amount(AmountError::TooLarge);
    let mut parts: Vec<(i128, u32)> = Vec::new();
    for term in terms {
        let (mut mantissa, mut scale) = (1i128, 0u32);
        for factor in term.as_ref() {
            if *factor < Decimal::ZERO {
                return Err(PricingError::InvalidQuantity("a priced quantity"));
            }
            let factor = factor.normalize();
            mantissa = mantissa.checked_mul(factor.mantissa()).ok_or(too_large.clone())?;
            scale += factor.scale();
        }
        parts.push((mantissa, scale));
    }
    let micros = rounded_micros(&parts, divisor).filter(|m| *m <= i128::from(MAX_OPERATION_MICROS)).ok_or(too_large)?;
    Ok(Credits::from_micros(i64::try_from(micros).expect("at most the operation maximum")))
}

/// `sum of mantissa / 10^scale` over the parts, divided by `divisor`, in micro-credits rounded
/// half up; None on overflow.
fn rounded_micros(parts: &[(i128, u32)], divisor: u64) -> Option<i128> {
    let scale = parts.iter().map(|(_, s)| *s).max().unwrap_or(0);
    let pow10 = |exponent: u32| 10i128.checked_pow(exponent);
    let mut numerator = 0i128;
    for (mantissa, s) in parts {
        numerator = numerator.checked_add(mantissa.checked_mul(pow10(scale - s)?)?)?;
    }
    // micro-credits = numerator x 10^6 / (10^scale x divisor)
    let (numerator, denominator) = if scale >= CREDIT_SCALE {
        (numerator, pow10(scale - CREDIT_SCALE)?.checked_mul(divisor.into())?)
    } else {
        (numerator.checked_mul(pow10(CREDIT_SCALE - scale)?)?, i128::from(divisor))
    };
    // Half up, for a non-negative fraction: floor(n / d + 1/2) = floor((2n + d) / 2d).
    Some(numerator.checked_mul(2)?.checked_add(denominator)? / denominator.checked_mul(2)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::pricing::test_support::{arkain_metering, arkain_tokens};
    use crate::ledger::pricing::{TokenUsage, container_charge, price_question};
    use proptest::prelude::*;

    #[test]
    fn overflow_is_an_error_not_a_wrong_price() {
        let metering = arkain_metering();
        assert_eq!(container_charge(&metering, "gpu_basic", u64::MAX), Err(PricingError::Amount(AmountError::TooLarge)));
        let usage = TokenUsage { output: u64::MAX, ..TokenUsage::default() };
        assert_eq!(price_question(&arkain_tokens(), None, &usage).unwrap_err(), PricingError::Amount(AmountError::TooLarge));
    }

    proptest! {
        /// With no divisor, a line is rounded exactly as `Credits::charge` rounds it.
        #[test]
        fn agrees_with_credits_charge(rate_units in 1i64..1_000_000_000_000, rate_scale in 0u32..=12, quantity in 0u64..1_000_000_000) {
            let rate = Decimal::new(rate_units, rate_scale);
            let quantity = Decimal::from(quantity);
            prop_assert_eq!(round_once([[rate, quantity]], 1), Credits::charge(rate, quantity).map_err(PricingError::from));
        }
    }
}
