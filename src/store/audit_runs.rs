//! Whole-ledger audits operators asked for, and where each stands.

use crate::entity::audit_run;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const CLEAN: &str = "clean";
pub const PROBLEMS: &str = "problems";
pub const FAILED: &str = "failed";

pub async fn insert(conn: &impl ConnectionTrait, requested_by: &str, now: DateTime<Utc>) -> Result<audit_run::Model, DbErr> {
    audit_run::ActiveModel {
        status: Set(QUEUED.to_string()),
        requested_by: Set(requested_by.to_string()),
        requested_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        accounts: Set(None),
        lots: Set(None),
        entries: Set(None),
        problems: Set("[]".to_string()),
        error: Set(None),
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// The oldest run not finished (queued, or running), if any.
pub async fn unfinished(conn: &impl ConnectionTrait) -> Result<Option<audit_run::Model>, DbErr> {
    audit_run::Entity::find().filter(audit_run::Column::Status.is_in([QUEUED, RUNNING])).order_by_asc(audit_run::Column::Id).one(conn).await
}

/// The oldest run a worker may take at `now`: queued, or running but started before
/// `stale_before` (its worker died).
pub async fn next_due(conn: &impl ConnectionTrait, stale_before: DateTime<Utc>) -> Result<Option<audit_run::Model>, DbErr> {
    audit_run::Entity::find()
        .filter(
            Condition::any()
                .add(audit_run::Column::Status.eq(QUEUED))
                .add(Condition::all().add(audit_run::Column::Status.eq(RUNNING)).add(audit_run::Column::StartedAt.lt(stale_before))),
        )
        .order_by_asc(audit_run::Column::Id)
        .one(conn)
        .await
}

/// Takes `run` for this worker: true if it was still as read (no other worker took it since).
pub async fn take(conn: &impl ConnectionTrait, run: &audit_run::Model, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let mut update = audit_run::Entity::update_many()
        .col_expr(audit_run::Column::Status, Expr::value(RUNNING))
        .col_expr(audit_run::Column::StartedAt, Expr::value(now))
        .filter(audit_run::Column::Id.eq(run.id))
        .filter(audit_run::Column::Status.eq(run.status.as_str()));
    update = match run.started_at {
        Some(at) => update.filter(audit_run::Column::StartedAt.eq(at)),
        None => update.filter(audit_run::Column::StartedAt.is_null()),
    };
    Ok(update.exec(conn).await?.rows_affected == 1)
}

pub struct Outcome<'a> {
    pub status: &'a str,
    pub accounts: Option<i64>,
    pub lots: Option<i64>,
    pub entries: Option<i64>,
    pub problems: &'a str,
    pub error: Option<&'a str>,
}

/// Records how run `id` ended, if this worker still holds it (taken at `started_at`).
pub async fn finish(
    conn: &impl ConnectionTrait,
    id: i64,
    started_at: DateTime<Utc>,
    outcome: Outcome<'_>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let updated = audit_run::Entity::update_many()
        .col_expr(audit_run::Column::Status, Expr::value(outcome.status))
        .col_expr(audit_run::Column::FinishedAt, Expr::value(now))
        .col_expr(audit_run::Column::Accounts, Expr::value(outcome.accounts))
        .col_expr(audit_run::Column::Lots, Expr::value(outcome.lots))
        .col_expr(audit_run::Column::Entries, Expr::value(outcome.entries))
        .col_expr(audit_run::Column::Problems, Expr::value(outcome.problems))
        .col_expr(audit_run::Column::Error, Expr::value(outcome.error))
        .filter(audit_run::Column::Id.eq(id))
        .filter(audit_run::Column::Status.eq(RUNNING))
        .filter(audit_run::Column::StartedAt.eq(started_at))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// The newest `limit` runs, newest first.
pub async fn latest(conn: &impl ConnectionTrait, limit: u64) -> Result<Vec<audit_run::Model>, DbErr> {
    audit_run::Entity::find().order_by_desc(audit_run::Column::Id).limit(limit).all(conn).await
}

pub async fn by_id(conn: &impl ConnectionTrait, id: i64) -> Result<Option<audit_run::Model>, DbErr> {
    audit_run::Entity::find_by_id(id).one(conn).await
}
