//! Pending purchases end (issue 26): a purchase that is never paid is cancelled, failed or
//! expired, and the row says when (`ended_at`), why (`end_reason`) and, for a failed payment,
//! the payment system's reference of the attempt (`failure_reference`; not
//! `payment_reference`, which is unique and names the payment that paid a purchase). Null for
//! every row written before, which are pending, paid or refunded and stay valid as they are.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Purchases {
    Table,
    EndedAt,
    EndReason,
    FailureReference,
}

/// The pending purchases by age: what the expiry job reads, oldest first. Partial: paid and
/// ended purchases, almost all of them, stay out of it, and a purchase leaves it once, when it
/// stops being pending (the column is not one that changes on every write).
const PENDING_INDEX: &str = "CREATE INDEX IF NOT EXISTS purchases_pending_created ON purchases (created_at, id) WHERE status = 'pending'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One ALTER per column: SQLite takes one change per statement.
        manager
            .alter_table(Table::alter().table(Purchases::Table).add_column(timestamp_with_time_zone_null(Purchases::EndedAt)).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(Purchases::Table).add_column(text_null(Purchases::EndReason)).to_owned()).await?;
        manager
            .alter_table(Table::alter().table(Purchases::Table).add_column(string_len_null(Purchases::FailureReference, 128)).to_owned())
            .await?;
        manager.get_connection().execute_unprepared(PENDING_INDEX).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS purchases_pending_created").await?;
        manager.alter_table(Table::alter().table(Purchases::Table).drop_column(Purchases::FailureReference).to_owned()).await?;
        manager.alter_table(Table::alter().table(Purchases::Table).drop_column(Purchases::EndReason).to_owned()).await?;
        manager.alter_table(Table::alter().table(Purchases::Table).drop_column(Purchases::EndedAt).to_owned()).await
    }
}
