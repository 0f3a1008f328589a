//! A program: one product's credit rules, loaded from a TOML file. The repository ships presets
//! (`config/presets/`) that reproduce the three source products; `arkain` is the default.

use crate::ledger::draw::Distribution;
use crate::ledger::gift::GiftLimits;
use crate::ledger::notices::LowCreditRule;
use crate::ledger::plans::PlanPeriod;
use crate::ledger::pricing::{
    self, AddOn, Catalog, CatalogEntry, ContainerTier, FreeTrial, MAX_FREE_TRIAL_USES, Metering, StorageRate, TokenModel, TokenPricing,
    TrafficRate,
};
use crate::ledger::refund::RefundPolicy;
use crate::ledger::rollover::Rollover;
use crate::ledger::{ConsumptionOrder, Credits, LotClass, LotSource, Validity};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::path::Path;

pub const DEFAULT_PRESET: &str = "arkain";
/// Plan codes are short: they are part of the once-per-period claim keys.
pub const MAX_PLAN_CODE_CHARS: usize = 16;

const PRESETS: [(&str, &str); 3] = [
    ("arkain", include_str!("../config/presets/arkain.toml")),
    ("carat", include_str!("../config/presets/carat.toml")),
    ("archipelag", include_str!("../config/presets/archipelag.toml")),
];

