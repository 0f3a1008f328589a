//! The delivery lease of an outbox event, on wall time, apart from its retry time.
//!
//! The lease was `next_attempt_at` itself, on the ledger's clock. On a test clock another
//! process may stand hours further on (it advanced the clock), find the lease long past and send
//! the event again while the first attempt is still in flight. Leases are about processes, so
//! they are wall time: `leased_until`, null while no attempt holds the event. `next_attempt_at`
//! stays the retry time on the ledger's clock. Null for every row at migration: no attempt
//! survives a deploy that runs migrations first.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    LeasedUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.has_column("outbox", "leased_until").await? {
            return Ok(());
        }
        manager
            .alter_table(Table::alter().table(Outbox::Table).add_column(timestamp_with_time_zone_null(Outbox::LeasedUntil)).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Outbox::Table).drop_column(Outbox::LeasedUntil).to_owned()).await
    }
}
