//! Accounts, lots, the journal, purchases and idempotency records.
//!
//! Amounts are integer micro-credits (exact on SQLite and PostgreSQL alike); CHECK constraints
//! are the last guard against a lot going negative. No index covers a column that changes on
//! every spend (`remaining_micros`), so PostgreSQL can keep lot updates HOT.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    ExternalId,
    Plan,
    Status,
    IdentityVerified,
    CreditMailEnabled,
    BalanceMicros,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Lots {
    Table,
    Id,
    AccountId,
    Class,
    Source,
    GrantedMicros,
    RemainingMicros,
    GrantedAt,
    ExpiresAt,
    OriginKind,
    OriginId,
    Open,
}

#[derive(DeriveIden)]
enum JournalEntries {
    Table,
    Id,
    AccountId,
    Kind,
    AmountMicros,
    EffectiveAt,
    CreatedAt,
    Operation,
    IdempotencyKey,
    Feature,
    Model,
    Reason,
}

#[derive(DeriveIden)]
enum JournalLines {
    Table,
    Id,
    EntryId,
    LotId,
    DeltaMicros,
}

#[derive(DeriveIden)]
enum Purchases {
    Table,
    Id,
    AccountId,
    PackageCode,
    PackageName,
    CreditsMicros,
    PriceMinor,
    Currency,
    Status,
    PaymentReference,
    LotId,
    CreatedAt,
    PaidAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Id,
    AccountId,
    Operation,
    Key,
    RequestHash,
    Outcome,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                table_auto_free(Accounts::Table)
                    .col(big_pk_auto(Accounts::Id))
                    .col(string_len_uniq(Accounts::ExternalId, 128))
                    .col(string_len(Accounts::Plan, 64))
                    .col(string_len(Accounts::Status, 16))
                    .col(boolean(Accounts::IdentityVerified))
                    .col(boolean(Accounts::CreditMailEnabled))
                    .col(big_integer(Accounts::BalanceMicros).check(Expr::col(Accounts::BalanceMicros).gte(0)))
                    .col(timestamp_with_time_zone(Accounts::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                table_auto_free(Lots::Table)
                    .col(big_pk_auto(Lots::Id))
                    .col(big_integer(Lots::AccountId))
                    .col(string_len(Lots::Class, 16))
                    .col(string_len(Lots::Source, 32))
                    .col(big_integer(Lots::GrantedMicros).check(Expr::col(Lots::GrantedMicros).gt(0)))
                    .col(big_integer(Lots::RemainingMicros).check(Expr::col(Lots::RemainingMicros).gte(0)))
                    .col(timestamp_with_time_zone(Lots::GrantedAt))
                    .col(timestamp_with_time_zone_null(Lots::ExpiresAt))
                    .col(string_len_null(Lots::OriginKind, 32))
                    .col(string_len_null(Lots::OriginId, 128))
                    .col(boolean(Lots::Open))
                    .check(Expr::col(Lots::RemainingMicros).lte(Expr::col(Lots::GrantedMicros)))
                    .foreign_key(ForeignKey::create().from(Lots::Table, Lots::AccountId).to(Accounts::Table, Accounts::Id))
                    .to_owned(),
            )
            .await?;
        // Open lots of an account: what every balance read and spend loads. `open` flips once per
        // lot (when it is used up or expires), not on every spend.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("lots_account_open")
                    .table(Lots::Table)
                    .col(Lots::AccountId)
                    .col(Lots::Open)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("lots_open_expires")
                    .table(Lots::Table)
                    .col(Lots::Open)
                    .col(Lots::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                table_auto_free(JournalEntries::Table)
                    .col(big_pk_auto(JournalEntries::Id))
                    .col(big_integer(JournalEntries::AccountId))
                    .col(string_len(JournalEntries::Kind, 16))
                    .col(big_integer(JournalEntries::AmountMicros))
                    .col(timestamp_with_time_zone(JournalEntries::EffectiveAt))
                    .col(timestamp_with_time_zone(JournalEntries::CreatedAt))
                    .col(string_len(JournalEntries::Operation, 32))
                    .col(string_len_null(JournalEntries::IdempotencyKey, 128))
                    .col(string_len_null(JournalEntries::Feature, 64))
                    .col(string_len_null(JournalEntries::Model, 64))
                    .col(string_len_null(JournalEntries::Reason, 500))
                    .foreign_key(
                        ForeignKey::create().from(JournalEntries::Table, JournalEntries::AccountId).to(Accounts::Table, Accounts::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("journal_account_sequence")
                    .table(JournalEntries::Table)
                    .col(JournalEntries::AccountId)
                    .col(JournalEntries::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                table_auto_free(JournalLines::Table)
                    .col(big_pk_auto(JournalLines::Id))
                    .col(big_integer(JournalLines::EntryId))
                    .col(big_integer(JournalLines::LotId))
                    .col(big_integer(JournalLines::DeltaMicros).check(Expr::col(JournalLines::DeltaMicros).ne(0)))
                    .foreign_key(
                        ForeignKey::create().from(JournalLines::Table, JournalLines::EntryId).to(JournalEntries::Table, JournalEntries::Id),
                    )
                    .foreign_key(ForeignKey::create().from(JournalLines::Table, JournalLines::LotId).to(Lots::Table, Lots::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("journal_lines_entry")
                    .table(JournalLines::Table)
                    .col(JournalLines::EntryId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().if_not_exists().name("journal_lines_lot").table(JournalLines::Table).col(JournalLines::LotId).to_owned(),
            )
            .await?;

        manager
            .create_table(
                table_auto_free(Purchases::Table)
                    .col(big_pk_auto(Purchases::Id))
                    .col(big_integer(Purchases::AccountId))
                    .col(string_len_null(Purchases::PackageCode, 64))
                    .col(string_len_null(Purchases::PackageName, 128))
                    .col(big_integer(Purchases::CreditsMicros).check(Expr::col(Purchases::CreditsMicros).gt(0)))
                    .col(big_integer(Purchases::PriceMinor).check(Expr::col(Purchases::PriceMinor).gt(0)))
                    .col(string_len(Purchases::Currency, 3))
                    .col(string_len(Purchases::Status, 16))
                    .col(string_len_null(Purchases::PaymentReference, 128).unique_key())
                    .col(big_integer_null(Purchases::LotId))
                    .col(timestamp_with_time_zone(Purchases::CreatedAt))
                    .col(timestamp_with_time_zone_null(Purchases::PaidAt))
                    .foreign_key(ForeignKey::create().from(Purchases::Table, Purchases::AccountId).to(Accounts::Table, Accounts::Id))
                    .foreign_key(ForeignKey::create().from(Purchases::Table, Purchases::LotId).to(Lots::Table, Lots::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("purchases_account")
                    .table(Purchases::Table)
                    .col(Purchases::AccountId)
                    .col(Purchases::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                table_auto_free(IdempotencyKeys::Table)
                    .col(big_pk_auto(IdempotencyKeys::Id))
                    .col(big_integer(IdempotencyKeys::AccountId))
                    .col(string_len(IdempotencyKeys::Operation, 32))
                    .col(string_len(IdempotencyKeys::Key, 128))
                    .col(string_len(IdempotencyKeys::RequestHash, 64))
                    .col(text(IdempotencyKeys::Outcome))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .col(timestamp_with_time_zone(IdempotencyKeys::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idempotency_scope")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::AccountId)
                    .col(IdempotencyKeys::Operation)
                    .col(IdempotencyKeys::Key)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idempotency_expires")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["idempotency_keys", "purchases", "journal_lines", "journal_entries", "lots", "accounts"] {
            manager.drop_table(Table::drop().table(Alias::new(table)).to_owned()).await?;
        }
        Ok(())
    }
}

/// A table without sea-orm's automatic created/updated columns: ours are explicit.
fn table_auto_free<T: IntoIden + 'static>(name: T) -> TableCreateStatement {
    Table::create().table(name).if_not_exists().to_owned()
}
