//! Scheduled work as the workers will run it: keyed by job and period, resumable, caught up.

use crate::on_both;
use crate::support::{Backend, TestApp};
use chrono::{DateTime, Datelike, Duration, Utc};
use credits::service::jobs::Job;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// Monthly plan lots per account, as (account id, count) for accounts with any.
async fn plan_lots_in(app: &TestApp, month_start: DateTime<Utc>) -> Vec<i64> {
    let db = &app.ledger.db;
    let sql =
        "SELECT account_id, COUNT(*) FROM lots WHERE source = 'monthly_plan' AND origin_id LIKE $1 GROUP BY account_id ORDER BY account_id";
    let sql = if app.backend == Backend::Sqlite { sql.replace("$1", "?") } else { sql.to_string() };
    let pattern = format!("%:{}", month_start.format("%Y-%m"));
    let rows = db.query_all_raw(Statement::from_sql_and_values(db.get_database_backend(), sql, [pattern.into()])).await.unwrap();
    rows.iter().map(|r| r.try_get_by_index::<i64>(1).unwrap()).collect()
}

async fn monthly_plan_credits_are_granted_once_per_month_in_resumable_batches(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, "arkain").await;
    app.ledger.sweep_batch = Some(10);
    app.clock.set(at("2026-01-15T12:00:00Z"));
    for i in 0..25 {
        app.create_account(&format!("user-{i:02}")).await;
    }
    // The last second of January: January's credits were granted at sign-up; nothing new.
    let january = app.ledger.run_job(Job::GrantMonthlyPlanCredits, at("2026-01-31T23:59:59Z")).await.unwrap();
    assert_eq!(january.periods, ["2026-01"]);
    assert_eq!(plan_lots_in(&app, at("2026-01-01T00:00:00Z")).await, vec![1; 25]);

    // February 1st, 00:00:00: one batch, then a crash; the next run resumes where it stopped.
    let february = at("2026-02-01T00:00:00Z");
    let partial = app.ledger.run_job_bounded(Job::GrantMonthlyPlanCredits, february, 1).await.unwrap();
    assert_eq!((partial.items, partial.complete), (10, false));
    assert_eq!(plan_lots_in(&app, february).await.len(), 10);
    let rest = app.ledger.run_job(Job::GrantMonthlyPlanCredits, february + Duration::minutes(5)).await.unwrap();
    assert_eq!((rest.items, rest.periods.clone()), (15, vec!["2026-02".to_string()]));
    assert_eq!(plan_lots_in(&app, february).await, vec![1; 25], "each account once");
    // Again later in the month: the period is done.
    let again = app.ledger.run_job(Job::GrantMonthlyPlanCredits, at("2026-02-28T23:59:59Z")).await.unwrap();
    assert_eq!((again.items, again.periods.len()), (0, 0));
    let expires =
        app.gql(&app.service, "{ account(id: \"user-00\") { lots(first: 1) { edges { node { expiresAt } } } } }", json!({})).await;
    assert_eq!(expires["data"]["account"]["lots"]["edges"][0]["node"]["expiresAt"], json!("2026-03-01T00:00:00+00:00"));

    // Two workers racing on March: every account still gets March's credits exactly once.
    let march = at("2026-03-01T00:00:00Z");
    let (a, b) =
        tokio::join!(app.ledger.run_job(Job::GrantMonthlyPlanCredits, march), app.ledger.run_job(Job::GrantMonthlyPlanCredits, march));
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert_eq!(plan_lots_in(&app, march).await, vec![1; 25]);
    app.clock.set(march);
    app.assert_audit_clean().await;
}

