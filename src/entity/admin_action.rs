use sea_orm::entity::prelude::*;

/// One operator mutation: who (the admin token's subject), what, on which account, with what.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "admin_actions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    pub subject: String,
    pub action: String,
    pub account_id: Option<String>,
    pub arguments: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
