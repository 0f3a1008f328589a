//! The scalars of amounts: credit amounts and measured quantities are JSON strings of a strict
//! grammar, never JSON numbers (which pass through floating point on the way in). The grammars
//! are the ledger's (`ledger::amount`, `ledger::metering`); this module only speaks GraphQL.
//!
//! A value is checked twice by async-graphql: `is_valid` during validation, so a bad literal or
//! variable refuses the whole request before anything runs (GraphQL's "values of correct type"),
//! and `parse` when the value is read, which says what is wrong. Both errors carry
//! `BAD_USER_INPUT` (validation errors get it from the HTTP layer, like every library error).

use crate::graphql::error::code;
use crate::ledger::Credits;
use crate::ledger::amount::CREDIT_SCALE;
use crate::ledger::metering::parse_quantity;
use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use rust_decimal::Decimal;

/// A credit amount as the API speaks it: exact, non-negative, at most 6 places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CreditAmount(pub Credits);

impl From<Credits> for CreditAmount {
    fn from(credits: Credits) -> Self {
        CreditAmount(credits)
    }
}

impl From<CreditAmount> for Credits {
    fn from(amount: CreditAmount) -> Self {
        amount.0
    }
}

fn refusal<T: async_graphql::InputType>(error: InputValueError<T>) -> InputValueError<T> {
    error.with_extension("code", code::BAD_USER_INPUT)
}

/// An amount of credits, exact to 0.000001 credit, as a JSON string matching
/// `^(0|[1-9][0-9]*)(\.[0-9]{1,6})?$`: "0", "12", "12.5", "1.50", "0.000001". No sign, exponent,
/// underscore, comma, spaces, leading "+" or leading zeros; "1." and ".5" are refused, and so is
/// a JSON number (it would pass through floating point). As an input, at most 1000000000 (one
/// operation's maximum), and operations that move credits refuse "0". Outputs are written
/// without trailing zeros and may be larger (a balance). A refused value is BAD_USER_INPUT and
/// changes nothing.
#[Scalar(name = "CreditAmount")]
impl ScalarType for CreditAmount {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => Credits::parse_str(text).map(CreditAmount).map_err(|e| refusal(InputValueError::custom(e))),
            _ => Err(refusal(InputValueError::expected_type(value))),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(text) if Credits::parse_str(text).is_ok())
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

/// A change to an account's credits (a journal entry or line): negative when credits left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignedCreditAmount(pub i64);

impl SignedCreditAmount {
    pub fn from_micros(micros: i64) -> SignedCreditAmount {
        SignedCreditAmount(micros)
    }

    fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, CREDIT_SCALE).normalize()
    }
}

/// A change to an account's credits, exact to 0.000001 credit, as a JSON string: a CreditAmount
/// with a leading "-" when credits left the account (`^-?(0|[1-9][0-9]*)(\.[0-9]{1,6})?$`, never
/// "-0"), such as "-12.5" or "300". Written without trailing zeros. Only ever an output.
#[Scalar(name = "SignedCreditAmount")]
impl ScalarType for SignedCreditAmount {
    fn parse(value: Value) -> InputValueResult<Self> {
        let Value::String(text) = &value else { return Err(refusal(InputValueError::expected_type(value))) };
        let (negative, digits) = match text.strip_prefix('-') {
            Some(digits) => (true, digits),
            None => (false, text.as_str()),
        };
        let credits = Credits::parse_str(digits).map_err(|e| refusal(InputValueError::custom(e)))?;
        if negative && credits.is_zero() {
            return Err(refusal(InputValueError::custom("zero has no sign")));
        }
        Ok(SignedCreditAmount(if negative { -credits.micros() } else { credits.micros() }))
    }

    fn is_valid(value: &Value) -> bool {
        Self::parse(value.clone()).is_ok()
    }

    fn to_value(&self) -> Value {
        Value::String(self.to_decimal().to_string())
    }
}

/// A measured quantity (storage in GB, traffic in bytes) as the API speaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(pub Decimal);

/// A measured quantity, not credits (storage in GB, traffic in bytes), as a JSON string matching
/// `^(0|[1-9][0-9]{0,15})(\.[0-9]{1,9})?$`: the grammar of CreditAmount with up to 9 decimal
/// places (GB are exact to the byte). No sign, exponent, underscore, spaces or leading zeros, and
/// never a JSON number. Each field says its unit and range. A refused value is BAD_USER_INPUT.
#[Scalar(name = "Quantity")]
impl ScalarType for Quantity {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => parse_quantity(text).map(Quantity).map_err(|e| refusal(InputValueError::custom(e))),
            _ => Err(refusal(InputValueError::expected_type(value))),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(text) if parse_quantity(text).is_ok())
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.normalize().to_string())
    }
}

