//! Ending a job: a completed job's held price moves to the provider, less the platform's fee,
//! exactly once; a failed one's goes back to the consumer; a hold that lapsed fails its job.

use super::jobs::{JobView, view};
use super::market;
use crate::entity::{account, market_job};
use crate::ledger::market::{self as rules, JobCode, JobStatus};
use crate::ledger::reservation::ReservationStatus;
use crate::ledger::{Credits, LotClass, LotSource};
use crate::program::{Market, Program};
use crate::service::Refusal;
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey};
use crate::service::posting::{self, EntryMeta};
use crate::service::reservations::settle_as;
use crate::service::{Engine, ServiceError};
use crate::store::{self, idempotency::request_hash, journal::EntryKind, lots, market::JobEnd};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;

/// A hold that ran out belonged to a running job: the job failed by its deadline.
pub(crate) async fn on_hold_expired(txn: &DatabaseTransaction, reservation_id: i64, now: DateTime<Utc>) -> Result<(), ServiceError> {
    let end = JobEnd { status: JobStatus::Failed, rejection_code: Some(JobCode::Deadline), earnings: None, fee: None, settled_at: now };
    Ok(store::market::end_running_job_of_hold(txn, reservation_id, &end).await?)
}

/// The platform account the fees land on, created the first time it is needed.
async fn platform_account(
    txn: &DatabaseTransaction,
    program: &Program,
    market: &Market,
    now: DateTime<Utc>,
) -> Result<account::Model, ServiceError> {
    if let Some(found) = store::accounts::lock_by_external_id(txn, &market.platform_account).await? {
        return Ok(found);
    }
    store::accounts::insert(txn, &market.platform_account, &program.default_plan, now).await?;
    Ok(store::accounts::lock_by_external_id(txn, &market.platform_account).await?.expect("inserted above"))
}

impl Engine {
    /// A running job finished (service): its held price moves to the provider, less the
    /// platform's fee, exactly once.
    pub async fn complete_job(&self, job_id: &str, idempotency_key: &str, now: DateTime<Utc>) -> Result<JobView, ServiceError> {
        self.end_job(job_id, None, idempotency_key, now).await
    }

    /// A running job failed (service): its held price goes back to the consumer in full.
    pub async fn fail_job(&self, job_id: &str, reason: &str, idempotency_key: &str, now: DateTime<Utc>) -> Result<JobView, ServiceError> {
        let reason = crate::service::input::reason(reason)?;
        self.end_job(job_id, Some(reason), idempotency_key, now).await
    }

