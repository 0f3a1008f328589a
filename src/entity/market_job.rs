use sea_orm::entity::prelude::*;

/// A consumer's job on the market: how its budget was found, which provider it cleared with at
/// what price, the reservation holding that price, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "market_jobs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub consumer_account_id: i64,
    pub provider_account_id: Option<i64>,
    pub workload: String,
    pub input: String,
    pub priority: i32,
    pub bid_micros: Option<i64>,
    pub budget_micros: Option<i64>,
    pub budget_source: Option<String>,
    pub price_micros: Option<i64>,
    pub surge: bool,
    /// "running", "completed", "failed" or "rejected".
    pub status: String,
    pub rejection_code: Option<String>,
    pub reservation_id: Option<i64>,
    pub earnings_micros: Option<i64>,
    pub fee_micros: Option<i64>,
    pub idempotency_key: String,
    pub created_at: DateTimeUtc,
    pub deadline: DateTimeUtc,
    pub settled_at: Option<DateTimeUtc>,
    /// The caller's metadata (`service::metadata`): canonical JSON, keys sorted; none when not given.
    pub metadata: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
