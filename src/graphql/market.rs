//! The market part of the schema: providers' asks, jobs, and market rates.

use crate::graphql::amount::CreditAmount;
use crate::graphql::metadata::Metadata;
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

/// A provider's hardware: its asks are multiplied by the class's multiplier.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::ledger::market::HardwareClass")]
pub enum HardwareClass {
    /// Enterprise hardware: asks x 2.0.
    Enterprise,
    /// High-end hardware: asks x 1.5.
    HighEnd,
    /// Mid-range hardware: asks x 1.2.
    MidRange,
    /// Entry hardware: asks x 1.0.
    Entry,
    /// CPU only, no GPU: asks x 0.5.
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
    /// Rejected: the job's price would pass a spend limit the consumer set (`setSpendLimits`;
    /// `Account.spendLimits` shows which and when it resets).
    SpendLimitReached,
}

/// A provider's ask for one workload.
#[derive(InputObject)]
pub struct WorkloadAskInput {
    /// The workload: a feature of the program's catalog (letters, digits and `._:/-`, up to
    /// 64 characters), each listed once.
    pub workload: String,
    /// Credits per job, before the hardware multiplier and any surge.
    pub price: CreditAmount,
}

/// A provider's hardware, capacity and asks (the provider, or on behalf).
#[derive(InputObject)]
pub struct SetAskingPricesInput {
    /// The provider's external id; its identity must be verified.
    pub account_id: ID,
    /// The provider's hardware, whose multiplier scales every ask.
    pub hardware_class: HardwareClass,
    /// Jobs the provider runs at once: 1 to 10000.
    pub capacity: i32,
    /// The ask for workloads without their own.
    pub default_price: CreditAmount,
    /// Asks for particular workloads, at most 100; they replace all earlier ones.
    #[graphql(default)]
    pub prices: Vec<WorkloadAskInput>,
}

/// A provider's ask for one workload, as saved.
#[derive(SimpleObject)]
pub struct WorkloadAsk {
    /// The workload.
    pub workload: String,
    /// Credits per job, before the hardware multiplier and any surge.
    pub price: CreditAmount,
}

/// One job to submit.
#[derive(InputObject)]
pub struct JobInputItem {
    /// What the job is to do (at most 2,000 characters).
    pub input: String,
    /// The most this job may cost; else the saved preference, the market's average, or the
    /// workload's default price.
    pub bid_price: Option<CreditAmount>,
}

/// Jobs to submit (user, or on behalf); the account's identity must be verified.
#[derive(InputObject)]
pub struct SubmitJobInput {
    /// The consumer's external id; a user token may name only its own.
    pub account_id: ID,
    /// The workload every input runs as: a feature of the program's catalog.
    pub workload: String,
    /// 1 to 100 inputs, each its own job.
    pub inputs: Vec<JobInputItem>,
    /// 0 to 100.
    #[graphql(default = 50)]
    pub priority: i32,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
    /// Your own key-value pairs, kept on every job of the submission (`MarketJob.metadata`), its
    /// hold, and the consumer's entries of its completion or failure, shown in history (bounds:
    /// the `Metadata` scalar). Part of the request the idempotency key stands for.
    pub metadata: Option<Metadata>,
}

/// A job's end, as the provider's side reports it (service).
#[derive(InputObject)]
pub struct EndJobInput {
    /// The job (`MarketJob.jobId`).
    pub job_id: ID,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
    /// Why it failed (failJob only).
    pub reason: Option<String>,
}

/// A job on the market.
#[derive(SimpleObject)]
pub struct MarketJob {
    /// The job's id (for `completeJob` and `failJob`).
    pub job_id: ID,
    /// The workload it runs as.
    pub workload: String,
    /// What the job is to do, as submitted.
    pub input: String,
    /// Its priority, 0 to 100, as submitted.
    pub priority: i32,
    /// Where it stands.
    pub status: MarketJobStatus,
    /// Why it was rejected or failed.
    pub code: Option<MarketJobCode>,
    /// The provider's account id.
    pub provider: Option<ID>,
    /// The most the job may cost; null when none could be set (no bid, preference, rate or
    /// default price).
    pub budget: Option<CreditAmount>,
    /// Where the budget came from.
    pub budget_source: Option<BudgetSource>,
    /// The final price: ask x hardware multiplier x surge; never above the budget.
    pub price: Option<CreditAmount>,
    /// Whether the surge factor (x1.25: queued jobs over twice the free capacity) was applied.
    pub surge: bool,
    /// The reservation holding the price from the consumer; null when the job never matched.
    pub reservation_id: Option<ID>,
    /// What the provider earned, and the platform's fee (completed jobs).
    pub earnings: Option<CreditAmount>,
    /// The platform's fee, taken from the price (completed jobs); null otherwise.
    pub fee: Option<CreditAmount>,
    /// When the job must have completed: after it, its price goes back to the consumer and the
    /// provider is not paid.
    pub deadline: DateTime<Utc>,
    /// The metadata the job was submitted with, or null.
    pub metadata: Option<Metadata>,
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
            metadata: Metadata::of(j.metadata),
        }
    }
}

/// A workload's rate from the providers' asks (before hardware multipliers and surge).
#[derive(SimpleObject)]
pub struct MarketRate {
    /// The average ask.
    pub average: CreditAmount,
    /// The lowest ask.
    pub min: CreditAmount,
    /// The highest ask.
    pub max: CreditAmount,
    /// How many providers ask a price for the workload.
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

/// A 5-minute snapshot of a workload's rate.
#[derive(SimpleObject)]
pub struct MarketRateAt {
    /// The 5-minute mark it was taken at.
    pub at: DateTime<Utc>,
    /// The rate then.
    pub rate: MarketRate,
}

/// A workload's market: its rate now from the providers' asks, a suggested bid (rate x 1.05),
/// and the 5-minute snapshots, newest first.
#[derive(SimpleObject)]
pub struct MarketRates {
    /// The workload.
    pub workload: String,
    /// The rate now; null when no provider asks a price for it.
    pub now: Option<MarketRate>,
    /// The average rate x 1.05; null when there is no rate now.
    pub suggested_bid: Option<CreditAmount>,
    /// Snapshots, newest first: at most `history` of them (at most 288, a day).
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
