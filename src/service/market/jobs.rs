//! Jobs: a consumer submits a batch, each job is matched by the ledger's rule and its price
//! held, or rejected with a code; a consumer's jobs page by page.

use super::{default_price, market, rate_of, workload};
use crate::entity::{account, market_job};
use crate::ledger::Credits;
use crate::ledger::market::{self as rules, BudgetSource, JobCode, JobStatus, Offer};
use crate::program::Program;
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey};
use crate::service::metadata::Metadata;
use crate::service::paging::{Page, Window};
use crate::service::reservations::{HoldRefused, HoldRequest, hold};
use crate::service::spending::check_amount;
use crate::service::{Engine, Refusal, ServiceError};
use crate::store::{self, idempotency::request_hash, market::NewJob};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::DatabaseTransaction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest job input kept.
pub const MAX_INPUT_CHARS: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub id: i64,
    pub workload: String,
    pub input: String,
    pub priority: i32,
    pub status: JobStatus,
    pub rejection_code: Option<JobCode>,
    pub provider: Option<String>,
    pub budget: Option<Credits>,
    pub budget_source: Option<BudgetSource>,
    pub price: Option<Credits>,
    pub surge: bool,
    pub reservation_id: Option<i64>,
    pub earnings: Option<Credits>,
    pub fee: Option<Credits>,
    pub deadline: DateTime<Utc>,
    /// The submission's metadata. Kept in the key's stored outcome only when there is some, so
    /// outcomes stored before metadata existed read back, and new ones without it look the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// A submission of jobs, as the API gives it.
#[derive(Debug, Clone)]
pub struct SubmitRequest<'a> {
    pub account: &'a str,
    pub workload: &'a str,
    pub inputs: Vec<JobInput>,
    pub priority: i32,
    /// On every job of the submission and on their holds.
    pub metadata: Option<Metadata>,
    pub idempotency_key: &'a str,
}

#[derive(Debug, Clone)]
pub struct JobInput {
    pub input: String,
    pub bid: Option<Credits>,
}

#[derive(Debug, Clone, Serialize)]
struct SubmitFields<'a> {
    workload: &'a str,
    priority: i32,
    inputs: Vec<(&'a str, Option<Credits>)>,
    /// Left out when none: a submission without metadata hashes as before metadata existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Metadata>,
}

pub(super) fn view(job: &market_job::Model, providers: &BTreeMap<i64, String>) -> Result<JobView, ServiceError> {
    let (status, rejection_code) = store::market::job_state(job)?;
    Ok(JobView {
        id: job.id,
        workload: job.workload.clone(),
        input: job.input.clone(),
        priority: job.priority,
        status,
        rejection_code,
        provider: job.provider_account_id.and_then(|id| providers.get(&id).cloned()),
        budget: job.budget_micros.map(Credits::from_micros),
        budget_source: store::market::budget_source(job)?,
        price: job.price_micros.map(Credits::from_micros),
        surge: job.surge,
        reservation_id: job.reservation_id,
        earnings: job.earnings_micros.map(Credits::from_micros),
        fee: job.fee_micros.map(Credits::from_micros),
        deadline: job.deadline,
        metadata: job.metadata.as_deref().map(Metadata::from_stored).transpose()?,
    })
}

impl Engine {
    /// Submits 1 to 100 jobs of one workload: each is matched, its price held, and started, or
    /// rejected with a code (`NO_PROVIDER`, `ALL_BUSY`, `BID_TOO_LOW`, `INSUFFICIENT_CREDITS`,
    /// `SPEND_LIMIT_REACHED`).
    pub async fn submit_jobs(&self, request: SubmitRequest<'_>, now: DateTime<Utc>) -> Result<Vec<JobView>, ServiceError> {
        let SubmitRequest { account, workload: workload_name, inputs, priority, metadata, idempotency_key } = request;
        let market_rules = market(&self.program)?.clone();
        let account = ExternalId::parse(account)?;
        let key = IdempotencyKey::parse(idempotency_key)?;
        let name = workload(&self.program, workload_name)?;
        if inputs.is_empty() || inputs.len() > rules::MAX_BATCH {
            return Err(ServiceError::bad_input(format!("a submission holds 1 to {} inputs", rules::MAX_BATCH)));
        }
        if !(0..=i32::from(rules::MAX_PRIORITY)).contains(&priority) {
            return Err(ServiceError::bad_input(format!("priority must be 0 to {}", rules::MAX_PRIORITY)));
        }
        let mut parsed = Vec::new();
        for job in &inputs {
            let input = crate::service::input::text("an input", &job.input, MAX_INPUT_CHARS)?;
            parsed.push((input, job.bid.map(check_amount).transpose()?));
        }
        self.require_identity_to_spend(&account, true).await?;
        let inputs = parsed.iter().map(|(i, b)| (i.as_str(), *b)).collect();
        let hash = request_hash(&SubmitFields { workload: &name, priority, inputs, metadata: metadata.as_ref() });
        let command = Command {
            operation: "submit_job",
            account,
            key,
            request_hash: hash,
            permit: Permit::Active,
            fields: (name, parsed, market_rules, priority, metadata),
        };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, ledger, account: locked, command, now } = run;
                let (name, parsed, market_rules, priority, metadata) = &command.fields;
                let (program, key, priority) = (&ledger.program, &command.key, *priority);
                if !locked.identity_verified {
                    // Unverified since the check above: refused the same way, not stored.
                    return Err(Refusal::identity_required("spending credits needs a verified identity").into());
                }
                let mut offers = store::market::offers(txn, name, true).await?;
                let preference = store::market::bid_preference(txn, locked.id, name).await?;
                let average = rate_of(&offers).map(|r| r.average);
                let submission = Submission {
                    program,
                    consumer: locked,
                    workload: name,
                    priority,
                    key,
                    deadline: now + market_rules.job_deadline,
                    preference,
                    average,
                    metadata: metadata.as_ref(),
                    now,
                };
                let mut jobs = Vec::new();
                for (index, (input, bid)) in parsed.iter().enumerate() {
                    // The submission's jobs not matched yet are the demand waiting on this market.
                    let queued = (parsed.len() - index) as u64;
                    jobs.push(place_job(txn, &submission, &mut offers, index, queued, input, *bid).await?);
                }
                let names = store::accounts::external_ids(txn, jobs.iter().filter_map(|j| j.provider_account_id)).await?;
                let views = jobs.iter().map(|j| view(j, &names)).collect::<Result<Vec<JobView>, _>>()?;
                tracing::info!(account.id = locked.id, workload = %name, jobs = jobs.len(), "jobs submitted");
                Ok(Ok(views))
            })
        })
        .await
    }

    /// A consumer's jobs, newest first.
    pub async fn jobs_page(&self, account_id: i64, window: &Window) -> Result<Page<JobView>, ServiceError> {
        let rows = store::market::jobs_page(&self.db, account_id, window).await?;
        let names = store::accounts::external_ids(&self.db, rows.items.iter().filter_map(|j| j.provider_account_id)).await?;
        rows.try_map(|j| view(&j, &names))
    }

    /// How many jobs the consumer submitted in all.
    pub async fn jobs_count(&self, account_id: i64) -> Result<u64, ServiceError> {
        Ok(store::market::jobs_count(&self.db, account_id).await?)
    }
}

