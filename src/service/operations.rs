//! The operator's view of the machinery (issue 23): each scheduled job's recent periods and when
//! it runs next, running one job now, the webhook outbox with its backlog and failures, and
//! redelivering one event. What `credits jobs` prints, for any tool through the API.
//!
//! Running a job here is the same `Engine::run_job` the workers tick, so the exactly-once rules
//! are the workers' (a period already done is not redone). One bound is added: an operator runs
//! a job at most once at a time per process (`RunningJobs`), so a double click or an impatient
//! retry does not start a second sweep beside the first. A worker's tick of the same job may
//! still run beside it, which the per-period keys make harmless.

use crate::entity::{job_run, outbox};
use crate::ledger::schedule::Cadence;
use crate::service::jobs::{Job, JobReport, cadence};
use crate::service::paging::{Page, Window};
use crate::service::webhooks;
use crate::service::{Engine, Refusal, ServiceError};
use crate::store;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// The most runs of one job `job_runs` answers at once.
pub const MAX_JOB_RUNS: u64 = 100;
/// Runs of each job `scheduled_jobs` reads (the latest is shown).
const LATEST_RUNS: u64 = 1;

/// Where a job's period stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRunStatus {
    /// Started and not finished: running now, or stopped by a crash or a bound (the next run
    /// resumes it).
    Running,
    /// Every batch done: never run again.
    Done,
    /// The last attempt failed; the next run resumes from its cursor.
    Failed,
}

impl JobRunStatus {
    fn parse(text: &str) -> Result<JobRunStatus, ServiceError> {
        match text {
            "running" => Ok(JobRunStatus::Running),
            "done" => Ok(JobRunStatus::Done),
            "failed" => Ok(JobRunStatus::Failed),
            other => Err(ServiceError::Internal(anyhow::anyhow!("a job run with the unknown status {other:?}"))),
        }
    }
}

/// One period of a periodic job, as `job_runs` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRunView {
    pub period: String,
    pub status: JobRunStatus,
    pub items: u64,
    pub batches: u64,
    pub attempts: u64,
    pub last_error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl JobRunView {
    fn of(row: job_run::Model) -> Result<JobRunView, ServiceError> {
        let count = |what: &str, n: i64| {
            u64::try_from(n).map_err(|_| ServiceError::Internal(anyhow::anyhow!("job run {}: negative {what} {n}", row.id)))
        };
        Ok(JobRunView {
            status: JobRunStatus::parse(&row.status)?,
            items: count("items", row.items)?,
            batches: count("batches", row.batches)?,
            attempts: count("attempts", row.attempts)?,
            period: row.period,
            last_error: row.last_error,
            started_at: row.started_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
        })
    }
}

/// A scheduled job: how often it runs, when next, and its latest period.
#[derive(Debug, Clone)]
pub struct ScheduledJobView {
    pub job: Job,
    /// None for a continuous job (keyed by nothing, so it has no periods).
    pub cadence: Option<Cadence>,
    /// When the workers tick it: a cron expression, seconds first, UTC.
    pub schedule: &'static str,
    /// The start of its next period after now; none for a continuous job.
    pub next_start: Option<DateTime<Utc>>,
    pub latest_run: Option<JobRunView>,
}

/// Where an outbox event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Not delivered yet. As a filter, the whole backlog (failed events included); as an
    /// event's status, one that has not failed yet.
    Pending,
    /// Not delivered, and at least one attempt failed: retried with backoff.
    Failed,
    /// Acknowledged by the receiver.
    Delivered,
}

impl OutboxStatus {
    fn listing(status: Option<OutboxStatus>) -> store::outbox::Listing {
        use store::outbox::Listing;
        match status {
            None => Listing::All,
            Some(OutboxStatus::Pending) => Listing::Undelivered,
            Some(OutboxStatus::Failed) => Listing::Failed,
            Some(OutboxStatus::Delivered) => Listing::Delivered,
        }
    }
}

/// An outbox event for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEventView {
    pub id: i64,
    /// What receivers see and de-duplicate on (`Credits-Event-Id`).
    pub event_id: String,
    pub topic: String,
    /// The product's own id of the account the event is about, if any.
    pub account: Option<String>,
    pub created_at: DateTime<Utc>,
    pub status: OutboxStatus,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it is tried next (a retry, or the end of a worker's lease); none: as soon as a
    /// worker looks, or never again once delivered.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The event's data, JSON.
    pub payload: String,
}

