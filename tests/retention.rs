//! Retention (issue 19): the purge removes exactly the operational rows past their retention,
//! and nothing of the ledger, the claims or the markers catching up needs.

use crate::on_both;
use crate::support::{Backend, TestApp};
use chrono::{DateTime, Duration, Utc};
use credits::service::jobs::Job;
use credits::service::retention::RetentionReport;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, Value};

/// Runs `sql` written with `$n` placeholders on either database.
async fn exec(db: &DatabaseConnection, sql: &str, values: Vec<Value>) {
    let backend = db.get_database_backend();
    let sql = if backend == sea_orm::DbBackend::Sqlite { sql.replace('$', "?") } else { sql.to_string() };
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await.unwrap_or_else(|e| panic!("{e}"));
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn strings(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect()
}

async fn event(db: &DatabaseConnection, payload: &str, created: DateTime<Utc>, delivered: Option<DateTime<Utc>>) {
    exec(
        db,
        "INSERT INTO outbox (topic, account_id, payload, created_at, delivered_at, attempts) VALUES ('test.retention', NULL, $1, $2, $3, 1)",
        vec![payload.into(), created.into(), delivered.into()],
    )
    .await;
}

async fn marker(db: &DatabaseConnection, job: &str, period: &str, status: &str, finished: Option<DateTime<Utc>>) {
    let started = finished.unwrap_or_else(Utc::now) - Duration::minutes(1);
    exec(
        db,
        "INSERT INTO job_runs (job, period, status, cursor, batches, items, attempts, started_at, updated_at, finished_at) \
         VALUES ($1, $2, $3, 0, 1, 0, 1, $4, $4, $5)",
        vec![job.into(), period.into(), status.into(), started.into(), finished.into()],
    )
    .await;
}

/// A scheduler tick in apalis's own table: `id`, status, attempts of 25, finished `done` ago.
async fn tick(app: &TestApp, id: &str, status: &str, attempts: i32, done: Option<Duration>) {
    let db = &app.ledger.db;
    let done_at = done.map(|ago| Utc::now() - ago);
    match app.backend {
        Backend::Sqlite => {
            let sql =
                "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, done_at) VALUES (x'00', $1, 'Test', $2, $3, 25, $4)";
            exec(db, sql, vec![id.into(), status.into(), attempts.into(), done_at.map(|d| d.timestamp()).into()]).await;
        }
        Backend::Postgres => {
            let sql = "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, done_at) \
                       VALUES ('\\x00'::bytea, $1, 'Test', $2, $3, 25, $4)";
            exec(db, sql, vec![id.into(), status.into(), attempts.into(), done_at.into()]).await;
        }
    }
}

/// A worker process registered with the scheduler, last seen `ago`.
async fn worker(app: &TestApp, id: &str, ago: Duration) {
    let seen = Utc::now() - ago;
    let (sql, seen): (&str, Value) = match app.backend {
        Backend::Sqlite => {
            ("INSERT INTO Workers (id, worker_type, storage_name, last_seen) VALUES ($1, 'Test', 'Test', $2)", seen.timestamp().into())
        }
        Backend::Postgres => {
            ("INSERT INTO apalis.workers (id, worker_type, storage_name, last_seen) VALUES ($1, 'Test', 'Test', $2)", seen.into())
        }
    };
    exec(&app.ledger.db, sql, vec![id.into(), seen]).await;
}

fn workers_table(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "Workers",
        Backend::Postgres => "apalis.workers",
    }
}

fn ticks_table(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "Jobs",
        Backend::Postgres => "apalis.jobs",
    }
}

/// Rows of the tables that are never purged, in a fixed order.
async fn ledger_rows(db: &DatabaseConnection) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in ["accounts", "lots", "journal_entries", "journal_lines", "purchases", "claims", "idempotency_keys"] {
        counts.push(count(db, &format!("SELECT COUNT(*) FROM {table}")).await);
    }
    counts
}

