//! Prices: quoting one use of a feature before it is made.

use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{app, caller};
use crate::graphql::error::ApiResult;
use crate::graphql::types::*;
use async_graphql::{Context, InputObject, Object, SimpleObject};
use rust_decimal::Decimal;

/// A use of a priced feature: its model and options (the defaults when not given), or for a
/// token-priced feature, the tokens one question used.
#[derive(InputObject, Default)]
pub struct PriceOptionsInput {
    pub model: Option<String>,
    pub count: Option<u32>,
    pub length_seconds: Option<u32>,
    pub resolution: Option<String>,
    pub tokens: Option<TokenUsageInput>,
}

#[derive(InputObject, Clone, Copy)]
pub struct TokenUsageInput {
    #[graphql(default)]
    pub input: u32,
    #[graphql(default)]
    pub output: u32,
    #[graphql(default)]
    pub cache_write: u32,
    #[graphql(default)]
    pub cache_read: u32,
}

impl From<TokenUsageInput> for crate::ledger::pricing::TokenUsage {
    fn from(t: TokenUsageInput) -> Self {
        crate::ledger::pricing::TokenUsage {
            input: t.input.into(),
            output: t.output.into(),
            cache_write: t.cache_write.into(),
            cache_read: t.cache_read.into(),
        }
    }
}

impl PriceOptionsInput {
    pub fn into_ref(self, feature: &str) -> crate::service::prices::PriceRef {
        crate::service::prices::PriceRef {
            feature: feature.to_string(),
            model: self.model,
            count: self.count,
            length_seconds: self.length_seconds,
            resolution: self.resolution,
            tokens: self.tokens.map(Into::into),
        }
    }
}

/// A price before use, with its breakdown: the base price, then each option's factor (or, for
/// tokens, each kind's count). The total is computed exactly and rounded once, half up.
#[derive(SimpleObject)]
pub struct PriceQuote {
    pub feature: String,
    pub model: Option<String>,
    pub total: CreditAmount,
    pub lines: Vec<PriceQuoteLine>,
}

#[derive(SimpleObject)]
pub struct PriceQuoteLine {
    pub label: String,
    pub factor: Decimal,
}

impl From<crate::ledger::pricing::Quote> for PriceQuote {
    fn from(q: crate::ledger::pricing::Quote) -> Self {
        PriceQuote {
            feature: q.feature,
            model: q.model,
            total: credits(q.total),
            lines: q.lines.into_iter().map(|l| PriceQuoteLine { label: l.label, factor: l.factor }).collect(),
        }
    }
}

#[derive(Default)]
pub struct PricesQuery;

#[Object]
impl PricesQuery {
    /// The price of one use of a feature before it is made: the catalog's per-use price scaled
    /// by the options, or a token-priced model's price for the given tokens.
    async fn price_quote(&self, ctx: &Context<'_>, feature: String, options: Option<PriceOptionsInput>) -> ApiResult<PriceQuote> {
        caller(ctx)?;
        let reference = options.unwrap_or_default().into_ref(&feature);
        Ok(app(ctx).ledger.price_quote(&reference)?.into())
    }
}