async fn a_failed_run_is_recorded_and_resumed_without_double_effect(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, "arkain").await;
    app.ledger.sweep_batch = Some(4);
    app.clock.set(at("2026-04-20T00:00:00Z"));
    for i in 0..10 {
        app.create_account(&format!("user-{i}")).await;
    }
    // A stored value the code does not know makes one account's grant fail mid-sweep.
    let db = &app.ledger.db;
    db.execute_unprepared("UPDATE accounts SET status = 'bogus' WHERE external_id = 'user-6'").await.unwrap();
    let may = at("2026-05-01T00:00:00Z");
    assert!(app.ledger.run_job(Job::GrantMonthlyPlanCredits, may).await.is_err());
    let runs = app.ledger.job_runs(Job::GrantMonthlyPlanCredits, 3).await.unwrap();
    let may_run = runs.iter().find(|r| r.period == "2026-05").unwrap();
    assert_eq!(may_run.status, credits::service::operations::JobRunStatus::Failed);
    assert!(may_run.last_error.as_deref().unwrap().contains("account"), "{may_run:?}");
    let granted_before = plan_lots_in(&app, may).await.len();
    assert!((4..10).contains(&granted_before), "{granted_before}");

    db.execute_unprepared("UPDATE accounts SET status = 'active' WHERE external_id = 'user-6'").await.unwrap();
    let retried = app.ledger.run_job(Job::GrantMonthlyPlanCredits, may + Duration::minutes(1)).await.unwrap();
    assert_eq!(retried.periods, ["2026-05"]);
    assert_eq!(plan_lots_in(&app, may).await, vec![1; 10], "every account once, none twice");
    app.clock.set(may);
    app.assert_audit_clean().await;
}

async fn daily_renewals_catch_up_missed_days_in_order(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, "carat").await;
    app.ledger.sweep_batch = Some(3);
    app.clock.set(at("2026-01-30T09:00:00Z"));
    for i in 0..5 {
        let r = app
            .gql(
                &app.service,
                "mutation($id: ID!) { createAccount(input: {externalId: $id, plan: \"plus\"}) { created } }",
                json!({ "id": format!("sub-{i}") }),
            )
            .await;
        assert!(r["errors"].is_null());
    }
    let first = app.ledger.run_job(Job::RenewSubscriptions, at("2026-02-26T01:00:00Z")).await.unwrap();
    assert_eq!(first.periods, ["2026-02-26"]);
    // Down for three days, across February's end: the missed days run in order, and each
    // subscription renews once, on 2026-02-28 09:00 (a month from January 30th, clamped).
    let caught_up = app.ledger.run_job(Job::RenewSubscriptions, at("2026-03-01T10:00:00Z")).await.unwrap();
    assert_eq!(caught_up.periods, ["2026-02-27", "2026-02-28", "2026-03-01"]);
    app.clock.set(at("2026-03-01T10:00:00Z"));
    for i in 0..5 {
        assert_eq!(app.balance(&format!("sub-{i}")).await, "10000", "January's credits ended; February's renewal counts once");
    }
    app.assert_audit_clean().await;
}

async fn continuous_jobs_drain_their_queues(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    let now = app.clock.now();
    for i in 0..3 {
        app.grant("a", "1", "FREE", Some(now + Duration::minutes(i + 1)), &format!("g-{i}")).await;
    }
    let report = app.ledger.run_job(Job::ExpireLots, now + Duration::hours(1)).await.unwrap();
    assert_eq!((report.items, report.complete), (3, true));
    assert_eq!(app.ledger.run_job(Job::ExpireLots, now + Duration::hours(1)).await.unwrap().items, 0);
    assert_eq!(app.ledger.run_job(Job::ReleaseReferralBonuses, now).await.unwrap().items, 0, "no referrals in this program");
    let status = app.ledger.scheduled_jobs(now).await.unwrap();
    assert_eq!(status.len(), Job::ALL.len());

    // Idempotency keys are kept 30 days, then forgotten: the key is free for a new request.
    assert!(app.spend("a", "0", "too-small").await["errors"].is_array(), "input errors store nothing");
    app.grant("a", "5", "PAID", None, "kept").await;
    assert_eq!(app.ledger.run_job(Job::PurgeIdempotencyKeys, now + Duration::days(29)).await.unwrap().items, 0);
    let purged = app.ledger.run_job(Job::PurgeIdempotencyKeys, now + Duration::days(31)).await.unwrap();
    assert_eq!(purged.items, 4, "the four grants' records");
    app.clock.set(now + Duration::days(31));
    let reused = app.grant("a", "6", "PAID", None, "kept").await;
    assert!(reused["errors"].is_null(), "{reused}");
}

