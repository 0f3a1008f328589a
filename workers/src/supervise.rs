//! Keeps one job's apalis worker running: when it stops on an error (the database went away, a
//! lock was held too long, anything else), it is built again after a pause that doubles with
//! each failure in a row, up to a cap (`RESTART_BACKOFF`), and resets once a tick succeeds.
//!
//! Every error restarts: the job's effects are idempotent per period, so a restart never does
//! work twice, and a job that stays down is the failure this exists to prevent. What ends the
//! loop is the shutdown signal alone; it also cuts a pause short, so a shutdown stays prompt.
//!
//! Why not apalis's `Monitor::should_restart`: the monitor restarts inside its `poll` with no
//! way to wait first, so a database that is down would be hammered in a tight loop, and its
//! restart count never resets after a recovery.

use crate::health::STEADY_AFTER_RESTART;
use crate::{FailureKind, Job, JobHealth};
use apalis::prelude::WorkerError;
use futures_util::future::{BoxFuture, Shared};
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// How long a stopped worker waits before it is restarted: `first` before the first restart,
/// doubling with each failure in a row, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

/// The workers' restart pauses: 1 s, 2 s, 4 s ... up to 30 s, so a job resumes at most about
/// 30 s after its database does, and a database that stays down sees one attempt per job every
/// 30 s from each process.
pub const RESTART_BACKOFF: Backoff = Backoff { first: Duration::from_secs(1), max: Duration::from_secs(30) };

impl Backoff {
    /// The pause before restart number `failures_in_row` (1 for the first), less up to a
    /// quarter at random so that the workers of many processes do not all come back at the
    /// same instant.
    pub fn delay(self, failures_in_row: u32) -> Duration {
        let full = self.full(failures_in_row);
        let quarter_ms = (full.as_millis() / 4).max(1) as u64;
        let jitter_ms = RandomState::new().hash_one(failures_in_row) % quarter_ms;
        full.saturating_sub(Duration::from_millis(jitter_ms))
    }

    fn full(self, failures_in_row: u32) -> Duration {
        let exponent = failures_in_row.saturating_sub(1).min(16);
        self.first.saturating_mul(1 << exponent).min(self.max)
    }
}

