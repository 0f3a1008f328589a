use sea_orm::entity::prelude::*;

/// A one-time link into the console: the SHA-256 of its code, whom it signs in, until when.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "console_links")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub code_hash: String,
    pub subject: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
