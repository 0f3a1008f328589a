use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

const CLAIM: &str = "mutation($a: ID!, $k: String!) { claimLuckyCredits(input: {accountId: $a, idempotencyKey: $k}) { day amount expiresAt distribution } }";
const STATUS: &str = "{ me { luckyCredits { eligible reason claimedToday claimed maxCredits nextAvailableAt promotionEndsAt } } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

async fn subscriber(app: &TestApp, id: &str, plan: &str) {
    let r = app
        .gql(
            &app.service,
            "mutation($id: ID!, $p: String!) { createAccount(input: {externalId: $id, plan: $p}) { created } }",
            json!({ "id": id, "p": plan }),
        )
        .await;
    assert_eq!(r["data"]["createAccount"]["created"], json!(true), "{r}");
}

fn whole(value: &Value) -> i64 {
    value.as_str().unwrap().parse().unwrap()
}

async fn paid_subscribers_claim_a_bounded_random_amount_once_a_day(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    app.ledger.seed_draws(7);
    app.clock.set(at("2026-04-01T12:00:00Z"));
    subscriber(&app, "plus", "plus").await;
    subscriber(&app, "free", "free").await;
    let user = app.user("plus");

    let status = app.gql(&user, STATUS, json!({})).await;
    assert_eq!(status["data"]["me"]["luckyCredits"]["eligible"], json!(true), "{status}");
    assert_eq!(status["data"]["me"]["luckyCredits"]["maxCredits"], json!("700"));
    let first = app.gql(&user, CLAIM, json!({ "a": "plus", "k": "l-1" })).await;
    let payload = &first["data"]["claimLuckyCredits"];
    assert!((1..=700).contains(&whole(&payload["amount"])), "{first}");
    assert_eq!(payload["expiresAt"], json!("2026-04-02T12:00:00+00:00"), "valid 24 hours from claiming");
    assert_eq!(payload["distribution"], json!("uniform(1..=3500)"));
    assert_eq!(app.gql(&user, CLAIM, json!({ "a": "plus", "k": "l-1" })).await["data"], first["data"]);
    assert_eq!(error_code(&app.gql(&user, CLAIM, json!({ "a": "plus", "k": "l-2" })).await), "ALREADY_CLAIMED");
    let history = app.gql(&user, "{ me { history(first: 1) { edges { node { reason } } } } }", json!({})).await;
    let reason = history["data"]["me"]["history"]["edges"][0]["node"]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("uniform(1..=3500)") && reason.contains("capped at 700"), "the journal records the draw: {reason}");

    // Every day of the month: a draw within the plan's cap, never above it.
    for day in 2..=30 {
        app.clock.set(at(&format!("2026-04-{day:02}T00:00:00Z")));
        let r = app.gql(&user, CLAIM, json!({ "a": "plus", "k": format!("day-{day}") })).await;
        let amount = whole(&r["data"]["claimLuckyCredits"]["amount"]);
        assert!((1..=700).contains(&amount), "day {day}: {r}");
    }

    let free = app.gql(&app.user("free"), CLAIM, json!({ "a": "free", "k": "l" })).await;
    assert_eq!(error_code(&free), "NOT_ELIGIBLE");
    // The promotion ends at the end of 2026-04-30, UTC.
    app.clock.set(at("2026-04-30T23:59:59Z") + Duration::seconds(1));
    assert_eq!(error_code(&app.gql(&user, CLAIM, json!({ "a": "plus", "k": "late" })).await), "NOT_ELIGIBLE");
    let ended = app.gql(&user, STATUS, json!({})).await;
    assert_eq!(ended["data"]["me"]["luckyCredits"]["reason"], json!("the lucky-credit promotion has ended"));
    app.assert_audit_clean().await;
}

async fn concurrent_lucky_claims_grant_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    app.clock.set(at("2026-03-15T09:00:00Z"));
    subscriber(&app, "pro", "pro").await;
    let user = app.user("pro");
    let results = futures::future::join_all((0..20).map(|i| app.gql(&user, CLAIM, json!({ "a": "pro", "k": format!("k-{i}") })))).await;
    let granted: Vec<_> = results.iter().filter(|r| r["errors"].is_null()).collect();
    assert_eq!(granted.len(), 1, "{results:?}");
    assert!(results.iter().filter(|r| !r["errors"].is_null()).all(|r| error_code(r) == "ALREADY_CLAIMED"));
    let amount = whole(&granted[0]["data"]["claimLuckyCredits"]["amount"]);
    assert!((1..=3500).contains(&amount));
    app.assert_audit_clean().await;
}

on_both!(paid_subscribers_claim_a_bounded_random_amount_once_a_day, concurrent_lucky_claims_grant_once);
