//! What a batch of spends reads about its accounts once they are locked: their holds past the
//! deadline (released before anything is decided), their open lots, their spend limits and,
//! where the low-credit warning counts hours of usage, their containers (a spend never changes
//! them). On PostgreSQL all of it comes back from ONE statement (each row as JSON, tagged with
//! its table): up to three round trips fewer per batch, which is what a spend costs at low
//! concurrency (docs/benchmarks.md). It runs after the lock, so it sees what the transactions
//! the lock waited for committed. SQLite, in-process, keeps one statement per table.

use crate::entity::{container, lot, reservation, spend_limit};
use crate::ledger::reservation::ReservationStatus;
use crate::store::{lots, metering, reservations, spend_limits};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

/// The locked accounts' rows a spend decision needs.
#[derive(Debug, Default)]
pub struct AccountReads {
    /// Held reservations past their deadline, by deadline then id (`reservations::lapsed`).
    pub lapsed: Vec<reservation::Model>,
    /// Open lots, by id (`lots::open_for_accounts`).
    pub lots: Vec<lot::Model>,
    /// Spend limits, by id (`spend_limits::for_accounts`).
    pub limits: Vec<spend_limit::Model>,
    /// Containers, by id (`metering::containers_of_accounts`), when asked for.
    pub containers: Option<Vec<container::Model>>,
}

pub async fn read(conn: &impl ConnectionTrait, account_ids: &[i64], now: DateTime<Utc>, containers: bool) -> Result<AccountReads, DbErr> {
    if account_ids.is_empty() {
        return Ok(AccountReads { containers: containers.then(Vec::new), ..AccountReads::default() });
    }
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(AccountReads {
            lapsed: reservations::lapsed(conn, account_ids, now).await?,
            lots: lots::open_for_accounts(conn, account_ids).await?,
            limits: spend_limits::for_accounts(conn, account_ids).await?,
            containers: if containers { Some(metering::containers_of_accounts(conn, account_ids).await?) } else { None },
        });
    }
    let ids = (1..=account_ids.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
    let (status_at, now_at) = (account_ids.len() + 1, account_ids.len() + 2);
    let sql = format!(
        "SELECT 0 AS part, to_jsonb(r)::text AS row FROM reservations r \
           WHERE r.account_id IN ({ids}) AND r.status = ${status_at} AND r.deadline <= ${now_at} \
         UNION ALL SELECT 1, to_jsonb(l)::text FROM lots l WHERE l.account_id IN ({ids}) AND l.\"open\" \
         UNION ALL SELECT 2, to_jsonb(s)::text FROM spend_limits s WHERE s.account_id IN ({ids}){}",
        if containers {
            format!(" UNION ALL SELECT 3, to_jsonb(c)::text FROM containers c WHERE c.account_id IN ({ids})")
        } else {
            String::new()
        }
    );
    let mut values: Vec<Value> = account_ids.iter().map(|id| Value::from(*id)).collect();
    values.push(Value::from(ReservationStatus::Held.as_str()));
    values.push(Value::from(now));
    let mut reads = AccountReads { containers: containers.then(Vec::new), ..AccountReads::default() };
    for row in conn.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await? {
        let (part, text): (i32, String) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        let bad = |e: serde_json::Error| DbErr::Custom(format!("an account's row did not read back: {e}"));
        match part {
            0 => reads.lapsed.push(serde_json::from_str(&text).map_err(bad)?),
            1 => reads.lots.push(serde_json::from_str(&text).map_err(bad)?),
            2 => reads.limits.push(serde_json::from_str(&text).map_err(bad)?),
            _ => reads.containers.get_or_insert_with(Vec::new).push(serde_json::from_str(&text).map_err(bad)?),
        }
    }
    reads.lapsed.sort_by_key(|r| (r.deadline, r.id));
    reads.lots.sort_by_key(|l| l.id);
    reads.limits.sort_by_key(|s| s.id);
    if let Some(containers) = &mut reads.containers {
        containers.sort_by_key(|c| c.id);
    }
    Ok(reads)
}
