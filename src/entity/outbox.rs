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
    /// When the event may be sent (again), on the ledger's clock: none means now.
    pub next_attempt_at: Option<DateTimeUtc>,
    /// Why the last attempt failed, truncated.
    pub last_error: Option<String>,
    /// While an attempt is sending the event: the end of its lease, on wall time (a test clock
    /// may jump past any lease on the ledger's clock). None when no attempt holds it.
    pub leased_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
