//! The market part of the schema: providers' asks, jobs, and market rates.

use crate::graphql::amount::CreditAmount;
use crate::graphql::types::credits;
use crate::ledger::market::Rate;
use crate::service::market::{JobView, RatesView};
use async_graphql::{Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};

/// Where a market job's budget came from, in the order they are tried.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::ledger::market::BudgetSource")]
pub enum BudgetSource {
    /// The job's own bid price.
    Bid,
    /// The consumer's saved bid preference for the workload.
    Preference,
    /// The workload's current average market rate.
    AverageRate,
    /// The workload's default price in the program.
    DefaultPrice,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::ledger::market::HardwareClass")]
pub enum HardwareClass {
    /// x2.0
    Enterprise,
    /// x1.5
    HighEnd,
    /// x1.2
    MidRange,
    /// x1.0
    Entry,
    /// x0.5
    CpuOnly,
}

/// Where a market job stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::ledger::market::JobStatus")]
pub enum MarketJobStatus {
    /// Matched with a provider, its price held from the consumer.
    Running,
    /// Finished: its price went to the provider, less the platform's fee.
    Completed,
    /// Failed, or passed its deadline: its price went back to the consumer.
    Failed,
    /// Never started: its `code` says why.
    Rejected,
}

/// Why a market job was rejected or failed.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::ledger::market::JobCode")]
pub enum MarketJobCode {
    /// Rejected: no provider asks a price for the workload.
    NoProvider,
    /// Rejected: providers within the budget exist, but none has a free slot.
    AllBusy,
    /// Rejected: every available provider's final price is over the job's budget.
    BidTooLow,
    /// Rejected: the consumer could not cover the matched price.
    InsufficientCredits,
    /// Failed: the provider reported the job failed (failJob).
    Failed,
    /// Failed: the job outlived its deadline.
    Deadline,
}

#[derive(InputObject)]
pub struct WorkloadAskInput {
    pub workload: String,
    /// Credits per job, before the hardware multiplier and any surge.
    pub price: CreditAmount,
}

#[derive(InputObject)]
pub struct SetAskingPricesInput {
    pub account_id: ID,
    pub hardware_class: HardwareClass,
    /// Jobs the provider runs at once.
    pub capacity: i32,
    /// The ask for workloads without their own.
    pub default_price: CreditAmount,
    #[graphql(default)]
    pub prices: Vec<WorkloadAskInput>,
}

#[derive(SimpleObject)]
pub struct WorkloadAsk {
    pub workload: String,
    pub price: CreditAmount,
}

#[derive(InputObject)]
pub struct JobInputItem {
    /// What the job is to do (at most 2,000 characters).
    pub input: String,
    /// The most this job may cost; else the saved preference, the market's average, or the
    /// workload's default price.
    pub bid_price: Option<CreditAmount>,
}

#[derive(InputObject)]
pub struct SubmitJobInput {
    pub account_id: ID,
    pub workload: String,
    /// 1 to 100 inputs, each its own job.
    pub inputs: Vec<JobInputItem>,
    /// 0 to 100.
    #[graphql(default = 50)]
    pub priority: i32,
    pub idempotency_key: String,
}

#[derive(InputObject)]
pub struct EndJobInput {
    pub job_id: ID,
    pub idempotency_key: String,
    /// Why it failed (failJob only).
    pub reason: Option<String>,
}

/// A job on the market.
#[derive(SimpleObject)]
pub struct MarketJob {
    pub job_id: ID,
    pub workload: String,
    pub input: String,
    pub priority: i32,
    pub status: MarketJobStatus,
    /// Why it was rejected or failed.
    pub code: Option<MarketJobCode>,
    /// The provider's account id.
    pub provider: Option<ID>,
    pub budget: Option<CreditAmount>,
    /// Where the budget came from.
    pub budget_source: Option<BudgetSource>,
    /// The final price: ask x hardware multiplier x surge; never above the budget.
    pub price: Option<CreditAmount>,
    pub surge: bool,
    pub reservation_id: Option<ID>,
    /// What the provider earned, and the platform's fee (completed jobs).
    pub earnings: Option<CreditAmount>,
    pub fee: Option<CreditAmount>,
    pub deadline: DateTime<Utc>,
}

impl From<JobView> for MarketJob {
    fn from(j: JobView) -> Self {
        MarketJob {
            job_id: ID(j.id.to_string()),
            workload: j.workload,
            input: j.input,
            priority: j.priority,
            status: j.status.into(),
            code: j.rejection_code.map(Into::into),
            provider: j.provider.map(ID),
            budget: j.budget.map(credits),
            budget_source: j.budget_source.map(Into::into),
            price: j.price.map(credits),
            surge: j.surge,
            reservation_id: j.reservation_id.map(|id| ID(id.to_string())),
            earnings: j.earnings.map(credits),
            fee: j.fee.map(credits),
            deadline: j.deadline,
        }
    }
}

#[derive(SimpleObject)]
pub struct MarketRate {
    pub average: CreditAmount,
    pub min: CreditAmount,
    pub max: CreditAmount,
    pub providers: i32,
}

impl From<Rate> for MarketRate {
    fn from(r: Rate) -> Self {
        MarketRate {
            average: credits(r.average),
            min: credits(r.min),
            max: credits(r.max),
            providers: i32::try_from(r.providers).unwrap_or(i32::MAX),
        }
    }
}

#[derive(SimpleObject)]
pub struct MarketRateAt {
    pub at: DateTime<Utc>,
    pub rate: MarketRate,
}

/// A workload's market: its rate now from the providers' asks, a suggested bid (rate x 1.05),
/// and the 5-minute snapshots, newest first.
#[derive(SimpleObject)]
pub struct MarketRates {
    pub workload: String,
    pub now: Option<MarketRate>,
    pub suggested_bid: Option<CreditAmount>,
    pub history: Vec<MarketRateAt>,
}

impl From<RatesView> for MarketRates {
    fn from(r: RatesView) -> Self {
        MarketRates {
            workload: r.workload,
            now: r.now.map(Into::into),
            suggested_bid: r.suggested_bid.map(credits),
            history: r.history.into_iter().map(|(at, rate)| MarketRateAt { at, rate: rate.into() }).collect(),
        }
    }
}
