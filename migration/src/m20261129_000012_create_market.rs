//! The compute market (archipelag): providers and their asks, consumers' bid preferences, jobs
//! with the reservation that holds their price, and market-rate snapshots.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Providers {
    Table,
    AccountId,
    HardwareClass,
    Capacity,
    DefaultAskMicros,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AskingPrices {
    Table,
    Id,
    ProviderAccountId,
    Workload,
    AskMicros,
}

#[derive(DeriveIden)]
enum BidPreferences {
    Table,
    Id,
    AccountId,
    Workload,
    BidMicros,
}

#[derive(DeriveIden)]
enum MarketJobs {
    Table,
    Id,
    ConsumerAccountId,
    ProviderAccountId,
    Workload,
    Input,
    Priority,
    BidMicros,
    BudgetMicros,
    BudgetSource,
    PriceMicros,
    Surge,
    Status,
    RejectionCode,
    ReservationId,
    EarningsMicros,
    FeeMicros,
    IdempotencyKey,
    CreatedAt,
    Deadline,
    SettledAt,
}

#[derive(DeriveIden)]
enum MarketRateSnapshots {
    Table,
    Id,
    Workload,
    At,
    AverageMicros,
    MinMicros,
    MaxMicros,
    Providers,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Providers::Table)
                    .if_not_exists()
                    .col(big_integer(Providers::AccountId).primary_key())
                    .col(string_len(Providers::HardwareClass, 16))
                    .col(integer(Providers::Capacity))
                    .col(big_integer(Providers::DefaultAskMicros))
                    .col(timestamp_with_time_zone(Providers::CreatedAt))
                    .col(timestamp_with_time_zone(Providers::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AskingPrices::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AskingPrices::Id))
                    .col(big_integer(AskingPrices::ProviderAccountId))
                    .col(string_len(AskingPrices::Workload, 64))
                    .col(big_integer(AskingPrices::AskMicros))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("asking_prices_provider_workload")
                    .table(AskingPrices::Table)
                    .col(AskingPrices::ProviderAccountId)
                    .col(AskingPrices::Workload)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BidPreferences::Table)
                    .if_not_exists()
                    .col(big_pk_auto(BidPreferences::Id))
                    .col(big_integer(BidPreferences::AccountId))
                    .col(string_len(BidPreferences::Workload, 64))
                    .col(big_integer(BidPreferences::BidMicros))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("bid_preferences_account_workload")
                    .table(BidPreferences::Table)
                    .col(BidPreferences::AccountId)
                    .col(BidPreferences::Workload)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MarketJobs::Table)
                    .if_not_exists()
                    .col(big_pk_auto(MarketJobs::Id))
                    .col(big_integer(MarketJobs::ConsumerAccountId))
                    .col(big_integer_null(MarketJobs::ProviderAccountId))
                    .col(string_len(MarketJobs::Workload, 64))
                    .col(string_len(MarketJobs::Input, 2000))
                    .col(integer(MarketJobs::Priority))
                    .col(big_integer_null(MarketJobs::BidMicros))
                    .col(big_integer_null(MarketJobs::BudgetMicros))
                    .col(string_len_null(MarketJobs::BudgetSource, 16))
                    .col(big_integer_null(MarketJobs::PriceMicros))
                    .col(boolean(MarketJobs::Surge))
                    .col(string_len(MarketJobs::Status, 16))
                    .col(string_len_null(MarketJobs::RejectionCode, 32))
                    .col(big_integer_null(MarketJobs::ReservationId))
                    .col(big_integer_null(MarketJobs::EarningsMicros))
                    .col(big_integer_null(MarketJobs::FeeMicros))
                    .col(string_len(MarketJobs::IdempotencyKey, 128))
                    .col(timestamp_with_time_zone(MarketJobs::CreatedAt))
                    .col(timestamp_with_time_zone(MarketJobs::Deadline))
                    .col(timestamp_with_time_zone_null(MarketJobs::SettledAt))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            ("market_jobs_provider_status", vec![MarketJobs::ProviderAccountId, MarketJobs::Status]),
            ("market_jobs_consumer", vec![MarketJobs::ConsumerAccountId, MarketJobs::Id]),
            ("market_jobs_status_workload", vec![MarketJobs::Status, MarketJobs::Workload]),
            ("market_jobs_reservation", vec![MarketJobs::ReservationId]),
        ] {
            let mut index = Index::create().if_not_exists().name(name).table(MarketJobs::Table).to_owned();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(MarketRateSnapshots::Table)
                    .if_not_exists()
                    .col(big_pk_auto(MarketRateSnapshots::Id))
                    .col(string_len(MarketRateSnapshots::Workload, 64))
                    .col(timestamp_with_time_zone(MarketRateSnapshots::At))
                    .col(big_integer(MarketRateSnapshots::AverageMicros))
                    .col(big_integer(MarketRateSnapshots::MinMicros))
                    .col(big_integer(MarketRateSnapshots::MaxMicros))
                    .col(integer(MarketRateSnapshots::Providers))
                    .to_owned(),
            )
            .await?;
        // One snapshot per workload and 5-minute slot, however many workers take it.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("market_rate_snapshots_workload_at")
                    .table(MarketRateSnapshots::Table)
                    .col(MarketRateSnapshots::Workload)
                    .col(MarketRateSnapshots::At)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            MarketRateSnapshots::Table.into_iden(),
            MarketJobs::Table.into_iden(),
            BidPreferences::Table.into_iden(),
            AskingPrices::Table.into_iden(),
            Providers::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
