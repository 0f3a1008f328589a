//! Scheduled jobs survive a database outage, and `/health` answers quickly through it (issue 17,
//! items 2 and 6a), against the real `credits serve` with its jobs in process:
//!
//! - PostgreSQL: a private server (`support::private_pg`) is stopped for a while and started
//!   again. `/health` answers 503 during it, within a bound that detects a hang.
//! - SQLite: the test holds the write lock on the database file from its own connection for a
//!   while, as another process could.
//!
//! The job's own effect is the proof: a reservation whose deadline falls in the outage must be
//! expired by `ExpireReservations` afterwards (nothing else touches that account, so nothing
//! else releases it), and `/health` must then list no job behind. Before the fix, the outage
//! ended the workers for good and the reservation stayed held.
//!
//! CI runs one short outage of each kind (10 s, 25 s); longer and repeated outages are
//! `#[ignore]`d (`cargo test --test main -- outages:: --ignored`).

use crate::support::private_pg::PrivatePostgres;
use crate::support::serve::{ServeProcess, WorkerProcess, service_command};
use crate::support::{LEDGER_PROGRAM, SECRET, gql_at};
use credits::auth::{AuthKeys, Role};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// A request to `/health` that takes longer has hung: a failure, not a measurement.
const HEALTH_HANG: Duration = Duration::from_secs(5);
/// How long the jobs may take to show their effect after the database is back: the restart
/// backoff's cap (30 s), a 10 s tick, and room for a slow machine.
const RECOVERY: Duration = Duration::from_secs(120);
/// How long a hold lasts: its deadline falls inside the outage that starts right after it.
const HOLD_SECONDS: i64 = 4;
/// How often the test looks again while it waits for something.
const POLL: Duration = Duration::from_millis(250);

/// `credits serve` with its jobs in process; its log (stderr, info) goes to a file the test
/// reads (`support::serve`).
async fn start_serve(database_url: &str, dir: &Path, flags: &[&str]) -> ServeProcess {
    let name = if flags.is_empty() { "serve" } else { "serve-api-only" };
    ServeProcess::start(service_command(database_url, LEDGER_PROGRAM), flags, dir, name).await
}

/// `/health`'s status and body; panics if it does not answer within `HEALTH_HANG`.
async fn health(address: &str) -> (u16, Value) {
    let client = reqwest::Client::builder().timeout(HEALTH_HANG).build().unwrap();
    let response = client
        .get(format!("{address}/health"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/health did not answer within {HEALTH_HANG:?}: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.expect("/health answers JSON"))
}

fn jobs_behind(body: &Value) -> Vec<String> {
    body["jobs"]["behind"]
        .as_array()
        .map(|jobs| jobs.iter().map(|j| j["job"].as_str().unwrap_or("?").to_string()).collect())
        .unwrap_or_default()
}

/// Polls `check` until it gives a value, for at most `bound`; else fails showing `context()`.
async fn eventually<T, F, Fut>(what: &str, bound: Duration, context: impl Fn() -> String, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < bound, "{what}: not within {bound:?}\n{}", context());
        tokio::time::sleep(POLL).await;
    }
}

/// A new account with credits and a hold on them that lapses in `HOLD_SECONDS`.
async fn account_with_a_short_hold(address: &str, account: &str) {
    let keys = AuthKeys::new(SECRET);
    let service = keys.issue(Role::Service, None, Duration::from_secs(3600)).unwrap();
    let admin = keys.issue(Role::Admin, Some("ops"), Duration::from_secs(3600)).unwrap();
    let client = reqwest::Client::new();
    let steps = [
        (&service, "mutation($a: ID!) { createAccount(input: {externalId: $a}) { created } }", json!({ "a": account })),
        (
            &admin,
            "mutation($a: ID!) { grantCredits(input: {accountId: $a, amount: \"10\", class: PAID, idempotencyKey: \"g\"}) { lotId } }",
            json!({ "a": account }),
        ),
        (
            &service,
            "mutation($a: ID!, $s: Int) { reserveCredits(input: {accountId: $a, amount: \"4\", idempotencyKey: \"r\", feature: \"video\", holdSeconds: $s}) { reservationId } }",
            json!({ "a": account, "s": HOLD_SECONDS }),
        ),
    ];
    for (token, query, variables) in steps {
        let answer = gql_at(&client, address, token, query, variables).await;
        assert!(answer["errors"].is_null(), "{query}: {answer}");
    }
}

