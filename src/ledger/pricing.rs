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

use crate::ledger::amount::{CREDIT_SCALE, MAX_OPERATION_CREDITS, MAX_OPERATION_MICROS};
use crate::ledger::{AmountError, Credits};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

pub const SECONDS_PER_HOUR: u64 = 3600;
/// Storage and traffic count decimal gigabytes: 1 GB = 10^9 bytes.
pub const BYTES_PER_GB: u64 = 1_000_000_000;
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

// ---------------------------------------------------------------------------------------------
// Per-use catalog
// ---------------------------------------------------------------------------------------------

/// One priced feature, or one model of a feature: credits per use at default options, and the
/// options that scale that price.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub feature: String,
    /// None for a feature priced without a choice of model.
    #[serde(default)]
    pub model: Option<String>,
    /// What users see: "Carat Video (LTX)".
    pub name: String,
    /// Credits per use at default options.
    pub credits: Decimal,
    /// The feature's model when a request names none (required when a feature has several).
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub count: Option<CountOption>,
    #[serde(default)]
    pub length: Option<LengthOption>,
    #[serde(default)]
    pub resolution: Option<ResolutionOption>,
}

/// How many results one request makes (default 1); the price is multiplied by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountOption {
    pub max: u32,
}

/// A generated length; the price scales linearly with `length / default_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LengthOption {
    pub default_seconds: u32,
    pub max_seconds: u32,
}

/// Named resolutions, each multiplying the price exactly; `default` is what the base price is for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolutionOption {
    pub default: String,
    pub levels: Vec<ResolutionLevel>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolutionLevel {
    pub name: String,
    pub multiplier: Decimal,
}

/// A validated catalog: features are unique or split into uniquely named models with exactly one
/// default, and every price and option is in range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
}

impl Catalog {
    pub fn new(entries: Vec<CatalogEntry>) -> Result<Catalog, String> {
        if entries.len() > MAX_PRICE_ENTRIES {
            return Err(format!("at most {MAX_PRICE_ENTRIES} catalog entries"));
        }
        for entry in &entries {
            let what = entry.label();
            check_code("feature", &entry.feature)?;
            if let Some(model) = &entry.model {
                check_code("model", model)?;
            }
            check_name(&what, &entry.name)?;
            check_rate(&what, entry.credits)?;
            if let Some(count) = entry.count
                && !(1..=MAX_COUNT).contains(&count.max)
            {
                return Err(format!("{what}: count.max must be 1 to {MAX_COUNT}"));
            }
            if let Some(length) = entry.length
                && !(1 <= length.default_seconds
                    && length.default_seconds <= length.max_seconds
                    && length.max_seconds <= MAX_LENGTH_SECONDS)
            {
                return Err(format!("{what}: length needs 1 <= default_seconds <= max_seconds <= {MAX_LENGTH_SECONDS}"));
            }
            if let Some(resolution) = &entry.resolution {
                check_resolution(&what, resolution)?;
            }
            let siblings: Vec<&CatalogEntry> = entries.iter().filter(|e| e.feature == entry.feature).collect();
            if siblings.iter().filter(|e| e.model == entry.model).count() > 1 {
                return Err(format!("{what} is listed twice"));
            }
            if siblings.len() > 1 && entry.model.is_none() {
                return Err(format!("{what}: a feature with several entries needs a model on each"));
            }
            let defaults = siblings.iter().filter(|e| e.default).count();
            if defaults > 1 || (siblings.len() > 1 && defaults == 0) {
                return Err(format!("feature {} needs exactly one default model", entry.feature));
            }
        }
        Ok(Catalog { entries })
    }

    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    pub fn has_feature(&self, feature: &str) -> bool {
        self.entries.iter().any(|e| e.feature == feature)
    }

    /// The entry a request prices: the named model, or the feature's default.
    pub fn entry(&self, feature: &str, model: Option<&str>) -> Result<&CatalogEntry, PricingError> {
        let siblings: Vec<&CatalogEntry> = self.entries.iter().filter(|e| e.feature == feature).collect();
        if siblings.is_empty() {
            return Err(PricingError::UnknownFeature(feature.to_string()));
        }
        let found = match model {
            Some(model) => siblings.iter().find(|e| e.model.as_deref() == Some(model)),
            None => siblings.iter().find(|e| e.default || siblings.len() == 1),
        };
        found
            .copied()
            .ok_or_else(|| PricingError::UnknownModel { feature: feature.to_string(), model: model.unwrap_or_default().to_string() })
    }
}

