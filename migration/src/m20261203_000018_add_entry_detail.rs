//! A journal entry's structured detail, for entries whose lines cannot say everything: an
//! operator's change of a lot's expiry (issue 25) moves no credits, so its one line is zero and
//! the old and new expiry are kept here, as JSON. Null for every other entry.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JournalEntries {
    Table,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(JournalEntries::Table).add_column(text_null(JournalEntries::Detail)).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(JournalEntries::Table).drop_column(JournalEntries::Detail).to_owned()).await
    }
}
