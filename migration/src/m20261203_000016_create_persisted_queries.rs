//! Persisted GraphQL documents, keyed by the SHA-256 of their text: those clients registered
//! through automatic persisted queries (APQ), those the operator registered
//! (`credits persisted add`) and those the server's own pages register at start. In the
//! database, so that every process of a fleet runs a hash that any one of them learned.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PersistedQueries {
    Table,
    Hash,
    Document,
    Origin,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PersistedQueries::Table)
                    .if_not_exists()
                    // Lowercase hex of the SHA-256 of the document's exact text: 64 characters.
                    .col(string_len(PersistedQueries::Hash, 64).primary_key())
                    .col(text(PersistedQueries::Document))
                    // "apq", "operator" or "server": only the last two are honoured when
                    // `persisted_only` is on.
                    .col(string_len(PersistedQueries::Origin, 16))
                    .col(timestamp_with_time_zone(PersistedQueries::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(PersistedQueries::Table).to_owned()).await
    }
}
