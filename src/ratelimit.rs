//! Abuse control for claims (check-in, coupons, ad rewards, lucky credits): a fixed-window count
//! per account and per client IP. It bounds how fast one account or one address can hammer the
//! claim paths; the once-per-period rules themselves live in the ledger whatever this allows.
//! The IP is the TCP peer's, or behind a proxy listed in `trusted_proxies` the one it forwards
//! (`crate::client_address`).
//!
//! The counts are kept in the database by default (`ClaimCounter::Database`, table
//! `claim_rates`), so a fleet of processes holds one limit between them rather than one each;
//! `claim_limits = "memory"` keeps them in each process instead (`RateLimiter`), for a single
//! process that would rather not pay a write per claim.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most keys remembered; past it, expired windows are dropped, then the map is cleared
/// (forgetting counts errs towards letting a client through, never towards blocking one).
const MAX_KEYS: usize = 100_000;

pub struct RateLimiter {
    window: Duration,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(window: Duration) -> RateLimiter {
        RateLimiter { window, counts: Mutex::new(HashMap::new()) }
    }

    /// Counts one attempt for `key`; Err(seconds until the window ends) past `limit`.
    pub fn check(&self, key: &str, limit: u32, now: Instant) -> Result<(), u64> {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if counts.len() >= MAX_KEYS && !counts.contains_key(key) {
            let window = self.window;
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
            if counts.len() >= MAX_KEYS {
                counts.clear();
            }
        }
        let entry = counts.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            let left = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// Where claims are counted.
pub enum ClaimCounter {
    /// In this process's memory.
    Memory(RateLimiter),
    /// In the database, shared by every process on it.
    Database { db: DatabaseConnection, window: Duration },
}

/// A key's row is deleted once idle this long (checked now and then, as claims come).
const IDLE_ROWS_KEPT_MS: i64 = 3600 * 1000;

impl ClaimCounter {
    /// Counts one attempt for `key`; Err(seconds until its window ends) past `limit`. A database
    /// that cannot count lets the claim through (with a warning): the claim itself goes to the
    /// same database, and a limit must not become the outage.
    pub async fn check(&self, key: &str, limit: u32) -> Result<(), u64> {
        let (db, window) = match self {
            ClaimCounter::Memory(limiter) => return limiter.check(key, limit, Instant::now()),
            ClaimCounter::Database { db, window } => (db, *window),
        };
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let now_ms = chrono::Utc::now().timestamp_millis();
        match count_in_database(db, key, now_ms, window_ms).await {
            Ok((count, started_ms)) if count > i64::from(limit) => {
                let left_ms = (started_ms + window_ms - now_ms).max(0);
                Err(u64::try_from((left_ms + 999) / 1000).unwrap_or(1).max(1))
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "the claim rate limit could not be counted; the claim is let through");
                Ok(())
            }
        }
    }
}

/// One statement: starts the key's window (count 1) if it has none or it ended, else counts
/// one more in it; the count and when the window started.
async fn count_in_database(db: &DatabaseConnection, key: &str, now_ms: i64, window_ms: i64) -> Result<(i64, i64), sea_orm::DbErr> {
    let backend = db.get_database_backend();
    let ended_before = now_ms - window_ms;
    // The same statement on both: `excluded`-free, reading the old row in SET (as both do).
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO claim_rates (key, window_start_ms, count) VALUES ($1, $2, 1)
             ON CONFLICT (key) DO UPDATE SET
               count = CASE WHEN claim_rates.window_start_ms <= $3 THEN 1 ELSE claim_rates.count + 1 END,
               window_start_ms = CASE WHEN claim_rates.window_start_ms <= $3 THEN $2 ELSE claim_rates.window_start_ms END
             RETURNING count, window_start_ms"
        }
        _ => {
            "INSERT INTO claim_rates (key, window_start_ms, count) VALUES (?1, ?2, 1)
             ON CONFLICT (key) DO UPDATE SET
               count = CASE WHEN claim_rates.window_start_ms <= ?3 THEN 1 ELSE claim_rates.count + 1 END,
               window_start_ms = CASE WHEN claim_rates.window_start_ms <= ?3 THEN ?2 ELSE claim_rates.window_start_ms END
             RETURNING count, window_start_ms"
        }
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [key.into(), now_ms.into(), ended_before.into()]))
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("the counted row".into()))?;
    let count: i64 = match row.try_get::<i64>("", "count") {
        Ok(count) => count,
        Err(_) => i64::from(row.try_get::<i32>("", "count")?),
    };
    let started: i64 = row.try_get("", "window_start_ms")?;
    // Now and then (about one claim in 256), rows of keys idle for an hour go.
    if now_ms % 256 == 0 {
        let forget = match backend {
            DbBackend::Postgres => "DELETE FROM claim_rates WHERE window_start_ms < $1",
            _ => "DELETE FROM claim_rates WHERE window_start_ms < ?1",
        };
        db.execute_raw(Statement::from_sql_and_values(backend, forget, [(now_ms - IDLE_ROWS_KEPT_MS).into()])).await?;
    }
    Ok((count, started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_allows_its_limit_then_refuses_until_it_ends() {
        let limiter = RateLimiter::new(Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("a", 3, start), Ok(()));
        }
        assert_eq!(limiter.check("a", 3, start + Duration::from_secs(10)), Err(50));
        assert_eq!(limiter.check("b", 3, start), Ok(()), "keys are counted apart");
        assert_eq!(limiter.check("a", 3, start + Duration::from_secs(60)), Ok(()), "a new window");
    }
}
