//! The stored test clock (one row). Moves are forward only in the statement itself, so two
//! processes advancing at once can never take the clock back.

use crate::entity::test_clock;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

const ROW: i32 = 1;

/// The clock's instant, after setting it to `start` if this is the database's first start on a
/// test clock; a concurrent first start's row wins.
pub async fn start(conn: &impl ConnectionTrait, start: DateTime<Utc>, wall: DateTime<Utc>) -> Result<DateTime<Utc>, DbErr> {
    let row = test_clock::ActiveModel { id: Set(ROW), now: Set(start), started_at: Set(wall), updated_at: Set(wall) };
    test_clock::Entity::insert(row)
        .on_conflict(OnConflict::column(test_clock::Column::Id).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    read(conn).await?.ok_or_else(|| DbErr::RecordNotFound("the test clock row".into()))
}

/// The clock's instant; none on a database that never ran on a test clock.
pub async fn read(conn: &impl ConnectionTrait) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(test_clock::Entity::find_by_id(ROW).one(conn).await?.map(|row| row.now))
}

/// Moves the clock to `to` if it stands before it; false if it already stands at or after it.
pub async fn move_to(conn: &impl ConnectionTrait, to: DateTime<Utc>, wall: DateTime<Utc>) -> Result<bool, DbErr> {
    let moved = test_clock::Entity::update_many()
        .col_expr(test_clock::Column::Now, Expr::value(to))
        .col_expr(test_clock::Column::UpdatedAt, Expr::value(wall))
        .filter(test_clock::Column::Id.eq(ROW))
        .filter(test_clock::Column::Now.lt(to))
        .exec(conn)
        .await?;
    Ok(moved.rows_affected == 1)
}
