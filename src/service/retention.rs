//! The purge of operational rows past their retention (issue 19; the rules in
//! `ledger::retention`, the queries in `store::retention`). The scheduled job calls it in
//! bounded rounds until every kind is drained; each delete is its own short statement, so a
//! purge never holds a lock for long, and a crash halfway loses nothing: the next tick goes on.

use crate::ledger::spend_limits::Period;
use crate::service::{Engine, ServiceError};
use crate::store::retention as purge;
use chrono::{DateTime, Utc};
use sea_orm::DbBackend;

/// Rows of each kind deleted per statement.
pub const PURGE_ROWS: u64 = 1000;
/// Free pages a SQLite file gives back per round: 1000 pages of 4 KiB, 4 MB at most.
pub const VACUUM_PAGES: u64 = 1000;

/// What one round of the purge deleted, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub scheduler_ticks: u64,
    pub scheduler_workers: u64,
    pub delivered_events: u64,
    pub rate_snapshots: u64,
    pub coupon_failures: u64,
    pub job_markers: u64,
    /// Spend-limit usage counters of periods over (`store::retention::purge_spend_counters`).
    pub spend_counters: u64,
    /// Received Stripe events, kept as long as delivered webhook events.
    pub stripe_events: u64,
}

impl RetentionReport {
    pub fn total(&self) -> u64 {
        self.counts().iter().sum()
    }

    /// Whether every kind had fewer rows past retention than a round deletes: nothing is left.
    pub fn drained(&self, limit: u64) -> bool {
        self.counts().iter().all(|&count| count < limit)
    }

    fn counts(&self) -> [u64; 8] {
        [
            self.scheduler_ticks,
            self.scheduler_workers,
            self.delivered_events,
            self.rate_snapshots,
            self.coupon_failures,
            self.job_markers,
            self.spend_counters,
            self.stripe_events,
        ]
    }
}

impl Engine {
    /// One round: at most `limit` rows of each kind past its retention at `now`, then, on a
    /// SQLite file that allows it, a bounded step of giving the freed pages back.
    pub async fn purge_operational_rows(&self, now: DateTime<Utc>, limit: u64) -> Result<RetentionReport, ServiceError> {
        let cutoffs = self.retention.cutoffs(now);
        // The scheduler stamps its ticks and workers with the wall time, whatever the ledger's
        // clock: on a test clock, judging them by its instant would delete live workers' rows.
        let scheduler = if self.clock.is_test() { self.retention.cutoffs(Utc::now()) } else { cutoffs };
        let db = &self.db;
        let report = RetentionReport {
            // Ticks first: a worker's registration goes once no tick points at it.
            scheduler_ticks: purge::purge_scheduler_ticks(db, scheduler.job_ticks, limit).await?,
            scheduler_workers: purge::purge_scheduler_workers(db, scheduler.job_ticks, limit).await?,
            delivered_events: purge::purge_delivered_events(db, cutoffs.delivered_events, limit).await?,
            rate_snapshots: purge::purge_rate_snapshots(db, cutoffs.rate_snapshots, limit).await?,
            coupon_failures: purge::purge_coupon_failures(db, cutoffs.coupon_failures, limit).await?,
            job_markers: purge::purge_job_markers(db, cutoffs.job_markers, limit).await?,
            spend_counters: {
                // Periods that ended a day or more before `now`: a charge decided just before a
                // midnight and committed just after it still finds its period's counter.
                let grace = now - chrono::Duration::days(1);
                let (day, month) = (Period::Day.key(grace), Period::Month.key(grace));
                purge::purge_spend_counters(db, &day, &month, limit).await?
            },
            stripe_events: purge::purge_stripe_events(db, cutoffs.delivered_events, limit).await?,
        };
        if report.total() > 0 {
            tracing::debug!(?report, "purged operational rows past their retention");
        }
        self.give_back_free_pages().await?;
        Ok(report)
    }

    /// On SQLite, returns freed pages to the file system a bounded step at a time, so the file
    /// shrinks after a purge without a full `VACUUM`, which would block writers while it copies
    /// the whole file. PostgreSQL reuses freed space through autovacuum (README, "Retention").
    async fn give_back_free_pages(&self) -> Result<(), ServiceError> {
        if self.db.get_database_backend() != DbBackend::Sqlite || !purge::sqlite_incremental_vacuum_enabled(&self.db).await? {
            return Ok(());
        }
        if purge::sqlite_free_pages(&self.db).await? > 0 {
            purge::sqlite_incremental_vacuum(&self.db, VACUUM_PAGES).await?;
        }
        Ok(())
    }
}
