//! One-time links into the console, by the SHA-256 of their code.

use crate::entity::console_link;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

pub async fn insert(
    conn: &impl ConnectionTrait,
    code_hash: &str,
    subject: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<console_link::Model, DbErr> {
    console_link::ActiveModel {
        code_hash: Set(code_hash.to_string()),
        subject: Set(subject.to_string()),
        created_at: Set(now),
        expires_at: Set(expires_at),
        used_at: Set(None),
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// Marks the link of `code_hash` used, if it is unused and unexpired at `now`; answers the link.
/// One conditional UPDATE, so of two requests racing with the same code exactly one wins.
pub async fn redeem(conn: &impl ConnectionTrait, code_hash: &str, now: DateTime<Utc>) -> Result<Option<console_link::Model>, DbErr> {
    let updated = console_link::Entity::update_many()
        .col_expr(console_link::Column::UsedAt, Expr::value(now))
        .filter(console_link::Column::CodeHash.eq(code_hash))
        .filter(console_link::Column::UsedAt.is_null())
        .filter(console_link::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await?;
    if updated.rows_affected != 1 {
        return Ok(None);
    }
    console_link::Entity::find().filter(console_link::Column::CodeHash.eq(code_hash)).one(conn).await
}
