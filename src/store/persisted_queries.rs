//! Persisted GraphQL documents (`persisted_queries`), found by hash.

use crate::entity::persisted_query;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};

pub async fn find(conn: &impl ConnectionTrait, hash: &str) -> Result<Option<persisted_query::Model>, DbErr> {
    persisted_query::Entity::find_by_id(hash.to_string()).one(conn).await
}

/// Stores a document under its hash unless one is there already (a concurrent registration of
/// the same text, from any process, is the same row); true if this call stored it.
pub async fn insert_if_absent(
    conn: &impl ConnectionTrait,
    hash: &str,
    document: &str,
    origin: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let row = persisted_query::ActiveModel {
        hash: Set(hash.to_string()),
        document: Set(document.to_string()),
        origin: Set(origin.to_string()),
        created_at: Set(now),
    };
    let inserted = persisted_query::Entity::insert(row)
        .on_conflict(OnConflict::column(persisted_query::Column::Hash).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}

/// Gives a stored document the origin `to` if it has `from`: an operator registering a
/// document that clients had already sent through APQ makes it allowed.
pub async fn change_origin(conn: &impl ConnectionTrait, hash: &str, from: &str, to: &str) -> Result<bool, DbErr> {
    let changed = persisted_query::Entity::update_many()
        .col_expr(persisted_query::Column::Origin, Expr::value(to))
        .filter(persisted_query::Column::Hash.eq(hash))
        .filter(persisted_query::Column::Origin.eq(from))
        .exec(conn)
        .await?;
    Ok(changed.rows_affected == 1)
}

/// Every stored document with one of `origins`, oldest first.
pub async fn list(conn: &impl ConnectionTrait, origins: &[&str]) -> Result<Vec<persisted_query::Model>, DbErr> {
    persisted_query::Entity::find()
        .filter(persisted_query::Column::Origin.is_in(origins.iter().copied()))
        .order_by_asc(persisted_query::Column::CreatedAt)
        .order_by_asc(persisted_query::Column::Hash)
        .all(conn)
        .await
}