/// One sweep batch grants a month's credits to many accounts in one transaction: an account
/// that may not receive credits is passed over, one that already has the month's credits (a plan
/// change this month) gets none again, and each grant is its own lot, entry and claim.
async fn one_batch_grants_many_accounts_once(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, "arkain").await;
    app.ledger.sweep_batch = Some(1000);
    // The sweep's batch in parts of 7 accounts, side by side on PostgreSQL.
    app.ledger.job_part = 7;
    app.clock.set(at("2026-06-10T08:00:00Z"));
    for i in 0..30 {
        app.create_account(&format!("user-{i:02}")).await;
    }
    let db = &app.ledger.db;
    db.execute_unprepared("UPDATE accounts SET status = 'suspended' WHERE external_id = 'user-07'").await.unwrap();
    let july = at("2026-07-01T00:00:00Z");
    app.clock.set(july);
    let moved = app
        .gql(
            &app.service,
            "mutation { changePlan(input: { accountId: \"user-11\", plan: \"membership\", idempotencyKey: \"up\" }) { granted } }",
            json!({}),
        )
        .await;
    assert!(moved["errors"].is_null(), "{moved}");
    // The batch on its own (no fallback to one by one behind it) over half the accounts, then
    // the job over all of them, which grants the other half in parts.
    let ids: Vec<i64> = (0..30)
        .map(|i| format!("user-{i:02}"))
        .map(|external| async move { credits::store::accounts::by_external_id(db, &external).await.unwrap().unwrap().id })
        .collect::<futures::future::JoinAll<_>>()
        .await;
    let when = july + Duration::minutes(1);
    let first = &ids[..15];
    assert_eq!(app.ledger.grant_plan_credits_many(first, when).await.unwrap(), 13, "not the suspended one, nor user-11 again");
    assert_eq!(app.ledger.grant_plan_credits_many(first, when).await.unwrap(), 0);
    let report = app.ledger.run_job(Job::GrantMonthlyPlanCredits, when).await.unwrap();
    assert_eq!((report.items, report.periods.clone()), (30, vec!["2026-07".to_string()]), "30 accounts swept");
    let granted = plan_lots_in(&app, july).await;
    assert_eq!(granted, vec![1; 29], "every account but the suspended one, user-11 once");
    let keys = "SELECT COUNT(*) FROM lots WHERE origin_kind = 'plan' AND origin_id LIKE '%:2026-07'";
    let count = db.query_one_raw(Statement::from_string(db.get_database_backend(), keys)).await.unwrap().unwrap();
    assert_eq!(count.try_get_by_index::<i64>(0).unwrap(), 29, "a plan lot per grant, each the grant's key");
    let claims = "SELECT COUNT(*) FROM claims WHERE kind = 'plan_credits'";
    let count = db.query_one_raw(Statement::from_string(db.get_database_backend(), claims)).await.unwrap().unwrap();
    assert_eq!(count.try_get_by_index::<i64>(0).unwrap(), 0, "the plan lot is the grant's claim: no claim row besides");
    assert_eq!(app.balance("user-00").await, "50", "July's (June's ended with June)");
    assert_eq!(app.balance("user-11").await, "1000", "the membership's, granted with the change");
    assert_eq!(app.balance("user-07").await, "0", "suspended: none for July");
    app.assert_audit_clean().await;
}

