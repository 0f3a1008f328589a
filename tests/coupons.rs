use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

const CREATE: &str = "mutation($in: CreateCouponInput!) { createCoupon(input: $in) { code credits validFor maxRedemptions redemptions } }";
const REDEEM: &str = "mutation($a: ID!, $c: String!, $k: String!) { redeemCoupon(input: {accountId: $a, code: $c, idempotencyKey: $k}) { lotId amount expiresAt } }";

async fn redeem(app: &TestApp, account: &str, code: &str, key: &str) -> Value {
    app.gql(&app.user(account), REDEEM, json!({ "a": account, "c": code, "k": key })).await
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

async fn coupons_are_redeemed_once_per_account_within_window_and_cap(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for account in ["a", "b", "c"] {
        app.create_account(account).await;
    }
    let now = app.clock.now();
    let welcome = json!({ "in": { "code": "Welcome10", "credits": "10", "validFor": "30 days", "maxRedemptions": 2, "endsAt": rfc(now + Duration::days(7)) } });
    let created = app.gql(&app.admin, CREATE, welcome.clone()).await;
    assert_eq!(created["data"]["createCoupon"]["code"], json!("WELCOME10"), "{created}");
    assert_eq!(app.gql(&app.admin, CREATE, welcome).await["data"], created["data"], "idempotent on the code");
    let changed = app.gql(&app.admin, CREATE, json!({ "in": { "code": "welcome10", "credits": "11" } })).await;
    assert_eq!(error_code(&changed), "IDEMPOTENCY_CONFLICT");
    let by_service = app.gql(&app.service, CREATE, json!({ "in": { "code": "X-1", "credits": "1" } })).await;
    assert_eq!(error_code(&by_service), "FORBIDDEN");
    for bad in [
        json!({ "code": "ab", "credits": "1" }),
        json!({ "code": "OK-CODE", "credits": "0" }),
        json!({ "code": "OK-CODE", "credits": "1", "maxRedemptions": 0 }),
        json!({ "code": "OK-CODE", "credits": "1", "validFor": "30 days", "expiresAt": rfc(now + Duration::days(1)) }),
        json!({ "code": "OK-CODE", "credits": "1", "startsAt": rfc(now), "endsAt": rfc(now) }),
    ] {
        let r = app.gql(&app.admin, CREATE, json!({ "in": bad })).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{bad}");
    }

    // Case-insensitive; the credits are valid 30 days from redemption.
    let first = redeem(&app, "a", "welcome10", "r-1").await;
    assert_eq!(first["data"]["redeemCoupon"]["amount"], json!("10"), "{first}");
    let expires = DateTime::parse_from_rfc3339(first["data"]["redeemCoupon"]["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires, now + Duration::days(30));
    assert_eq!(redeem(&app, "a", "welcome10", "r-1").await["data"], first["data"], "a replay");
    assert_eq!(error_code(&redeem(&app, "a", "WELCOME10", "r-2").await), "COUPON_ALREADY_REDEEMED");
    assert!(redeem(&app, "b", "WELCOME10", "r-1").await["errors"].is_null());
    assert_eq!(error_code(&redeem(&app, "c", "WELCOME10", "r-1").await), "COUPON_EXHAUSTED");

    // A window that has not opened, and one that has closed.
    let later = json!({ "in": { "code": "LATER", "credits": "5", "startsAt": rfc(now + Duration::days(1)), "endsAt": rfc(now + Duration::days(2)) } });
    app.gql(&app.admin, CREATE, later).await;
    assert_eq!(error_code(&redeem(&app, "c", "later", "r-2").await), "COUPON_NOT_YET_VALID");
    app.clock.set(now + Duration::days(1));
    assert!(redeem(&app, "c", "later", "r-3").await["errors"].is_null());
    app.clock.set(now + Duration::days(2));
    assert_eq!(error_code(&redeem(&app, "b", "later", "r-4").await), "COUPON_EXPIRED");
    assert_eq!(app.balance("a").await, "10");
    assert_eq!(app.balance("c").await, "5");
    app.assert_audit_clean().await;
}

async fn wrong_guesses_are_throttled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("guesser").await;
    app.gql(&app.admin, CREATE, json!({ "in": { "code": "REAL-ONE", "credits": "3" } })).await;
    for i in 0..5 {
        assert_eq!(error_code(&redeem(&app, "guesser", &format!("GUESS-{i}"), &format!("g-{i}")).await), "COUPON_NOT_FOUND");
    }
    assert_eq!(error_code(&redeem(&app, "guesser", "REAL-ONE", "g-real").await), "TOO_MANY_ATTEMPTS");
    app.clock.set(app.clock.now() + Duration::minutes(16));
    let r = redeem(&app, "guesser", "REAL-ONE", "g-real").await;
    assert!(r["errors"].is_null(), "the throttle lifts after its window, and the key was not spent: {r}");
    assert_eq!(app.balance("guesser").await, "3");
}

async fn a_capped_coupon_is_never_over_redeemed_under_concurrency(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let accounts: Vec<String> = (0..10).map(|i| format!("racer-{i}")).collect();
    for account in &accounts {
        app.create_account(account).await;
    }
    app.gql(&app.admin, CREATE, json!({ "in": { "code": "FIRST-THREE", "credits": "1", "maxRedemptions": 3 } })).await;
    let results = futures::future::join_all(accounts.iter().map(|a| redeem(&app, a, "first-three", "k"))).await;
    let ok = results.iter().filter(|r| r["errors"].is_null()).count();
    let exhausted = results.iter().filter(|r| !r["errors"].is_null() && error_code(r) == "COUPON_EXHAUSTED").count();
    assert_eq!((ok, exhausted), (3, 7), "{results:?}");
    let coupon = app.gql(&app.admin, CREATE, json!({ "in": { "code": "FIRST-THREE", "credits": "1", "maxRedemptions": 3 } })).await;
    assert_eq!(coupon["data"]["createCoupon"]["redemptions"], json!(3));
    app.assert_audit_clean().await;
}

on_both!(
    coupons_are_redeemed_once_per_account_within_window_and_cap,
    wrong_guesses_are_throttled,
    a_capped_coupon_is_never_over_redeemed_under_concurrency
);
