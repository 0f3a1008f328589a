//! What a batch of spends reads once its accounts are locked: the records of its idempotency
//! keys, and the accounts' holds past the deadline (released before anything is decided), open
//! lots, spend limits and, where the low-credit warning counts hours of usage, containers (a
//! spend never changes them). On PostgreSQL all of it comes back from ONE statement (each row as
//! JSON, tagged with its table), with the journal entry ids the batch's debits will take
//! (`store::keyed_debits`): up to four round trips fewer per batch, which is what a spend costs
//! at low concurrency (docs/benchmarks.md). It runs after the lock, so it sees what the
//! transactions the lock waited for committed. SQLite, in-process, keeps one statement per table.

use crate::entity::{container, idempotency_key, lot, reservation, spend_limit};
use crate::ledger::reservation::ReservationStatus;
use crate::store::{idempotency, lots, metering, reservations, spend_limits};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

/// The locked accounts' rows a spend decision needs, and the stored records of the batch's keys.
#[derive(Debug, Default)]
pub struct AccountReads {
    /// The records of the (account, key) pairs asked for that exist (`idempotency::find_many`).
    pub keys: Vec<idempotency_key::Model>,
    /// Held reservations past their deadline, by deadline then id (`reservations::lapsed`).
    pub lapsed: Vec<reservation::Model>,
    /// Open lots, by id (`lots::open_for_accounts`).
    pub lots: Vec<lot::Model>,
    /// Spend limits, by id (`spend_limits::for_accounts`).
    pub limits: Vec<spend_limit::Model>,
    /// Containers, by id (`metering::containers_of_accounts`), when asked for.
    pub containers: Option<Vec<container::Model>>,
    /// PostgreSQL: journal entry ids taken from their sequence, ascending, as many as asked for
    /// (`store::keyed_debits` says why). Ids a batch does not use are gaps in the sequence, as
    /// a rolled-back insert's are. None on SQLite.
    pub entry_ids: Vec<i64>,
}

/// The rows of `account_ids` (locked) at `now`, the records of `keys` under `operation`, and on
/// PostgreSQL `entry_ids` new journal entry ids.
pub async fn read(
    conn: &impl ConnectionTrait,
    account_ids: &[i64],
    now: DateTime<Utc>,
    containers: bool,
    operation: &str,
    keys: &[(i64, &str)],
    entry_ids: usize,
) -> Result<AccountReads, DbErr> {
    if account_ids.is_empty() {
        return Ok(AccountReads { containers: containers.then(Vec::new), ..AccountReads::default() });
    }
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(AccountReads {
            keys: idempotency::find_many(conn, operation, keys).await?,
            lapsed: reservations::lapsed(conn, account_ids, now).await?,
            lots: lots::open_for_accounts(conn, account_ids).await?,
            limits: spend_limits::for_accounts(conn, account_ids).await?,
            containers: if containers { Some(metering::containers_of_accounts(conn, account_ids).await?) } else { None },
            entry_ids: Vec::new(),
        });
    }
    let ids = (1..=account_ids.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
    let (status_at, now_at, operation_at) = (account_ids.len() + 1, account_ids.len() + 2, account_ids.len() + 3);
    // The keys as `idempotency::find_many` looks them up (a VALUES list joined on the whole
    // unique index), tagged 4.
    let ids_at = operation_at + 2 * keys.len() + 1;
    // Entry ids, tagged 5: taken under the accounts' locks, so each account's next entries
    // number after every entry of it already committed.
    let ids_part = if entry_ids == 0 {
        String::new()
    } else {
        format!(" UNION ALL SELECT 5, CAST(nextval('journal_entry_ids') AS text) FROM generate_series(1, ${ids_at})")
    };
    let keys_part = if keys.is_empty() {
        String::new()
    } else {
        format!(
            " UNION ALL SELECT 4, to_jsonb(k)::text FROM (VALUES {}) AS v JOIN idempotency_keys k \
              ON k.account_id = v.column1 AND k.key = v.column2 AND k.operation = ${operation_at}",
            super::values_rows(DbBackend::Postgres, keys.len(), 2, operation_at)
        )
    };
    let sql = format!(
        "SELECT 0 AS part, to_jsonb(r)::text AS row FROM reservations r \
           WHERE r.account_id IN ({ids}) AND r.status = ${status_at} AND r.deadline <= ${now_at} \
         UNION ALL SELECT 1, to_jsonb(l)::text FROM lots l WHERE l.account_id IN ({ids}) AND l.\"open\" \
         UNION ALL SELECT 2, to_jsonb(s)::text FROM spend_limits s WHERE s.account_id IN ({ids}){}{keys_part}{ids_part}",
        if containers {
            format!(" UNION ALL SELECT 3, to_jsonb(c)::text FROM containers c WHERE c.account_id IN ({ids})")
        } else {
            String::new()
        }
    );
    let mut values: Vec<Value> = account_ids.iter().map(|id| Value::from(*id)).collect();
    values.push(Value::from(ReservationStatus::Held.as_str()));
    values.push(Value::from(now));
    values.push(Value::from(operation));
    values.extend(keys.iter().flat_map(|(account_id, key)| [Value::from(*account_id), Value::from(*key)]));
    if entry_ids > 0 {
        values.push(Value::from(i32::try_from(entry_ids).map_err(|_| DbErr::Custom("too many entry ids asked for".into()))?));
    }
    let mut reads = AccountReads { containers: containers.then(Vec::new), ..AccountReads::default() };
    for row in conn.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await? {
        let (part, text): (i32, String) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        let bad = |e: serde_json::Error| DbErr::Custom(format!("an account's row did not read back: {e}"));
        match part {
            0 => reads.lapsed.push(serde_json::from_str(&text).map_err(bad)?),
            1 => reads.lots.push(serde_json::from_str(&text).map_err(bad)?),
            2 => reads.limits.push(serde_json::from_str(&text).map_err(bad)?),
            4 => reads.keys.push(serde_json::from_str(&text).map_err(bad)?),
            5 => reads.entry_ids.push(text.parse().map_err(|e| DbErr::Custom(format!("an entry id did not read back: {e}")))?),
            _ => reads.containers.get_or_insert_with(Vec::new).push(serde_json::from_str(&text).map_err(bad)?),
        }
    }
    reads.lapsed.sort_by_key(|r| (r.deadline, r.id));
    reads.lots.sort_by_key(|l| l.id);
    reads.limits.sort_by_key(|s| s.id);
    reads.entry_ids.sort_unstable();
    if let Some(containers) = &mut reads.containers {
        containers.sort_by_key(|c| c.id);
    }
    Ok(reads)
}
