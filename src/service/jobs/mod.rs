//! Scheduled work, as service functions the workers call on their ticks (and tests call with an
//! injected clock). Every periodic run is keyed by its job and period in `job_runs`, so retries,
//! restarts and several worker processes at once do each period's work exactly once; missed
//! periods are caught up in order; sweeps over accounts go in bounded batches behind a cursor,
//! so a crash halfway resumes where it stopped. The per-account effects are idempotent on their
//! own (once-per-period claims), which is what makes a racing or resumed batch harmless.

mod catalog;
mod sweep;

use crate::ledger::schedule::Cadence;
use crate::service::{Engine, ServiceError};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use std::future::Future;
use tracing::Instrument;

/// Accounts per batch of a sweep by default (`Engine::sweep_batch`): the cursor moves once per
/// batch. The sweeps without a batched form give each account its own short transaction, so a
/// batch of theirs stays short enough for a stopping worker's drain.
pub const ACCOUNT_BATCH: u64 = 4000;
/// The same for the plan grants, which take a batch in transactions of `Engine::job_part`
/// accounts, `Engine::job_parallelism` side by side: twenty parts a step, since at each step the
/// parts wait for the slowest of them and for the cursor (at four parts a step the month's
/// grants left the cores idle a sixth of the time; docs/benchmarks.md, changes 17 and 18).
pub const GRANT_BATCH: u64 = 20_000;
/// Items per transaction of the jobs that split a batch into parts (`Engine::job_part`): bounds
/// how long a part holds its accounts' locks.
pub const ITEMS_PER_TRANSACTION: usize = 1000;
/// Transactions a job that splits a batch into parts runs side by side (`Engine::job_parallelism`):
/// the month's write-offs and grants take many rows per part and commit far less often than
/// spends, so four parts keep PostgreSQL's cores busy (docs/benchmarks.md, changes 6 and 18);
/// SQLite commits one writer at a time.
pub fn parts_side_by_side(backend: sea_orm::DbBackend) -> usize {
    match backend {
        sea_orm::DbBackend::Sqlite => 1,
        _ => 4,
    }
}

/// Idempotency records deleted per statement.
pub const PURGE_BATCH: u64 = 1000;

/// The jobs, their names and their schedules live in the workers crate, in one table; their
/// handlers in `catalog.rs`, in one registry.
pub use workers::Job;

/// None for continuous jobs, which are naturally idempotent and keyed by nothing.
pub fn cadence(job: Job) -> Option<Cadence> {
    catalog::handler(job).cadence()
}

/// A job's service side: what a tick of it does.
pub(crate) trait JobHandler: Sync {
    /// The periods a run is keyed by in `job_runs`; none for a continuous job.
    fn cadence(&self) -> Option<Cadence> {
        None
    }

    /// Runs `job` at `now`, at most `budget` batches (each taken from it).
    fn run<'a>(
        &'a self,
        job: Job,
        ledger: &'a Engine,
        now: DateTime<Utc>,
        budget: &'a mut u32,
    ) -> BoxFuture<'a, Result<JobReport, ServiceError>>;
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

impl Engine {
    /// Runs `job` at `now` to completion.
    pub async fn run_job(&self, job: Job, now: DateTime<Utc>) -> Result<JobReport, ServiceError> {
        self.run_job_bounded(job, now, u32::MAX).await
    }

