//! Reservations: credits held for work whose cost is known only at its end. The hold takes the
//! credits from the lots at once (a journal entry), so this table says only what is held, by
//! whom, until when, and how it ended.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Reservations {
    Table,
    Id,
    AccountId,
    IdempotencyKey,
    AmountMicros,
    CapturedMicros,
    Status,
    Feature,
    Model,
    Reason,
    HoldEntryId,
    CreatedAt,
    Deadline,
    SettledAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Reservations::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Reservations::Id))
                    .col(big_integer(Reservations::AccountId))
                    .col(string_len(Reservations::IdempotencyKey, 128))
                    .col(big_integer(Reservations::AmountMicros))
                    .col(big_integer_null(Reservations::CapturedMicros))
                    .col(string_len(Reservations::Status, 16))
                    .col(string_len(Reservations::Feature, 64))
                    .col(string_len_null(Reservations::Model, 64))
                    .col(string_len_null(Reservations::Reason, 500))
                    .col(big_integer(Reservations::HoldEntryId))
                    .col(timestamp_with_time_zone(Reservations::CreatedAt))
                    .col(timestamp_with_time_zone(Reservations::Deadline))
                    .col(timestamp_with_time_zone_null(Reservations::SettledAt))
                    .to_owned(),
            )
            .await?;
        // The expiry queue: held reservations by deadline.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("reservations_status_deadline")
                    .table(Reservations::Table)
                    .col(Reservations::Status)
                    .col(Reservations::Deadline)
                    .to_owned(),
            )
            .await?;
        // What an account holds, read with every balance.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("reservations_account_status")
                    .table(Reservations::Table)
                    .col(Reservations::AccountId)
                    .col(Reservations::Status)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Reservations::Table).to_owned()).await
    }
}
