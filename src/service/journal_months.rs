//! The journal's months, as operators use them: preparing the months ahead (the hourly job
//! `PrepareJournalMonths`) and archiving a month that has ended (`credits journal archive`).
//! PostgreSQL only; the how is in `store::journal_months`.

use crate::service::Engine;
use crate::store::journal_months::{self as months, ArchiveState, ArchivedMonth, MONTHS_AHEAD, Month, waited_too_long};
use chrono::{DateTime, Utc};
use sea_orm::{DbErr, TransactionTrait};

/// Why a month was not archived.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("this database keeps the journal in one table: months are archived on PostgreSQL only")]
    NotPartitioned,
    #[error("{month} has not ended yet (it ends {ends}): only a month that has ended is archived")]
    NotOver { month: Month, ends: DateTime<Utc> },
    #[error("{0} has no partition: nothing was recorded in it, or its entries sit in the default partition")]
    Absent(Month),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What archiving did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    pub record: ArchivedMonth,
    /// False when the month had been archived before: nothing was done.
    pub now: bool,
    /// How long the live journal was locked (the second step): what spends waited at most.
    pub locked: std::time::Duration,
}

/// Tries of the locked step of an archive before its error is the answer.
const ARCHIVE_ATTEMPTS: u32 = 5;

impl Engine {
    /// Creates the journal's partitions of `now`'s month and the `MONTHS_AHEAD` after it that do
    /// not exist yet: how many months were created (0 on SQLite, and once they exist).
    pub async fn prepare_journal_months(&self, now: DateTime<Utc>) -> Result<u64, DbErr> {
        let this = Month::of(now);
        let mut through = this;
        for _ in 0..MONTHS_AHEAD {
            through = through.next();
        }
        let created = months::ensure(&self.db, this, through).await?;
        for month in &created {
            tracing::info!(%month, "journal month prepared");
        }
        Ok(created.len() as u64)
    }

    /// Archives `month` (detach-and-keep, `store::journal_months`): in three steps, each safe to
    /// repeat, so a run that stopped halfway is finished by running it again. The journal is
    /// locked only for the catalog changes of the second step.
    pub async fn archive_journal_month(&self, month: Month, now: DateTime<Utc>) -> Result<Archived, ArchiveError> {
        if !months::is_partitioned(&self.db).await? {
            return Err(ArchiveError::NotPartitioned);
        }
        let ends = month.next().first_instant();
        if ends > now {
            return Err(ArchiveError::NotOver { month, ends });
        }
        let mut locked = std::time::Duration::ZERO;
        match months::archive_state(&self.db, month).await? {
            ArchiveState::Absent => return Err(ArchiveError::Absent(month)),
            ArchiveState::Archived => {
                let record = months::archived(&self.db).await?.into_iter().find(|a| a.month == month).ok_or(ArchiveError::Absent(month))?;
                return Ok(Archived { record, now: false, locked: std::time::Duration::ZERO });
            }
            ArchiveState::Live => {
                months::prepare_archive(&self.db, month).await?;
                let mut attempt = 1;
                loop {
                    let started = std::time::Instant::now();
                    let txn = self.db.begin().await?;
                    match months::detach_to_archive(&txn, month).await {
                        Ok(()) => {
                            txn.commit().await?;
                            locked = started.elapsed();
                            break;
                        }
                        // A lock not had within the timeout, or a deadlock PostgreSQL broke by
                        // choosing this transaction: nothing was changed; wait and try again.
                        Err(e) if attempt < ARCHIVE_ATTEMPTS && waited_too_long(&e) => {
                            let _ = txn.rollback().await;
                            tracing::info!(%month, attempt, error = %e, "archiving waits for the journal's locks; trying again");
                            tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt))).await;
                            attempt += 1;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            ArchiveState::Unrecorded => {}
        }
        let record = months::record_archived(&self.db, month, now).await?;
        tracing::info!(%month, entries = record.entries, lines = record.lines, locked_ms = locked.as_millis() as u64, "journal month archived");
        Ok(Archived { record, now: true, locked })
    }
}
