//! A batch of debits and the records of the batch's keys in ONE statement on PostgreSQL, in one
//! call on SQLite.
//!
//! A spend batch otherwise writes in three statements after its read: the lots and balances
//! (`accounts::move_lots_and_balances`), the entries and their lines (`journal::append_many`),
//! and the keys' records (`idempotency::insert_many`). At one client a spend's time is round
//! trips (docs/benchmarks.md, change 9), and these three are one only if the records can be
//! written before the entries come back: a record holds its outcome, and a spend's outcome names
//! its entry. So the entries' ids are taken from their sequence in the batch's read
//! (`spend_reads`), under the accounts' locks, and every balance after is known before anything
//! is written: each account's locked balance moved by its debits, in order.
//!
//! Nothing here is trusted that the database can check: the balances' update is a
//! compare-and-set on the balance each account had when locked, the lots' on what each held, and
//! the statement returns how many rows each part wrote; a count unlike the one asked for is an
//! error and the caller's transaction rolls back.
//!
//! SQLite has no writes inside `WITH`, so there the parts are statements of their own, sent in
//! one call (sqlx-sqlite runs them one after the other on the connection's thread: one hand-over
//! to it and back instead of five; docs/benchmarks.md, change 28). Each update is followed by a
//! `SELECT` of its `changes()`, counted as above; the inserts have no `ON CONFLICT`, so each
//! writes all of its rows or fails the call.

use crate::ledger::Credits;
use crate::store::idempotency::NewRecord;
use crate::store::journal::NewEntry;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

/// Bound parameters the statement may take: PostgreSQL's limit is 65,535 per statement.
const MAX_PARAMETERS: usize = 60_000;
/// SQLite's limit is 32,766 a statement (`SQLITE_MAX_VARIABLE_NUMBER`); under it for the whole
/// call, any one statement is too.
const MAX_PARAMETERS_SQLITE: usize = 30_000;

/// One batch's debits, decided and numbered: everything the statement writes but the keys.
pub struct Debits<'a> {
    /// (lot id, remaining as read under the lock, remaining after)
    pub lots: Vec<(i64, Credits, Credits)>,
    /// (account id, balance as locked, balance after)
    pub balances: Vec<(i64, i64, i64)>,
    /// Each entry with the id taken for it, in the order taken (so each account's entries in
    /// sequence order), its balance after already set.
    pub entries: Vec<(i64, NewEntry<'a>)>,
}

/// Whether `entries` debits taking `lines` times from lots, with `records` keys, fit one
/// statement's parameters (a spend that takes from thousands of lots does not: it is written the
/// usual way). Counted before anything is numbered: each line may be a lot of its own, and each
/// entry an account.
pub fn fit(backend: DbBackend, entries: usize, lines: usize, records: usize) -> bool {
    let max = if backend == DbBackend::Postgres { MAX_PARAMETERS } else { MAX_PARAMETERS_SQLITE };
    // The feed's channel is one parameter more.
    (PER_LOT + PER_LINE) * lines + (PER_BALANCE + PER_ENTRY) * entries + PER_RECORD * records < max
}

const PER_LOT: usize = 3;
const PER_BALANCE: usize = 3;
const PER_ENTRY: usize = 15;
const PER_LINE: usize = 4;
const PER_RECORD: usize = 7;

/// `Debits` as the statement's first parts and their parameters, owning everything, so the
/// batch's body can leave them to the executor, which writes them with the keys (`write`).
pub struct Prepared {
    backend: DbBackend,
    /// PostgreSQL: the `WITH` parts up to the keys', each ending in a comma. SQLite: the
    /// statements up to the keys', each ending in a semicolon.
    parts: String,
    values: Vec<Value>,
    /// Rows asked of each part: balances, lots, entries, lines.
    asked: [usize; 4],
}

