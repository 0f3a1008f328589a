//! Room on each page for the rows that change most: an account's cached balance moves with every
//! posting, a lot's remaining amount with every spend. PostgreSQL can then write the new version
//! beside the old one (a HOT update) without touching the tables' indexes, where a full page
//! makes it insert a new entry into every index. Measured in docs/benchmarks.md (the month's
//! grants). Pages written before this keep their old packing until rewritten. SQLite has no such
//! setting.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE accounts SET (fillfactor = 70)").await?;
        db.execute_unprepared("ALTER TABLE lots SET (fillfactor = 80)").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE accounts RESET (fillfactor)").await?;
        db.execute_unprepared("ALTER TABLE lots RESET (fillfactor)").await?;
        Ok(())
    }
}
