use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "journal_entries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    pub kind: String,
    /// The net change to the account's remaining credits (positive for a grant).
    pub amount_micros: i64,
    pub effective_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub operation: String,
    pub idempotency_key: Option<String>,
    pub feature: Option<String>,
    pub model: Option<String>,
    pub reason: Option<String>,
    /// The admin subject of the operator who made the entry; none for every other entry.
    pub actor: Option<String>,
    /// What the lines cannot say, as JSON: the old and new expiry of an expiry change. Null for
    /// every other entry.
    pub detail: Option<String>,
    /// The caller's metadata (`service::metadata`): canonical JSON, keys sorted; none when not given.
    pub metadata: Option<String>,
    /// The account's recorded balance right after this entry, in sequence order: the running sum
    /// of `amount_micros` (the sum of its lots' remaining, held credits not included). Exports
    /// made before the column lack it: `credits import` then recomputes it (serde's default
    /// only lets such a row load).
    #[serde(default)]
    pub balance_after_micros: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