    /// Runs at most `max_batches` batches of `job`, then stops as a crash would: the next call
    /// resumes where this one stopped.
    pub async fn run_job_bounded(&self, job: Job, now: DateTime<Utc>, max_batches: u32) -> Result<JobReport, ServiceError> {
        let mut budget = max_batches;
        // One span per run (`crate::traces`), whoever ran it; its transactions are its children.
        let span = tracing::info_span!(
            "job.run",
            job.name = job.name(),
            job.items = tracing::field::Empty,
            job.complete = tracing::field::Empty,
            job.outcome = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let ran = catalog::handler(job).run(job, self, now, &mut budget).instrument(span.clone()).await;
        match &ran {
            Ok(report) => {
                span.record("job.items", report.items);
                span.record("job.complete", report.complete);
                span.record("job.outcome", "ok");
            }
            Err(_) => {
                span.record("job.outcome", "error");
                span.record("otel.status_code", "ERROR");
            }
        }
        observe(job, &ran, started.elapsed());
        ran
    }

    /// Repeats a batch until one comes back shorter than `size` or the budget is spent.
    async fn drain<F, Fut>(&self, budget: &mut u32, mut batch: F, size: u64) -> Result<JobReport, ServiceError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<u64, ServiceError>>,
    {
        let mut report = JobReport::default();
        while *budget > 0 {
            *budget -= 1;
            let done = batch().await?;
            report.items += done;
            if done < size {
                report.complete = true;
                break;
            }
        }
        Ok(report)
    }

    /// A sweep batch's plan grants, in transactions of `job_part` accounts,
    /// `job_parallelism` at once (disjoint accounts never wait on each other). A grant is once
    /// per period by its plan lot's grant key, unique per account, so a part that committed
    /// before another failed is harmless when the batch is retried.
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
}

/// The workers tick jobs through this: the same service code as everything else.
impl workers::RunsJobs for Engine {
    async fn run(&self, job: Job, now: DateTime<Utc>) -> Result<(), workers::JobError> {
        // On a test clock a tick runs at the clock's instant, not the wall's.
        let now = self.clock.tick_instant(&self.db, now).await.map_err(|e| job_error(job, e.into()))?;
        let report = self.run_job(job, now).await.map_err(|e| job_error(job, e))?;
        if report.items > 0 || !report.periods.is_empty() {
            tracing::info!(job = job.name(), items = report.items, periods = ?report.periods, "job ran");
        }
        Ok(())
    }
}

/// A run's metrics (`crate::telemetry`), whoever ran it (a worker's tick, an operator's `runJob`): its outcome, time and items, and on success the
/// instant, from which lag behind the schedule is read (`time() - ...`).
fn observe(job: Job, ran: &Result<JobReport, ServiceError>, took: std::time::Duration) {
    use crate::telemetry::{JOB_DURATION, JOB_ITEMS, JOB_LAST_SUCCESS, JOB_RUNS};
    let name = job.name();
    metrics::histogram!(JOB_DURATION, "job" => name).record(took.as_secs_f64());
    match ran {
        Ok(report) => {
            metrics::counter!(JOB_RUNS, "job" => name, "outcome" => "ok").increment(1);
            metrics::counter!(JOB_ITEMS, "job" => name).increment(report.items);
            metrics::gauge!(JOB_LAST_SUCCESS, "job" => name).set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        }
        Err(_) => metrics::counter!(JOB_RUNS, "job" => name, "outcome" => "failed").increment(1),
    }
}

/// A job's failure for the workers: its kind, whether a retry can help, and the service error
/// itself as the cause, so the log shows its whole chain (down to the database's error).
fn job_error(job: Job, error: ServiceError) -> workers::JobError {
    let kind = failure_kind(&error);
    workers::JobError::caused_by(kind, retryable(&error, kind), format!("{} failed", job.name()), error)
}

/// Whether running a job again, at once or after a short wait, can help with `error`.
pub(crate) fn retry_can_help(error: &ServiceError) -> bool {
    retryable(error, failure_kind(error))
}

/// Whether running the job again can help: yes when the database was unreachable or busy; a
/// refusal (bad input, a bad program, a disabled feature, a missing row) or a bug stays until
/// someone changes something.
fn retryable(error: &ServiceError, kind: workers::FailureKind) -> bool {
    matches!(error, ServiceError::Busy) || kind.is_transient()
}

/// What kind of failure a job's error is, for `/health` and the log: an unreachable or locked
/// database is told apart from the job's own failures.
fn failure_kind(error: &ServiceError) -> workers::FailureKind {
    use sea_orm::{DbErr, RuntimeErr};
    use workers::FailureKind;
    match error {
        ServiceError::Busy => return FailureKind::DatabaseBusy,
        ServiceError::DatabaseUnavailable { .. } => return FailureKind::DatabaseUnavailable,
        _ => {}
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

    #[test]
    fn a_job_error_keeps_the_service_error_and_says_whether_a_retry_helps() {
        use std::error::Error;
        let refused = sea_orm::sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        let refused = ServiceError::from(sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(refused))));
        let down = job_error(Job::ExpireLots, refused);
        assert!(down.retryable());
        assert_eq!(down.kind(), FailureKind::DatabaseUnavailable);
        let chain = down.chain().to_string();
        assert!(chain.starts_with("ExpireLots failed: the database cannot be reached") && chain.contains("refused"), "{chain}");
        assert!(down.source().and_then(|s| s.downcast_ref::<ServiceError>()).is_some(), "the service error is the source");
        assert!(job_error(Job::ExpireLots, ServiceError::Busy).retryable());
        let bad_program = job_error(Job::GrantMonthlyPlanCredits, ServiceError::bad_input("no such plan"));
        assert!(!bad_program.retryable());
        assert_eq!(bad_program.kind(), FailureKind::Job);
        assert!(!job_error(Job::ExpireLots, ServiceError::Internal(anyhow::anyhow!("a bug"))).retryable());
    }
}
