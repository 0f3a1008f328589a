//! `auto_topups.pending_purchase_id` was meant to point at the pending top-up, but the pending
//! purchase is found from `purchases` itself (`purchases.auto_topup` and its status, which the
//! partial unique index `purchases_one_pending_auto_topup` keeps to one): a second copy of that
//! fact could only go stale, and nothing read it (each top-up paid an UPDATE to write it).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AutoTopups {
    Table,
    PendingPurchaseId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(AutoTopups::Table).drop_column(AutoTopups::PendingPurchaseId).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(AutoTopups::Table).add_column(big_integer_null(AutoTopups::PendingPurchaseId)).to_owned())
            .await
    }
}
