use sea_orm::entity::prelude::*;

/// A scheduled job's work for one period (a UTC day or month).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub job: String,
    pub period: String,
    /// "running" until every batch is done, then "done"; "failed" after an error, to be resumed.
    pub status: String,
    /// The last account id processed: where the next batch starts.
    pub cursor: i64,
    pub batches: i64,
    /// Accounts processed (each at most once per period, whatever the retries).
    pub items: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub started_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
