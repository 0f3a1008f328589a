//! Whole-table reads and writes for `credits export` and `credits import`: which tables a
//! ledger is made of, in an order that loads (parents before children), read a page at a time
//! by primary key and written back a batch at a time with their ids.
//!
//! A row travels as its entity's serde form (`entity::*::Model`): column names as keys, integers
//! (micro-credits) as JSON integers, instants as RFC 3339 text. Exact on both databases.

use crate::entity::{
    account, ad_reward, asking_price, auto_topup, bid_preference, claim, container, coupon, coupon_redemption, idempotency_key,
    journal_entry, journal_line, lot, market_job, meter, provider, purchase, referral, reservation, settlement, spend_limit,
    spend_limit_hold, spend_usage, usage_line,
};
use crate::store::journal::every_month;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, IdenStatic, IntoActiveModel, Iterable, ModelTrait, PrimaryKeyToColumn,
    PrimaryKeyTrait, QueryFilter, QueryOrder, QuerySelect, Statement, Value,
};
use std::collections::{HashMap, HashSet};

/// Calls the generic function `$f` with the entity of `$table` and awaits it when asked.
macro_rules! dispatch {
    ($table:expr, $f:ident ( $($arg:expr),* ) $(. $await:ident)?) => {
        match $table {
            Table::Accounts => $f::<account::Entity>($($arg),*)$(.$await)?,
            Table::Lots => $f::<lot::Entity>($($arg),*)$(.$await)?,
            Table::JournalEntries => $f::<journal_entry::Entity>($($arg),*)$(.$await)?,
            Table::JournalLines => $f::<journal_line::Entity>($($arg),*)$(.$await)?,
            Table::Purchases => $f::<purchase::Entity>($($arg),*)$(.$await)?,
            Table::IdempotencyKeys => $f::<idempotency_key::Entity>($($arg),*)$(.$await)?,
            Table::Claims => $f::<claim::Entity>($($arg),*)$(.$await)?,
            Table::Coupons => $f::<coupon::Entity>($($arg),*)$(.$await)?,
            Table::CouponRedemptions => $f::<coupon_redemption::Entity>($($arg),*)$(.$await)?,
            Table::Referrals => $f::<referral::Entity>($($arg),*)$(.$await)?,
            Table::AdRewards => $f::<ad_reward::Entity>($($arg),*)$(.$await)?,
            Table::Reservations => $f::<reservation::Entity>($($arg),*)$(.$await)?,
            Table::Containers => $f::<container::Entity>($($arg),*)$(.$await)?,
            Table::Meters => $f::<meter::Entity>($($arg),*)$(.$await)?,
            Table::Settlements => $f::<settlement::Entity>($($arg),*)$(.$await)?,
            Table::UsageLines => $f::<usage_line::Entity>($($arg),*)$(.$await)?,
            Table::Providers => $f::<provider::Entity>($($arg),*)$(.$await)?,
            Table::AskingPrices => $f::<asking_price::Entity>($($arg),*)$(.$await)?,
            Table::BidPreferences => $f::<bid_preference::Entity>($($arg),*)$(.$await)?,
            Table::MarketJobs => $f::<market_job::Entity>($($arg),*)$(.$await)?,
            Table::SpendLimits => $f::<spend_limit::Entity>($($arg),*)$(.$await)?,
            Table::AutoTopups => $f::<auto_topup::Entity>($($arg),*)$(.$await)?,
            Table::SpendUsage => $f::<spend_usage::Entity>($($arg),*)$(.$await)?,
            Table::SpendLimitHolds => $f::<spend_limit_hold::Entity>($($arg),*)$(.$await)?,
        }
    };
}

/// The tables of a ledger, in the order an import loads them: every table a row refers to
/// (by foreign key or by an id the service follows) comes before it.
///
/// Left out, as operational rather than ledger state (docs/architecture.md, "Export and
/// import"): the webhook outbox, job runs, audit runs, the admin log, console links, persisted
/// queries, coupon failures (a 1-hour throttle), the claim rate counters (a 1-minute window),
/// received Stripe events, market rate snapshots (derived every 5 minutes) and the test clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Accounts,
    Lots,
    JournalEntries,
    JournalLines,
    Purchases,
    IdempotencyKeys,
    Claims,
    Coupons,
    CouponRedemptions,
    Referrals,
    AdRewards,
    Reservations,
    Containers,
    Meters,
    Settlements,
    UsageLines,
    Providers,
    AskingPrices,
    BidPreferences,
    MarketJobs,
    /// The caps users set (issue 26).
    SpendLimits,
    AutoTopups,
    /// The spend limits' usage counters, so a restore goes on counting the periods it is in
    /// (a restore that counted from zero would let a user pass a cap by the day's usage).
    /// Keyed by (account, scope, period), not by an id: paged by position (`page`).
    SpendUsage,
    /// What each open hold counted, so that settling it on the restored deployment gives the
    /// room back. Keyed by (reservation, scope, period): paged by position.
    SpendLimitHolds,
}

