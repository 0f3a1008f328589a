use sea_orm::entity::prelude::*;

/// An account's meters: storage over the quota is an account-wide measure (all containers
/// together), and so are the month's traffic and the AI free trial.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "meters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: i64,
    pub storage_accrued_until: DateTimeUtc,
    /// Accrued and not yet charged: GB x seconds over the plan's quota, an exact decimal.
    pub storage_excess_gb_seconds: String,
    /// "2026-11": the month `traffic_month_bytes` counts.
    pub traffic_month: String,
    pub traffic_month_bytes: i64,
    pub ai_trial_uses: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
