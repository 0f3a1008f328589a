use crate::entity::job_run;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

/// The run of `job` for `period`, created if it is the first; a concurrent creator's row wins.
pub async fn claim(conn: &impl ConnectionTrait, job: &str, period: &str, now: DateTime<Utc>) -> Result<job_run::Model, DbErr> {
    if let Some(existing) = find(conn, job, period).await? {
        return Ok(existing);
    }
    let inserted = job_run::ActiveModel {
        job: Set(job.to_string()),
        period: Set(period.to_string()),
        status: Set("running".to_string()),
        cursor: Set(0),
        batches: Set(0),
        items: Set(0),
        attempts: Set(1),
        last_error: Set(None),
        started_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
        ..Default::default()
    }
    .insert(conn)
    .await;
    match inserted {
        Ok(row) => Ok(row),
        Err(e) if crate::store::is_unique_violation(&e) => find(conn, job, period).await?.ok_or(e),
        Err(e) => Err(e),
    }
}

pub async fn find(conn: &impl ConnectionTrait, job: &str, period: &str) -> Result<Option<job_run::Model>, DbErr> {
    job_run::Entity::find().filter(job_run::Column::Job.eq(job)).filter(job_run::Column::Period.eq(period)).one(conn).await
}

pub async fn by_id(conn: &impl ConnectionTrait, id: i64) -> Result<Option<job_run::Model>, DbErr> {
    job_run::Entity::find_by_id(id).one(conn).await
}

/// The latest period of `job` that is done.
pub async fn latest_done(conn: &impl ConnectionTrait, job: &str) -> Result<Option<job_run::Model>, DbErr> {
    job_run::Entity::find()
        .filter(job_run::Column::Job.eq(job))
        .filter(job_run::Column::Status.eq("done"))
        .order_by_desc(job_run::Column::Period)
        .one(conn)
        .await
}

/// Moves the cursor from `from` to `to` after a batch; false if another worker moved it first.
pub async fn advance(conn: &impl ConnectionTrait, id: i64, from: i64, to: i64, items: u64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let result = job_run::Entity::update_many()
        .col_expr(job_run::Column::Cursor, Expr::value(to))
        .col_expr(job_run::Column::Batches, Expr::col(job_run::Column::Batches).add(1))
        .col_expr(job_run::Column::Items, Expr::col(job_run::Column::Items).add(items as i64))
        .col_expr(job_run::Column::UpdatedAt, Expr::value(now))
        .filter(job_run::Column::Id.eq(id))
        .filter(job_run::Column::Cursor.eq(from))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn finish(conn: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<(), DbErr> {
    job_run::Entity::update_many()
        .col_expr(job_run::Column::Status, Expr::value("done"))
        .col_expr(job_run::Column::FinishedAt, Expr::value(now))
        .col_expr(job_run::Column::UpdatedAt, Expr::value(now))
        .filter(job_run::Column::Id.eq(id))
        .filter(job_run::Column::Status.ne("done"))
        .exec(conn)
        .await?;
    Ok(())
}

/// Records a failure; the next run resumes from the cursor.
pub async fn fail(conn: &impl ConnectionTrait, id: i64, error: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    let error: String = error.chars().take(500).collect();
    job_run::Entity::update_many()
        .col_expr(job_run::Column::Status, Expr::value("failed"))
        .col_expr(job_run::Column::LastError, Expr::value(error))
        .col_expr(job_run::Column::Attempts, Expr::col(job_run::Column::Attempts).add(1))
        .col_expr(job_run::Column::UpdatedAt, Expr::value(now))
        .filter(job_run::Column::Id.eq(id))
        .filter(job_run::Column::Status.ne("done"))
        .exec(conn)
        .await?;
    Ok(())
}

/// The latest runs of `job`, newest first.
pub async fn recent(conn: &impl ConnectionTrait, job: &str, limit: u64) -> Result<Vec<job_run::Model>, DbErr> {
    job_run::Entity::find().filter(job_run::Column::Job.eq(job)).order_by_desc(job_run::Column::Period).limit(limit).all(conn).await
}
