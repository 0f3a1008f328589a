//! This process's jobs and whether they keep up: the last successful tick, failures in a row,
//! the last failure's kind, and whether the job's worker is waiting to restart. The HTTP layer
//! reads it for `/health`; the watchdog in `run` logs when a job falls behind and when it
//! catches up. It holds only this process's jobs: a `serve --no-workers` process holds none, so
//! another process's outage never shows in its health.

use crate::{FailureKind, Job};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A job is overdue after this many of its intervals without a successful tick ...
const OVERDUE_INTERVALS: u32 = 3;
/// ... but never sooner than this: a tick goes through the job storage before it runs, and a
/// busy database may delay it by some seconds without anything being wrong.
const MIN_OVERDUE: Duration = Duration::from_secs(60);

/// A restarted worker counts as running again once it has gone this long without stopping (or
/// once a tick succeeds): longer than the pool's acquire timeout (10 s) and SQLite's busy
/// timeout (5 s), so a database still down stops it again before then. Until then the job stays
/// behind, so a worker that fails at once after each restart never looks caught up, and a job
/// that ticks hourly does not stay listed for an hour after its storage came back.
pub const STEADY_AFTER_RESTART: Duration = Duration::from_secs(15);

/// Why a job is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BehindReason {
    /// Its worker stopped on an error and waits to be restarted, or was restarted less than
    /// `STEADY_AFTER_RESTART` ago.
    Restarting,
    /// Its latest tick failed.
    Failing,
    /// No successful tick for `OVERDUE_INTERVALS` of its intervals (at least `MIN_OVERDUE`).
    Overdue,
}

impl BehindReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BehindReason::Restarting => "restarting",
            BehindReason::Failing => "failing",
            BehindReason::Overdue => "overdue",
        }
    }
}

/// A job of this process that is behind, as `/health` and the log show it. No error message:
/// only its kind, which carries no data or secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    pub job: Job,
    pub reason: BehindReason,
    pub consecutive_failures: u32,
    pub last_error: Option<FailureKind>,
    /// None: no successful tick since this process started.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Since the last successful tick, or since the job started in this process.
    pub seconds_since_success: u64,
}

#[derive(Debug)]
struct JobState {
    /// Longest gap between two ticks of the schedule.
    interval: Duration,
    started: Instant,
    last_success: Option<(Instant, DateTime<Utc>)>,
    successes: u64,
    /// Ticks failed since the last success.
    tick_failures: u32,
    /// Worker stops since the last success or the last steady run.
    worker_stops: u32,
    last_error: Option<FailureKind>,
    /// The worker stopped and waits for its restart.
    stopped: bool,
    /// When the worker was last restarted, until a tick succeeds.
    restarted_at: Option<Instant>,
    /// What the watchdog last logged: Some(since) while it reported the job behind.
    reported_behind_since: Option<Instant>,
}

impl JobState {
    /// A job registered now, on a schedule of `interval`, that has not ticked yet.
    fn new(interval: Duration) -> JobState {
        JobState {
            interval,
            started: Instant::now(),
            last_success: None,
            successes: 0,
            tick_failures: 0,
            worker_stops: 0,
            last_error: None,
            stopped: false,
            restarted_at: None,
            reported_behind_since: None,
        }
    }

    fn behind(&self, job: Job, now: Instant) -> Option<Behind> {
        let since = self.last_success.map_or(self.started, |(at, _)| at);
        let elapsed = now.saturating_duration_since(since);
        let overdue_after = (self.interval * OVERDUE_INTERVALS).max(MIN_OVERDUE);
        let recovering = self.restarted_at.is_some_and(|at| now.saturating_duration_since(at) < STEADY_AFTER_RESTART);
        // Once a restarted worker has run steadily, its stops are over: only ticks count.
        let worker_stops = if self.stopped || recovering { self.worker_stops } else { 0 };
        let consecutive_failures = self.tick_failures.saturating_add(worker_stops);
        let reason = if self.stopped || recovering {
            BehindReason::Restarting
        } else if self.tick_failures > 0 {
            BehindReason::Failing
        } else if elapsed > overdue_after {
            BehindReason::Overdue
        } else {
            return None;
        };
        Some(Behind {
            job,
            reason,
            consecutive_failures,
            last_error: self.last_error,
            last_success_at: self.last_success.map(|(_, at)| at),
            seconds_since_success: elapsed.as_secs(),
        })
    }
}