#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("cannot read program file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid program {name}: {message}")]
    Invalid { name: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgramFile {
    name: String,
    currency: String,
    /// Minor units of the currency per credit; may be fractional ("0.2" cents).
    credit_price_minor: Decimal,
    minimum_purchase_credits: Decimal,
    purchased_validity: Validity,
    /// How long a pending purchase waits for its payment before it expires: hours or days, 1
    /// hour to 30 days; 24 hours when not given.
    #[serde(default = "default_pending_purchase_lifetime")]
    pending_purchase_lifetime: Validity,
    /// Failed auto top-up payments in a row after which auto top-up turns itself off: 1 to 10,
    /// 3 when not given.
    #[serde(default = "default_auto_topup_max_failures")]
    auto_topup_max_failures: u32,
    consumption_order: Vec<Vec<LotClass>>,
    /// Spending credits in any way needs a verified identity (archipelag, seed 003).
    #[serde(default)]
    spending_requires_identity: bool,
    default_plan: String,
    plans: Vec<PlanFile>,
    #[serde(default)]
    packages: Vec<PackageFile>,
    #[serde(default)]
    sign_up_grant: Option<GrantFile>,
    /// The daily check-in, where the product has one.
    #[serde(default)]
    check_in: Option<GrantFile>,
    /// How plans' monthly credits are granted, where plans have them.
    #[serde(default)]
    plan_credits: Option<PlanCreditsFile>,
    #[serde(default)]
    refunds: Option<RefundsFile>,
    #[serde(default)]
    first_purchase_bonus: Option<BonusFile>,
    #[serde(default)]
    lucky: Option<LuckyFile>,
    #[serde(default)]
    ad_rewards: Option<AdRewardsFile>,
    #[serde(default)]
    referrals: Option<ReferralsFile>,
    #[serde(default)]
    notices: Option<NoticesFile>,
    #[serde(default)]
    market: Option<MarketFile>,
    /// Per-use prices of features and models (`[[catalog]]`).
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
    /// AI priced by model and tokens, where the product has it.
    #[serde(default)]
    token_pricing: Option<TokenPricingFile>,
    /// Free uses shared by some features.
    #[serde(default)]
    free_trial: Option<FreeTrialFile>,
    /// Metered resources (containers, storage, traffic), where the product has them.
    #[serde(default)]
    metering: Option<MeteringFile>,
    /// Gifts of paid credits between users (`giftCredits`); off when absent.
    #[serde(default)]
    gifts: Option<GiftsFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GiftsFile {
    /// The most credits a sender may give per UTC day, e.g. "500".
    daily_limit: Decimal,
    /// The most credits one gift may carry.
    #[serde(default)]
    max_per_gift: Option<Decimal>,
    /// The most gifts a sender may make per UTC day.
    #[serde(default)]
    daily_count: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenPricingFile {
    feature: String,
    default_model: String,
    models: Vec<TokenModel>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreeTrialFile {
    uses: u32,
    features: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeteringFile {
    tiers: Vec<ContainerTier>,
    #[serde(default)]
    add_ons: Vec<AddOn>,
    storage: StorageRate,
    traffic: TrafficFile,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrafficFile {
    credits_per_gb: Decimal,
    /// Decimal gigabytes (10^9 bytes) free each calendar month.
    free_gb_per_month: Decimal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundsFile {
    policy: RefundPolicy,
    /// How long after payment a user may ask for a refund.
    window: Validity,
    /// How long after payment an operator may still refund.
    operator_window: Validity,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BonusFile {
    /// Of the credits bought, e.g. "30".
    percent: Decimal,
    validity: Validity,
}

/// Refund terms. Without a `[refunds]` table purchases are not refundable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refunds {
    pub policy: RefundPolicy,
    pub window: Validity,
    pub operator_window: Validity,
}

/// Promotional credits granted with an account's first purchase, forfeited if it is refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstPurchaseBonus {
    pub percent: Decimal,
    pub validity: Validity,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    code: String,
    name: String,
    #[serde(default)]
    monthly_credits: Option<Decimal>,
    /// The plan's price per month in minor units, where published.
    #[serde(default)]
    price_minor: Option<i64>,
    /// A paid subscription (lucky credits, and the like, are for these).
    #[serde(default)]
    paid: bool,
    #[serde(default)]
    storage_quota_gb: Option<Decimal>,
    #[serde(default)]
    lucky_max_credits: Option<Decimal>,
    /// Credits given each UTC day to an account with no paid or promotional credits left.
    #[serde(default)]
    daily_free_credits: Option<Decimal>,
    /// Unused plan credits carried into the next periods (`ledger::rollover`); none: they end
    /// with their period.
    #[serde(default)]
    rollover: Option<RolloverFile>,
}

/// `rollover = { max = "500", periods = 2 }`: at most `max` credits of a period's plan credits
/// carry over, valid until the end of the `periods`th period after it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolloverFile {
    max: Decimal,
    periods: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LuckyFile {
    /// The promotion's first day (UTC), if it has one.
    #[serde(default)]
    from: Option<NaiveDate>,
    /// The promotion's last day: it ends at the end of that day, UTC.
    until: NaiveDate,
    validity: Validity,
    /// Capped by each plan's `lucky_max_credits`.
    distribution: Distribution,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarketFile {
    /// The account the platform's fees land on (created when first needed).
    platform_account: String,
    /// The platform's share of each job's price, in [0, 1).
    #[serde(default)]
    fee_rate: Decimal,
    /// How long a matched job may run before its hold is released and the job fails.
    #[serde(default = "default_job_deadline_minutes")]
    job_deadline_minutes: u32,
}

fn default_pending_purchase_lifetime() -> Validity {
    Validity::Hours(24)
}

fn default_auto_topup_max_failures() -> u32 {
    3
}

fn default_job_deadline_minutes() -> u32 {
    60
}

/// The compute market (archipelag): providers earn what consumers' jobs pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Market {
    pub platform_account: String,
    pub fee_rate: Decimal,
    pub job_deadline: chrono::Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticesFile {
    /// Low when the balance covers fewer hours than this of the current usage rate.
    #[serde(default)]
    low_credits_hours_of_usage: Option<u32>,
    /// Low when the balance is under this many credits.
    #[serde(default)]
    low_credits_below: Option<Decimal>,
    /// Notice of credits that expire within this many days.
    #[serde(default)]
    expiring_within_days: Option<u32>,
}

/// What the account holder is told about their credits, and when (domain.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notices {
    pub low_credits: Option<LowCreditRule>,
    pub expiring_within: Option<chrono::Duration>,
}

/// The longest window of an expiry notice.
pub const MAX_EXPIRING_WITHIN_DAYS: u32 = 90;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferralsFile {
    sign_up_credits: Decimal,
    purchase_credits: Decimal,
    /// The friend's first purchase must be at least this much money.
    minimum_purchase_minor: i64,
    hold: Validity,
    validity: Validity,
    max_per_referrer: u32,
}

/// Referrals: both sides get credits at sign-up, and more when the friend's first purchase is
/// large enough, after a hold period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrals {
    pub sign_up_credits: Credits,
    pub purchase_credits: Credits,
    pub minimum_purchase_minor: i64,
    pub hold: Validity,
    pub validity: Validity,
    pub max_per_referrer: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdRewardsFile {
    mode: AdMode,
    validity: Validity,
    daily_cap: u32,
    distribution: Distribution,
}

/// How a free user earns a random reward once out of credits: by watching an ad (the network's
/// server-side callback must verify it) or by tapping a button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdMode {
    Ad,
    Button,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdRewards {
    pub mode: AdMode,
    pub validity: Validity,
    pub daily_cap: u32,
    pub distribution: Distribution,
}

/// The most ad rewards a program may allow per account and day.
pub const MAX_AD_REWARDS_PER_DAY: u32 = 100;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanCreditsFile {
    source: LotSource,
    class: LotClass,
    period: PlanPeriod,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackageFile {
    code: String,
    name: String,
    credits: Decimal,
    price_minor: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantFile {
    credits: Decimal,
    validity: Validity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub code: String,
    pub name: String,
    pub monthly_credits: Option<Credits>,
    pub price_minor: Option<i64>,
    pub paid: bool,
    pub storage_quota_gb: Option<Decimal>,
    pub lucky_max_credits: Option<Credits>,
    pub daily_free_credits: Option<Credits>,
    /// What of the plan's credits carries into later periods, if any.
    pub rollover: Option<Rollover>,
}

/// Daily lucky credits for paid subscribers, within the promotion's dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lucky {
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: DateTime<Utc>,
    pub validity: Validity,
    pub distribution: Distribution,
}

/// How plan credits are granted: which lot they make and on which period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanCredits {
    pub source: LotSource,
    pub class: LotClass,
    pub period: PlanPeriod,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub code: String,
    pub name: String,
    pub credits: Credits,
    pub price_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub credits: Credits,
    pub validity: Validity,
}

/// A validated program: once you hold one, its rules are consistent.
#[derive(Debug, Clone)]
pub struct Program {
    pub name: String,
    pub currency: String,
    pub credit_price_minor: Decimal,
    pub minimum_purchase: Credits,
    pub purchased_validity: Validity,
    /// How long a pending purchase waits for its payment (`pending_purchase_lifetime`, as
    /// written) ...
    pub pending_purchase_lifetime: Validity,
    /// ... and as a duration: at `created_at` + this, it is expired.
    pub pending_lifetime: chrono::Duration,
    /// Failed auto top-up payments in a row after which it turns itself off.
    pub auto_topup_max_failures: u32,
    pub consumption_order: ConsumptionOrder,
    /// Every way of spending credits (spends, holds, market jobs) needs a verified identity.
    pub spending_requires_identity: bool,
    pub default_plan: String,
    pub plans: Vec<Plan>,
    pub packages: Vec<Package>,
    pub sign_up_grant: Option<Grant>,
    pub check_in: Option<Grant>,
    pub plan_credits: Option<PlanCredits>,
    pub refunds: Refunds,
    pub first_purchase_bonus: Option<FirstPurchaseBonus>,
    pub lucky: Option<Lucky>,
    pub ad_rewards: Option<AdRewards>,
    pub referrals: Option<Referrals>,
    pub notices: Notices,
    pub market: Option<Market>,
    /// Per-use prices; empty when the program prices nothing per use.
    pub catalog: Catalog,
    pub token_pricing: Option<TokenPricing>,
    pub free_trial: Option<FreeTrial>,
    pub metering: Option<Metering>,
    /// Gifts between users, with their per-day limits; `None`: `giftCredits` is off.
    pub gifts: Option<GiftLimits>,
}

impl Program {
    /// A preset name (`arkain`, `carat`, `archipelag`) or a path to a TOML file.
    pub fn load(name_or_path: &str) -> Result<Program, ProgramError> {
        if let Some((_, text)) = PRESETS.iter().find(|(name, _)| *name == name_or_path) {
            return Program::parse(name_or_path, text);
        }
        let text = std::fs::read_to_string(Path::new(name_or_path))
            .map_err(|source| ProgramError::Read { path: name_or_path.to_string(), source })?;
        Program::parse(name_or_path, &text)
    }

    pub fn preset_names() -> impl Iterator<Item = &'static str> {
        PRESETS.iter().map(|(name, _)| *name)
    }

    pub fn parse(origin: &str, text: &str) -> Result<Program, ProgramError> {
        let invalid = |message: String| ProgramError::Invalid { name: origin.to_string(), message };
        let file: ProgramFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        parse_sections(file).map_err(invalid)
    }

    pub fn plan(&self, code: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.code == code)
    }

    pub fn package(&self, code: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.code == code)
    }
}

/// The program file, section by section: each section's rules in a function of its own; an
/// error is the message `Program::parse` names the program in.
fn parse_sections(file: ProgramFile) -> Result<Program, String> {
    if file.currency.len() != 3 || !file.currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(format!("currency {:?} is not an ISO 4217 code", file.currency));
    }
    if file.credit_price_minor <= Decimal::ZERO {
        return Err("credit_price_minor must be positive".into());
    }
    let consumption_order = ConsumptionOrder::new(file.consumption_order)?;
    if file.plans.is_empty() || !file.plans.iter().any(|p| p.code == file.default_plan) {
        return Err(format!("default_plan {:?} is not one of the plans", file.default_plan));
    }
    let plans = parse_plans(file.plans)?;
    let plan_credits = file.plan_credits.map(|p| PlanCredits { source: p.source, class: p.class, period: p.period });
    if plan_credits.is_none() && plans.iter().any(|p| p.monthly_credits.is_some()) {
        return Err("plans have monthly_credits but [plan_credits] does not say how they are granted".into());
    }
    let catalog = Catalog::new(file.catalog).map_err(|e| format!("catalog: {e}"))?;
    let token_pricing = file.token_pricing.map(|t| parse_token_pricing(t, &catalog)).transpose()?;
    let free_trial = file.free_trial.map(|t| parse_free_trial(t, &catalog, token_pricing.as_ref())).transpose()?;
    let notices = file.notices.map(|n| parse_notices(n, file.metering.is_some())).transpose()?.unwrap_or_default();
    Ok(Program {
        name: file.name,
        currency: file.currency,
        credit_price_minor: file.credit_price_minor,
        minimum_purchase: credits("minimum_purchase_credits", file.minimum_purchase_credits)?,
        purchased_validity: file.purchased_validity,
        pending_purchase_lifetime: file.pending_purchase_lifetime,
        pending_lifetime: crate::ledger::purchase::pending_lifetime(file.pending_purchase_lifetime)?,
        auto_topup_max_failures: match file.auto_topup_max_failures {
            n @ 1..=10 => n,
            n => return Err(format!("auto_topup_max_failures must be 1 to 10, not {n}")),
        },
        consumption_order,
        spending_requires_identity: file.spending_requires_identity,
        default_plan: file.default_plan,
        packages: parse_packages(file.packages)?,
        sign_up_grant: file.sign_up_grant.map(|g| parse_grant("sign_up_grant", g)).transpose()?,
        check_in: file.check_in.map(|g| parse_grant("check_in", g)).transpose()?,
        plan_credits,
        refunds: match file.refunds {
            Some(r) => Refunds { policy: r.policy, window: r.window, operator_window: r.operator_window },
            None => Refunds { policy: RefundPolicy::Never, window: Validity::Never, operator_window: Validity::Never },
        },
        first_purchase_bonus: file.first_purchase_bonus.map(parse_first_purchase_bonus).transpose()?,
        lucky: file.lucky.map(parse_lucky).transpose()?,
        ad_rewards: file.ad_rewards.map(parse_ad_rewards).transpose()?,
        referrals: file.referrals.map(parse_referrals).transpose()?,
        notices,
        market: file.market.map(parse_market).transpose()?,
        metering: file.metering.map(|m| parse_metering(m, &plans)).transpose()?,
        gifts: file.gifts.map(parse_gifts).transpose()?,
        plans,
        catalog,
        token_pricing,
        free_trial,
    })
}

/// An amount of credits a program names: positive, exact.
fn credits(what: &str, value: Decimal) -> Result<Credits, String> {
    Credits::parse_positive(value).map_err(|e| format!("{what}: {e}"))
}

fn parse_packages(files: Vec<PackageFile>) -> Result<Vec<Package>, String> {
    let mut packages: Vec<Package> = Vec::new();
    for p in files {
        if p.price_minor <= 0 {
            return Err(format!("package {} has no price", p.code));
        }
        if packages.iter().any(|q| q.code == p.code) {
            return Err(format!("package {} is listed twice", p.code));
        }
        packages.push(Package { credits: credits(&p.code, p.credits)?, code: p.code, name: p.name, price_minor: p.price_minor });
    }
    Ok(packages)
}

fn parse_grant(what: &str, g: GrantFile) -> Result<Grant, String> {
    Ok(Grant { credits: credits(what, g.credits)?, validity: g.validity })
}

fn parse_plans(files: Vec<PlanFile>) -> Result<Vec<Plan>, String> {
    let mut plans: Vec<Plan> = Vec::new();
    for p in files {
        if p.code.is_empty()
            || p.code.len() > MAX_PLAN_CODE_CHARS
            || !p.code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!("plan code {:?} must be 1 to {MAX_PLAN_CODE_CHARS} of a-z, 0-9, _", p.code));
        }
        if plans.iter().any(|q| q.code == p.code) {
            return Err(format!("plan {} is listed twice", p.code));
        }
        // Storage is metered per byte: a quota finer than a byte could not be applied.
        if p.storage_quota_gb.is_some_and(|gb| pricing::gb_to_bytes(gb).is_none()) {
            return Err(format!("plan {}: storage_quota_gb must be whole bytes, >= 0", p.code));
        }
        let optional = |what: &str, value: Option<Decimal>| value.map(|v| credits(&format!("{} {what}", p.code), v)).transpose();
        let rollover = match (&p.rollover, p.monthly_credits) {
            (Some(_), None) => return Err(format!("plan {}: rollover needs monthly_credits to carry over", p.code)),
            (Some(r), Some(_)) => Some(
                Rollover::new(credits(&format!("plan {} rollover.max", p.code), r.max)?, r.periods)
                    .map_err(|e| format!("plan {}: {e}", p.code))?,
            ),
            (None, _) => None,
        };
        plans.push(Plan {
            rollover,
            monthly_credits: optional("monthly_credits", p.monthly_credits)?,
            lucky_max_credits: optional("lucky_max_credits", p.lucky_max_credits)?,
            daily_free_credits: optional("daily_free_credits", p.daily_free_credits)?,
            price_minor: p.price_minor,
            paid: p.paid,
            storage_quota_gb: p.storage_quota_gb,
            code: p.code,
            name: p.name,
        });
    }
    Ok(plans)
}

