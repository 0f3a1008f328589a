use sea_orm::entity::prelude::*;

/// A metered container (arkain): its tier and add-on, whether it runs, its storage, and how far
/// its running time and traffic are accounted.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "containers")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    /// The product's id for the container.
    pub external_id: String,
    pub tier: String,
    pub code_supporter: bool,
    /// `ledger::metering::ContainerState` as text: "running", "stopped" or "inactive".
    pub state: String,
    pub storage_bytes: i64,
    /// Running time is charged up to this instant.
    pub billed_until: DateTimeUtc,
    /// Traffic over the month's free allowance, not yet charged.
    pub pending_traffic_bytes: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