/// `debits` as the parts of `write`'s statement. The accounts' update comes first, then the
/// lots', as in `accounts::move_lots_and_balances` (the journal archive locks them in that
/// order), then the journal.
pub fn prepare(backend: DbBackend, debits: &Debits<'_>) -> Prepared {
    assert!(!debits.entries.is_empty() && !debits.lots.is_empty(), "a debit takes from a lot");
    let mut values: Vec<Value> = Vec::new();
    // Each part's placeholders are numbered after the parameters before it.
    let rows = |columns: usize, count: usize, values: &[Value]| super::values_rows(backend, count, columns, values.len());
    // On SQLite one row is updated by its id alone: the `VALUES` form costs two temporary
    // b-trees there (docs/benchmarks.md, change 31), and a spend at low load moves one balance
    // and, mostly, one lot.
    let one_sqlite = |rows: usize| backend != DbBackend::Postgres && rows == 1;
    let balances_alone = one_sqlite(debits.balances.len());
    let balance_rows = if balances_alone { String::new() } else { rows(PER_BALANCE, debits.balances.len(), &values) };
    if balances_alone {
        let (id, before, after) = debits.balances[0];
        values.extend([Value::from(after), Value::from(id), Value::from(before)]);
    } else {
        values.extend(debits.balances.iter().flat_map(|(id, before, after)| [Value::from(*id), Value::from(*before), Value::from(*after)]));
    }
    let lot_alone = one_sqlite(debits.lots.len());
    let lot_rows = if lot_alone { String::new() } else { rows(PER_LOT, debits.lots.len(), &values) };
    if lot_alone {
        let (id, old, new) = debits.lots[0];
        values.extend([Value::from(new.micros()), Value::from(new.micros()), Value::from(id), Value::from(old.micros())]);
    } else {
        values
            .extend(debits.lots.iter().flat_map(|(id, old, new)| [Value::from(*id), Value::from(old.micros()), Value::from(new.micros())]));
    }
    let entry_rows = rows(PER_ENTRY, debits.entries.len(), &values);
    for (id, e) in &debits.entries {
        values.extend([
            Value::from(*id),
            Value::from(e.account_id),
            Value::from(e.kind.as_str()),
            Value::from(e.amount_micros()),
            Value::from(e.effective_at),
            Value::from(e.created_at),
            Value::from(e.operation),
            Value::from(e.idempotency_key),
            Value::from(e.feature),
            Value::from(e.model),
            Value::from(e.reason),
            Value::from(e.actor),
            Value::from(e.detail),
            Value::from(e.metadata),
            Value::from(e.balance_after_micros),
        ]);
    }
    let lines: Vec<(i64, i64, i64, chrono::DateTime<chrono::Utc>)> =
        debits.entries.iter().flat_map(|(id, e)| e.lines.iter().map(move |(lot_id, delta)| (*id, *lot_id, *delta, e.created_at))).collect();
    assert!(!lines.is_empty() && lines.iter().all(|l| l.2 != 0), "a debit has lines, and journal lines are never zero");
    let line_rows = rows(PER_LINE, lines.len(), &values);
    values.extend(
        lines.iter().flat_map(|(entry, lot, delta, at)| [Value::from(*entry), Value::from(*lot), Value::from(*delta), Value::from(*at)]),
    );
    let asked = [debits.balances.len(), debits.lots.len(), debits.entries.len(), lines.len()];
    if backend != DbBackend::Postgres {
        // Each update is counted by `changes()` after it: a `RETURNING` clause is one more
        // temporary b-tree in SQLite.
        let balances = if balances_alone {
            "UPDATE accounts SET balance_micros = ? WHERE id = ? AND balance_micros = ?;".to_string()
        } else {
            format!(
                "WITH d(id, before, after) AS (VALUES {balance_rows}) \
                 UPDATE accounts SET balance_micros = d.after FROM d \
                 WHERE accounts.id = d.id AND accounts.balance_micros = d.before;"
            )
        };
        let lots = if lot_alone {
            "UPDATE lots SET remaining_micros = ?, \"open\" = (? <> 0) WHERE id = ? AND remaining_micros = ?;".to_string()
        } else {
            format!(
                "WITH v(id, old, new) AS (VALUES {lot_rows}) \
                 UPDATE lots SET remaining_micros = v.new, \"open\" = (v.new <> 0) FROM v \
                 WHERE lots.id = v.id AND lots.remaining_micros = v.old;"
            )
        };
        let parts = format!(
            "{balances} SELECT 0 AS part, changes() AS wrote; \
             {lots} SELECT 1 AS part, changes() AS wrote; \
             INSERT INTO journal_entries (id, account_id, kind, amount_micros, effective_at, created_at, operation, \
                 idempotency_key, feature, model, reason, actor, detail, metadata, balance_after_micros) VALUES {entry_rows}; \
             INSERT INTO journal_lines (entry_id, lot_id, delta_micros, created_at) VALUES {line_rows}; "
        );
        return Prepared { backend, parts, values, asked };
    }
    values.push(Value::from(crate::feed::CHANNEL));
    let channel = values.len();
    let parts = format!(
        "WITH d(id, before, after) AS (VALUES {balance_rows}), \
         b AS (UPDATE accounts SET balance_micros = d.after FROM d \
               WHERE accounts.id = d.id AND accounts.balance_micros = d.before \
               RETURNING accounts.id, pg_notify(${channel}, CAST(accounts.id AS TEXT))), \
         v(id, old, new) AS (VALUES {lot_rows}), \
         moved AS (UPDATE lots SET remaining_micros = v.new, \"open\" = (v.new <> 0) FROM v \
                   WHERE lots.id = v.id AND lots.remaining_micros = v.old RETURNING lots.id), \
         e AS (INSERT INTO journal_entries (id, account_id, kind, amount_micros, effective_at, created_at, operation, \
                   idempotency_key, feature, model, reason, actor, detail, metadata, balance_after_micros) \
               VALUES {entry_rows} RETURNING 1), \
         l AS (INSERT INTO journal_lines (entry_id, lot_id, delta_micros, created_at) VALUES {line_rows} RETURNING 1), "
    );
    Prepared { backend, parts, values, asked }
}

