//! The market's root fields: asks, bid preferences, jobs, and market rates (the types are in
//! `market.rs`).

use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{app, caller, require_account, require_service};
use crate::graphql::error::ApiResult;
use crate::graphql::market::{EndJobInput, MarketJob, SetAskingPricesInput, SubmitJobInput, WorkloadAsk};
use crate::graphql::types::*;
use crate::service::market::{JobInput, SubmitRequest};
use async_graphql::{Context, ID, Object};

#[derive(Default)]
pub struct MarketQuery;

#[Object]
impl MarketQuery {
    /// A workload's market rate: now (average, lowest and highest ask, providers), a suggested
    /// bid, and up to `history` 5-minute snapshots, newest first (any token).
    async fn market_rates(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A workload: a feature of the program's catalog.")] workload: String,
        #[graphql(desc = "How many 5-minute snapshots to return, newest first: 0 to 288 (more counts as 288).", default = 12)] history: i32,
    ) -> ApiResult<crate::graphql::market::MarketRates> {
        caller(ctx)?;
        let history = u64::try_from(history).unwrap_or(0);
        Ok(app(ctx).ledger.market_rates(&workload, history).await?.into())
    }
}

#[derive(Default)]
pub struct MarketMutation;

#[Object]
impl MarketMutation {
    /// Registers a verified account as a provider (hardware, capacity) and replaces its asks: a
    /// default and any per workload (the provider itself, or on behalf).
    async fn set_asking_prices(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The provider, its hardware and capacity, and its asks.")] input: SetAskingPricesInput,
    ) -> ApiResult<Vec<WorkloadAsk>> {
        require_account(ctx, &input.account_id)?;
        let app = app(ctx);
        let asks = input.prices.into_iter().map(|p| (p.workload, p.price.0)).collect();
        let set = app
            .ledger
            .set_asking_prices(&input.account_id, input.hardware_class.into(), input.capacity, input.default_price.0, asks, app.clock.now())
            .await?;
        Ok(set.into_iter().map(|(workload, price)| WorkloadAsk { workload, price: credits(price) }).collect())
    }

    /// Saves the consumer's budget for a workload, used when a job names no bid: `bidPrice`, the
    /// most one job may cost, in credits (more than 0). Returns the saved budget (user, or on
    /// behalf).
    async fn set_bid_preference(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The consumer's external id; a user token may name only its own.")] account_id: ID,
        #[graphql(desc = "A workload: a feature of the program's catalog.")] workload: String,
        #[graphql(desc = "The most one job of the workload may cost, in credits: more than 0.")] bid_price: CreditAmount,
    ) -> ApiResult<CreditAmount> {
        require_account(ctx, &account_id)?;
        Ok(credits(app(ctx).ledger.set_bid_preference(&account_id, &workload, bid_price.0).await?))
    }

    /// Submits 1 to 100 jobs: each clears at the cheapest available provider whose final price
    /// is within its budget, with its price held until it completes or fails (user, or on behalf).
    async fn submit_job(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The consumer, the workload, the jobs' inputs and bids, and an idempotency key.")] input: SubmitJobInput,
    ) -> ApiResult<Vec<MarketJob>> {
        require_account(ctx, &input.account_id)?;
        let app = app(ctx);
        let inputs = input.inputs.into_iter().map(|i| JobInput { input: i.input, bid: i.bid_price.map(|b| b.0) }).collect();
        let jobs = app
            .ledger
            .submit_jobs(
                SubmitRequest {
                    account: &input.account_id,
                    workload: &input.workload,
                    inputs,
                    priority: input.priority,
                    metadata: crate::graphql::metadata::into_parsed(input.metadata),
                    idempotency_key: &input.idempotency_key,
                },
                app.clock.now(),
            )
            .await?;
        Ok(jobs.into_iter().map(Into::into).collect())
    }

    /// A job finished (service): its held price moves to the provider, less the platform's fee.
    async fn complete_job(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job and an idempotency key; a `reason` is checked but not kept.")] input: EndJobInput,
    ) -> ApiResult<MarketJob> {
        require_service(ctx)?;
        // A completion keeps no reason, but one that is sent is held to the same rules as a
        // failure's: a client must not learn that anything goes here.
        if let Some(reason) = &input.reason {
            crate::service::input::reason(reason)?;
        }
        let app = app(ctx);
        Ok(app.ledger.complete_job(&input.job_id, &input.idempotency_key, app.clock.now()).await?.into())
    }

    /// A job failed (service): its held price goes back to the consumer in full.
    async fn fail_job(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job, an idempotency key, and why it failed.")] input: EndJobInput,
    ) -> ApiResult<MarketJob> {
        require_service(ctx)?;
        let app = app(ctx);
        let reason = input.reason.unwrap_or_else(|| "failed".into());
        Ok(app.ledger.fail_job(&input.job_id, &reason, &input.idempotency_key, app.clock.now()).await?.into())
    }
}