impl Table {
    /// Every table, in load order.
    pub const ALL: [Table; 24] = [
        Table::Accounts,
        Table::Lots,
        Table::JournalEntries,
        Table::JournalLines,
        Table::Purchases,
        Table::IdempotencyKeys,
        Table::Claims,
        Table::Coupons,
        Table::CouponRedemptions,
        Table::Referrals,
        Table::AdRewards,
        Table::Reservations,
        Table::Containers,
        Table::Meters,
        Table::Settlements,
        Table::UsageLines,
        Table::Providers,
        Table::AskingPrices,
        Table::BidPreferences,
        Table::MarketJobs,
        Table::SpendLimits,
        Table::AutoTopups,
        Table::SpendUsage,
        Table::SpendLimitHolds,
    ];

    /// The table's name in the database, which is also its name in an export.
    pub fn name(self) -> &'static str {
        dispatch!(self, table_name())
    }

    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Which rows of this table an export since `since` takes: those created at or after it
    /// (by the column that records it), a child table's rows by their parent's. `None`: the
    /// table has no creation instant (the market's asking prices and bids, the meters), so an
    /// incremental export leaves it out.
    fn since_filter(self, since: DateTime<Utc>) -> Option<SimpleExpr> {
        let at_or_after = |column: &str| Expr::col(Alias::new(column)).gte(since);
        let created = match self {
            Table::Accounts
            | Table::JournalEntries
            | Table::Purchases
            | Table::IdempotencyKeys
            | Table::Claims
            | Table::Coupons
            | Table::CouponRedemptions
            | Table::Referrals
            | Table::Reservations
            | Table::Containers
            | Table::Settlements
            | Table::Providers
            | Table::MarketJobs
            | Table::SpendLimits => "created_at",
            // A setting is rewritten in place: an export since takes the ones changed since.
            Table::AutoTopups => "updated_at",
            Table::Lots => "granted_at",
            Table::AdRewards => "verified_at",
            Table::JournalLines => return Some(Expr::col(Alias::new("entry_id")).in_subquery(entries_since(since))),
            Table::UsageLines => {
                let settlements = Query::select()
                    .column(Alias::new("id"))
                    .from(Alias::new("settlements"))
                    .and_where(at_or_after("created_at"))
                    .to_owned();
                return Some(Expr::col(Alias::new("settlement_id")).in_subquery(settlements));
            }
            // Counters move in place and have no creation instant: a feed of what changed
            // since has nothing to say about them.
            Table::Meters | Table::AskingPrices | Table::BidPreferences | Table::SpendUsage | Table::SpendLimitHolds => return None,
        };
        Some(at_or_after(created))
    }
}

/// The ids of the journal entries recorded at or after `since`.
fn entries_since(since: DateTime<Utc>) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(Alias::new("id"))
        .from(Alias::new(crate::store::journal_months::ENTRIES_ALL))
        .and_where(Expr::col(Alias::new("created_at")).gte(since))
        .to_owned()
}

fn table_name<E: EntityTrait>() -> &'static str {
    E::default().as_str()
}

/// The one primary-key column of `E`: every exported table has a single `i64` key.
fn key_column<E: EntityTrait>() -> Result<E::Column, DbErr> {
    E::PrimaryKey::iter()
        .next()
        .map(|key| key.into_column())
        .ok_or_else(|| DbErr::Custom(format!("{} has no primary key", table_name::<E>())))
}

/// One page of a table's rows in key order, each as its JSON text, and the last key read
/// (where the next page starts; none when the page is empty).
#[derive(Debug, Default)]
pub struct RowPage {
    pub rows: Vec<String>,
    pub last_key: Option<i64>,
}