/// Shared between the workers and the HTTP layer; cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct JobHealth {
    jobs: Arc<Mutex<BTreeMap<&'static str, (Job, JobState)>>>,
}

impl JobHealth {
    pub fn new() -> JobHealth {
        JobHealth::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<&'static str, (Job, JobState)>) -> T) -> T {
        // A panic while holding the lock leaves plain counters behind: still worth reading.
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut jobs)
    }

    fn update(&self, job: Job, f: impl FnOnce(&mut JobState)) {
        self.with(|jobs| {
            if let Some((_, state)) = jobs.get_mut(job.name()) {
                f(state);
            }
        });
    }

    /// The jobs this process runs, by name.
    pub fn jobs(&self) -> Vec<Job> {
        self.with(|jobs| jobs.values().map(|(job, _)| *job).collect())
    }

    /// Starts tracking `job`: from now it must tick successfully within its overdue bound.
    pub(crate) fn register(&self, job: Job) {
        let interval = interval_of(job);
        self.with(|jobs| {
            jobs.insert(job.name(), (job, JobState::new(interval)));
        });
    }

    pub(crate) fn succeeded(&self, job: Job) {
        self.update(job, |state| {
            state.last_success = Some((Instant::now(), Utc::now()));
            state.successes += 1;
            state.tick_failures = 0;
            state.worker_stops = 0;
            state.stopped = false;
            state.restarted_at = None;
        });
    }

    pub(crate) fn failed(&self, job: Job, kind: FailureKind) {
        self.update(job, |state| {
            state.tick_failures = state.tick_failures.saturating_add(1);
            state.last_error = Some(kind);
        });
    }

    /// The job's worker stopped on an error and waits for its restart.
    pub(crate) fn worker_stopped(&self, job: Job, kind: FailureKind) {
        self.update(job, |state| {
            if state.restarted_at.is_some_and(|at| at.elapsed() >= STEADY_AFTER_RESTART) {
                // The last restart had run steadily: this is a new outage.
                state.worker_stops = 0;
            }
            state.worker_stops = state.worker_stops.saturating_add(1);
            state.last_error = Some(kind);
            state.stopped = true;
        });
    }

    /// The job's worker runs again; it stays behind until a tick succeeds or it has run for
    /// `STEADY_AFTER_RESTART`.
    pub(crate) fn worker_restarted(&self, job: Job) {
        self.update(job, |state| {
            state.stopped = false;
            state.restarted_at = Some(Instant::now());
        });
    }

    /// Successful ticks so far: the supervisor resets its backoff when this moves.
    pub(crate) fn successes(&self, job: Job) -> u64 {
        self.with(|jobs| jobs.get(job.name()).map_or(0, |(_, state)| state.successes))
    }

    /// This process's jobs that are behind now, by name.
    pub fn behind(&self) -> Vec<Behind> {
        let now = Instant::now();
        self.with(|jobs| jobs.values().filter_map(|(job, state)| state.behind(*job, now)).collect())
    }

    /// Logs each job that fell behind or caught up since the last call: once per change, so an
    /// outage gives one warning per job and one line when it is over.
    pub(crate) fn log_changes(&self) {
        let now = Instant::now();
        self.with(|jobs| {
            for (job, state) in jobs.values_mut() {
                match (state.behind(*job, now), state.reported_behind_since) {
                    (Some(behind), None) => {
                        tracing::warn!(
                            job = job.name(),
                            reason = behind.reason.as_str(),
                            consecutive_failures = behind.consecutive_failures,
                            error.kind = behind.last_error.map(FailureKind::as_str),
                            since_success_s = behind.seconds_since_success,
                            "job is behind"
                        );
                        state.reported_behind_since = Some(now);
                    }
                    (None, Some(since)) => {
                        tracing::info!(
                            job = job.name(),
                            behind_ms = now.saturating_duration_since(since).as_millis() as u64,
                            "job caught up"
                        );
                        state.reported_behind_since = None;
                    }
                    _ => {}
                }
            }
        });
    }
}

