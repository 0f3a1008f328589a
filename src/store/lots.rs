use crate::entity::lot;
use crate::ledger::{Credits, Features, Lot, LotClass, LotSource, Priority};
use crate::store::keyset::{self, Page, Window};
use crate::store::pg_array;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, Set};

pub struct NewLot<'a> {
    pub account_id: i64,
    pub class: LotClass,
    pub source: LotSource,
    pub amount: Credits,
    pub granted_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub origin_kind: Option<&'a str>,
    pub origin_id: Option<String>,
    pub priority: Priority,
    /// A future-effective grant's start (`Lot::effective_at`).
    pub effective_at: Option<DateTime<Utc>>,
    /// A scoped grant's features (`Lot::features`).
    pub features: Option<Features>,
}

pub async fn insert(conn: &impl ConnectionTrait, new: NewLot<'_>) -> Result<lot::Model, DbErr> {
    active(new).insert(conn).await
}

fn active(new: NewLot<'_>) -> lot::ActiveModel {
    assert!(!new.amount.is_zero(), "a lot is never granted empty");
    lot::ActiveModel {
        account_id: Set(new.account_id),
        class: Set(new.class.as_str().to_string()),
        source: Set(new.source.as_str().to_string()),
        granted_micros: Set(new.amount.micros()),
        remaining_micros: Set(new.amount.micros()),
        granted_at: Set(new.granted_at),
        expires_at: Set(new.expires_at),
        origin_kind: Set(new.origin_kind.map(str::to_string)),
        origin_id: Set(new.origin_id),
        open: Set(true),
        priority: Set(new.priority.get().into()),
        effective_at: Set(new.effective_at),
        features: Set(new.features.as_ref().map(|f| serde_json::to_string(f).expect("names serialize"))),
        ..Default::default()
    }
}

