//! Seeding in bulk through the credits library's own store and posting code (so the audit
//! holds by construction), in a few big transactions instead of one request per account.

use chrono::{DateTime, Utc};
use credits::ledger::{Credits, LotClass, LotSource};
use credits::service::posting::{self, EntryMeta};
use credits::store::{self, lots::NewLot};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};

/// Each account's monthly free lot (consumed first on arkain) and paid lot, in micro-credits:
/// large enough that no run uses either up, so every spend takes one lot.
pub const FREE_MICROS: i64 = 1_000_000 * 1_000_000;
pub const PAID_MICROS: i64 = 1_000_000 * 1_000_000;

/// Migrates, then creates `bench-0` .. `bench-{accounts-1}`, each with a free lot expiring in
/// 30 days and a paid lot that never expires. Returns how long it took.
pub async fn seed(url: &str, accounts: usize) -> anyhow::Result<std::time::Duration> {
    let started = std::time::Instant::now();
    let db = credits::db::connect(url, 8).await?;
    credits::db::migrate(&db).await?;
    let now = credits::ledger::time::truncate(Utc::now());
    // SQLite has one writer; PostgreSQL takes a few transactions side by side.
    let parallel = if credits::db::is_sqlite(url) { 1 } else { 4 };
    let per = accounts.div_ceil(parallel);
    let mut tasks = tokio::task::JoinSet::new();
    for part in 0..parallel {
        let range = (part * per)..((part + 1) * per).min(accounts);
        let db = db.clone();
        tasks.spawn(async move { seed_range(&db, range, now).await });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    if !credits::db::is_sqlite(url) {
        // A running service's keys table is never empty (it keeps 30 days of them): ten past
        // keys per account. With an empty one, ANALYZE records it empty, and each connection's
        // first plans of the batch's key lookup (a join with a VALUES list) are cached as a
        // whole-table scan; PostgreSQL keeps such a generic plan until the statistics change
        // (autovacuum, about a minute later), by when the table holds thousands of keys and the
        // scan spilled ~100 MB/s of temporary files (../shared/perf-notes.md, docs/benchmarks.md).
        db.execute_unprepared(
            "INSERT INTO idempotency_keys (account_id, operation, key, request_hash, outcome, created_at, expires_at) \
             SELECT a.id, 'spend', 'history-' || a.id || '-' || g, repeat('0', 64), '{}', now() - interval '1 day', now() + interval '29 days' \
             FROM accounts a CROSS JOIN generate_series(1, 10) AS g",
        )
        .await?;
        // What autovacuum does within a minute of a bulk load: without it the first runs plan
        // their joins for empty tables (hash joins over whole-table scans, measured at 4 ms a
        // statement of the limit baseline's batch), and later runs do not.
        db.execute_unprepared("ANALYZE").await?;
    }
    db.close().await?;
    Ok(started.elapsed())
}

async fn seed_range(db: &DatabaseConnection, range: std::ops::Range<usize>, now: DateTime<Utc>) -> anyhow::Result<()> {
    let txn = db.begin().await?;
    for i in range {
        let account = store::accounts::insert(&txn, &format!("bench-{i}"), "free", now).await?;
        let lots = [
            (LotClass::Free, LotSource::MonthlyPlan, FREE_MICROS, Some(now + chrono::Duration::days(30))),
            (LotClass::Paid, LotSource::Adjustment, PAID_MICROS, None),
        ];
        for (class, source, micros, expires_at) in lots {
            let lot = NewLot {
                account_id: account.id,
                class,
                source,
                amount: Credits::from_micros(micros),
                granted_at: now,
                expires_at,
                origin_kind: Some("bench-seed"),
                origin_id: None,
                priority: credits::ledger::Priority::DEFAULT,
                effective_at: None,
                features: None,
            };
            posting::credit(&txn, lot, EntryMeta::now("grant", now)).await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

/// Accounts for the read scenario: `bench-big` with a long past (`big_lots` used-up lots, ten
/// journal entries each: a grant of 9 credits and nine spends of 1) and `bench-small` with a
/// short one (`small_lots`), each with one open lot of 1,000 credits. Written in set-based SQL
/// (one statement per table, the same text on both databases), balanced by construction: the
/// audit checks it at the end of the run. Returns how long it took.
pub async fn seed_history(url: &str, big_lots: usize, small_lots: usize) -> anyhow::Result<std::time::Duration> {
    let started = std::time::Instant::now();
    let db = credits::db::connect(url, 1).await?;
    let now = credits::ledger::time::truncate(Utc::now());
    for (external_id, lots) in [("bench-big", big_lots), ("bench-small", small_lots)] {
        let txn = db.begin().await?;
        let account = store::accounts::insert(&txn, external_id, "free", now).await?;
        let id = account.id;
        txn.execute_unprepared(&format!(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {lots}) \
             INSERT INTO lots (account_id, class, source, granted_micros, remaining_micros, granted_at, expires_at, \
                               origin_kind, origin_id, open, expiry_notice_sent) \
             SELECT {id}, 'paid', 'adjustment', 9000000, 0, a.created_at, NULL, 'bench-history', NULL, FALSE, FALSE \
             FROM s, accounts a WHERE a.id = {id}"
        ))
        .await?;
        // The lot's id rides in `reason` from the entries to their lines.
        txn.execute_unprepared(&format!(
            "WITH RECURSIVE g(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM g WHERE k < 9) \
             INSERT INTO journal_entries (account_id, kind, amount_micros, effective_at, created_at, operation, \
                                          idempotency_key, feature, model, reason, balance_after_micros) \
             SELECT {id}, CASE WHEN g.k = 0 THEN 'grant' ELSE 'spend' END, CASE WHEN g.k = 0 THEN 9000000 ELSE -1000000 END, \
                    l.granted_at, l.granted_at, CASE WHEN g.k = 0 THEN 'grant' ELSE 'spend' END, NULL, \
                    CASE WHEN g.k = 0 THEN NULL ELSE 'bench' END, NULL, CAST(l.id AS TEXT), (9 - g.k) * 1000000 \
             FROM lots l, g WHERE l.account_id = {id} AND l.origin_kind = 'bench-history' ORDER BY l.id, g.k"
        ))
        .await?;
        txn.execute_unprepared(&format!(
            "INSERT INTO journal_lines (entry_id, lot_id, delta_micros) \
             SELECT e.id, CAST(e.reason AS BIGINT), e.amount_micros FROM journal_entries e \
             WHERE e.account_id = {id} AND e.reason IS NOT NULL"
        ))
        .await?;
        let open = NewLot {
            account_id: id,
            class: LotClass::Paid,
            source: LotSource::Adjustment,
            amount: Credits::from_whole(1000),
            granted_at: now,
            expires_at: None,
            origin_kind: Some("bench-seed"),
            origin_id: None,
            priority: credits::ledger::Priority::DEFAULT,
            effective_at: None,
            features: None,
        };
        posting::credit(&txn, open, EntryMeta::now("grant", now)).await?;
        txn.commit().await?;
    }
    if !credits::db::is_sqlite(url) {
        // What autovacuum would do in time: the planner sees the tables as they now are.
        db.execute_unprepared("ANALYZE").await?;
    }
    db.close().await?;
    Ok(started.elapsed())
}
