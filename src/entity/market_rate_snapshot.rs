use sea_orm::entity::prelude::*;

/// A workload's market rate at a 5-minute mark: the average, lowest and highest ask, and how
/// many providers asked.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "market_rate_snapshots")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workload: String,
    pub at: DateTimeUtc,
    pub average_micros: i64,
    pub min_micros: i64,
    pub max_micros: i64,
    pub providers: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
