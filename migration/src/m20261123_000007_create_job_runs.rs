//! One row per scheduled job and period: what makes each period's work happen exactly once across
//! retries, restarts and several worker processes, and where a batch job resumes after a crash.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JobRuns {
    Table,
    Id,
    Job,
    Period,
    Status,
    Cursor,
    Batches,
    Items,
    Attempts,
    LastError,
    StartedAt,
    UpdatedAt,
    FinishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(JobRuns::Table)
                    .if_not_exists()
                    .col(big_pk_auto(JobRuns::Id))
                    .col(string_len(JobRuns::Job, 64))
                    .col(string_len(JobRuns::Period, 32))
                    .col(string_len(JobRuns::Status, 16))
                    .col(big_integer(JobRuns::Cursor))
                    .col(big_integer(JobRuns::Batches))
                    .col(big_integer(JobRuns::Items))
                    .col(big_integer(JobRuns::Attempts))
                    .col(string_len_null(JobRuns::LastError, 500))
                    .col(timestamp_with_time_zone(JobRuns::StartedAt))
                    .col(timestamp_with_time_zone(JobRuns::UpdatedAt))
                    .col(timestamp_with_time_zone_null(JobRuns::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("job_runs_once_per_period")
                    .table(JobRuns::Table)
                    .col(JobRuns::Job)
                    .col(JobRuns::Period)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(JobRuns::Table).to_owned()).await
    }
}