/// What every job of one submission shares.
struct Submission<'a> {
    program: &'a Program,
    consumer: &'a account::Model,
    workload: &'a str,
    priority: i32,
    key: &'a IdempotencyKey,
    deadline: DateTime<Utc>,
    /// The consumer's standing bid for this workload, if any.
    preference: Option<Credits>,
    /// The market's average ask now, if anyone asks.
    average: Option<Credits>,
    /// On every job, and on its hold (so the hold's capture or release carries it on).
    metadata: Option<&'a Metadata>,
    now: DateTime<Utc>,
}

/// One job of a submission: its budget, its provider (the market's rule,
/// `ledger::market::place`) and the hold of its price, or the reason it was rejected; written
/// either way. `queued` is the submission's jobs not matched yet, the demand that sets the surge.
async fn place_job(
    txn: &DatabaseTransaction,
    s: &Submission<'_>,
    offers: &mut [Offer],
    index: usize,
    queued: u64,
    input: &str,
    bid: Option<Credits>,
) -> Result<market_job::Model, ServiceError> {
    let mut job = NewJob {
        consumer_account_id: s.consumer.id,
        provider_account_id: None,
        workload: s.workload,
        input,
        priority: s.priority,
        bid,
        budget: None,
        budget_source: None,
        price: None,
        surge: false,
        status: JobStatus::Rejected,
        rejection_code: None,
        reservation_id: None,
        idempotency_key: format!("{}#{index}", s.key.as_str()),
        created_at: s.now,
        deadline: s.deadline,
        metadata: s.metadata.map(Metadata::as_json),
    };
    let budget = rules::resolve_budget(bid, s.preference, s.average, default_price(s.program, s.workload));
    job.budget = budget.map(|(amount, _)| amount);
    job.budget_source = budget.map(|(_, source)| <&str>::from(source));
    let placement = rules::place(offers, s.consumer.id, job.budget, queued);
    let matched = match placement.result {
        Ok(found) => found,
        Err(no) => {
            job.rejection_code = Some(no.code());
            return Ok(store::market::insert_job(txn, job).await?);
        }
    };
    let hold_key = format!("job:{}#{index}", s.key.as_str());
    let why = format!("{} job held for provider {}", s.workload, matched.provider_id);
    let request = HoldRequest {
        amount: matched.price,
        feature: s.workload,
        model: None,
        reason: Some(&why),
        key: &hold_key,
        deadline: s.deadline,
        metadata: s.metadata,
    };
    match hold(txn, s.program, s.consumer, request, s.now).await? {
        Err(HoldRefused::Short(_)) => job.rejection_code = Some(JobCode::InsufficientCredits),
        // Like a short account: the job is rejected with its code and the submission's other
        // jobs go on (a submission answers per job); the limit's details are on `spendLimits`.
        Err(HoldRefused::Limit(_)) => job.rejection_code = Some(JobCode::SpendLimitReached),
        Ok(held) => {
            job.status = JobStatus::Running;
            job.surge = placement.surge > Decimal::ONE;
            job.provider_account_id = Some(matched.provider_id);
            job.price = Some(matched.price);
            job.reservation_id = Some(held.reservation_id);
            if let Some(offer) = offers.iter_mut().find(|o| o.provider_id == matched.provider_id) {
                offer.running += 1;
            }
        }
    }
    Ok(store::market::insert_job(txn, job).await?)
}
