use crate::entity::outbox;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

/// The longest failure reason kept (the column holds 500 characters).
pub const MAX_ERROR_CHARS: usize = 500;

/// Records an event in the caller's transaction: it exists exactly when the change does.
pub async fn publish(
    conn: &impl ConnectionTrait,
    topic: &str,
    account_id: Option<i64>,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    event(topic, account_id, payload, now).insert(conn).await?;
    Ok(())
}

fn event(topic: &str, account_id: Option<i64>, payload: &serde_json::Value, now: DateTime<Utc>) -> outbox::ActiveModel {
    outbox::ActiveModel {
        topic: Set(topic.to_string()),
        account_id: Set(account_id),
        payload: Set(payload.to_string()),
        created_at: Set(now),
        delivered_at: Set(None),
        attempts: Set(0),
        next_attempt_at: Set(None),
        last_error: Set(None),
        ..Default::default()
    }
}

/// Events per insert statement of `publish_many`.
const EVENTS_PER_INSERT: usize = 1000;

/// `publish` for many events of one topic: (account id, payload, when).
pub async fn publish_many(
    conn: &impl ConnectionTrait,
    topic: &str,
    events: &[(i64, serde_json::Value, DateTime<Utc>)],
) -> Result<(), DbErr> {
    for chunk in events.chunks(EVENTS_PER_INSERT) {
        let rows = chunk.iter().map(|(account_id, payload, now)| event(topic, Some(*account_id), payload, *now));
        outbox::Entity::insert_many(rows).exec_without_returning(conn).await?;
    }
    Ok(())
}

pub async fn for_account(conn: &impl ConnectionTrait, account_id: i64) -> Result<Vec<outbox::Model>, DbErr> {
    outbox::Entity::find().filter(outbox::Column::AccountId.eq(account_id)).order_by_asc(outbox::Column::Id).all(conn).await
}

pub async fn by_id(conn: &impl ConnectionTrait, id: i64) -> Result<Option<outbox::Model>, DbErr> {
    outbox::Entity::find_by_id(id).one(conn).await
}

/// At most `limit` undelivered events that are due at `now` on the ledger's clock (never tried,
/// or their retry time has passed) and held by no attempt at `wall` (no lease, or a crashed
/// worker's lease has run out), oldest first.
pub async fn due(conn: &impl ConnectionTrait, now: DateTime<Utc>, wall: DateTime<Utc>, limit: u64) -> Result<Vec<outbox::Model>, DbErr> {
    outbox::Entity::find()
        .filter(outbox::Column::DeliveredAt.is_null())
        .filter(Condition::any().add(outbox::Column::NextAttemptAt.is_null()).add(outbox::Column::NextAttemptAt.lte(now)))
        .filter(Condition::any().add(outbox::Column::LeasedUntil.is_null()).add(outbox::Column::LeasedUntil.lte(wall)))
        .order_by_asc(outbox::Column::Id)
        .limit(limit)
        .all(conn)
        .await
}

