//! Auto top-up (issue 26): an account's setting (`auto_topups`, one row per account that ever
//! set one), which purchases auto top-up made (`purchases.auto_topup`), and on the account the
//! threshold while it is on (`accounts.auto_topup_below_micros`), so the spend path decides from
//! the row it has already locked whether there is anything to look at: accounts without auto
//! top-up pay no extra read.
//!
//! At most one auto top-up purchase per account is pending: a partial unique index says so to
//! the database too, so a race that the account's lock should have prevented fails (and its
//! transaction retries) instead of asking the product to charge a card twice.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AutoTopups {
    Table,
    AccountId,
    Enabled,
    ThresholdMicros,
    AmountMicros,
    TargetMicros,
    MonthlyCapMicros,
    PendingPurchaseId,
    FailuresInARow,
    DisabledAt,
    DisabledReason,
    CapReachedMonth,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    AutoTopupBelowMicros,
}

#[derive(DeriveIden)]
enum Purchases {
    Table,
    AutoTopup,
}

const ONE_PENDING: &str =
    "CREATE UNIQUE INDEX IF NOT EXISTS purchases_one_pending_auto_topup ON purchases (account_id) WHERE auto_topup AND status = 'pending'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AutoTopups::Table)
                    .if_not_exists()
                    .col(big_integer(AutoTopups::AccountId).primary_key())
                    .col(boolean(AutoTopups::Enabled))
                    .col(big_integer(AutoTopups::ThresholdMicros).check(Expr::col(AutoTopups::ThresholdMicros).gt(0)))
                    .col(big_integer_null(AutoTopups::AmountMicros))
                    .col(big_integer_null(AutoTopups::TargetMicros))
                    .col(big_integer(AutoTopups::MonthlyCapMicros).check(Expr::col(AutoTopups::MonthlyCapMicros).gt(0)))
                    .col(big_integer_null(AutoTopups::PendingPurchaseId))
                    .col(integer(AutoTopups::FailuresInARow).default(0))
                    .col(timestamp_with_time_zone_null(AutoTopups::DisabledAt))
                    .col(text_null(AutoTopups::DisabledReason))
                    .col(string_len_null(AutoTopups::CapReachedMonth, 7))
                    .col(timestamp_with_time_zone(AutoTopups::UpdatedAt))
                    .foreign_key(ForeignKey::create().from(AutoTopups::Table, AutoTopups::AccountId).to(Accounts::Table, Accounts::Id))
                    .to_owned(),
            )
            .await?;
        // One ALTER per column: SQLite takes one change per statement.
        manager
            .alter_table(Table::alter().table(Accounts::Table).add_column(big_integer_null(Accounts::AutoTopupBelowMicros)).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(Purchases::Table).add_column(boolean(Purchases::AutoTopup).default(false)).to_owned())
            .await?;
        manager.get_connection().execute_unprepared(ONE_PENDING).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS purchases_one_pending_auto_topup").await?;
        manager.alter_table(Table::alter().table(Purchases::Table).drop_column(Purchases::AutoTopup).to_owned()).await?;
        manager.alter_table(Table::alter().table(Accounts::Table).drop_column(Accounts::AutoTopupBelowMicros).to_owned()).await?;
        manager.drop_table(Table::drop().table(AutoTopups::Table).to_owned()).await
    }
}
