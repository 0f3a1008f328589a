//! Scheduled work, as service functions the workers call on their ticks (and tests call with an
//! injected clock). Every periodic run is keyed by its job and period in `job_runs`, so retries,
//! restarts and several worker processes at once do each period's work exactly once; missed
//! periods are caught up in order; sweeps over accounts go in bounded batches behind a cursor,
//! so a crash halfway resumes where it stopped. The per-account effects are idempotent on their
//! own (once-per-period claims), which is what makes a racing or resumed batch harmless.

use crate::ledger::plans::PlanPeriod;
use crate::ledger::schedule::{Cadence, Slot};
use crate::service::notices::MAX_NOTICE_BATCH;
use crate::service::webhooks::{self, MAX_WEBHOOK_BATCH};
use crate::service::{Ledger, ServiceError, expiry::MAX_EXPIRY_BATCH, referrals::MAX_RELEASE_BATCH, reservations::MAX_RESERVATION_BATCH};
use crate::store;
use chrono::{DateTime, Utc};

/// Accounts per batch of a sweep by default (`Ledger::sweep_batch`): the cursor moves once per
/// batch. Plan grants take a batch in transactions of `Ledger::job_part` accounts, run side by
/// side; the other sweeps give each account its own short transaction.
pub const ACCOUNT_BATCH: u64 = 4000;
/// Items per transaction of the jobs that split a batch into parts (`Ledger::job_part`): bounds
/// how long a part holds its accounts' locks.
pub const ITEMS_PER_TRANSACTION: usize = 1000;
/// Idempotency records deleted per statement.
pub const PURGE_BATCH: u64 = 1000;

/// The jobs, their names and their schedules live in the workers crate, in one place.
pub use workers::Job;

