use crate::entity::purchase;
use crate::ledger::money::PurchaseStatus;
use crate::store::keyset::{self, Page, Window};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, Select, Set};

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
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// Marks a pending purchase paid under `payment_reference`, with the lot it granted.
pub async fn mark_paid(
    conn: &impl ConnectionTrait,
    pending: purchase::Model,
    payment_reference: &str,
    lot_id: i64,
    now: DateTime<Utc>,
) -> Result<purchase::Model, DbErr> {
    let mut paid = pending.into_active_model();
    paid.status = Set(PurchaseStatus::Paid.to_string());
    paid.payment_reference = Set(Some(payment_reference.to_string()));
    paid.lot_id = Set(Some(lot_id));
    paid.paid_at = Set(Some(now));
    paid.update(conn).await
}