/// An exact decimal that is not an amount of credits (a rate, a quantity, a multiplier, a
/// percentage). The schema calls it `Decimal`, as async-graphql's `rust_decimal` scalar did, and
/// writes it the same way (`Decimal`'s `Display`); it is ours only so the scalar has a
/// description. Only ever an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalValue(pub Decimal);

impl From<Decimal> for DecimalValue {
    fn from(value: Decimal) -> Self {
        DecimalValue(value)
    }
}

/// An exact decimal number that is not an amount of credits (a rate, a quantity, a
/// multiplier, a percentage), as a JSON string of digits with an optional leading "-" and
/// decimal point, such as "6.8", "0.018" or "30"; never an exponent, never a JSON number. It
/// may carry more places than a CreditAmount (up to 28). Each field says its unit. Only ever an
/// output.
#[Scalar(name = "Decimal")]
impl ScalarType for DecimalValue {
    /// No input takes one; a string is read as `rust_decimal` reads it.
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => text.parse::<Decimal>().map(DecimalValue).map_err(|e| refusal(InputValueError::custom(e))),
            _ => Err(refusal(InputValueError::expected_type(value))),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::amount::AMOUNT_PATTERN;
    use crate::ledger::metering::QUANTITY_PATTERN;

    fn code_of<T: async_graphql::InputType>(error: InputValueError<T>) -> Option<Value> {
        let server = error.into_server_error(async_graphql::Pos::default());
        server.extensions.and_then(|e| e.get("code").cloned())
    }

    #[test]
    fn amounts_are_strings_of_the_grammar() {
        let amount = |v: Value| CreditAmount::parse(v).map(|a| a.0.micros());
        assert_eq!(amount(Value::from("12.5")).unwrap(), 12_500_000);
        assert_eq!(amount(Value::from("0")).unwrap(), 0);
        assert_eq!(CreditAmount(Credits::from_micros(1_500_000)).to_value(), Value::from("1.5"));
        for bad in [Value::from(5), Value::from(1.5), Value::from(true), Value::Null, Value::List(vec![Value::from("1")])] {
            assert!(!CreditAmount::is_valid(&bad), "{bad}");
            assert_eq!(code_of(CreditAmount::parse(bad).unwrap_err()), Some(Value::from(code::BAD_USER_INPUT)));
        }
        for bad in ["01", "1.", ".5", "1_000", "+5", "1e3", "0.0000001", "1000000001"] {
            assert!(!CreditAmount::is_valid(&Value::from(bad)), "{bad}");
            assert_eq!(code_of(CreditAmount::parse(Value::from(bad)).unwrap_err()), Some(Value::from(code::BAD_USER_INPUT)), "{bad}");
        }
    }

    #[test]
    fn signed_amounts_print_their_sign() {
        assert_eq!(SignedCreditAmount(-12_500_000).to_value(), Value::from("-12.5"));
        assert_eq!(SignedCreditAmount(0).to_value(), Value::from("0"));
        assert_eq!(SignedCreditAmount::parse(Value::from("-0.000001")).unwrap(), SignedCreditAmount(-1));
        for bad in ["-0", "--1", "+1", "- 1"] {
            assert!(!SignedCreditAmount::is_valid(&Value::from(bad)), "{bad}");
        }
    }

    #[test]
    fn quantities_are_strings_of_their_grammar() {
        assert_eq!(Quantity::parse(Value::from("6.000000001")).unwrap().0.to_string(), "6.000000001");
        assert!(!Quantity::is_valid(&Value::from(6)), "a JSON number");
        assert!(!Quantity::is_valid(&Value::from("1e3")));
        assert_eq!(Quantity(Decimal::new(1500, 3)).to_value(), Value::from("1.5"));
    }

    #[test]
    fn decimals_are_written_as_async_graphql_wrote_them() {
        for text in ["6.8", "0.018", "30", "5.000", "-1.5", "0.0000004"] {
            let decimal: Decimal = text.parse().unwrap();
            assert_eq!(DecimalValue(decimal).to_value(), Value::String(decimal.to_string()), "{text}");
            assert_eq!(DecimalValue::parse(Value::from(text)).unwrap(), DecimalValue(decimal));
        }
    }

    /// The schema's descriptions state the grammars the ledger checks.
    #[test]
    fn the_schema_states_each_grammar() {
        let sdl = crate::graphql::sdl();
        assert!(sdl.contains(AMOUNT_PATTERN), "CreditAmount's pattern is in the schema");
        assert!(sdl.contains(QUANTITY_PATTERN), "Quantity's pattern is in the schema");
    }
}
