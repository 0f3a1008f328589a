//! Moving a deployment's test clock: the clock goes forward stop by stop (`ledger::test_clock`),
//! and at each stop every scheduled job runs at that instant, as the workers would have on
//! time. Each period's work is keyed in `job_runs` as always, so an advance, the workers' own
//! ticks and another process's advance never do a period twice.

use crate::ledger::test_clock::{Advance, stops};
use crate::service::jobs::{Job, JobReport};
use crate::service::{Clock, Engine, ServiceError};
use crate::store;
use chrono::{DateTime, Utc};

/// What an advance did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvanceReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The instants it stopped at: each midnight crossed, then the target.
    pub stops: usize,
    /// Each job that did something, in the jobs' table order, with its periods and items summed
    /// over the stops.
    pub jobs: Vec<(Job, JobReport)>,
}

impl Engine {
    /// Moves the test clock as `advance` says and runs what falls due on the way; answers when
    /// that work is done. On an error the clock stands at the stop where it happened, whose
    /// work is incomplete: advancing again resumes it.
    pub async fn advance_clock(&self, advance: Advance) -> Result<AdvanceReport, ServiceError> {
        let Clock::Test(test) = &self.clock else {
            return Err(ServiceError::FeatureDisabled(
                "this deployment runs on the system clock: start it with clock = \"test\" (CREDITS_CLOCK=test) to move time".into(),
            ));
        };
        let _one_at_a_time = test.advancing.lock().await;
        self.clock.refresh(&self.db).await?;
        let from = self.clock.now();
        let to = advance.target(from).map_err(|e| ServiceError::bad_input(e.to_string()))?;
        let stops = stops(from, to);
        let mut jobs: Vec<(Job, JobReport)> = Job::ALL.iter().map(|job| (*job, JobReport::default())).collect();
        for stop in &stops {
            let now = persist(|| async {
                store::test_clock::move_to(&self.db, *stop, Utc::now()).await?;
                // Another process's advance may have gone further: its instant is the one to run at.
                self.clock.refresh(&self.db).await?;
                Ok(self.clock.now())
            })
            .await?;
            for (job, total) in &mut jobs {
                let ran = persist(|| self.run_job(*job, now)).await?;
                total.items += ran.items;
                total.periods.extend(ran.periods);
                total.complete = true;
            }
            tracing::debug!(at = %now, "test clock stop done");
        }
        jobs.retain(|(_, report)| report.items > 0 || !report.periods.is_empty());
        tracing::info!(from = %from, to = %self.clock.now(), stops = stops.len(), "test clock advanced");
        Ok(AdvanceReport { from, to: self.clock.now(), stops: stops.len(), jobs })
    }
}

/// Attempts of one step of an advance before its error is the answer.
const ATTEMPTS: u32 = 8;

/// Runs `step` again after a short wait while its error is one a retry can help with (a busy
/// or briefly unreachable database: another process advancing, or the workers, hold the
/// SQLite writer). Every step is idempotent: a job's periods are keyed, a move is forward only.
async fn persist<T, F, Fut>(mut step: F) -> Result<T, ServiceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ServiceError>>,
{
    let mut attempt = 1;
    loop {
        match step().await {
            Err(e) if attempt < ATTEMPTS && crate::service::jobs::retry_can_help(&e) => {
                tracing::debug!(attempt, error = %e, "a step of the clock's advance is retried");
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}
