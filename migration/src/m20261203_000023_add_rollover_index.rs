//! Rollover of plan credits (issue 25): a plan lot's unused credits carried into a new lot at its
//! period's end, in a ROLLOVER entry dated at the old lot's expiry. Like an EXPIRE, that entry is
//! recorded after the instant it is dated at, so `account.balanceAt(at:)` must find the rollovers
//! recorded after an instant but dated at or before it (the old lot had expired by then and was
//! still on the books): this index does for them what `journal_write_offs_recorded` does for
//! write-offs. No column changes: the entry kind and the lot source are text.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Partial, so that no other entry maintains it; `store::balance_at` repeats the predicate, so
/// that its query implies it.
const ROLLOVERS_INDEX: &str = "CREATE INDEX IF NOT EXISTS journal_rollovers_recorded \
     ON journal_entries (account_id, created_at, effective_at) WHERE kind = 'rollover'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(ROLLOVERS_INDEX).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS journal_rollovers_recorded").await?;
        Ok(())
    }
}
