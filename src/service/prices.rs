//! Prices before use and charges by price reference: the catalog's per-use prices and the
//! token-priced AI models, as the API asks for them.

use crate::ledger::pricing::{self, PricingError, Quote, QuoteLine, QuoteOptions, TokenUsage};
use crate::service::{Engine, Refusal, ServiceError};
use rust_decimal::Decimal;
use serde::Serialize;

/// What a charge or a quote names instead of an amount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PriceRef {
    pub feature: String,
    pub model: Option<String>,
    pub count: Option<u32>,
    pub length_seconds: Option<u32>,
    pub resolution: Option<String>,
    /// For token-priced features (arkain's Side Chat): the tokens one question used.
    #[serde(skip)]
    pub tokens: Option<TokenUsage>,
}

impl From<PricingError> for ServiceError {
    fn from(err: PricingError) -> Self {
        match err {
            PricingError::TierNotOnPlan { .. } => Refusal::not_eligible(err.to_string()).into(),
            _ => ServiceError::bad_input(err.to_string()),
        }
    }
}

impl Engine {
    /// The price of one use, with its breakdown, before the use is made.
    pub fn price_quote(&self, reference: &PriceRef) -> Result<Quote, ServiceError> {
        if let Some(tokens) = self.program.token_pricing.as_ref().filter(|t| t.feature() == reference.feature) {
            if reference.count.is_some() || reference.length_seconds.is_some() || reference.resolution.is_some() {
                return Err(ServiceError::bad_input(format!("{} is priced per token: give tokens, not options", reference.feature)));
            }
            let usage = reference
                .tokens
                .ok_or_else(|| ServiceError::bad_input(format!("{} is priced per token: give tokens", reference.feature)))?;
            let charge = pricing::price_question(tokens, reference.model.as_deref(), &usage)?;
            let lines = charge
                .lines
                .iter()
                .map(|l| QuoteLine {
                    label: format!("{} tokens at {} credits each", l.kind, l.credits_per_token),
                    factor: Decimal::from(l.tokens),
                })
                .collect();
            return Ok(Quote { feature: reference.feature.clone(), model: Some(charge.model), lines, total: charge.total });
        }
        if reference.tokens.is_some() {
            return Err(ServiceError::bad_input(format!("{} is not priced per token", reference.feature)));
        }
        let options =
            QuoteOptions { count: reference.count, length_seconds: reference.length_seconds, resolution: reference.resolution.clone() };
        Ok(pricing::quote(&self.program.catalog, &reference.feature, reference.model.as_deref(), &options)?)
    }
}
