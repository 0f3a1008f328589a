use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

const CHANGE: &str = "mutation($a: ID!, $p: String!, $k: String!) { changePlan(input: {accountId: $a, plan: $p, idempotencyKey: $k}) { account { plan } granted grantedLotId } }";
const LOTS: &str = "query($a: ID!) { account(id: $a) { lots { edges { node { source class granted expiresAt } } } } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

async fn arkain_plan_credits_come_each_calendar_month_and_end_with_it(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    let plans = app.gql(&app.service, "{ plans { code monthlyCredits storageQuotaGb price { amountMinor } paid } }", json!({})).await;
    assert_eq!(
        plans["data"]["plans"],
        json!([
            { "code": "free", "monthlyCredits": "50", "storageQuotaGb": "5", "price": null, "paid": false },
            { "code": "membership", "monthlyCredits": "1000", "storageQuotaGb": "15", "price": { "amountMinor": 1400 }, "paid": true },
        ])
    );

    // Signing up on the 31st of January grants January's credits, ending at February's start.
    app.clock.set(at("2026-01-31T12:00:00Z"));
    app.create_account("coder").await;
    let lots = app.gql(&app.service, LOTS, json!({ "a": "coder" })).await;
    assert_eq!(
        lots["data"]["account"]["lots"]["edges"][0]["node"],
        json!({ "source": "MONTHLY_PLAN", "class": "FREE", "granted": "50", "expiresAt": "2026-02-01T00:00:00+00:00" })
    );
    app.clock.set(at("2026-01-31T23:59:59Z"));
    assert_eq!(app.ledger.grant_plan_credits("coder", app.clock.now()).await.unwrap(), None, "once per month");
    assert_eq!(app.balance("coder").await, "50");
    app.clock.set(at("2026-02-01T00:00:00Z"));
    assert_eq!(app.balance("coder").await, "0", "gone at the month's end");
    let february = app.ledger.grant_plan_credits("coder", app.clock.now()).await.unwrap().expect("February's credits");
    assert_eq!(february.expires_at, at("2026-03-01T00:00:00Z"), "a 28-day February");
    assert_eq!(app.ledger.grant_plan_credits("coder", app.clock.now()).await.unwrap(), None);

    // An upgrade grants the new plan's credits for this month, once; flipping back and forth mints nothing.
    let up = app.gql(&app.service, CHANGE, json!({ "a": "coder", "p": "membership", "k": "up-1" })).await;
    assert_eq!(up["data"]["changePlan"]["granted"], json!("1000"), "{up}");
    assert_eq!(app.gql(&app.service, CHANGE, json!({ "a": "coder", "p": "membership", "k": "up-1" })).await["data"], up["data"]);
    let conflict = app.gql(&app.service, CHANGE, json!({ "a": "coder", "p": "free", "k": "up-1" })).await;
    assert_eq!(error_code(&conflict), "IDEMPOTENCY_CONFLICT");
    let down = app.gql(&app.service, CHANGE, json!({ "a": "coder", "p": "free", "k": "down-1" })).await;
    assert_eq!(down["data"]["changePlan"]["granted"], json!(null));
    let again = app.gql(&app.service, CHANGE, json!({ "a": "coder", "p": "membership", "k": "up-2" })).await;
    assert_eq!(again["data"]["changePlan"]["granted"], json!(null), "{again}");
    assert_eq!(app.balance("coder").await, "1050");

    let by_user = app.gql(&app.user("coder"), CHANGE, json!({ "a": "coder", "p": "free", "k": "u" })).await;
    assert_eq!(error_code(&by_user), "FORBIDDEN", "a user never changes its own plan");
    let unknown = app.gql(&app.service, CHANGE, json!({ "a": "coder", "p": "gold", "k": "g" })).await;
    assert_eq!(error_code(&unknown), "BAD_USER_INPUT");
    app.assert_audit_clean().await;
}

async fn carat_subscriptions_renew_a_month_from_their_start(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    app.clock.set(at("2026-01-31T10:00:00Z"));
    let created = app
        .gql(
            &app.service,
            "mutation { createAccount(input: {externalId: \"subscriber\", plan: \"plus\"}) { account { plan } } }",
            json!({}),
        )
        .await;
    assert!(created["errors"].is_null(), "{created}");
    let lots = app.gql(&app.service, LOTS, json!({ "a": "subscriber" })).await;
    assert_eq!(
        lots["data"]["account"]["lots"]["edges"][0]["node"],
        json!({ "source": "SUBSCRIPTION", "class": "PAID", "granted": "10000", "expiresAt": "2026-02-28T10:00:00+00:00" })
    );
    app.clock.set(at("2026-02-28T09:59:59Z"));
    assert_eq!(app.ledger.grant_plan_credits("subscriber", app.clock.now()).await.unwrap(), None);
    app.clock.set(at("2026-02-28T10:00:00Z"));
    let renewal = app.ledger.grant_plan_credits("subscriber", app.clock.now()).await.unwrap().expect("the renewal");
    assert_eq!(renewal.expires_at, at("2026-03-31T10:00:00Z"), "counted from the original anchor");
    assert_eq!(app.balance("subscriber").await, "10000");

    // Concurrent renewals in one period grant once.
    app.clock.set(at("2026-03-31T10:00:00Z") + Duration::seconds(1));
    let now = app.clock.now();
    let results = futures::future::join_all((0..10).map(|_| app.ledger.grant_plan_credits("subscriber", now))).await;
    assert_eq!(results.iter().filter(|r| matches!(r, Ok(Some(_)))).count(), 1, "{results:?}");
    assert!(results.iter().all(|r| r.is_ok()));
    app.assert_audit_clean().await;
}

on_both!(arkain_plan_credits_come_each_calendar_month_and_end_with_it, carat_subscriptions_renew_a_month_from_their_start);
