//! Requests through database faults (issue 28), against the real `credits serve` on a private
//! PostgreSQL (`support::private_pg`; the machine's shared server is never touched):
//!
//! - the server stopped mid-load with `pg_ctl stop -m fast` (connections terminated with 57P01)
//!   and, separately, `-m immediate` (a crash: sockets cut, recovery from the WAL on start);
//! - the server left running, and every connection cut by a proxy between the service and it
//!   (`support::proxy`), which then refuses new ones for the outage.
//!
//! Throughout, spenders keep sending spends with fresh idempotency keys. What must hold:
//! - every answer is data or `UNAVAILABLE`: never `INTERNAL_SERVER_ERROR`, never `TIMEOUT`, and
//!   none takes longer than `HANG` (the pool's acquire timeout is 5 s: `db::ACQUIRE_TIMEOUT`);
//! - once the database is back the service serves again without a restart, within `RECOVERY`
//!   (measured from the database accepting connections to the first acknowledged spend);
//! - a `balanceChanged` subscription opened before the fault pushes again after it;
//! - nothing acknowledged is lost: each key, sent again, replays its first outcome, each key the
//!   service answered `UNAVAILABLE` for is charged once at most (sent again, it either replays or
//!   runs now), every account's balance is its grant less one credit per key, and the audit is
//!   clean.
//!
//! Each test prints its figures (requests, answers by kind, recovery time, credits lost).

use crate::support::private_pg::PrivatePostgres;
use crate::support::proxy::Proxy;
use crate::support::serve::{ServeProcess, service_command};
use crate::support::ws;
use crate::support::{LEDGER_PROGRAM, SECRET, gql_at};
use credits::auth::{AuthKeys, Role};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An answer slower than this has hung: the acquire timeout (5 s) plus a loaded machine's room.
const HANG: Duration = Duration::from_secs(15);
/// The same on SQLite with a full disk (`sqlite_on_a_full_disk...`).
const SQLITE_HANG: Duration = Duration::from_secs(60);
/// From the database accepting connections again to the first spend acknowledged.
const RECOVERY: Duration = Duration::from_secs(20);
/// How long the database stays away.
const OUTAGE: Duration = Duration::from_secs(8);
/// Concurrent spenders, each on its own account; one more account is only watched.
const SPENDERS: usize = 6;
const GRANT: i64 = 100_000;
const WATCHED: &str = "watched";

