//! Real concurrent requests through HTTP, against two server processes sharing one database, so
//! that no in-memory lock can be what passes.

use crate::on_both;
use crate::support::{Backend, SECRET, TestApp, error_code, gql_at};
use chrono::Duration;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};

struct ServerProcess {
    child: Child,
    address: String,
}

impl ServerProcess {
    async fn start(database_url: &str) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_credits"))
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", database_url)
            .env("CREDITS_AUTH_SECRET", std::str::from_utf8(SECRET).unwrap())
            .env("CREDITS_PROGRAM", crate::support::LEDGER_PROGRAM)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("the credits binary starts");
        let address = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client.get(format!("{address}/health")).send().await.is_ok_and(|r| r.status() == 200) {
                return ServerProcess { child, address };
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server process did not become healthy");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SPEND: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!) {
    spendCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"render\"}) { sequence amount } }";

/// Sends `count` spends at once, alternating between the server processes.
async fn spend_concurrently(servers: &[ServerProcess], token: &str, count: usize, variables: impl Fn(usize) -> Value) -> Vec<Value> {
    let client = reqwest::Client::new();
    let requests = (0..count).map(|i| {
        let (client, address, token, variables) =
            (client.clone(), servers[i % servers.len()].address.clone(), token.to_string(), variables(i));
        tokio::spawn(async move { gql_at(&client, &address, &token, SPEND, variables).await })
    });
    futures::future::join_all(requests).await.into_iter().map(|r| r.expect("the request task ran")).collect()
}

async fn concurrent_spends_never_overdraw_and_replays_charge_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let servers = [ServerProcess::start(&app.db.url).await, ServerProcess::start(&app.db.url).await];
    app.create_account("hot").await;
    let now = app.clock.now();
    // 40 credits over four lots of three classes and different expiries.
    app.grant("hot", "10", "FREE", Some(now + Duration::days(2)), "g-1").await;
    app.grant("hot", "15", "PROMOTIONAL", Some(now + Duration::days(20)), "g-2").await;
    app.grant("hot", "5", "PAID", None, "g-3").await;
    app.grant("hot", "10", "PAID", None, "g-4").await;

    let results = spend_concurrently(&servers, &app.service, 100, |i| json!({ "a": "hot", "amt": "1", "k": format!("spend-{i}") })).await;
    let succeeded = results.iter().filter(|r| r["errors"].is_null()).count();
    let refused = results.iter().filter(|r| !r["errors"].is_null() && error_code(r) == "INSUFFICIENT_CREDITS").count();
    assert_eq!(
        (succeeded, refused),
        (40, 60),
        "{:?}",
        results.iter().find(|r| !r["errors"].is_null() && error_code(r) != "INSUFFICIENT_CREDITS")
    );
    assert_eq!(app.balance("hot").await, "0");

    // Twenty concurrent replays of one key, across both processes: one charge, one result.
    app.grant("hot", "7", "PAID", None, "g-5").await;
    let results = spend_concurrently(&servers, &app.service, 20, |_| json!({ "a": "hot", "amt": "2.5", "k": "the-one" })).await;
    assert!(results.iter().all(|r| r["data"] == results[0]["data"] && r["errors"].is_null()), "{results:?}");
    assert_eq!(app.balance("hot").await, "4.5");
    app.assert_audit_clean().await;
}

on_both!(concurrent_spends_never_overdraw_and_replays_charge_once);
