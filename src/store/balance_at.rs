//! The reads behind `account.balanceAt(at:)`, each a bounded index lookup rather than a pass over
//! the account's journal (migration `m20261203_000020_add_balance_after` has the indexes):
//!
//! - `last_recorded`: the newest entry recorded at or before the instant, and the balance it
//!   recorded (`journal_account_recorded`);
//! - `expired_on_books`: lots that had expired by the instant but were still on the books in that
//!   entry's state, with what they held then: lots still open now past their expiry
//!   (`lots_account_open`) and lots whose write-off (EXPIRE, dated at the lot's expiry) or
//!   rollover (ROLLOVER, dated alike) was recorded after the instant
//!   (`journal_write_offs_recorded`, `journal_rollovers_recorded`), each read back to that entry
//!   by its later lines (`journal_lines_lot_entry`); a rollover's new lot is not past its expiry,
//!   so only the old lot's line counts;
//! - `upcoming_on_books`: lots granted by the instant to start after it, with what they held
//!   then (`lots_account_effective`, partial: only such lots are in it);
//! - `holds_on_books`: the parts of reservations made by the instant and not settled by it:
//!   held now (`reservations_account_status`) or settled after it (`reservations_account_settled`).
//!
//! The cost grows with the write-offs recorded after the instant (index entries only) and the
//! reservations settled after it, never with the entries before it: for an instant long past on
//! a busy account, those are what it reads (docs/benchmarks.md, "Balances over time").

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

pub use crate::ledger::balance_at::{HeldPart, Recorded};

/// `?` placeholders as the backend writes them (`$1`, `$2`, ... on PostgreSQL).
pub(crate) fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    if backend != DbBackend::Postgres {
        return Statement::from_sql_and_values(backend, sql, values);
    }
    let mut numbered = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            numbered.push_str(&format!("${n}"));
        } else {
            numbered.push(c);
        }
    }
    Statement::from_sql_and_values(backend, numbered, values)
}

/// The account's newest entry recorded at or before `at` (latest recorded instant, then highest
/// sequence); none if it had none by then.
pub async fn last_recorded(conn: &impl ConnectionTrait, account_id: i64, at: DateTime<Utc>) -> Result<Option<Recorded>, DbErr> {
    let sql = "SELECT id, balance_after_micros FROM journal_entries_all WHERE account_id = ? AND created_at <= ? \
               ORDER BY created_at DESC, id DESC LIMIT 1";
    let row = conn.query_one_raw(statement(conn.get_database_backend(), sql, vec![account_id.into(), at.into()])).await?;
    row.map(|r| Ok(Recorded { entry_id: r.try_get_by_index(0)?, balance_after_micros: r.try_get_by_index(1)? })).transpose()
}

/// Lots of the account whose expiry is at or before `at` and that still held credits in the
/// state after entry `entry_id`: (lot id, what it held then, in micros, more than zero). What a
/// lot held then is what it holds now less every line written to it after that entry.
pub async fn expired_on_books(
    conn: &impl ConnectionTrait,
    account_id: i64,
    at: DateTime<Utc>,
    entry_id: i64,
) -> Result<Vec<(i64, i64)>, DbErr> {
    // The write-offs' predicate repeats the partial index's word for word.
    let sql = "SELECT c.lot_id, CAST(l.remaining_micros - COALESCE((SELECT SUM(x.delta_micros) FROM journal_lines_all x \
                      WHERE x.lot_id = c.lot_id AND x.entry_id > ?), 0) AS BIGINT) AS held_then \
               FROM (SELECT o.id AS lot_id FROM lots o WHERE o.account_id = ? AND o.\"open\" = ? AND o.expires_at <= ? \
                     UNION \
                     SELECT jl.lot_id FROM journal_entries_all je JOIN journal_lines_all jl ON jl.entry_id = je.id \
                     WHERE je.account_id = ? AND je.kind = 'expire' AND je.created_at > ? AND je.effective_at <= ? \
                     UNION \
                     SELECT jl.lot_id FROM journal_entries_all je JOIN journal_lines_all jl ON jl.entry_id = je.id \
                     WHERE je.account_id = ? AND je.kind = 'rollover' AND je.created_at > ? AND je.effective_at <= ?) c \
               JOIN lots l ON l.id = c.lot_id \
               WHERE l.expires_at <= ?";
    let values = vec![
        entry_id.into(),
        account_id.into(),
        true.into(),
        at.into(),
        account_id.into(),
        at.into(),
        at.into(),
        account_id.into(),
        at.into(),
        at.into(),
        at.into(),
    ];
    lots_held_then(conn, sql, values).await
}

/// Lots of the account granted by `at` that start after it (and had not expired by it: an
/// upcoming lot an operator ended at once is in `expired_on_books`), with what they held in the
/// state after entry `entry_id`, more than zero.
pub async fn upcoming_on_books(
    conn: &impl ConnectionTrait,
    account_id: i64,
    at: DateTime<Utc>,
    entry_id: i64,
) -> Result<Vec<(i64, i64)>, DbErr> {
    let sql = "SELECT l.id, CAST(l.remaining_micros - COALESCE((SELECT SUM(x.delta_micros) FROM journal_lines_all x \
                      WHERE x.lot_id = l.id AND x.entry_id > ?), 0) AS BIGINT) AS held_then \
               FROM lots l WHERE l.account_id = ? AND l.effective_at > ? AND l.granted_at <= ? \
               AND (l.expires_at IS NULL OR l.expires_at > ?)";
    let values = vec![entry_id.into(), account_id.into(), at.into(), at.into(), at.into()];
    lots_held_then(conn, sql, values).await
}

/// Runs a query of (lot id, what it held then) and keeps the lots that held something.
async fn lots_held_then(conn: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Result<Vec<(i64, i64)>, DbErr> {
    let rows = conn.query_all_raw(statement(conn.get_database_backend(), sql, values)).await?;
    let mut lots = Vec::with_capacity(rows.len());
    for row in rows {
        let (lot_id, held_then): (i64, i64) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        if held_then > 0 {
            lots.push((lot_id, held_then));
        }
    }
    Ok(lots)
}

/// The parts of the account's reservations made at or before `at` and not settled by then: held
/// now, or settled after `at`. Each with its deadline and the expiry of the lot it came from.
pub async fn holds_on_books(conn: &impl ConnectionTrait, account_id: i64, at: DateTime<Utc>) -> Result<Vec<HeldPart>, DbErr> {
    let sql = "SELECT r.deadline, jl.delta_micros, l.expires_at \
               FROM (SELECT id, deadline, hold_entry_id FROM reservations \
                     WHERE account_id = ? AND status = 'held' AND created_at <= ? \
                     UNION \
                     SELECT id, deadline, hold_entry_id FROM reservations \
                     WHERE account_id = ? AND settled_at > ? AND created_at <= ?) r \
               JOIN journal_lines_all jl ON jl.entry_id = r.hold_entry_id \
               JOIN lots l ON l.id = jl.lot_id";
    let values = vec![account_id.into(), at.into(), account_id.into(), at.into(), at.into()];
    let rows = conn.query_all_raw(statement(conn.get_database_backend(), sql, values)).await?;
    rows.into_iter()
        .map(|row| {
            let delta: i64 = row.try_get_by_index(1)?;
            // A hold's lines take credits out of lots: negative.
            Ok(HeldPart { deadline: row.try_get_by_index(0)?, micros: -delta, lot_expires_at: row.try_get_by_index(2)? })
        })
        .collect()
}
