use crate::entity::referral;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

pub async fn insert(conn: &impl ConnectionTrait, referrer_id: i64, referred_id: i64, now: DateTime<Utc>) -> Result<referral::Model, DbErr> {
    referral::ActiveModel {
        referrer_id: Set(referrer_id),
        referred_id: Set(referred_id),
        created_at: Set(now),
        bonus_status: Set("none".to_string()),
        purchase_id: Set(None),
        release_at: Set(None),
        ..Default::default()
    }
    .insert(conn)
    .await
}

pub async fn count_for_referrer(conn: &impl ConnectionTrait, referrer_id: i64) -> Result<u64, DbErr> {
    referral::Entity::find().filter(referral::Column::ReferrerId.eq(referrer_id)).count(conn).await
}

pub async fn of_referred(conn: &impl ConnectionTrait, referred_id: i64) -> Result<Option<referral::Model>, DbErr> {
    referral::Entity::find().filter(referral::Column::ReferredId.eq(referred_id)).one(conn).await
}

pub async fn by_id(conn: &impl ConnectionTrait, id: i64) -> Result<Option<referral::Model>, DbErr> {
    referral::Entity::find_by_id(id).one(conn).await
}

/// Starts the hold on a referral whose bonus has not started; false if it already had.
pub async fn hold(conn: &impl ConnectionTrait, id: i64, purchase_id: i64, release_at: Option<DateTime<Utc>>) -> Result<bool, DbErr> {
    let result = referral::Entity::update_many()
        .col_expr(referral::Column::BonusStatus, Expr::value("held"))
        .col_expr(referral::Column::PurchaseId, Expr::value(purchase_id))
        .col_expr(referral::Column::ReleaseAt, Expr::value(release_at))
        .filter(referral::Column::Id.eq(id))
        .filter(referral::Column::BonusStatus.eq("none"))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn set_status(conn: &impl ConnectionTrait, id: i64, from: &str, to: &str) -> Result<bool, DbErr> {
    let result = referral::Entity::update_many()
        .col_expr(referral::Column::BonusStatus, Expr::value(to))
        .filter(referral::Column::Id.eq(id))
        .filter(referral::Column::BonusStatus.eq(from))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Held bonuses whose hold has passed, oldest first.
pub async fn due(conn: &impl ConnectionTrait, now: DateTime<Utc>, limit: u64) -> Result<Vec<referral::Model>, DbErr> {
    referral::Entity::find()
        .filter(referral::Column::BonusStatus.eq("held"))
        .filter(referral::Column::ReleaseAt.lte(now))
        .order_by_asc(referral::Column::ReleaseAt)
        .order_by_asc(referral::Column::Id)
        .limit(limit)
        .all(conn)
        .await
}
