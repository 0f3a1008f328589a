use sea_orm::entity::prelude::*;

/// One spend limit of an account (issue 26).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "spend_limits")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    /// A feature's name, or "*" for every feature (`ledger::spend_limits::EVERY_FEATURE`).
    pub scope: String,
    /// "day", "month", or "charge" for the maximum per single charge (scope "*").
    pub period: String,
    pub max_micros: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
