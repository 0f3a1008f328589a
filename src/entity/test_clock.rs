use sea_orm::entity::prelude::*;

/// The one row of a deployment on a test clock: the instant every process takes as "now".
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "test_clock")]
pub struct Model {
    /// Always 1.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub now: DateTimeUtc,
    /// Wall time of the first start on this database.
    pub started_at: DateTimeUtc,
    /// Wall time of the last advance.
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