/// Takes the event for one delivery attempt, until `lease_until` (wall time): a compare-and-set
/// on the `next_attempt_at` and `leased_until` the caller read, so of several workers that read
/// the same due event exactly one wins; the others get false and leave it alone. A worker that
/// dies holding the lease delays the event until the lease ends, then the event is due again.
pub async fn claim(conn: &impl ConnectionTrait, seen: &outbox::Model, lease_until: DateTime<Utc>) -> Result<bool, DbErr> {
    let next_attempt = match seen.next_attempt_at {
        Some(at) => outbox::Column::NextAttemptAt.eq(at),
        None => outbox::Column::NextAttemptAt.is_null(),
    };
    let lease = match seen.leased_until {
        Some(at) => outbox::Column::LeasedUntil.eq(at),
        None => outbox::Column::LeasedUntil.is_null(),
    };
    let result = outbox::Entity::update_many()
        .col_expr(outbox::Column::LeasedUntil, Expr::value(lease_until))
        .filter(outbox::Column::Id.eq(seen.id))
        .filter(outbox::Column::DeliveredAt.is_null())
        .filter(next_attempt)
        .filter(lease)
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The receiver acknowledged the event: it is never sent again. The first acknowledgement's
/// instant is kept if a late worker also got one.
pub async fn mark_delivered(conn: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let result = outbox::Entity::update_many()
        .col_expr(outbox::Column::DeliveredAt, Expr::value(now))
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(outbox::Column::LeasedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::DeliveredAt.is_null())
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// One more failed attempt: the event is due again at `retry_at`. Only under the caller's own
/// lease (`lease_until`), so a worker whose lease ran out cannot push back an event another
/// worker has taken meanwhile, nor touch a delivered one. False if the lease was lost.
pub async fn record_failure(
    conn: &impl ConnectionTrait,
    id: i64,
    lease_until: DateTime<Utc>,
    retry_at: DateTime<Utc>,
    error: &str,
) -> Result<bool, DbErr> {
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    let result = outbox::Entity::update_many()
        .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(retry_at))
        .col_expr(outbox::Column::LastError, Expr::value(error))
        .col_expr(outbox::Column::LeasedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::DeliveredAt.is_null())
        .filter(outbox::Column::LeasedUntil.eq(lease_until))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Which events an operator lists (`outbox(status:)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Every event.
    All,
    /// Not delivered yet, whether tried or not: the backlog.
    Undelivered,
    /// Not delivered, and at least one attempt failed.
    Failed,
    /// Acknowledged by the receiver.
    Delivered,
}

fn listed(listing: Listing) -> sea_orm::Select<outbox::Entity> {
    let query = outbox::Entity::find();
    match listing {
        Listing::All => query,
        Listing::Undelivered => query.filter(outbox::Column::DeliveredAt.is_null()),
        Listing::Failed => query.filter(outbox::Column::DeliveredAt.is_null()).filter(outbox::Column::Attempts.gt(0)),
        Listing::Delivered => query.filter(outbox::Column::DeliveredAt.is_not_null()),
    }
}

/// One page of the events `listing` keeps, newest first by id.
pub async fn page(
    conn: &impl ConnectionTrait,
    listing: Listing,
    window: &crate::store::keyset::Window,
) -> Result<crate::store::keyset::Page<outbox::Model>, DbErr> {
    crate::store::keyset::newest_first(conn, listed(listing), outbox::Column::Id, window).await
}

/// How many events `page` lists in all.
pub async fn count(conn: &impl ConnectionTrait, listing: Listing) -> Result<u64, DbErr> {
    crate::store::keyset::count(conn, listed(listing)).await
}

/// Makes the event due now for an operator's redelivery: no retry time and, for a delivered
/// event, no delivery (it is sent again, under the same event id). A lease an attempt holds is
/// kept: that attempt is sending it now, and a second one at once is what leases prevent. Attempts and the
/// last error are kept: they are the event's history. False if there is no such event.
pub async fn reopen(conn: &impl ConnectionTrait, id: i64) -> Result<bool, DbErr> {
    let result = outbox::Entity::update_many()
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(outbox::Column::DeliveredAt, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(outbox::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The undelivered events, as metrics show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub undelivered: u64,
    /// Of those, the ones with at least one failed attempt.
    pub failing: u64,
    pub oldest: Option<DateTime<Utc>>,
}

/// One aggregate over the undelivered events (the partial index on them keeps it cheap).
pub async fn backlog(conn: &impl ConnectionTrait) -> Result<Backlog, DbErr> {
    use sea_orm::FromQueryResult;
    #[derive(FromQueryResult)]
    struct Row {
        undelivered: i64,
        failing: Option<i64>,
        oldest: Option<DateTime<Utc>>,
    }
    let row = outbox::Entity::find()
        .select_only()
        .column_as(outbox::Column::Id.count(), "undelivered")
        .column_as(sea_orm::sea_query::Expr::cust("SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END)"), "failing")
        .column_as(outbox::Column::CreatedAt.min(), "oldest")
        .filter(outbox::Column::DeliveredAt.is_null())
        .into_model::<Row>()
        .one(conn)
        .await?;
    Ok(row.map_or(Backlog::default(), |r| Backlog {
        undelivered: u64::try_from(r.undelivered).unwrap_or(0),
        failing: u64::try_from(r.failing.unwrap_or(0)).unwrap_or(0),
        oldest: r.oldest,
    }))
}
