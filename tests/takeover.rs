//! A process running the month's plan grants is killed (SIGKILL) halfway through its sweep, and
//! another process finishes the month (issue 28): on PostgreSQL, with the real binary.
//!
//! The sweep keeps its place in `job_runs` (a cursor moved once per `sweep_batch` accounts, in
//! the same transaction as the batch's grants), so whoever runs the job next resumes there: no
//! account is skipped and none is granted twice (each grant's lot is keyed per account and
//! month by a unique index, in the grant's own transaction). Here the first process is `credits jobs --run`
//! with a small `sweep_batch`, killed once its cursor has moved; the second is the same command,
//! as a `credits worker`'s next tick would be (the monthly grant ticks hourly).

use crate::support::serve::{ServeProcess, credits_command};
use crate::support::{Backend, SECRET, TestDb, gql_at};
use chrono::{DateTime, Utc};
use credits::auth::{AuthKeys, Role};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Accounts on arkain's free plan (50 credits a calendar month), and how many the sweep takes
/// per step: 120 steps, each a transaction, so the kill lands mid-sweep.
const ACCOUNTS: usize = 3000;
const SWEEP_BATCH: &str = "25";
const JOB: &str = "GrantMonthlyPlanCredits";

fn command(database_url: &str, dir: &std::path::Path) -> Command {
    let mut command = credits_command();
    command
        .env("DATABASE_URL", database_url)
        .env("CREDITS_AUTH_SECRET", std::str::from_utf8(SECRET).unwrap())
        .env("CREDITS_PROGRAM", "arkain")
        .env("CREDITS_CLOCK", "test")
        .env("CREDITS_CLOCK_START", "2027-01-31T12:00:00Z")
        .env("CREDITS_SWEEP_BATCH", SWEEP_BATCH)
        .env("RUST_LOG", "info,sqlx=warn")
        .env("NO_COLOR", "1")
        .current_dir(dir);
    command
}

async fn create_accounts(address: &str) {
    let service = AuthKeys::new(SECRET).issue(Role::Service, None, Duration::from_secs(3600)).unwrap();
    let client = reqwest::Client::new();
    let creating = futures::stream::iter(0..ACCOUNTS).map(|i| {
        let (client, service) = (client.clone(), service.clone());
        async move {
            let query = "mutation($a: ID!) { createAccount(input: {externalId: $a}) { created } }";
            let answer = gql_at(&client, address, &service, query, json!({ "a": format!("user-{i}") })).await;
            assert!(answer["errors"].is_null(), "{answer}");
        }
    });
    use futures::StreamExt;
    creating.buffer_unordered(16).collect::<Vec<()>>().await;
}

/// The sweep's run of the month: (status, cursor, items), if it has started.
async fn run_of_the_month(db: &DatabaseConnection) -> Option<(String, i64, i64)> {
    let sql = format!("SELECT status, cursor, items FROM job_runs WHERE job = '{JOB}' ORDER BY period DESC LIMIT 1");
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap()?;
    Some((row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap(), row.try_get_by_index(2).unwrap()))
}

async fn counts(db: &DatabaseConnection, sql: &str) -> Vec<(String, i64, i64)> {
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap(), r.try_get_by_index(2).unwrap())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_killed_midway_is_finished_by_another_process_once_per_account() {
    let test_db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start(command(&test_db.url, dir.path()), &["--no-workers"], dir.path(), "serve").await;
    create_accounts(&serve.address).await;
    let db = credits::db::connect(&test_db.url, 2).await.unwrap();

    // The month ends: the clock moves past it without running anything (`advanceClock` would
    // run the jobs in the server itself).
    let february: DateTime<Utc> = "2027-02-01T00:10:00Z".parse().unwrap();
    assert!(credits::store::test_clock::move_to(&db, february, Utc::now()).await.unwrap());

    let first_log = dir.path().join("first.log");
    let mut first = command(&test_db.url, dir.path())
        .args(["jobs", "--run"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&first_log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let at_kill = loop {
        if let Some((status, cursor, items)) = run_of_the_month(&db).await
            && status == "running"
            && cursor > 0
            && items as usize >= ACCOUNTS / 3
        {
            first.kill().unwrap();
            let _ = first.wait();
            break (cursor, items);
        }
        if let Ok(Some(status)) = first.try_wait() {
            panic!("the first process ended ({status}) before it could be killed mid-sweep: {:?}", run_of_the_month(&db).await);
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the sweep never started: {}", std::fs::read_to_string(&first_log).unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (status, cursor, items) = run_of_the_month(&db).await.unwrap();
    assert_eq!(status, "running", "the killed run stays where it stopped");
    assert!(cursor >= at_kill.0 && (items as usize) < ACCOUNTS, "killed midway: cursor {cursor}, {items} of {ACCOUNTS} accounts granted");

    // Another process takes over.
    let second = command(&test_db.url, dir.path()).args(["jobs", "--run"]).output().unwrap();
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let (status, _, total) = run_of_the_month(&db).await.unwrap();
    assert_eq!(status, "done", "{}", String::from_utf8_lossy(&second.stdout));
    assert_eq!(total as usize, ACCOUNTS, "the run's items: each account once, from both processes together");

    // Each account holds one plan grant per month: a plan lot per account and grant key.
    let months = counts(
        &db,
        "SELECT origin_id, COUNT(*), COUNT(DISTINCT account_id) FROM lots WHERE origin_kind = 'plan' GROUP BY origin_id ORDER BY origin_id",
    )
    .await;
    let latest = months.last().expect("plan grants were made");
    assert_eq!((latest.1 as usize, latest.2 as usize), (ACCOUNTS, ACCOUNTS), "February: one grant for every account: {months:?}");
    for (period, grants, accounts) in &months {
        assert_eq!(grants, accounts, "{period}: no account twice");
    }
    let entries =
        counts(&db, "SELECT 'plan', COUNT(*), COUNT(DISTINCT account_id) FROM journal_entries WHERE operation = 'plan_credits'").await;
    let lots: i64 = months.iter().map(|m| m.1).sum();
    assert_eq!(entries[0].1, lots, "a grant entry per plan lot: {entries:?}");

    let audit = command(&test_db.url, dir.path()).arg("audit").output().unwrap();
    assert!(audit.status.success(), "{}\n{}", String::from_utf8_lossy(&audit.stdout), String::from_utf8_lossy(&audit.stderr));
    let _ = db.close().await;
    eprintln!(
        "takeover: {ACCOUNTS} accounts, sweep_batch {SWEEP_BATCH}; the first process SIGKILLed at cursor {} after {} grants; \
         the second finished the month: {ACCOUNTS} grants in all, none twice, audit clean",
        at_kill.0, items
    );
}