/// A grant batch large enough for PostgreSQL's array statements (`store::pg_array::FROM_ROWS`
/// rows and more) writes exactly what small batches (`VALUES` lists) write: the same lots,
/// entries, lines and balances, account for account.
async fn a_large_grant_batch_writes_what_small_ones_do(backend: Backend) {
    use credits::store::pg_array::FROM_ROWS;
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.clock.set(at("2026-06-10T08:00:00Z"));
    let accounts = 2 * (FROM_ROWS + 2);
    for i in 0..accounts {
        app.create_account(&format!("user-{i:03}")).await;
    }
    let db = &app.ledger.db;
    let mut ids = Vec::new();
    for i in 0..accounts {
        ids.push(credits::store::accounts::by_external_id(db, &format!("user-{i:03}")).await.unwrap().unwrap().id);
    }
    let when = at("2026-07-01T00:01:00Z");
    app.clock.set(when);
    let (large, small) = ids.split_at(accounts / 2);
    assert_eq!(app.ledger.grant_plan_credits_many(large, when).await.unwrap(), large.len() as u64, "one batch");
    for part in small.chunks(10) {
        assert_eq!(app.ledger.grant_plan_credits_many(part, when).await.unwrap(), part.len() as u64);
    }
    // Each July grant as everything written for it but its ids, counted in each half.
    let split = small[0];
    let sql = format!(
        "SELECT sig, SUM(CASE WHEN account_id < {split} THEN 1 ELSE 0 END), SUM(CASE WHEN account_id < {split} THEN 0 ELSE 1 END) \
         FROM (SELECT l.account_id, l.class || '|' || l.source || '|' || COALESCE(CAST(l.granted_micros AS TEXT), '-') || '|' || \
               COALESCE(CAST(l.remaining_micros AS TEXT), '-') || '|' || COALESCE(CAST(l.granted_at AS TEXT), '-') || '|' || COALESCE(CAST(l.expires_at AS TEXT), '-') \
               || '|' || COALESCE(l.origin_kind, '-') || '|' || COALESCE(CAST(l.priority AS TEXT), '-') || '|' || COALESCE(CAST(l.effective_at AS TEXT), '-') || '|' \
               || COALESCE(l.features, '-') || '|' || e.kind || '|' || COALESCE(CAST(e.amount_micros AS TEXT), '-') || '|' || \
               COALESCE(CAST(e.balance_after_micros AS TEXT), '-') || '|' || COALESCE(CAST(e.effective_at AS TEXT), '-') || '|' || COALESCE(CAST(e.created_at AS TEXT), '-') \
               || '|' || COALESCE(e.operation, '-') || '|' || COALESCE(e.reason, '-') || '|' || COALESCE(e.actor, '-') || '|' || \
               COALESCE(CAST(jl.delta_micros AS TEXT), '-') || '|' || COALESCE(CAST(a.balance_micros AS TEXT), '-') AS sig \
               FROM lots l JOIN journal_lines jl ON jl.lot_id = l.id JOIN journal_entries e ON e.id = jl.entry_id \
               JOIN accounts a ON a.id = l.account_id \
               WHERE l.source = 'monthly_plan' AND l.origin_id LIKE '%:2026-07') AS g GROUP BY sig"
    );
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    let counts: Vec<(String, i64, i64)> =
        rows.iter().map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap(), r.try_get_by_index(2).unwrap())).collect();
    assert_eq!(counts.iter().map(|c| c.1).sum::<i64>(), large.len() as i64, "{counts:?}");
    for (sig, in_large, in_small) in &counts {
        assert_eq!(in_large, in_small, "written alike in both halves: {sig}");
    }
    assert_eq!(app.ledger.grant_plan_credits_many(&ids, when).await.unwrap(), 0, "granted once");
    app.assert_audit_clean().await;
}

on_both!(
    a_large_grant_batch_writes_what_small_ones_do,
    one_batch_grants_many_accounts_once,
    monthly_plan_credits_are_granted_once_per_month_in_resumable_batches,
    a_failed_run_is_recorded_and_resumed_without_double_effect,
    daily_renewals_catch_up_missed_days_in_order,
    continuous_jobs_drain_their_queues
);

/// Two worker processes racing on one database (`credits jobs --run` in each): every account
/// still gets this month's credits exactly once.
async fn two_processes_racing_grant_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    let db = &app.ledger.db;
    // Accounts created without going through sign-up, so this month's credits are still due.
    let rows: Vec<String> = (0..300)
        .map(|i| format!("('racer-{i}', 'free', 'active', false, true, 0, '2026-01-15T00:00:00Z', '2026-01-15T00:00:00Z')"))
        .collect();
    db.execute_unprepared(&format!(
        "INSERT INTO accounts (external_id, plan, status, identity_verified, credit_mail_enabled, balance_micros, created_at, plan_since) VALUES {}",
        rows.join(",")
    ))
    .await
    .unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_credits"))
            .args(["jobs", "--run"])
            .env("DATABASE_URL", &app.db.url)
            .env("CREDITS_PROGRAM", "arkain")
            .env("CREDITS_AUTH_SECRET", std::str::from_utf8(crate::support::SECRET).unwrap())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the binary starts")
    };
    let (mut first, mut second) = (run(), run());
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());
    let month_start = Utc::now().date_naive().with_day(1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
    assert_eq!(plan_lots_in(&app, month_start).await, vec![1; 300]);
    app.clock.set(Utc::now());
    app.assert_audit_clean().await;
}

on_both!(two_processes_racing_grant_once);

