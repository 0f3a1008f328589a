//! Metered usage (arkain): containers and what they accrue, the account's storage and traffic
//! meters, and every settlement with its priced lines, so the usage page can show both what
//! was used and what was actually deducted.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Containers {
    Table,
    Id,
    AccountId,
    ExternalId,
    Tier,
    CodeSupporter,
    State,
    StorageBytes,
    /// Running time is accounted up to this instant.
    BilledUntil,
    /// Traffic over the month's free allowance, not yet charged.
    PendingTrafficBytes,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Meters {
    Table,
    AccountId,
    /// Storage over the quota is accrued up to this instant.
    StorageAccruedUntil,
    /// Accrued, not yet charged: GB x seconds over the plan's quota, an exact decimal.
    StorageExcessGbSeconds,
    TrafficMonth,
    TrafficMonthBytes,
    AiTrialUses,
}

#[derive(DeriveIden)]
enum Settlements {
    Table,
    Id,
    AccountId,
    Trigger,
    Month,
    TotalMicros,
    ChargedMicros,
    UncollectedMicros,
    EntryId,
    IdempotencyKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UsageLines {
    Table,
    Id,
    SettlementId,
    AccountId,
    ContainerId,
    Resource,
    Kind,
    Model,
    Quantity,
    Unit,
    StartedAt,
    EndedAt,
    Day,
    AmountMicros,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Containers::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Containers::Id))
                    .col(big_integer(Containers::AccountId))
                    .col(string_len(Containers::ExternalId, 128))
                    .col(string_len(Containers::Tier, 32))
                    .col(boolean(Containers::CodeSupporter))
                    .col(string_len(Containers::State, 16))
                    .col(big_integer(Containers::StorageBytes))
                    .col(timestamp_with_time_zone(Containers::BilledUntil))
                    .col(big_integer(Containers::PendingTrafficBytes))
                    .col(timestamp_with_time_zone(Containers::CreatedAt))
                    .col(timestamp_with_time_zone(Containers::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("containers_account_external_id")
                    .table(Containers::Table)
                    .col(Containers::AccountId)
                    .col(Containers::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Meters::Table)
                    .if_not_exists()
                    .col(big_integer(Meters::AccountId).primary_key())
                    .col(timestamp_with_time_zone(Meters::StorageAccruedUntil))
                    .col(string_len(Meters::StorageExcessGbSeconds, 64))
                    .col(string_len(Meters::TrafficMonth, 7))
                    .col(big_integer(Meters::TrafficMonthBytes))
                    .col(integer(Meters::AiTrialUses))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Settlements::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Settlements::Id))
                    .col(big_integer(Settlements::AccountId))
                    .col(string_len(Settlements::Trigger, 16))
                    .col(string_len(Settlements::Month, 7))
                    .col(big_integer(Settlements::TotalMicros))
                    .col(big_integer(Settlements::ChargedMicros))
                    .col(big_integer(Settlements::UncollectedMicros))
                    .col(big_integer_null(Settlements::EntryId))
                    .col(string_len_null(Settlements::IdempotencyKey, 128))
                    .col(timestamp_with_time_zone(Settlements::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("settlements_account_month")
                    .table(Settlements::Table)
                    .col(Settlements::AccountId)
                    .col(Settlements::Month)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UsageLines::Table)
                    .if_not_exists()
                    .col(big_pk_auto(UsageLines::Id))
                    .col(big_integer(UsageLines::SettlementId))
                    .col(big_integer(UsageLines::AccountId))
                    .col(big_integer_null(UsageLines::ContainerId))
                    .col(string_len(UsageLines::Resource, 16))
                    .col(string_len_null(UsageLines::Kind, 16))
                    .col(string_len_null(UsageLines::Model, 64))
                    .col(string_len(UsageLines::Quantity, 64))
                    .col(string_len(UsageLines::Unit, 16))
                    .col(timestamp_with_time_zone(UsageLines::StartedAt))
                    .col(timestamp_with_time_zone(UsageLines::EndedAt))
                    .col(string_len(UsageLines::Day, 10))
                    .col(big_integer(UsageLines::AmountMicros))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("usage_lines_account_day")
                    .table(UsageLines::Table)
                    .col(UsageLines::AccountId)
                    .col(UsageLines::Day)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in
            [UsageLines::Table.into_iden(), Settlements::Table.into_iden(), Meters::Table.into_iden(), Containers::Table.into_iden()]
        {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
