//! The claim rate limits' counters (issue 28), kept in the database so that every process of a
//! fleet counts against one limit: a fixed window per key (an account, or a client address),
//! started by the key's first claim in it. Operational: not exported, and rows of keys idle for
//! an hour are deleted as claims come (`ratelimit`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ClaimRates {
    Table,
    Key,
    WindowStartMs,
    Count,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ClaimRates::Table)
                    .if_not_exists()
                    .col(string_len(ClaimRates::Key, 200).primary_key())
                    .col(big_integer(ClaimRates::WindowStartMs))
                    .col(integer(ClaimRates::Count))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ClaimRates::Table).to_owned()).await
    }
}