impl CatalogEntry {
    fn label(&self) -> String {
        match &self.model {
            Some(model) => format!("{}/{model}", self.feature),
            None => self.feature.clone(),
        }
    }
}

fn check_resolution(what: &str, resolution: &ResolutionOption) -> Result<(), String> {
    if resolution.levels.is_empty() || resolution.levels.len() > MAX_PRICE_ENTRIES {
        return Err(format!("{what}: resolution needs 1 to {MAX_PRICE_ENTRIES} levels"));
    }
    for level in &resolution.levels {
        check_code("resolution", &level.name)?;
        if resolution.levels.iter().filter(|l| l.name == level.name).count() > 1 {
            return Err(format!("{what}: resolution {} is listed twice", level.name));
        }
        let multiplier = level.multiplier;
        if multiplier <= Decimal::ZERO || multiplier > Decimal::from(MAX_MULTIPLIER) || multiplier.normalize().scale() > MAX_RATE_SCALE {
            return Err(format!("{what}: resolution {} needs a multiplier in (0, {MAX_MULTIPLIER}]", level.name));
        }
    }
    // The base price is the price at the default resolution.
    if !resolution.levels.iter().any(|l| l.name == resolution.default && l.multiplier == Decimal::ONE) {
        return Err(format!("{what}: default resolution {:?} must be one of the levels, with multiplier 1", resolution.default));
    }
    Ok(())
}

/// The options of a catalog request; None means the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuoteOptions {
    pub count: Option<u32>,
    pub length_seconds: Option<u32>,
    pub resolution: Option<String>,
}

/// A price before the request is made, with its breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub feature: String,
    pub model: Option<String>,
    /// The base price first (`factor` = credits per use at default options), then one line per
    /// option the entry has, each multiplying by its `factor`.
    pub lines: Vec<QuoteLine>,
    /// The exact product of every line, rounded once, half up, to the micro-credit.
    pub total: Credits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteLine {
    /// "Carat Video (LTX)", "count 2", "length 10 s (default 5 s)", "resolution 1080p".
    pub label: String,
    /// Credits for the base line, a multiplier for an option. A length factor whose default does
    /// not divide a power of ten (10 s / 3 s) is shown to 28 digits; the total uses the exact ratio.
    pub factor: Decimal,
}

/// The price of one request to a catalog feature (`model` None: the feature's default).
pub fn quote(catalog: &Catalog, feature: &str, model: Option<&str>, options: &QuoteOptions) -> Result<Quote, PricingError> {
    let entry = catalog.entry(feature, model)?;
    let unknown = |option: &'static str| PricingError::UnknownOption { feature: feature.to_string(), option };
    let mut lines = vec![QuoteLine { label: entry.name.clone(), factor: entry.credits }];
    // The exact price is one fraction: base x count x multiplier x length / default length.
    let mut factors = vec![entry.credits];
    let mut divisor = 1;
    match (entry.count, options.count) {
        (None, Some(_)) => return Err(unknown("count")),
        (None, None) => {}
        (Some(allowed), count) => {
            let count = count.unwrap_or(1);
            if !(1..=allowed.max).contains(&count) {
                return Err(PricingError::OutOfRange { option: "count", value: count.into(), min: 1, max: allowed.max.into() });
            }
            factors.push(count.into());
            lines.push(QuoteLine { label: format!("count {count}"), factor: count.into() });
        }
    }
    match (entry.length, options.length_seconds) {
        (None, Some(_)) => return Err(unknown("length_seconds")),
        (None, None) => {}
        (Some(allowed), seconds) => {
            let seconds = seconds.unwrap_or(allowed.default_seconds);
            if !(1..=allowed.max_seconds).contains(&seconds) {
                let max = allowed.max_seconds.into();
                return Err(PricingError::OutOfRange { option: "length_seconds", value: seconds.into(), min: 1, max });
            }
            factors.push(seconds.into());
            divisor = u64::from(allowed.default_seconds);
            let factor = (Decimal::from(seconds) / Decimal::from(allowed.default_seconds)).normalize();
            lines.push(QuoteLine { label: format!("length {seconds} s (default {} s)", allowed.default_seconds), factor });
        }
    }
    match (&entry.resolution, &options.resolution) {
        (None, Some(_)) => return Err(unknown("resolution")),
        (None, None) => {}
        (Some(allowed), level) => {
            let name = level.as_deref().unwrap_or(&allowed.default);
            let level = allowed.levels.iter().find(|l| l.name == name).ok_or_else(|| PricingError::UnknownResolution {
                level: name.to_string(),
                levels: allowed.levels.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", "),
            })?;
            factors.push(level.multiplier);
            lines.push(QuoteLine { label: format!("resolution {}", level.name), factor: level.multiplier });
        }
    }
    let total = round_once([factors], divisor)?;
    Ok(Quote { feature: entry.feature.clone(), model: entry.model.clone(), lines, total })
}

