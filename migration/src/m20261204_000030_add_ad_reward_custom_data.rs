//! The `custom_data` an app gave its rewarded ad (AdMob's server-side verification passes it
//! through, signed): an id the app chose before showing the ad, so that it can claim the reward
//! without learning the network's transaction id, which AdMob gives only to the server. Null
//! for rewards verified before, and for callbacks without one; indexed by account for the claim.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AdRewards {
    Table,
    AccountExternalId,
    CustomData,
}

const INDEX: &str = "ad_rewards_by_custom_data";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(AdRewards::Table).add_column(string_len_null(AdRewards::CustomData, 128)).to_owned())
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(INDEX)
                    .table(AdRewards::Table)
                    .col(AdRewards::AccountExternalId)
                    .col(AdRewards::CustomData)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(INDEX).table(AdRewards::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(AdRewards::Table).drop_column(AdRewards::CustomData).to_owned()).await
    }
}