/// The reservation's status as stored: `held` until someone settles it (here: the job).
async fn stored_status(database_url: &str, account: &str) -> Option<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = credits::db::connect(database_url, 1).await.ok()?;
    let sql = format!("SELECT r.status FROM reservations r JOIN accounts a ON a.id = r.account_id WHERE a.external_id = '{account}'");
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.ok().flatten();
    let _ = db.close().await;
    row?.try_get_by_index::<String>(0).ok()
}

/// The server answers before its jobs run (their storage is prepared first): an outage must
/// start after they do. `/health` lists this process's jobs, none behind.
async fn jobs_started(serve: &ServeProcess) {
    eventually(
        "the server's jobs start",
        Duration::from_secs(60),
        || serve.log(),
        || async { serve.log().contains("workers started").then_some(()) },
    )
    .await;
    let (status, body) = health(&serve.address).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobs"], json!({ "inProcess": credits::service::jobs::Job::ALL.len(), "behind": [] }));
}

/// After an outage: the job expired the hold, and `/health` is 200 with no job behind.
async fn jobs_caught_up(serve: &mut ServeProcess, database_url: &str, account: &str) {
    eventually(
        &format!("ExpireReservations expires {account}'s hold after the outage"),
        RECOVERY,
        || serve.log(),
        || async { (stored_status(database_url, account).await.as_deref() == Some("expired")).then_some(()) },
    )
    .await;
    let last = std::sync::Mutex::new(Value::Null);
    let body = eventually(
        "/health: 200 with no job behind",
        RECOVERY,
        || format!("last /health: {}\n{}", last.lock().unwrap(), serve.log()),
        || async {
            let (status, body) = health(&serve.address).await;
            *last.lock().unwrap() = body.clone();
            (status == 200 && jobs_behind(&body).is_empty()).then_some(body)
        },
    )
    .await;
    assert_eq!(body["jobs"]["inProcess"], json!(credits::service::jobs::Job::ALL.len()), "{body}");
    serve.assert_alive();
}