/// None for continuous jobs, which are naturally idempotent and keyed by nothing.
pub fn cadence(job: Job) -> Option<Cadence> {
    match job {
        Job::ExpireLots | Job::ExpireReservations | Job::ReleaseReferralBonuses | Job::PurgeIdempotencyKeys | Job::DeliverWebhooks => None,
        // Each lot is announced once (a flag on the lot): nothing to key by period.
        Job::NotifyExpiringCredits => None,
        // Keyed by workload and 5-minute mark in its own table.
        Job::SnapshotMarketRates => None,
        Job::GrantMonthlyPlanCredits | Job::SettleMonthlyUsage => Some(Cadence::Monthly),
        Job::RenewSubscriptions | Job::ResetDailyCredits => Some(Cadence::Daily),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobReport {
    /// Periods completed by this call, oldest first.
    pub periods: Vec<String>,
    /// Items handled: lots, bonuses, or accounts swept.
    pub items: u64,
    /// False when the call stopped at its batch bound; the next call goes on.
    pub complete: bool,
}

impl Ledger {
    /// Runs `job` at `now` to completion.
    pub async fn run_job(&self, job: Job, now: DateTime<Utc>) -> Result<JobReport, ServiceError> {
        self.run_job_bounded(job, now, u32::MAX).await
    }

    /// Runs at most `max_batches` batches of `job`, then stops as a crash would: the next call
    /// resumes where this one stopped.
    pub async fn run_job_bounded(&self, job: Job, now: DateTime<Utc>, max_batches: u32) -> Result<JobReport, ServiceError> {
        let mut budget = max_batches;
        match job {
            Job::ExpireLots => self.expire_all(&mut budget, now).await,
            Job::ExpireReservations => {
                self.drain(
                    &mut budget,
                    |ledger| async move { ledger.expire_reservations(now, MAX_RESERVATION_BATCH).await },
                    MAX_RESERVATION_BATCH,
                )
                .await
            }
            Job::ReleaseReferralBonuses => {
                self.drain(
                    &mut budget,
                    |ledger| async move { ledger.release_referral_bonuses(now, MAX_RELEASE_BATCH).await },
                    MAX_RELEASE_BATCH,
                )
                .await
            }
            Job::PurgeIdempotencyKeys => {
                self.drain(
                    &mut budget,
                    |ledger| async move { Ok(store::idempotency::purge_expired(&ledger.db, now, PURGE_BATCH).await?) },
                    PURGE_BATCH,
                )
                .await
            }
            Job::GrantMonthlyPlanCredits | Job::RenewSubscriptions | Job::ResetDailyCredits | Job::SettleMonthlyUsage => {
                self.run_periodic(job, now, &mut budget).await
            }
            Job::DeliverWebhooks => self.deliver_all(&mut budget, now).await,
            Job::SnapshotMarketRates => {
                let written = self.snapshot_market_rates(now).await?;
                Ok(JobReport { items: written, complete: true, ..JobReport::default() })
            }
            Job::NotifyExpiringCredits => {
                self.drain(&mut budget, |ledger| async move { ledger.notify_expiring(now, MAX_NOTICE_BATCH).await }, MAX_NOTICE_BATCH).await
            }
        }
    }

    /// Webhook batches until the queue is drained. Without a configured receiver, nothing:
    /// events wait in the outbox. Each batch starts at `now` advanced by the real time spent,
    /// since HTTP round trips take real time and the leases must not start out stale.
    async fn deliver_all(&self, budget: &mut u32, now: DateTime<Utc>) -> Result<JobReport, ServiceError> {
        let Some(sender) = self.webhooks.clone() else {
            return Ok(JobReport { complete: true, ..JobReport::default() });
        };
        let started = std::time::Instant::now();
        self.drain(
            budget,
            |ledger| {
                let sender = sender.clone();
                async move {
                    let at = webhooks::run_instant(now, started);
                    Ok(ledger.deliver_webhooks(&sender, at, MAX_WEBHOOK_BATCH).await?.examined())
                }
            },
            MAX_WEBHOOK_BATCH,
        )
        .await
    }

    async fn expire_all(&self, budget: &mut u32, now: DateTime<Utc>) -> Result<JobReport, ServiceError> {
        self.drain(budget, |ledger| async move { Ok(ledger.expire_due(now, MAX_EXPIRY_BATCH).await?.lots) }, MAX_EXPIRY_BATCH).await
    }

    /// Repeats a batch until one comes back short or the budget is spent.
    async fn drain<F, Fut>(&self, budget: &mut u32, batch: F, size: u64) -> Result<JobReport, ServiceError>
    where
        F: Fn(Ledger) -> Fut,
        Fut: Future<Output = Result<u64, ServiceError>>,
    {
        let mut report = JobReport::default();
        while *budget > 0 {
            *budget -= 1;
            let done = batch(self.clone()).await?;
            report.items += done;
            if done < size {
                report.complete = true;
                break;
            }
        }
        Ok(report)
    }

    /// The plans a periodic job sweeps in `slot`: those with plan credits of its kind of period,
    /// or, for the daily reset, the subscribers with a lucky drop that day. A day caught up late
    /// draws no drop: it could no longer be claimed.
    fn swept_plans(&self, job: Job, slot: &Slot, now: DateTime<Utc>) -> Vec<String> {
        let wanted = match job {
            Job::GrantMonthlyPlanCredits => PlanPeriod::CalendarMonth,
            Job::RenewSubscriptions => PlanPeriod::FromRecharge,
            Job::ResetDailyCredits if slot.starts_at.date_naive() == now.date_naive() => return self.lucky_plans(now.date_naive()),
            _ => return Vec::new(),
        };
        match self.program.plan_credits {
            Some(rule) if rule.period == wanted => {
                self.program.plans.iter().filter(|p| p.monthly_credits.is_some()).map(|p| p.code.clone()).collect()
            }
            _ => Vec::new(),
        }
    }

    async fn run_periodic(&self, job: Job, now: DateTime<Utc>, budget: &mut u32) -> Result<JobReport, ServiceError> {
        let cadence = cadence(job).expect("periodic jobs have a cadence");
        let last_done = store::job_runs::latest_done(&self.db, job.name()).await?.and_then(|run| cadence.parse_key(&run.period));
        let mut report = JobReport::default();
        let due = cadence.due(last_done, now);
        if job == Job::ResetDailyCredits && !due.is_empty() {
            // Yesterday's daily free and lucky lots ended at today's start: write them off (dated
            // at their expiry) before the day's drop, as the continuous job would. Once covers
            // every caught-up day.
            if !self.expire_all(budget, now).await?.complete {
                return Ok(JobReport::default());
            }
        }
        for slot in due {
            let plans = self.swept_plans(job, &slot, now);
            let run = store::job_runs::claim(&self.db, job.name(), &slot.key, now).await?;
            let mut cursor = run.cursor;
            let mut finished = run.status == "done";
            while !finished {
                if *budget == 0 {
                    return Ok(report);
                }
                *budget -= 1;
                let ids = match job {
                    Job::SettleMonthlyUsage => store::metering::metered_accounts_after(&self.db, cursor, self.sweep_batch).await?,
                    _ => store::accounts::ids_on_plans_after(&self.db, &plans, cursor, self.sweep_batch).await?,
                };
                // Plan grants go a batch per transaction; if that fails, account by account,
                // which also names the account that failed.
                let batched = match job {
                    Job::GrantMonthlyPlanCredits | Job::RenewSubscriptions if !ids.is_empty() => {
                        match self.grant_in_parallel(&ids, now).await {
                            Ok(_) => true,
                            Err(e) => {
                                tracing::warn!(job = job.name(), accounts = ids.len(), error = %e, "a batch of grants failed; granting one by one");
                                false
                            }
                        }
                    }
                    _ => false,
                };
                for id in ids.iter().filter(|_| !batched) {
                    let done = match job {
                        Job::ResetDailyCredits => self.drop_lucky_by_id(*id, slot.starts_at.date_naive(), now).await.map(drop),
                        Job::SettleMonthlyUsage => self.settle_month_by_id(*id, slot.starts_at, now).await,
                        _ => self.grant_plan_credits_by_id(*id, now).await.map(drop),
                    };
                    if let Err(e) = done {
                        store::job_runs::fail(&self.db, run.id, &format!("account {id}: {e}"), now).await?;
                        return Err(e);
                    }
                }
                let next = ids.last().copied().unwrap_or(cursor);
                if store::job_runs::advance(&self.db, run.id, cursor, next, ids.len() as u64, now).await? {
                    report.items += ids.len() as u64;
                    cursor = next;
                } else {
                    // Another worker moved the cursor; what this one granted was a no-op there.
                    let current =
                        store::job_runs::by_id(&self.db, run.id).await?.ok_or_else(|| anyhow::anyhow!("job run {} vanished", run.id))?;
                    cursor = current.cursor;
                    finished = current.status == "done";
                    continue;
                }
                if (ids.len() as u64) < self.sweep_batch {
                    store::job_runs::finish(&self.db, run.id, now).await?;
                    finished = true;
                }
            }
            tracing::info!(job = job.name(), period = %slot.key, "job period done");
            report.periods.push(slot.key);
        }
        report.complete = true;
        Ok(report)
    }

    /// A sweep batch's plan grants, in transactions of `job_part` accounts,
    /// `job_parallelism` at once (disjoint accounts never wait on each other). The grants are
    /// once per period by their claims, so a part that committed before another failed is
    /// harmless when the batch is retried.
    async fn grant_in_parallel(&self, ids: &[i64], now: DateTime<Utc>) -> Result<u64, ServiceError> {
        use futures_util::{StreamExt, TryStreamExt, stream};
        let parts: Vec<Vec<i64>> = ids.chunks(self.job_part.max(1)).map(<[i64]>::to_vec).collect();
        stream::iter(parts)
            .map(|part| {
                let ledger = self.clone();
                async move { ledger.grant_plan_credits_many(&part, now).await }
            })
            .buffer_unordered(self.job_parallelism.max(1))
            .try_fold(0, |total, granted| async move { Ok(total + granted) })
            .await
    }

    /// Each job's latest runs and when it runs next, for `credits jobs`.
    pub async fn job_status(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Job, Option<DateTime<Utc>>, Vec<crate::entity::job_run::Model>)>, ServiceError> {
        let mut status = Vec::new();
        for job in Job::ALL {
            let runs = store::job_runs::recent(&self.db, job.name(), 3).await?;
            status.push((job, cadence(job).map(|c| c.next_start(now)), runs));
        }
        Ok(status)
    }
}

/// The workers tick jobs through this: the same service code as everything else.
impl workers::RunsJobs for Ledger {
    async fn run(&self, job: Job, now: DateTime<Utc>) -> Result<(), workers::JobError> {
        let report = self.run_job(job, now).await.map_err(|e| workers::JobError::new(failure_kind(&e), format!("{e:?}")))?;
        if report.items > 0 || !report.periods.is_empty() {
            tracing::info!(job = job.name(), items = report.items, periods = ?report.periods, "job ran");
        }
        Ok(())
    }
}

/// What kind of failure a job's error is, for `/health` and the log: an unreachable or locked
/// database is told apart from the job's own failures.
fn failure_kind(error: &ServiceError) -> workers::FailureKind {
    use sea_orm::{DbErr, RuntimeErr};
    use workers::FailureKind;
    if matches!(error, ServiceError::Busy) {
        return FailureKind::DatabaseBusy;
    }
    let ServiceError::Internal(cause) = error else {
        return FailureKind::Job;
    };
    for link in cause.chain() {
        let Some(db) = link.downcast_ref::<DbErr>() else { continue };
        return match db {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => FailureKind::DatabaseUnavailable,
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                FailureKind::of_sqlx(e).unwrap_or(FailureKind::Job)
            }
            _ => FailureKind::Job,
        };
    }
    FailureKind::Job
}

#[cfg(test)]
mod tests {
    use super::*;
    use workers::FailureKind;

    #[test]
    fn an_unreachable_or_locked_database_is_told_apart_from_a_failing_job() {
        let timed_out = ServiceError::from(sea_orm::DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout));
        assert_eq!(failure_kind(&timed_out), FailureKind::DatabaseUnavailable);
        let refused = sea_orm::sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        let refused = ServiceError::from(sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(refused))));
        assert_eq!(failure_kind(&refused), FailureKind::DatabaseUnavailable);
        assert_eq!(failure_kind(&ServiceError::Busy), FailureKind::DatabaseBusy);
        assert_eq!(failure_kind(&ServiceError::bad_input("no")), FailureKind::Job);
        assert_eq!(failure_kind(&ServiceError::Internal(anyhow::anyhow!("a bug"))), FailureKind::Job);
    }
}
