use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "purchases")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    pub package_code: Option<String>,
    pub package_name: Option<String>,
    pub credits_micros: i64,
    pub price_minor: i64,
    pub currency: String,
    pub status: String,
    #[sea_orm(unique)]
    pub payment_reference: Option<String>,
    pub lot_id: Option<i64>,
    pub created_at: DateTimeUtc,
    pub paid_at: Option<DateTimeUtc>,
    pub refunded_minor: Option<i64>,
    pub refunded_at: Option<DateTimeUtc>,
    /// The caller's metadata (`service::metadata`): canonical JSON, keys sorted; none when not given.
    pub metadata: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
