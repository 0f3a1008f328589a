//! Queries and row-level writes. Functions take `&impl ConnectionTrait` so that the same code
//! runs inside a transaction or outside one; transactions and retries are the service's job.

pub mod accounts;
pub mod ad_rewards;
pub mod admin_actions;
pub mod audit_runs;
pub mod auto_topups;
pub mod balance_at;
pub mod claims;
pub mod console_links;
pub mod coupons;
pub mod export;
pub mod idempotency;
pub mod job_runs;
pub mod journal;
pub mod keyset;
pub mod lots;
pub mod market;
pub mod metering;
pub mod outbox;
pub mod persisted_queries;
pub mod purchases;
pub mod referrals;
pub mod reservations;
pub mod retention;
pub mod spend_limits;
pub mod statements;
pub mod stripe_events;
pub mod test_clock;

use sea_orm::{DbErr, RuntimeErr};
use std::ops::Deref;

/// The database's own error code, when the error came from the database.
pub fn db_error_code(err: &DbErr) -> Option<String> {
    let runtime = match err {
        DbErr::Conn(e) | DbErr::Exec(e) | DbErr::Query(e) => e,
        _ => return None,
    };
    match runtime {
        RuntimeErr::SqlxError(e) => match e.deref() {
            sea_orm::sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// Contention that a bounded retry of the whole transaction resolves: SQLite's BUSY/LOCKED
/// (primary and extended codes) and PostgreSQL's serialization failure and deadlock.
pub fn is_transient(err: &DbErr) -> bool {
    match db_error_code(err).as_deref() {
        Some("5" | "6" | "261" | "262" | "517" | "40001" | "40P01") => true,
        Some(_) => false,
        None => matches!(err, DbErr::ConnectionAcquire(_)),
    }
}

pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// The placeholders of a `VALUES` list of `rows` rows of `columns` each, numbered after
/// `offset` earlier parameters: `($1, $2), ($3, $4)` on PostgreSQL, `(?, ?), (?, ?)` on SQLite.
/// Batched statements join such a list on a whole index instead of `IN` or `CASE` over ids.
pub(crate) fn values_rows(backend: sea_orm::DbBackend, rows: usize, columns: usize, offset: usize) -> String {
    let placeholder = |n: usize| if backend == sea_orm::DbBackend::Postgres { format!("${n}") } else { "?".to_string() };
    (0..rows)
        .map(|row| {
            let cells: Vec<String> = (0..columns).map(|column| placeholder(offset + row * columns + column + 1)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
