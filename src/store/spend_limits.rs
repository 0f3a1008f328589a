//! Spend limits, their usage counters and what holds counted (issue 26; the rule is
//! `ledger::spend_limits`). Every write runs under the account's lock, in the transaction of the
//! charge it counts.

use crate::entity::{spend_limit, spend_limit_hold, spend_usage};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter, QueryOrder};

/// A limit as stored: scope, period ("day", "month", "charge") and maximum.
pub struct NewLimit<'a> {
    pub scope: &'a str,
    pub period: &'a str,
    pub max_micros: i64,
}

/// The limits of these accounts, in one statement.
pub async fn for_accounts(conn: &impl ConnectionTrait, account_ids: &[i64]) -> Result<Vec<spend_limit::Model>, DbErr> {
    spend_limit::Entity::find()
        .filter(spend_limit::Column::AccountId.is_in(account_ids.iter().copied()))
        .order_by_asc(spend_limit::Column::Id)
        .all(conn)
        .await
}

/// Replaces an account's limits with `limits`.
pub async fn replace(conn: &impl ConnectionTrait, account_id: i64, limits: &[NewLimit<'_>], now: DateTime<Utc>) -> Result<(), DbErr> {
    spend_limit::Entity::delete_many().filter(spend_limit::Column::AccountId.eq(account_id)).exec(conn).await?;
    if limits.is_empty() {
        return Ok(());
    }
    let rows = limits.iter().map(|l| spend_limit::ActiveModel {
        account_id: Set(account_id),
        scope: Set(l.scope.to_string()),
        period: Set(l.period.to_string()),
        max_micros: Set(l.max_micros),
        created_at: Set(now),
        ..Default::default()
    });
    spend_limit::Entity::insert_many(rows).exec_without_returning(conn).await?;
    Ok(())
}

/// The counters of these accounts for these period keys, in one statement.
pub async fn usage(conn: &impl ConnectionTrait, account_ids: &[i64], period_keys: &[String]) -> Result<Vec<spend_usage::Model>, DbErr> {
    spend_usage::Entity::find()
        .filter(spend_usage::Column::AccountId.is_in(account_ids.iter().copied()))
        .filter(spend_usage::Column::PeriodKey.is_in(period_keys.iter().cloned()))
        .all(conn)
        .await
}

/// Adds each delta to its counter (account, scope, period key), creating it at zero first: one
/// statement for all of them. Keys must be distinct (sum the deltas first).
pub async fn add_usage(conn: &impl ConnectionTrait, deltas: &[(i64, &str, &str, i64)]) -> Result<(), DbErr> {
    if deltas.is_empty() {
        return Ok(());
    }
    let rows = deltas.iter().map(|(account_id, scope, period_key, delta)| spend_usage::ActiveModel {
        account_id: Set(*account_id),
        scope: Set(scope.to_string()),
        period_key: Set(period_key.to_string()),
        used_micros: Set(*delta),
    });
    let add = Expr::col((spend_usage::Entity, spend_usage::Column::UsedMicros))
        .add(Expr::col((sea_orm::sea_query::Alias::new("excluded"), spend_usage::Column::UsedMicros)));
    spend_usage::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([spend_usage::Column::AccountId, spend_usage::Column::Scope, spend_usage::Column::PeriodKey])
                .value(spend_usage::Column::UsedMicros, add)
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Remembers what a hold added to each counter.
pub async fn insert_hold(
    conn: &impl ConnectionTrait,
    reservation_id: i64,
    account_id: i64,
    counters: &[(&str, &str)],
    amount_micros: i64,
) -> Result<(), DbErr> {
    if counters.is_empty() {
        return Ok(());
    }
    let rows = counters.iter().map(|(scope, period_key)| spend_limit_hold::ActiveModel {
        reservation_id: Set(reservation_id),
        account_id: Set(account_id),
        scope: Set(scope.to_string()),
        period_key: Set(period_key.to_string()),
        amount_micros: Set(amount_micros),
    });
    spend_limit_hold::Entity::insert_many(rows).exec_without_returning(conn).await?;
    Ok(())
}

/// What a hold counted, removed: it is given back once, when the hold is settled.
pub async fn take_hold(conn: &impl ConnectionTrait, reservation_id: i64) -> Result<Vec<spend_limit_hold::Model>, DbErr> {
    let rows = spend_limit_hold::Entity::find().filter(spend_limit_hold::Column::ReservationId.eq(reservation_id)).all(conn).await?;
    if !rows.is_empty() {
        spend_limit_hold::Entity::delete_many().filter(spend_limit_hold::Column::ReservationId.eq(reservation_id)).exec(conn).await?;
    }
    Ok(rows)
}
