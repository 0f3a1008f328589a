//! Deleting operational rows past their retention (`ledger::retention`), a bounded batch per
//! statement so that no purge holds a lock or grows a transaction without end. Nothing here
//! touches the ledger's tables or the claims; the spend limits' counters of periods long over
//! are the one kind of account state it removes (they can no longer decide anything).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

/// Runs `sql` written with `$1, $2` placeholders; SQLite gets `?1, ?2`, its own numbered form.
async fn delete(conn: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Result<u64, DbErr> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_string(),
    };
    Ok(conn.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?.rows_affected())
}

/// Webhook events delivered before `before`. An event never delivered stays: it is either
/// still being retried or the evidence of a receiver that refused it.
pub async fn purge_delivered_events(conn: &impl ConnectionTrait, before: DateTime<Utc>, limit: u64) -> Result<u64, DbErr> {
    let sql = "DELETE FROM outbox WHERE id IN \
               (SELECT id FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1 ORDER BY id LIMIT $2)";
    delete(conn, sql, vec![before.into(), (limit as i64).into()]).await
}

/// Spend-limit usage counters of periods before `day_key` ("YYYY-MM-DD", for day counters) and
/// `month_key` ("YYYY-MM", for month counters), never one that an open hold counted in (its
/// settlement gives the room back there). Day and month keys differ in length, and each compares
/// in time order as text.
pub async fn purge_spend_counters(conn: &impl ConnectionTrait, day_key: &str, month_key: &str, limit: u64) -> Result<u64, DbErr> {
    let sql = "DELETE FROM spend_usage WHERE (account_id, scope, period_key) IN \
               (SELECT u.account_id, u.scope, u.period_key FROM spend_usage u \
                WHERE ((LENGTH(u.period_key) = 10 AND u.period_key < $1) OR (LENGTH(u.period_key) = 7 AND u.period_key < $2)) \
                AND NOT EXISTS (SELECT 1 FROM spend_limit_holds h \
                    WHERE h.account_id = u.account_id AND h.scope = u.scope AND h.period_key = u.period_key) \
                ORDER BY u.account_id, u.scope, u.period_key LIMIT $3)";
    delete(conn, sql, vec![day_key.into(), month_key.into(), (limit as i64).into()]).await
}

/// Market rate snapshots taken before `before`.
pub async fn purge_rate_snapshots(conn: &impl ConnectionTrait, before: DateTime<Utc>, limit: u64) -> Result<u64, DbErr> {
    let sql = "DELETE FROM market_rate_snapshots WHERE id IN \
               (SELECT id FROM market_rate_snapshots WHERE at < $1 ORDER BY id LIMIT $2)";
    delete(conn, sql, vec![before.into(), (limit as i64).into()]).await
}

/// Stripe events received before `before` (Stripe redelivers an event for up to 3 days; each
/// effect is idempotent on its own key besides).
pub async fn purge_stripe_events(conn: &impl ConnectionTrait, before: DateTime<Utc>, limit: u64) -> Result<u64, DbErr> {
    let sql = "DELETE FROM stripe_events WHERE event_id IN \
               (SELECT event_id FROM stripe_events WHERE received_at < $1 ORDER BY received_at LIMIT $2)";
    delete(conn, sql, vec![before.into(), (limit as i64).into()]).await
}

/// Wrong coupon guesses made before `before` (they throttle only within minutes).
pub async fn purge_coupon_failures(conn: &impl ConnectionTrait, before: DateTime<Utc>, limit: u64) -> Result<u64, DbErr> {
    let sql = "DELETE FROM coupon_failures WHERE id IN \
               (SELECT id FROM coupon_failures WHERE attempted_at < $1 ORDER BY id LIMIT $2)";
    delete(conn, sql, vec![before.into(), (limit as i64).into()]).await
}

/// Period markers of scheduled jobs that finished before `before`, never a run that is not
/// done and never a job's latest done period: catching up after downtime starts from it.
pub async fn purge_job_markers(conn: &impl ConnectionTrait, before: DateTime<Utc>, limit: u64) -> Result<u64, DbErr> {
    let sql = "DELETE FROM job_runs WHERE id IN \
               (SELECT r.id FROM job_runs r WHERE r.status = 'done' AND r.finished_at < $1 \
                AND r.period < (SELECT MAX(l.period) FROM job_runs l WHERE l.job = r.job AND l.status = 'done') \
                ORDER BY r.id LIMIT $2)";
    delete(conn, sql, vec![before.into(), (limit as i64).into()]).await
}

