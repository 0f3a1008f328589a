//! What a batch of spends reads once its accounts are locked: the records of its idempotency
//! keys, and the accounts' holds past the deadline (released before anything is decided), open
//! lots, spend limits, where the low-credit warning counts hours of usage containers (a spend
//! never changes them), and where a plan has daily free credits the accounts' claims of the day
//! (whether the day's credits are still to be offered: `service::daily_free`). On PostgreSQL all
//! of it comes back from ONE statement (each row as JSON, tagged with its table), with the
//! journal entry ids the batch's debits will take (`store::keyed_debits`): up to four round trips
//! fewer per batch, which is what a spend costs at low concurrency (docs/benchmarks.md). It runs
//! after the lock, so it sees what the transactions the lock waited for committed. SQLite gets the same, and the accounts themselves,
//! in one call of a statement per table (`read_sqlite`); a batch that reads nothing else ahead
//! (`recordUsage`'s) gets its accounts and keys the same way (`accounts_and_keys_sqlite`).

use crate::entity::{account, container, idempotency_key, lot, reservation, spend_limit};
use crate::ledger::reservation::ReservationStatus;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};
use std::collections::HashSet;

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
    /// Journal entry ids for the batch's debits, ascending, as many as asked for
    /// (`store::keyed_debits` says why): on PostgreSQL taken from their sequence (ids a batch
    /// does not use are gaps in it, as a rolled-back insert's are), on SQLite the next ones.
    pub entry_ids: Vec<i64>,
    /// The accounts with a claim of the kind and period asked for (the day's free credits, where
    /// a plan has them: `service::daily_free`), when asked for.
    pub claimed: Option<Claimed>,
}

/// The accounts that hold a claim of `kind` for `period`.
#[derive(Debug, Default)]
pub struct Claimed {
    pub kind: String,
    pub period: String,
    pub accounts: HashSet<i64>,
}

/// A claim to look for with the rest: (kind, period).
pub type ClaimOf<'a> = Option<(&'a str, &'a str)>;

