use crate::auth::Caller;
use crate::graphql::context::{app, caller};
use crate::graphql::error::ApiError;
use crate::graphql::error::ApiResult;
use crate::graphql::types::{Account, CreditPackage, Money, Plan, PriceOptionsInput, PriceQuote, ProgramInfo, credits};
use async_graphql::{Context, ID, Object};

pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The caller's own account (user tokens).
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<Account> {
        match caller(ctx)? {
            Caller::User { account } => Account::load(ctx, account).await,
            _ => Err(ApiError::Forbidden("me is for user tokens; service and admin use account(id)".into())),
        }
    }

    /// Any account (service, admin), or the caller's own (user).
    async fn account(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Account> {
        Account::load(ctx, &id).await
    }

    /// The packages on sale, with their prices.
    async fn credit_packages(&self, ctx: &Context<'_>) -> ApiResult<Vec<CreditPackage>> {
        caller(ctx)?;
        let program = &app(ctx).ledger.program;
        Ok(program
            .packages
            .iter()
            .map(|p| CreditPackage {
                code: p.code.clone(),
                name: p.name.clone(),
                credits: credits(p.credits),
                price: Money { amount_minor: p.price_minor, currency: program.currency.clone() },
            })
            .collect())
    }

    /// The price of one use of a feature before it is made: the catalog's per-use price scaled
    /// by the options, or a token-priced model's price for the given tokens.
    async fn price_quote(&self, ctx: &Context<'_>, feature: String, options: Option<PriceOptionsInput>) -> ApiResult<PriceQuote> {
        caller(ctx)?;
        let reference = options.unwrap_or_default().into_ref(&feature);
        Ok(app(ctx).ledger.price_quote(&reference)?.into())
    }

    /// A workload's market rate: now (average, lowest and highest ask, providers), a suggested
    /// bid, and up to `history` 5-minute snapshots, newest first.
    async fn market_rates(
        &self,
        ctx: &Context<'_>,
        workload: String,
        #[graphql(default = 12)] history: i32,
    ) -> ApiResult<crate::graphql::market::MarketRates> {
        caller(ctx)?;
        let history = u64::try_from(history).unwrap_or(0);
        Ok(app(ctx).ledger.market_rates(&workload, history).await?.into())
    }

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
        })
    }
}
