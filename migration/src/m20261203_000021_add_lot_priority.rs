//! A lot's priority (issue 25): within its tier of the program's order of consumption, lots of a
//! lower priority are used first, before soonest expiry (as OpenMeter and Stripe credit grants
//! order them). 50 for every lot granted before, which leaves their order as it was.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Lots {
    Table,
    Priority,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let priority = integer(Lots::Priority).default(50).check(Expr::col(Lots::Priority).between(0, 100)).to_owned();
        manager.alter_table(Table::alter().table(Lots::Table).add_column(priority).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Lots::Table).drop_column(Lots::Priority).to_owned()).await
    }
}
