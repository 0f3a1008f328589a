//! The periodic jobs' one shape: for each due period of the job's cadence, a sweep over
//! accounts in batches behind a cursor kept in `job_runs`, so a crash halfway resumes where it
//! stopped and a racing worker's batch is a no-op. What a sweep does to each account is its
//! `Sweep` (`catalog.rs`).

use super::JobReport;
use super::catalog::Sweep;
use crate::ledger::schedule::Slot;
use crate::service::{Engine, ServiceError};
use crate::store;
use chrono::{DateTime, Utc};
use workers::Job;

impl Engine {
    pub(super) async fn run_periodic<S: Sweep>(
        &self,
        job: Job,
        sweep: &S,
        now: DateTime<Utc>,
        budget: &mut u32,
    ) -> Result<JobReport, ServiceError> {
        let cadence = S::CADENCE;
        let last_done = store::job_runs::latest_done(&self.db, job.name()).await?.and_then(|run| cadence.parse_key(&run.period));
        let mut report = JobReport::default();
        let due = cadence.due(last_done, now);
        if !due.is_empty() && !sweep.before_periods(self, budget, now).await? {
            return Ok(JobReport::default());
        }
        for slot in due {
            if !self.sweep_period(job, sweep, &slot, now, budget, &mut report).await? {
                return Ok(report);
            }
            tracing::info!(job = job.name(), period = %slot.key, "job period done");
            report.periods.push(slot.key);
        }
        report.complete = true;
        Ok(report)
    }

    /// Sweeps `slot` to its end; false when the budget ran out first. An account that fails
    /// marks the run failed, with the account named, and ends the call with its error.
    async fn sweep_period<S: Sweep>(
        &self,
        job: Job,
        sweep: &S,
        slot: &Slot,
        now: DateTime<Utc>,
        budget: &mut u32,
        report: &mut JobReport,
    ) -> Result<bool, ServiceError> {
        let run = store::job_runs::claim(&self.db, job.name(), &slot.key, now).await?;
        let mut cursor = run.cursor;
        let mut finished = run.status == "done";
        let step = self.sweep_batch.unwrap_or(S::STEP);
        while !finished {
            if *budget == 0 {
                return Ok(false);
            }
            *budget -= 1;
            let ids = sweep.accounts_after(self, slot, now, cursor, step).await?;
            // A batch at once where the sweep has that form; if it fails, account by account,
            // which also names the account that failed.
            let batched = !ids.is_empty()
                && match sweep.run_batch(self, &ids, now).await {
                    Ok(batched) => batched,
                    Err(e) => {
                        tracing::warn!(job = job.name(), accounts = ids.len(), error = %e, "a batch of grants failed; granting one by one");
                        false
                    }
                };
            for id in ids.iter().filter(|_| !batched) {
                if let Err(e) = sweep.run_one(self, *id, slot, now).await {
                    store::job_runs::fail(&self.db, run.id, &format!("account {id}: {e}"), now).await?;
                    return Err(e);
                }
            }
            let next = ids.last().copied().unwrap_or(cursor);
            if store::job_runs::advance(&self.db, run.id, cursor, next, ids.len() as u64, now).await? {
                report.items += ids.len() as u64;
                cursor = next;
            } else {
                // Another worker moved the cursor; what this one did was a no-op there.
                let current =
                    store::job_runs::by_id(&self.db, run.id).await?.ok_or_else(|| anyhow::anyhow!("job run {} vanished", run.id))?;
                cursor = current.cursor;
                finished = current.status == "done";
                continue;
            }
            if (ids.len() as u64) < step {
                store::job_runs::finish(&self.db, run.id, now).await?;
                finished = true;
            }
        }
        Ok(true)
    }
}
