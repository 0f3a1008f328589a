use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const CHECK_IN: &str =
    "mutation($a: ID!, $k: String!) { checkIn(input: {accountId: $a, idempotencyKey: $k}) { day lotId amount expiresAt } }";
const STATUS: &str = "{ me { checkInStatus { enabled claimedToday nextAvailableAt streak credits } } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

async fn status(app: &TestApp, user: &str) -> Value {
    let r = app.gql(user, STATUS, json!({})).await;
    r["data"]["me"]["checkInStatus"].clone()
}

async fn check_in_is_once_per_utc_day(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.clock.set(at("2026-02-28T23:59:59Z"));
    app.create_account("daily").await;
    let user = app.user("daily");
    assert_eq!(status(&app, &user).await["claimedToday"], json!(false));

    let first = app.gql(&user, CHECK_IN, json!({ "a": "daily", "k": "c-1" })).await;
    let payload = &first["data"]["checkIn"];
    assert_eq!(payload["day"], json!("2026-02-28"), "{first}");
    assert_eq!(payload["amount"], json!("5"));
    assert_eq!(payload["expiresAt"], json!("2026-03-30T23:59:59+00:00"), "valid 30 days");
    let replay = app.gql(&user, CHECK_IN, json!({ "a": "daily", "k": "c-1" })).await;
    assert_eq!(replay["data"], first["data"], "the same key replays the original success");
    let again = app.gql(&user, CHECK_IN, json!({ "a": "daily", "k": "c-2" })).await;
    assert_eq!(error_code(&again), "ALREADY_CLAIMED");
    let s = status(&app, &user).await;
    assert_eq!(
        s,
        json!({ "enabled": true, "claimedToday": true, "nextAvailableAt": "2026-03-01T00:00:00+00:00", "streak": 1, "credits": "5" })
    );

    // 00:00:00 UTC opens the next day; the streak is still alive until that day ends.
    app.clock.set(at("2026-03-01T00:00:00Z"));
    let s = status(&app, &user).await;
    assert_eq!((s["claimedToday"].clone(), s["streak"].clone()), (json!(false), json!(1)));
    let next = app.gql(&user, CHECK_IN, json!({ "a": "daily", "k": "c-3" })).await;
    assert_eq!(next["data"]["checkIn"]["day"], json!("2026-03-01"), "{next}");
    assert_eq!(status(&app, &user).await["streak"], json!(2));
    app.clock.set(at("2026-03-03T12:00:00Z"));
    assert_eq!(status(&app, &user).await["streak"], json!(0), "a missed day ends the streak");
    // February's 50 plan credits ended with February; the check-ins remain.
    assert_eq!(app.balance("daily").await, "10");

    let other = app.gql(&user, CHECK_IN, json!({ "a": "someone", "k": "c-4" })).await;
    assert_eq!(error_code(&other), "FORBIDDEN");
    app.assert_audit_clean().await;
}

async fn concurrent_check_ins_grant_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("eager").await;
    let user = app.user("eager");
    let results =
        futures::future::join_all((0..20).map(|i| app.gql(&user, CHECK_IN, json!({ "a": "eager", "k": format!("k-{i}") })))).await;
    let granted = results.iter().filter(|r| r["errors"].is_null()).count();
    let claimed = results.iter().filter(|r| !r["errors"].is_null() && error_code(r) == "ALREADY_CLAIMED").count();
    assert_eq!((granted, claimed), (1, 19), "{results:?}");
    assert_eq!(app.balance("eager").await, "55", "this month's 50 plan credits and one check-in");
    app.assert_audit_clean().await;
}

async fn programs_without_check_in_refuse_it(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    app.create_account("fan").await;
    let r = app.gql(&app.user("fan"), CHECK_IN, json!({ "a": "fan", "k": "c" })).await;
    assert_eq!(error_code(&r), "FEATURE_DISABLED");
    assert_eq!(status(&app, &app.user("fan")).await["enabled"], json!(false));
}

on_both!(check_in_is_once_per_utc_day, concurrent_check_ins_grant_once, programs_without_check_in_refuse_it);
