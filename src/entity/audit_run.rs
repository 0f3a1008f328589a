use sea_orm::entity::prelude::*;

/// A whole-ledger audit an operator asked for, run by a worker.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub status: String,
    pub requested_by: String,
    pub requested_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub accounts: Option<i64>,
    pub lots: Option<i64>,
    pub entries: Option<i64>,
    /// JSON array of strings.
    pub problems: String,
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
