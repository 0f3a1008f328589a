use crate::entity::ad_reward;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter, QueryOrder, Set};

pub async fn insert(
    conn: &impl ConnectionTrait,
    network: &str,
    transaction_id: &str,
    custom_data: Option<&str>,
    account: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    ad_reward::ActiveModel {
        network: Set(network.to_string()),
        transaction_id: Set(transaction_id.to_string()),
        account_external_id: Set(account.to_string()),
        verified_at: Set(now),
        claimed_at: Set(None),
        custom_data: Set(custom_data.map(str::to_string)),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// The reward of `account` with `transaction_id` from any of `networks`, or whose app-given id
/// (`custom_data`) is that, one not yet claimed first.
pub async fn find_for_account(
    conn: &impl ConnectionTrait,
    networks: &[&str],
    transaction_id: &str,
    account: &str,
) -> Result<Option<ad_reward::Model>, DbErr> {
    let rows = ad_reward::Entity::find()
        .filter(ad_reward::Column::Network.is_in(networks.iter().copied()))
        .filter(ad_reward::Column::TransactionId.eq(transaction_id).or(ad_reward::Column::CustomData.eq(transaction_id)))
        .filter(ad_reward::Column::AccountExternalId.eq(account))
        .order_by_asc(ad_reward::Column::Id)
        .all(conn)
        .await?;
    let unclaimed = rows.iter().position(|row| row.claimed_at.is_none());
    Ok(match unclaimed {
        Some(index) => rows.into_iter().nth(index),
        None => rows.into_iter().next(),
    })
}

/// Marks a verified reward claimed; false if it already was.
pub async fn mark_claimed(conn: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let result = ad_reward::Entity::update_many()
        .col_expr(ad_reward::Column::ClaimedAt, Expr::value(now))
        .filter(ad_reward::Column::Id.eq(id))
        .filter(ad_reward::Column::ClaimedAt.is_null())
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}