// ---------------------------------------------------------------------------------------------
// Token-priced AI models
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Metered resources
// ---------------------------------------------------------------------------------------------

/// A container performance tier, priced per hour and prorated per second.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerTier {
    pub code: String,
    pub name: String,
    pub credits_per_hour: Decimal,
    /// The plans that may run it; None: every plan.
    #[serde(default)]
    pub plans: Option<Vec<String>>,
}

impl ContainerTier {
    pub fn allows(&self, plan: &str) -> bool {
        self.plans.as_ref().is_none_or(|plans| plans.iter().any(|p| p == plan))
    }
}

/// An add-on billed per hour on top of a container's tier, free on some tiers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddOn {
    pub code: String,
    pub name: String,
    pub credits_per_hour: Decimal,
    #[serde(default)]
    pub free_on_tiers: Vec<String>,
}

/// Storage over the plan's free quota (plans' `storage_quota_gb`), over all containers together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageRate {
    pub credits_per_gb_hour: Decimal,
}

/// Traffic over a free monthly allowance, prorated per byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficRate {
    pub credits_per_gb: Decimal,
    pub free_bytes_per_month: u64,
}

/// Metered resource rates (arkain). Programs without metered resources have none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metering {
    tiers: Vec<ContainerTier>,
    add_ons: Vec<AddOn>,
    storage: StorageRate,
    traffic: TrafficRate,
}

impl Metering {
    /// Checks codes and rates; which plans exist is the program's to check.
    pub fn new(tiers: Vec<ContainerTier>, add_ons: Vec<AddOn>, storage: StorageRate, traffic: TrafficRate) -> Result<Metering, String> {
        if tiers.is_empty() || tiers.len() > MAX_PRICE_ENTRIES || add_ons.len() > MAX_PRICE_ENTRIES {
            return Err(format!("metering needs 1 to {MAX_PRICE_ENTRIES} tiers and at most {MAX_PRICE_ENTRIES} add-ons"));
        }
        for tier in &tiers {
            check_code("tier", &tier.code)?;
            check_name(&tier.code, &tier.name)?;
            check_rate(&tier.code, tier.credits_per_hour)?;
            if tiers.iter().filter(|t| t.code == tier.code).count() > 1 {
                return Err(format!("tier {} is listed twice", tier.code));
            }
            if tier.plans.as_ref().is_some_and(|plans| plans.is_empty()) {
                return Err(format!("tier {}: an empty plans list would make it unusable; omit it for every plan", tier.code));
            }
        }
        for add_on in &add_ons {
            check_code("add-on", &add_on.code)?;
            check_name(&add_on.code, &add_on.name)?;
            check_rate(&add_on.code, add_on.credits_per_hour)?;
            if add_ons.iter().filter(|a| a.code == add_on.code).count() > 1 {
                return Err(format!("add-on {} is listed twice", add_on.code));
            }
            if let Some(unknown) = add_on.free_on_tiers.iter().find(|t| !tiers.iter().any(|tier| tier.code == **t)) {
                return Err(format!("add-on {}: free_on_tiers names unknown tier {unknown:?}", add_on.code));
            }
        }
        check_rate("storage.credits_per_gb_hour", storage.credits_per_gb_hour)?;
        check_rate("traffic.credits_per_gb", traffic.credits_per_gb)?;
        Ok(Metering { tiers, add_ons, storage, traffic })
    }

