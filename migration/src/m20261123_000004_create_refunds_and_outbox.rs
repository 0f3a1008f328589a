//! Refunds on purchases, and the outbox: events for other systems (the payment system learns of
//! a refund) written in the same transaction as the change they announce, delivered later.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Purchases {
    Table,
    RefundedMinor,
    RefundedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    Topic,
    AccountId,
    Payload,
    CreatedAt,
    DeliveredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(Table::alter().table(Purchases::Table).add_column(big_integer_null(Purchases::RefundedMinor)).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(Purchases::Table).add_column(timestamp_with_time_zone_null(Purchases::RefundedAt)).to_owned())
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Outbox::Id))
                    .col(string_len(Outbox::Topic, 64))
                    .col(big_integer_null(Outbox::AccountId))
                    .col(text(Outbox::Payload))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(Outbox::DeliveredAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("outbox_pending")
                    .table(Outbox::Table)
                    .col(Outbox::DeliveredAt)
                    .col(Outbox::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Outbox::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Purchases::Table).drop_column(Purchases::RefundedAt).to_owned()).await?;
        manager.alter_table(Table::alter().table(Purchases::Table).drop_column(Purchases::RefundedMinor).to_owned()).await
    }
}
