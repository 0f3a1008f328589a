//! The program this deployment runs: its plans and its rules.

use crate::graphql::amount::CreditAmount;
use crate::graphql::amount::DecimalValue;
use crate::graphql::context::{app, caller};
use crate::graphql::error::ApiResult;
use crate::graphql::types::*;
use async_graphql::{Context, Object, SimpleObject};

/// A plan with its monthly credits and limits.
#[derive(SimpleObject)]
pub struct Plan {
    /// The code requests name (`createAccount`, `changePlan`, `account.plan`).
    pub code: String,
    /// The name shown to users.
    pub name: String,
    /// Credits granted each period (a calendar month, or a month from the plan's start).
    pub monthly_credits: Option<CreditAmount>,
    /// The plan's price per month, where published.
    pub price: Option<Money>,
    /// A paid subscription.
    pub paid: bool,
    /// Free storage before storage is charged, in GB (10^9 bytes), as a decimal string ("5");
    /// null where the plan has no quota.
    pub storage_quota_gb: Option<DecimalValue>,
    /// The most lucky credits one daily draw can give.
    pub lucky_max_credits: Option<CreditAmount>,
    /// What of a period's unused plan credits carries into later periods; null: they end with
    /// their period.
    pub rollover: Option<PlanRollover>,
}

/// A plan's rollover: at a period's end, what its plan credits left (up to `max`) carries into a
/// ROLLOVER lot, valid until the end of the `periods`th period after. Rolled-over credits never
/// roll again, and credits a reservation holds at the period's end do not carry.
#[derive(SimpleObject)]
pub struct PlanRollover {
    /// The most credits one period carries over.
    pub max: CreditAmount,
    /// How many later periods the carried credits stay valid for (1: to the end of the next).
    pub periods: i32,
}

impl Plan {
    pub fn new(plan: &crate::program::Plan, currency: &str) -> Plan {
        Plan {
            code: plan.code.clone(),
            name: plan.name.clone(),
            monthly_credits: plan.monthly_credits.map(credits),
            price: plan.price_minor.map(|amount_minor| Money { amount_minor, currency: currency.to_string() }),
            paid: plan.paid,
            storage_quota_gb: plan.storage_quota_gb.map(DecimalValue),
            lucky_max_credits: plan.lucky_max_credits.map(credits),
            rollover: plan
                .rollover
                .map(|r| PlanRollover { max: credits(r.max), periods: i32::try_from(r.periods).expect("at most MAX_ROLLOVER_PERIODS") }),
        }
    }
}

/// The program this deployment runs.
#[derive(SimpleObject)]
pub struct ProgramInfo {
    /// The program's name (the preset's, such as "arkain").
    pub name: String,
    /// The ISO 4217 code of the currency purchases are priced in.
    pub currency: String,
    /// Minor units of the currency per credit, as a decimal string; may be fractional ("0.5").
    pub credit_price_minor: DecimalValue,
    /// The fewest credits a custom purchase may buy.
    pub minimum_purchase: CreditAmount,
    /// "never", "end of month", or a count and unit such as "1 month" or "30 days".
    pub purchased_validity: String,
    /// How long a pending purchase waits for its payment before it expires ("24 hours" unless
    /// the program says otherwise): hours or days.
    pub pending_purchase_lifetime: String,
    /// Tiers of lot classes, consumed in order; soonest expiry first within a tier.
    pub consumption_order: Vec<Vec<LotClass>>,
    /// The program's plans (as `plans`).
    pub plans: Vec<Plan>,
    /// The service's current instant, by which balances, expiries, claims and refund windows
    /// are judged: the test clock's on a deployment that runs one (`testClock`).
    pub now: chrono::DateTime<chrono::Utc>,
    /// This deployment runs on a test clock that admins move (`advanceClock`); time stands still
    /// between advances.
    pub test_clock: bool,
    /// How a user pays for a purchase: the program's checkout page, a simulated payment
    /// (development), or the product's own app.
    pub checkout: crate::graphql::portal::CheckoutMode,
    /// How ad rewards are earned, or null where the program has none.
    pub ad_reward_mode: Option<AdRewardMode>,
    /// How long after buying a user may refund a purchase themselves ("7 days"), or null where
    /// users cannot (the operator may still, within its own window).
    pub refund_window: Option<String>,
    /// Credits expiring within this ("7 days") are called out to the user (the expiring-credits
    /// notice); null where the program sends no such notice.
    pub expiring_within: Option<String>,
    /// The program meters usage (`account.usage`, containers, AI logs).
    pub metering: bool,
    /// The program runs a compute market (`marketRates`, `submitJob`, `account.jobs`).
    pub market: bool,
    /// The program has referral codes (`account.referralCode`).
    pub referrals: bool,
    /// The features priced per use, with their models: what `spendCredits` and `priceQuote`
    /// name, and, where the program has a market, its workloads (`marketRates(workload:)`).
    pub catalog: Vec<CatalogItem>,
    /// Gifts between users (`giftCredits`) and their limits; null where the program has none
    /// (`giftCredits` is then FEATURE_DISABLED).
    pub gifts: Option<GiftRules>,
}

