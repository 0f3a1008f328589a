//! The Stripe events received (`entity::stripe_event`).

use crate::entity::stripe_event;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Set};

pub async fn by_id(conn: &impl ConnectionTrait, event_id: &str) -> Result<Option<stripe_event::Model>, DbErr> {
    stripe_event::Entity::find_by_id(event_id.to_string()).one(conn).await
}

/// What an event did, as recorded.
pub struct Received<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub purchase_id: Option<i64>,
    pub outcome: &'a str,
    pub detail: Option<&'a str>,
}

/// Records an event unless it is recorded already: true when this call recorded it, so that
/// what goes with the first record (an operator's notice) goes once.
pub async fn record(conn: &impl ConnectionTrait, received: Received<'_>, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let row = stripe_event::ActiveModel {
        event_id: Set(received.event_id.to_string()),
        event_type: Set(received.event_type.to_string()),
        received_at: Set(now),
        purchase_id: Set(received.purchase_id),
        outcome: Set(received.outcome.to_string()),
        detail: Set(received.detail.map(str::to_string)),
    };
    let inserted = stripe_event::Entity::insert(row)
        .on_conflict(OnConflict::column(stripe_event::Column::EventId).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(inserted > 0)
}
