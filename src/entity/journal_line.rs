use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "journal_lines")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub entry_id: i64,
    pub lot_id: i64,
    pub delta_micros: i64,
    /// The recorded instant of the line's entry: lines are kept by month with their entry
    /// (migration 000033). An export made before it has none; `import` fills it from the entry.
    #[serde(default = "before_lines_had_an_instant")]
    pub created_at: DateTimeUtc,
}

/// What a line of an older export says it was recorded at, until the import fills it in.
pub fn before_lines_had_an_instant() -> DateTimeUtc {
    chrono::DateTime::UNIX_EPOCH
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