const SPEND: &str = "mutation($a: ID!, $k: String!) {
    spendCredits(input: {accountId: $a, amount: \"1\", idempotencyKey: $k, feature: \"chat\"}) { sequence } }";

#[derive(Debug, Clone, Copy)]
enum Fault {
    FastRestart,
    ImmediateRestart,
    ProxyCut,
}

/// What a spender saw, per key in order.
#[derive(Default)]
struct Seen {
    /// key -> the acknowledged entry's sequence, or None for an `UNAVAILABLE` (outcome unknown).
    keys: BTreeMap<String, Option<String>>,
    by_code: BTreeMap<String, u64>,
    slowest: Duration,
    /// When each acknowledged spend was answered.
    acknowledged_at: Vec<Instant>,
}

fn token(role: Role) -> String {
    let subject = (role == Role::Admin).then_some("ops");
    AuthKeys::new(SECRET).issue(role, subject, Duration::from_secs(3600)).unwrap()
}

async fn start_serve(database_url: &str, dir: &std::path::Path) -> ServeProcess {
    ServeProcess::start(service_command(database_url, LEDGER_PROGRAM), &[], dir, "serve").await
}

/// One spend; its answer classified. A transport error or a panic-worthy answer fails the test.
async fn spend(client: &reqwest::Client, address: &str, service: &str, account: &str, key: &str) -> Result<String, String> {
    let answer = gql_at(client, address, service, SPEND, json!({ "a": account, "k": key })).await;
    match answer["data"]["spendCredits"]["sequence"].as_str() {
        Some(sequence) => Ok(sequence.to_string()),
        None => Err(answer["errors"][0]["extensions"]["code"].as_str().unwrap_or("NO_CODE").to_string()),
    }
}

async fn spender(address: String, account: String, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    let client = reqwest::Client::builder().timeout(HANG).build().unwrap();
    let service = token(Role::Service);
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("{account}-{n}");
        let started = Instant::now();
        let outcome = spend(&client, &address, &service, &account, &key).await;
        let took = started.elapsed();
        let refused = outcome.is_err();
        {
            let mut seen = seen.lock().unwrap();
            seen.slowest = seen.slowest.max(took);
            match outcome {
                Ok(sequence) => {
                    seen.keys.insert(key, Some(sequence));
                    seen.acknowledged_at.push(Instant::now());
                    *seen.by_code.entry("OK".into()).or_default() += 1;
                }
                Err(code) => {
                    seen.keys.insert(key, None);
                    *seen.by_code.entry(code).or_default() += 1;
                }
            }
        }
        // A client that got UNAVAILABLE backs off a little, as the message asks.
        if refused {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn setup(address: &str) {
    let client = reqwest::Client::new();
    let (service, admin) = (token(Role::Service), token(Role::Admin));
    let accounts = (0..SPENDERS).map(|i| format!("spender-{i}")).chain([WATCHED.to_string()]);
    for account in accounts {
        let created = gql_at(
            &client,
            address,
            &service,
            "mutation($a: ID!) { createAccount(input: {externalId: $a}) { created } }",
            json!({ "a": account }),
        )
        .await;
        assert!(created["errors"].is_null(), "{created}");
        let granted = gql_at(
            &client,
            address,
            &admin,
            "mutation($a: ID!, $n: CreditAmount!) { grantCredits(input: {accountId: $a, amount: $n, class: PAID, idempotencyKey: \"g\"}) { lotId } }",
            json!({ "a": account, "n": GRANT.to_string() }),
        )
        .await;
        assert!(granted["errors"].is_null(), "{granted}");
    }
}

/// The balance total pushed next on subscription "w", skipping pushes that are not `want`.
async fn pushed(socket: &mut ws::Socket, want: &str, bound: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < bound {
        let Ok(message) = tokio::time::timeout(bound, async { ws::next(socket).await }).await else { return false };
        if message["payload"]["data"]["balanceChanged"]["balance"]["total"] == json!(want) {
            return true;
        }
    }
    false
}

async fn requests_ride_out(fault: Fault) {
    let pg = tokio::task::spawn_blocking(PrivatePostgres::start).await.unwrap();
    let direct = pg.create_database("credits_faults").await;
    let proxy = match fault {
        Fault::ProxyCut => Some(Proxy::start(&format!("127.0.0.1:{}", pg.port())).await),
        _ => None,
    };
    let url = match &proxy {
        Some(proxy) => format!("postgres://postgres@127.0.0.1:{}/credits_faults", proxy.port),
        None => direct.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut serve = start_serve(&url, dir.path()).await;
    setup(&serve.address).await;

    // A subscriber, open across the fault.
    let mut socket = ws::connect(&serve.address, &token(Role::Service)).await;
    ws::subscribe(
        &mut socket,
        "w",
        "subscription($a: ID) { balanceChanged(accountId: $a) { balance { total } } }",
        json!({ "a": WATCHED }),
    )
    .await;
    assert!(pushed(&mut socket, &GRANT.to_string(), Duration::from_secs(10)).await, "the first push is the balance now");

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let spenders: Vec<_> =
        (0..SPENDERS).map(|i| tokio::spawn(spender(serve.address.clone(), format!("spender-{i}"), stop.clone(), seen.clone()))).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = seen.lock().unwrap().by_code.get("OK").copied().unwrap_or(0);
    assert!(before > 0, "spends are acknowledged before the fault: {:?}\n{}", seen.lock().unwrap().by_code, serve.log());

    // The fault.
    let injected = Instant::now();
    match fault {
        Fault::FastRestart => tokio::task::block_in_place(|| pg.stop()),
        Fault::ImmediateRestart => tokio::task::block_in_place(|| pg.stop_immediately()),
        Fault::ProxyCut => proxy.as_ref().unwrap().cut(),
    }
    tokio::time::sleep(OUTAGE.saturating_sub(injected.elapsed())).await;
    match fault {
        Fault::FastRestart | Fault::ImmediateRestart => tokio::task::block_in_place(|| pg.start_again()),
        Fault::ProxyCut => proxy.as_ref().unwrap().heal(),
    }
    let back = Instant::now();
    let outage = back - injected;

    // Recovery: the first spend acknowledged after the database came back.
    let recovered = loop {
        if let Some(at) = seen.lock().unwrap().acknowledged_at.iter().find(|at| **at > back) {
            break *at - back;
        }
        assert!(back.elapsed() < RECOVERY, "no spend acknowledged within {RECOVERY:?} of the database's return\n{}", serve.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for spender in spenders {
        spender.await.unwrap();
    }
    serve.assert_alive();

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let unavailable = seen.by_code.get("UNAVAILABLE").copied().unwrap_or(0);
    let others: Vec<_> = seen.by_code.iter().filter(|(code, _)| !matches!(code.as_str(), "OK" | "UNAVAILABLE")).collect();
    assert!(others.is_empty(), "only data or UNAVAILABLE during {fault:?}: {:?}\n{}", seen.by_code, serve.log());
    assert!(unavailable > 0, "the fault was felt: {:?}", seen.by_code);
    assert!(seen.slowest < HANG, "an answer took {:?}", seen.slowest);

    // The subscription pushes again: a spend on the watched account after the fault.
    let client = reqwest::Client::builder().timeout(HANG).build().unwrap();
    let service = token(Role::Service);
    let sequence = spend(&client, &serve.address, &service, WATCHED, "after").await.expect("a spend after the fault");
    assert!(!sequence.is_empty());
    let push_started = Instant::now();
    assert!(
        pushed(&mut socket, &(GRANT - 1).to_string(), Duration::from_secs(20)).await,
        "balanceChanged pushes again after {fault:?}\n{}",
        serve.log()
    );
    let push_after = push_started.elapsed();

    // Nothing acknowledged lost; nothing unknown charged twice.
    let mut charged: BTreeMap<String, i64> = BTreeMap::new();
    for (key, first) in &seen.keys {
        let account = key.rsplit_once('-').unwrap().0;
        let again = spend(&client, &serve.address, &service, account, key).await.unwrap_or_else(|code| panic!("{key} again: {code}"));
        if let Some(first) = first {
            assert_eq!(&again, first, "{key}: an acknowledged spend replays its outcome");
        }
        *charged.entry(account.to_string()).or_default() += 1;
    }
    for (account, spends) in &charged {
        let answer =
            gql_at(&client, &serve.address, &service, "query($a: ID!) { account(id: $a) { balance { total } } }", json!({ "a": account }))
                .await;
        let total: i64 = answer["data"]["account"]["balance"]["total"].as_str().unwrap_or_else(|| panic!("{answer}")).parse().unwrap();
        assert_eq!(total, GRANT - spends, "{account}: one credit per key, each key once ({answer})");
    }
    let db = credits::db::connect(&direct, 2).await.unwrap();
    let program = credits::program::Program::load(LEDGER_PROGRAM).unwrap();
    let report = credits::audit::run_with_program(&db, &program, chrono::Utc::now()).await.unwrap();
    assert!(report.is_clean(), "{report}");
    let _ = db.close().await;
    if let Some(proxy) = &proxy {
        assert!(proxy.carried() > 1, "the service reached the database through the proxy, again after the cut");
    }
    eprintln!(
        "db fault {fault:?}: 1 server, {SPENDERS} spenders + 1 subscriber; outage {:.1} s; {} requests: {:?}; slowest answer {:.2} s; \
         recovered {:.2} s after the database was back; push {:.2} s after a spend; {} keys replayed; credits lost 0",
        outage.as_secs_f64(),
        seen.by_code.values().sum::<u64>(),
        seen.by_code,
        seen.slowest.as_secs_f64(),
        recovered.as_secs_f64(),
        push_after.as_secs_f64(),
        seen.keys.len(),
    );
    serve.stop_gracefully(Duration::from_secs(45)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spends_through_a_fast_postgres_restart_answer_unavailable_and_lose_nothing() {
    requests_ride_out(Fault::FastRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spends_through_a_postgres_crash_answer_unavailable_and_lose_nothing() {
    requests_ride_out(Fault::ImmediateRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spends_through_cut_connections_answer_unavailable_and_lose_nothing() {
    requests_ride_out(Fault::ProxyCut).await;
}

/// A small tmpfs for a SQLite database, unmounted when dropped. Mounting needs root (CI runs as
/// root); elsewhere `None`, and the test says it did not run.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = tempfile::Builder::new().prefix("credits-small-disk-").tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(std::env::var_os("CI").is_none(), "CI runs as root and must run this test: mounting a tmpfs failed");
            eprintln!("skipped: mounting a tmpfs needs root");
        }
        mounted.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Fills the disk with a file until the write is refused for want of space.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        loop {
            match file.write_all(&block) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}

/// SQLite on a full disk: spends are refused with `UNAVAILABLE` and a message that says the
/// database cannot write, reads are served or refused the same way, nothing half-written; once
/// there is room again the same server writes again, the file passes `PRAGMA integrity_check`,
/// every key is charged once and the audit is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_refuses_writes_clearly_and_keeps_its_file_whole() {
    let Some(disk) = SmallDisk::mount(16) else { return };
    let url = format!("sqlite://{}?mode=rwc", disk.path().join("credits.db").display());
    let dir = tempfile::tempdir().unwrap();
    let mut serve = start_serve(&url, dir.path()).await;
    setup(&serve.address).await;
    // A write on a full disk can wait out SQLite's busy timeout behind the in-process jobs' own
    // failing writes (5 s, retried): a wider bound than PostgreSQL's, still a hang detector.
    let client = reqwest::Client::builder().timeout(SQLITE_HANG).build().unwrap();
    let service = token(Role::Service);
    let account = "spender-0";
    let mut keys: BTreeMap<String, Option<String>> = BTreeMap::new();
    for n in 0..20 {
        let key = format!("before-{n}");
        let sequence = spend(&client, &serve.address, &service, account, &key).await.expect("spends before the disk fills");
        keys.insert(key, Some(sequence));
    }

    let filler = disk.fill();
    // The WAL may still have room for a few commits; the first refusal comes once it must grow.
    let mut refused = None;
    for n in 0..5_000 {
        let key = format!("full-{n}");
        let answer = gql_at(&client, &serve.address, &service, SPEND, json!({ "a": account, "k": key })).await;
        match answer["data"]["spendCredits"]["sequence"].as_str() {
            Some(sequence) => {
                keys.insert(key, Some(sequence.to_string()));
            }
            None => {
                keys.insert(key, None);
                refused = Some(answer);
                break;
            }
        }
    }
    let refused = refused.unwrap_or_else(|| panic!("a full disk refuses a write within 5000 spends\n{}", serve.log()));
    assert_eq!(refused["errors"][0]["extensions"]["code"], json!("UNAVAILABLE"), "{refused}\n{}", serve.log());
    // Mostly SQLite's own SQLITE_FULL; sometimes (under load) a writer first waits out the
    // busy timeout behind a commit that failed for want of space, and is told the ledger is busy.
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("disk is full") || message.contains("busy"), "the message says why: {message}");
    // Still full: each answer is data (SQLite may find a page it freed) or the same refusal;
    // reads are served.
    for n in 0..20 {
        let key = format!("still-full-{n}");
        let answer = spend(&client, &serve.address, &service, account, &key).await;
        assert!(answer.as_ref().is_ok() || answer.as_ref().is_err_and(|code| code == "UNAVAILABLE"), "{key}: {answer:?}");
        keys.insert(key, answer.ok());
    }
    let read =
        gql_at(&client, &serve.address, &service, "query($a: ID!) { account(id: $a) { balance { total } } }", json!({ "a": account }))
            .await;
    // A read is served, or refused as unavailable: a connection a failed commit left inside its
    // transaction is closed rather than used (`db::connect`), and opening its replacement can
    // fail while the disk is full.
    assert!(read["errors"].is_null() || read["errors"][0]["extensions"]["code"] == json!("UNAVAILABLE"), "{read}");

    // Room again: the same server writes, and every key is charged once.
    std::fs::remove_file(filler).unwrap();
    let mut charged = 0;
    for (key, first) in &keys {
        let again =
            spend(&client, &serve.address, &service, account, key).await.unwrap_or_else(|code| panic!("{key} with room again: {code}"));
        if let Some(first) = first {
            assert_eq!(&again, first, "{key} replays");
        }
        charged += 1;
    }
    let answer =
        gql_at(&client, &serve.address, &service, "query($a: ID!) { account(id: $a) { balance { total } } }", json!({ "a": account }))
            .await;
    assert_eq!(answer["data"]["account"]["balance"]["total"], json!((GRANT - charged).to_string()), "{answer}");
    serve.assert_alive();
    serve.stop_gracefully(Duration::from_secs(45)).await;

    // The file is whole.
    use sea_orm::{ConnectionTrait, Statement};
    let db = credits::db::connect(&url, 1).await.unwrap();
    let check = db.query_one_raw(Statement::from_string(db.get_database_backend(), "PRAGMA integrity_check")).await.unwrap().unwrap();
    assert_eq!(check.try_get_by_index::<String>(0).unwrap(), "ok");
    let program = credits::program::Program::load(LEDGER_PROGRAM).unwrap();
    let report = credits::audit::run_with_program(&db, &program, chrono::Utc::now()).await.unwrap();
    assert!(report.is_clean(), "{report}");
    let _ = db.close().await;
    eprintln!(
        "sqlite full disk: {} spends sent, {} refused UNAVAILABLE while full ({message:?}), all {charged} keys charged once after room was made; integrity ok; credits lost 0",
        keys.len(),
        keys.values().filter(|v| v.is_none()).count(),
    );
}

/// SQLite: a connection whose `COMMIT` failed for want of space is not used again. SQLite had
/// rolled that transaction back, sqlx still counted it open, and every later transaction on the
/// connection ran as a savepoint: once one was refused, SQLite's transaction stayed open and the
/// later ones were releases inside it, acknowledged, never written to the file, visible to that
/// connection alone (`db::connect` says more). Every commit acknowledged on a full disk, and
/// after it, is seen by a connection of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_connection_whose_commit_failed_is_not_used_again() {
    use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};
    let Some(disk) = SmallDisk::mount(16) else { return };
    let url = format!("sqlite://{}?mode=rwc", disk.path().join("t.db").display());
    // One connection, so every transaction meets the one a failed commit left behind.
    let db = credits::db::connect(&url, 1).await.unwrap();
    db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)").await.unwrap();
    let options =
        sea_orm::TransactionOptions { sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate), ..Default::default() };
    let write = |size: u32| {
        let db = &db;
        async move {
            let txn = db.begin_with_options(options).await.map_err(|e| format!("begin: {e}"))?;
            txn.execute_unprepared(&format!("INSERT INTO t (v) VALUES (zeroblob({size}))")).await.map_err(|e| format!("insert: {e}"))?;
            txn.commit().await.map_err(|e| format!("commit: {e}"))
        }
    };
    let filler = disk.fill();
    let mut acknowledged = 0;
    let mut failed_commits = 0;
    for _ in 0..100 {
        match write(3000).await {
            Ok(()) => acknowledged += 1,
            Err(e) if e.starts_with("commit:") => failed_commits += 1,
            Err(_) => {}
        }
    }
    assert!(failed_commits > 0, "a full disk fails a commit");
    std::fs::remove_file(filler).unwrap();
    for _ in 0..20 {
        write(1).await.expect("room again: the write commits");
    }
    let count = |db: DatabaseConnection, size: u32| async move {
        let sql = format!("SELECT count(*) FROM t WHERE length(v) = {size}");
        db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap().try_get_by_index::<i64>(0).unwrap()
    };
    let other = credits::db::connect(&url, 1).await.expect("no connection holds the file's write lock");
    assert_eq!((count(other.clone(), 3000).await, count(other, 1).await), (acknowledged, 20), "every acknowledged commit is in the file");
}

/// SQLite: a connection given back to its pool is not pinged when it is outside any transaction
/// (vendor/sqlx-core, `ready_for_release`), and one given back with its rollback still queued
/// (a transaction dropped without a commit, as every refusal is) waits for it. On one connection,
/// kept all along (its temporary table stays): no dropped transaction's row reaches the file,
/// every committed one does, and the next transaction is never a savepoint inside a dropped one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_connection_given_back_is_clean_for_the_next() {
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let db = credits::db::connect(&url, 1).await.unwrap();
    db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY, kept INTEGER NOT NULL)").await.unwrap();
    db.execute_unprepared("CREATE TEMP TABLE this_connection (x INTEGER)").await.unwrap();
    let options =
        sea_orm::TransactionOptions { sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate), ..Default::default() };
    for i in 0..200 {
        let txn = db.begin_with_options(options).await.unwrap();
        txn.execute_unprepared(&format!("INSERT INTO t (kept) VALUES ({})", i % 2)).await.unwrap();
        if i % 2 == 1 {
            txn.commit().await.unwrap();
        } else {
            drop(txn);
        }
    }
    db.execute_unprepared("SELECT count(*) FROM this_connection").await.expect("the pool kept its one connection");
    let other = credits::db::connect(&url, 1).await.expect("no connection holds the file's write lock");
    let row = other
        .query_one_raw(Statement::from_string(other.get_database_backend(), "SELECT count(*), sum(kept) FROM t"))
        .await
        .unwrap()
        .unwrap();
    let (rows, kept) = (row.try_get_by_index::<i64>(0).unwrap(), row.try_get_by_index::<i64>(1).unwrap());
    assert_eq!((rows, kept), (100, 100), "the 100 committed rows, none of the 100 dropped");
}
