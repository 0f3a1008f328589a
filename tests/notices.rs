//! Notices (domain.md §6): the low-credit warning once per purchase cycle (arkain) or per
//! crossing (archipelag), only with credit mail on, and the expiring-credits notice once per
//! lot; all of them land in the outbox, which the webhook worker delivers.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Utc};
use credits::service::jobs::Job;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// The outbox's events of `topic`, oldest first.
async fn events(app: &TestApp, topic: &str) -> Vec<Value> {
    let db = &app.ledger.db;
    let sql = format!("SELECT payload FROM outbox WHERE topic = '{topic}' ORDER BY id");
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|r| serde_json::from_str(&r.try_get::<String>("", "payload").unwrap()).unwrap()).collect()
}

async fn low_credits(app: &TestApp, account: &str) -> Value {
    let r = app
        .gql(
            &app.user(account),
            "{ me { lowCredits { enabled applies reason balance ratePerHour threshold notifiedAt creditMail } } }",
            json!({}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["me"]["lowCredits"].clone()
}

async fn buy(app: &TestApp, account: &str, credits: &str, key: &str) {
    let pending = app
        .gql(
            &app.user(account),
            "mutation($a: ID!, $c: CreditAmount!, $k: String!) { purchaseCredits(input: {accountId: $a, credits: $c, idempotencyKey: $k}) { id } }",
            json!({ "a": account, "c": credits, "k": key }),
        )
        .await;
    let id = pending["data"]["purchaseCredits"]["id"].clone();
    let paid = app
        .gql(
            &app.service,
            "mutation($id: ID!, $r: String!) { confirmPurchase(input: {purchaseId: $id, paymentReference: $r}) { status } }",
            json!({ "id": id, "r": key }),
        )
        .await;
    assert_eq!(paid["data"]["confirmPurchase"]["status"], json!("PAID"), "{paid}");
}

/// arkain: low when the balance covers less than an hour of the running containers; warned once
/// per purchase cycle, however many spends follow; a purchase re-arms it; credit mail off, none.
async fn the_low_credit_warning_goes_once_per_purchase_cycle(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    app.create_account("a").await;
    assert_eq!(app.balance("a").await, "50", "the Free plan's monthly credits");
    let started = app
        .gql(&app.service, "mutation { startContainer(input: {accountId: \"a\", containerId: \"web\", tier: \"small\", idempotencyKey: \"s\"}) { container { state } } }", json!({}))
        .await;
    assert!(started["errors"].is_null(), "{started}");
    let status = low_credits(&app, "a").await;
    assert_eq!((&status["applies"], &status["ratePerHour"]), (&json!(false), &json!("6.8")), "{status}");

    assert!(app.spend("a", "44", "s-1").await["errors"].is_null());
    let status = low_credits(&app, "a").await;
    assert_eq!(status["applies"], json!(true), "6 credits cover less than an hour at 6.8: {status}");
    assert!(status["notifiedAt"].is_string());
    for i in 0..5 {
        assert!(app.spend("a", "0.5", &format!("more-{i}")).await["errors"].is_null());
    }
    let sent = events(&app, "credits.low").await;
    assert_eq!(sent.len(), 1, "no storm of notices: {sent:?}");
    assert_eq!((&sent[0]["account"], &sent[0]["balance"]), (&json!("a"), &json!("6")));

    buy(&app, "a", "50", "pay-1").await;
    assert_eq!(low_credits(&app, "a").await["notifiedAt"], json!(null), "a purchase re-arms it");
    assert_eq!(app.balance("a").await, "68.5", "3.5 left, 50 bought, and the first purchase's 30% bonus");
    assert!(app.spend("a", "62", "s-2").await["errors"].is_null());
    assert_eq!(events(&app, "credits.low").await.len(), 2, "a new cycle, a new warning");

    let off =
        app.gql(&app.user("a"), "mutation { setCreditMail(accountId: \"a\", enabled: false) { creditMailEnabled } }", json!({})).await;
    assert_eq!(off["data"]["setCreditMail"]["creditMailEnabled"], json!(false), "{off}");
    buy(&app, "a", "50", "pay-2").await;
    assert!(app.spend("a", "50", "s-3").await["errors"].is_null());
    assert_eq!(events(&app, "credits.low").await.len(), 2, "credit mail is off");
    assert_eq!(low_credits(&app, "a").await["applies"], json!(true), "the page still says so");
    let other =
        app.gql(&app.user("a"), "mutation { setCreditMail(accountId: \"b\", enabled: false) { creditMailEnabled } }", json!({})).await;
    assert_eq!(error_code(&other), "FORBIDDEN");
    app.assert_audit_clean().await;
}

/// archipelag: a nudge under 10 credits, once per crossing: it re-arms when the balance is back.
async fn the_threshold_nudge_goes_once_per_crossing(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    app.create_account("a").await;
    app.ledger.set_identity_verified("a", true).await.unwrap(); // archipelag: spending needs it
    assert_eq!(app.balance("a").await, "10000", "the sign-up grant");
    assert!(app.spend("a", "9995", "s-1").await["errors"].is_null());
    assert!(app.spend("a", "1", "s-2").await["errors"].is_null());
    assert_eq!(events(&app, "credits.low").await.len(), 1);
    let status = low_credits(&app, "a").await;
    assert_eq!((&status["applies"], &status["threshold"], &status["ratePerHour"]), (&json!(true), &json!("10"), &json!(null)));

    app.grant("a", "10", "PAID", None, "top-up").await;
    assert!(app.spend("a", "1", "s-3").await["errors"].is_null(), "13 left: back above, re-armed");
    assert_eq!(events(&app, "credits.low").await.len(), 1);
    assert!(app.spend("a", "4", "s-4").await["errors"].is_null());
    let sent = events(&app, "credits.low").await;
    assert_eq!(sent.len(), 2, "crossed again: {sent:?}");
    assert_eq!(sent[1]["balance"], json!("9"));
    app.assert_audit_clean().await;
}

/// Credits expiring within the window are announced once per lot, in one notice per account;
/// short-lived lots by design (daily free, lucky, ad rewards) are not.
async fn expiring_credits_are_announced_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    app.create_account("a").await;
    app.create_account("quiet").await;
    app.grant("a", "7", "PROMOTIONAL", Some(at("2026-11-12T00:00:00Z")), "soon").await;
    app.grant("a", "9", "PROMOTIONAL", Some(at("2026-11-20T00:00:00Z")), "later").await;
    app.grant("quiet", "7", "PROMOTIONAL", Some(at("2026-11-12T00:00:00Z")), "soon").await;
    app.gql(&app.user("quiet"), "mutation { setCreditMail(accountId: \"quiet\", enabled: false) { creditMailEnabled } }", json!({})).await;

    let report = app.ledger.run_job(Job::NotifyExpiringCredits, at("2026-11-10T10:15:00Z")).await.unwrap();
    assert_eq!((report.items, report.complete), (2, true), "the two lots within 3 days");
    let sent = events(&app, "credits.expiring").await;
    assert_eq!(sent.len(), 1, "credit mail off for quiet: {sent:?}");
    assert_eq!(
        (&sent[0]["account"], &sent[0]["credits"], &sent[0]["earliestExpiry"]),
        (&json!("a"), &json!("7"), &json!("2026-11-12T00:00:00Z"))
    );
    assert_eq!(app.ledger.run_job(Job::NotifyExpiringCredits, at("2026-11-10T11:15:00Z")).await.unwrap().items, 0, "once per lot");

    // Later the 20th's lot comes within the window, and the month's plan credits soon after.
    app.ledger.run_job(Job::NotifyExpiringCredits, at("2026-11-17T10:00:00Z")).await.unwrap();
    app.ledger.run_job(Job::NotifyExpiringCredits, at("2026-11-28T10:00:00Z")).await.unwrap();
    let sent = events(&app, "credits.expiring").await;
    let credits: Vec<_> = sent.iter().filter(|e| e["account"] == json!("a")).map(|e| e["credits"].clone()).collect();
    assert_eq!(credits, [json!("7"), json!("9"), json!("50")], "{sent:?}");
}

on_both!(
    the_low_credit_warning_goes_once_per_purchase_cycle,
    the_threshold_nudge_goes_once_per_crossing,
    expiring_credits_are_announced_once
);
