use crate::entity::purchase;
use crate::ledger::money::PurchaseStatus;
use crate::store::keyset::{self, Page, Window};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Select, Set};

pub async fn by_id(conn: &impl ConnectionTrait, id: i64) -> Result<Option<purchase::Model>, DbErr> {
    purchase::Entity::find_by_id(id).one(conn).await
}

pub async fn by_payment_reference(conn: &impl ConnectionTrait, reference: &str) -> Result<Option<purchase::Model>, DbErr> {
    purchase::Entity::find().filter(purchase::Column::PaymentReference.eq(reference)).one(conn).await
}

/// The purchases with these ids (those that exist), in no particular order.
pub async fn by_ids(conn: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<purchase::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    purchase::Entity::find().filter(purchase::Column::Id.is_in(ids.iter().copied())).all(conn).await
}

/// An account's purchases; never-paid ones only with `include_unpaid`.
fn of_account(account_id: i64, include_unpaid: bool) -> Select<purchase::Entity> {
    let query = purchase::Entity::find().filter(purchase::Column::AccountId.eq(account_id));
    if include_unpaid { query } else { query.filter(purchase::Column::PaidAt.is_not_null()) }
}

/// A page of an account's purchases, newest first; never-paid ones only with `include_unpaid`.
pub async fn page(
    conn: &impl ConnectionTrait,
    account_id: i64,
    include_unpaid: bool,
    window: &Window,
) -> Result<Page<purchase::Model>, DbErr> {
    keyset::newest_first(conn, of_account(account_id, include_unpaid), purchase::Column::Id, window).await
}

/// How many purchases `page` lists in all.
pub async fn count(conn: &impl ConnectionTrait, account_id: i64, include_unpaid: bool) -> Result<u64, DbErr> {
    keyset::count(conn, of_account(account_id, include_unpaid)).await
}

/// Purchases of an account that were ever paid (refunded ones included).
pub async fn count_paid(conn: &impl ConnectionTrait, account_id: i64) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    purchase::Entity::find()
        .filter(purchase::Column::AccountId.eq(account_id))
        .filter(purchase::Column::PaidAt.is_not_null())
        .count(conn)
        .await
}

/// A purchase as it is first recorded: priced, not paid yet.
pub struct NewPurchase {
    pub account_id: i64,
    pub package_code: Option<String>,
    pub package_name: Option<String>,
    pub credits_micros: i64,
    pub price_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    /// The caller's metadata as stored (canonical JSON); its payment's grant carries it on.
    pub metadata: Option<String>,
    /// Made by auto top-up.
    pub auto_topup: bool,
}

/// Records a pending purchase.
/// A stored purchase's status, read back from its text.
pub fn status_of(purchase: &purchase::Model) -> Result<PurchaseStatus, DbErr> {
    purchase.status.parse().map_err(|_| DbErr::Type(format!("purchase {}: unknown status {:?}", purchase.id, purchase.status)))
}