    pub fn tiers(&self) -> &[ContainerTier] {
        &self.tiers
    }

    pub fn add_ons(&self) -> &[AddOn] {
        &self.add_ons
    }

    pub fn storage(&self) -> StorageRate {
        self.storage
    }

    pub fn traffic(&self) -> TrafficRate {
        self.traffic
    }

    pub fn tier(&self, code: &str) -> Result<&ContainerTier, PricingError> {
        self.tiers.iter().find(|t| t.code == code).ok_or_else(|| PricingError::UnknownTier(code.to_string()))
    }

    pub fn add_on(&self, code: &str) -> Result<&AddOn, PricingError> {
        self.add_ons.iter().find(|a| a.code == code).ok_or_else(|| PricingError::UnknownAddOn(code.to_string()))
    }

    /// The tier, if `plan` may start a container on it (XLarge and GPU are for Membership only).
    /// Charging time already used does not check the plan: that usage happened.
    pub fn tier_for_plan(&self, code: &str, plan: &str) -> Result<&ContainerTier, PricingError> {
        let tier = self.tier(code)?;
        if !tier.allows(plan) {
            return Err(PricingError::TierNotOnPlan { tier: code.to_string(), plan: plan.to_string() });
        }
        Ok(tier)
    }
}

/// Container time: `credits per hour x seconds / 3600`, rounded once.
pub fn container_charge(metering: &Metering, tier: &str, seconds: u64) -> Result<Credits, PricingError> {
    let tier = metering.tier(tier)?;
    round_once([[tier.credits_per_hour, seconds.into()]], SECONDS_PER_HOUR)
}

/// An add-on's time on a container of `tier`: zero on tiers that include it (Code Supporter on GPU).
pub fn add_on_charge(metering: &Metering, add_on: &str, tier: &str, seconds: u64) -> Result<Credits, PricingError> {
    let add_on = metering.add_on(add_on)?;
    let tier = metering.tier(tier)?;
    if add_on.free_on_tiers.contains(&tier.code) {
        return Ok(Credits::ZERO);
    }
    round_once([[add_on.credits_per_hour, seconds.into()]], SECONDS_PER_HOUR)
}

/// The account's stored bytes (all containers together), unchanged for `seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageInterval {
    pub bytes: u64,
    pub seconds: u64,
}

/// GB-seconds over the quota: the quota applies at every instant, so each interval counts only
/// what it stored above the quota. Exact (a GB-second is 10^9 byte-seconds).
pub fn gb_seconds_over_quota(quota_gb: Decimal, intervals: &[StorageInterval]) -> Result<Decimal, PricingError> {
    let quota_bytes = gb_to_bytes(quota_gb).ok_or(PricingError::InvalidQuantity("storage quota"))?;
    let mut byte_seconds: u128 = 0;
    for interval in intervals {
        let over = u128::from(interval.bytes.saturating_sub(quota_bytes));
        byte_seconds = over.checked_mul(interval.seconds.into()).and_then(|b| byte_seconds.checked_add(b)).ok_or(AmountError::TooLarge)?;
    }
    let byte_seconds = i128::try_from(byte_seconds).map_err(|_| AmountError::TooLarge)?;
    Ok(Decimal::try_from_i128_with_scale(byte_seconds, 9).map_err(|_| AmountError::TooLarge)?.normalize())
}

/// Storage over the quota: `credits per GB-hour x GB-seconds / 3600`, rounded once.
pub fn storage_charge(metering: &Metering, gb_seconds_over_quota: Decimal) -> Result<Credits, PricingError> {
    if gb_seconds_over_quota < Decimal::ZERO {
        return Err(PricingError::InvalidQuantity("GB-seconds"));
    }
    round_once([[metering.storage.credits_per_gb_hour, gb_seconds_over_quota]], SECONDS_PER_HOUR)
}

/// Traffic of `bytes` after `bytes_earlier_this_month`: only the bytes past the month's free
/// allowance are charged, per byte, so a sample crossing the line pays for its part above it.
pub fn traffic_charge(metering: &Metering, bytes_earlier_this_month: u64, bytes: u64) -> Result<Credits, PricingError> {
    let free = u128::from(metering.traffic.free_bytes_per_month);
    let before = u128::from(bytes_earlier_this_month);
    let after = before + u128::from(bytes);
    let charged = after.saturating_sub(free) - before.saturating_sub(free);
    let charged = u64::try_from(charged).expect("never more than `bytes`");
    round_once([[metering.traffic.credits_per_gb, charged.into()]], BYTES_PER_GB)
}

