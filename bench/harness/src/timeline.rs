//! The `balance-at` scenario (issue 25): `account.balanceAt(at:)` on an account with a long
//! timeline, against a plain balance read of the same account, side by side in one run.
//!
//! `bench-timeline` gets `lots` lots, one a minute: each a grant of 100 credits spent 98 times
//! (one credit a second), valid 30 minutes, its last 2 credits written off by the worker an hour
//! late (an EXPIRE entry dated at the expiry, recorded 90 minutes after the grant). 100 entries a
//! lot: 10,000 lots make 1M entries, and at any instant about 60 lots are expired but not yet
//! written off, which `balanceAt` must leave out. Rows are written with their ids in recorded
//! order, so the sequence follows the clock as it does in service; the audit checks them at the
//! end of the run.

use chrono::{DateTime, Duration, Utc};
use credits::entity::{journal_entry, journal_line, lot};
use credits::store;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, TransactionTrait};

pub const ACCOUNT: &str = "bench-timeline";
const GRANT_MICROS: i64 = 100_000_000;
const SPENDS: i64 = 98;
const VALID_MINUTES: i64 = 30;
const WRITE_OFF_AFTER_MINUTES: i64 = 90;
const ROWS_PER_INSERT: usize = 1000;

/// One entry to write: (lot id, kind, amount in micros, effective at, recorded at).
type Due = (i64, &'static str, i64, DateTime<Utc>, DateTime<Utc>);

/// The seeded timeline: its first grant and how many minutes it spans.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    pub start: DateTime<Utc>,
    pub minutes: i64,
}

impl Timeline {
    /// The instant `percent` of the way through the timeline.
    pub fn at(&self, percent: i64) -> DateTime<Utc> {
        self.start + Duration::seconds(self.minutes * 60 * percent / 100) + Duration::seconds(30)
    }
}

/// Writes the timeline; returns it and how long that took.
pub async fn seed(url: &str, lots: usize) -> anyhow::Result<(Timeline, std::time::Duration)> {
    let started = std::time::Instant::now();
    let db = credits::db::connect(url, 1).await?;
    let lots = lots as i64;
    let minutes = lots + WRITE_OFF_AFTER_MINUTES + 1;
    let now = credits::ledger::time::truncate(Utc::now());
    let start = now - Duration::minutes(minutes + 1);
    let txn = db.begin().await?;
    let account = store::accounts::insert(&txn, ACCOUNT, "free", start - Duration::minutes(1)).await?;
    let next_id = |table: &str| format!("SELECT CAST(COALESCE(MAX(id), 0) + 1 AS BIGINT) FROM {table}");
    let first_lot = scalar(&txn, &next_id("lots")).await?;
    let mut entry_id = scalar(&txn, &next_id("journal_entries")).await?;
    let minute = |m: i64| start + Duration::minutes(m);

    let lot_rows: Vec<lot::ActiveModel> = (0..lots)
        .map(|n| lot::ActiveModel {
            id: Set(first_lot + n),
            account_id: Set(account.id),
            class: Set("promotional".into()),
            source: Set("adjustment".into()),
            granted_micros: Set(GRANT_MICROS),
            remaining_micros: Set(0),
            granted_at: Set(minute(n)),
            expires_at: Set(Some(minute(n + VALID_MINUTES))),
            origin_kind: Set(Some("bench-timeline".into())),
            origin_id: Set(None),
            open: Set(false),
            expiry_notice_sent: Set(false),
            priority: Set(credits::ledger::Priority::DEFAULT.get().into()),
            effective_at: Set(None),
            features: Set(None),
        })
        .collect();
    for chunk in lot_rows.chunks(ROWS_PER_INSERT) {
        lot::Entity::insert_many(chunk.to_vec()).exec_without_returning(&txn).await?;
    }

    let mut balance = 0i64;
    let mut entries: Vec<journal_entry::ActiveModel> = Vec::with_capacity(ROWS_PER_INSERT);
    let mut lines: Vec<journal_line::ActiveModel> = Vec::with_capacity(ROWS_PER_INSERT);
    let mut written = 0u64;
    for m in 0..minutes {
        // In recorded order: this minute's grant and spends, then the write-off due this minute.
        let mut due: Vec<Due> = Vec::new();
        if m < lots {
            let lot_id = first_lot + m;
            due.push((lot_id, "grant", GRANT_MICROS, minute(m), minute(m)));
            for k in 1..=SPENDS {
                let at = minute(m) + Duration::seconds(k * 60 / (SPENDS + 1));
                due.push((lot_id, "spend", -1_000_000, at, at));
            }
        }
        let expired = m - WRITE_OFF_AFTER_MINUTES;
        if (0..lots).contains(&expired) {
            let left = GRANT_MICROS - SPENDS * 1_000_000;
            due.push((first_lot + expired, "expire", -left, minute(expired + VALID_MINUTES), minute(m) + Duration::seconds(59)));
        }
        for (lot_id, kind, amount, effective_at, created_at) in due {
            balance += amount;
            entries.push(journal_entry::ActiveModel {
                id: Set(entry_id),
                account_id: Set(account.id),
                kind: Set(kind.into()),
                amount_micros: Set(amount),
                effective_at: Set(effective_at),
                created_at: Set(created_at),
                operation: Set(kind.into()),
                idempotency_key: Set(None),
                feature: Set((kind == "spend").then(|| "bench".into())),
                model: Set(None),
                reason: Set(None),
                actor: Set(None),
                detail: Set(None),
                metadata: Set(None),
                balance_after_micros: Set(balance),
            });
            lines.push(journal_line::ActiveModel {
                entry_id: Set(entry_id),
                lot_id: Set(lot_id),
                delta_micros: Set(amount),
                ..Default::default()
            });
            entry_id += 1;
            if entries.len() >= ROWS_PER_INSERT {
                written += flush(&txn, &mut entries, &mut lines).await?;
            }
        }
    }
    written += flush(&txn, &mut entries, &mut lines).await?;
    anyhow::ensure!(balance == 0, "every lot of the timeline ends spent or written off");
    for table in [store::export::Table::Lots, store::export::Table::JournalEntries] {
        store::export::reset_sequence(&txn, table).await?;
    }
    txn.commit().await?;
    if !credits::db::is_sqlite(url) {
        db.execute_unprepared("ANALYZE").await?;
    }
    db.close().await?;
    anyhow::ensure!(written == (lots * (SPENDS + 2)) as u64, "wrote {written} entries");
    Ok((Timeline { start, minutes }, started.elapsed()))
}

async fn flush(
    txn: &impl ConnectionTrait,
    entries: &mut Vec<journal_entry::ActiveModel>,
    lines: &mut Vec<journal_line::ActiveModel>,
) -> anyhow::Result<u64> {
    if entries.is_empty() {
        return Ok(0);
    }
    let count = entries.len() as u64;
    journal_entry::Entity::insert_many(std::mem::take(entries)).exec_without_returning(txn).await?;
    journal_line::Entity::insert_many(std::mem::take(lines)).exec_without_returning(txn).await?;
    Ok(count)
}

async fn scalar(conn: &impl ConnectionTrait, sql: &str) -> anyhow::Result<i64> {
    let row = conn.query_one_raw(sea_orm::Statement::from_string(conn.get_database_backend(), sql)).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(1))
}
