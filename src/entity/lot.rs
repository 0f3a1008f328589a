use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "lots")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    pub class: String,
    pub source: String,
    pub granted_micros: i64,
    pub remaining_micros: i64,
    pub granted_at: DateTimeUtc,
    pub expires_at: Option<DateTimeUtc>,
    pub origin_kind: Option<String>,
    pub origin_id: Option<String>,
    /// False once the lot is used up or written off; it is never reopened.
    pub open: bool,
    /// Its expiry was announced (the expiring-credits notice goes once per lot).
    pub expiry_notice_sent: bool,
    /// 0 to 100: within its tier of the order of consumption, a lower priority is used first.
    /// An export from before priorities has none: 50, as the migration gave every lot.
    #[serde(default = "default_priority")]
    pub priority: i32,
    /// A future-effective lot's start: upcoming, not spendable, before it. None: from its grant.
    #[serde(default)]
    pub effective_at: Option<DateTimeUtc>,
    /// A scoped lot's features, a JSON array of names (`ledger::Features`); none pays for any use.
    #[serde(default)]
    pub features: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn default_priority() -> i32 {
    crate::ledger::Priority::DEFAULT.get().into()
}
