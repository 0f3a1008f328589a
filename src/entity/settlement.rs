use sea_orm::entity::prelude::*;

/// One deduction of metered usage: what it came to, what was actually taken, and what was not.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "settlements")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    /// "stop", "start", "monthly", "plan_change", "ai".
    pub trigger: String,
    /// The month the usage belongs to, "2026-11".
    pub month: String,
    pub total_micros: i64,
    pub charged_micros: i64,
    pub uncollected_micros: i64,
    /// The spend entry, when anything was taken.
    pub entry_id: Option<i64>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
