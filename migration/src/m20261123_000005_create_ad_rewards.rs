//! Verified ad rewards: the ad network's server-side callback is recorded once per transaction,
//! and the app's claim redeems it once.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AdRewards {
    Table,
    Id,
    Network,
    TransactionId,
    AccountExternalId,
    VerifiedAt,
    ClaimedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AdRewards::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AdRewards::Id))
                    .col(string_len(AdRewards::Network, 32))
                    .col(string_len(AdRewards::TransactionId, 128))
                    .col(string_len(AdRewards::AccountExternalId, 128))
                    .col(timestamp_with_time_zone(AdRewards::VerifiedAt))
                    .col(timestamp_with_time_zone_null(AdRewards::ClaimedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ad_rewards_once_per_transaction")
                    .table(AdRewards::Table)
                    .col(AdRewards::Network)
                    .col(AdRewards::TransactionId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AdRewards::Table).to_owned()).await
    }
}