/// Whole bytes in `gb` decimal gigabytes; None when negative, finer than a byte or too large.
pub fn gb_to_bytes(gb: Decimal) -> Option<u64> {
    let gb = gb.normalize();
    if gb < Decimal::ZERO || gb.scale() > 9 {
        return None;
    }
    let bytes = gb.mantissa().checked_mul(10i128.pow(9 - gb.scale()))?;
    u64::try_from(bytes).ok()
}

// ---------------------------------------------------------------------------------------------
// The one rounding
// ---------------------------------------------------------------------------------------------

/// `sum over terms of (product of factors) / divisor`, exactly, rounded once half up to the
/// micro-credit. Each term is an integer over a power of ten and the divisor a whole number, so
/// the line is one fraction of i128 integers and nothing is rounded before the end.
fn round_once<T: AsRef<[Decimal]>>(terms: impl IntoIterator<Item = T>, divisor: u64) -> Result<Credits, PricingError> {
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

// ---------------------------------------------------------------------------------------------
// Config checks shared by the constructors
// ---------------------------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn credits(s: &str) -> Credits {
        Credits::parse_positive(dec(s)).unwrap()
    }

    fn entry(feature: &str, model: Option<&str>, price: &str) -> CatalogEntry {
        CatalogEntry {
            feature: feature.into(),
            model: model.map(Into::into),
            name: format!("{feature} {}", model.unwrap_or("")),
            credits: dec(price),
            default: false,
            count: None,
            length: None,
            resolution: None,
        }
    }

    /// Carat's video and image, with option scalings like the preset's.
    fn carat_like() -> Catalog {
        let video = |model: &str, price: &str, default: bool| CatalogEntry {
            name: format!("Carat Video ({model})"),
            default,
            count: Some(CountOption { max: 4 }),
            length: Some(LengthOption { default_seconds: 5, max_seconds: 15 }),
            resolution: Some(ResolutionOption {
                default: "720p".into(),
                levels: vec![
                    ResolutionLevel { name: "480p".into(), multiplier: dec("0.75") },
                    ResolutionLevel { name: "720p".into(), multiplier: dec("1") },
                    ResolutionLevel { name: "1080p".into(), multiplier: dec("1.5") },
                ],
            }),
            ..entry("video", Some(model), price)
        };
        let image = CatalogEntry { count: Some(CountOption { max: 4 }), ..entry("image", Some("carat-image"), "10") };
        Catalog::new(vec![video("ltx", "33", true), video("sora2", "150", false), image, entry("chat", None, "2")]).unwrap()
    }

    fn arkain_tokens() -> TokenPricing {
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

    fn arkain_metering() -> Metering {
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

    fn options(count: Option<u32>, length_seconds: Option<u32>, resolution: Option<&str>) -> QuoteOptions {
        QuoteOptions { count, length_seconds, resolution: resolution.map(Into::into) }
    }

    #[test]
    fn carat_video_at_default_options_is_33() {
        let quote = quote(&carat_like(), "video", Some("ltx"), &QuoteOptions::default()).unwrap();
        assert_eq!(quote.total, Credits::from_whole(33));
        assert_eq!(quote.model.as_deref(), Some("ltx"));
        let labels: Vec<&str> = quote.lines.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["Carat Video (ltx)", "count 1", "length 5 s (default 5 s)", "resolution 720p"]);
        assert_eq!(quote.lines.iter().map(|l| l.factor).collect::<Vec<_>>(), [dec("33"), dec("1"), dec("1"), dec("1")]);
    }

    #[test]
    fn options_scale_the_price_exactly() {
        let catalog = carat_like();
        let video = |o: QuoteOptions| quote(&catalog, "video", None, &o).unwrap().total;
        // The feature's default model is LTX when none is named.
        assert_eq!(video(options(None, Some(10), None)), Credits::from_whole(66), "twice the length");
        assert_eq!(video(options(Some(2), None, None)), Credits::from_whole(66), "two videos");
        assert_eq!(video(options(Some(2), Some(10), None)), Credits::from_whole(132));
        assert_eq!(video(options(Some(2), Some(10), Some("1080p"))), Credits::from_whole(198));
        assert_eq!(video(options(None, Some(15), None)), Credits::from_whole(99), "the longest video");
        // 33 x 3/5 x 0.75 = 14.85; 33 x 7/5 x 0.75 = 34.65; 33 x 1/5 = 6.6.
        assert_eq!(video(options(None, Some(3), Some("480p"))), credits("14.85"));
        assert_eq!(video(options(None, Some(7), Some("480p"))), credits("34.65"));
        assert_eq!(video(options(None, Some(1), None)), credits("6.6"));
        let sora = quote(&catalog, "video", Some("sora2"), &QuoteOptions::default()).unwrap().total;
        let image = quote(&catalog, "image", None, &QuoteOptions::default()).unwrap().total;
        assert!(sora > Credits::from_whole(33) && image < Credits::from_whole(33), "a video model costs more than an image model");
        assert_eq!(quote(&catalog, "image", None, &options(Some(4), None, None)).unwrap().total, Credits::from_whole(40));
        assert_eq!(quote(&catalog, "chat", None, &QuoteOptions::default()).unwrap().lines.len(), 1, "no options, no option lines");
    }

    #[test]
    fn a_length_ratio_that_is_no_finite_decimal_is_rounded_once() {
        // 10 credits for 3 s; 10 s costs 10 x 10 / 3 = 33.333333.. -> 33.333333; 2 s: 6.666666.. -> 6.666667.
        let talk = CatalogEntry { length: Some(LengthOption { default_seconds: 3, max_seconds: 60 }), ..entry("audio", None, "10") };
        let catalog = Catalog::new(vec![talk]).unwrap();
        let total = |seconds| quote(&catalog, "audio", None, &options(None, Some(seconds), None)).unwrap().total;
        assert_eq!(total(10), credits("33.333333"));
        assert_eq!(total(2), credits("6.666667"));
        assert_eq!(total(3), Credits::from_whole(10));
    }

    #[test]
    fn quote_errors() {
        let catalog = carat_like();
        let q = |feature: &str, model: Option<&str>, o: QuoteOptions| quote(&catalog, feature, model, &o).unwrap_err();
        assert_eq!(q("music", None, QuoteOptions::default()), PricingError::UnknownFeature("music".into()));
        assert_eq!(
            q("video", Some("veo9"), QuoteOptions::default()),
            PricingError::UnknownModel { feature: "video".into(), model: "veo9".into() }
        );
        assert_eq!(
            q("chat", Some("gpt"), QuoteOptions::default()),
            PricingError::UnknownModel { feature: "chat".into(), model: "gpt".into() }
        );
        let out_of_range = |option, value, max| PricingError::OutOfRange { option, value, min: 1, max };
        assert_eq!(q("video", None, options(Some(0), None, None)), out_of_range("count", 0, 4));
        assert_eq!(q("video", None, options(Some(5), None, None)), out_of_range("count", 5, 4));
        assert_eq!(q("video", None, options(None, Some(0), None)), out_of_range("length_seconds", 0, 15));
        assert_eq!(q("video", None, options(None, Some(16), None)), out_of_range("length_seconds", 16, 15), "at most 15 s a video");
        assert_eq!(
            q("image", None, options(None, Some(5), None)),
            PricingError::UnknownOption { feature: "image".into(), option: "length_seconds" }
        );
        assert_eq!(q("chat", None, options(Some(1), None, None)), PricingError::UnknownOption { feature: "chat".into(), option: "count" });
        assert_eq!(
            q("video", None, options(None, None, Some("4k"))),
            PricingError::UnknownResolution { level: "4k".into(), levels: "480p, 720p, 1080p".into() }
        );
    }

    #[test]
    fn catalog_validation() {
        let with_default = |mut e: CatalogEntry| {
            e.default = true;
            e
        };
        let resolutions = |default: &str, levels: &[(&str, &str)]| {
            let levels = levels.iter().map(|(name, multiplier)| ResolutionLevel { name: name.to_string(), multiplier: dec(multiplier) });
            let resolution = ResolutionOption { default: default.into(), levels: levels.collect() };
            vec![CatalogEntry { resolution: Some(resolution), ..entry("video", None, "1") }]
        };
        assert!(Catalog::new(vec![with_default(entry("video", Some("a"), "1")), entry("video", Some("b"), "2")]).is_ok());
        assert!(Catalog::new(resolutions("720p", &[("480p", "0.5"), ("720p", "1")])).is_ok());
        let bad = [
            vec![entry("video", Some("a"), "1"), entry("video", Some("b"), "2")],
            vec![with_default(entry("video", Some("a"), "1")), with_default(entry("video", Some("b"), "2"))],
            vec![with_default(entry("video", Some("a"), "1")), entry("video", Some("a"), "2")],
            vec![with_default(entry("video", None, "1")), entry("video", Some("b"), "2")],
            vec![entry("video", None, "0")],
            vec![entry("video", None, "0.0000000000001")],
            vec![entry("Video", None, "1")],
            vec![CatalogEntry { count: Some(CountOption { max: 0 }), ..entry("image", None, "1") }],
            vec![CatalogEntry { length: Some(LengthOption { default_seconds: 20, max_seconds: 15 }), ..entry("video", None, "1") }],
            resolutions("4k", &[("720p", "1")]),
            resolutions("720p", &[("720p", "2")]),
            resolutions("720p", &[("720p", "1"), ("4k", "0")]),
            resolutions("720p", &[("720p", "1"), ("720p", "1")]),
        ];
        for (i, entries) in bad.into_iter().enumerate() {
            assert!(Catalog::new(entries).is_err(), "case {i} should be refused");
        }
    }

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
    fn container_time_is_prorated_per_second() {
        let metering = arkain_metering();
        assert_eq!(container_charge(&metering, "micro", 90 * 60).unwrap(), credits("2.94"));
        // 6.80 / 3600 = 0.0018888.. -> 0.001889.
        assert_eq!(container_charge(&metering, "small", 1).unwrap(), credits("0.001889"));
        assert_eq!(container_charge(&metering, "small", 3600).unwrap(), credits("6.8"));
        assert_eq!(container_charge(&metering, "micro", 0).unwrap(), Credits::ZERO);
        assert_eq!(container_charge(&metering, "huge", 1), Err(PricingError::UnknownTier("huge".into())));
    }

    #[test]
    fn code_supporter_costs_extra_except_on_gpu() {
        let metering = arkain_metering();
        assert_eq!(add_on_charge(&metering, "code_supporter", "micro", 90 * 60).unwrap(), credits("2.94"));
        assert_eq!(add_on_charge(&metering, "code_supporter", "gpu_basic", 3600).unwrap(), Credits::ZERO);
        assert_eq!(add_on_charge(&metering, "copilot", "micro", 1), Err(PricingError::UnknownAddOn("copilot".into())));
    }

    #[test]
    fn membership_only_tiers() {
        let metering = arkain_metering();
        assert!(metering.tier_for_plan("gpu_basic", "membership").is_ok());
        assert!(metering.tier_for_plan("micro", "free").is_ok());
        assert_eq!(
            metering.tier_for_plan("gpu_basic", "free"),
            Err(PricingError::TierNotOnPlan { tier: "gpu_basic".into(), plan: "free".into() })
        );
    }

    #[test]
    fn a_month_of_one_gb_over_the_quota_is_12_96() {
        let metering = arkain_metering();
        let thirty_days = 30 * 24 * 3600;
        let gb = |n: u64| n * BYTES_PER_GB;
        // Free plan, 5 GB free: 6 GB stored for 30 days is 720 GB-hours over; x 0.018 = 12.96.
        let over = gb_seconds_over_quota(dec("5"), &[StorageInterval { bytes: gb(6), seconds: thirty_days }]).unwrap();
        assert_eq!(over, Decimal::from(thirty_days));
        assert_eq!(storage_charge(&metering, over).unwrap(), credits("12.96"));
        // The quota applies at every instant: 20 days at 4 GB do not offset 10 days at 8 GB.
        let day = 24 * 3600;
        let intervals = [StorageInterval { bytes: gb(4), seconds: 20 * day }, StorageInterval { bytes: gb(8), seconds: 10 * day }];
        let over = gb_seconds_over_quota(dec("5"), &intervals).unwrap();
        assert_eq!(storage_charge(&metering, over).unwrap(), credits("12.96"), "3 GB over for 10 days is 720 GB-hours");
        // 1.5 GB over for 2.25 hours: 3.375 GB-hours x 0.018 = 0.06075.
        let over = gb_seconds_over_quota(dec("15"), &[StorageInterval { bytes: 16_500_000_000, seconds: 8100 }]).unwrap();
        assert_eq!(storage_charge(&metering, over).unwrap(), credits("0.06075"));
        // One byte over for one second: 0.018 / 3600 / 10^9, rounds to nothing.
        let over = gb_seconds_over_quota(dec("5"), &[StorageInterval { bytes: gb(5) + 1, seconds: 1 }]).unwrap();
        assert_eq!(over, dec("0.000000001"));
        assert_eq!(storage_charge(&metering, over).unwrap(), Credits::ZERO);
        assert_eq!(storage_charge(&metering, dec("-1")), Err(PricingError::InvalidQuantity("GB-seconds")));
        assert_eq!(gb_seconds_over_quota(dec("0.0000000001"), &[]), Err(PricingError::InvalidQuantity("storage quota")));
    }

    #[test]
    fn traffic_is_charged_per_byte_past_the_free_10_gb() {
        let metering = arkain_metering();
        let gb = |n: u64| n * BYTES_PER_GB;
        assert_eq!(traffic_charge(&metering, 0, gb(10)).unwrap(), Credits::ZERO, "within the allowance");
        // 9.5 GB used earlier, 1 GB now: half a GB is over the line, 0.5 x 8 = 4.
        assert_eq!(traffic_charge(&metering, 9_500_000_000, gb(1)).unwrap(), Credits::from_whole(4));
        assert_eq!(traffic_charge(&metering, gb(12), gb(1)).unwrap(), Credits::from_whole(8), "wholly over");
        // 123,456 bytes: 8 x 0.000123456 = 0.000987648 -> 0.000988.
        assert_eq!(traffic_charge(&metering, gb(10), 123_456).unwrap(), credits("0.000988"));
        assert_eq!(traffic_charge(&metering, u64::MAX, u64::MAX), Err(PricingError::Amount(AmountError::TooLarge)));
    }

    #[test]
    fn gigabytes_convert_to_whole_bytes() {
        assert_eq!(gb_to_bytes(dec("15")), Some(15_000_000_000));
        assert_eq!(gb_to_bytes(dec("0.5")), Some(500_000_000));
        assert_eq!(gb_to_bytes(dec("0.0000000001")), None);
        assert_eq!(gb_to_bytes(dec("-1")), None);
    }

    #[test]
    fn metering_validation() {
        let m = arkain_metering();
        let (storage, traffic) = (m.storage(), m.traffic());
        let mut add_on = m.add_ons()[0].clone();
        add_on.free_on_tiers = vec!["tpu".into()];
        assert!(Metering::new(m.tiers().to_vec(), vec![add_on], storage, traffic).is_err(), "free on an unknown tier");
        assert!(Metering::new(vec![], vec![], storage, traffic).is_err());
        assert!(Metering::new([m.tiers(), m.tiers()].concat(), vec![], storage, traffic).is_err(), "tiers listed twice");
        let free = TrafficRate { credits_per_gb: Decimal::ZERO, ..traffic };
        assert!(Metering::new(m.tiers().to_vec(), vec![], storage, free).is_err(), "rates are positive");
    }

    #[test]
    fn free_trial_uses_are_shared() {
        let trial = FreeTrial { uses: 3, features: vec!["snap".into(), "side-chat".into()] };
        assert!(trial.is_free("snap", 0) && trial.is_free("side-chat", 2));
        assert!(!trial.is_free("snap", 3));
        assert!(!trial.is_free("video", 0));
    }

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

        /// Prorating per second never drifts more than one rounding from the hourly rate.
        #[test]
        fn whole_hours_cost_the_hourly_rate(hours in 0u64..10_000) {
            let metering = arkain_metering();
            let expected = Credits::charge(dec("6.80"), Decimal::from(hours)).unwrap();
            prop_assert_eq!(container_charge(&metering, "small", hours * 3600).unwrap(), expected);
        }
    }
}
