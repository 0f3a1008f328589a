use crate::entity::referral;
use crate::ledger::referral::BonusStatus;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

/// A stored referral's bonus status, read back from its text.
pub fn status_of(referral: &referral::Model) -> Result<BonusStatus, DbErr> {
    referral
        .bonus_status
        .parse()
        .map_err(|_| DbErr::Type(format!("referral {}: unknown bonus status {:?}", referral.id, referral.bonus_status)))
}

pub async fn insert(conn: &impl ConnectionTrait, referrer_id: i64, referred_id: i64, now: DateTime<Utc>) -> Result<referral::Model, DbErr> {
    referral::ActiveModel {
        referrer_id: Set(referrer_id),
        referred_id: Set(referred_id),
        created_at: Set(now),
        bonus_status: Set(BonusStatus::NotStarted.to_string()),
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
        .col_expr(referral::Column::BonusStatus, Expr::value(<&str>::from(BonusStatus::Held)))
        .col_expr(referral::Column::PurchaseId, Expr::value(purchase_id))
        .col_expr(referral::Column::ReleaseAt, Expr::value(release_at))
        .filter(referral::Column::Id.eq(id))
        .filter(referral::Column::BonusStatus.eq(<&str>::from(BonusStatus::NotStarted)))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Moves a referral's bonus from `from` to `to`; false if it was no longer at `from`.
pub async fn set_status(conn: &impl ConnectionTrait, id: i64, from: BonusStatus, to: BonusStatus) -> Result<bool, DbErr> {
    let result = referral::Entity::update_many()
        .col_expr(referral::Column::BonusStatus, Expr::value(<&str>::from(to)))
        .filter(referral::Column::Id.eq(id))
        .filter(referral::Column::BonusStatus.eq(<&str>::from(from)))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Held bonuses whose hold has passed, oldest first.
pub async fn due(conn: &impl ConnectionTrait, now: DateTime<Utc>, limit: u64) -> Result<Vec<referral::Model>, DbErr> {
    referral::Entity::find()
        .filter(referral::Column::BonusStatus.eq(<&str>::from(BonusStatus::Held)))
        .filter(referral::Column::ReleaseAt.lte(now))
        .order_by_asc(referral::Column::ReleaseAt)
        .order_by_asc(referral::Column::Id)
        .limit(limit)
        .all(conn)
        .await
}

/// Referrals whose purchase bonus is on hold and would go to `account_id` (as the referrer or as
/// the friend), newest first, at most `limit`.
pub async fn held_for_account(conn: &impl ConnectionTrait, account_id: i64, limit: u64) -> Result<Vec<referral::Model>, DbErr> {
    use sea_orm::Condition;
    referral::Entity::find()
        .filter(referral::Column::BonusStatus.eq(<&str>::from(BonusStatus::Held)))
        .filter(Condition::any().add(referral::Column::ReferrerId.eq(account_id)).add(referral::Column::ReferredId.eq(account_id)))
        .order_by_desc(referral::Column::Id)
        .limit(limit)
        .all(conn)
        .await
}