async fn purge_removes_exactly_the_operational_rows_past_their_retention(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    // A failed period marker is seeded on purpose: the purge must keep it.
    app.expect_job_failures();
    let db = &app.ledger.db;
    credits::db::job_storage(db).prepare().await.expect("the job storage is prepared");
    let now = Utc::now();
    let days = Duration::days;
    app.create_account("user-1").await;
    app.grant("user-1", "10", "PAID", None, "grant-1").await;
    app.spend("user-1", "3", "spend-1").await;

    // Delivered events: 30 days by default. One never delivered is kept, however old.
    event(db, "old-delivered", now - days(41), Some(now - days(40))).await;
    event(db, "recent-delivered", now - days(6), Some(now - days(5))).await;
    event(db, "never-delivered", now - days(100), None).await;
    // Received Stripe events: as long as delivered events.
    for (id, ago) in [("evt_old", days(31)), ("evt_recent", days(2))] {
        let received = credits::store::stripe_events::Received {
            event_id: id,
            event_type: "charge.refunded",
            purchase_id: None,
            outcome: "ignored",
            detail: None,
        };
        assert!(credits::store::stripe_events::record(db, received, now - ago).await.unwrap());
    }
    // Rate snapshots: 90 days.
    for (ago, workload) in [(days(100), "old"), (days(10), "recent")] {
        exec(
            db,
            "INSERT INTO market_rate_snapshots (workload, at, average_micros, min_micros, max_micros, providers) VALUES ($1, $2, 1, 1, 1, 1)",
            vec![workload.into(), (now - ago).into()],
        )
        .await;
    }
    // Wrong coupon guesses: 7 days.
    let account = count(db, "SELECT id FROM accounts WHERE external_id = 'user-1'").await;
    for ago in [days(8), Duration::hours(1)] {
        exec(db, "INSERT INTO coupon_failures (account_id, attempted_at) VALUES ($1, $2)", vec![account.into(), (now - ago).into()]).await;
    }
    // Period markers: 90 days, never a run that is not done, never a job's latest done period.
    marker(db, "TestA", "2025-12-31", "failed", None).await;
    marker(db, "TestA", "2026-01-01", "done", Some(now - days(200))).await;
    marker(db, "TestA", "2026-01-02", "done", Some(now - days(199))).await;
    marker(db, "TestA", "2026-01-03", "running", None).await;
    marker(db, "TestB", "2025-12", "done", Some(now - days(300))).await;
    // The scheduler's ticks: 7 days after they finished, and only finished ones.
    tick(&app, "done-old", "Done", 1, Some(days(10))).await;
    tick(&app, "killed-old", "Killed", 1, Some(days(10))).await;
    tick(&app, "failed-for-good", "Failed", 25, Some(days(10))).await;
    tick(&app, "failed-will-retry", "Failed", 1, Some(days(10))).await;
    tick(&app, "done-recent", "Done", 1, Some(days(1))).await;
    tick(&app, "pending", "Pending", 0, None).await;
    tick(&app, "running", "Running", 1, None).await;
    // Worker registrations: one gone for 10 days, one gone as long but still holding a
    // running tick's lock, one seen now.
    worker(&app, "gone", Duration::days(10)).await;
    worker(&app, "gone-holding-a-lock", Duration::days(10)).await;
    worker(&app, "alive", Duration::zero()).await;
    let lock = "UPDATE {ticks} SET lock_by = 'gone-holding-a-lock' WHERE id = 'running'".replace("{ticks}", ticks_table(backend));
    exec(db, &lock, vec![]).await;
    let ledger_before = ledger_rows(db).await;

    let report = app.ledger.purge_operational_rows(now, 1000).await.expect("the purge runs");
    let expected = RetentionReport {
        scheduler_ticks: 3,
        scheduler_workers: 1,
        delivered_events: 1,
        rate_snapshots: 1,
        coupon_failures: 1,
        job_markers: 1,
        spend_counters: 0,
        stripe_events: 1,
    };
    assert_eq!(report, expected);
    assert_eq!(strings(db, "SELECT event_id FROM stripe_events").await, ["evt_recent"]);
    assert!(report.drained(1000));

    let events = strings(db, "SELECT payload FROM outbox WHERE topic = 'test.retention' ORDER BY payload").await;
    assert_eq!(events, ["never-delivered", "recent-delivered"]);
    assert_eq!(strings(db, "SELECT workload FROM market_rate_snapshots").await, ["recent"]);
    assert_eq!(count(db, "SELECT COUNT(*) FROM coupon_failures").await, 1);
    let markers = strings(db, "SELECT period FROM job_runs WHERE job LIKE 'Test%' ORDER BY job, period").await;
    assert_eq!(markers, ["2025-12-31", "2026-01-02", "2026-01-03", "2025-12"]);
    let ticks = strings(db, &format!("SELECT id FROM {} WHERE job_type = 'Test' ORDER BY id", ticks_table(backend))).await;
    assert_eq!(ticks, ["done-recent", "failed-will-retry", "pending", "running"]);
    let workers = strings(db, &format!("SELECT id FROM {} WHERE worker_type = 'Test' ORDER BY id", workers_table(backend))).await;
    assert_eq!(workers, ["alive", "gone-holding-a-lock"]);
    assert_eq!(ledger_rows(db).await, ledger_before, "nothing of the ledger, the claims or the keys");

    // A second round finds nothing more.
    assert_eq!(app.ledger.purge_operational_rows(now, 1000).await.unwrap().total(), 0);
    app.assert_audit_clean().await;
}