/// The program's gifts of paid credits between users (its `[gifts]` section): limits per sender
/// and UTC day, over all recipients.
#[derive(SimpleObject)]
pub struct GiftRules {
    /// The most credits a sender may give in one UTC day.
    pub daily_limit: CreditAmount,
    /// The most credits one gift may carry; null: up to `dailyLimit`.
    pub max_per_gift: Option<CreditAmount>,
    /// The most gifts a sender may make in one UTC day; null: no such count.
    pub daily_count: Option<u32>,
}

/// One feature (and model) priced per use.
#[derive(SimpleObject)]
pub struct CatalogItem {
    /// The feature's code, as requests name it ("llm-chat").
    pub feature: String,
    /// The model's code, where the feature has a choice of models.
    pub model: Option<String>,
    /// What users see ("LLM chat, high quality").
    pub name: String,
    /// Credits per use at the default options (`priceQuote` scales them by options), as a
    /// decimal string.
    pub credits: DecimalValue,
    /// The feature's model when a request names none.
    pub default: bool,
}

/// How a program's ad rewards are earned.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::program::AdMode")]
pub enum AdRewardMode {
    /// Watching an ad in the product's app: the ad network verifies the view
    /// (`claimAdReward` with its transaction id, or the network's callback).
    Ad,
    /// Pressing a button (`claimAdReward` without a transaction id).
    Button,
}

#[derive(Default)]
pub struct ProgramQuery;

#[Object]
impl ProgramQuery {
    /// The plans of this program (any token).
    async fn plans(&self, ctx: &Context<'_>) -> ApiResult<Vec<Plan>> {
        caller(ctx)?;
        let program = &app(ctx).ledger.program;
        Ok(program.plans.iter().map(|p| Plan::new(p, &program.currency)).collect())
    }
    /// The rules this deployment runs (any token).
    async fn program(&self, ctx: &Context<'_>) -> ApiResult<ProgramInfo> {
        caller(ctx)?;
        let program = &app(ctx).ledger.program;
        Ok(ProgramInfo {
            name: program.name.clone(),
            currency: program.currency.clone(),
            credit_price_minor: DecimalValue(program.credit_price_minor),
            minimum_purchase: credits(program.minimum_purchase),
            purchased_validity: program.purchased_validity.to_string(),
            pending_purchase_lifetime: program.pending_purchase_lifetime.to_string(),
            consumption_order: program.consumption_order.tiers().iter().map(|t| t.iter().map(|c| (*c).into()).collect()).collect(),
            plans: program.plans.iter().map(|p| Plan::new(p, &program.currency)).collect(),
            now: app(ctx).clock.now(),
            test_clock: app(ctx).clock.is_test(),
            checkout: crate::graphql::portal::links(ctx)
                .map_or(crate::graphql::portal::CheckoutMode::Simulated, |links| (&links.checkout).into()),
            ad_reward_mode: program.ad_rewards.as_ref().map(|ads| ads.mode.into()),
            refund_window: match program.refunds.policy {
                crate::ledger::refund::RefundPolicy::Never => None,
                _ => Some(program.refunds.window.to_string()),
            },
            expiring_within: program.notices.expiring_within.map(describe_duration),
            metering: program.metering.is_some(),
            market: program.market.is_some(),
            referrals: program.referrals.is_some(),
            catalog: program
                .catalog
                .entries()
                .iter()
                .map(|e| CatalogItem {
                    feature: e.feature.clone(),
                    model: e.model.clone(),
                    name: e.name.clone(),
                    credits: DecimalValue(e.credits),
                    default: e.default,
                })
                .collect(),
            gifts: program.gifts.map(|g| GiftRules {
                daily_limit: credits(g.daily_limit),
                max_per_gift: g.max_per_gift.map(credits),
                daily_count: g.daily_count,
            }),
        })
    }
}

/// A whole number of days or hours as words ("7 days", "36 hours"), as validities are written.
fn describe_duration(length: chrono::Duration) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if length.num_hours() % 24 == 0 { plural(length.num_days(), "day") } else { plural(length.num_hours(), "hour") }
}
