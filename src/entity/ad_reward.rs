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
    /// The id the app gave the ad (`custom_data`), which its claim may name instead of the
    /// transaction id; none when the callback had none usable.
    pub custom_data: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
