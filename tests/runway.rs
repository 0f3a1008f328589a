//! Runway (issue 26, `balance.runway`): the burn rate from the last 7 days' spending (holds net
//! of releases) or from running containers, the run-out instant and the credits that expire
//! unused, through the API on both databases; and pushed with `balanceChanged`.

use crate::on_both;
use crate::support::ws::{connect, next, send};
use crate::support::{Backend, TestApp};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

const RUNWAY: &str = "query($a: ID!) { account(id: $a) { balance { available runway {
    basis burnPerHour burnPerDay windowStart spentInWindow runsOutAt expiringUnused unusedExpiries { expiresAt amount } } } } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn shown(t: DateTime<Utc>) -> Value {
    json!(t.to_rfc3339())
}

async fn runway(app: &TestApp, token: &str, account: &str) -> Value {
    let r = app.gql(token, RUNWAY, json!({ "a": account })).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["account"]["balance"]["runway"].clone()
}

async fn ok(r: Value) -> Value {
    assert!(r["errors"].is_null(), "{r}");
    r
}

/// 70 credits spent over the window (a spend before it does not count, a hold released nets to
/// nothing, a hold captured counts what was captured): 10 a day. The promotional lot goes first
/// in the test program's order: 50 of its 80 are used by its expiry, 30 expire unused, then the
/// 30 paid credits last 3 days more.
async fn recent_spending_sets_the_rate_and_the_order_decides_what_expires(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = at("2026-11-10T00:00:00Z");
    app.clock.set(t0 - Duration::days(10));
    app.create_account("r").await;
    ok(app.grant("r", "130", "PAID", None, "g-paid").await).await;
    ok(app.spend("r", "30", "s-old").await).await;
    app.clock.set(t0 - Duration::days(3));
    ok(app.spend("r", "60", "s-new").await).await;
    let reserve = "mutation($k: String!, $amt: CreditAmount!) { reserveCredits(input: {accountId: \"r\", amount: $amt, idempotencyKey: $k, feature: \"video\"}) { reservationId } }";
    let held = ok(app.gql(&app.service, reserve, json!({ "k": "h-1", "amt": "20" })).await).await;
    let id = held["data"]["reserveCredits"]["reservationId"].clone();
    ok(app
        .gql(
            &app.service,
            "mutation($r: ID!) { releaseReservation(input: {reservationId: $r, idempotencyKey: \"rel\"}) { status } }",
            json!({ "r": id }),
        )
        .await)
    .await;
    let held = ok(app.gql(&app.service, reserve, json!({ "k": "h-2", "amt": "15" })).await).await;
    let id = held["data"]["reserveCredits"]["reservationId"].clone();
    ok(app
        .gql(
            &app.service,
            "mutation($r: ID!) { captureReservation(input: {reservationId: $r, amount: \"10\", idempotencyKey: \"cap\"}) { status } }",
            json!({ "r": id }),
        )
        .await)
    .await;
    app.clock.set(t0);
    ok(app.grant("r", "80", "PROMOTIONAL", Some(t0 + Duration::days(5)), "g-promo").await).await;

    let r = runway(&app, &app.user("r"), "r").await;
    assert_eq!(
        r,
        json!({
            "basis": "RECENT_SPENDING",
            "burnPerHour": "0.416667",
            "burnPerDay": "10",
            "windowStart": shown(t0 - Duration::days(7)),
            "spentInWindow": "70",
            "runsOutAt": shown(t0 + Duration::days(8)),
            "expiringUnused": "30",
            "unusedExpiries": [{ "expiresAt": shown(t0 + Duration::days(5)), "amount": "30" }],
        })
    );

    // A week later the window holds no spending: no rate, no run-out, and every credit with an
    // expiry is lost (the promotional lot has expired by then; a new one is counted).
    app.clock.set(t0 + Duration::days(7));
    ok(app.grant("r", "5", "PROMOTIONAL", Some(t0 + Duration::days(9)), "g-promo-2").await).await;
    let r = runway(&app, &app.service, "r").await;
    assert_eq!((&r["basis"], &r["burnPerDay"], &r["runsOutAt"]), (&json!("NO_USE"), &json!("0"), &json!(null)), "{r}");
    assert_eq!(r["unusedExpiries"], json!([{ "expiresAt": shown(t0 + Duration::days(9)), "amount": "5" }]), "{r}");

    // An account that spent all it had runs out now.
    app.create_account("empty").await;
    ok(app.grant("empty", "4", "PAID", None, "g-e").await).await;
    ok(app.spend("empty", "4", "s-e").await).await;
    let r = runway(&app, &app.service, "empty").await;
    assert_eq!((&r["basis"], &r["runsOutAt"]), (&json!("RECENT_SPENDING"), &shown(t0 + Duration::days(7))), "{r}");

    // Another user's runway is not theirs to read.
    let r = app.gql(&app.user("empty"), RUNWAY, json!({ "a": "r" })).await;
    assert_eq!(crate::support::error_code(&r), "FORBIDDEN", "{r}");
    app.assert_audit_clean().await;
}

/// A running Small container (6.80 an hour in the test program) is the rate while it runs,
/// whatever the history says: 68 credits last 10 hours.
async fn running_containers_set_the_rate_while_they_run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = at("2026-11-10T00:00:00Z");
    app.clock.set(t0);
    app.create_account("c").await;
    ok(app.grant("c", "68", "PAID", None, "g").await).await;
    ok(app
        .gql(
            &app.service,
            "mutation { startContainer(input: {accountId: \"c\", containerId: \"box\", tier: \"small\", codeSupporter: false, idempotencyKey: \"start\"}) { container { state } } }",
            json!({}),
        )
        .await)
    .await;
    let r = runway(&app, &app.service, "c").await;
    assert_eq!(
        (&r["basis"], &r["burnPerHour"], &r["burnPerDay"], &r["windowStart"], &r["runsOutAt"]),
        (&json!("RUNNING_USAGE"), &json!("6.8"), &json!("163.2"), &json!(null), &shown(t0 + Duration::hours(10))),
        "{r}"
    );
}

/// `balanceChanged` with `runway` selected pushes it with each change.
async fn the_runway_is_pushed_with_balance_changed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = at("2026-11-10T00:00:00Z");
    app.clock.set(t0 - Duration::days(1));
    app.create_account("w").await;
    ok(app.grant("w", "100", "PAID", None, "g").await).await;
    ok(app.spend("w", "7", "s-1").await).await;
    app.clock.set(t0);
    let mut socket = connect(&app.address, &app.user("w")).await;
    let query = "subscription { balanceChanged { balance { total runway { burnPerDay runsOutAt } } } }";
    send(&mut socket, json!({ "id": "1", "type": "subscribe", "payload": { "query": query } })).await;
    let pushed = |m: Value| m["payload"]["data"]["balanceChanged"]["balance"].clone();
    // 93 left at 1 a day (7 in the window): 93 days.
    assert_eq!(
        pushed(next(&mut socket).await),
        json!({ "total": "93", "runway": { "burnPerDay": "1", "runsOutAt": shown(t0 + Duration::days(93)) } })
    );
    ok(app.spend("w", "7", "s-2").await).await;
    // 86 left at 2 a day: 43 days.
    assert_eq!(
        pushed(next(&mut socket).await),
        json!({ "total": "86", "runway": { "burnPerDay": "2", "runsOutAt": shown(t0 + Duration::days(43)) } })
    );
}

on_both!(
    recent_spending_sets_the_rate_and_the_order_decides_what_expires,
    running_containers_set_the_rate_while_they_run,
    the_runway_is_pushed_with_balance_changed,
);
