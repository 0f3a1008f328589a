use crate::entity::reservation;
use crate::ledger::reservation::ReservationStatus;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

pub struct NewReservation<'a> {
    pub account_id: i64,
    pub idempotency_key: &'a str,
    pub amount_micros: i64,
    pub feature: &'a str,
    pub model: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub hold_entry_id: i64,
    pub created_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// The caller's metadata as stored (canonical JSON); a capture or release carries it on.
    pub metadata: Option<&'a str>,
}

pub async fn insert(conn: &impl ConnectionTrait, new: NewReservation<'_>) -> Result<reservation::Model, DbErr> {
    reservation::ActiveModel {
        account_id: Set(new.account_id),
        idempotency_key: Set(new.idempotency_key.to_string()),
        amount_micros: Set(new.amount_micros),
        captured_micros: Set(None),
        status: Set(ReservationStatus::Held.as_str().to_string()),
        feature: Set(new.feature.to_string()),
        model: Set(new.model.map(str::to_string)),
        reason: Set(new.reason.map(str::to_string)),
        hold_entry_id: Set(new.hold_entry_id),
        created_at: Set(new.created_at),
        deadline: Set(new.deadline),
        settled_at: Set(None),
        metadata: Set(new.metadata.map(str::to_string)),
        ..Default::default()
    }
    .insert(conn)
    .await
}

pub async fn by_id(conn: &impl ConnectionTrait, id: i64) -> Result<Option<reservation::Model>, DbErr> {
    reservation::Entity::find_by_id(id).one(conn).await
}

/// Ends a held reservation; false if it was no longer held (the status in the filter makes a
/// second settlement impossible even without the account lock).
pub async fn settle(
    conn: &impl ConnectionTrait,
    id: i64,
    status: ReservationStatus,
    captured_micros: Option<i64>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = reservation::Entity::update_many()
        .col_expr(reservation::Column::Status, Expr::value(status.as_str()))
        .col_expr(reservation::Column::CapturedMicros, Expr::value(captured_micros))
        .col_expr(reservation::Column::SettledAt, Expr::value(now))
        .filter(reservation::Column::Id.eq(id))
        .filter(reservation::Column::Status.eq(ReservationStatus::Held.as_str()))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Held reservations past their deadline: the expiry queue, oldest deadline first.
pub async fn due(conn: &impl ConnectionTrait, now: DateTime<Utc>, limit: u64) -> Result<Vec<reservation::Model>, DbErr> {
    reservation::Entity::find()
        .filter(reservation::Column::Status.eq(ReservationStatus::Held.as_str()))
        .filter(reservation::Column::Deadline.lte(now))
        .order_by_asc(reservation::Column::Deadline)
        .order_by_asc(reservation::Column::Id)
        .limit(limit)
        .all(conn)
        .await
}

/// The holds of these accounts still marked held but past their deadline: what a read counts
/// as available again, and what a spend under the account lock releases first.
pub async fn lapsed(conn: &impl ConnectionTrait, account_ids: &[i64], now: DateTime<Utc>) -> Result<Vec<reservation::Model>, DbErr> {
    reservation::Entity::find()
        .filter(reservation::Column::AccountId.is_in(account_ids.iter().copied()))
        .filter(reservation::Column::Status.eq(ReservationStatus::Held.as_str()))
        .filter(reservation::Column::Deadline.lte(now))
        .order_by_asc(reservation::Column::Deadline)
        .order_by_asc(reservation::Column::Id)
        .all(conn)
        .await
}

/// Every hold of these accounts still marked held, lapsed or not, by account and id: a read
/// of many balances splits them at its instant (`Engine::balances_of`).
pub async fn held(conn: &impl ConnectionTrait, account_ids: &[i64]) -> Result<Vec<reservation::Model>, DbErr> {
    if account_ids.is_empty() {
        return Ok(Vec::new());
    }
    reservation::Entity::find()
        .filter(reservation::Column::AccountId.is_in(account_ids.iter().copied()))
        .filter(reservation::Column::Status.eq(ReservationStatus::Held.as_str()))
        .order_by_asc(reservation::Column::AccountId)
        .order_by_asc(reservation::Column::Id)
        .all(conn)
        .await
}

/// An account's open holds: held and before their deadline.
pub async fn open(conn: &impl ConnectionTrait, account_id: i64, now: DateTime<Utc>) -> Result<Vec<reservation::Model>, DbErr> {
    reservation::Entity::find()
        .filter(reservation::Column::AccountId.eq(account_id))
        .filter(reservation::Column::Status.eq(ReservationStatus::Held.as_str()))
        .filter(reservation::Column::Deadline.gt(now))
        .order_by_asc(reservation::Column::Id)
        .all(conn)
        .await
}

/// Points a held reservation at a new hold entry holding `amount_micros` (a refund took part of it back).
pub async fn shrink(conn: &impl ConnectionTrait, id: i64, hold_entry_id: i64, amount_micros: i64) -> Result<bool, DbErr> {
    let result = reservation::Entity::update_many()
        .col_expr(reservation::Column::HoldEntryId, Expr::value(hold_entry_id))
        .col_expr(reservation::Column::AmountMicros, Expr::value(amount_micros))
        .filter(reservation::Column::Id.eq(id))
        .filter(reservation::Column::Status.eq(ReservationStatus::Held.as_str()))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}
