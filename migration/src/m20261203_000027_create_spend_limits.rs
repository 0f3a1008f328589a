//! Spend limits (issue 26): the caps a user sets on their own account, the usage counted against
//! them, and what each hold counted (so its release gives that room back to the period it was
//! counted in).
//!
//! - `spend_limits`: one row per cap (`scope` a feature or `*` for every feature, `period`
//!   `day`, `month`, or `charge` for the maximum per single charge). Replaced whole by
//!   `setSpendLimits`.
//! - `spend_usage`: one counter per (account, scope, period key: "2026-12-03" or "2026-12"),
//!   moved in the same transaction as the charge under the account's lock, so a check reads one
//!   row per limit instead of the journal.
//! - `spend_limit_holds`: per held reservation, the counters its hold added to and how much.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SpendLimits {
    Table,
    Id,
    AccountId,
    Scope,
    Period,
    MaxMicros,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SpendUsage {
    Table,
    AccountId,
    Scope,
    PeriodKey,
    UsedMicros,
}

#[derive(DeriveIden)]
enum SpendLimitHolds {
    Table,
    ReservationId,
    AccountId,
    Scope,
    PeriodKey,
    AmountMicros,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SpendLimits::Table)
                    .if_not_exists()
                    .col(big_pk_auto(SpendLimits::Id))
                    .col(big_integer(SpendLimits::AccountId))
                    .col(string_len(SpendLimits::Scope, 64))
                    .col(string_len(SpendLimits::Period, 8))
                    .col(big_integer(SpendLimits::MaxMicros))
                    .col(timestamp_with_time_zone(SpendLimits::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("spend_limits_account_scope_period")
                    .table(SpendLimits::Table)
                    .col(SpendLimits::AccountId)
                    .col(SpendLimits::Scope)
                    .col(SpendLimits::Period)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SpendUsage::Table)
                    .if_not_exists()
                    .col(big_integer(SpendUsage::AccountId))
                    .col(string_len(SpendUsage::Scope, 64))
                    .col(string_len(SpendUsage::PeriodKey, 16))
                    .col(big_integer(SpendUsage::UsedMicros))
                    .primary_key(Index::create().col(SpendUsage::AccountId).col(SpendUsage::Scope).col(SpendUsage::PeriodKey))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SpendLimitHolds::Table)
                    .if_not_exists()
                    .col(big_integer(SpendLimitHolds::ReservationId))
                    .col(big_integer(SpendLimitHolds::AccountId))
                    .col(string_len(SpendLimitHolds::Scope, 64))
                    .col(string_len(SpendLimitHolds::PeriodKey, 16))
                    .col(big_integer(SpendLimitHolds::AmountMicros))
                    .primary_key(
                        Index::create().col(SpendLimitHolds::ReservationId).col(SpendLimitHolds::Scope).col(SpendLimitHolds::PeriodKey),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(SpendLimitHolds::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(SpendUsage::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(SpendLimits::Table).to_owned()).await
    }
}