/// PostgreSQL: the rows of `account_ids` (locked) at `now`, the records of `keys` under
/// `operation`, `entry_ids` new journal entry ids, and which of the accounts hold the claim
/// `claim` (kind, period).
#[allow(clippy::too_many_arguments)]
pub async fn read(
    conn: &impl ConnectionTrait,
    account_ids: &[i64],
    now: DateTime<Utc>,
    containers: bool,
    operation: &str,
    keys: &[(i64, &str)],
    entry_ids: usize,
    claim: ClaimOf<'_>,
) -> Result<AccountReads, DbErr> {
    debug_assert_eq!(conn.get_database_backend(), DbBackend::Postgres, "SQLite reads with `read_sqlite`");
    if account_ids.is_empty() {
        return Ok(nothing_read(containers, claim));
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
    // The claim, tagged 6, after every other parameter.
    let kind_at = ids_at + usize::from(entry_ids > 0);
    let claim_part = if claim.is_some() {
        format!(
            " UNION ALL SELECT 6, CAST(c.account_id AS text) FROM claims c \
              WHERE c.account_id IN ({ids}) AND c.kind = ${kind_at} AND c.period = ${}",
            kind_at + 1
        )
    } else {
        String::new()
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
         UNION ALL SELECT 2, to_jsonb(s)::text FROM spend_limits s WHERE s.account_id IN ({ids}){}{keys_part}{ids_part}{claim_part}",
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
    if let Some((kind, period)) = claim {
        values.extend([Value::from(kind), Value::from(period)]);
    }
    let mut reads = nothing_read(containers, claim);
    for row in conn.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await? {
        let (part, text): (i32, String) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        let bad = |e: serde_json::Error| DbErr::Custom(format!("an account's row did not read back: {e}"));
        match part {
            0 => reads.lapsed.push(serde_json::from_str(&text).map_err(bad)?),
            1 => reads.lots.push(serde_json::from_str(&text).map_err(bad)?),
            2 => reads.limits.push(serde_json::from_str(&text).map_err(bad)?),
            4 => reads.keys.push(serde_json::from_str(&text).map_err(bad)?),
            5 => reads.entry_ids.push(text.parse().map_err(|e| DbErr::Custom(format!("an entry id did not read back: {e}")))?),
            6 => {
                let account = text.parse().map_err(|e| DbErr::Custom(format!("a claim's account did not read back: {e}")))?;
                reads.claimed.get_or_insert_with(Claimed::default).accounts.insert(account);
            }
            _ => reads.containers.get_or_insert_with(Vec::new).push(serde_json::from_str(&text).map_err(bad)?),
        }
    }
    Ok(sorted(reads))
}

/// What a read returns before any row: empty lists, and the parts asked for present but empty.
fn nothing_read(containers: bool, claim: ClaimOf<'_>) -> AccountReads {
    AccountReads {
        containers: containers.then(Vec::new),
        claimed: claim.map(|(kind, period)| Claimed { kind: kind.to_string(), period: period.to_string(), accounts: HashSet::new() }),
        ..AccountReads::default()
    }
}

/// `AccountReads` in the order its fields promise.
fn sorted(mut reads: AccountReads) -> AccountReads {
    reads.lapsed.sort_by_key(|r| (r.deadline, r.id));
    reads.lots.sort_by_key(|l| l.id);
    reads.limits.sort_by_key(|s| s.id);
    reads.entry_ids.sort_unstable();
    if let Some(containers) = &mut reads.containers {
        containers.sort_by_key(|c| c.id);
    }
    reads
}

/// SQLite: `read` for the accounts named by `externals` (those that exist, by id), read in the
/// same call, and the records of `pairs` (external id, key): one call with a statement per
/// table, each row tagged with its table in a first column. sqlx-sqlite runs every statement on
/// the connection's own thread, and each call is a hand-over to that thread and back: one call
/// instead of five or six (docs/benchmarks.md, changes 28 and 30). It must run inside a write
/// transaction: `BEGIN IMMEDIATE` holds the whole database, so reading the accounts locks them
/// (`executor::Named`). The entry ids are the next ones the journal would hand out (SQLite's
/// `AUTOINCREMENT`: past both the largest id ever used and the largest present); no other
/// connection writes until the batch commits, and an id the batch's own transaction took
/// meanwhile fails the insert on the primary key rather than reuse it.
#[allow(clippy::too_many_arguments)]
pub async fn read_sqlite(
    conn: &impl ConnectionTrait,
    externals: &[&str],
    pairs: &[(&str, &str)],
    now: DateTime<Utc>,
    containers: bool,
    operation: &str,
    entry_ids: usize,
    claim: ClaimOf<'_>,
) -> Result<(Vec<account::Model>, AccountReads), DbErr> {
    use sea_orm::FromQueryResult;
    let mut reads = nothing_read(containers, claim);
    if externals.is_empty() {
        return Ok((Vec::new(), reads));
    }
    // Every table is reached by a join on the accounts' unique external ids, never
    // `IN (SELECT ...)`: SQLite builds a temporary b-tree for each such subquery (and for each
    // list of more than one value), and a spend alone had nine of them between its read and its
    // write, 7% of the server's instructions (docs/benchmarks.md, change 31). For one account,
    // as at low load, these statements open none.
    let named = vec!["?"; externals.len()].join(", ");
    let names = || externals.iter().map(|id| Value::from(*id));
    // Each table's rows through the accounts: the unique index finds the ids, the table's own
    // index on `account_id` its rows. The holds' `deadline` is kept off the index choice (`+`):
    // by status and deadline SQLite would walk every lapsed hold of every account.
    let of = |table: &str| format!("FROM accounts a JOIN {table} ON x.account_id = a.id WHERE a.external_id IN ({named})");
    let mut sql = format!(
        "SELECT 6 AS part, a.* FROM accounts a WHERE a.external_id IN ({named}); \
         SELECT 0 AS part, x.* {} AND x.status = ? AND +x.deadline <= ?; \
         SELECT 1 AS part, x.* {} AND x.\"open\"; \
         SELECT 2 AS part, x.* {};",
        of("reservations x"),
        of("lots x"),
        of("spend_limits x"),
    );
    let mut values: Vec<Value> = names().chain(names()).collect();
    values.extend([Value::from(ReservationStatus::Held.as_str()), Value::from(now)]);
    values.extend(names().chain(names()));
    if containers {
        sql.push_str(&format!(" SELECT 3 AS part, x.* {};", of("containers x")));
        values.extend(names());
    }
    push_sqlite_keys(&mut sql, &mut values, pairs, operation);
    if let Some((kind, period)) = claim {
        sql.push_str(&format!(" SELECT 7 AS part, x.account_id AS claimed {} AND x.kind = ? AND x.period = ?;", of("claims x")));
        values.extend(names());
        values.extend([Value::from(kind), Value::from(period)]);
    }
    if entry_ids > 0 {
        sql.push_str(
            " SELECT 5 AS part, max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'journal_entries'), 0), \
                                  coalesce((SELECT max(id) FROM journal_entries), 0)) AS last;",
        );
    }
    let mut accounts = Vec::with_capacity(externals.len());
    for row in conn.query_all_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)).await? {
        match row.try_get::<i32>("", "part")? {
            0 => reads.lapsed.push(reservation::Model::from_query_result(&row, "")?),
            1 => reads.lots.push(lot::Model::from_query_result(&row, "")?),
            2 => reads.limits.push(spend_limit::Model::from_query_result(&row, "")?),
            3 => reads.containers.get_or_insert_with(Vec::new).push(container::Model::from_query_result(&row, "")?),
            4 => reads.keys.push(idempotency_key::Model::from_query_result(&row, "")?),
            6 => accounts.push(account::Model::from_query_result(&row, "")?),
            7 => {
                let account: i64 = row.try_get("", "claimed")?;
                reads.claimed.get_or_insert_with(Claimed::default).accounts.insert(account);
            }
            _ => {
                let last: i64 = row.try_get("", "last")?;
                reads.entry_ids = (1..=entry_ids as i64).map(|n| last + n).collect();
            }
        }
    }
    if accounts.is_empty() {
        // None of the named accounts exists: nothing of theirs to read, no entry to number.
        return Ok((accounts, nothing_read(containers, claim)));
    }
    Ok((accounts, sorted(reads)))
}

