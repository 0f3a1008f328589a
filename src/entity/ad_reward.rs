use sea_orm::entity::prelude::*;

/// An ad view the network verified server-side; redeemed once by the app's claim.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "ad_rewards")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub network: String,
    pub transaction_id: String,
    pub account_external_id: String,
    pub verified_at: DateTimeUtc,
    pub claimed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
