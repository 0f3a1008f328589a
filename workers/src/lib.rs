//! Scheduled jobs. They call into the ledger through the small traits below, which the root
//! crate implements: the root binary depends on `workers`, never the other way round, so
//! `serve` can run the jobs in-process and `worker` can run them alone.
//!
//! The apalis monitor, cron schedules and job storage arrive with the workers issue; what is here
//! is the job logic as "run one step" functions that tests can drive deterministically.

use chrono::{DateTime, Utc};
use std::future::Future;

/// The most lots one step writes off before it yields; bounded so that a backlog after downtime
/// drains in many short transactions instead of one long one.
pub const EXPIRY_BATCH: u64 = 500;
/// The most batches one step runs; the next tick continues.
pub const MAX_BATCHES_PER_STEP: u32 = 100;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JobError(pub String);

/// What the expiry job needs from the ledger.
pub trait ExpiresLots: Send + Sync {
    /// Writes off at most `batch` lots expired at `now`; returns how many it wrote off.
    fn expire_due(&self, now: DateTime<Utc>, batch: u64) -> impl Future<Output = Result<u64, JobError>> + Send;
}

/// `ExpireLots`: one step of the continuous expiry job. Drains in bounded batches until a batch
/// comes back short or the step's bound is reached; returns the lots written off.
pub async fn expire_lots_step<L: ExpiresLots>(ledger: &L, now: DateTime<Utc>) -> Result<u64, JobError> {
    let mut total = 0;
    for _ in 0..MAX_BATCHES_PER_STEP {
        let written = ledger.expire_due(now, EXPIRY_BATCH).await?;
        total += written;
        if written < EXPIRY_BATCH {
            break;
        }
    }
    Ok(total)
}