/// SQLite: the accounts named by `externals` (those that exist) and the records of `pairs`
/// (external id, key) of `operation`, in one call to the connection's thread instead of two:
/// what a batch that reads nothing else ahead needs (`executor::keys_only`, a `recordUsage`
/// batch). Inside a write transaction, whose `BEGIN IMMEDIATE` holds the whole database, reading
/// the accounts locks them (`executor::Named::read_under_the_database_lock`).
pub async fn accounts_and_keys_sqlite(
    conn: &impl ConnectionTrait,
    externals: &[&str],
    pairs: &[(&str, &str)],
    operation: &str,
) -> Result<(Vec<account::Model>, Vec<idempotency_key::Model>), DbErr> {
    use sea_orm::FromQueryResult;
    if externals.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let named = vec!["?"; externals.len()].join(", ");
    let mut sql = format!("SELECT 6 AS part, a.* FROM accounts a WHERE a.external_id IN ({named});");
    let mut values: Vec<Value> = externals.iter().map(|id| Value::from(*id)).collect();
    push_sqlite_keys(&mut sql, &mut values, pairs, operation);
    let (mut accounts, mut keys) = (Vec::with_capacity(externals.len()), Vec::new());
    for row in conn.query_all_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)).await? {
        match row.try_get::<i32>("", "part")? {
            6 => accounts.push(account::Model::from_query_result(&row, "")?),
            _ => keys.push(idempotency_key::Model::from_query_result(&row, "")?),
        }
    }
    Ok((accounts, keys))
}

/// Appends the statement (part 4) that reads the records of `pairs` (an account's external id,
/// a key) of `operation` through the accounts' external ids: one pair by equality, several as
/// `idempotency::find_many` looks them up (a `VALUES` list joined on the whole unique index).
fn push_sqlite_keys(sql: &mut String, values: &mut Vec<Value>, pairs: &[(&str, &str)], operation: &str) {
    match pairs {
        [] => {}
        [(account, key)] => {
            sql.push_str(
                " SELECT 4 AS part, k.* FROM accounts a JOIN idempotency_keys k ON k.account_id = a.id \
                  WHERE a.external_id = ? AND k.key = ? AND k.operation = ?;",
            );
            values.extend([Value::from(*account), Value::from(*key), Value::from(operation)]);
        }
        _ => {
            sql.push_str(&format!(
                " SELECT 4 AS part, k.* FROM (VALUES {}) AS v JOIN accounts a ON a.external_id = v.column1 \
                  JOIN idempotency_keys k ON k.account_id = a.id AND k.key = v.column2 AND k.operation = ?;",
                super::values_rows(DbBackend::Sqlite, pairs.len(), 2, 0)
            ));
            values.extend(pairs.iter().flat_map(|(account, key)| [Value::from(*account), Value::from(*key)]));
            values.push(Value::from(operation));
        }
    }
}