/// The scheduler's (apalis) finished ticks that ended before `before`: done, killed, or failed
/// with no attempt left. A pending, running or retryable tick is never touched. The table is
/// apalis's own, created when the workers first prepare their storage; before that there is
/// nothing to purge.
pub async fn purge_scheduler_ticks(conn: &impl ConnectionTrait, before: DateTime<Utc>, limit: u64) -> Result<u64, DbErr> {
    let finished = "(status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))";
    match conn.get_database_backend() {
        DbBackend::Sqlite => {
            if !sqlite_table_exists(conn, "Jobs").await? {
                return Ok(0);
            }
            // apalis-sqlite keeps `done_at` as Unix seconds.
            let sql = format!(
                "DELETE FROM Jobs WHERE rowid IN (SELECT rowid FROM Jobs WHERE {finished} \
                 AND done_at IS NOT NULL AND done_at < $1 ORDER BY done_at LIMIT $2)"
            );
            delete(conn, &sql, vec![before.timestamp().into(), (limit as i64).into()]).await
        }
        _ => {
            if !postgres_table_exists(conn, "apalis.jobs").await? {
                return Ok(0);
            }
            let sql = format!(
                "DELETE FROM apalis.jobs WHERE id IN (SELECT id FROM apalis.jobs WHERE {finished} \
                 AND done_at IS NOT NULL AND done_at < $1 ORDER BY done_at LIMIT $2)"
            );
            delete(conn, &sql, vec![before.into(), (limit as i64).into()]).await
        }
    }
}

/// The scheduler's registrations of worker processes not seen since `before` that no tick
/// still points at: each process start registers one, so restarts would pile them up.
pub async fn purge_scheduler_workers(conn: &impl ConnectionTrait, before: DateTime<Utc>, limit: u64) -> Result<u64, DbErr> {
    match conn.get_database_backend() {
        DbBackend::Sqlite => {
            if !sqlite_table_exists(conn, "Workers").await? {
                return Ok(0);
            }
            let sql = "DELETE FROM Workers WHERE rowid IN (SELECT w.rowid FROM Workers w WHERE w.last_seen < $1 \
                       AND NOT EXISTS (SELECT 1 FROM Jobs j WHERE j.lock_by = w.id) LIMIT $2)";
            delete(conn, sql, vec![before.timestamp().into(), (limit as i64).into()]).await
        }
        _ => {
            if !postgres_table_exists(conn, "apalis.workers").await? {
                return Ok(0);
            }
            let sql = "DELETE FROM apalis.workers WHERE id IN (SELECT w.id FROM apalis.workers w WHERE w.last_seen < $1 \
                       AND NOT EXISTS (SELECT 1 FROM apalis.jobs j WHERE j.lock_by = w.id) LIMIT $2)";
            delete(conn, sql, vec![before.into(), (limit as i64).into()]).await
        }
    }
}

async fn postgres_table_exists(conn: &impl ConnectionTrait, name: &str) -> Result<bool, DbErr> {
    let sql = "SELECT to_regclass($1) IS NOT NULL AS present";
    let row = conn.query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, [name.into()])).await?;
    Ok(row.map(|row| row.try_get::<bool>("", "present")).transpose()?.unwrap_or(false))
}

async fn sqlite_table_exists(conn: &impl ConnectionTrait, name: &str) -> Result<bool, DbErr> {
    let sql = "SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = ?1";
    Ok(conn.query_one_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, [name.into()])).await?.is_some())
}

/// Whether the SQLite file gives freed pages back on request (`auto_vacuum = INCREMENTAL`).
/// Files created before issue 19 are not, until a one-time `VACUUM` (README, "Retention").
pub async fn sqlite_incremental_vacuum_enabled(conn: &impl ConnectionTrait) -> Result<bool, DbErr> {
    let row = conn.query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA auto_vacuum")).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0) == 2)
}

/// Gives back at most `pages` free pages of the SQLite file to the file system. Each page
/// freed is a short write, so a bounded number never holds the writer's lock for long.
pub async fn sqlite_incremental_vacuum(conn: &impl ConnectionTrait, pages: u64) -> Result<(), DbErr> {
    let sql = format!("PRAGMA incremental_vacuum({pages})");
    conn.execute_raw(Statement::from_string(DbBackend::Sqlite, sql)).await?;
    Ok(())
}

/// Free pages in the SQLite file: what a purge left for the vacuum to give back.
pub async fn sqlite_free_pages(conn: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let row = conn.query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA freelist_count")).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0))
}
