//! Seeding in bulk through the credits library's own store and posting code (so the audit
//! holds by construction), in a few big transactions instead of one request per account.

use chrono::{DateTime, Utc};
use credits::ledger::{Credits, LotClass, LotSource};
use credits::service::posting::{self, EntryMeta};
use credits::store::{self, lots::NewLot};
use sea_orm::{DatabaseConnection, TransactionTrait};

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
            };
            posting::credit(&txn, lot, EntryMeta::now("grant", now)).await?;
        }
    }
    txn.commit().await?;
    Ok(())
}
