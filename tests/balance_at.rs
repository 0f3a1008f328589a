//! Balances over time (issue 25) through the real API on both databases: every history entry's
//! `balanceAfter` across grants, spends, holds, captures, releases, a void and an expiry; and
//! `account.balanceAt(at:)` at instants before and after each of them, including one between a
//! lot's expiry and its write-off (the worker runs an hour late), a hold past its deadline not yet
//! released, an account that did not exist yet, who may ask, and bad input.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

const BALANCE_AT: &str = "query($a: ID!, $t: DateTime!) { account(id: $a) { balanceAt(at: $t) { at available held total sequence } } }";
const HISTORY: &str =
    "query($a: ID!) { account(id: $a) { history(first: 100) { nodes { sequence kind amount balanceAfter recordedAt } } } }";
const RESERVE: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!, $s: Int) {
    reserveCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"video\", holdSeconds: $s}) { reservationId } }";
const CAPTURE: &str = "mutation($r: ID!, $amt: CreditAmount!, $k: String!) {
    captureReservation(input: {reservationId: $r, amount: $amt, idempotencyKey: $k}) { status } }";
const RELEASE: &str = "mutation($r: ID!, $k: String!) { releaseReservation(input: {reservationId: $r, idempotencyKey: $k}) { status } }";
const VOID: &str =
    "mutation($l: ID!, $k: String!) { voidLot(input: {lotId: $l, reason: \"wrong account\", idempotencyKey: $k}) { voided } }";
const BALANCE: &str = "query($a: ID!) { account(id: $a) { balance { available held } } }";

fn ok(response: Value) -> Value {
    assert!(response["errors"].is_null(), "{response}");
    response
}

/// (available, held) as balanceAt answers them, or None for null.
async fn balance_at(app: &TestApp, token: &str, account: &str, at: DateTime<Utc>) -> Option<(String, String)> {
    let r = ok(app.gql(token, BALANCE_AT, json!({ "a": account, "t": at.to_rfc3339() })).await);
    let b = &r["data"]["account"]["balanceAt"];
    if b.is_null() {
        return None;
    }
    let total = |s: &Value| credits::ledger::Credits::parse_str(s.as_str().unwrap()).unwrap();
    assert_eq!(total(&b["total"]), total(&b["available"]).checked_add(total(&b["held"])).unwrap(), "{b}");
    Some((b["available"].as_str().unwrap().to_string(), b["held"].as_str().unwrap().to_string()))
}

fn pair(available: &str, held: &str) -> Option<(String, String)> {
    Some((available.to_string(), held.to_string()))
}

/// The account's history oldest first: (kind, amount, balanceAfter).
async fn history(app: &TestApp, account: &str) -> Vec<(String, String, String)> {
    let r = ok(app.gql(&app.service, HISTORY, json!({ "a": account })).await);
    let mut nodes: Vec<(String, String, String)> = r["data"]["account"]["history"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["kind"].as_str().unwrap().into(), n["amount"].as_str().unwrap().into(), n["balanceAfter"].as_str().unwrap().into()))
        .collect();
    nodes.reverse();
    nodes
}

async fn reserve(app: &TestApp, account: &str, amount: &str, key: &str, hold_seconds: i64) -> String {
    let r = ok(app.gql(&app.service, RESERVE, json!({ "a": account, "amt": amount, "k": key, "s": hold_seconds })).await);
    r["data"]["reserveCredits"]["reservationId"].as_str().unwrap().to_string()
}

async fn read_now(app: &TestApp, account: &str) -> Option<(String, String)> {
    let r = ok(app.gql(&app.service, BALANCE, json!({ "a": account })).await);
    let b = &r["data"]["account"]["balance"];
    pair(b["available"].as_str().unwrap(), b["held"].as_str().unwrap())
}

