use crate::on_both;
use crate::support::{Backend, TestApp};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

async fn count(app: &TestApp, table: &str) -> i64 {
    let db = &app.ledger.db;
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), format!("SELECT COUNT(*) FROM {table}")))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn carat_daily_free_credits_appear_each_day_and_cost_nothing_until_used(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    app.clock.set(at("2026-06-10T08:00:00Z"));
    app.create_account("free-user").await;
    let bars = app
        .gql(&app.user("free-user"), "{ me { balance { total bars { source class remaining expiries { expiresAt } } } } }", json!({}))
        .await;
    assert_eq!(
        bars["data"]["me"]["balance"],
        json!({ "total": "100", "bars": [{ "source": "DAILY_FREE", "class": "FREE", "remaining": "100", "expiries": [{ "expiresAt": "2026-06-11T00:00:00+00:00" }] }] })
    );
    // Reading wrote nothing: a dormant account costs no row.
    for _ in 0..3 {
        app.balance("free-user").await;
    }
    assert_eq!((count(&app, "lots").await, count(&app, "claims").await), (0, 0));

    // The first spend of the day writes the day's lot; ten at once write it once.
    let keys: Vec<String> = (0..10).map(|i| format!("s-{i}")).collect();
    let spends = futures::future::join_all(keys.iter().map(|key| app.spend("free-user", "9", key))).await;
    assert!(spends.iter().all(|r| r["errors"].is_null()), "{spends:?}");
    assert_eq!((count(&app, "lots").await, count(&app, "claims").await), (1, 1));
    app.clock.set(at("2026-06-10T23:59:59Z"));
    assert_eq!(app.balance("free-user").await, "10");
    // Midnight: nothing carries over, and the new day's credits are there again.
    app.clock.set(at("2026-06-11T00:00:00Z"));
    assert_eq!(app.balance("free-user").await, "100");

    // With paid credits left, today's free credits wait: counted, shown as waiting, used last.
    app.grant("free-user", "20", "PAID", None, "g-1").await;
    assert_eq!(app.balance("free-user").await, "120");
    let bars = app.gql(&app.service, "{ account(id: \"free-user\") { balance { bars { source remaining waiting } } } }", json!({})).await;
    assert_eq!(
        bars["data"]["account"]["balance"]["bars"],
        json!([{ "source": "DAILY_FREE", "remaining": "100", "waiting": true }, { "source": "ADJUSTMENT", "remaining": "20", "waiting": false }]),
        "{bars}"
    );
    assert_eq!((count(&app, "lots").await, count(&app, "claims").await), (2, 1), "still not written");
    assert!(app.spend("free-user", "20", "s-paid").await["errors"].is_null());
    assert_eq!(app.balance("free-user").await, "100", "paid credits used up: today's free credits");

    // Paid plans have none.
    app.gql(&app.service, "mutation { createAccount(input: {externalId: \"subscriber\", plan: \"plus\"}) { created } }", json!({})).await;
    app.clock.set(app.clock.now() + Duration::days(40));
    assert_eq!(app.balance("subscriber").await, "0");
    app.assert_audit_clean().await;
}

on_both!(carat_daily_free_credits_appear_each_day_and_cost_nothing_until_used);