/// At most `limit` rows of `table` with a key above `after` (all from the start when none), in
/// key order (for the tables keyed by several columns, `after` is a position in that order:
/// `page_by_position`); only those of an incremental export since `since` when given. `None` when the
/// table is not part of an export since `since` at all.
pub async fn page(
    conn: &impl ConnectionTrait,
    table: Table,
    since: Option<DateTime<Utc>>,
    after: Option<i64>,
    limit: u64,
) -> Result<Option<RowPage>, DbErr> {
    let filter = match since {
        None => None,
        Some(since) => match table.since_filter(since) {
            Some(filter) => Some(filter),
            None => return Ok(None),
        },
    };
    match table {
        Table::SpendUsage => {
            let order = [spend_usage::Column::AccountId, spend_usage::Column::Scope, spend_usage::Column::PeriodKey];
            page_by_position::<spend_usage::Entity>(conn, &order, after, limit).await.map(Some)
        }
        Table::SpendLimitHolds => {
            let order = [spend_limit_hold::Column::ReservationId, spend_limit_hold::Column::Scope, spend_limit_hold::Column::PeriodKey];
            page_by_position::<spend_limit_hold::Entity>(conn, &order, after, limit).await.map(Some)
        }
        _ => dispatch!(table, page_of(conn, filter, after, limit).await).map(Some),
    }
}

/// A page of a table whose key is several columns: in the key's order, from the `after`-th row
/// (none: the first), and `last_key` the position where the next page starts. The export reads
/// in one snapshot transaction, so positions do not move between pages; these tables hold a
/// few rows per account and period, so the offset stays small.
async fn page_by_position<E>(conn: &impl ConnectionTrait, order: &[E::Column], after: Option<i64>, limit: u64) -> Result<RowPage, DbErr>
where
    E: EntityTrait,
    E::Model: serde::Serialize + Sync,
{
    let start = after.unwrap_or(0);
    let mut query = E::find();
    for column in order {
        query = query.order_by_asc(*column);
    }
    let offset = u64::try_from(start).map_err(|_| DbErr::Custom(format!("{}: a negative position", table_name::<E>())))?;
    let models = query.offset(offset).limit(limit).all(conn).await?;
    let rows = models.iter().map(|m| serde_json::to_string(m).map_err(|e| DbErr::Json(e.to_string()))).collect::<Result<Vec<_>, _>>()?;
    let last_key = (!rows.is_empty()).then(|| start + rows.len() as i64);
    Ok(RowPage { rows, last_key })
}

async fn page_of<E>(conn: &impl ConnectionTrait, filter: Option<SimpleExpr>, after: Option<i64>, limit: u64) -> Result<RowPage, DbErr>
where
    E: EntityTrait,
    E::Model: serde::Serialize + Sync,
{
    let key = key_column::<E>()?;
    let mut query = every_month(E::find());
    if let Some(filter) = filter {
        query = query.filter(filter);
    }
    if let Some(after) = after {
        query = query.filter(key.gt(after));
    }
    let models = query.order_by_asc(key).limit(limit).all(conn).await?;
    let mut page = RowPage { rows: Vec::with_capacity(models.len()), last_key: None };
    for model in &models {
        page.last_key = Some(match model.get(key) {
            Value::BigInt(Some(id)) => id,
            other => return Err(DbErr::Custom(format!("{}: a key that is not an i64: {other:?}", table_name::<E>()))),
        });
        page.rows.push(serde_json::to_string(model).map_err(|e| DbErr::Json(e.to_string()))?);
    }
    Ok(page)
}

/// Whether `table` holds no row.
pub async fn is_empty(conn: &impl ConnectionTrait, table: Table) -> Result<bool, DbErr> {
    dispatch!(table, is_empty_of(conn).await)
}

async fn is_empty_of<E: EntityTrait>(conn: &impl ConnectionTrait) -> Result<bool, DbErr> {
    let key = key_column::<E>()?;
    Ok(every_month(E::find()).select_only().column(key).limit(1).into_tuple::<i64>().one(conn).await?.is_none())
}

/// Why a batch of exported rows could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A row that is not this table's row (a missing column, a wrong type).
    #[error("a {table} row does not fit the table: {source}")]
    BadRow { table: &'static str, source: serde_json::Error },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Inserts `rows` (each the serde form of one of `table`'s rows, ids included) in one
/// statement. The caller bounds the batch: the database's limit on parameters is
/// rows x columns (SQLite 32,766, PostgreSQL 65,535).
pub async fn insert_batch(conn: &impl ConnectionTrait, table: Table, rows: Vec<serde_json::Value>) -> Result<u64, LoadError> {
    if rows.is_empty() {
        return Ok(0);
    }
    dispatch!(table, insert_of(conn, rows).await)
}

async fn insert_of<E>(conn: &impl ConnectionTrait, rows: Vec<serde_json::Value>) -> Result<u64, LoadError>
where
    E: EntityTrait,
    E::Model: serde::de::DeserializeOwned + IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: Send,
{
    let count = rows.len() as u64;
    let models = rows
        .into_iter()
        .map(|row| serde_json::from_value::<E::Model>(row).map(IntoActiveModel::into_active_model))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| LoadError::BadRow { table: table_name::<E>(), source })?;
    E::insert_many(models).exec_without_returning(conn).await?;
    Ok(count)
}

