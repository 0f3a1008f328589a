//! When a subscription's next month starts (`from_recharge` plans): the continuous renewal
//! picks accounts by it, so each renewal is granted at its own instant rather than at the next
//! daily run.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    RenewsAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Accounts::Table).add_column(timestamp_with_time_zone_null(Accounts::RenewsAt)).to_owned())
            .await?;
        manager
            .create_index(
                Index::create().if_not_exists().name("accounts_renews_at").table(Accounts::Table).col(Accounts::RenewsAt).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("accounts_renews_at").table(Accounts::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Accounts::Table).drop_column(Accounts::RenewsAt).to_owned()).await
    }
}