fn parse_first_purchase_bonus(b: BonusFile) -> Result<FirstPurchaseBonus, String> {
    if b.percent <= Decimal::ZERO || b.percent > Decimal::from(1000) {
        return Err("first_purchase_bonus.percent must be in (0, 1000]".into());
    }
    Ok(FirstPurchaseBonus { percent: b.percent, validity: b.validity })
}

fn parse_lucky(l: LuckyFile) -> Result<Lucky, String> {
    l.distribution.validate().map_err(|e| format!("lucky: {e}"))?;
    let day_start = |d: NaiveDate| d.and_time(NaiveTime::MIN).and_utc();
    let ends_at = day_start(l.until) + chrono::Duration::days(1);
    if l.from.is_some_and(|from| day_start(from) >= ends_at) {
        return Err("lucky: from is after until".into());
    }
    Ok(Lucky { starts_at: l.from.map(day_start), ends_at, validity: l.validity, distribution: l.distribution })
}

fn parse_ad_rewards(a: AdRewardsFile) -> Result<AdRewards, String> {
    a.distribution.validate().map_err(|e| format!("ad_rewards: {e}"))?;
    if !(1..=MAX_AD_REWARDS_PER_DAY).contains(&a.daily_cap) {
        return Err(format!("ad_rewards.daily_cap must be 1 to {MAX_AD_REWARDS_PER_DAY}"));
    }
    Ok(AdRewards { mode: a.mode, validity: a.validity, daily_cap: a.daily_cap, distribution: a.distribution })
}

