use sea_orm::entity::prelude::*;

/// One priced line of a settlement: a container's hours in one UTC day, its add-on, the
/// account's storage or traffic, or one AI use.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "usage_lines")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub settlement_id: i64,
    pub account_id: i64,
    pub container_id: Option<i64>,
    /// `ledger::metering::Resource` as text: "container", "addon", "storage", "traffic", "ai".
    pub resource: String,
    /// AI: `ledger::metering::AiKind` as text, "ai_supporter", "chat" or "snap".
    pub kind: Option<String>,
    pub model: Option<String>,
    /// The exact quantity, as a decimal in `unit`.
    pub quantity: String,
    /// `ledger::metering::Unit` as text: "second", "gb_second", "byte", "token", "use".
    pub unit: String,
    pub started_at: DateTimeUtc,
    pub ended_at: DateTimeUtc,
    /// The UTC day the line belongs to, "2026-11-29".
    pub day: String,
    pub amount_micros: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
