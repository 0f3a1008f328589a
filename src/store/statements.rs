//! The reads behind monthly statements (`service::statements`): the lots' credits at the month's
//! start, the month's entries a page at a time in sequence order, and whether a write-off of the
//! month is still to come. Months go by effective instant (`effective_at`), see
//! `ledger::statement`.

use crate::entity::journal_entry;
use crate::store::balance_at::statement;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

/// Each lot's credits at `from`: the sum of its lines in the account's entries effective before
/// `from`, for every lot with such a line (some may sum to zero). One aggregate in the
/// database: its cost grows with the account's history before `from`, its answer with the
/// number of lots.
pub async fn opening_by_lot(conn: &impl ConnectionTrait, account_id: i64, from: DateTime<Utc>) -> Result<Vec<(i64, i64)>, DbErr> {
    let sql = "SELECT jl.lot_id, CAST(SUM(jl.delta_micros) AS BIGINT) FROM journal_lines_all jl \
               JOIN journal_entries_all je ON je.id = jl.entry_id \
               WHERE je.account_id = ? AND je.effective_at < ? GROUP BY jl.lot_id ORDER BY jl.lot_id";
    let rows = conn.query_all_raw(statement(conn.get_database_backend(), sql, vec![account_id.into(), from.into()])).await?;
    rows.into_iter().map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?))).collect()
}

/// Up to `limit` of the account's entries effective in `[from, until)` with an id after
/// `after`, in sequence order (`journal_account_sequence`).
pub async fn entries_after(
    conn: &impl ConnectionTrait,
    account_id: i64,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<journal_entry::Model>, DbErr> {
    let mut query = crate::store::journal::every_month(journal_entry::Entity::find())
        .filter(journal_entry::Column::AccountId.eq(account_id))
        .filter(journal_entry::Column::EffectiveAt.gte(from))
        .filter(journal_entry::Column::EffectiveAt.lt(until));
    if let Some(after) = after {
        query = query.filter(journal_entry::Column::Id.gt(after));
    }
    query.order_by_asc(journal_entry::Column::Id).limit(limit).all(conn).await
}

/// How many of the account's lots expired before `until` still hold credits the expiry worker
/// has not written off: each such write-off will be an entry dated before `until`.
pub async fn write_offs_due(conn: &impl ConnectionTrait, account_id: i64, until: DateTime<Utc>) -> Result<i64, DbErr> {
    let sql = "SELECT CAST(COUNT(*) AS BIGINT) FROM lots WHERE account_id = ? AND \"open\" = ? AND remaining_micros > 0 AND expires_at < ?";
    let row = conn.query_one_raw(statement(conn.get_database_backend(), sql, vec![account_id.into(), true.into(), until.into()])).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0))
}