async fn purge_goes_in_bounded_rounds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = &app.ledger.db;
    let now = Utc::now();
    for i in 0..25 {
        event(db, &format!("event-{i:02}"), now - Duration::days(50), Some(now - Duration::days(40))).await;
    }
    // No job storage yet (a `serve --no-workers` database): the ticks are simply not there.
    let first = app.ledger.purge_operational_rows(now, 10).await.unwrap();
    assert_eq!((first.delivered_events, first.scheduler_ticks, first.drained(10)), (10, 0, false));
    let mut rounds = 1;
    while !app.ledger.purge_operational_rows(now, 10).await.unwrap().drained(10) {
        rounds += 1;
    }
    assert_eq!(rounds, 2, "10, 10, then 5 and drained");
    assert_eq!(count(db, "SELECT COUNT(*) FROM outbox WHERE topic = 'test.retention'").await, 0);

    // The scheduled job drains every kind in one tick, a bounded round at a time.
    for i in 0..2500 {
        event(db, &format!("more-{i:04}"), now - Duration::days(50), Some(now - Duration::days(40))).await;
    }
    let ran = app.ledger.run_job(Job::PurgeOperationalRows, now).await.expect("the job runs");
    assert_eq!(ran.items, 2500);
    assert_eq!(count(db, "SELECT COUNT(*) FROM outbox WHERE topic = 'test.retention'").await, 0);
}

/// The scheduler stamps its rows with the wall time: on a test clock months ahead, its live
/// workers are kept and only those the wall says are stale go.
async fn on_a_test_clock_the_schedulers_rows_are_judged_by_the_wall(backend: Backend) {
    use credits::ledger::Validity;
    use credits::ledger::test_clock::Advance;
    let app = TestApp::spawn_on_test_clock(backend, crate::support::LEDGER_PROGRAM, Utc::now()).await;
    credits::db::job_storage(&app.ledger.db).prepare().await.unwrap();
    worker(&app, "alive", Duration::minutes(1)).await;
    worker(&app, "stale", Duration::days(30)).await;
    let advanced = app.ledger.advance_clock(Advance::By(Validity::Months(3))).await.unwrap();
    assert!(advanced.stops > 80, "{advanced:?}");
    let db = &app.ledger.db;
    let workers = strings(db, &format!("SELECT id FROM {} WHERE worker_type = 'Test' ORDER BY id", workers_table(backend))).await;
    assert_eq!(workers, ["alive"]);
}

