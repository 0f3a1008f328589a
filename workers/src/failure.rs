//! What kind of failure stopped a tick or a worker: a label safe to show anywhere (`/health`,
//! logs), unlike an error's message, which may quote SQL or values.

use apalis::prelude::PipeError;
use std::error::Error;

/// Why a job did not run, as far as this process can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The database could not be reached: refused or broken connections, a pool timeout, a
    /// server shutting down.
    DatabaseUnavailable,
    /// The database was reached but is locked by another writer (SQLite BUSY/LOCKED) or refused
    /// the transaction for contention (PostgreSQL serialization failure, deadlock, lock timeout).
    DatabaseBusy,
    /// The job storage (apalis's queue) failed in some other way.
    JobStorage,
    /// The job itself failed for a reason that is not the database's availability.
    Job,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::DatabaseUnavailable => "database_unavailable",
            FailureKind::DatabaseBusy => "database_busy",
            FailureKind::JobStorage => "job_storage",
            FailureKind::Job => "job",
        }
    }

    /// Whether a failure of this kind may pass on its own (the database comes back, the other
    /// writer finishes), so that running the job again can help.
    pub fn is_transient(self) -> bool {
        matches!(self, FailureKind::DatabaseUnavailable | FailureKind::DatabaseBusy)
    }

    /// The kind of a database error, if it says anything about availability or contention.
    pub fn of_sqlx(error: &sqlx::Error) -> Option<FailureKind> {
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Some(FailureKind::DatabaseUnavailable),
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // SQLite BUSY and LOCKED, primary and extended codes.
                Some("5" | "6" | "261" | "262" | "517") => Some(FailureKind::DatabaseBusy),
                // PostgreSQL: serialization failure, deadlock, a lock not had within the
                // statement's `lock_timeout` (the journal's partitions and archive set one).
                Some("40001" | "40P01" | "55P03") => Some(FailureKind::DatabaseBusy),
                // PostgreSQL: connection exceptions (class 08), the server shutting down or not
                // yet accepting connections (57P01-57P03).
                Some(code) if code.starts_with("08") || code.starts_with("57P") => Some(FailureKind::DatabaseUnavailable),
                _ => None,
            },
            _ => None,
        }
    }

    /// The kind of any error the workers see, looking through the wrappers apalis puts around
    /// the database's error (which do not all expose it as a `source`); `otherwise` when none
    /// of them is a database error that says more.
    pub fn of(error: &(dyn Error + 'static), otherwise: FailureKind) -> FailureKind {
        find(error, 0).or_else(|| by_message(&error.to_string())).unwrap_or(otherwise)
    }
}

/// Some of apalis's wrappers are generic over types this crate cannot name (a backend's
/// `DurableError<PollError, CodecError>`) and keep the database's error out of `source`, but
/// they all print it: as a last resort, the kind is read from sqlx's and the databases' own
/// messages.
fn by_message(message: &str) -> Option<FailureKind> {
    const UNAVAILABLE: [&str; 5] = [
        "pool timed out while waiting for an open connection",
        "error communicating with database",
        "attempted to acquire a connection on a closed pool",
        "the database system is shutting down",
        "the database system is starting up",
    ];
    const BUSY: [&str; 2] = ["database is locked", "database table is locked"];
    if UNAVAILABLE.iter().any(|m| message.contains(m)) {
        Some(FailureKind::DatabaseUnavailable)
    } else if BUSY.iter().any(|m| message.contains(m)) {
        Some(FailureKind::DatabaseBusy)
    } else {
        None
    }
}

/// How deep `find` follows wrappers: error chains are short, and a cycle must not hang us.
const MAX_DEPTH: usize = 16;

fn find(error: &(dyn Error + 'static), depth: usize) -> Option<FailureKind> {
    if depth > MAX_DEPTH {
        return None;
    }
    if let Some(sqlx) = error.downcast_ref::<sqlx::Error>() {
        return FailureKind::of_sqlx(sqlx);
    }
    if let Some(PipeError::Inner(inner)) = error.downcast_ref::<PipeError>() {
        return find(inner.as_ref(), depth + 1);
    }
    if let Some(apalis_sqlite::Error::Database(sqlx)) = error.downcast_ref::<apalis_sqlite::Error>() {
        return FailureKind::of_sqlx(sqlx);
    }
    if let Some(apalis_postgres::Error::Database(sqlx)) = error.downcast_ref::<apalis_postgres::Error>() {
        return FailureKind::of_sqlx(sqlx);
    }
    if let Some(apalis::prelude::WorkerError::BackendError(inner)) = error.downcast_ref::<apalis::prelude::WorkerError>() {
        return find(inner.as_ref(), depth + 1);
    }
    find(error.source()?, depth + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_the_database_error_through_apalis_wrappers() {
        let refused = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        let wrapped =
            apalis::prelude::WorkerError::BackendError(Box::new(PipeError::Inner(Box::new(apalis_sqlite::Error::Database(refused)))));
        assert_eq!(FailureKind::of(&wrapped, FailureKind::JobStorage), FailureKind::DatabaseUnavailable);
        let timed_out = PipeError::Inner(Box::new(apalis_postgres::Error::Database(sqlx::Error::PoolTimedOut)));
        assert_eq!(FailureKind::of(&timed_out, FailureKind::JobStorage), FailureKind::DatabaseUnavailable);
        // As apalis prints a storage's poll error, whose type this crate cannot name.
        let printed = std::io::Error::other(
            "Failed to poll backend: PollNextError: The inner stream error: pool timed out while waiting for an open connection",
        );
        assert_eq!(FailureKind::of(&printed, FailureKind::JobStorage), FailureKind::DatabaseUnavailable);
        let locked = std::io::Error::other("The inner stream error: error returned from database: (code: 5) database is locked");
        assert_eq!(FailureKind::of(&locked, FailureKind::JobStorage), FailureKind::DatabaseBusy);
        let other = std::io::Error::other("something else");
        assert_eq!(FailureKind::of(&other, FailureKind::JobStorage), FailureKind::JobStorage);
    }
}
