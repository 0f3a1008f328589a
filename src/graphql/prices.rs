//! Prices: quoting one use of a feature before it is made.

use crate::graphql::amount::CreditAmount;
use crate::graphql::amount::DecimalValue;
use crate::graphql::context::{app, caller};
use crate::graphql::error::ApiResult;
use crate::graphql::types::*;
use async_graphql::{Context, InputObject, Object, SimpleObject};

/// A use of a priced feature: its model and options (the defaults when not given), or for a
/// token-priced feature, the tokens one question used.
#[derive(InputObject, Default)]
pub struct PriceOptionsInput {
    /// A model of the feature (`program.catalog`); the feature's default model when not given.
    pub model: Option<String>,
    /// How many results (images, ...): 1 to the feature's maximum, 1 when not given; the price
    /// scales with it. BAD_USER_INPUT for a feature without a count.
    pub count: Option<u32>,
    /// A generated length in seconds: 1 to the feature's maximum, its default length when not
    /// given; the price scales with length / default length. BAD_USER_INPUT for a feature
    /// without a length.
    pub length_seconds: Option<u32>,
    /// One of the feature's named resolutions ("1080p"), each with its multiplier; the default
    /// resolution when not given. BAD_USER_INPUT for a feature without resolutions.
    pub resolution: Option<String>,
    /// The tokens one question used: required for a token-priced feature, which takes no other
    /// option; refused for any other feature.
    pub tokens: Option<TokenUsageInput>,
}

/// The tokens one AI question used, as the AI provider reported them; each kind has its own
/// price per token. Kinds not given count 0.
#[derive(InputObject, Clone, Copy)]
pub struct TokenUsageInput {
    /// Input (prompt) tokens: 0 to 4294967295.
    #[graphql(default)]
    pub input: u32,
    /// Output (completion) tokens: 0 to 4294967295.
    #[graphql(default)]
    pub output: u32,
    /// Tokens written to the prompt cache: 0 to 4294967295.
    #[graphql(default)]
    pub cache_write: u32,
    /// Tokens read from the prompt cache: 0 to 4294967295.
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
    /// The feature quoted.
    pub feature: String,
    /// The model quoted (the default when none was given); null for a feature without models.
    pub model: Option<String>,
    /// The price of the use: what `spendCredits` with the same `price` charges.
    pub total: CreditAmount,
    /// The breakdown: the base line, then one per option; for a token-priced feature, one
    /// line per token kind.
    pub lines: Vec<PriceQuoteLine>,
}

/// One line of a quote's breakdown.
#[derive(SimpleObject)]
pub struct PriceQuoteLine {
    /// What the line is: the feature's name, "count 2", "length 10 s (default 5 s)",
    /// "resolution 1080p", or "input tokens at 0.0000004 credits each".
    pub label: String,
    /// As a decimal string: credits for the base line, a multiplier for an option, or a token
    /// count. A length factor that is not a finite decimal is shown to 28 digits; the total
    /// uses the exact ratio.
    pub factor: DecimalValue,
}

impl From<crate::ledger::pricing::Quote> for PriceQuote {
    fn from(q: crate::ledger::pricing::Quote) -> Self {
        PriceQuote {
            feature: q.feature,
            model: q.model,
            total: credits(q.total),
            lines: q.lines.into_iter().map(|l| PriceQuoteLine { label: l.label, factor: DecimalValue(l.factor) }).collect(),
        }
    }
}

#[derive(Default)]
pub struct PricesQuery;

#[Object]
impl PricesQuery {
    /// The price of one use of a feature before it is made: the catalog's per-use price scaled
    /// by the options, or a token-priced model's price for the given tokens (any token).
    async fn price_quote(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A feature of the program's catalog (`program.catalog`).")] feature: String,
        #[graphql(desc = "The model and options of the use; the defaults when not given.")] options: Option<PriceOptionsInput>,
    ) -> ApiResult<PriceQuote> {
        caller(ctx)?;
        let reference = options.unwrap_or_default().into_ref(&feature);
        Ok(app(ctx).ledger.price_quote(&reference)?.into())
    }
}