/// The private server goes down `rounds` times for `outage` each; each time a hold lapses during
/// the outage and the job must release it afterwards.
async fn jobs_resume_after_postgres_outages(outage: Duration, rounds: u32) {
    let pg = tokio::task::spawn_blocking(PrivatePostgres::start).await.unwrap();
    let url = pg.create_database("credits_outage").await;
    let dir = tempfile::tempdir().unwrap();
    let mut serve = start_serve(&url, dir.path(), &[]).await;
    jobs_started(&serve).await;
    // A standalone worker beside it, which has no /health: its log must tell the story.
    let mut worker = WorkerProcess::start(service_command(&url, LEDGER_PROGRAM), dir.path(), "worker");
    eventually(
        "the worker's jobs start",
        Duration::from_secs(60),
        || worker.log(),
        || async { worker.log().contains("workers started").then_some(()) },
    )
    .await;

    for round in 0..rounds {
        let account = format!("held-{round}");
        account_with_a_short_hold(&serve.address, &account).await;
        tokio::task::block_in_place(|| pg.stop());
        let down = Instant::now();
        // Throughout the outage /health answers, and says the database is unreachable.
        let mut answers = 0;
        while down.elapsed() < outage {
            let (status, body) = health(&serve.address).await;
            assert_eq!(status, 503, "the database is down: {body}");
            assert_eq!(body["status"], json!("database unreachable"), "{body}");
            answers += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(answers > 0);
        tokio::task::block_in_place(|| pg.start_again());
        jobs_caught_up(&mut serve, &url, &account).await;
        let caught_up = "job caught up job=\"ExpireReservations\"";
        eventually(
            "the worker's log says its jobs caught up",
            RECOVERY,
            || worker.log(),
            || async { (worker.log().matches(caught_up).count() > round as usize).then_some(()) },
        )
        .await;
    }
    let log = serve.log();
    assert!(log.contains("job is behind"), "the log says when jobs fall behind: {log}");
    assert!(log.contains("job caught up"), "and when they catch up: {log}");
    let log = worker.log();
    assert!(log.contains("serves no HTTP"), "the worker says it has no /health: {log}");
    assert!(log.contains("job is behind job=\"ExpireReservations\""), "the worker's log says when jobs fall behind: {log}");
    assert!(worker.child.try_wait().unwrap().is_none(), "the worker lives on: {log}");
    serve.stop_gracefully(Duration::from_secs(45)).await;
}

/// The test holds SQLite's write lock `rounds` times for `hold` each, as another process could;
/// each time a hold lapses meanwhile and the job must release it after the lock is let go.
async fn jobs_resume_after_sqlite_locks(hold: Duration, rounds: u32) {
    use sea_orm::sqlx::{Connection, SqliteConnection};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("credits.db").display());
    let mut serve = start_serve(&url, dir.path(), &[]).await;
    jobs_started(&serve).await;
    // A second process on the same database that runs no jobs: the first one's jobs falling
    // behind must not show in its health.
    let api_only = start_serve(&url, dir.path(), &["--no-workers"]).await;

    for round in 0..rounds {
        let account = format!("held-{round}");
        account_with_a_short_hold(&serve.address, &account).await;
        let mut lock = SqliteConnection::connect(&url).await.expect("a connection of the test's own");
        sea_orm::sqlx::query("BEGIN IMMEDIATE").execute(&mut lock).await.expect("the write lock");
        let locked = Instant::now();
        // While the lock is held, /health answers (reads go on under WAL, unless the pool is
        // taken by writers waiting for the lock) and soon lists the jobs that cannot write.
        let mut saw_behind = false;
        while locked.elapsed() < hold {
            let (_status, body) = health(&serve.address).await;
            saw_behind |= !jobs_behind(&body).is_empty();
            let (status, body) = health(&api_only.address).await;
            assert_eq!(
                (status, &body["jobs"]),
                (200, &json!({ "inProcess": 0, "behind": [] })),
                "another process's jobs are not this one's"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        sea_orm::sqlx::query("COMMIT").execute(&mut lock).await.expect("let the lock go");
        lock.close().await.unwrap();
        assert!(saw_behind, "/health listed jobs behind while they could not write: {}", serve.log());
        jobs_caught_up(&mut serve, &url, &account).await;
    }
    let log = serve.log();
    assert!(log.contains("job is behind"), "the log says when jobs fall behind: {log}");
    assert!(log.contains("job caught up"), "and when they catch up: {log}");
    serve.stop_gracefully(Duration::from_secs(45)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_resume_after_postgres_is_down_for_10_seconds() {
    jobs_resume_after_postgres_outages(Duration::from_secs(10), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_resume_after_a_sqlite_lock_held_for_25_seconds() {
    jobs_resume_after_sqlite_locks(Duration::from_secs(25), 1).await;
}

/// Longer than the pool's acquire timeout and the restart backoff's cap, three times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "about 5 minutes: run with --ignored"]
async fn jobs_resume_after_repeated_long_postgres_outages() {
    jobs_resume_after_postgres_outages(Duration::from_secs(60), 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "about 5 minutes: run with --ignored"]
async fn jobs_resume_after_repeated_long_sqlite_locks() {
    jobs_resume_after_sqlite_locks(Duration::from_secs(60), 3).await;
}
