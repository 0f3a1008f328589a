//! Write transactions with bounded retries.
//!
//! On SQLite every write transaction is IMMEDIATE: a deferred one that reads first fails with
//! BUSY at once and ignores busy_timeout. On PostgreSQL the account row lock is the
//! serialization point. Either way contention is retried a bounded number of times, never forever.

use crate::service::ServiceError;
use crate::store::{is_transient, is_unique_violation};
use futures_util::future::BoxFuture;
use sea_orm::{DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions, TransactionTrait};
use std::time::Duration;

pub const MAX_ATTEMPTS: u32 = 8;

/// Runs `work` in a write transaction, committing on `Ok`. Transient conflicts (SQLite BUSY,
/// PostgreSQL serialization failures, deadlocks) and unique-key races retry the whole
/// transaction: on the next attempt the winner's row is visible and the work takes the replay
/// path.
pub async fn write<T, F>(db: &DatabaseConnection, mut work: F) -> Result<T, ServiceError>
where
    F: for<'t> FnMut(&'t DatabaseTransaction) -> BoxFuture<'t, Result<T, ServiceError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            let txn = db
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..Default::default()
                })
                .await?;
            let value = work(&txn).await?;
            txn.commit().await?;
            Ok(value)
        }
        .await;
        match result {
            Err(err) if attempt < MAX_ATTEMPTS && retryable(&err) => {
                tracing::debug!(attempt, error = %err_chain(&err), "retrying a write transaction");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(err) if retryable(&err) => {
                tracing::warn!(attempts = attempt, error = %err_chain(&err), "a write transaction kept conflicting");
                return Err(ServiceError::Busy);
            }
            other => return other,
        }
    }
}

fn retryable(err: &ServiceError) -> bool {
    err.db_err().is_some_and(|e| is_transient(e) || is_unique_violation(e))
}

fn err_chain(err: &ServiceError) -> String {
    match err {
        ServiceError::Internal(e) => format!("{e:#}"),
        other => other.to_string(),
    }
}

/// Exponential with jitter from the clock's low bits, capped at 200 ms.
fn backoff(attempt: u32) -> Duration {
    let base_ms = 2u64.saturating_pow(attempt).min(200);
    let jitter_ms = u64::from(chrono::Utc::now().timestamp_subsec_micros()) % (base_ms + 1);
    Duration::from_millis(base_ms / 2 + jitter_ms / 2)
}
