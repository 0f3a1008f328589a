//! The operators' log: one row per admin mutation.

use crate::entity::admin_action;
use crate::store::keyset::{self, Page, Window};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Select, Set};

pub struct NewAction<'a> {
    pub at: DateTime<Utc>,
    pub subject: &'a str,
    pub action: &'a str,
    pub account_id: Option<&'a str>,
    pub arguments: &'a str,
}

pub async fn insert(conn: &impl ConnectionTrait, new: NewAction<'_>) -> Result<admin_action::Model, DbErr> {
    admin_action::ActiveModel {
        at: Set(new.at),
        subject: Set(new.subject.to_string()),
        action: Set(new.action.to_string()),
        account_id: Set(new.account_id.map(str::to_string)),
        arguments: Set(new.arguments.to_string()),
        ..Default::default()
    }
    .insert(conn)
    .await
}

fn listed(subject: Option<&str>) -> Select<admin_action::Entity> {
    let query = admin_action::Entity::find();
    match subject {
        Some(subject) => query.filter(admin_action::Column::Subject.eq(subject)),
        None => query,
    }
}

/// One page of the log, newest first: every operator's actions, or one's.
pub async fn page(conn: &impl ConnectionTrait, subject: Option<&str>, window: &Window) -> Result<Page<admin_action::Model>, DbErr> {
    keyset::newest_first(conn, listed(subject), admin_action::Column::Id, window).await
}

pub async fn count(conn: &impl ConnectionTrait, subject: Option<&str>) -> Result<u64, DbErr> {
    keyset::count(conn, listed(subject)).await
}
