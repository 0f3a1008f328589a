use crate::entity::{coupon, coupon_failure, coupon_redemption};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set};

pub async fn by_code(conn: &impl ConnectionTrait, code: &str) -> Result<Option<coupon::Model>, DbErr> {
    coupon::Entity::find().filter(coupon::Column::Code.eq(code)).one(conn).await
}

pub async fn insert(conn: &impl ConnectionTrait, coupon: coupon::ActiveModel) -> Result<coupon::Model, DbErr> {
    coupon.insert(conn).await
}

/// Counts one redemption if the cap allows it; false when the coupon is exhausted. The condition
/// is evaluated under the row's lock, so concurrent redeemers of one coupon cannot overshoot.
pub async fn take_redemption(conn: &impl ConnectionTrait, coupon_id: i64) -> Result<bool, DbErr> {
    let result = coupon::Entity::update_many()
        .col_expr(coupon::Column::Redemptions, Expr::col(coupon::Column::Redemptions).add(1))
        .filter(coupon::Column::Id.eq(coupon_id))
        .filter(
            Condition::any()
                .add(coupon::Column::MaxRedemptions.is_null())
                .add(Expr::col(coupon::Column::Redemptions).lt(Expr::col(coupon::Column::MaxRedemptions))),
        )
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn redeemed_by(conn: &impl ConnectionTrait, coupon_id: i64, account_id: i64) -> Result<bool, DbErr> {
    let count = coupon_redemption::Entity::find()
        .filter(coupon_redemption::Column::CouponId.eq(coupon_id))
        .filter(coupon_redemption::Column::AccountId.eq(account_id))
        .count(conn)
        .await?;
    Ok(count > 0)
}

pub async fn record_redemption(
    conn: &impl ConnectionTrait,
    coupon_id: i64,
    account_id: i64,
    lot_id: i64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    coupon_redemption::ActiveModel {
        coupon_id: Set(coupon_id),
        account_id: Set(account_id),
        lot_id: Set(lot_id),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

pub async fn record_failure(conn: &impl ConnectionTrait, account_id: i64, now: DateTime<Utc>) -> Result<(), DbErr> {
    coupon_failure::ActiveModel { account_id: Set(account_id), attempted_at: Set(now), ..Default::default() }.insert(conn).await?;
    Ok(())
}

pub async fn failures_since(conn: &impl ConnectionTrait, account_id: i64, since: DateTime<Utc>) -> Result<u64, DbErr> {
    coupon_failure::Entity::find()
        .filter(coupon_failure::Column::AccountId.eq(account_id))
        .filter(coupon_failure::Column::AttemptedAt.gte(since))
        .count(conn)
        .await
}
