//! AI priced by model and tokens, and the free trial uses some features share.

use super::rounding::round_once;
use super::{MAX_PRICE_ENTRIES, PricingError, check_code, check_name, check_rate};
use crate::ledger::Credits;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Input,
    Output,
    CacheWrite,
    CacheRead,
}

impl TokenKind {
    pub const ALL: [TokenKind; 4] = [TokenKind::Input, TokenKind::Output, TokenKind::CacheWrite, TokenKind::CacheRead];
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenKind::Input => "input",
            TokenKind::Output => "output",
            TokenKind::CacheWrite => "cache write",
            TokenKind::CacheRead => "cache read",
        })
    }
}

/// Credits per token of each kind; a kind the model does not offer has no price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRates {
    pub input: Decimal,
    pub output: Decimal,
    #[serde(default)]
    pub cache_write: Option<Decimal>,
    #[serde(default)]
    pub cache_read: Option<Decimal>,
}

impl TokenRates {
    pub fn rate(&self, kind: TokenKind) -> Option<Decimal> {
        match kind {
            TokenKind::Input => Some(self.input),
            TokenKind::Output => Some(self.output),
            TokenKind::CacheWrite => self.cache_write,
            TokenKind::CacheRead => self.cache_read,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenModel {
    pub model: String,
    pub name: String,
    pub credits_per_token: TokenRates,
}

/// AI priced by model and tokens (arkain's Side Chat): one feature, its models, a default model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPricing {
    feature: String,
    default_model: String,
    models: Vec<TokenModel>,
}

impl TokenPricing {
    pub fn new(feature: String, default_model: String, models: Vec<TokenModel>) -> Result<TokenPricing, String> {
        check_code("feature", &feature)?;
        if models.is_empty() || models.len() > MAX_PRICE_ENTRIES {
            return Err(format!("{feature} needs 1 to {MAX_PRICE_ENTRIES} models"));
        }
        for m in &models {
            check_code("model", &m.model)?;
            check_name(&m.model, &m.name)?;
            if models.iter().filter(|n| n.model == m.model).count() > 1 {
                return Err(format!("model {} is listed twice", m.model));
            }
            for kind in TokenKind::ALL {
                if let Some(rate) = m.credits_per_token.rate(kind) {
                    check_rate(&format!("{} {kind} tokens", m.model), rate)?;
                }
            }
        }
        if !models.iter().any(|m| m.model == default_model) {
            return Err(format!("default_model {default_model:?} is not one of the models"));
        }
        Ok(TokenPricing { feature, default_model, models })
    }

    pub fn feature(&self) -> &str {
        &self.feature
    }

    pub fn default_model(&self) -> &str {
        &self.default_model
    }

    pub fn models(&self) -> &[TokenModel] {
        &self.models
    }

    /// The named model, or the default one.
    pub fn model(&self, model: Option<&str>) -> Result<&TokenModel, PricingError> {
        let code = model.unwrap_or(&self.default_model);
        self.models
            .iter()
            .find(|m| m.model == code)
            .ok_or_else(|| PricingError::UnknownModel { feature: self.feature.clone(), model: code.to_string() })
    }
}

/// The tokens one question used, as the AI provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
    pub cache_write: u64,
    pub cache_read: u64,
}

impl TokenUsage {
    pub fn tokens(&self, kind: TokenKind) -> u64 {
        match kind {
            TokenKind::Input => self.input,
            TokenKind::Output => self.output,
            TokenKind::CacheWrite => self.cache_write,
            TokenKind::CacheRead => self.cache_read,
        }
    }
}

/// One question's charge: a single charged line, with the token kinds it is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCharge {
    pub model: String,
    /// The kinds with tokens, in the order input, output, cache write, cache read.
    pub lines: Vec<TokenLine>,
    /// The exact sum of `credits_per_token x tokens` over the lines, rounded once.
    pub total: Credits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenLine {
    pub kind: TokenKind,
    pub tokens: u64,
    pub credits_per_token: Decimal,
}

/// Prices one question on `model` (None: the default model). Using a token kind the model has no
/// price for is an error rather than free: the usage report would be wrong.
pub fn price_question(pricing: &TokenPricing, model: Option<&str>, usage: &TokenUsage) -> Result<TokenCharge, PricingError> {
    let model = pricing.model(model)?;
    let mut lines = Vec::new();
    for kind in TokenKind::ALL {
        let tokens = usage.tokens(kind);
        if tokens == 0 {
            continue;
        }
        let rate = model.credits_per_token.rate(kind).ok_or_else(|| PricingError::UnpricedTokens { model: model.model.clone(), kind })?;
        lines.push(TokenLine { kind, tokens, credits_per_token: rate });
    }
    let total = round_once(lines.iter().map(|l| [l.credits_per_token, Decimal::from(l.tokens)]), 1)?;
    Ok(TokenCharge { model: model.model.clone(), lines, total })
}

/// Free trial uses shared by several features (arkain: Snap and Side Chat share 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeTrial {
    pub uses: u32,
    pub features: Vec<String>,
}

/// The most free trial uses a program may give.
pub const MAX_FREE_TRIAL_USES: u32 = 1000;

