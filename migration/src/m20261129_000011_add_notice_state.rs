//! What was already told: the low-credit warning goes once per purchase cycle (or crossing), and
//! each lot's expiry notice once.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    LowCreditsNotifiedAt,
}

#[derive(DeriveIden)]
enum Lots {
    Table,
    ExpiryNoticeSent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Accounts::Table).add_column(timestamp_with_time_zone_null(Accounts::LowCreditsNotifiedAt)).to_owned(),
            )
            .await?;
        manager.alter_table(Table::alter().table(Lots::Table).add_column(boolean(Lots::ExpiryNoticeSent).default(false)).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Lots::Table).drop_column(Lots::ExpiryNoticeSent).to_owned()).await?;
        manager.alter_table(Table::alter().table(Accounts::Table).drop_column(Accounts::LowCreditsNotifiedAt).to_owned()).await
    }
}
