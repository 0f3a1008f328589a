//! The month's end (issue 9): every account's monthly plan lot expires at one instant and the
//! next month's plan credits are granted to every account. Both run through the service code the
//! workers call (`Engine::run_job`), in this process with the worker's pool, with the clock set
//! just past the month's end; the harness times each job from its first batch to its last.

use chrono::{DateTime, Datelike, NaiveTime, Utc};
use credits::service::jobs::Job;
use sea_orm::{ConnectionTrait, TransactionTrait};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The plan the seeded accounts are on (arkain's free plan: 50 credits a calendar month).
const PLAN: &str = "free";
const PLAN_MICROS: i64 = 50_000_000;

/// One scheduled job's run over the seeded month.
#[derive(Debug, Clone)]
pub struct JobRun {
    pub job: Job,
    /// Lots written off, or accounts swept.
    pub items: u64,
    pub elapsed: Duration,
}

/// The first instant of the month after `now`'s.
pub fn next_month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let first = now.date_naive().with_day(1).expect("day 1 exists");
    first.checked_add_months(chrono::Months::new(1)).expect("in range").and_time(NaiveTime::MIN).and_utc()
}

/// `month-0` .. `month-{accounts-1}` on the free plan, each with this month's plan lot (expiring
/// at `month_end`), its grant entry (with the balance after it) and line (with the entry's
/// instant, which places it in its month's partition on PostgreSQL) and the balance to match;
/// the lot's grant key is its claim on the month (migration 000034). Set-based SQL, the same
/// text on both databases, in slices of 100k accounts per transaction.
pub async fn seed(url: &str, accounts: usize, month_end: DateTime<Utc>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let db = credits::db::connect(url, 1).await?;
    let month_start = month_end.checked_sub_months(chrono::Months::new(1)).expect("in range");
    let (granted, ends) = (sql_instant(&db, month_start), sql_instant(&db, month_end));
    let period = format!("{PLAN}:{}", month_start.format("%Y-%m"));
    const SLICE: usize = 100_000;
    for first in (0..accounts).step_by(SLICE) {
        let last = (first + SLICE).min(accounts) - 1;
        let txn = db.begin().await?;
        // This slice's rows are those past the ids each table had before it.
        let (accounts_before, lots_before) = (max_id(&txn, "accounts").await?, max_id(&txn, "lots").await?);
        let entries_before = max_id(&txn, "journal_entries").await?;
        txn.execute_unprepared(&format!(
            "WITH RECURSIVE s(n) AS (SELECT {first} UNION ALL SELECT n + 1 FROM s WHERE n < {last}) \
             INSERT INTO accounts (external_id, plan, status, identity_verified, credit_mail_enabled, balance_micros, \
                                   created_at, plan_since, referral_code, low_credits_notified_at) \
             SELECT 'month-' || CAST(n AS TEXT), '{PLAN}', 'active', FALSE, TRUE, {PLAN_MICROS}, {granted}, {granted}, NULL, NULL FROM s"
        ))
        .await?;
        txn.execute_unprepared(&format!(
            "INSERT INTO lots (account_id, class, source, granted_micros, remaining_micros, granted_at, expires_at, \
                               origin_kind, origin_id, open, expiry_notice_sent) \
             SELECT a.id, 'free', 'monthly_plan', {PLAN_MICROS}, {PLAN_MICROS}, {granted}, {ends}, 'plan', '{period}', TRUE, TRUE \
             FROM accounts a WHERE a.id > {accounts_before} ORDER BY a.id"
        ))
        .await?;
        // The lot's id rides in `reason` from the entries to their lines, then is replaced.
        txn.execute_unprepared(&format!(
            "INSERT INTO journal_entries (account_id, kind, amount_micros, effective_at, created_at, operation, \
                                          idempotency_key, feature, model, reason, balance_after_micros) \
             SELECT l.account_id, 'grant', {PLAN_MICROS}, {granted}, {granted}, 'plan_credits', NULL, NULL, NULL, \
                    'seed:' || CAST(l.id AS TEXT), {PLAN_MICROS} \
             FROM lots l WHERE l.id > {lots_before} ORDER BY l.id"
        ))
        .await?;
        txn.execute_unprepared(&format!(
            "INSERT INTO journal_lines (entry_id, lot_id, delta_micros, created_at) \
             SELECT e.id, CAST(SUBSTR(e.reason, 6) AS BIGINT), e.amount_micros, e.created_at FROM journal_entries e \
             WHERE e.id > {entries_before} AND e.reason LIKE 'seed:%'"
        ))
        .await?;
        txn.execute_unprepared(&format!("UPDATE journal_entries SET reason = 'Free' WHERE id > {entries_before} AND reason LIKE 'seed:%'"))
            .await?;
        txn.commit().await?;
    }
    if !credits::db::is_sqlite(url) {
        // What autovacuum would do in time: the planner sees the tables as they now are.
        db.execute_unprepared("ANALYZE").await?;
    }
    db.close().await?;
    Ok(started.elapsed())
}

async fn max_id(txn: &sea_orm::DatabaseTransaction, table: &str) -> anyhow::Result<i64> {
    let sql = format!("SELECT COALESCE(MAX(id), 0) FROM {table}");
    let row = txn.query_one_raw(sea_orm::Statement::from_string(txn.get_database_backend(), sql)).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0))
}

/// An instant as a literal each database compares correctly with its stored ones: SQLite keeps
/// them as text, in the RFC 3339 form sqlx writes.
fn sql_instant(db: &sea_orm::DatabaseConnection, at: DateTime<Utc>) -> String {
    let text = at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => format!("TIMESTAMPTZ '{text}'"),
        _ => format!("'{text}'"),
    }
}

/// Runs the month-end expiry, then the next month's grants, one second past `month_end`.
pub async fn run(url: &str, month_end: DateTime<Utc>) -> anyhow::Result<Vec<JobRun>> {
    let db = credits::db::connect(url, 8).await?;
    let program = credits::program::Program::load("arkain")?;
    let ledger = Arc::new(credits::service::Engine::new(db.clone(), Arc::new(program)));
    let at = month_end + chrono::Duration::seconds(1);
    let mut runs = Vec::new();
    for job in [Job::ExpireLots, Job::GrantMonthlyPlanCredits] {
        let started = Instant::now();
        let report = ledger.run_job(job, at).await?;
        anyhow::ensure!(report.complete, "{} stopped before the end", job.name());
        eprintln!("  {} done: {} items in {:.1} s", job.name(), report.items, started.elapsed().as_secs_f64());
        runs.push(JobRun { job, items: report.items, elapsed: started.elapsed() });
    }
    db.close().await?;
    Ok(runs)
}
