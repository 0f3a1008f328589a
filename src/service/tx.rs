//! Write transactions with bounded retries.
//!
//! On SQLite every write transaction is IMMEDIATE: a deferred one that reads first fails with
//! BUSY at once and ignores busy_timeout. On PostgreSQL the account row lock is the
//! serialization point. Either way contention is retried a bounded number of times, never forever.
//!
//! On SQLite, the write transactions of one process also take turns on an in-process FIFO lock
//! per database file before `BEGIN IMMEDIATE`: the pool's connections would otherwise race for
//! the file's write lock, and a loser sleeps in SQLite's busy handler (1, 2, 5 ... 100 ms steps)
//! instead of queueing; the benchmark (docs/benchmarks.md) showed p99s in the hundreds of ms and
//! flat throughput from that. Other processes still meet the busy handler.

use crate::service::{ServiceError, moved};
use crate::store::{is_transient, is_unique_violation};
use futures_util::future::BoxFuture;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbBackend, SqliteTransactionMode, TransactionOptions, TransactionTrait};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tracing::Instrument;

pub const MAX_ATTEMPTS: u32 = 8;

/// Runs `work` in a write transaction, committing on `Ok`. Transient conflicts (SQLite BUSY,
/// PostgreSQL serialization failures, deadlocks) and unique-key races retry the whole
/// transaction: on the next attempt the winner's row is visible and the work takes the replay
/// path.
pub async fn write<T, F>(db: &DatabaseConnection, mut work: F) -> Result<T, ServiceError>
where
    F: for<'t> FnMut(&'t DatabaseTransaction) -> BoxFuture<'t, Result<T, ServiceError>>,
{
    write_with(db, &(), |txn, ()| work(txn)).await
}

/// `write`, with `context` lent to every attempt: the work borrows what it needs from it instead
/// of cloning it into each attempt's future.
pub async fn write_with<C, T, F>(db: &DatabaseConnection, context: &C, mut work: F) -> Result<T, ServiceError>
where
    C: ?Sized,
    F: for<'t> FnMut(&'t DatabaseTransaction, &'t C) -> BoxFuture<'t, Result<T, ServiceError>>,
{
    // One span for the transaction and all its attempts (`crate::traces`): a retry shows as
    // `db.transaction.attempts` above 1 rather than as sibling spans to match up.
    let span = tracing::info_span!(
        "db.transaction",
        db.system = db_system(db),
        db.transaction.attempts = tracing::field::Empty,
        db.transaction.outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let mut attempt = 0;
    let outcome = async {
        loop {
            attempt += 1;
            let (result, moved) = moved::collect(async {
                // Held until the transaction ends; a retry queues again behind the others.
                let queued = Instant::now();
                let _turn = match writer_turns(db) {
                    Some(turns) => {
                        let turn = turns.lock_owned().await;
                        metrics::histogram!(crate::telemetry::TRANSACTION_WAIT, "stage" => "turn").record(queued.elapsed());
                        Some(turn)
                    }
                    None => None,
                };
                let beginning = Instant::now();
                let txn = db
                    .begin_with_options(TransactionOptions {
                        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                        ..Default::default()
                    })
                    .await?;
                metrics::histogram!(crate::telemetry::TRANSACTION_WAIT, "stage" => "begin").record(beginning.elapsed());
                let value = work(&txn, context).await?;
                txn.commit().await?;
                Ok(value)
            })
            .await;
            if result.is_ok() {
                // Committed: only now do its movements count.
                moved.record();
            }
            match result {
                Err(err) if attempt < MAX_ATTEMPTS && retryable(&err) => {
                    metrics::counter!(crate::telemetry::TRANSACTION_RETRIES).increment(1);
                    tracing::debug!(attempt, error = %err_chain(&err), "retrying a write transaction");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(err) if retryable(&err) => {
                    metrics::counter!(crate::telemetry::TRANSACTION_CONFLICTS).increment(1);
                    tracing::warn!(attempts = attempt, error = %err_chain(&err), "a write transaction kept conflicting");
                    return Err(ServiceError::Busy);
                }
                other => return other,
            }
        }
    }
    .instrument(span.clone())
    .await;
    span.record("db.transaction.attempts", attempt);
    // A refusal (insufficient credits, a conflict of keys) rolls back by design; only the
    // unexpected and the given-up-on mark the span as failed.
    let (label, failed) = match &outcome {
        Ok(_) => ("committed", false),
        Err(ServiceError::Busy) => ("conflicted", true),
        Err(ServiceError::Internal(_)) => ("failed", true),
        Err(ServiceError::DatabaseUnavailable { .. }) => ("unavailable", true),
        Err(_) => ("rolled_back", false),
    };
    span.record("db.transaction.outcome", label);
    if failed {
        span.record("otel.status_code", "ERROR");
    }
    outcome
}

/// The `db.system` of a transaction's span (OpenTelemetry's names for the two backends).
fn db_system(db: &DatabaseConnection) -> &'static str {
    match db.get_database_backend() {
        DbBackend::Postgres => "postgresql",
        DbBackend::Sqlite => "sqlite",
        _ => "other",
    }
}

/// The FIFO of write transactions on this SQLite database file, shared by every pool of the
/// process that opens it; none on PostgreSQL, whose row locks queue by themselves.
fn writer_turns(db: &DatabaseConnection) -> Option<Arc<tokio::sync::Mutex<()>>> {
    static TURNS: LazyLock<std::sync::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = LazyLock::new(Default::default);
    if db.get_database_backend() != DbBackend::Sqlite {
        return None;
    }
    let file = db.get_sqlite_connection_pool().connect_options().get_filename().to_path_buf();
    let mut turns = TURNS.lock().expect("the map of writer turns is never poisoned: nothing panics while holding it");
    Some(turns.entry(file).or_default().clone())
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