/// Writes `debits` (`prepare`) and `records` in one statement, or one call on SQLite (`fit`
/// first).
pub async fn write(conn: &impl ConnectionTrait, debits: Prepared, records: &[NewRecord<'_>]) -> Result<(), DbErr> {
    let Prepared { backend, parts, mut values, asked } = debits;
    assert_eq!(conn.get_database_backend(), backend, "prepared for another database");
    // Every fresh spend keeps its outcome, so a batch with debits has records.
    assert!(!records.is_empty(), "debits come with the records of the keys that made them");
    let key_rows = super::values_rows(backend, records.len(), PER_RECORD, values.len());
    for r in records {
        values.extend([
            Value::from(r.account_id),
            Value::from(r.operation),
            Value::from(r.key),
            Value::from(r.request_hash),
            Value::from(r.outcome.as_str()),
            Value::from(r.now),
            Value::from(r.expires_at),
        ]);
    }
    if backend != DbBackend::Postgres {
        let sql = format!(
            "{parts}INSERT INTO idempotency_keys (account_id, operation, key, request_hash, outcome, created_at, expires_at) \
             VALUES {key_rows}"
        );
        let mut wrote = [0_usize; 2];
        for row in conn.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await? {
            let part = usize::try_from(row.try_get::<i32>("", "part")?).ok().filter(|p| *p < 2);
            let rows = usize::try_from(row.try_get::<i64>("", "wrote")?).unwrap_or(usize::MAX);
            let part = &mut wrote[part.ok_or_else(|| DbErr::Custom("the debits returned a row of no part".into()))?];
            *part = part.saturating_add(rows);
        }
        if wrote != [asked[0], asked[1]] {
            // A balance or a lot no longer what was read under the lock: nothing may commit.
            return Err(DbErr::Custom(format!("the debits wrote {wrote:?} rows (balances, lots), not {:?}", &asked[..2])));
        }
        return Ok(());
    }
    let keys = format!(
        "k AS (INSERT INTO idempotency_keys (account_id, operation, key, request_hash, outcome, created_at, expires_at) \
               VALUES {key_rows} RETURNING 1)"
    );
    let sql = format!(
        "{parts}{keys} SELECT (SELECT count(*) FROM b), (SELECT count(*) FROM moved), (SELECT count(*) FROM e), \
                (SELECT count(*) FROM l), (SELECT count(*) FROM k)"
    );
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
        .await?
        .ok_or_else(|| DbErr::Custom("the debits' statement returned no row".into()))?;
    let wrote: Vec<i64> = (0..5).map(|i| row.try_get_by_index::<i64>(i)).collect::<Result<_, _>>()?;
    let asked = [asked[0], asked[1], asked[2], asked[3], records.len()];
    if wrote.iter().zip(asked).any(|(wrote, asked)| *wrote != asked as i64) {
        // A balance or a lot no longer what was read under the lock: nothing may commit.
        return Err(DbErr::Custom(format!("the debits wrote {wrote:?} rows (balances, lots, entries, lines, keys), not {asked:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{DbBackend, fit};

    #[test]
    fn a_full_batch_fits_and_a_spend_over_thousands_of_lots_does_not() {
        // 64 spends (`service::batch::MAX_BATCH`), each over 20 lots, with their keys.
        for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
            assert!(fit(backend, 64, 64 * 20, 64));
            assert!(!fit(backend, 1, 10_000, 1));
        }
        assert!(fit(DbBackend::Postgres, 1, 5_000, 1) && !fit(DbBackend::Sqlite, 1, 5_000, 1));
    }
}