impl FreeTrial {
    pub fn covers(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// Whether the next use of `feature` is free, after `used` trial uses of any covered feature.
    pub fn is_free(&self, feature: &str, used: u32) -> bool {
        self.covers(feature) && used < self.uses
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::pricing::test_support::{arkain_tokens, credits, dec};

    #[test]
    fn a_million_tokens_at_0_0000004_is_0_4() {
        let usage = TokenUsage { cache_read: 1_000_000, ..TokenUsage::default() };
        let charge = price_question(&arkain_tokens(), Some("gpt-5-nano"), &usage).unwrap();
        assert_eq!(charge.total, credits("0.4"));
        assert_eq!(charge.lines, [TokenLine { kind: TokenKind::CacheRead, tokens: 1_000_000, credits_per_token: dec("0.0000004") }]);
    }

    #[test]
    fn a_question_is_one_line_on_the_default_model() {
        // claude-sonnet-4.6: 1,234 x 0.00024 + 567 x 0.0012 + 89 x 0.0003 + 4,321 x 0.000024
        // = 0.29616 + 0.6804 + 0.0267 + 0.103704 = 1.106964. Its rates are whole micro-credits,
        // so a sonnet line never has a remainder to round.
        let usage = TokenUsage { input: 1234, output: 567, cache_write: 89, cache_read: 4321 };
        let charge = price_question(&arkain_tokens(), None, &usage).unwrap();
        assert_eq!(charge.model, "claude-sonnet-4.6");
        assert_eq!(charge.total, credits("1.106964"));
        assert_eq!(charge.lines.iter().map(|l| l.kind).collect::<Vec<_>>(), TokenKind::ALL);
        // gpt-5-nano: 1,000 x 0.000004 + 500 x 0.000032 + 1,234,567 x 0.0000004
        // = 0.004 + 0.016 + 0.4938268 = 0.5138268 -> 0.513827 (the remainder 0.8 micro rounds up).
        let usage = TokenUsage { input: 1000, output: 500, cache_read: 1_234_567, ..TokenUsage::default() };
        assert_eq!(price_question(&arkain_tokens(), Some("gpt-5-nano"), &usage).unwrap().total, credits("0.513827"));
        // 3 cache reads: 0.0000012 -> 0.000001 (0.2 micro rounds down).
        let usage = TokenUsage { cache_read: 3, ..TokenUsage::default() };
        assert_eq!(price_question(&arkain_tokens(), Some("gpt-5-nano"), &usage).unwrap().total, Credits::from_micros(1));
        assert_eq!(price_question(&arkain_tokens(), None, &TokenUsage::default()).unwrap().total, Credits::ZERO);
    }

    #[test]
    fn token_kinds_are_summed_exactly_then_rounded_once_half_up() {
        // Rates of 0.5 and 1.5 micro-credits a token. 1 input + 1 output: the exact sum is
        // 0.5 + 1.5 = 2 micro, where rounding each kind would have made 1 + 2 = 3. Adding 1 cache
        // read: 2.5 micro, rounded once, half up: 3 (per kind it would be 1 + 2 + 1 = 4).
        let rates = TokenRates { input: dec("0.0000005"), output: dec("0.0000015"), cache_write: None, cache_read: Some(dec("0.0000005")) };
        let pricing = TokenPricing::new(
            "side-chat".into(),
            "half".into(),
            vec![TokenModel { model: "half".into(), name: "Half".into(), credits_per_token: rates }],
        )
        .unwrap();
        let price = |input, output, cache_read| {
            price_question(&pricing, None, &TokenUsage { input, output, cache_read, cache_write: 0 }).unwrap().total.micros()
        };
        assert_eq!(price(1, 0, 0), 1, "half a micro rounds up");
        assert_eq!(price(1, 1, 0), 2, "one rounding for the whole question");
        assert_eq!(price(1, 1, 1), 3, "2.5 micro rounds up");
    }

    #[test]
    fn token_errors() {
        let pricing = arkain_tokens();
        let usage = TokenUsage { input: 10, cache_write: 1, ..TokenUsage::default() };
        assert_eq!(
            price_question(&pricing, Some("gpt-5-nano"), &usage),
            Err(PricingError::UnpricedTokens { model: "gpt-5-nano".into(), kind: TokenKind::CacheWrite })
        );
        assert_eq!(
            price_question(&pricing, Some("gpt-4"), &usage),
            Err(PricingError::UnknownModel { feature: "side-chat".into(), model: "gpt-4".into() })
        );
        let models = pricing.models().to_vec();
        assert!(TokenPricing::new("side-chat".into(), "gpt-4".into(), models.clone()).is_err(), "unknown default");
        assert!(TokenPricing::new("side-chat".into(), "gpt-5-nano".into(), [models.clone(), models].concat()).is_err(), "listed twice");
    }

    #[test]
    fn free_trial_uses_are_shared() {
        let trial = FreeTrial { uses: 3, features: vec!["snap".into(), "side-chat".into()] };
        assert!(trial.is_free("snap", 0) && trial.is_free("side-chat", 2));
        assert!(!trial.is_free("snap", 3));
        assert!(!trial.is_free("video", 0));
    }
}
