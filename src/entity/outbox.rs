use sea_orm::entity::prelude::*;

/// An event for another system, written in the transaction of the change it announces, and
/// delivered later as a signed webhook (`service::webhooks`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// "purchase.refunded", ...
    pub topic: String,
    pub account_id: Option<i64>,
    /// JSON.
    pub payload: String,
    pub created_at: DateTimeUtc,
    /// Set when the receiver acknowledged the event (a 2xx): it is never sent again.
    pub delivered_at: Option<DateTimeUtc>,
    /// Failed delivery attempts so far.
    pub attempts: i32,
    /// When the event may be sent (again): none means now. While a worker is sending it, this
    /// is the end of that worker's lease.
    pub next_attempt_at: Option<DateTimeUtc>,
    /// Why the last attempt failed, truncated.
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
