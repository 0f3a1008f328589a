//! Stored outcomes of keyed operations, scoped to (account, operation, key).

use crate::entity::idempotency_key;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use sha2::{Digest, Sha256};

pub async fn find(
    conn: &impl ConnectionTrait,
    account_id: i64,
    operation: &str,
    key: &str,
) -> Result<Option<idempotency_key::Model>, DbErr> {
    idempotency_key::Entity::find()
        .filter(idempotency_key::Column::AccountId.eq(account_id))
        .filter(idempotency_key::Column::Operation.eq(operation))
        .filter(idempotency_key::Column::Key.eq(key))
        .one(conn)
        .await
}

pub struct NewRecord<'a> {
    pub account_id: i64,
    pub operation: &'a str,
    pub key: &'a str,
    pub request_hash: &'a str,
    pub outcome: String,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(conn: &impl ConnectionTrait, record: NewRecord<'_>) -> Result<(), DbErr> {
    row(record).insert(conn).await?;
    Ok(())
}

fn row(record: NewRecord<'_>) -> idempotency_key::ActiveModel {
    idempotency_key::ActiveModel {
        account_id: Set(record.account_id),
        operation: Set(record.operation.to_string()),
        key: Set(record.key.to_string()),
        request_hash: Set(record.request_hash.to_string()),
        outcome: Set(record.outcome),
        created_at: Set(record.now),
        expires_at: Set(record.expires_at),
        ..Default::default()
    }
}

/// The stored records of these (account, key) pairs of one operation, in one statement: each
/// pair is looked up on the whole unique index. (`key IN (...)`, or an `OR` of the pairs, let a
/// planner without statistics yet, on a young table, scan every key of the account and filter
/// them, so a busy account's spends slowed down as its keys piled up: docs/benchmarks.md.)
pub async fn find_many(conn: &impl ConnectionTrait, operation: &str, pairs: &[(i64, &str)]) -> Result<Vec<idempotency_key::Model>, DbErr> {
    use sea_orm::{DbBackend, Statement, Value};
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let backend = conn.get_database_backend();
    let operation_at = if backend == DbBackend::Postgres { format!("${}", 2 * pairs.len() + 1) } else { "?".to_string() };
    // VALUES names its columns column1, column2 on both databases.
    let sql = format!(
        "SELECT k.* FROM (VALUES {}) AS v JOIN idempotency_keys k \
         ON k.account_id = v.column1 AND k.key = v.column2 AND k.operation = {operation_at}",
        super::values_rows(backend, pairs.len(), 2, 0),
    );
    let mut values: Vec<Value> = pairs.iter().flat_map(|(account_id, key)| [Value::from(*account_id), Value::from(*key)]).collect();
    values.push(Value::from(operation));
    idempotency_key::Entity::find().from_raw_sql(Statement::from_sql_and_values(backend, sql, values)).all(conn).await
}

/// `insert` for many records in one statement.
pub async fn insert_many(conn: &impl ConnectionTrait, records: Vec<NewRecord<'_>>) -> Result<(), DbErr> {
    if records.is_empty() {
        return Ok(());
    }
    let rows = records.into_iter().map(row);
    idempotency_key::Entity::insert_many(rows).exec_without_returning(conn).await?;
    Ok(())
}

/// Deletes at most `limit` records whose retention ended before `now`; returns how many.
pub async fn purge_expired(conn: &impl ConnectionTrait, now: DateTime<Utc>, limit: u64) -> Result<u64, DbErr> {
    use sea_orm::{QueryOrder, QuerySelect};
    let ids: Vec<i64> = idempotency_key::Entity::find()
        .select_only()
        .column(idempotency_key::Column::Id)
        .filter(idempotency_key::Column::ExpiresAt.lt(now))
        .order_by_asc(idempotency_key::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let deleted = idempotency_key::Entity::delete_many().filter(idempotency_key::Column::Id.is_in(ids)).exec(conn).await?;
    Ok(deleted.rows_affected)
}

/// A hash of every field that changes an operation's outcome, serialized in a fixed order.
pub fn request_hash<T: serde::Serialize>(request: &T) -> String {
    let bytes = serde_json::to_vec(request).expect("requests serialize");
    hex::encode(Sha256::digest(bytes))
}