/// `metered`: the program meters usage, which a warning in hours of usage needs for its rate.
fn parse_notices(n: NoticesFile, metered: bool) -> Result<Notices, String> {
    let low_credits = match (n.low_credits_hours_of_usage, n.low_credits_below) {
        (Some(_), Some(_)) => return Err("notices: low_credits_hours_of_usage or low_credits_below, not both".into()),
        (Some(0), None) => return Err("notices: low_credits_hours_of_usage must be at least 1".into()),
        (Some(hours), None) => {
            if !metered {
                return Err("notices: low_credits_hours_of_usage needs metered usage to have a rate".into());
            }
            Some(LowCreditRule::HoursOfUsage(hours))
        }
        (None, Some(below)) => Some(LowCreditRule::Below(credits("notices.low_credits_below", below)?)),
        (None, None) => None,
    };
    let expiring_within = match n.expiring_within_days {
        Some(days) if (1..=MAX_EXPIRING_WITHIN_DAYS).contains(&days) => Some(chrono::Duration::days(days.into())),
        Some(_) => return Err(format!("notices: expiring_within_days must be 1 to {MAX_EXPIRING_WITHIN_DAYS}")),
        None => None,
    };
    Ok(Notices { low_credits, expiring_within })
}

fn parse_market(m: MarketFile) -> Result<Market, String> {
    if m.fee_rate < Decimal::ZERO || m.fee_rate >= Decimal::ONE {
        return Err("market: fee_rate must be in [0, 1)".into());
    }
    if !(1..=7 * 24 * 60).contains(&m.job_deadline_minutes) {
        return Err("market: job_deadline_minutes must be 1 to 10080 (the longest hold)".into());
    }
    if m.platform_account.is_empty() || m.platform_account.len() > 128 {
        return Err("market: platform_account must be 1 to 128 characters".into());
    }
    Ok(Market {
        platform_account: m.platform_account,
        fee_rate: m.fee_rate,
        job_deadline: chrono::Duration::minutes(m.job_deadline_minutes.into()),
    })
}

