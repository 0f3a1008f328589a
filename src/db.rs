//! Connecting to the ledger's database and bringing its schema up to date.

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteAutoVacuum, SqliteJournalMode};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use std::time::Duration;

/// How long a SQLite writer waits for the lock before BUSY; the service then retries boundedly.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a statement waits for a connection from the pool. While the database is down, sqlx
/// keeps trying to connect until this runs out, so it is how long a request takes to be told
/// `UNAVAILABLE` in an outage (`store::unreachable`); well inside the request timeout (30 s by
/// default), and far above any wait for a connection a healthy, loaded pool has shown
/// (docs/benchmarks.md).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled connection is pinged before it is handed out only once it has been idle this long.
/// The pool's default pings on every checkout: on PostgreSQL a round trip more for every
/// transaction, on SQLite a hand-over to the connection's thread and back, for a check that
/// catches only a connection that died since its last use, which a busy pool's connections were
/// moments ago. One that died anyway fails its statement, is closed when given back
/// (vendor/README.md), and the request is told `UNAVAILABLE`, as any request in an outage is
/// (docs/benchmarks.md, changes 26 and 28). A SQLite connection dies only with its thread.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_string());
    options.max_connections(max_connections).min_connections(1).acquire_timeout(ACQUIRE_TIMEOUT).sqlx_logging(false);
    if is_sqlite(url) {
        // A fresh machine has no data directory yet; every command may be the first.
        if let Some(dir) =
            crate::config::sqlite_file(url).and_then(|f| f.parent().map(|p| p.to_path_buf())).filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(&dir).map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
        }
        // Incremental auto-vacuum lets the retention job give purged pages back a bounded step
        // at a time (`service::retention`). It takes effect on a new file only: SQLite applies
        // it before the first table; an older file needs one `VACUUM` (README, "Retention").
        options.map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .auto_vacuum(SqliteAutoVacuum::Incremental)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
        });
    }
    options.test_before_acquire_if_idle_for(PING_AFTER_IDLE);
    if is_sqlite(url) {
        // A `COMMIT` that fails for want of space (SQLITE_FULL) ends the transaction in SQLite,
        // which rolls it back itself; sqlx-sqlite still counts it open (depth 1), and the
        // rollback queued when the transaction is dropped fails ("no transaction is active") and
        // is ignored. sea-orm then begins the connection's next transaction as a `SAVEPOINT`,
        // which SQLite runs as a transaction of its own until one is rolled back: `ROLLBACK TO`
        // leaves SQLite's transaction open (and the file's write lock held), and every later
        // commit on the connection is a release inside it, acknowledged and never written
        // (docs/benchmarks.md, changes 28 and 29). Such a connection is closed here instead
        // (SQLite rolls back what it holds) and replaced.
        // By the time a connection is idle its queued rollback has run (the pool pings one given
        // back inside a transaction, vendor/README.md), so the depth read here is its own; on
        // PostgreSQL the driver refuses such a connection when it is given back.
        options.map_sqlx_sqlite_before_acquire(|conn, _| {
            let idle = outside_transactions(conn);
            Box::pin(async move { Ok(idle) })
        });
    }
    Database::connect(options).await
}

/// Whether a pooled SQLite connection may be handed out: it is not inside a transaction
/// (`connect`, on why one can be). Logs the one that is not.
fn outside_transactions(conn: &mut sea_orm::sqlx::SqliteConnection) -> bool {
    use sqlx_core::transaction::TransactionManager;
    let idle = <sea_orm::sqlx::Sqlite as sea_orm::sqlx::Database>::TransactionManager::get_transaction_depth(conn) == 0;
    if !idle {
        tracing::warn!("a SQLite connection was left inside a transaction; closing it");
    }
    idle
}

