//! A plan grant's lot is its own claim (issue 30): a partial unique index on the plan lots'
//! (account, grant key) makes a grant once per period, where each grant also wrote a `claims`
//! row (`kind = 'plan_credits'`, `period` = the grant key) with two index entries and two
//! foreign-key checks of its own. At a month's end that was a million rows more.
//!
//! The claims already written stay honoured: every plan lot was written with its claim, both
//! naming the same grant key, and this migration first makes sure of it, pointing any plan
//! claim's lot at the claim's grant key, so that the index alone refuses what a claim refused.
//! The claims stay where they are (history); new grants write none.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Partial, so that no other lot maintains it; `store::lots::plan_grants_held` repeats the
/// predicate as a literal, so that its query implies it.
const PLAN_GRANT_INDEX: &str = "CREATE UNIQUE INDEX IF NOT EXISTS lots_plan_grant \
     ON lots (account_id, origin_id) WHERE origin_kind = 'plan'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // Both spell "differs, NULL included" their own way.
        let differs = match manager.get_database_backend() {
            DbBackend::Postgres => "IS DISTINCT FROM",
            _ => "IS NOT",
        };
        db.execute_unprepared(&format!(
            "UPDATE lots SET origin_kind = 'plan', origin_id = c.period FROM claims c \
             WHERE c.kind = 'plan_credits' AND c.lot_id = lots.id \
             AND (lots.origin_kind {differs} 'plan' OR lots.origin_id {differs} c.period)"
        ))
        .await?;
        db.execute_unprepared(PLAN_GRANT_INDEX).await?;
        Ok(())
    }

    /// Back to claims: the plan lots granted since get theirs, so that the code before this
    /// migration, which looks at claims only, does not grant their periods again.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO claims (account_id, kind, period, lot_id, amount_micros, created_at) \
             SELECT l.account_id, 'plan_credits', l.origin_id, l.id, l.granted_micros, l.granted_at FROM lots l \
             WHERE l.origin_kind = 'plan' AND NOT EXISTS (SELECT 1 FROM claims c \
             WHERE c.account_id = l.account_id AND c.kind = 'plan_credits' AND c.period = l.origin_id)",
        )
        .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS lots_plan_grant").await?;
        Ok(())
    }
}