fn parse_gifts(g: GiftsFile) -> Result<GiftLimits, String> {
    let daily_limit = credits("gifts.daily_limit", g.daily_limit)?;
    let max_per_gift = g.max_per_gift.map(|m| credits("gifts.max_per_gift", m)).transpose()?;
    GiftLimits::new(daily_limit, max_per_gift, g.daily_count)
}

fn parse_referrals(r: ReferralsFile) -> Result<Referrals, String> {
    if r.minimum_purchase_minor < 0 || r.max_per_referrer == 0 {
        return Err("referrals: minimum_purchase_minor >= 0 and max_per_referrer >= 1".into());
    }
    Ok(Referrals {
        sign_up_credits: credits("referrals.sign_up_credits", r.sign_up_credits)?,
        purchase_credits: credits("referrals.purchase_credits", r.purchase_credits)?,
        minimum_purchase_minor: r.minimum_purchase_minor,
        hold: r.hold,
        validity: r.validity,
        max_per_referrer: r.max_per_referrer,
    })
}

/// A feature is priced once: per use (the catalog) or per token, never both.
fn parse_token_pricing(t: TokenPricingFile, catalog: &Catalog) -> Result<TokenPricing, String> {
    let pricing = TokenPricing::new(t.feature, t.default_model, t.models).map_err(|e| format!("token_pricing: {e}"))?;
    if catalog.has_feature(pricing.feature()) {
        return Err(format!("{} is priced both per use and per token", pricing.feature()));
    }
    Ok(pricing)
}

/// The trial's features must be priced (per use or per token), each listed once.
fn parse_free_trial(t: FreeTrialFile, catalog: &Catalog, token_pricing: Option<&TokenPricing>) -> Result<FreeTrial, String> {
    let priced = |f: &String| catalog.has_feature(f) || token_pricing.is_some_and(|p| p.feature() == f);
    if !(1..=MAX_FREE_TRIAL_USES).contains(&t.uses) || t.features.is_empty() {
        return Err(format!("free_trial needs 1 to {MAX_FREE_TRIAL_USES} uses and at least one feature"));
    }
    if let Some(f) = t.features.iter().find(|f| !priced(f) || t.features.iter().filter(|g| g == f).count() > 1) {
        return Err(format!("free_trial: feature {f:?} is not priced, or is listed twice"));
    }
    Ok(FreeTrial { uses: t.uses, features: t.features })
}

