//! Real concurrent requests through HTTP, against two server processes sharing one database, so
//! that no in-memory lock can be what passes.

use crate::on_both;
use crate::support::{Backend, SECRET, TestApp, error_code, gql_at};
use chrono::Duration;
use serde_json::json;
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
            .env("CREDITS_PROGRAM", "arkain")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("the credits binary starts");
        let address = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client
                .get(format!("{address}/health"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
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

const SPEND: &str = "mutation($a: ID!, $amt: Decimal!, $k: String!) {
    spendCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"render\"}) { sequence amount } }";

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

    let client = reqwest::Client::new();
    let spends = (0..100).map(|i| {
        let (client, address, token) = (client.clone(), servers[i % 2].address.clone(), app.service.clone());
        tokio::spawn(async move {
            gql_at(
                &client,
                &address,
                &token,
                SPEND,
                json!({ "a": "hot", "amt": "1", "k": format!("spend-{i}") }),
            )
            .await
        })
    });
    let results: Vec<_> = futures::future::join_all(spends).await.into_iter().map(|r| r.unwrap()).collect();
    let succeeded = results.iter().filter(|r| r["errors"].is_null()).count();
    let refused = results
        .iter()
        .filter(|r| !r["errors"].is_null() && error_code(r) == "INSUFFICIENT_CREDITS")
        .count();
    assert_eq!(
        (succeeded, refused),
        (40, 60),
        "{:?}",
        results
            .iter()
            .find(|r| !r["errors"].is_null() && error_code(r) != "INSUFFICIENT_CREDITS")
    );
    assert_eq!(app.balance("hot").await, "0");

    // Twenty concurrent replays of one key, across both processes: one charge, one result.
    app.grant("hot", "7", "PAID", None, "g-5").await;
    let replays = (0..20).map(|i| {
        let (client, address, token) = (client.clone(), servers[i % 2].address.clone(), app.service.clone());
        tokio::spawn(async move {
            gql_at(
                &client,
                &address,
                &token,
                SPEND,
                json!({ "a": "hot", "amt": "2.5", "k": "the-one" }),
            )
            .await
        })
    });
    let results: Vec<_> = futures::future::join_all(replays).await.into_iter().map(|r| r.unwrap()).collect();
    assert!(
        results.iter().all(|r| r["data"] == results[0]["data"] && r["errors"].is_null()),
        "{results:?}"
    );
    assert_eq!(app.balance("hot").await, "4.5");
    app.assert_audit_clean().await;
}

on_both!(concurrent_spends_never_overdraw_and_replays_charge_once);
