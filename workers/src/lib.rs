//! Scheduled jobs on apalis. Each job is a cron schedule whose ticks call into the ledger
//! through the small `RunsJobs` trait, which the root crate implements with the same service
//! functions the API uses: the root binary depends on `workers`, never the other way round, so
//! `serve` can run the jobs in-process and `worker` can run them alone.
//!
//! A job's worker that stops on an error (the database went away, a lock was held too long) is
//! restarted with backoff (`supervise`); `JobHealth` says which of this process's jobs are
//! behind, for `/health` and the log (`health`).
//!
//! Exactly-once lives in the service (each period's run is keyed in the ledger's database), so
//! every process may tick every job: ticks that find their period done do nothing.

mod error;
mod failure;
mod health;
mod supervise;

pub use error::{Cause, Chain, JobError};
pub use failure::FailureKind;
pub use health::{Behind, BehindReason, JobHealth};
pub use supervise::{Backoff, RESTART_BACKOFF};

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

/// Declares the jobs from one table: each row is a job's doc, its name (the identifier, named
/// as an action) and its schedule (seconds first, UTC). The enum, `Job::ALL` (in the table's
/// order, which `credits jobs` lists), `name` and `schedule` all come from that row, so adding a
/// job here is one row; the root crate then gives it a handler (`service::jobs::catalog`).
macro_rules! jobs {
    ($($(#[$meta:meta])* $job:ident => $schedule:literal,)+) => {
        /// Every job, declared once in the table below, named as an action.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Job {
            $($(#[$meta])* $job,)+
        }

        impl Job {
            /// Every job, in the table's order.
            pub const ALL: [Job; [$(Job::$job),+].len()] = [$(Job::$job),+];

            pub fn name(self) -> &'static str {
                match self {
                    $(Job::$job => stringify!($job),)+
                }
            }

            /// When the job ticks (seconds first, UTC).
            pub fn schedule(self) -> &'static str {
                match self {
                    $(Job::$job => $schedule,)+
                }
            }
        }
    };
}

// Every 10 seconds for the continuous jobs: a write-off shows in the journal (and in live
// balances) soon after the instant; an idle tick is one indexed query. Periodic jobs tick
// hourly, so that a process started after 00:00 catches up without waiting a day.
jobs! {
    /// Continuously: write off lots past their expiry, in bounded batches.
    ExpireLots => "*/10 * * * * *",
    /// Continuously: release reservations nobody captured or released by their deadline.
    ExpireReservations => "*/10 * * * * *",
    /// Each day at 00:00: write off yesterday's daily free and lucky credits, let yesterday's
    /// unclaimed lucky drops lapse, then draw the day's lucky drop for each paid subscriber.
    ResetDailyCredits => "5 0 * * * *",
    /// The 1st of each month: settle what every metered account accrued in the month that ended.
    SettleMonthlyUsage => "5 0 * * * *",
    /// The 1st of each month: the monthly plan credits of every account (calendar-month plans).
    GrantMonthlyPlanCredits => "5 0 * * * *",
    /// Continuously: subscription credits whose month from the plan's start came round, at
    /// that instant (each waiting account's `renews_at`).
    RenewDueSubscriptions => "*/10 * * * * *",
    /// Each day: the sweep behind the continuous renewal, for subscriptions it does not see
    /// (accounts from before it, accounts reactivated mid-month); it also names an account a
    /// renewal is refused for.
    RenewSubscriptions => "5 0 * * * *",
    /// Continuously: referral purchase bonuses whose hold has passed.
    ReleaseReferralBonuses => "*/10 * * * * *",
    /// Hourly: forget idempotency keys past their retention (30 days by default).
    PurgeIdempotencyKeys => "0 30 * * * *",
    /// Hourly: delete operational rows past their retention (the scheduler's ticks, delivered
    /// events, rate snapshots, coupon guesses, old period markers), in bounded rounds.
    PurgeOperationalRows => "0 45 * * * *",
    /// Hourly: tell account holders of credits that expire within the program's window, once per lot.
    NotifyExpiringCredits => "0 15 * * * *",
    /// Every 5 minutes: snapshot each workload's market rate, once per 5-minute mark.
    SnapshotMarketRates => "1 */5 * * * *",
    /// Every 5 seconds: send due outbox events as signed webhooks, retrying failures with backoff.
    /// Other systems learn of a change within seconds; an idle tick is one indexed query.
    DeliverWebhooks => "*/5 * * * * *",
    /// Every minute: expire pending purchases nobody paid within the program's lifetime (24 hours
    /// by default), in bounded batches; each is dated at its own expiry instant.
    ExpirePendingPurchases => "20 * * * * *",
    /// Every 10 seconds: run the whole-ledger audit an operator asked for (`startAudit`), if one
    /// waits; an idle tick is one indexed query.
    AuditLedger => "*/10 * * * * *",
    /// Every 10 seconds: charge pending auto top-ups to the card the product saved, through
    /// Stripe (only with a Stripe key; an idle tick is one indexed query).
    ChargeAutoTopUps => "*/10 * * * * *",
    /// Hourly: on PostgreSQL, create the journal's partitions of this month and the next two
    /// that do not exist yet (an idle tick is two catalog queries; nothing on SQLite).
    PrepareJournalMonths => "0 50 * * * *",
}

/// What the jobs need from the ledger.
pub trait RunsJobs: Clone + Send + Sync + 'static {
    /// Runs `job` at `now`: every due period, to completion or failure.
    fn run(&self, job: Job, now: DateTime<Utc>) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// How often preparing the job storage is tried before a process gives up.
const PREPARE_ATTEMPTS: u32 = 10;

/// How long a shutdown waits for running jobs before it stops them.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the watchdog looks for jobs that fell behind or caught up (and logs the change).
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

async fn on_tick<R: RunsJobs>(_tick: Tick, job: Data<Job>, runner: Data<R>, health: Data<JobHealth>) -> Result<(), BoxDynError> {
    let started = std::time::Instant::now();
    match runner.run(*job, Utc::now()).await {
        Ok(()) => {
            health.succeeded(*job);
            tracing::debug!(job = job.name(), duration_ms = started.elapsed().as_millis() as u64, "job ticked");
            Ok(())
        }
        Err(e) => {
            health.failed(*job, e.kind());
            tracing::error!(
                job = job.name(),
                error.kind = e.kind().as_str(),
                error.retryable = e.retryable(),
                error = %e.chain(),
                "job failed"
            );
            // apalis stores a tick that failed for good as Killed, one a retry may help as
            // Failed. Neither is re-run from the queue (no retry layer): the next tick runs the
            // job again, and the log says whether that can help.
            if e.retryable() { Err(Box::new(e)) } else { Err(Box::new(AbortError::new(e))) }
        }
    }
}

/// Where ticks are stored between the scheduler and the worker, so a tick survives a restart:
/// the ledger's own database.
#[derive(Clone)]
pub enum Storage {
    Sqlite(apalis_sqlite::SqlitePool),
    Postgres(apalis_postgres::PgPool),
}

impl Storage {
    /// Creates the job storage's tables. On SQLite only the migrations run: apalis's `setup`
    /// would also switch the shared pool's connection to `synchronous = OFF`, weakening the
    /// ledger's durability.
    ///
    /// Several processes starting at once race on these migrations (a locked SQLite database, a
    /// concurrent CREATE on PostgreSQL); the migrations are idempotent, so a bounded retry settles
    /// the race.
    pub async fn prepare(&self) -> Result<(), JobError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match self {
                Storage::Sqlite(pool) => apalis_sqlite::SqliteStorage::migrations()
                    .run(pool)
                    .await
                    .map_err(|e| (FailureKind::of(&e, FailureKind::JobStorage), e.to_string())),
                Storage::Postgres(pool) => apalis_postgres::PostgresStorage::setup(pool)
                    .await
                    .map_err(|e| (FailureKind::of(&e, FailureKind::JobStorage), e.to_string())),
            };
            match result {
                Ok(()) => return Ok(()),
                Err((_, e)) if attempt < PREPARE_ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "job storage migrations raced; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err((kind, e)) => return Err(JobError::new(kind, format!("job storage: {e}"))),
            }
        }
    }
}