impl OutboxEventView {
    fn of(row: outbox::Model, accounts: &BTreeMap<i64, String>) -> Result<OutboxEventView, ServiceError> {
        let attempts = u32::try_from(row.attempts)
            .map_err(|_| ServiceError::Internal(anyhow::anyhow!("outbox event {}: negative attempts {}", row.id, row.attempts)))?;
        let status = match (row.delivered_at, attempts) {
            (Some(_), _) => OutboxStatus::Delivered,
            (None, 0) => OutboxStatus::Pending,
            (None, _) => OutboxStatus::Failed,
        };
        Ok(OutboxEventView {
            id: row.id,
            event_id: webhooks::event_id(row.id),
            account: row.account_id.and_then(|id| accounts.get(&id).cloned()),
            topic: row.topic,
            created_at: row.created_at,
            status,
            attempts,
            // While an attempt holds it, the lease's end (wall time) is when it is tried next.
            next_attempt_at: match row.leased_until {
                Some(lease) if lease > Utc::now() => Some(lease),
                _ => row.next_attempt_at,
            },
            last_error: row.last_error,
            delivered_at: row.delivered_at,
            payload: row.payload,
        })
    }
}

/// The jobs an operator started that are still running in this process: one at a time each.
#[derive(Default)]
pub struct RunningJobs(Mutex<HashSet<Job>>);

/// `job` marked running until dropped.
pub struct RunningJob {
    jobs: Arc<RunningJobs>,
    job: Job,
}

impl RunningJobs {
    /// Marks `job` running; none if it already is.
    pub fn start(self: &Arc<Self>, job: Job) -> Option<RunningJob> {
        let mut running = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        running.insert(job).then(|| RunningJob { jobs: Arc::clone(self), job })
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        self.jobs.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&self.job);
    }
}

impl Engine {
    /// The latest `limit` periods of `job`, newest first; empty for a continuous job.
    pub async fn job_runs(&self, job: Job, limit: u64) -> Result<Vec<JobRunView>, ServiceError> {
        if !(1..=MAX_JOB_RUNS).contains(&limit) {
            return Err(ServiceError::bad_input(format!("`limit` must be between 1 and {MAX_JOB_RUNS}, not {limit}")));
        }
        store::job_runs::recent(&self.db, job.name(), limit).await?.into_iter().map(JobRunView::of).collect()
    }

    /// Every job, in the workers' table's order, with its latest period.
    pub async fn scheduled_jobs(&self, now: DateTime<Utc>) -> Result<Vec<ScheduledJobView>, ServiceError> {
        let mut jobs = Vec::with_capacity(Job::ALL.len());
        for job in Job::ALL {
            let latest = store::job_runs::recent(&self.db, job.name(), LATEST_RUNS).await?.into_iter().next();
            let cadence = cadence(job);
            jobs.push(ScheduledJobView {
                job,
                cadence,
                schedule: job.schedule(),
                next_start: cadence.map(|c| c.next_start(now)),
                latest_run: latest.map(JobRunView::of).transpose()?,
            });
        }
        Ok(jobs)
    }

    /// Runs `job` now, to completion, at `now` (on a test clock, the clock's instant): the
    /// periods due and not done yet, or one round of a continuous job. `INVALID_STATE` while
    /// an operator's run of the same job is still going in this process. Answers the instant it
    /// ran at, with the report.
    pub async fn run_job_now(&self, job: Job, now: DateTime<Utc>) -> Result<(DateTime<Utc>, JobReport), ServiceError> {
        let Some(running) = self.operator_jobs.start(job) else {
            return Err(Refusal::InvalidState {
                what: format!("{} is already running (started by runJob); try again when it ends", job.name()),
            }
            .into());
        };
        let now = self.clock.tick_instant(&self.db, now).await?;
        let ledger = self.clone();
        // On its own task, holding the mark: a request that times out or is cancelled does not
        // stop the run halfway, and the job counts as running until the run really ends.
        let run = tokio::spawn(async move {
            let report = ledger.run_job(job, now).await;
            drop(running);
            report
        });
        let report = run.await.map_err(|e| ServiceError::Internal(anyhow::anyhow!("the run of {} stopped: {e}", job.name())))??;
        tracing::info!(job = job.name(), items = report.items, periods = ?report.periods, "job run by an operator");
        Ok((now, report))
    }