/// The longest gap between consecutive ticks of the job's schedule over the next few ticks
/// (hourly for the hourly jobs, 10 s for the continuous ones).
fn interval_of(job: Job) -> Duration {
    const SAMPLE: usize = 8;
    let Ok(schedule) = cron::Schedule::from_str(job.schedule()) else {
        return Duration::from_secs(3600);
    };
    let ticks: Vec<DateTime<Utc>> = schedule.upcoming(Utc).take(SAMPLE).collect();
    ticks.windows(2).filter_map(|pair| (pair[1] - pair[0]).to_std().ok()).max().unwrap_or(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_follow_the_schedules() {
        assert_eq!(interval_of(Job::ExpireReservations), Duration::from_secs(10));
        assert_eq!(interval_of(Job::DeliverWebhooks), Duration::from_secs(5));
        assert_eq!(interval_of(Job::PurgeIdempotencyKeys), Duration::from_secs(3600));
    }

    #[test]
    fn a_job_is_behind_while_failing_or_restarting_and_catches_up_on_success() {
        let health = JobHealth::new();
        health.register(Job::ExpireLots);
        assert!(health.behind().is_empty(), "a job just started is not behind");
        health.failed(Job::ExpireLots, FailureKind::DatabaseBusy);
        let behind = health.behind();
        assert_eq!(behind.len(), 1);
        assert_eq!((behind[0].reason, behind[0].last_error), (BehindReason::Failing, Some(FailureKind::DatabaseBusy)));
        health.worker_stopped(Job::ExpireLots, FailureKind::DatabaseUnavailable);
        assert_eq!(health.behind()[0].reason, BehindReason::Restarting);
        assert_eq!(health.behind()[0].consecutive_failures, 2);
        health.worker_restarted(Job::ExpireLots);
        assert_eq!(health.behind()[0].reason, BehindReason::Restarting, "restarted, neither ticked nor steady yet");
        health.succeeded(Job::ExpireLots);
        assert!(health.behind().is_empty());
        assert_eq!(health.successes(Job::ExpireLots), 1);
    }

    #[test]
    fn a_job_without_a_successful_tick_for_three_intervals_is_overdue() {
        let state = JobState::new(Duration::from_secs(10));
        let now = state.started;
        assert!(state.behind(Job::ExpireLots, now + MIN_OVERDUE).is_none(), "never sooner than the minimum");
        let behind = state.behind(Job::ExpireLots, now + MIN_OVERDUE + Duration::from_secs(1)).expect("overdue");
        assert_eq!(behind.reason, BehindReason::Overdue);
        let hourly = JobState { interval: Duration::from_secs(3600), ..state };
        assert!(hourly.behind(Job::PurgeIdempotencyKeys, now + Duration::from_secs(3 * 3600)).is_none());
        assert!(hourly.behind(Job::PurgeIdempotencyKeys, now + Duration::from_secs(3 * 3600 + 1)).is_some());
    }

    /// An hourly job whose worker was restarted is not behind once the worker has run steadily,
    /// though it will not tick for up to an hour; a restarted worker's earlier tick failure
    /// still counts until a tick succeeds.
    #[test]
    fn a_restarted_worker_is_caught_up_once_steady() {
        let started = Instant::now();
        let mut state = JobState {
            interval: Duration::from_secs(3600),
            started,
            last_success: None,
            successes: 0,
            tick_failures: 0,
            worker_stops: 2,
            last_error: Some(FailureKind::DatabaseUnavailable),
            stopped: false,
            restarted_at: Some(started),
            reported_behind_since: None,
        };
        let behind = state.behind(Job::PurgeIdempotencyKeys, started + Duration::from_secs(1)).expect("recovering");
        assert_eq!((behind.reason, behind.consecutive_failures), (BehindReason::Restarting, 2));
        assert!(state.behind(Job::PurgeIdempotencyKeys, started + STEADY_AFTER_RESTART).is_none());
        state.tick_failures = 1;
        let behind = state.behind(Job::PurgeIdempotencyKeys, started + STEADY_AFTER_RESTART).expect("its tick failed");
        assert_eq!((behind.reason, behind.consecutive_failures), (BehindReason::Failing, 1));
    }

    #[test]
    fn no_jobs_means_nothing_behind() {
        let health = JobHealth::new();
        assert!(health.jobs().is_empty());
        assert!(health.behind().is_empty());
    }
}
