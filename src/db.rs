//! Connecting to the ledger's database and bringing its schema up to date.

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use std::time::Duration;

/// How long a SQLite writer waits for the lock before BUSY; the service then retries boundedly.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_string());
    options.max_connections(max_connections).min_connections(1).acquire_timeout(Duration::from_secs(10)).sqlx_logging(false);
    if is_sqlite(url) {
        options.map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true).journal_mode(SqliteJournalMode::Wal).busy_timeout(SQLITE_BUSY_TIMEOUT).foreign_keys(true)
        });
    }
    Database::connect(options).await
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}
