//! Delivering the outbox: how often each event was tried, when it is due next, and why its last
//! attempt failed. `next_attempt_at` doubles as the lease of the worker sending it, so two
//! workers never send the same event at the same moment.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    DeliveredAt,
    Attempts,
    NextAttemptAt,
    LastError,
}

const DUE_INDEX: &str = "outbox_due";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE. Each step checks first, so that a process that
        // lost a migration race (db::migrate retries) finds the work done instead of failing.
        if !manager.has_column("outbox", "attempts").await? {
            manager.alter_table(Table::alter().table(Outbox::Table).add_column(integer(Outbox::Attempts).default(0)).to_owned()).await?;
        }
        if !manager.has_column("outbox", "next_attempt_at").await? {
            manager
                .alter_table(
                    Table::alter().table(Outbox::Table).add_column(timestamp_with_time_zone_null(Outbox::NextAttemptAt)).to_owned(),
                )
                .await?;
        }
        if !manager.has_column("outbox", "last_error").await? {
            manager.alter_table(Table::alter().table(Outbox::Table).add_column(string_len_null(Outbox::LastError, 500)).to_owned()).await?;
        }
        // The delivery queue: undelivered events by when they are due.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(DUE_INDEX)
                    .table(Outbox::Table)
                    .col(Outbox::DeliveredAt)
                    .col(Outbox::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(DUE_INDEX).table(Outbox::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Outbox::Table).drop_column(Outbox::LastError).to_owned()).await?;
        manager.alter_table(Table::alter().table(Outbox::Table).drop_column(Outbox::NextAttemptAt).to_owned()).await?;
        manager.alter_table(Table::alter().table(Outbox::Table).drop_column(Outbox::Attempts).to_owned()).await
    }
}
