//! Prices (domain.md §4): what a use of a feature, an AI question or a metered resource costs.
//! Pure functions over the program's price configuration; no database, no clock.
//!
//! # The one rounding
//!
//! Every priced line is computed exactly and rounded once, half up, to 0.000001 credit
//! (domain.md §2), like [`Credits::charge`]:
//!
//! - a catalog quote: `base x count x resolution multiplier x length / default length`;
//! - an AI question: `sum over token kinds of (credits per token x tokens)`, one line;
//! - container time and add-ons: `credits per hour x seconds / 3600`;
//! - storage: `credits per GB-hour x GB-seconds over the quota / 3600`;
//! - traffic: `credits per GB x bytes over the free allowance / 10^9`.
//!
//! Some of these are not finite decimals (6.80 / 3600 = 0.0018888...), so a line is evaluated as
//! one fraction of integers, in i128, and only the final quotient is rounded: a value is never
//! rounded twice, and an overflow is an error, never a silently truncated digit. Sums over lines
//! (a settlement) add already-rounded lines.

mod catalog;
mod metered;
mod rounding;
mod tokens;

pub use catalog::*;
pub use metered::*;
pub use tokens::*;

use crate::ledger::AmountError;
use crate::ledger::amount::MAX_OPERATION_CREDITS;
use rust_decimal::Decimal;

/// Rates may be finer than amounts (0.0000004 credit a token), down to 10^-12 credit. The bound
/// keeps the exact fraction of any sensible line within i128; past it, pricing fails, never rounds.
pub const MAX_RATE_SCALE: u32 = 12;
/// Limits on a price list, so a config cannot make a lookup slow or a price absurd.
pub const MAX_PRICE_ENTRIES: usize = 1000;
pub const MAX_CODE_CHARS: usize = 64;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_COUNT: u32 = 100;
pub const MAX_LENGTH_SECONDS: u32 = 3600;
pub const MAX_MULTIPLIER: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("unknown feature {0:?}")]
    UnknownFeature(String),
    #[error("unknown model {model:?} for {feature}")]
    UnknownModel { feature: String, model: String },
    #[error("{feature} has no {option} option")]
    UnknownOption { feature: String, option: &'static str },
    #[error("{option} must be {min} to {max}, not {value}")]
    OutOfRange { option: &'static str, value: u64, min: u64, max: u64 },
    #[error("unknown resolution {level:?}; one of: {levels}")]
    UnknownResolution { level: String, levels: String },
    #[error("{model} has no price for {kind} tokens")]
    UnpricedTokens { model: String, kind: TokenKind },
    #[error("unknown container tier {0:?}")]
    UnknownTier(String),
    #[error("unknown add-on {0:?}")]
    UnknownAddOn(String),
    #[error("the {tier} tier is not available on the {plan} plan")]
    TierNotOnPlan { tier: String, plan: String },
    #[error("{0} must be a non-negative, exact quantity")]
    InvalidQuantity(&'static str),
    #[error(transparent)]
    Amount(#[from] AmountError),
}

// Config checks shared by the constructors of the catalog, token pricing and metering.

/// Codes travel in requests and journal reasons: short, lowercase, no spaces.
fn check_code(what: &str, code: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.');
    if code.is_empty() || code.len() > MAX_CODE_CHARS || !code.chars().all(allowed) {
        return Err(format!("{what} {code:?} must be 1 to {MAX_CODE_CHARS} of a-z, 0-9, -, _, ."));
    }
    Ok(())
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("{what}: name must be 1 to {MAX_NAME_CHARS} characters"));
    }
    Ok(())
}

/// A price or rate: positive, at most 10^-12 fine, at most one operation's maximum.
fn check_rate(what: &str, rate: Decimal) -> Result<(), String> {
    if rate <= Decimal::ZERO || rate.normalize().scale() > MAX_RATE_SCALE || rate > Decimal::from(MAX_OPERATION_CREDITS) {
        return Err(format!("{what}: a price must be positive, with at most {MAX_RATE_SCALE} decimals, at most {MAX_OPERATION_CREDITS}"));
    }
    Ok(())
}

/// Fixtures shared by the tests of the pricing modules.
#[cfg(test)]
mod test_support {
    use super::*;
    use crate::ledger::Credits;
    use std::str::FromStr;

    pub(super) fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    pub(super) fn credits(s: &str) -> Credits {
        Credits::parse_positive(dec(s)).unwrap()
    }

    pub(super) fn arkain_tokens() -> TokenPricing {
        let model = |code: &str, input: &str, output: &str, write: Option<&str>, read: &str| TokenModel {
            model: code.into(),
            name: code.into(),
            credits_per_token: TokenRates {
                input: dec(input),
                output: dec(output),
                cache_write: write.map(dec),
                cache_read: Some(dec(read)),
            },
        };
        let models = vec![
            model("claude-sonnet-4.6", "0.00024", "0.0012", Some("0.0003"), "0.000024"),
            model("gpt-5-nano", "0.000004", "0.000032", None, "0.0000004"),
        ];
        TokenPricing::new("side-chat".into(), "claude-sonnet-4.6".into(), models).unwrap()
    }

    pub(super) fn arkain_metering() -> Metering {
        let tier = |code: &str, rate: &str, plans: Option<&[&str]>| ContainerTier {
            code: code.into(),
            name: code.into(),
            credits_per_hour: dec(rate),
            plans: plans.map(|p| p.iter().map(|s| s.to_string()).collect()),
        };
        let tiers = vec![tier("micro", "1.96", None), tier("small", "6.80", None), tier("gpu_basic", "51.76", Some(&["membership"]))];
        let code_supporter = AddOn {
            code: "code_supporter".into(),
            name: "Code Supporter".into(),
            credits_per_hour: dec("1.96"),
            free_on_tiers: vec!["gpu_basic".into()],
        };
        let storage = StorageRate { credits_per_gb_hour: dec("0.018") };
        let traffic = TrafficRate { credits_per_gb: dec("8"), free_bytes_per_month: 10 * BYTES_PER_GB };
        Metering::new(tiers, vec![code_supporter], storage, traffic).unwrap()
    }
}