async fn every_operation_over_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = credits::ledger::time::truncate(app.clock.now());
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let step = |minutes: i64| app.clock.set(at(minutes));

    app.create_account("a").await;
    step(1);
    let promo = ok(app.grant("a", "100", "PROMOTIONAL", Some(at(60)), "g-1").await)["data"]["grantCredits"]["lotId"].clone();
    step(2);
    ok(app.grant("a", "50", "PAID", None, "g-2").await);
    step(3);
    ok(app.spend("a", "30", "s-1").await);
    step(4);
    let captured = reserve(&app, "a", "20", "r-1", 3600).await;
    step(5);
    ok(app.gql(&app.service, CAPTURE, json!({ "r": captured, "amt": "5", "k": "c-1" })).await);
    step(6);
    let released = reserve(&app, "a", "10", "r-2", 3600).await;
    step(7);
    ok(app.gql(&app.service, RELEASE, json!({ "r": released, "k": "l-1" })).await);
    step(8);
    let wrong = ok(app.grant("a", "7", "PAID", None, "g-3").await)["data"]["grantCredits"]["lotId"].clone();
    step(9);
    ok(app.gql(&app.admin, VOID, json!({ "l": wrong, "k": "v-1" })).await);
    // A hold of 2 for a minute, never settled by anyone before its deadline.
    step(10);
    reserve(&app, "a", "2", "r-3", 60).await;
    // The promotional lot expires at minute 60; the worker writes it off at minute 120 (and
    // releases the lapsed hold then too).
    step(120);
    app.ledger.expire_reservations(app.clock.now(), 100).await.unwrap();
    let written = app.ledger.expire_due(app.clock.now(), 100).await.unwrap();
    assert_eq!(written.lots, 1);

    let kinds: Vec<(String, String, String)> = history(&app, "a").await;
    let expected: Vec<(&str, &str, &str)> = vec![
        ("GRANT", "100", "100"),
        ("GRANT", "50", "150"),
        ("SPEND", "-30", "120"),
        ("HOLD", "-20", "100"),
        ("RELEASE", "20", "120"),
        ("SPEND", "-5", "115"),
        ("HOLD", "-10", "105"),
        ("RELEASE", "10", "115"),
        ("GRANT", "7", "122"),
        ("VOID", "-7", "115"),
        ("HOLD", "-2", "113"),
        // Released by the worker after the lot's expiry: it expires on its return.
        ("RELEASE", "2", "115"),
        ("EXPIRE", "-2", "113"),
        ("EXPIRE", "-63", "50"),
    ];
    let kinds: Vec<(&str, &str, &str)> = kinds.iter().map(|(k, a, b)| (k.as_str(), a.as_str(), b.as_str())).collect();
    assert_eq!(kinds, expected);
    let _ = promo;

    let service = app.service.clone();
    let seconds = |s: i64| Duration::seconds(s);
    // Before the account existed: null. Created, nothing granted yet: zero.
    assert_eq!(balance_at(&app, &service, "a", t0 - seconds(1)).await, None);
    assert_eq!(balance_at(&app, &service, "a", t0).await, pair("0", "0"));
    assert_eq!(balance_at(&app, &service, "a", at(1) - seconds(1)).await, pair("0", "0"));
    // Each instant an operation was recorded at shows it; the second before does not.
    let expected = [
        (1, "100", "0"),
        (2, "150", "0"),
        (3, "120", "0"),
        (4, "100", "20"),
        (5, "115", "0"),
        (6, "105", "10"),
        (7, "115", "0"),
        (8, "122", "0"),
        (9, "115", "0"),
        (10, "113", "2"),
    ];
    for (minute, available, held) in expected {
        assert_eq!(balance_at(&app, &service, "a", at(minute)).await, pair(available, held), "at minute {minute}");
        assert_eq!(
            balance_at(&app, &service, "a", at(minute + 1) - seconds(1)).await,
            pair(available, held),
            "before minute {}",
            minute + 1
        );
    }
    // Past the hold's deadline (minute 11), not yet released: its credits are available again.
    assert_eq!(balance_at(&app, &service, "a", at(11)).await, pair("115", "0"));
    // The second before the lot's expiry it still counts; at its expiry it does not, though
    // its write-off was recorded an hour later.
    assert_eq!(balance_at(&app, &service, "a", at(60) - Duration::microseconds(1)).await, pair("115", "0"));
    assert_eq!(balance_at(&app, &service, "a", at(60)).await, pair("50", "0"));
    assert_eq!(balance_at(&app, &service, "a", at(90)).await, pair("50", "0"));
    assert_eq!(balance_at(&app, &service, "a", at(120)).await, pair("50", "0"));
    // Now: what a balance read shows.
    assert_eq!(balance_at(&app, &service, "a", app.clock.now()).await, read_now(&app, "a").await);

    // The account's own user may ask; another user may not; an instant after now is bad input.
    assert_eq!(balance_at(&app, &app.user("a"), "a", at(4)).await, pair("100", "20"));
    let other = app.gql(&app.user("b"), BALANCE_AT, json!({ "a": "a", "t": at(4).to_rfc3339() })).await;
    assert_eq!(error_code(&other), "FORBIDDEN", "{other}");
    let future = app.gql(&service, BALANCE_AT, json!({ "a": "a", "t": (app.clock.now() + seconds(1)).to_rfc3339() })).await;
    assert_eq!(error_code(&future), "BAD_USER_INPUT", "{future}");
    let garbled = app.gql(&service, BALANCE_AT, json!({ "a": "a", "t": "yesterday" })).await;
    assert!(!garbled["errors"].is_null(), "{garbled}");
    assert!(garbled["data"].is_null() || garbled["data"]["account"].is_null(), "{garbled}");
    let unknown = app.gql(&service, BALANCE_AT, json!({ "a": "nobody", "t": at(4).to_rfc3339() })).await;
    assert_eq!(error_code(&unknown), "NOT_FOUND", "{unknown}");
    app.assert_audit_clean().await;
}