/// The connection a process's write transactions run on (`service::tx`): on SQLite one
/// connection of its own to the same file, on PostgreSQL the pool itself.
///
/// SQLite writes one transaction at a time per file, and this process's write transactions
/// already queue for it (`tx::writer_turns`). Spread over the pool they ran on its connections in
/// turn (sqlx hands idle connections out first in, first out), and SQLite drops a connection's
/// page cache whenever another connection has committed since its last transaction: every write
/// transaction read again every page it touched, from the operating system, a `pread` each
/// (docs/benchmarks.md, changes 28 and 29). On one connection the pages the last write left stay
/// cached; reads keep the pool, and run beside the writes as WAL lets them. The connection is
/// opened on first use, kept open, and not pinged at checkout (it dies only with its thread); one
/// left inside a transaction is closed and replaced, as in the pool. An in-memory database stays
/// on the pool: a second pool could not reach it once the first closed its last connection.
pub fn writer(db: &DatabaseConnection) -> DatabaseConnection {
    if db.get_database_backend() != sea_orm::DatabaseBackend::Sqlite {
        return db.clone();
    }
    let options = (*db.get_sqlite_connection_pool().connect_options()).clone();
    let file = options.get_filename().to_string_lossy();
    if file.contains("in-memory") || file.contains(":memory:") {
        return db.clone();
    }
    drop(file);
    let pool = sea_orm::sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .before_acquire(|conn, _| {
            let idle = outside_transactions(conn);
            Box::pin(async move { Ok(idle) })
        })
        .connect_lazy_with(options);
    sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool)
}

/// Whether two connections share one pool (`writer` of a PostgreSQL or in-memory database is
/// the pool itself): a clone shares its pool's options, a pool of its own has options of its own.
pub fn same_pool(a: &DatabaseConnection, b: &DatabaseConnection) -> bool {
    match (a.get_database_backend(), b.get_database_backend()) {
        (sea_orm::DatabaseBackend::Postgres, sea_orm::DatabaseBackend::Postgres) => {
            std::sync::Arc::ptr_eq(&a.get_postgres_connection_pool().connect_options(), &b.get_postgres_connection_pool().connect_options())
        }
        (sea_orm::DatabaseBackend::Sqlite, sea_orm::DatabaseBackend::Sqlite) => {
            std::sync::Arc::ptr_eq(&a.get_sqlite_connection_pool().connect_options(), &b.get_sqlite_connection_pool().connect_options())
        }
        _ => false,
    }
}

/// What a database error says about the deployment rather than the statement: PostgreSQL's
/// 42P05 (a prepared statement of that name exists) and 26000 (none of that name does) come
/// from a connection pooler that hands one server connection to several clients in turn
/// (PgBouncer in transaction or statement mode), which the service's driver cannot run behind.
pub fn hint(err: &DbErr) -> Option<&'static str> {
    match crate::store::db_error_code(err).as_deref() {
        Some("42P05" | "26000") => Some(
            "the database connection is shared between clients mid-session: behind PgBouncer, use pool_mode = session \
             (transaction mode breaks the driver's prepared statements; see README, \"Behind PgBouncer\")",
        ),
        _ => None,
    }
}

/// How often migrating is tried before a process gives up.
const MIGRATE_ATTEMPTS: u32 = 10;

/// Brings the schema up to date. Several processes starting at once on a fresh database race
/// here (sea-orm-migration takes no lock); every step is idempotent (`IF NOT EXISTS`), so a
/// bounded retry lets the losers find the winner's work done.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match Migrator::up(db, None).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < MIGRATE_ATTEMPTS => {
                tracing::debug!(attempt, error = %e, "migrations raced; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The ledger's own database as the scheduled jobs' storage: no extra server.
pub fn job_storage(db: &DatabaseConnection) -> workers::Storage {
    match db.get_database_backend() {
        sea_orm::DatabaseBackend::Sqlite => workers::Storage::Sqlite(db.get_sqlite_connection_pool().clone()),
        _ => workers::Storage::Postgres(db.get_postgres_connection_pool().clone()),
    }
}
