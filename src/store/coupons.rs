use crate::entity::{coupon, coupon_failure, coupon_redemption};
use crate::ledger::Credits;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set};

pub async fn by_code(conn: &impl ConnectionTrait, code: &str) -> Result<Option<coupon::Model>, DbErr> {
    coupon::Entity::find().filter(coupon::Column::Code.eq(code)).one(conn).await
}

/// The coupons with these ids (those that exist), in no particular order.
pub async fn by_ids(conn: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<coupon::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    coupon::Entity::find().filter(coupon::Column::Id.is_in(ids.iter().copied())).all(conn).await
}

/// A coupon as an operator defines it; it starts with no redemptions.
pub struct NewCouponRow {
    pub code: String,
    pub credits: Credits,
    pub expires_at: Option<DateTime<Utc>>,
    pub valid_for: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub max_redemptions: Option<i64>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert(conn: &impl ConnectionTrait, new: NewCouponRow) -> Result<coupon::Model, DbErr> {
    coupon::ActiveModel {
        code: Set(new.code),
        credits_micros: Set(new.credits.micros()),
        expires_at: Set(new.expires_at),
        valid_for: Set(new.valid_for),
        starts_at: Set(new.starts_at),
        ends_at: Set(new.ends_at),
        max_redemptions: Set(new.max_redemptions),
        redemptions: Set(0),
        reason: Set(new.reason),
        created_at: Set(new.created_at),
        ..Default::default()
    }
    .insert(conn)
    .await
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