/// This process among the workers sharing the storage: its id and start instant.
fn instance_id() -> String {
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}-{:x}", std::process::id(), started.as_nanos() & 0xffff_ffff_ffff)
}

fn schedule_of(job: Job) -> Result<cron::Schedule, JobError> {
    cron::Schedule::from_str(job.schedule()).map_err(|e| JobError::new(FailureKind::Job, format!("{}: {e}", job.name())))
}

/// A job's worker on `storage`, run until `stop` resolves: the scheduler's ticks go through the
/// job's own queue.
fn job_worker<R: RunsJobs>(
    job: Job,
    schedule: cron::Schedule,
    runner: R,
    storage: Storage,
    health: JobHealth,
) -> impl Fn(String, Shared<BoxFuture<'static, ()>>) -> BoxFuture<'static, Result<(), WorkerError>> + Send + Sync {
    move |name, stop| {
        let stop = stop.map(Ok::<(), std::io::Error>);
        match &storage {
            Storage::Sqlite(pool) => {
                let queue = apalis_sqlite::SqliteStorage::<Tick>::new(pool).with_config(apalis_sqlite::Config::default().queue(job.name()));
                WorkerBuilder::new(name)
                    .backend(CronScheduler::new(schedule.clone()).pipe_to(queue))
                    .data(job)
                    .data(runner.clone())
                    .data(health.clone())
                    .build(on_tick::<R>)
                    .run_until(stop)
                    .boxed()
            }
            Storage::Postgres(pool) => {
                let queue =
                    apalis_postgres::PostgresStorage::<Tick>::new(pool).with_config(apalis_postgres::Config::default().queue(job.name()));
                WorkerBuilder::new(name)
                    .backend(CronScheduler::new(schedule.clone()).pipe_to(queue))
                    .data(job)
                    .data(runner.clone())
                    .data(health.clone())
                    .build(on_tick::<R>)
                    .run_until(stop)
                    .boxed()
            }
        }
    }
}

/// Prepares the job storage, retrying with the workers' backoff while the database is
/// unreachable: a process that starts during an outage must not end up serving without jobs.
/// Meanwhile every job is behind (restarting). False when the shutdown came first.
async fn prepare_until_ready(storage: &Storage, health: &JobHealth, shutdown: &Shared<BoxFuture<'static, ()>>) -> bool {
    let mut failures_in_row = 0;
    loop {
        match storage.prepare().await {
            Ok(()) => return true,
            Err(e) => {
                failures_in_row += 1;
                for job in Job::ALL {
                    health.worker_stopped(job, e.kind());
                }
                let delay = RESTART_BACKOFF.delay(failures_in_row);
                tracing::warn!(
                    error.kind = e.kind().as_str(),
                    error.retryable = e.retryable(),
                    error = %e.chain(),
                    failures_in_row,
                    retry_in_ms = delay.as_millis() as u64,
                    "cannot prepare the job storage; trying again"
                );
                if !supervise::pause(delay, shutdown).await {
                    return false;
                }
                for job in Job::ALL {
                    health.worker_restarted(job);
                }
            }
        }
    }
}

/// Runs every job on its schedule until `shutdown` resolves; running jobs finish first, for at
/// most `SHUTDOWN_TIMEOUT`. A job whose worker stops on an error (the database went away, a lock
/// was held too long) is restarted with backoff (`supervise`). `health` learns each job's ticks,
/// failures and restarts; a watchdog logs when a job falls behind and when it catches up.
pub async fn run<R: RunsJobs>(
    runner: R,
    storage: Storage,
    health: JobHealth,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), JobError> {
    let shutdown = supervise::shared(shutdown);
    let schedules = Job::ALL.into_iter().map(|job| schedule_of(job).map(|schedule| (job, schedule))).collect::<Result<Vec<_>, _>>()?;
    for job in Job::ALL {
        health.register(job);
    }
    // The watchdog runs from the start, so that jobs held up by preparing the storage show too.
    let watchdog = {
        let (health, shutdown) = (health.clone(), shutdown.clone());
        async move {
            let mut every = tokio::time::interval(WATCH_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => health.log_changes(),
                    () = shutdown.clone() => return,
                }
            }
        }
    };
    let jobs = {
        let shutdown = shutdown.clone();
        async move {
            if !prepare_until_ready(&storage, &health, &shutdown).await {
                return;
            }
            // apalis registers workers by name in the shared storage: each process needs its own
            // names, or a second process's workers are refused (WORKER_ALREADY_EXISTS) and never tick.
            let instance = instance_id();
            let mut supervisors = Vec::new();
            for (job, schedule) in schedules {
                let worker = job_worker(job, schedule, runner.clone(), storage.clone(), health.clone());
                let name = format!("{}@{instance}", job.name());
                supervisors.push(supervise::supervise(job, name, worker, RESTART_BACKOFF, health.clone(), shutdown.clone()));
            }
            tracing::info!(jobs = Job::ALL.len(), "workers started");
            futures_util::future::join_all(supervisors).await;
        }
    };
    tokio::select! {
        ((), ()) = futures_util::future::join(jobs, watchdog) => Ok(()),
        () = async {
            shutdown.clone().await;
            tokio::time::sleep(SHUTDOWN_TIMEOUT).await;
        } => {
            tracing::warn!(timeout_ms = SHUTDOWN_TIMEOUT.as_millis() as u64, "jobs still running at the shutdown timeout were stopped");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A storage that cannot be prepared (here: a file in a directory that does not exist) is
    /// tried again and again, every job shown as restarting, until the shutdown.
    #[tokio::test]
    async fn preparing_the_storage_is_retried_until_the_shutdown() {
        let pool = apalis_sqlite::SqlitePool::connect_lazy("sqlite:///nonexistent/credits-jobs/jobs.db").unwrap();
        let health = JobHealth::new();
        for job in Job::ALL {
            health.register(job);
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = supervise::shared(async move {
            let _ = stopped.await;
        });
        let preparing = {
            let health = health.clone();
            tokio::spawn(async move { prepare_until_ready(&Storage::Sqlite(pool), &health, &shutdown).await })
        };
        let all_behind = async {
            while health.behind().len() < Job::ALL.len() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), all_behind).await.expect("every job is behind");
        assert!(health.behind().iter().all(|b| b.reason == BehindReason::Restarting));
        assert!(!preparing.is_finished(), "still trying");
        let _ = stop.send(());
        let ready = tokio::time::timeout(Duration::from_secs(30), preparing).await.expect("stops on shutdown").unwrap();
        assert!(!ready);
    }

    #[test]
    fn every_schedule_parses() {
        for job in Job::ALL {
            assert!(cron::Schedule::from_str(job.schedule()).is_ok(), "{}", job.name());
        }
    }
}
