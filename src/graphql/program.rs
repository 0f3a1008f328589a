//! The program this deployment runs: its plans and its rules.

use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{app, caller};
use crate::graphql::error::ApiResult;
use crate::graphql::types::*;
use async_graphql::{Context, Object, SimpleObject};
use rust_decimal::Decimal;

/// A plan with its monthly credits and limits.
#[derive(SimpleObject)]
pub struct Plan {
    pub code: String,
    pub name: String,
    /// Credits granted each period (a calendar month, or a month from the plan's start).
    pub monthly_credits: Option<CreditAmount>,
    /// The plan's price per month, where published.
    pub price: Option<Money>,
    /// A paid subscription.
    pub paid: bool,
    /// Free storage before storage is charged, in GB.
    pub storage_quota_gb: Option<Decimal>,
    /// The most lucky credits one daily draw can give.
    pub lucky_max_credits: Option<CreditAmount>,
}

impl Plan {
    pub fn new(plan: &crate::program::Plan, currency: &str) -> Plan {
        Plan {
            code: plan.code.clone(),
            name: plan.name.clone(),
            monthly_credits: plan.monthly_credits.map(credits),
            price: plan.price_minor.map(|amount_minor| Money { amount_minor, currency: currency.to_string() }),
            paid: plan.paid,
            storage_quota_gb: plan.storage_quota_gb,
            lucky_max_credits: plan.lucky_max_credits.map(credits),
        }
    }
}

/// The program this deployment runs.
#[derive(SimpleObject)]
pub struct ProgramInfo {
    pub name: String,
    pub currency: String,
    /// Minor units per credit; may be fractional.
    pub credit_price_minor: Decimal,
    pub minimum_purchase: CreditAmount,
    /// "never", "end of month", or a count and unit such as "1 month" or "30 days".
    pub purchased_validity: String,
    /// Tiers of lot classes, consumed in order; soonest expiry first within a tier.
    pub consumption_order: Vec<Vec<LotClass>>,
    pub plans: Vec<Plan>,
    /// The service's current instant, by which balances, expiries, claims and refund windows
    /// are judged: the test clock's on a deployment that runs one (`testClock`).
    pub now: chrono::DateTime<chrono::Utc>,
    /// This deployment runs on a test clock that admins move (`advanceClock`); time stands still
    /// between advances.
    pub test_clock: bool,
}

#[derive(Default)]
pub struct ProgramQuery;

#[Object]
impl ProgramQuery {
    /// The plans of this program.
    async fn plans(&self, ctx: &Context<'_>) -> ApiResult<Vec<Plan>> {
        caller(ctx)?;
        let program = &app(ctx).ledger.program;
        Ok(program.plans.iter().map(|p| Plan::new(p, &program.currency)).collect())
    }
    /// The rules this deployment runs.
    async fn program(&self, ctx: &Context<'_>) -> ApiResult<ProgramInfo> {
        caller(ctx)?;
        let program = &app(ctx).ledger.program;
        Ok(ProgramInfo {
            name: program.name.clone(),
            currency: program.currency.clone(),
            credit_price_minor: program.credit_price_minor,
            minimum_purchase: credits(program.minimum_purchase),
            purchased_validity: program.purchased_validity.to_string(),
            consumption_order: program.consumption_order.tiers().iter().map(|t| t.iter().map(|c| (*c).into()).collect()).collect(),
            plans: program.plans.iter().map(|p| Plan::new(p, &program.currency)).collect(),
            now: app(ctx).clock.now(),
            test_clock: app(ctx).clock.is_test(),
        })
    }
}