/// The job storage lives in the ledger's own database: its tables are created there, twice
/// without harm (every process prepares it at start).
async fn job_storage_is_prepared_in_the_ledger_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let storage = credits::db::job_storage(&app.ledger.db);
    storage.prepare().await.unwrap();
    storage.prepare().await.unwrap();
    let table = if backend == Backend::Sqlite { "Jobs" } else { "apalis.jobs" };
    let db = &app.ledger.db;
    let count = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), format!("SELECT COUNT(*) FROM {table}")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count.try_get_by_index::<i64>(0).unwrap(), 0);
}

on_both!(job_storage_is_prepared_in_the_ledger_database);

/// Two `credits worker` processes on one database both register all their job workers (apalis
/// names workers in the shared storage; duplicate names would leave the second idle).
async fn two_worker_processes_both_register_their_workers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let start = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_credits"))
            .arg("worker")
            .env("DATABASE_URL", &app.db.url)
            .env("CREDITS_PROGRAM", crate::support::LEDGER_PROGRAM)
            .env("CREDITS_AUTH_SECRET", std::str::from_utf8(crate::support::SECRET).unwrap())
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("the binary starts")
    };
    let mut processes = [start(), start()];
    let table = if backend == Backend::Sqlite { "Workers" } else { "apalis.workers" };
    let db = &app.ledger.db;
    let mut registered = 0;
    // Bounded wait for a condition, not a sleep standing in for one. A worker the supervisor
    // restarted (a busy SQLite under CI's load) registers again as `name.1`, `name.2`, ...:
    // the workers are counted by their names without that generation.
    for _ in 0..300 {
        if let Ok(rows) = db.query_all_raw(Statement::from_string(db.get_database_backend(), format!("SELECT id FROM {table}"))).await {
            let names: std::collections::HashSet<String> = rows
                .iter()
                .filter_map(|row| row.try_get_by_index::<String>(0).ok())
                .map(|id| id.split('.').next().unwrap_or_default().to_string())
                .collect();
            registered = names.len() as i64;
            if registered >= 2 * Job::ALL.len() as i64 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for process in &mut processes {
        let _ = process.kill();
        let _ = process.wait();
    }
    assert_eq!(registered, 2 * Job::ALL.len() as i64, "every job's worker in each of the two processes");
}

on_both!(two_worker_processes_both_register_their_workers);

/// A test that leaves a job run failed or an outbox event stuck fails when its `TestApp` is
/// dropped, and says what it left; one that expects that says so and passes.
async fn the_test_app_fails_a_test_that_leaves_a_job_failed(backend: Backend) {
    let leave_failures = |expect: bool| async move {
        let mut app = TestApp::spawn_with(backend, "arkain").await;
        app.clock.set(at("2026-04-20T00:00:00Z"));
        app.create_account("user-1").await;
        let db = &app.ledger.db;
        db.execute_unprepared("UPDATE accounts SET status = 'bogus' WHERE external_id = 'user-1'").await.unwrap();
        assert!(app.ledger.run_job(Job::GrantMonthlyPlanCredits, at("2026-05-01T00:00:00Z")).await.is_err());
        credits::store::outbox::publish(db, "test.stuck", None, &json!({}), app.clock.now()).await.unwrap();
        let stuck = format!("UPDATE outbox SET attempts = {} WHERE topic = 'test.stuck'", crate::support::STUCK_AFTER_ATTEMPTS);
        db.execute_unprepared(&stuck).await.unwrap();
        let leftovers = app.job_leftovers().await;
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
        assert!(leftovers[0].starts_with("job run GrantMonthlyPlanCredits 2026-05 failed: account"), "{leftovers:?}");
        assert!(leftovers[1].contains("(test.stuck) undelivered after 10 attempts"), "{leftovers:?}");
        if expect {
            app.expect_job_failures();
        }
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(app)))
    };
    let unexpected = leave_failures(false).await.expect_err("the check fails the test");
    let message = unexpected.downcast_ref::<String>().expect("a message");
    assert!(message.contains("left jobs failed") && message.contains("GrantMonthlyPlanCredits"), "{message}");
    assert!(leave_failures(true).await.is_ok(), "expected failures pass");
}

on_both!(the_test_app_fails_a_test_that_leaves_a_job_failed);
