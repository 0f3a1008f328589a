//! The test clock of a deployment started with `clock = "test"`: one row, so every process on
//! the database reads the same "now". A deployment on the system clock never writes it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TestClock {
    Table,
    Id,
    Now,
    StartedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TestClock::Table)
                    .if_not_exists()
                    // Always 1: the primary key is what keeps it to one row.
                    .col(integer(TestClock::Id).primary_key())
                    .col(timestamp_with_time_zone(TestClock::Now))
                    .col(timestamp_with_time_zone(TestClock::StartedAt))
                    .col(timestamp_with_time_zone(TestClock::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(TestClock::Table).to_owned()).await
    }
}
