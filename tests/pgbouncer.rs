//! Running behind Debian's PgBouncer 1.18 (issue 28), with the real binary:
//!
//! - `pool_mode = session`: spends from concurrent clients, a live balance (`LISTEN` through
//!   PgBouncer: a session keeps its server connection), and the audit, all through it;
//! - `pool_mode = transaction`: not usable by the driver (sqlx names its prepared statements per
//!   connection, and PgBouncer 1.18 hands a server connection to the next client between
//!   transactions, so two clients' `sqlx_s_1` meet); the process must say so, with the hint
//!   that points to session mode, rather than fail obscurely. README, "Behind PgBouncer".

use crate::support::pgbouncer::PgBouncer;
use crate::support::serve::{ServeProcess, service_command};
use crate::support::{Backend, LEDGER_PROGRAM, SECRET, TestDb, gql_at, ws};
use credits::auth::{AuthKeys, Role};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

const SPENDERS: usize = 6;
const SPENDS_EACH: usize = 20;

fn token(role: Role) -> String {
    let subject = (role == Role::Admin).then_some("ops");
    AuthKeys::new(SECRET).issue(role, subject, Duration::from_secs(3600)).unwrap()
}

fn command(database_url: &str) -> Command {
    service_command(database_url, LEDGER_PROGRAM)
}

fn database_name(url: &str) -> String {
    url::Url::parse(url).unwrap().path().trim_start_matches('/').to_string()
}

fn target(url: &str) -> (String, u16) {
    let url = url::Url::parse(url).unwrap();
    (url.host_str().unwrap().to_string(), url.port().unwrap_or(5432))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_pgbouncer_in_session_mode_spends_and_live_balances_work() {
    let db = TestDb::new(Backend::Postgres).await;
    let (host, port) = target(&db.url);
    let Some(bouncer) = PgBouncer::start("session", &host, port) else { return };
    let url = bouncer.url(&database_name(&db.url));
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start(command(&url), &[], dir.path(), "serve").await;
    let client = reqwest::Client::new();
    let (service, admin) = (token(Role::Service), token(Role::Admin));
    for account in (0..SPENDERS).map(|i| format!("spender-{i}")) {
        let created = gql_at(
            &client,
            &serve.address,
            &service,
            "mutation($a: ID!) { createAccount(input: {externalId: $a}) { created } }",
            json!({ "a": account }),
        )
        .await;
        assert!(created["errors"].is_null(), "{created}");
        let granted = gql_at(
            &client,
            &serve.address,
            &admin,
            "mutation($a: ID!) { grantCredits(input: {accountId: $a, amount: \"1000\", class: PAID, idempotencyKey: \"g\"}) { lotId } }",
            json!({ "a": account }),
        )
        .await;
        assert!(granted["errors"].is_null(), "{granted}");
    }
    let mut socket = ws::connect(&serve.address, &service).await;
    ws::subscribe(&mut socket, "b", "subscription { balanceChanged(accountId: \"spender-0\") { balance { total } } }", json!({})).await;
    assert_eq!(ws::next_payload(&mut socket, "b").await["data"]["balanceChanged"]["balance"]["total"], json!("1000"));

    let started = Instant::now();
    let spenders: Vec<_> = (0..SPENDERS)
        .map(|i| {
            let (client, address, service) = (client.clone(), serve.address.clone(), service.clone());
            tokio::spawn(async move {
                for n in 0..SPENDS_EACH {
                    let answer = gql_at(
                        &client,
                        &address,
                        &service,
                        "mutation($a: ID!, $k: String!) { spendCredits(input: {accountId: $a, amount: \"1\", idempotencyKey: $k, feature: \"chat\"}) { sequence } }",
                        json!({ "a": format!("spender-{i}"), "k": format!("k-{n}") }),
                    )
                    .await;
                    assert!(answer["errors"].is_null(), "spender-{i} k-{n}: {answer}");
                }
            })
        })
        .collect();
    for spender in spenders {
        spender.await.unwrap();
    }
    let took = started.elapsed();
    // The subscriber sees the last of spender-0's spends (pushes may coalesce on the way).
    let last = (1000 - SPENDS_EACH).to_string();
    let pushed = Instant::now();
    loop {
        let payload = ws::next_payload(&mut socket, "b").await;
        if payload["data"]["balanceChanged"]["balance"]["total"] == json!(last) {
            break;
        }
        assert!(pushed.elapsed() < Duration::from_secs(20), "pushes through PgBouncer: {payload}");
    }
    let audit = command(&url).arg("audit").output().unwrap();
    assert!(audit.status.success(), "{}\n{}", String::from_utf8_lossy(&audit.stdout), String::from_utf8_lossy(&audit.stderr));
    assert!(bouncer.log().contains("login attempt"), "the connections went through PgBouncer: {}", bouncer.log());
    eprintln!(
        "pgbouncer session mode: {} spends from {SPENDERS} clients in {:.2} s, live balance pushed, audit clean",
        SPENDERS * SPENDS_EACH,
        took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_pgbouncer_in_transaction_mode_the_process_says_to_use_session_mode() {
    let db = TestDb::new(Backend::Postgres).await;
    let (host, port) = target(&db.url);
    let Some(bouncer) = PgBouncer::start("transaction", &host, port) else { return };
    let url = bouncer.url(&database_name(&db.url));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut serve = command(&url)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Either it cannot migrate and exits with the hint, or a later statement meets another
    // client's statement and the log carries the hint: within a minute, one of the two.
    let started = Instant::now();
    let hint = "use pool_mode = session";
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(hint) {
            break;
        }
        if serve.try_wait().unwrap().is_some() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(text.contains(hint), "the process ended without the hint:\n{text}");
            break;
        }
        if started.elapsed() > Duration::from_secs(20) {
            // Started after all: drive some concurrent traffic so that statements meet.
            let client = reqwest::Client::new();
            let address = format!("http://127.0.0.1:{port}");
            let reads = (0..16).map(|_| {
                let (client, address) = (client.clone(), address.clone());
                async move {
                    gql_at(&client, &address, &token(Role::Service), "{ program { name } accounts(first: 5) { nodes { id } } }", json!({}))
                        .await
                }
            });
            let _ = futures::future::join_all(reads).await;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no hint in the log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = serve.kill();
    let _ = serve.wait();
    drop(bouncer);
}
