use sea_orm::entity::prelude::*;

/// What an account charged for a scope in one period, counted against its spend limits.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "spend_usage")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: i64,
    /// A feature's name, or "*" for every feature.
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    /// "2026-12-03" (a UTC day) or "2026-12" (a UTC month).
    #[sea_orm(primary_key, auto_increment = false)]
    pub period_key: String,
    pub used_micros: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
