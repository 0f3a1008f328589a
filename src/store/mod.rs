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
pub mod journal_months;
pub mod keyed_debits;
pub mod keyset;
pub mod lots;
pub mod market;
pub mod metering;
pub mod outbox;
pub mod persisted_queries;
pub mod pg_array;
pub mod purchases;
pub mod referrals;
pub mod reservations;
pub mod retention;
pub mod spend_limits;
pub mod spend_reads;
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
/// (primary and extended codes) and PostgreSQL's serialization failure and deadlock. A pool
/// with no connection is not contention but the database away (`unreachable`): the pool has
/// already waited for it, so retrying the transaction would only wait again.
pub fn is_transient(err: &DbErr) -> bool {
    matches!(db_error_code(err).as_deref(), Some("5" | "6" | "261" | "262" | "517" | "40001" | "40P01"))
}

/// Why the database could not be used at all, as opposed to refusing a statement: the server
/// unreachable or going away (connections refused or cut, a pool that found no connection in its
/// acquire timeout, PostgreSQL's connection exceptions `08*` and its shutdown codes `57P01-03`,
/// too many connections `53300`), or no room to write (PostgreSQL's `53100`, SQLite's `SQLITE_FULL`
/// and I/O errors). The request is answered `UNAVAILABLE` (`ServiceError::DatabaseUnavailable`): nothing
/// about it is wrong, and the same call later (with the same key) finishes it.
pub fn unreachable(err: &DbErr) -> Option<Unreachable> {
    use sea_orm::sqlx::Error;
    let runtime = match err {
        DbErr::ConnectionAcquire(_) => return Some(Unreachable::Down),
        DbErr::Conn(e) | DbErr::Exec(e) | DbErr::Query(e) => e,
        _ => return None,
    };
    let RuntimeErr::SqlxError(e) = runtime else {
        // sea-orm's own connection errors (a closed connection) carry no sqlx error.
        return matches!(err, DbErr::Conn(_)).then_some(Unreachable::Down);
    };
    match e.deref() {
        Error::Io(_) | Error::Tls(_) | Error::PoolTimedOut | Error::PoolClosed | Error::WorkerCrashed => Some(Unreachable::Down),
        Error::Database(db) => match db.code().as_deref() {
            Some("53100" | "13") => Some(Unreachable::Full),
            // SQLITE_IOERR and its extended codes (the low byte is the primary code).
            Some(code) if code.parse::<u32>().is_ok_and(|c| c & 0xff == 10) => Some(Unreachable::Full),
            Some(code) if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300") => Some(Unreachable::Down),
            _ => None,
        },
        _ => matches!(err, DbErr::Conn(_)).then_some(Unreachable::Down),
    }
}

/// What `unreachable` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// The server cannot be reached, or is going away or starting up.
    Down,
    /// The database cannot write: its disk is full, or its file cannot be written.
    Full,
}

pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// The placeholders of a `VALUES` list of `rows` rows of `columns` each, numbered after
/// `offset` earlier parameters: `($1, $2), ($3, $4)` on PostgreSQL, `(?, ?), (?, ?)` on SQLite.
/// Batched statements join such a list on a whole index instead of `IN` or `CASE` over ids.
/// Written into one string, the numbers by `itoa`: a `format!` per placeholder was 6% of the
/// server's instructions for a spend at 32 clients (docs/benchmarks.md, change 31).
pub(crate) fn values_rows(backend: sea_orm::DbBackend, rows: usize, columns: usize, offset: usize) -> String {
    let numbered = backend == sea_orm::DbBackend::Postgres;
    let mut list = String::with_capacity(rows * columns * if numbered { 8 } else { 3 } + rows * 4);
    let mut digits = itoa::Buffer::new();
    for row in 0..rows {
        list.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                list.push_str(", ");
            }
            if numbered {
                list.push('$');
                list.push_str(digits.format(offset + row * columns + column + 1));
            } else {
                list.push('?');
            }
        }
        list.push(')');
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ConnAcquireErr;

    #[test]
    fn a_pool_without_connections_is_the_database_down_and_other_errors_are_not() {
        assert_eq!(unreachable(&DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)), Some(Unreachable::Down));
        assert_eq!(unreachable(&DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)), Some(Unreachable::Down));
        let io = sea_orm::sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(unreachable(&DbErr::Exec(RuntimeErr::SqlxError(std::sync::Arc::new(io)))), Some(Unreachable::Down));
        assert_eq!(unreachable(&DbErr::RecordNotFound("x".into())), None);
        assert_eq!(unreachable(&DbErr::Custom("a bug".into())), None);
    }

    #[test]
    fn values_rows_number_their_placeholders_after_the_offset() {
        assert_eq!(values_rows(sea_orm::DbBackend::Postgres, 2, 3, 4), "($5, $6, $7), ($8, $9, $10)");
        assert_eq!(values_rows(sea_orm::DbBackend::Postgres, 1, 1, 0), "($1)");
        assert_eq!(values_rows(sea_orm::DbBackend::Sqlite, 2, 2, 9), "(?, ?), (?, ?)");
        assert_eq!(values_rows(sea_orm::DbBackend::Postgres, 0, 3, 0), "");
    }
}
