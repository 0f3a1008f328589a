//! What operators do, and who did it (issue 23): the admin subject on a journal entry an
//! operator made, a log of every operator mutation, the one-time links that open a console
//! session, and the whole-ledger audits an operator asks for (run by a worker, never inline).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum JournalEntries {
    Table,
    Actor,
}

#[derive(DeriveIden)]
enum AdminActions {
    Table,
    Id,
    At,
    Subject,
    Action,
    AccountId,
    Arguments,
}

#[derive(DeriveIden)]
enum ConsoleLinks {
    Table,
    Id,
    CodeHash,
    Subject,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum AuditRuns {
    Table,
    Id,
    Status,
    RequestedBy,
    RequestedAt,
    StartedAt,
    FinishedAt,
    Accounts,
    Lots,
    Entries,
    Problems,
    Error,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Null for every entry not made by an operator, which is every entry written before.
        manager
            .alter_table(Table::alter().table(JournalEntries::Table).add_column(string_len_null(JournalEntries::Actor, 128)).to_owned())
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AdminActions::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AdminActions::Id))
                    .col(timestamp_with_time_zone(AdminActions::At))
                    .col(string_len(AdminActions::Subject, 128))
                    // The mutation's name, as in the schema.
                    .col(string_len(AdminActions::Action, 64))
                    // The product's own id of the account acted on, when the action names one.
                    .col(string_len_null(AdminActions::AccountId, 128))
                    // The mutation's arguments, JSON.
                    .col(text(AdminActions::Arguments))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("admin_actions_subject")
                    .table(AdminActions::Table)
                    .col(AdminActions::Subject)
                    .col(AdminActions::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConsoleLinks::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ConsoleLinks::Id))
                    // Lowercase hex of the SHA-256 of the code: the code itself is never stored.
                    .col(string_len(ConsoleLinks::CodeHash, 64).unique_key())
                    .col(string_len(ConsoleLinks::Subject, 128))
                    .col(timestamp_with_time_zone(ConsoleLinks::CreatedAt))
                    .col(timestamp_with_time_zone(ConsoleLinks::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ConsoleLinks::UsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditRuns::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditRuns::Id))
                    // "queued", "running", "clean", "problems" or "failed".
                    .col(string_len(AuditRuns::Status, 16))
                    .col(string_len(AuditRuns::RequestedBy, 128))
                    .col(timestamp_with_time_zone(AuditRuns::RequestedAt))
                    .col(timestamp_with_time_zone_null(AuditRuns::StartedAt))
                    .col(timestamp_with_time_zone_null(AuditRuns::FinishedAt))
                    .col(big_integer_null(AuditRuns::Accounts))
                    .col(big_integer_null(AuditRuns::Lots))
                    .col(big_integer_null(AuditRuns::Entries))
                    // The problems found, a JSON array of strings.
                    .col(text(AuditRuns::Problems))
                    .col(text_null(AuditRuns::Error))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("audit_runs_status")
                    .table(AuditRuns::Table)
                    .col(AuditRuns::Status)
                    .col(AuditRuns::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AuditRuns::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(ConsoleLinks::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(AdminActions::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(JournalEntries::Table).drop_column(JournalEntries::Actor).to_owned()).await
    }
}