/// A hold whose lot expires while it is held: between the lot's expiry and the hold's
/// deadline the part is held; past both, before anyone settled it, it counts nowhere (it
/// expires on its return).
async fn a_held_part_of_an_expired_lot(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = credits::ledger::time::truncate(app.clock.now());
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    app.create_account("h").await;
    app.clock.set(at(1));
    ok(app.grant("h", "10", "PROMOTIONAL", Some(at(30)), "g-1").await);
    ok(app.grant("h", "5", "PAID", None, "g-2").await);
    app.clock.set(at(2));
    reserve(&app, "h", "4", "r-1", 3600).await;
    let service = app.service.clone();
    assert_eq!(balance_at(&app, &service, "h", at(2)).await, pair("11", "4"));
    // The lot expired at minute 30: its 6 left the balance, the 4 it holds are still held.
    app.clock.set(at(61));
    assert_eq!(balance_at(&app, &service, "h", at(45)).await, pair("5", "4"));
    // Past the deadline (minute 62) and never settled: the part's lot had expired, so it counts
    // nowhere, before the worker and after it.
    app.clock.set(at(90));
    assert_eq!(balance_at(&app, &service, "h", at(70)).await, pair("5", "0"));
    assert_eq!(balance_at(&app, &service, "h", at(90)).await, read_now(&app, "h").await);
    app.ledger.expire_reservations(app.clock.now(), 100).await.unwrap();
    app.ledger.expire_due(app.clock.now(), 100).await.unwrap();
    assert_eq!(balance_at(&app, &service, "h", at(45)).await, pair("5", "4"));
    assert_eq!(balance_at(&app, &service, "h", at(70)).await, pair("5", "0"));
    assert_eq!(balance_at(&app, &service, "h", at(90)).await, read_now(&app, "h").await);
    let last = history(&app, "h").await;
    assert_eq!(last.last().map(|(k, _, b)| (k.as_str(), b.as_str())), Some(("EXPIRE", "5")), "{last:?}");
    app.assert_audit_clean().await;
}

on_both!(every_operation_over_time, a_held_part_of_an_expired_lot);
