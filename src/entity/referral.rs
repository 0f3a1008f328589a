use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "referrals")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub referrer_id: i64,
    #[sea_orm(unique)]
    pub referred_id: i64,
    pub created_at: DateTimeUtc,
    /// "none" until the friend's first qualifying purchase, then "held" until `release_at`, then
    /// "granted", or "cancelled" if that purchase was refunded meanwhile: the text of
    /// `ledger::referral::BonusStatus`, read back by `store::referrals::status_of`.
    pub bonus_status: String,
    pub purchase_id: Option<i64>,
    pub release_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
