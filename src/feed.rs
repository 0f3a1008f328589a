//! Balance changes as a live feed, for the `balanceChanged` subscription. A change made by any
//! process (another API server, a worker's expiry or settlement) must reach the subscribers of
//! this one, so the feed listens to the database, never to this process's own writes:
//!
//! - PostgreSQL: every balance change sends `NOTIFY credits_balance, '<account id>'` inside its
//!   transaction (`store::accounts::add_to_balance`), so it is delivered exactly when it commits
//!   and never for a rollback; one `LISTEN` connection per process fans it out.
//! - SQLite: there is no NOTIFY, but commits are serialized, so journal ids become visible in
//!   order: one poller per process tails the journal every `SQLITE_POLL`.
//!
//! A subscriber that falls behind, or a listener that lost its connection, gets `Resync`: it
//! re-reads the balance instead of trusting that it missed nothing.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::broadcast;

/// The channel balance changes are announced on (PostgreSQL).
pub const CHANNEL: &str = "credits_balance";
/// How often a SQLite process looks for new journal entries.
pub const SQLITE_POLL: Duration = Duration::from_millis(200);
/// Journal entries read per poll; the next poll goes on from there.
const POLL_BATCH: u64 = 1000;
/// Events buffered per subscriber before it must resync.
const CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEvent {
    /// This account's credits changed.
    Changed(i64),
    /// Changes may have been missed: every subscriber re-reads.
    Resync,
}

#[derive(Clone)]
pub struct BalanceFeed {
    sender: Arc<broadcast::Sender<FeedEvent>>,
}

impl BalanceFeed {
    /// Starts listening to `db`. The listening task ends once every clone of the feed is gone.
    pub fn start(db: &DatabaseConnection) -> BalanceFeed {
        let sender = Arc::new(broadcast::channel(CAPACITY).0);
        let weak = Arc::downgrade(&sender);
        match db.get_database_backend() {
            DbBackend::Postgres => {
                tokio::spawn(listen(db.get_postgres_connection_pool().clone(), weak));
            }
            _ => {
                tokio::spawn(poll(db.clone(), weak));
            }
        }
        BalanceFeed { sender }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FeedEvent> {
        self.sender.subscribe()
    }
}

async fn listen(pool: sea_orm::sqlx::PgPool, feed: Weak<broadcast::Sender<FeedEvent>>) {
    use sea_orm::sqlx::postgres::PgListener;
    let mut failures = 0u32;
    loop {
        if feed.strong_count() == 0 {
            return;
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "balance feed: cannot connect; retrying");
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            failures += 1;
            tracing::warn!(error = %e, failures, "balance feed: cannot LISTEN; retrying");
            tokio::time::sleep(backoff(failures)).await;
            continue;
        }
        // Connected: anything during the gap is unknown.
        if failures > 0 && !send(&feed, FeedEvent::Resync) {
            return;
        }
        failures = 0;
        loop {
            // A bounded wait, so a feed nobody holds any more is noticed.
            match tokio::time::timeout(Duration::from_secs(5), listener.try_recv()).await {
                Err(_elapsed) => {
                    if feed.strong_count() == 0 {
                        return;
                    }
                }
                Ok(Ok(Some(notification))) => {
                    if let Ok(id) = notification.payload().parse::<i64>()
                        && !send(&feed, FeedEvent::Changed(id))
                    {
                        return;
                    }
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    failures += 1;
                    tracing::warn!("balance feed: connection lost; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn poll(db: DatabaseConnection, feed: Weak<broadcast::Sender<FeedEvent>>) {
    let backend = db.get_database_backend();
    let mut last = match db.query_one_raw(Statement::from_string(backend, "SELECT COALESCE(MAX(id), 0) FROM journal_entries")).await {
        Ok(Some(row)) => row.try_get_by_index::<i64>(0).unwrap_or(0),
        _ => 0,
    };
    let mut ticker = tokio::time::interval(SQLITE_POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if feed.strong_count() == 0 {
            return;
        }
        let sql = format!("SELECT id, account_id FROM journal_entries WHERE id > {last} ORDER BY id LIMIT {POLL_BATCH}");
        let rows = match db.query_all_raw(Statement::from_string(backend, sql)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "balance feed: cannot read the journal");
                continue;
            }
        };
        let mut accounts = Vec::new();
        for row in rows {
            let (Ok(id), Ok(account)) = (row.try_get_by_index::<i64>(0), row.try_get_by_index::<i64>(1)) else { continue };
            last = last.max(id);
            if !accounts.contains(&account) {
                accounts.push(account);
            }
        }
        for account in accounts {
            if !send(&feed, FeedEvent::Changed(account)) {
                return;
            }
        }
    }
}

/// False once nobody holds the feed.
fn send(feed: &Weak<broadcast::Sender<FeedEvent>>, event: FeedEvent) -> bool {
    match feed.upgrade() {
        Some(sender) => {
            // No subscriber right now is fine.
            let _ = sender.send(event);
            true
        }
        None => false,
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << failures.min(6))).min(Duration::from_secs(5))
}