/// Metering's tiers may name only the program's plans, and every plan says its storage quota.
fn parse_metering(m: MeteringFile, plans: &[Plan]) -> Result<Metering, String> {
    let free_bytes_per_month = pricing::gb_to_bytes(m.traffic.free_gb_per_month)
        .ok_or_else(|| "metering.traffic.free_gb_per_month must be whole bytes, >= 0".to_string())?;
    let traffic = TrafficRate { credits_per_gb: m.traffic.credits_per_gb, free_bytes_per_month };
    let metering = Metering::new(m.tiers, m.add_ons, m.storage, traffic).map_err(|e| format!("metering: {e}"))?;
    for tier in metering.tiers() {
        if let Some(plan) = tier.plans.iter().flatten().find(|code| !plans.iter().any(|p| p.code == **code)) {
            return Err(format!("metering: tier {} names unknown plan {plan:?}", tier.code));
        }
    }
    // Storage is charged over each plan's quota: say it, even when it is 0.
    if let Some(plan) = plans.iter().find(|p| p.storage_quota_gb.is_none()) {
        return Err(format!("plan {} has no storage_quota_gb, but storage is metered", plan.code));
    }
    Ok(metering)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_loads() {
        for name in Program::preset_names() {
            let program = Program::load(name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(program.name, name);
            for package in &program.packages {
                assert!(package.credits >= program.minimum_purchase, "{name}: package {} is under the minimum", package.code);
            }
        }
    }

    #[test]
    fn presets_carry_the_documented_numbers() {
        let arkain = Program::load("arkain").unwrap();
        assert_eq!(arkain.credit_price_minor, Decimal::from(2));
        assert_eq!(arkain.minimum_purchase, Credits::from_whole(50));
        assert_eq!(arkain.purchased_validity, Validity::Never);
        assert_eq!(arkain.consumption_order.tiers(), &[vec![LotClass::Free, LotClass::Promotional], vec![LotClass::Paid]]);
        let carat = Program::load("carat").unwrap();
        assert_eq!(carat.purchased_validity, Validity::Months(1));
        assert_eq!(carat.consumption_order.tiers(), &[vec![LotClass::Paid, LotClass::Promotional], vec![LotClass::Free]]);
        let archipelag = Program::load("archipelag").unwrap();
        assert_eq!(archipelag.credit_price_minor, Decimal::from(1));
        assert_eq!(archipelag.sign_up_grant, Some(Grant { credits: Credits::from_whole(10_000), validity: Validity::Never }));
        assert_eq!(archipelag.consumption_order.tiers().len(), 1);
        assert_eq!(arkain.check_in, Some(Grant { credits: Credits::from_whole(5), validity: Validity::Days(30) }));
        assert_eq!(carat.check_in, None);
        assert_eq!(arkain.plan("membership").unwrap().monthly_credits, Some(Credits::from_whole(1000)));
        assert_eq!(arkain.plan("free").unwrap().monthly_credits, Some(Credits::from_whole(50)));
        assert_eq!(arkain.plan_credits.unwrap().period, PlanPeriod::CalendarMonth);
        assert_eq!(carat.plan("pro").unwrap().lucky_max_credits, Some(Credits::from_whole(3500)));
        assert_eq!(carat.plan("plus").unwrap().monthly_credits, Some(Credits::from_whole(10_000)));
        assert_eq!(carat.plan_credits.unwrap().period, PlanPeriod::FromRecharge);
        assert_eq!(
            arkain.refunds,
            Refunds { policy: RefundPolicy::ProRata, window: Validity::Days(7), operator_window: Validity::Months(3) }
        );
        assert_eq!(arkain.first_purchase_bonus.map(|b| b.percent), Some(Decimal::from(30)));
        assert_eq!(carat.refunds.policy, RefundPolicy::UnusedOnly);
        assert_eq!(archipelag.refunds.policy, RefundPolicy::Never);
        assert_eq!(carat.plan("free").unwrap().daily_free_credits, Some(Credits::from_whole(100)));
        let lucky = carat.lucky.unwrap();
        assert_eq!(lucky.ends_at.to_rfc3339(), "2026-05-01T00:00:00+00:00", "until the end of 2026-04-30, UTC");
        assert_eq!(lucky.validity, Validity::Hours(24));
        let referrals = arkain.referrals.clone().unwrap();
        assert_eq!((referrals.sign_up_credits, referrals.purchase_credits), (Credits::from_whole(300), Credits::from_whole(600)));
        assert_eq!((referrals.minimum_purchase_minor, referrals.hold, referrals.max_per_referrer), (1000, Validity::Days(7), 10));
        let ads = carat.ad_rewards.unwrap();
        assert_eq!((ads.mode, ads.validity), (AdMode::Ad, Validity::Days(3)));
        assert_eq!(archipelag.check_in, None);
    }

    #[test]
    fn presets_carry_their_prices() {
        use crate::ledger::pricing::{QuoteOptions, TokenKind, TokenUsage, container_charge, price_question, quote, traffic_charge};
        let dec = |s: &str| s.parse::<Decimal>().unwrap();
        let defaults = QuoteOptions::default();

        let arkain = Program::load("arkain").unwrap();
        let metering = arkain.metering.as_ref().unwrap();
        let rates: Vec<(&str, Decimal)> = metering.tiers().iter().map(|t| (t.code.as_str(), t.credits_per_hour)).collect();
        let expected =
            [("micro", "1.96"), ("small", "6.80"), ("medium", "13.60"), ("large", "27.20"), ("xlarge", "54.40"), ("gpu_basic", "51.76")];
        assert_eq!(rates, expected.map(|(code, rate)| (code, dec(rate))));
        for tier in ["xlarge", "gpu_basic"] {
            assert!(metering.tier_for_plan(tier, "free").is_err() && metering.tier_for_plan(tier, "membership").is_ok());
        }
        assert!(metering.tier_for_plan("large", "free").is_ok());
        assert_eq!(metering.add_on("code_supporter").unwrap().free_on_tiers, ["gpu_basic"]);
        assert_eq!(metering.storage().credits_per_gb_hour, dec("0.018"));
        assert_eq!(metering.traffic().free_bytes_per_month, 10_000_000_000);
        assert_eq!(container_charge(metering, "micro", 90 * 60).unwrap(), Credits::parse_positive(dec("2.94")).unwrap());
        assert_eq!(traffic_charge(metering, 9_000_000_000, 2_000_000_000).unwrap(), Credits::from_whole(8));
        let ai = arkain.token_pricing.as_ref().unwrap();
        assert_eq!((ai.feature(), ai.default_model(), ai.models().len()), ("side-chat", "claude-sonnet-4.6", 5));
        assert_eq!(ai.model(Some("gpt-5-mini")).unwrap().credits_per_token.rate(TokenKind::CacheWrite), None);
        let usage = TokenUsage { cache_read: 1_000_000, ..TokenUsage::default() };
        assert_eq!(price_question(ai, Some("gpt-5-nano"), &usage).unwrap().total.to_string(), "0.4");
        let trial = arkain.free_trial.as_ref().unwrap();
        assert_eq!(trial.uses, 3);
        assert!(trial.covers("snap") && trial.covers("side-chat"));
        assert_eq!(quote(&arkain.catalog, "snap", None, &defaults).unwrap().total, Credits::from_whole(5));

        let carat = Program::load("carat").unwrap();
        assert!(carat.metering.is_none() && carat.token_pricing.is_none() && carat.free_trial.is_none());
        let ltx = quote(&carat.catalog, "video", None, &defaults).unwrap();
        assert_eq!((ltx.model.as_deref(), ltx.total), (Some("ltx"), Credits::from_whole(33)));
        let image = quote(&carat.catalog, "image", None, &defaults).unwrap();
        assert!(image.total < ltx.total, "a video model costs more than an image model");
        for video in carat.catalog.entries().iter().filter(|e| e.feature == "video") {
            assert_eq!(video.length.map(|l| l.max_seconds), Some(15), "{:?}: videos are at most 15 s", video.model);
            assert!(video.credits >= dec("33"));
        }
        for feature in ["chat", "image", "video", "audio"] {
            assert!(carat.catalog.has_feature(feature), "{feature}");
        }

        let archipelag = Program::load("archipelag").unwrap();
        assert!(archipelag.metering.is_none() && archipelag.token_pricing.is_none());
        assert_eq!(quote(&archipelag.catalog, "llm-chat", None, &defaults).unwrap().total, Credits::from_whole(2));
        assert_eq!(quote(&archipelag.catalog, "image", None, &defaults).unwrap().total, Credits::from_whole(20));
    }

    #[test]
    fn the_ledger_fixture_loads_with_arkain_prices_and_no_free_trial() {
        let fixture = Program::parse("fixture", include_str!("../tests/fixtures/ledger.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(fixture.metering.is_some() && fixture.token_pricing.is_some() && fixture.catalog.has_feature("snap"));
        assert!(fixture.free_trial.is_none());
    }

    #[test]
    fn a_pending_purchase_waits_24_hours_unless_the_program_says_otherwise() {
        for name in Program::preset_names() {
            let program = Program::load(name).unwrap();
            assert_eq!((program.pending_purchase_lifetime, program.pending_lifetime), (Validity::Hours(24), chrono::Duration::hours(24)));
        }
        let good = include_str!("../config/presets/arkain.toml");
        let set = |lifetime: &str| {
            good.replacen(
                "purchased_validity = \"never\"",
                &format!("purchased_validity = \"never\"\npending_purchase_lifetime = {lifetime}"),
                1,
            )
        };
        let two_days = Program::parse("t", &set("\"2 days\"")).unwrap();
        assert_eq!((two_days.pending_purchase_lifetime, two_days.pending_lifetime), (Validity::Days(2), chrono::Duration::days(2)));
        for refused in ["\"never\"", "\"1 month\"", "\"0 hours\"", "\"31 days\"", "\"soon\"", "24"] {
            assert!(Program::parse("t", &set(refused)).is_err(), "{refused} is refused");
        }
    }

    #[test]
    fn rejects_inconsistent_prices() {
        let good = include_str!("../config/presets/arkain.toml");
        let cases = [
            (r#"default_model = "claude-sonnet-4.6""#, r#"default_model = "gpt-4""#),
            (r#"features = ["snap", "side-chat"]"#, r#"features = ["snap", "video"]"#),
            (r#"features = ["snap", "side-chat"]"#, r#"features = ["snap", "snap"]"#),
            ("uses = 3", "uses = 0"),
            (r#"plans = ["membership"]"#, r#"plans = ["gold"]"#),
            (r#"free_on_tiers = ["gpu_basic"]"#, r#"free_on_tiers = ["tpu"]"#),
            (r#"credits_per_gb_hour = "0.018""#, r#"credits_per_gb_hour = "0""#),
            (r#"free_gb_per_month = "10""#, r#"free_gb_per_month = "-1""#),
            (r#"storage_quota_gb = "5""#, r#"storage_quota_gb = "0.0000000001""#),
            (r#"storage_quota_gb = "5""#, ""),
            (r#"feature = "snap""#, r#"feature = "side-chat""#),
            (
                r#"name = "Arkain Snap""#,
                r#"name = "Arkain Snap"
count = { max = 0 }"#,
            ),
            (r#"code = "micro""#, r#"code = "small""#),
            (
                r#"credits_per_hour = "1.96""#,
                r#"credits_per_hour = "1.96"
per_minute = true"#,
            ),
        ];
        for (from, to) in cases {
            let bad = good.replacen(from, to, 1);
            assert!(bad != good, "{from} is not in the preset");
            assert!(Program::parse("t", &bad).is_err(), "{from} -> {to} should be refused");
        }
        let carat = include_str!("../config/presets/carat.toml");
        let two_defaults = carat.replacen(r#"name = "Sora 2""#, "name = \"Sora 2\"\ndefault = true", 1);
        assert!(two_defaults != carat && Program::parse("t", &two_defaults).is_err(), "one default model per feature");
    }

    #[test]
    fn the_rollover_example_and_fixture_load_with_their_options() {
        let example = Program::parse("example", include_str!("../docs/examples/rollover.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(example.plan("pro").unwrap().rollover, Some(Rollover { max: Credits::from_whole(500), periods: 2 }));
        assert_eq!(example.plan("starter").unwrap().rollover, None);
        let fixture = Program::parse("fixture", include_str!("../tests/fixtures/rollover.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fixture.plan("free").unwrap().rollover, Some(Rollover { max: Credits::from_whole(20), periods: 2 }));
    }

    #[test]
    fn gifts_are_off_in_every_preset_and_the_example_turns_them_on_within_bounds() {
        for name in Program::preset_names() {
            assert_eq!(Program::load(name).unwrap().gifts, None, "{name}: gifts are off unless a product documents them");
        }
        let example = include_str!("../docs/examples/gifts.toml");
        let gifts = Program::parse("example", example).unwrap_or_else(|e| panic!("{e}")).gifts.unwrap();
        assert_eq!(
            (gifts.daily_limit, gifts.max_per_gift, gifts.daily_count),
            (Credits::from_whole(500), Some(Credits::from_whole(300)), Some(5))
        );
        for (from, to) in [
            (r#"daily_limit = "500""#, r#"daily_limit = "0""#),
            (r#"daily_limit = "500""#, r#"daily_limit = "-1""#),
            (r#"daily_limit = "500""#, r#"daily_limit = "0.0000001""#),
            (r#"daily_limit = "500""#, ""),
            (r#"max_per_gift = "300""#, r#"max_per_gift = "501""#),
            ("daily_count = 5", "daily_count = 0"),
            ("daily_count = 5", "daily_count = 1001"),
            ("daily_count = 5", "daily_count = 5\nweekly_limit = \"1\""),
        ] {
            let bad = example.replacen(from, to, 1);
            assert!(bad != example, "{from} is not in the example");
            assert!(Program::parse("t", &bad).is_err(), "{from} -> {to} should be refused");
        }
    }

    #[test]
    fn a_plan_may_roll_its_credits_over_within_bounds() {
        let arkain = include_str!("../config/presets/arkain.toml");
        let with = |option: &str| arkain.replacen(r#"monthly_credits = "50""#, &format!("monthly_credits = \"50\"\n{option}"), 1);
        let program = Program::parse("t", &with(r#"rollover = { max = "20.5", periods = 2 }"#)).unwrap_or_else(|e| panic!("{e}"));
        let rollover = program.plan("free").unwrap().rollover.unwrap();
        assert_eq!((rollover.max.to_string().as_str(), rollover.periods), ("20.5", 2));
        assert_eq!(program.plan("membership").unwrap().rollover, None, "absent: no rollover");
        for bad in [
            r#"rollover = { max = "0", periods = 1 }"#,
            r#"rollover = { max = "-5", periods = 1 }"#,
            r#"rollover = { max = "0.0000001", periods = 1 }"#,
            r#"rollover = { max = "10", periods = 0 }"#,
            r#"rollover = { max = "10", periods = 13 }"#,
            r#"rollover = { max = "10" }"#,
            r#"rollover = { max = "10", periods = 1, forever = true }"#,
        ] {
            let message = Program::parse("t", &with(bad)).map(|_| ()).unwrap_err().to_string();
            assert!(message.contains("rollover") || message.contains("periods"), "{bad}: {message}");
        }
        // A plan without credits of its own has nothing to carry.
        let carat = include_str!("../config/presets/carat.toml");
        let no_credits =
            carat.replacen(r#"daily_free_credits = "100""#, "daily_free_credits = \"100\"\nrollover = { max = \"10\", periods = 1 }", 1);
        let message = Program::parse("t", &no_credits).map(|_| ()).unwrap_err().to_string();
        assert!(message.contains("rollover needs monthly_credits"), "{message}");
        // No preset has it: none of the source products documents rollover.
        for name in Program::preset_names() {
            assert!(Program::load(name).unwrap().plans.iter().all(|p| p.rollover.is_none()), "{name}");
        }
    }

    #[test]
    fn rejects_inconsistent_programs() {
        let good = include_str!("../config/presets/arkain.toml");
        let bad_order =
            good.replace(r#"consumption_order = [["free", "promotional"], ["paid"]]"#, r#"consumption_order = [["free"], ["paid"]]"#);
        assert!(bad_order != good && Program::parse("t", &bad_order).is_err());
        let bad_plan = good.replace(r#"default_plan = "free""#, r#"default_plan = "gold""#);
        assert!(bad_plan != good && Program::parse("t", &bad_plan).is_err());
        assert!(Program::load("no-such-preset-or-file").is_err());
    }
}
