//! Future-effective grants (issue 25) through the API on both databases: a grant with
//! `effectiveAt` is upcoming until then (listed, in `Balance.upcoming`, not in `available`, not
//! spendable), its validity counts from its start, and from that instant it is spent as any
//! lot; `balanceAt` before the start leaves it out; the expiry job and the audit respect it;
//! bad starts are refused and change nothing.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

const GRANT: &str = "mutation($amt: CreditAmount!, $s: DateTime, $e: DateTime, $v: String, $k: String!) {
    grantCredits(input: {accountId: \"a\", amount: $amt, class: PROMOTIONAL, effectiveAt: $s, expiresAt: $e, validFor: $v,
      idempotencyKey: $k}) { lotId } }";

const READ: &str = "query { account(id: \"a\") { balance { total available upcoming { effectiveAt amount } }
    lots(first: 20) { nodes { id effectiveAt expiresAt upcoming spendable } } } }";

const BALANCE_AT: &str = "query($t: DateTime!) { account(id: \"a\") { balanceAt(at: $t) { available } } }";

const EXPIRY: &str = "mutation($l: ID!, $e: DateTime!, $k: String!) {
    changeLotExpiry(input: {lotId: $l, expiresAt: $e, reason: \"moved\", idempotencyKey: $k}) { expiresAt expired } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

async fn grant(app: &TestApp, start: Option<DateTime<Utc>>, expires: Option<DateTime<Utc>>, valid_for: Option<&str>, key: &str) -> Value {
    let vars = json!({ "amt": "50", "s": start.map(|s| s.to_rfc3339()), "e": expires.map(|e| e.to_rfc3339()), "v": valid_for, "k": key });
    app.gql(&app.admin, GRANT, vars).await
}

async fn balance_at(app: &TestApp, t: DateTime<Utc>) -> Value {
    let r = app.gql(&app.service, BALANCE_AT, json!({ "t": t.to_rfc3339() })).await;
    r["data"]["account"]["balanceAt"]["available"].clone()
}

async fn a_future_grant_is_upcoming_until_it_starts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = at("2026-11-10T10:00:00Z");
    app.clock.set(t0);
    app.create_account("a").await;
    app.grant("a", "5", "PAID", None, "g-now").await;
    let start = t0 + Duration::hours(1);
    let r = grant(&app, Some(start), None, Some("1 day"), "g-later").await;
    let lot = r["data"]["grantCredits"]["lotId"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();

    let read = app.gql(&app.service, READ, json!({})).await;
    let balance = &read["data"]["account"]["balance"];
    assert_eq!((&balance["total"], &balance["available"]), (&json!("5"), &json!("5")), "{read}");
    assert_eq!(balance["upcoming"], json!([{ "effectiveAt": "2026-11-10T11:00:00+00:00", "amount": "50" }]), "{read}");
    let nodes = read["data"]["account"]["lots"]["nodes"].as_array().unwrap();
    let node = nodes.iter().find(|n| n["id"] == json!(lot)).unwrap();
    // Its validity counts from its start.
    assert_eq!(
        (&node["effectiveAt"], &node["expiresAt"], &node["upcoming"], &node["spendable"]),
        (&json!("2026-11-10T11:00:00+00:00"), &json!("2026-11-11T11:00:00+00:00"), &json!(true), &json!("0")),
        "{read}"
    );

    // Not spendable before its start: the refusal counts only what is spendable.
    let short = app.spend("a", "6", "s-1").await;
    assert_eq!(error_code(&short), "INSUFFICIENT_CREDITS", "{short}");
    assert_eq!(short["errors"][0]["extensions"]["available"], json!("5"), "{short}");
    // Its expiry may not move to before its start (but may end it now).
    let between = app.gql(&app.admin, EXPIRY, json!({ "l": lot, "e": (t0 + Duration::minutes(30)).to_rfc3339(), "k": "x-1" })).await;
    assert_eq!(error_code(&between), "INVALID_STATE", "{between}");
    assert!(between["errors"][0]["message"].as_str().unwrap().contains("starts at"), "{between}");

    // From its start it is spent as any lot (promotional before paid in this order).
    app.clock.set(start);
    // What a read showed before the start left it out; from the start, it counts.
    assert_eq!(balance_at(&app, start - Duration::seconds(1)).await, json!("5"));
    assert_eq!(balance_at(&app, start).await, json!("55"));
    let took = app.spend("a", "6", "s-2").await;
    let takes = took["data"]["spendCredits"]["takes"].as_array().unwrap_or_else(|| panic!("{took}"));
    assert_eq!(takes[0], json!({ "lotId": lot, "amount": "6" }), "{took}");
    assert_eq!(balance_at(&app, start).await, json!("49"), "the spend at that instant is in its state");
    assert_eq!(app.balance("a").await, "49");

    // The expiry job writes off what is left at its expiry, a day after the start.
    app.clock.set(start + Duration::days(1) - Duration::seconds(1));
    assert_eq!(app.ledger.expire_due(app.clock.now(), 100).await.unwrap().lots, 0);
    app.clock.set(start + Duration::days(1));
    let written = app.ledger.expire_due(app.clock.now(), 100).await.unwrap();
    assert_eq!((written.lots, written.credits), (1, credits::ledger::Credits::from_whole(44)));
    assert_eq!(app.balance("a").await, "5");
    app.assert_audit_clean().await;
}

async fn bad_starts_are_refused_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = at("2026-11-10T10:00:00Z");
    app.clock.set(t0);
    app.create_account("a").await;
    for (start, expires, why) in [
        (t0, None, "effectiveAt must be in the future"),
        (t0 - Duration::hours(1), None, "effectiveAt must be in the future"),
        (t0 + Duration::hours(2), Some(t0 + Duration::hours(1)), "expiresAt must be later than effectiveAt"),
        (t0 + Duration::hours(2), Some(t0 + Duration::hours(2)), "expiresAt must be later than effectiveAt"),
    ] {
        let r = grant(&app, Some(start), expires, None, "g-bad").await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{r}");
        assert!(r["errors"][0]["message"].as_str().unwrap().contains(why), "{r}");
    }
    assert_eq!(app.balance("a").await, "0");
    let read = app.gql(&app.service, READ, json!({})).await;
    assert_eq!(read["data"]["account"]["lots"]["nodes"], json!([]), "{read}");
    // A start is part of the request its key stands for.
    assert!(grant(&app, Some(t0 + Duration::hours(1)), None, None, "g-1").await["errors"].is_null());
    assert_eq!(error_code(&grant(&app, Some(t0 + Duration::hours(2)), None, None, "g-1").await), "IDEMPOTENCY_CONFLICT");
    assert_eq!(error_code(&grant(&app, None, None, None, "g-1").await), "IDEMPOTENCY_CONFLICT");
    app.assert_audit_clean().await;
}

/// An operator may end an upcoming lot before it starts: it expires at once, is written off,
/// and `balanceAt` counts it neither before nor after.
async fn an_upcoming_lot_ended_before_its_start_never_counts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = at("2026-11-10T10:00:00Z");
    app.clock.set(t0);
    app.create_account("a").await;
    let r = grant(&app, Some(t0 + Duration::hours(3)), None, None, "g-1").await;
    let lot = r["data"]["grantCredits"]["lotId"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
    app.clock.set(t0 + Duration::hours(1));
    let ended = app.gql(&app.admin, EXPIRY, json!({ "l": lot, "e": t0.to_rfc3339(), "k": "x-1" })).await;
    assert_eq!(ended["data"]["changeLotExpiry"]["expired"], json!("50"), "{ended}");
    app.clock.set(t0 + Duration::hours(4));
    for t in [t0 + Duration::minutes(30), t0 + Duration::hours(1), t0 + Duration::hours(4)] {
        assert_eq!(balance_at(&app, t).await, json!("0"), "at {t}");
    }
    assert_eq!(app.balance("a").await, "0");
    app.assert_audit_clean().await;
}

on_both!(
    a_future_grant_is_upcoming_until_it_starts,
    bad_starts_are_refused_and_change_nothing,
    an_upcoming_lot_ended_before_its_start_never_counts
);