/// Moves a lot's expiry (an operator's `changeLotExpiry`). The expiring-credits notice is due
/// again: the one sent, if any, named the old instant.
pub async fn set_expiry(conn: &impl ConnectionTrait, lot_id: i64, expires_at: DateTime<Utc>) -> Result<(), DbErr> {
    lot::Entity::update_many()
        .col_expr(lot::Column::ExpiresAt, sea_orm::sea_query::Expr::value(expires_at))
        .col_expr(lot::Column::ExpiryNoticeSent, sea_orm::sea_query::Expr::value(false))
        .filter(lot::Column::Id.eq(lot_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Lots that still hold credits, including any past expiry whose write-off has not run yet:
/// callers filter by their instant with the pure rules.
pub async fn open_for_account(conn: &impl ConnectionTrait, account_id: i64) -> Result<Vec<lot::Model>, DbErr> {
    lot::Entity::find()
        .filter(lot::Column::AccountId.eq(account_id))
        .filter(lot::Column::Open.eq(true))
        .order_by_asc(lot::Column::Id)
        .all(conn)
        .await
}

/// An account's open lots of one source with credits left and not expired at `now`, newest
/// first, at most `limit`: the coupon lots of the account's benefits.
pub async fn spendable_of_source(
    conn: &impl ConnectionTrait,
    account_id: i64,
    source: LotSource,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<lot::Model>, DbErr> {
    use sea_orm::Condition;
    lot::Entity::find()
        .filter(lot::Column::AccountId.eq(account_id))
        .filter(lot::Column::Open.eq(true))
        .filter(lot::Column::Source.eq(source.as_str()))
        .filter(lot::Column::RemainingMicros.gt(0))
        .filter(Condition::any().add(lot::Column::ExpiresAt.is_null()).add(lot::Column::ExpiresAt.gt(now)))
        .order_by_desc(lot::Column::Id)
        .limit(limit)
        .all(conn)
        .await
}

/// An account's lots, newest first; open ones only unless `include_closed`.
fn of_account(account_id: i64, include_closed: bool) -> Select<lot::Entity> {
    let query = lot::Entity::find().filter(lot::Column::AccountId.eq(account_id));
    if include_closed { query } else { query.filter(lot::Column::Open.eq(true)) }
}

pub async fn page(conn: &impl ConnectionTrait, account_id: i64, include_closed: bool, window: &Window) -> Result<Page<lot::Model>, DbErr> {
    keyset::newest_first(conn, of_account(account_id, include_closed), lot::Column::Id, window).await
}

pub async fn count(conn: &impl ConnectionTrait, account_id: i64, include_closed: bool) -> Result<u64, DbErr> {
    keyset::count(conn, of_account(account_id, include_closed)).await
}

/// Sets a lot's remaining amount, closing it at zero. The old value in the filter makes a lost
/// update impossible even if a caller forgot the account lock.
pub async fn set_remaining(conn: &impl ConnectionTrait, lot_id: i64, old: Credits, new: Credits) -> Result<(), DbErr> {
    use sea_orm::sea_query::Expr;
    let result = lot::Entity::update_many()
        .col_expr(lot::Column::RemainingMicros, Expr::value(new.micros()))
        .col_expr(lot::Column::Open, Expr::value(!new.is_zero()))
        .filter(lot::Column::Id.eq(lot_id))
        .filter(lot::Column::RemainingMicros.eq(old.micros()))
        .exec(conn)
        .await?;
    if result.rows_affected != 1 {
        return Err(DbErr::RecordNotUpdated);
    }
    Ok(())
}

/// Rows changed per statement by `set_remaining_many`: bounds its bound parameters.
const LOTS_PER_UPDATE: usize = 1000;

/// `set_remaining` for many lots: (lot id, old, new), ids distinct. The changes are joined as a
/// list: a `VALUES` list, one statement per `LOTS_PER_UPDATE`, or for a large batch on
/// PostgreSQL three arrays in one statement (`store::pg_array`). Every row must still hold its
/// old value.
pub async fn set_remaining_many(conn: &impl ConnectionTrait, changes: &[(i64, Credits, Credits)]) -> Result<(), DbErr> {
    use sea_orm::{Statement, Value};
    let backend = conn.get_database_backend();
    if pg_array::for_rows(backend, changes.len()) {
        let sql = format!(
            "WITH v(id, old, new) AS ({CHANGES_UNNEST}) \
             UPDATE lots SET remaining_micros = v.new, \"open\" = (v.new <> 0) FROM v \
             WHERE lots.id = v.id AND lots.remaining_micros = v.old"
        );
        let result = conn.execute_raw(Statement::from_sql_and_values(backend, sql, changes_arrays(changes))).await?;
        if result.rows_affected() != changes.len() as u64 {
            return Err(DbErr::RecordNotUpdated);
        }
        return Ok(());
    }
    for chunk in changes.chunks(LOTS_PER_UPDATE) {
        let values: Vec<Value> =
            chunk.iter().flat_map(|(id, old, new)| [Value::from(*id), Value::from(old.micros()), Value::from(new.micros())]).collect();
        let sql = format!(
            "WITH v(id, old, new) AS (VALUES {}) \
             UPDATE lots SET remaining_micros = v.new, \"open\" = (v.new <> 0) FROM v \
             WHERE lots.id = v.id AND lots.remaining_micros = v.old",
            super::values_rows(backend, chunk.len(), 3, 0)
        );
        let result = conn.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
        if result.rows_affected() != chunk.len() as u64 {
            return Err(DbErr::RecordNotUpdated);
        }
    }
    Ok(())
}

/// PostgreSQL: the rows of `set_remaining_many` (id, old, new) out of its three arrays, `$1` to
/// `$3` (`changes_arrays`).
pub(crate) const CHANGES_UNNEST: &str = "SELECT * FROM UNNEST(CAST($1 AS bigint[]), CAST($2 AS bigint[]), CAST($3 AS bigint[]))";

/// The three array parameters of `CHANGES_UNNEST`.
pub(crate) fn changes_arrays(changes: &[(i64, Credits, Credits)]) -> Vec<sea_orm::Value> {
    vec![
        pg_array::of(changes.iter().map(|(id, _, _)| *id)),
        pg_array::of(changes.iter().map(|(_, old, _)| old.micros())),
        pg_array::of(changes.iter().map(|(_, _, new)| new.micros())),
    ]
}

/// Lots inserted per statement by `insert_many` in the `VALUES` form: bounds its bound
/// parameters.
const LOTS_PER_INSERT: usize = 1000;

/// `insert` for many lots, one statement per `LOTS_PER_INSERT`, or for a large batch on
/// PostgreSQL one statement of arrays (`unnest_insert`); the rows come back in the order of
/// `new`. Each lot's (account, origin kind, origin id) must be distinct among them: that is how
/// the inserted rows are matched to the requests (RETURNING promises no order).
pub async fn insert_many(conn: &impl ConnectionTrait, new: Vec<NewLot<'_>>) -> Result<Vec<lot::Model>, DbErr> {
    type Origin = (i64, Option<String>, Option<String>);
    let origin_of = |new: &NewLot<'_>| -> Origin { (new.account_id, new.origin_kind.map(str::to_string), new.origin_id.clone()) };
    let wanted: Vec<Origin> = new.iter().map(origin_of).collect();
    let mut inserted: std::collections::HashMap<Origin, lot::Model> = std::collections::HashMap::with_capacity(new.len());
    let mut keep = |model: lot::Model| {
        let origin = (model.account_id, model.origin_kind.clone(), model.origin_id.clone());
        assert!(inserted.insert(origin, model).is_none(), "lots inserted together have distinct origins");
    };
    if pg_array::for_rows(conn.get_database_backend(), new.len()) {
        unnest_insert(conn, &new).await?.into_iter().for_each(&mut keep);
    } else {
        let rows: Vec<lot::ActiveModel> = new.into_iter().map(active).collect();
        for chunk in rows.chunks(LOTS_PER_INSERT) {
            lot::Entity::insert_many(chunk.to_vec()).exec_with_returning(conn).await?.into_iter().for_each(&mut keep);
        }
    }
    Ok(wanted.iter().map(|origin| inserted.remove(origin).expect("every lot asked for was inserted")).collect())
}

/// PostgreSQL: `insert_many`'s rows in one statement, one array per column; the same columns as
/// `active` sets, the others (`expiry_notice_sent`) their defaults.
async fn unnest_insert(conn: &impl ConnectionTrait, new: &[NewLot<'_>]) -> Result<Vec<lot::Model>, DbErr> {
    use sea_orm::{DbBackend, FromQueryResult, Statement};
    assert!(new.iter().all(|l| !l.amount.is_zero()), "a lot is never granted empty");
    let features: Vec<Option<String>> =
        new.iter().map(|l| l.features.as_ref().map(|f| serde_json::to_string(f).expect("names serialize"))).collect();
    let values = vec![
        pg_array::of(new.iter().map(|l| l.account_id)),
        pg_array::of(new.iter().map(|l| l.class.as_str())),
        pg_array::of(new.iter().map(|l| l.source.as_str())),
        pg_array::of(new.iter().map(|l| l.amount.micros())),
        pg_array::of(new.iter().map(|l| l.granted_at)),
        pg_array::of(new.iter().map(|l| l.expires_at)),
        pg_array::of(new.iter().map(|l| l.origin_kind)),
        pg_array::of(new.iter().map(|l| l.origin_id.as_deref())),
        pg_array::of(new.iter().map(|l| i32::from(l.priority.get()))),
        pg_array::of(new.iter().map(|l| l.effective_at)),
        pg_array::of(features.iter().map(Option::as_deref)),
    ];
    let sql = "INSERT INTO lots (account_id, class, source, granted_micros, remaining_micros, granted_at, expires_at, \
               origin_kind, origin_id, \"open\", priority, effective_at, features) \
               SELECT account_id, class, source, amount, amount, granted_at, expires_at, origin_kind, origin_id, true, \
               priority, effective_at, features \
               FROM UNNEST(CAST($1 AS bigint[]), CAST($2 AS text[]), CAST($3 AS text[]), CAST($4 AS bigint[]), \
               CAST($5 AS timestamptz[]), CAST($6 AS timestamptz[]), CAST($7 AS text[]), CAST($8 AS text[]), \
               CAST($9 AS integer[]), CAST($10 AS timestamptz[]), CAST($11 AS text[])) \
               AS n(account_id, class, source, amount, granted_at, expires_at, origin_kind, origin_id, priority, effective_at, features) \
               RETURNING *";
    lot::Model::find_by_statement(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).all(conn).await
}

/// Open lots of any of these accounts, in id order.
pub async fn open_for_accounts(conn: &impl ConnectionTrait, account_ids: &[i64]) -> Result<Vec<lot::Model>, DbErr> {
    lot::Entity::find()
        .filter(lot::Column::AccountId.is_in(account_ids.iter().copied()))
        .filter(lot::Column::Open.eq(true))
        .order_by_asc(lot::Column::Id)
        .all(conn)
        .await
}

/// Open lots whose expiry instant has passed: the write-off queue, oldest expiry first. Ordered
/// by the index alone (`lots_open_expires`), so the scan stops at `limit`: a tie-break on the id
/// made PostgreSQL read and sort every due lot for each batch, a million of them at a month's end.
pub async fn due_for_expiry(conn: &impl ConnectionTrait, now: DateTime<Utc>, limit: u64) -> Result<Vec<lot::Model>, DbErr> {
    lot::Entity::find()
        .filter(lot::Column::Open.eq(true))
        .filter(lot::Column::ExpiresAt.lte(now))
        .order_by_asc(lot::Column::ExpiresAt)
        .limit(limit)
        .all(conn)
        .await
}

/// Open lots expiring in `(now, until]` whose expiry notice has not gone out, soonest first
/// (ties by id): one batch of `limit` for the expiring-credits notice.
pub async fn expiring_unannounced(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<lot::Model>, DbErr> {
    lot::Entity::find()
        .filter(lot::Column::Open.eq(true))
        .filter(lot::Column::ExpiryNoticeSent.eq(false))
        .filter(lot::Column::ExpiresAt.gt(now))
        .filter(lot::Column::ExpiresAt.lte(until))
        .order_by_asc(lot::Column::ExpiresAt)
        .order_by_asc(lot::Column::Id)
        .limit(limit)
        .all(conn)
        .await
}

/// Those of these lots whose expiry notice has not gone out, soonest expiry first, whatever
/// else changed since they were read.
pub async fn unannounced_among(conn: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<lot::Model>, DbErr> {
    lot::Entity::find()
        .filter(lot::Column::Id.is_in(ids.iter().copied()))
        .filter(lot::Column::ExpiryNoticeSent.eq(false))
        .order_by_asc(lot::Column::ExpiresAt)
        .all(conn)
        .await
}

/// Marks these lots' expiry as announced: no later notice names them again.
pub async fn mark_expiry_announced(conn: &impl ConnectionTrait, ids: &[i64]) -> Result<(), DbErr> {
    use sea_orm::sea_query::Expr;
    lot::Entity::update_many()
        .col_expr(lot::Column::ExpiryNoticeSent, Expr::value(true))
        .filter(lot::Column::Id.is_in(ids.iter().copied()))
        .exec(conn)
        .await?;
    Ok(())
}

/// The rules' view of a stored lot.
pub fn to_rule(model: &lot::Model) -> Result<Lot, DbErr> {
    let corrupt = |what: String| DbErr::Type(format!("lot {}: {what}", model.id));
    if model.granted_micros < 0 || model.remaining_micros < 0 {
        return Err(corrupt(format!("negative credits {} of {}", model.remaining_micros, model.granted_micros)));
    }
    Ok(Lot {
        id: model.id,
        class: model.class.parse().map_err(corrupt)?,
        source: model.source.parse().map_err(corrupt)?,
        granted: Credits::from_micros(model.granted_micros),
        remaining: Credits::from_micros(model.remaining_micros),
        granted_at: model.granted_at,
        expires_at: model.expires_at,
        priority: Priority::new(model.priority.into()).map_err(corrupt)?,
        effective_at: model.effective_at,
        features: model
            .features
            .as_deref()
            .map(|f| serde_json::from_str(f).map_err(|e| corrupt(format!("features {f:?}: {e}"))))
            .transpose()?,
    })
}

/// Lots of an account that came from a given origin (a purchase's bonus, ...).
pub async fn by_origin(conn: &impl ConnectionTrait, account_id: i64, kind: &str, id: &str) -> Result<Vec<lot::Model>, DbErr> {
    lot::Entity::find()
        .filter(lot::Column::AccountId.eq(account_id))
        .filter(lot::Column::OriginKind.eq(kind))
        .filter(lot::Column::OriginId.eq(id))
        .order_by_asc(lot::Column::Id)
        .all(conn)
        .await
}

/// A plan grant's `origin_kind`; its `origin_id` is the grant key (`ledger::plans::grant_key`).
/// A unique index on (account, grant key) among these lots is what makes a grant once per
/// period (migration 000034): the lot is its own claim.
pub const PLAN_ORIGIN: &str = "plan";

/// Which of these (account, grant key) pairs already have their plan lot, in one statement per
/// `PAIRS_PER_STATEMENT` on the partial unique index (`lots_plan_grant`), whose predicate the
/// query repeats as a literal so that the planner may use it.
pub async fn plan_grants_held(conn: &impl ConnectionTrait, pairs: &[(i64, &str)]) -> Result<Vec<(i64, String)>, DbErr> {
    use sea_orm::{Statement, Value};
    let backend = conn.get_database_backend();
    let mut held = Vec::new();
    for chunk in pairs.chunks(PAIRS_PER_STATEMENT) {
        let sql = format!(
            "SELECT l.account_id, l.origin_id FROM (VALUES {}) AS v JOIN lots l \
             ON l.account_id = v.column1 AND l.origin_kind = '{PLAN_ORIGIN}' AND l.origin_id = v.column2",
            super::values_rows(backend, chunk.len(), 2, 0)
        );
        let values: Vec<Value> = chunk.iter().flat_map(|(account, key)| [Value::from(*account), Value::from(*key)]).collect();
        for row in conn.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await? {
            held.push((row.try_get_by_index(0)?, row.try_get_by_index(1)?));
        }
    }
    Ok(held)
}

/// Pairs per statement of `plan_grants_held`: bounds its bound parameters.
const PAIRS_PER_STATEMENT: usize = 1000;

/// Lots by id, whatever their state (a reservation's lots, used up or expired since).
pub async fn by_ids(conn: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<lot::Model>, DbErr> {
    lot::Entity::find().filter(lot::Column::Id.is_in(ids.iter().copied())).order_by_asc(lot::Column::Id).all(conn).await
}
