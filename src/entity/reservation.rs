use sea_orm::entity::prelude::*;

/// Credits held for an account's pending work: "held" until captured, released or expired.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "reservations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    /// The key the reservation was made with.
    pub idempotency_key: String,
    pub amount_micros: i64,
    /// What the capture charged; none until captured.
    pub captured_micros: Option<i64>,
    /// "held", "captured", "released" or "expired".
    pub status: String,
    pub feature: String,
    pub model: Option<String>,
    pub reason: Option<String>,
    /// The journal entry that took the credits from the lots; its lines say from which.
    pub hold_entry_id: i64,
    pub created_at: DateTimeUtc,
    pub deadline: DateTimeUtc,
    pub settled_at: Option<DateTimeUtc>,
    /// The caller's metadata (`service::metadata`): canonical JSON, keys sorted; none when not given.
    pub metadata: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
