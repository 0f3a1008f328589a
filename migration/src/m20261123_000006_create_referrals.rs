//! Referrals: a code per account, and who referred whom, with the first-purchase bonus held
//! until its release instant.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    ReferralCode,
}

#[derive(DeriveIden)]
enum Referrals {
    Table,
    Id,
    ReferrerId,
    ReferredId,
    CreatedAt,
    BonusStatus,
    PurchaseId,
    ReleaseAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Accounts::Table).add_column(string_len_null(Accounts::ReferralCode, 16)).to_owned())
            .await?;
        // SQLite cannot add a column with a UNIQUE constraint; a unique index does the same.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("accounts_referral_code")
                    .table(Accounts::Table)
                    .col(Accounts::ReferralCode)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Referrals::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Referrals::Id))
                    .col(big_integer(Referrals::ReferrerId))
                    .col(big_integer_uniq(Referrals::ReferredId))
                    .col(timestamp_with_time_zone(Referrals::CreatedAt))
                    .col(string_len(Referrals::BonusStatus, 16))
                    .col(big_integer_null(Referrals::PurchaseId))
                    .col(timestamp_with_time_zone_null(Referrals::ReleaseAt))
                    .foreign_key(ForeignKey::create().from(Referrals::Table, Referrals::ReferrerId).to(Accounts::Table, Accounts::Id))
                    .foreign_key(ForeignKey::create().from(Referrals::Table, Referrals::ReferredId).to(Accounts::Table, Accounts::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().if_not_exists().name("referrals_referrer").table(Referrals::Table).col(Referrals::ReferrerId).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("referrals_release")
                    .table(Referrals::Table)
                    .col(Referrals::BonusStatus)
                    .col(Referrals::ReleaseAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Referrals::Table).to_owned()).await?;
        manager.drop_index(Index::drop().name("accounts_referral_code").table(Accounts::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Accounts::Table).drop_column(Accounts::ReferralCode).to_owned()).await
    }
}