/// Where a supervised worker comes from: `run` builds the job's worker for the storage, named
/// `name`, and runs it until `stop` resolves.
pub(crate) trait RunWorker: Send + Sync {
    fn run(&self, name: String, stop: Shared<BoxFuture<'static, ()>>) -> BoxFuture<'static, Result<(), WorkerError>>;
}

impl<F> RunWorker for F
where
    F: Fn(String, Shared<BoxFuture<'static, ()>>) -> BoxFuture<'static, Result<(), WorkerError>> + Send + Sync,
{
    fn run(&self, name: String, stop: Shared<BoxFuture<'static, ()>>) -> BoxFuture<'static, Result<(), WorkerError>> {
        self(name, stop)
    }
}

/// Runs `job`'s worker until `shutdown` resolves, restarting it with backoff whenever it stops
/// on its own.
pub(crate) async fn supervise(
    job: Job,
    base_name: String,
    worker: impl RunWorker,
    backoff: Backoff,
    health: JobHealth,
    shutdown: Shared<BoxFuture<'static, ()>>,
) {
    let mut generation: u32 = 0;
    let mut failures_in_row: u32 = 0;
    loop {
        if is_done(&shutdown) {
            return;
        }
        // apalis refuses a worker name still registered with a recent heartbeat
        // (WORKER_ALREADY_EXISTS), and the stopped worker's heartbeat may be seconds old: each
        // restart registers under a name of its own.
        let name = if generation == 0 { base_name.clone() } else { format!("{base_name}.{generation}") };
        let successes_before = health.successes(job);
        let started = std::time::Instant::now();
        let outcome = worker.run(name, shutdown.clone()).await;
        if is_done(&shutdown) {
            return;
        }
        let kind = match &outcome {
            Ok(()) => FailureKind::JobStorage,
            Err(error) => FailureKind::of(error, FailureKind::JobStorage),
        };
        if health.successes(job) != successes_before || started.elapsed() >= STEADY_AFTER_RESTART {
            // It ran well before it stopped: this is a new outage, not the same one going on.
            failures_in_row = 0;
        }
        failures_in_row = failures_in_row.saturating_add(1);
        health.worker_stopped(job, kind);
        let delay = backoff.delay(failures_in_row);
        match &outcome {
            Ok(()) => tracing::warn!(job = job.name(), retry_in_ms = delay.as_millis() as u64, "job worker ended; restarting it"),
            Err(error) => tracing::warn!(
                job = job.name(),
                error.kind = kind.as_str(),
                error.retryable = kind.is_transient(),
                error = %error,
                failures_in_row,
                retry_in_ms = delay.as_millis() as u64,
                "job worker stopped on an error; restarting it"
            ),
        }
        if !pause(delay, &shutdown).await {
            return;
        }
        generation = generation.wrapping_add(1);
        health.worker_restarted(job);
    }
}

fn is_done(shutdown: &Shared<BoxFuture<'static, ()>>) -> bool {
    shutdown.peek().is_some()
}

/// Waits `delay`; false when the shutdown came first.
pub(crate) async fn pause(delay: Duration, shutdown: &Shared<BoxFuture<'static, ()>>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = shutdown.clone() => false,
    }
}

/// A future that resolves once, shareable by every job's supervisor and worker.
pub(crate) fn shared(shutdown: impl Future<Output = ()> + Send + 'static) -> Shared<BoxFuture<'static, ()>> {
    use futures_util::FutureExt;
    shutdown.boxed().shared()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn delays_double_up_to_the_cap() {
        let backoff = RESTART_BACKOFF;
        assert_eq!((backoff.full(1), backoff.full(2), backoff.full(3)), (backoff.first, backoff.first * 2, backoff.first * 4));
        for failures in 1..40 {
            let full = backoff.full(failures);
            let delay = backoff.delay(failures);
            assert!(full <= backoff.max && delay <= full && delay >= full * 3 / 4, "{failures}: {delay:?} against {full:?}");
        }
        assert_eq!(backoff.full(u32::MAX), backoff.max);
    }

    fn shutdown_switch() -> (tokio::sync::oneshot::Sender<()>, Shared<BoxFuture<'static, ()>>) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        (
            stop,
            shared(async move {
                let _ = stopped.await;
            }),
        )
    }

    /// A worker that fails twice is run a third time, under a new name each time; the job is
    /// behind until its tick succeeds; the supervisor returns on shutdown.
    #[tokio::test]
    async fn restarts_after_errors_and_stops_on_shutdown() {
        let health = JobHealth::new();
        health.register(Job::ExpireLots);
        let runs = Arc::new(AtomicU32::new(0));
        let names = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop, shutdown) = shutdown_switch();
        let worker = {
            let (runs, names, health) = (runs.clone(), names.clone(), health.clone());
            move |name: String, stop: Shared<BoxFuture<'static, ()>>| -> BoxFuture<'static, Result<(), WorkerError>> {
                let (runs, names, health) = (runs.clone(), names.clone(), health.clone());
                Box::pin(async move {
                    names.lock().unwrap().push(name);
                    if runs.fetch_add(1, Ordering::SeqCst) < 2 {
                        return Err(WorkerError::IoError(std::io::Error::other("down")));
                    }
                    health.succeeded(Job::ExpireLots);
                    stop.await;
                    Ok(())
                })
            }
        };
        let quick = Backoff { first: Duration::from_millis(1), max: Duration::from_millis(4) };
        let supervisor = tokio::spawn(supervise(Job::ExpireLots, "ExpireLots@1".into(), worker, quick, health.clone(), shutdown));
        let restarted = async {
            while runs.load(Ordering::SeqCst) < 3 || !health.behind().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), restarted).await.expect("restarted twice and ticked");
        assert_eq!(*names.lock().unwrap(), ["ExpireLots@1", "ExpireLots@1.1", "ExpireLots@1.2"]);
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), supervisor).await.expect("stops on shutdown").unwrap();
    }

    /// With an hour's pause ahead, a shutdown still ends the supervisor at once.
    #[tokio::test]
    async fn a_shutdown_cuts_a_pause_short() {
        let health = JobHealth::new();
        health.register(Job::ExpireLots);
        let (stop, shutdown) = shutdown_switch();
        let worker = |_name: String, _stop: Shared<BoxFuture<'static, ()>>| -> BoxFuture<'static, Result<(), WorkerError>> {
            Box::pin(async { Err(WorkerError::IoError(std::io::Error::other("down"))) })
        };
        let hour = Backoff { first: Duration::from_secs(3600), max: Duration::from_secs(3600) };
        let supervisor = tokio::spawn(supervise(Job::ExpireLots, "ExpireLots@1".into(), worker, hour, health.clone(), shutdown));
        let pausing = async {
            while health.behind().first().map(|b| b.reason) != Some(crate::BehindReason::Restarting) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), pausing).await.expect("the worker stopped and waits to restart");
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), supervisor).await.expect("no waiting out the pause").unwrap();
    }
}