    /// One page of the outbox, newest first: every event, or those of `status`.
    pub async fn outbox_page(&self, status: Option<OutboxStatus>, window: &Window) -> Result<Page<OutboxEventView>, ServiceError> {
        let page = store::outbox::page(&self.db, OutboxStatus::listing(status), window).await?;
        let accounts = store::accounts::external_ids(&self.db, page.items.iter().filter_map(|e| e.account_id)).await?;
        page.try_map(|row| OutboxEventView::of(row, &accounts))
    }

    pub async fn outbox_count(&self, status: Option<OutboxStatus>) -> Result<u64, ServiceError> {
        Ok(store::outbox::count(&self.db, OutboxStatus::listing(status)).await?)
    }

    /// The event `id` as it stands.
    pub async fn outbox_event(&self, id: i64) -> Result<OutboxEventView, ServiceError> {
        let row = store::outbox::by_id(&self.db, id).await?.ok_or_else(|| ServiceError::NotFound(format!("no outbox event {id}")))?;
        let accounts = store::accounts::external_ids(&self.db, row.account_id).await?;
        OutboxEventView::of(row, &accounts)
    }

    /// Makes event `id` due now and tries it at once; answers the event as it then stands.
    /// A delivered event is sent again, as the same event id (receivers de-duplicate on it), so
    /// pressing twice sends the same event twice and changes nothing else. If the attempt fails,
    /// the event is retried with backoff like any other. `FEATURE_DISABLED` without a webhook
    /// receiver (nothing is changed then).
    pub async fn redeliver_event(&self, id: i64, now: DateTime<Utc>) -> Result<OutboxEventView, ServiceError> {
        let Some(sender) = self.webhooks.clone() else {
            return Err(ServiceError::FeatureDisabled(
                "webhooks are off: no receiver is configured (CREDITS_WEBHOOK_URL), so there is nowhere to redeliver to".into(),
            ));
        };
        if !store::outbox::reopen(&self.db, id).await? {
            return Err(ServiceError::NotFound(format!("no outbox event {id}")));
        }
        let now = self.clock.tick_instant(&self.db, now).await?;
        if let Some(event) = store::outbox::by_id(&self.db, id).await? {
            let started = std::time::Instant::now();
            // A worker that picked the event up in between sends it itself (`Skipped`).
            let attempt = self.attempt_delivery(&sender, event, now, started, &mut HashMap::new()).await?;
            tracing::info!(event.id = id, outcome = ?attempt, "event redelivered by an operator");
        }
        self.outbox_event(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_marked_running_once_until_its_run_ends() {
        let jobs = Arc::new(RunningJobs::default());
        let first = jobs.start(Job::ExpireLots).expect("not running yet");
        assert!(jobs.start(Job::ExpireLots).is_none(), "a second run of the same job is refused");
        let other = jobs.start(Job::DeliverWebhooks).expect("another job is independent");
        drop(first);
        assert!(jobs.start(Job::ExpireLots).is_some(), "free again once the first run ended");
        drop(other);
    }

    #[test]
    fn an_event_is_pending_failed_or_delivered_and_names_its_account() {
        let at = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let row = |attempts: i32, delivered_at: Option<DateTime<Utc>>| outbox::Model {
            id: 7,
            topic: "purchase.refunded".into(),
            account_id: Some(3),
            payload: "{}".into(),
            created_at: at,
            delivered_at,
            attempts,
            next_attempt_at: None,
            last_error: None,
            leased_until: None,
        };
        let accounts = BTreeMap::from([(3, "alice".to_string())]);
        let view = |attempts, delivered| OutboxEventView::of(row(attempts, delivered), &accounts).unwrap();
        assert_eq!(view(0, None).status, OutboxStatus::Pending);
        assert_eq!(view(2, None).status, OutboxStatus::Failed);
        assert_eq!(view(2, Some(at)).status, OutboxStatus::Delivered);
        assert_eq!((view(0, None).event_id, view(0, None).account), ("evt_7".to_string(), Some("alice".to_string())));
        assert!(OutboxEventView::of(row(-1, None), &accounts).is_err(), "a negative count is a corrupt row");
        assert!(matches!(JobRunStatus::parse("bogus"), Err(ServiceError::Internal(_))));
    }
}
