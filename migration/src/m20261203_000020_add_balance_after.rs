//! Balances over time (issue 25): each journal entry carries the account's balance as recorded
//! right after it, and the lookups `account.balanceAt(at:)` makes are bounded by indexes.
//!
//! `balance_after_micros` is the running sum of `amount_micros` over the account's entries in
//! sequence (id) order: the account's cached `balance_micros` as it stood once the entry was
//! posted, which is the sum of its lots' remaining (held credits are out of the lots, so not in
//! it; an expired lot not yet written off still is, until its EXPIRE entry). Entries written
//! before this migration get it from the same running sum, computed once here.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JournalEntries {
    Table,
    AccountId,
    CreatedAt,
    BalanceAfterMicros,
}

#[derive(DeriveIden)]
enum JournalLines {
    Table,
    LotId,
    EntryId,
}

#[derive(DeriveIden)]
enum Reservations {
    Table,
    AccountId,
    SettledAt,
    CreatedAt,
}

/// The running sum per account in id order, for the entries written before the column existed.
/// Window functions: SQLite 3.25 and later, and PostgreSQL; `UPDATE .. FROM`: SQLite 3.33.
const BACKFILL: &str = "UPDATE journal_entries SET balance_after_micros = r.running \
     FROM (SELECT id, CAST(SUM(amount_micros) OVER (PARTITION BY account_id ORDER BY id \
           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS running FROM journal_entries) AS r \
     WHERE journal_entries.id = r.id";

/// Write-offs by when they were recorded, with the instant they are dated at (the lot's expiry)
/// in the index too, so that the write-offs recorded after an instant but dated at or before it
/// are told apart from the index alone. Partial: spends, most entries, do not maintain it.
/// `store::balance_at` repeats the predicate, so that its query implies it. (A REVOKE takes only
/// lots not expired yet, so write-offs of expired lots are EXPIRE entries only.)
const WRITE_OFFS_INDEX: &str = "CREATE INDEX IF NOT EXISTS journal_write_offs_recorded \
     ON journal_entries (account_id, created_at, effective_at) WHERE kind = 'expire'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Added with a default so the table can take the column, then backfilled: every entry,
        // old or new, carries its true value, and the posting code always writes one.
        manager
            .alter_table(
                Table::alter()
                    .table(JournalEntries::Table)
                    .add_column(ColumnDef::new(JournalEntries::BalanceAfterMicros).big_integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        manager.get_connection().execute_unprepared(BACKFILL).await?;
        // balanceAt's first step: the newest entry recorded at or before an instant, one descent
        // of this index (ties at one instant are the entries of one transaction: a few rows).
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("journal_account_recorded")
                    .table(JournalEntries::Table)
                    .col(JournalEntries::AccountId)
                    .col(JournalEntries::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // Write-offs recorded after an instant and dated at or before it: the lots that had
        // expired by then but were still on the books.
        manager.get_connection().execute_unprepared(WRITE_OFFS_INDEX).await?;
        // A lot's lines after a given entry: what it had at that point is its remaining less
        // them, without reading the lines before (a lot spent from a million times has a million).
        // It replaces `journal_lines_lot`, whose every use it serves.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("journal_lines_lot_entry")
                    .table(JournalLines::Table)
                    .col(JournalLines::LotId)
                    .col(JournalLines::EntryId)
                    .to_owned(),
            )
            .await?;
        manager.drop_index(Index::drop().name("journal_lines_lot").table(JournalLines::Table).to_owned()).await?;
        // Reservations settled after an instant: the holds still on the books then, those made by
        // it told apart in the index.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("reservations_account_settled")
                    .table(Reservations::Table)
                    .col(Reservations::AccountId)
                    .col(Reservations::SettledAt)
                    .col(Reservations::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("reservations_account_settled").table(Reservations::Table).to_owned()).await?;
        manager
            .create_index(
                Index::create().if_not_exists().name("journal_lines_lot").table(JournalLines::Table).col(JournalLines::LotId).to_owned(),
            )
            .await?;
        manager.drop_index(Index::drop().name("journal_lines_lot_entry").table(JournalLines::Table).to_owned()).await?;
        manager.drop_index(Index::drop().name("journal_write_offs_recorded").table(JournalEntries::Table).to_owned()).await?;
        manager.drop_index(Index::drop().name("journal_account_recorded").table(JournalEntries::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(JournalEntries::Table).drop_column(JournalEntries::BalanceAfterMicros).to_owned()).await
    }
}
