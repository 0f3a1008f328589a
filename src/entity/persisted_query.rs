use sea_orm::entity::prelude::*;

/// A persisted GraphQL document, found by the SHA-256 of its text.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "persisted_queries")]
pub struct Model {
    /// Lowercase hex SHA-256 of `document`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub hash: String,
    pub document: String,
    /// "apq", "operator" or "server" (`service::persisted::Origin`).
    pub origin: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