    async fn end_job(
        &self,
        job_id: &str,
        failure: Option<String>,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<JobView, ServiceError> {
        let market_rules = market(&self.program)?.clone();
        let id = job_id.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| ServiceError::NotFound(format!("no job {job_id:?}")))?;
        let key = IdempotencyKey::parse(idempotency_key)?;
        let found = store::market::job(&self.db, id).await?.ok_or_else(|| ServiceError::NotFound(format!("no job {id}")))?;
        let operation = if failure.is_some() { "fail_job" } else { "complete_job" };
        let consumer = store::accounts::by_id(&self.db, found.consumer_account_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("job {id} has no consumer account"))?;
        let command = Command {
            operation,
            account: ExternalId::parse(&consumer.external_id)?,
            key,
            request_hash: request_hash(&(id, &failure)),
            // Ending a job settles what is already held: any status may.
            permit: Permit::Any,
            fields: (failure, market_rules),
        };
        let provider: Vec<i64> = found.provider_account_id.into_iter().collect();
        self.execute_also_locking(command, &provider, now, |run| {
            Box::pin(async move {
                let Run { txn, ledger, command, now, .. } = run;
                let (failure, market_rules) = &command.fields;
                let (program, key) = (&ledger.program, &command.key);
                let job = store::market::job(txn, id).await?.ok_or_else(|| anyhow::anyhow!("job {id} vanished"))?;
                let (status, _) = store::market::job_state(&job)?;
                if status != JobStatus::Running {
                    return Ok(Err(Refusal::InvalidState { what: format!("job {id} is {status}") }));
                }
                let reservation_id = job.reservation_id.ok_or_else(|| anyhow::anyhow!("running job {id} holds nothing"))?;
                let reservation =
                    store::reservations::by_id(txn, reservation_id).await?.ok_or_else(|| anyhow::anyhow!("job {id}'s hold vanished"))?;
                if reservation.deadline <= now {
                    // The job's price was a hold, and it lapsed at the job deadline: the job
                    // failed then, whether or not the worker has released it yet; not paid.
                    crate::service::reservations::release_lapsed(txn, &[found.consumer_account_id], now).await?;
                    let what = format!("job {id} is failed: it passed its deadline {}", reservation.deadline.to_rfc3339());
                    return Ok(Err(Refusal::InvalidState { what }));
                }
                // A running job has no code, earnings or fee yet.
                let end = match failure {
                    Some(reason) => {
                        settle_as(txn, &reservation, ReservationStatus::Released, Credits::ZERO, EntryKind::Spend, Some(key.as_str()), now)
                            .await?;
                        tracing::info!(job.id = id, reason = %reason, "job failed; its hold returned");
                        JobEnd {
                            status: JobStatus::Failed,
                            rejection_code: Some(JobCode::Failed),
                            earnings: None,
                            fee: None,
                            settled_at: now,
                        }
                    }
                    None => {
                        let (earnings, fee) = pay_for_job(txn, program, market_rules, &job, &reservation, key, now).await?;
                        let (earnings, fee) = (Some(earnings), Some(fee));
                        JobEnd { status: JobStatus::Completed, rejection_code: None, earnings, fee, settled_at: now }
                    }
                };
                let done = store::market::end_job(txn, job, &end).await?;
                let names = store::accounts::external_ids(txn, done.provider_account_id).await?;
                Ok(Ok(view(&done, &names)?))
            })
        })
        .await
    }
}

/// A completed job's pay: its held price is captured, and moves to the provider as earnings,
/// less the platform's fee to the platform's account; (earnings, fee).
async fn pay_for_job(
    txn: &DatabaseTransaction,
    program: &Program,
    market_rules: &Market,
    job: &market_job::Model,
    reservation: &crate::entity::reservation::Model,
    key: &IdempotencyKey,
    now: DateTime<Utc>,
) -> Result<(Credits, Credits), ServiceError> {
    let id = job.id;
    let price = Credits::from_micros(reservation.amount_micros);
    settle_as(txn, reservation, ReservationStatus::Captured, price, EntryKind::Transfer, Some(key.as_str()), now).await?;
    let (earnings, fee) = rules::split_fee(price, market_rules.fee_rate);
    let provider_id = job.provider_account_id.ok_or_else(|| anyhow::anyhow!("running job {id} has no provider"))?;
    let why = format!("{} job {id}", job.workload);
    for (account_id, amount, what) in [(Some(provider_id), earnings, "earnings"), (None, fee, "platform fee")] {
        if amount.is_zero() {
            continue;
        }
        let account_id = match account_id {
            Some(id) => id,
            None => platform_account(txn, program, market_rules, now).await?.id,
        };
        let lot = lots::NewLot {
            account_id,
            class: LotClass::Paid,
            source: LotSource::ProviderEarnings,
            amount,
            granted_at: now,
            expires_at: None,
            origin_kind: Some("market_job"),
            origin_id: Some(id.to_string()),
            priority: crate::ledger::Priority::DEFAULT,
            effective_at: None,
            features: None,
        };
        let reason = format!("{what} of {why}");
        let meta = EntryMeta {
            idempotency_key: Some(key.as_str()),
            feature: Some(&job.workload),
            reason: Some(&reason),
            ..EntryMeta::now("complete_job", now)
        };
        posting::credit(txn, lot, meta).await?;
    }
    Ok((earnings, fee))
}
