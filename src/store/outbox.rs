use crate::entity::outbox;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};

/// Records an event in the caller's transaction: it exists exactly when the change does.
pub async fn publish(
    conn: &impl ConnectionTrait,
    topic: &str,
    account_id: Option<i64>,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    outbox::ActiveModel {
        topic: Set(topic.to_string()),
        account_id: Set(account_id),
        payload: Set(payload.to_string()),
        created_at: Set(now),
        delivered_at: Set(None),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

pub async fn for_account(conn: &impl ConnectionTrait, account_id: i64) -> Result<Vec<outbox::Model>, DbErr> {
    outbox::Entity::find().filter(outbox::Column::AccountId.eq(account_id)).order_by_asc(outbox::Column::Id).all(conn).await
}