pub async fn insert_pending(conn: &impl ConnectionTrait, new: NewPurchase) -> Result<purchase::Model, DbErr> {
    purchase::ActiveModel {
        account_id: Set(new.account_id),
        package_code: Set(new.package_code),
        package_name: Set(new.package_name),
        credits_micros: Set(new.credits_micros),
        price_minor: Set(new.price_minor),
        currency: Set(new.currency),
        status: Set(PurchaseStatus::Pending.to_string()),
        payment_reference: Set(None),
        lot_id: Set(None),
        created_at: Set(new.created_at),
        paid_at: Set(None),
        refunded_minor: Set(None),
        refunded_at: Set(None),
        metadata: Set(new.metadata),
        ended_at: Set(None),
        end_reason: Set(None),
        failure_reference: Set(None),
        auto_topup: Set(new.auto_topup),
        checkout_session_id: Set(None),
        checkout_url: Set(None),
        stripe_refund_id: Set(None),
        stripe_payment_intent_id: Set(None),
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// Marks a purchase paid under `payment_reference`, with the lot it granted, if it is still
/// pending or expired (a late payment, `ledger::purchase::transition`): one conditional
/// statement, so an end that committed first is never overwritten by accident. An expired
/// purchase keeps its `ended_at` and `end_reason`. `None` when it was in neither status.
pub async fn mark_paid(
    conn: &impl ConnectionTrait,
    pending: purchase::Model,
    payment_reference: &str,
    lot_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<purchase::Model>, DbErr> {
    let changed = purchase::Entity::update_many()
        .col_expr(purchase::Column::Status, Expr::value(PurchaseStatus::Paid.to_string()))
        .col_expr(purchase::Column::PaymentReference, Expr::value(payment_reference))
        .col_expr(purchase::Column::LotId, Expr::value(lot_id))
        .col_expr(purchase::Column::PaidAt, Expr::value(now))
        .filter(purchase::Column::Id.eq(pending.id))
        .filter(purchase::Column::Status.is_in([PurchaseStatus::Pending.to_string(), PurchaseStatus::Expired.to_string()]))
        .exec(conn)
        .await?;
    if changed.rows_affected == 0 {
        return Ok(None);
    }
    by_id(conn, pending.id).await
}

/// How a purchase that was never paid ended.
pub struct End<'a> {
    /// Cancelled, failed or expired.
    pub status: PurchaseStatus,
    /// When: the call's instant, or the expiry instant.
    pub at: DateTime<Utc>,
    pub reason: Option<&'a str>,
    /// A failed payment's reference, if the payment system gave one.
    pub failure_reference: Option<&'a str>,
}

/// Ends a purchase if it is still pending: one conditional statement (`WHERE status =
/// 'pending'`), so of a cancellation, a failure, the expiry job and a confirmation racing on
/// one purchase, exactly one moves it. `None` when it was no longer pending (or is unknown).
pub async fn end_pending(conn: &impl ConnectionTrait, id: i64, end: End<'_>) -> Result<Option<purchase::Model>, DbErr> {
    debug_assert!(end.status.ended_unpaid(), "an end is cancelled, failed or expired");
    let changed = purchase::Entity::update_many()
        .col_expr(purchase::Column::Status, Expr::value(end.status.to_string()))
        .col_expr(purchase::Column::EndedAt, Expr::value(end.at))
        .col_expr(purchase::Column::EndReason, Expr::value(end.reason.map(str::to_string)))
        .col_expr(purchase::Column::FailureReference, Expr::value(end.failure_reference.map(str::to_string)))
        .filter(purchase::Column::Id.eq(id))
        .filter(purchase::Column::Status.eq(PurchaseStatus::Pending.to_string()))
        .exec(conn)
        .await?;
    if changed.rows_affected == 0 {
        return Ok(None);
    }
    by_id(conn, id).await
}

/// The oldest pending purchases created before `cutoff` (their lifetime ran out by then), at
/// most `limit`: the expiry job's batch, read through `purchases_pending_created`.
pub async fn pending_created_before(conn: &impl ConnectionTrait, cutoff: DateTime<Utc>, limit: u64) -> Result<Vec<purchase::Model>, DbErr> {
    use sea_orm::{QueryOrder, QuerySelect};
    purchase::Entity::find()
        .filter(purchase::Column::Status.eq(PurchaseStatus::Pending.to_string()))
        .filter(purchase::Column::CreatedAt.lte(cutoff))
        .order_by_asc(purchase::Column::CreatedAt)
        .order_by_asc(purchase::Column::Id)
        .limit(limit)
        .all(conn)
        .await
}

/// An account's latest purchases, newest first, at most `limit`: enough to count its failed
/// payments in a row (`ledger::purchase::failures_in_a_row`).
pub async fn latest_statuses(conn: &impl ConnectionTrait, account_id: i64, limit: u64) -> Result<Vec<PurchaseStatus>, DbErr> {
    use sea_orm::{QueryOrder, QuerySelect};
    let rows = purchase::Entity::find()
        .filter(purchase::Column::AccountId.eq(account_id))
        .order_by_desc(purchase::Column::Id)
        .limit(limit)
        .all(conn)
        .await?;
    rows.iter().map(status_of).collect()
}

/// Records the Checkout Session made for a purchase, unless one is recorded already (two
/// replays racing to make it get the same session from Stripe, by its idempotency key, so
/// either write is the same). The purchase as stored after.
pub async fn set_checkout(conn: &impl ConnectionTrait, id: i64, session_id: &str, url: &str) -> Result<Option<purchase::Model>, DbErr> {
    purchase::Entity::update_many()
        .col_expr(purchase::Column::CheckoutSessionId, Expr::value(session_id))
        .col_expr(purchase::Column::CheckoutUrl, Expr::value(url))
        .filter(purchase::Column::Id.eq(id))
        .filter(purchase::Column::CheckoutSessionId.is_null())
        .exec(conn)
        .await?;
    by_id(conn, id).await
}

/// Records the refund Stripe made for a purchase at our request.
pub async fn set_stripe_refund(conn: &impl ConnectionTrait, id: i64, refund_id: &str) -> Result<(), DbErr> {
    purchase::Entity::update_many()
        .col_expr(purchase::Column::StripeRefundId, Expr::value(refund_id))
        .filter(purchase::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Records the PaymentIntent Stripe made for an auto top-up.
pub async fn set_payment_intent(conn: &impl ConnectionTrait, id: i64, payment_intent: &str) -> Result<(), DbErr> {
    purchase::Entity::update_many()
        .col_expr(purchase::Column::StripePaymentIntentId, Expr::value(payment_intent))
        .filter(purchase::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}
