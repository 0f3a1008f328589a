//! Future-effective and scoped lots (issue 25). `effective_at`: before it the lot is upcoming,
//! shown but not spendable; none for every lot granted before, which were spendable from their
//! grant. `features`: the JSON array of the features a scoped lot may pay for; none for every
//! lot granted before, which pay for any use.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Lots {
    Table,
    EffectiveAt,
    Features,
}

/// The lots of an account that start later than their grant, by start: what `balanceAt` looks
/// up to leave out the lots upcoming at an instant. Partial: almost every lot starts at its grant
/// and stays out of it.
const UPCOMING_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS lots_account_effective ON lots (account_id, effective_at) WHERE effective_at IS NOT NULL";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Lots::Table).add_column(timestamp_with_time_zone_null(Lots::EffectiveAt)).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(Lots::Table).add_column(text_null(Lots::Features)).to_owned()).await?;
        manager.get_connection().execute_unprepared(UPCOMING_INDEX).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS lots_account_effective").await?;
        manager.alter_table(Table::alter().table(Lots::Table).drop_column(Lots::Features).to_owned()).await?;
        manager.alter_table(Table::alter().table(Lots::Table).drop_column(Lots::EffectiveAt).to_owned()).await
    }
}
