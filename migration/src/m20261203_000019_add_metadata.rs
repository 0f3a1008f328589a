//! Metadata (issue 25): a caller's small JSON object of string keys and values on the journal
//! entry an operation writes, and on the reservation, purchase and market job rows that keep the
//! request beside the journal. Stored as text (the canonical JSON the service writes: keys sorted,
//! no spaces), so both databases hold the same bytes and the history filter reads it with their own
//! JSON functions. Null for every row written before, and for every request that gave none.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JournalEntries {
    Table,
    Metadata,
}

#[derive(DeriveIden)]
enum Reservations {
    Table,
    Metadata,
}

#[derive(DeriveIden)]
enum Purchases {
    Table,
    Metadata,
}

#[derive(DeriveIden)]
enum MarketJobs {
    Table,
    Metadata,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One ALTER per table and column: SQLite takes one change per statement.
        manager.alter_table(Table::alter().table(JournalEntries::Table).add_column(text_null(JournalEntries::Metadata)).to_owned()).await?;
        manager.alter_table(Table::alter().table(Reservations::Table).add_column(text_null(Reservations::Metadata)).to_owned()).await?;
        manager.alter_table(Table::alter().table(Purchases::Table).add_column(text_null(Purchases::Metadata)).to_owned()).await?;
        manager.alter_table(Table::alter().table(MarketJobs::Table).add_column(text_null(MarketJobs::Metadata)).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(MarketJobs::Table).drop_column(MarketJobs::Metadata).to_owned()).await?;
        manager.alter_table(Table::alter().table(Purchases::Table).drop_column(Purchases::Metadata).to_owned()).await?;
        manager.alter_table(Table::alter().table(Reservations::Table).drop_column(Reservations::Metadata).to_owned()).await?;
        manager.alter_table(Table::alter().table(JournalEntries::Table).drop_column(JournalEntries::Metadata).to_owned()).await
    }
}
