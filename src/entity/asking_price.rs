use sea_orm::entity::prelude::*;

/// A provider's ask for one workload, credits per job.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "asking_prices")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub provider_account_id: i64,
    pub workload: String,
    pub ask_micros: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
