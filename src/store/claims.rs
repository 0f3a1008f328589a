use crate::entity::claim;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

pub async fn find(conn: &impl ConnectionTrait, account_id: i64, kind: &str, period: &str) -> Result<Option<claim::Model>, DbErr> {
    claim::Entity::find()
        .filter(claim::Column::AccountId.eq(account_id))
        .filter(claim::Column::Kind.eq(kind))
        .filter(claim::Column::Period.eq(period))
        .one(conn)
        .await
}

pub async fn insert(
    conn: &impl ConnectionTrait,
    account_id: i64,
    kind: &str,
    period: &str,
    lot_id: Option<i64>,
    amount_micros: i64,
    now: DateTime<Utc>,
) -> Result<claim::Model, DbErr> {
    claim::ActiveModel {
        account_id: Set(account_id),
        kind: Set(kind.to_string()),
        period: Set(period.to_string()),
        lot_id: Set(lot_id),
        amount_micros: Set(amount_micros),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// The most recent periods claimed, newest first, at most `limit`.
pub async fn recent_periods(conn: &impl ConnectionTrait, account_id: i64, kind: &str, limit: u64) -> Result<Vec<String>, DbErr> {
    claim::Entity::find()
        .select_only()
        .column(claim::Column::Period)
        .filter(claim::Column::AccountId.eq(account_id))
        .filter(claim::Column::Kind.eq(kind))
        .order_by_desc(claim::Column::Period)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await
}

/// How many periods of `kind` starting with `prefix` (e.g. one day's "2026-11-23#n") are claimed.
pub async fn count_with_prefix(conn: &impl ConnectionTrait, account_id: i64, kind: &str, prefix: &str) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    claim::Entity::find()
        .filter(claim::Column::AccountId.eq(account_id))
        .filter(claim::Column::Kind.eq(kind))
        .filter(claim::Column::Period.starts_with(prefix))
        .count(conn)
        .await
}

/// Records a claim for a period unless one exists; true if this call recorded it. Racing
/// writers meet at the unique key, and exactly one of them wins.
pub async fn insert_if_absent(
    conn: &impl ConnectionTrait,
    account_id: i64,
    kind: &str,
    period: &str,
    amount_micros: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    use sea_orm::sea_query::OnConflict;
    let row = claim::ActiveModel {
        account_id: Set(account_id),
        kind: Set(kind.to_string()),
        period: Set(period.to_string()),
        lot_id: Set(None),
        amount_micros: Set(amount_micros),
        created_at: Set(now),
        ..Default::default()
    };
    let inserted = claim::Entity::insert(row)
        .on_conflict(OnConflict::columns([claim::Column::AccountId, claim::Column::Kind, claim::Column::Period]).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}

/// The claims of one kind for these (account, period) pairs, in one statement on the whole
/// unique index (as `idempotency::find_many`).
pub async fn find_many(conn: &impl ConnectionTrait, kind: &str, pairs: &[(i64, &str)]) -> Result<Vec<claim::Model>, DbErr> {
    use sea_orm::{DbBackend, Statement, Value};
    let mut found = Vec::new();
    let backend = conn.get_database_backend();
    for chunk in pairs.chunks(CLAIMS_PER_STATEMENT) {
        let kind_at = if backend == DbBackend::Postgres { format!("${}", 2 * chunk.len() + 1) } else { "?".to_string() };
        let sql = format!(
            "SELECT c.* FROM (VALUES {}) AS v JOIN claims c ON c.account_id = v.column1 AND c.kind = {kind_at} AND c.period = v.column2",
            super::values_rows(backend, chunk.len(), 2, 0)
        );
        let mut values: Vec<Value> =
            chunk.iter().flat_map(|(account_id, period)| [Value::from(*account_id), Value::from(*period)]).collect();
        values.push(Value::from(kind));
        found.extend(claim::Entity::find().from_raw_sql(Statement::from_sql_and_values(backend, sql, values)).all(conn).await?);
    }
    Ok(found)
}

/// Claims per statement of `find_many` and `insert_many`: bounds their bound parameters.
const CLAIMS_PER_STATEMENT: usize = 1000;

pub struct NewClaim<'a> {
    pub account_id: i64,
    pub kind: &'a str,
    pub period: String,
    pub lot_id: Option<i64>,
    pub amount_micros: i64,
    pub now: DateTime<Utc>,
}

/// `insert` for many claims, one statement per `CLAIMS_PER_STATEMENT`, or for a large batch on
/// PostgreSQL one statement of arrays (`store::pg_array`).
pub async fn insert_many(conn: &impl ConnectionTrait, claims: Vec<NewClaim<'_>>) -> Result<(), DbErr> {
    use super::pg_array;
    use sea_orm::Statement;
    let backend = conn.get_database_backend();
    if pg_array::for_rows(backend, claims.len()) {
        let values = vec![
            pg_array::of(claims.iter().map(|c| c.account_id)),
            pg_array::of(claims.iter().map(|c| c.kind)),
            pg_array::of(claims.iter().map(|c| c.period.as_str())),
            pg_array::of(claims.iter().map(|c| c.lot_id)),
            pg_array::of(claims.iter().map(|c| c.amount_micros)),
            pg_array::of(claims.iter().map(|c| c.now)),
        ];
        let sql = "INSERT INTO claims (account_id, kind, period, lot_id, amount_micros, created_at) \
                   SELECT * FROM UNNEST(CAST($1 AS bigint[]), CAST($2 AS text[]), CAST($3 AS text[]), CAST($4 AS bigint[]), \
                   CAST($5 AS bigint[]), CAST($6 AS timestamptz[]))";
        conn.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
        return Ok(());
    }
    let rows: Vec<claim::ActiveModel> = claims
        .into_iter()
        .map(|c| claim::ActiveModel {
            account_id: Set(c.account_id),
            kind: Set(c.kind.to_string()),
            period: Set(c.period),
            lot_id: Set(c.lot_id),
            amount_micros: Set(c.amount_micros),
            created_at: Set(c.now),
            ..Default::default()
        })
        .collect();
    for chunk in rows.chunks(CLAIMS_PER_STATEMENT) {
        claim::Entity::insert_many(chunk.to_vec()).exec_without_returning(conn).await?;
    }
    Ok(())
}