/// Spend-limit counters of periods over a day ago go; the current periods', yesterday's, and
/// one an open hold counted in stay (settling the hold gives its room back there, and the next
/// purge takes it). The limits read the same before and after.
async fn spend_counters_of_past_periods_go(backend: Backend) {
    use credits::ledger::Credits;
    use credits::ledger::spend_limits::Period;
    use credits::service::reservations::ReserveRequest;
    use credits::service::spend_limits::{LimitInput, SetSpendLimitsRequest};
    use credits::service::spending::SpendRequest;
    let app = TestApp::spawn(backend).await;
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    app.clock.set(at("2026-01-02T00:00:00Z"));
    app.create_account("capped").await;
    assert!(app.grant("capped", "1000", "PAID", None, "fund").await["errors"].is_null());
    let limits = vec![
        LimitInput { feature: None, period: Period::Day, max: Credits::from_whole(500) },
        LimitInput { feature: None, period: Period::Month, max: Credits::from_whole(5000) },
    ];
    let request = SetSpendLimitsRequest { account: "capped".into(), limits, max_per_charge: None, idempotency_key: None };
    app.ledger.set_spend_limits(request, app.clock.now()).await.unwrap();
    let ledger = &app.ledger;
    let spend = |key: &str, amount: i64, now: &str| {
        let request = SpendRequest {
            account: "capped".into(),
            amount: Some(Credits::from_whole(amount)),
            price: None,
            idempotency_key: key.into(),
            feature: "chat".into(),
            model: None,
            reason: None,
            metadata: None,
        };
        let now = at(now);
        async move { ledger.spend(request, now).await.unwrap() }
    };
    spend("jan", 10, "2026-01-15T10:00:00Z").await;
    spend("feb", 20, "2026-02-27T10:00:00Z").await;
    let hold = ReserveRequest {
        account: "capped".into(),
        amount: Credits::from_whole(30),
        idempotency_key: "hold".into(),
        feature: "chat".into(),
        model: None,
        reason: None,
        // Open past the purge (a lapsed hold would be released by the next spend).
        hold_seconds: Some(3 * 86_400),
        metadata: None,
    };
    let held = app.ledger.reserve(hold, at("2026-03-08T10:00:00Z")).await.unwrap();
    spend("yesterday", 40, "2026-03-09T23:00:00Z").await;
    spend("today", 50, "2026-03-10T09:00:00Z").await;
    let db = &app.ledger.db;
    let keys = || strings(db, "SELECT period_key FROM spend_usage ORDER BY period_key");
    assert_eq!(keys().await, ["2026-01", "2026-01-15", "2026-02", "2026-02-27", "2026-03", "2026-03-08", "2026-03-09", "2026-03-10"]);
    let account = app.ledger.account("capped").await.unwrap();
    let now = at("2026-03-10T12:00:00Z");
    let before = app.ledger.spend_limits(account.id, now).await.unwrap();

    let report = app.ledger.purge_operational_rows(now, 1000).await.unwrap();
    assert_eq!(report.spend_counters, 4, "{report:?}");
    assert_eq!(keys().await, ["2026-03", "2026-03-08", "2026-03-09", "2026-03-10"], "the hold's day stays");
    assert_eq!(app.ledger.spend_limits(account.id, now).await.unwrap(), before);
    let used: Vec<Credits> = before.limits.iter().map(|l| l.used).collect();
    assert_eq!(used, [Credits::from_whole(50), Credits::from_whole(120)], "today's and March's");

    // The hold settled gives its room back to the day it was counted in; then that day goes.
    app.ledger.release(&held.reservation_id.to_string(), "release", now).await.unwrap();
    let march = count(db, "SELECT used_micros FROM spend_usage WHERE period_key = '2026-03'").await;
    assert_eq!(march, Credits::from_whole(90).micros());
    assert_eq!(app.ledger.purge_operational_rows(now, 1000).await.unwrap().spend_counters, 1);
    assert_eq!(keys().await, ["2026-03", "2026-03-09", "2026-03-10"]);
    app.assert_audit_clean().await;
}

on_both!(
    purge_removes_exactly_the_operational_rows_past_their_retention,
    purge_goes_in_bounded_rounds,
    on_a_test_clock_the_schedulers_rows_are_judged_by_the_wall,
    spend_counters_of_past_periods_go
);

/// A new SQLite file gives purged pages back to the file system, without a full VACUUM.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_sqlite_file_shrinks_after_a_purge() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let db = &app.ledger.db;
    assert_eq!(count(db, "PRAGMA auto_vacuum").await, 2, "incremental auto-vacuum on a new file");
    let now = Utc::now();
    let payload = "x".repeat(4000);
    for _ in 0..500 {
        event(db, &payload, now - Duration::days(50), Some(now - Duration::days(40))).await;
    }
    let pages_before = count(db, "PRAGMA page_count").await;
    while !app.ledger.purge_operational_rows(now, 200).await.unwrap().drained(200) {}
    // The WAL holds the freed pages until a checkpoint moves them into the file.
    exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", vec![]).await;
    app.ledger.purge_operational_rows(now, 200).await.unwrap();
    let pages_after = count(db, "PRAGMA page_count").await;
    assert!(pages_after < pages_before / 2, "{pages_before} pages before, {pages_after} after");
}
