use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "coupons")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Upper-cased: codes are case-insensitive.
    #[sea_orm(unique)]
    pub code: String,
    pub credits_micros: i64,
    /// A fixed expiry for the granted credits...
    pub expires_at: Option<DateTimeUtc>,
    /// ...or a validity counted from redemption ("30 days").
    pub valid_for: Option<String>,
    pub starts_at: Option<DateTimeUtc>,
    pub ends_at: Option<DateTimeUtc>,
    pub max_redemptions: Option<i64>,
    pub redemptions: i64,
    pub reason: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