/// After rows were inserted with their own ids: on PostgreSQL, moves the table's id sequence
/// past the largest id, so the next row the service inserts does not collide. SQLite's
/// AUTOINCREMENT keeps its counter (`sqlite_sequence`) up to date by itself.
pub async fn reset_sequence(conn: &impl ConnectionTrait, table: Table) -> Result<(), DbErr> {
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    dispatch!(table, reset_sequence_of(conn).await)
}

async fn reset_sequence_of<E: EntityTrait>(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    if !<E::PrimaryKey as PrimaryKeyTrait>::auto_increment() {
        return Ok(());
    }
    let table = table_name::<E>();
    let key = key_column::<E>()?;
    let key = key.as_str();
    // `is_called = false`: the next value is exactly MAX + 1 (or 1 on an empty table).
    let sql =
        format!("SELECT setval(pg_get_serial_sequence('{table}', '{key}'), COALESCE((SELECT MAX({key}) FROM {table}), 0) + 1, false)");
    conn.execute_raw(Statement::from_string(DbBackend::Postgres, sql)).await?;
    Ok(())
}

/// One journal line with what an accountant reads beside it: its entry, the account's own id
/// and the class of the lot it moved.
#[derive(Debug, Clone)]
pub struct LedgerLine {
    pub line: journal_line::Model,
    pub entry: journal_entry::Model,
    pub account_external_id: String,
    pub lot_class: String,
}

/// At most `limit` journal lines with an id above `after`, in id order, each with its entry,
/// account and lot (three more indexed lookups per page, by primary key); only the lines of
/// entries recorded at or after `since` when given.
pub async fn ledger_lines(
    conn: &impl ConnectionTrait,
    since: Option<DateTime<Utc>>,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<LedgerLine>, DbErr> {
    let mut query = every_month(journal_line::Entity::find());
    if let Some(since) = since {
        query = query.filter(journal_line::Column::EntryId.in_subquery(entries_since(since)));
    }
    if let Some(after) = after {
        query = query.filter(journal_line::Column::Id.gt(after));
    }
    let lines = query.order_by_asc(journal_line::Column::Id).limit(limit).all(conn).await?;
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    let entry_ids: HashSet<i64> = lines.iter().map(|l| l.entry_id).collect();
    let lot_ids: HashSet<i64> = lines.iter().map(|l| l.lot_id).collect();
    let entries: HashMap<i64, journal_entry::Model> = every_month(journal_entry::Entity::find())
        .filter(journal_entry::Column::Id.is_in(entry_ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    let account_ids: HashSet<i64> = entries.values().map(|e| e.account_id).collect();
    let accounts: HashMap<i64, String> = account::Entity::find()
        .select_only()
        .columns([account::Column::Id, account::Column::ExternalId])
        .filter(account::Column::Id.is_in(account_ids))
        .into_tuple::<(i64, String)>()
        .all(conn)
        .await?
        .into_iter()
        .collect();
    let lots: HashMap<i64, String> = lot::Entity::find()
        .select_only()
        .columns([lot::Column::Id, lot::Column::Class])
        .filter(lot::Column::Id.is_in(lot_ids))
        .into_tuple::<(i64, String)>()
        .all(conn)
        .await?
        .into_iter()
        .collect();
    lines
        .into_iter()
        .map(|line| {
            let entry =
                entries.get(&line.entry_id).cloned().ok_or_else(|| DbErr::RecordNotFound(format!("journal entry {}", line.entry_id)))?;
            let account_external_id =
                accounts.get(&entry.account_id).cloned().ok_or_else(|| DbErr::RecordNotFound(format!("account {}", entry.account_id)))?;
            let lot_class = lots.get(&line.lot_id).cloned().ok_or_else(|| DbErr::RecordNotFound(format!("lot {}", line.lot_id)))?;
            Ok(LedgerLine { line, entry, account_external_id, lot_class })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_named_once_and_found_by_its_name() {
        let names: HashSet<&str> = Table::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names.len(), Table::ALL.len());
        for table in Table::ALL {
            assert_eq!(Table::from_name(table.name()), Some(table));
        }
        assert_eq!(Table::from_name("outbox"), None, "the outbox is not ledger state");
    }

    #[test]
    fn load_order_is_the_declared_order() {
        let mut sorted = Table::ALL;
        sorted.sort();
        assert_eq!(sorted, Table::ALL, "import checks rows come in this order by comparing tables");
    }
}
