use crate::entity::purchase;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

pub async fn by_id(conn: &impl ConnectionTrait, id: i64) -> Result<Option<purchase::Model>, DbErr> {
    purchase::Entity::find_by_id(id).one(conn).await
}

pub async fn by_payment_reference(conn: &impl ConnectionTrait, reference: &str) -> Result<Option<purchase::Model>, DbErr> {
    purchase::Entity::find().filter(purchase::Column::PaymentReference.eq(reference)).one(conn).await
}

/// A page of an account's purchases, newest first; never-paid ones only with `include_unpaid`.
pub async fn page(
    conn: &impl ConnectionTrait,
    account_id: i64,
    include_unpaid: bool,
    before_id: Option<i64>,
    limit: u64,
) -> Result<Vec<purchase::Model>, DbErr> {
    let mut query = purchase::Entity::find().filter(purchase::Column::AccountId.eq(account_id));
    if !include_unpaid {
        query = query.filter(purchase::Column::PaidAt.is_not_null());
    }
    if let Some(before) = before_id {
        query = query.filter(purchase::Column::Id.lt(before));
    }
    query.order_by_desc(purchase::Column::Id).limit(limit).all(conn).await
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
