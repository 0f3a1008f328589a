//! Reservations through the API (domain.md §4, *beyond*): hold, then capture at most the hold or
//! release it; the deadline releases what nobody settled; held credits are nobody else's.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::Duration;
use credits::service::jobs::Job;
use serde_json::{Value, json};

const RESERVE: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!, $s: Int) {
    reserveCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"video\", model: \"ltx\", holdSeconds: $s}) {
      reservationId amount sequence deadline availableAfter takes { lotId amount } } }";
const CAPTURE: &str = "mutation($r: ID!, $amt: CreditAmount!, $k: String!) {
    captureReservation(input: {reservationId: $r, amount: $amt, idempotencyKey: $k}) { reservationId status captured released expired } }";
const RELEASE: &str = "mutation($r: ID!, $k: String!) {
    releaseReservation(input: {reservationId: $r, idempotencyKey: $k}) { reservationId status captured released expired } }";
const BALANCE: &str = "query($a: ID!) { account(id: $a) { balance { total held available } } }";

async fn reserve(app: &TestApp, account: &str, amount: &str, key: &str, hold_seconds: Option<i64>) -> Value {
    app.gql(&app.service, RESERVE, json!({ "a": account, "amt": amount, "k": key, "s": hold_seconds })).await
}

async fn capture(app: &TestApp, reservation: &Value, amount: &str, key: &str) -> Value {
    app.gql(&app.service, CAPTURE, json!({ "r": reservation, "amt": amount, "k": key })).await
}

async fn release(app: &TestApp, reservation: &Value, key: &str) -> Value {
    app.gql(&app.service, RELEASE, json!({ "r": reservation, "k": key })).await
}

/// (total, held, available)
async fn balance(app: &TestApp, account: &str) -> (String, String, String) {
    let r = app.gql(&app.service, BALANCE, json!({ "a": account })).await;
    let b = &r["data"]["account"]["balance"];
    let s = |v: &Value| v.as_str().unwrap_or_else(|| panic!("{r}")).to_string();
    (s(&b["total"]), s(&b["held"]), s(&b["available"]))
}

fn owned(t: (&str, &str, &str)) -> (String, String, String) {
    (t.0.into(), t.1.into(), t.2.into())
}

async fn a_hold_is_captured_in_part_and_the_rest_goes_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    let now = app.clock.now();
    let paid = app.grant("a", "100", "PAID", None, "g-paid").await;
    let free = app.grant("a", "30", "FREE", Some(now + Duration::hours(2)), "g-free").await;

    let held = reserve(&app, "a", "50", "r-1", Some(600)).await;
    let payload = &held["data"]["reserveCredits"];
    assert_eq!(payload["availableAfter"], json!("80"), "{held}");
    // Free credits first, then paid, as a spend would take them.
    assert_eq!(
        payload["takes"],
        json!([{ "lotId": free["data"]["grantCredits"]["lotId"], "amount": "30" }, { "lotId": paid["data"]["grantCredits"]["lotId"], "amount": "20" }])
    );
    assert_eq!(payload["deadline"], json!((now + Duration::seconds(600)).to_rfc3339()));
    let id = payload["reservationId"].clone();
    assert_eq!(balance(&app, "a").await, owned(("130", "50", "80")));

    // A replay is the same hold; the same key for another amount is a conflict.
    assert_eq!(reserve(&app, "a", "50", "r-1", Some(600)).await["data"], held["data"]);
    assert_eq!(error_code(&reserve(&app, "a", "51", "r-1", Some(600)).await), "IDEMPOTENCY_CONFLICT");
    // Held credits are nobody else's.
    assert_eq!(error_code(&app.spend("a", "80.000001", "s-1").await), "INSUFFICIENT_CREDITS");
    assert_eq!(error_code(&capture(&app, &id, "50.000001", "c-0").await), "BAD_USER_INPUT", "never more than the hold");

    let captured = capture(&app, &id, "35", "c-1").await;
    assert_eq!(
        captured["data"]["captureReservation"],
        json!({ "reservationId": id, "status": "CAPTURED", "captured": "35", "released": "15", "expired": "0" })
    );
    assert_eq!(balance(&app, "a").await, owned(("95", "0", "95")));
    assert_eq!(capture(&app, &id, "35", "c-1").await["data"], captured["data"], "a replay charges nothing more");
    assert_eq!(balance(&app, "a").await.0, "95");
    assert_eq!(error_code(&capture(&app, &id, "35", "c-2").await), "RESERVATION_NOT_HELD");
    assert_eq!(error_code(&release(&app, &id, "x-1").await), "RESERVATION_NOT_HELD");

    // The capture spent the first parts taken: the free lot, then 5 of the paid one.
    let lots = app
        .gql(
            &app.service,
            "{ account(id: \"a\") { lots(first: 10, includeClosed: true) { edges { node { class remaining } } } } }",
            json!({}),
        )
        .await;
    let remaining: Vec<_> = lots["data"]["account"]["lots"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["node"]["class"].clone(), e["node"]["remaining"].clone()))
        .collect();
    assert_eq!(remaining, [(json!("FREE"), json!("0")), (json!("PAID"), json!("95"))], "{lots}");
    let history = app
        .gql(&app.service, "{ account(id: \"a\") { history(first: 3) { edges { node { kind amount feature model } } } } }", json!({}))
        .await;
    assert_eq!(
        history["data"]["account"]["history"]["edges"],
        json!([
            { "node": { "kind": "SPEND", "amount": "-35", "feature": "video", "model": "ltx" } },
            { "node": { "kind": "RELEASE", "amount": "50", "feature": "video", "model": "ltx" } },
            { "node": { "kind": "HOLD", "amount": "-50", "feature": "video", "model": "ltx" } },
        ])
    );

    // Released in full, another hold gives everything back.
    let second = reserve(&app, "a", "95", "r-2", None).await;
    let second_id = second["data"]["reserveCredits"]["reservationId"].clone();
    assert_eq!(balance(&app, "a").await, owned(("95", "95", "0")));
    let released = release(&app, &second_id, "x-2").await;
    assert_eq!(released["data"]["releaseReservation"]["status"], json!("RELEASED"), "{released}");
    assert_eq!(released["data"]["releaseReservation"]["released"], json!("95"));
    assert_eq!(balance(&app, "a").await, owned(("95", "0", "95")));
    app.assert_audit_clean().await;
}

/// A held part's lot may expire meanwhile: the hold keeps it spendable by its capture, and what
/// goes back to that lot is written off on its return.
async fn held_credits_outlive_their_lot_and_expire_on_return(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    let now = app.clock.now();
    app.grant("a", "40", "FREE", Some(now + Duration::hours(1)), "g").await;
    let held = reserve(&app, "a", "40", "r", Some(2 * 3600)).await;
    let id = held["data"]["reserveCredits"]["reservationId"].clone();

    let later = now + Duration::minutes(90);
    assert_eq!(app.ledger.run_job(Job::ExpireLots, later).await.unwrap().items, 0, "the lot's expiry cannot eat held credits");
    app.clock.set(later);
    assert_eq!(balance(&app, "a").await, owned(("40", "40", "0")));
    let settled = capture(&app, &id, "25", "c").await;
    assert_eq!(
        settled["data"]["captureReservation"],
        json!({ "reservationId": id, "status": "CAPTURED", "captured": "25", "released": "15", "expired": "15" })
    );
    assert_eq!(balance(&app, "a").await, owned(("0", "0", "0")));
    app.assert_audit_clean().await;
}

/// Nobody settled it by the deadline: the worker releases it, once, and it cannot be captured.
async fn the_worker_releases_holds_past_their_deadline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    app.grant("a", "10", "PAID", None, "g").await;
    let now = app.clock.now();
    let held = reserve(&app, "a", "7.5", "r", Some(60)).await;
    let id = held["data"]["reserveCredits"]["reservationId"].clone();
    assert_eq!(app.ledger.run_job(Job::ExpireReservations, now + Duration::seconds(59)).await.unwrap().items, 0);
    let report = app.ledger.run_job(Job::ExpireReservations, now + Duration::seconds(60)).await.unwrap();
    assert_eq!((report.items, report.complete), (1, true));
    assert_eq!(app.ledger.run_job(Job::ExpireReservations, now + Duration::seconds(61)).await.unwrap().items, 0);
    app.clock.set(now + Duration::seconds(61));
    assert_eq!(balance(&app, "a").await, owned(("10", "0", "10")));
    assert_eq!(error_code(&capture(&app, &id, "1", "late").await), "RESERVATION_NOT_HELD");
    app.assert_audit_clean().await;
}

/// Real concurrent requests: holds never overdraw, and one reservation settles once.
async fn concurrent_holds_and_settlements_never_overdraw(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    app.grant("a", "100", "PAID", None, "g").await;
    let keys: Vec<String> = (0..10).map(|i| format!("r-{i}")).collect();
    let holds = futures::future::join_all(keys.iter().map(|k| reserve(&app, "a", "20", k, None))).await;
    let won: Vec<_> = holds.iter().filter(|r| r["errors"].is_null()).collect();
    assert_eq!(won.len(), 5, "{holds:?}");
    assert!(holds.iter().filter(|r| !r["errors"].is_null()).all(|r| error_code(r) == "INSUFFICIENT_CREDITS"));
    assert_eq!(balance(&app, "a").await, owned(("100", "100", "0")));

    let id = won[0]["data"]["reserveCredits"]["reservationId"].clone();
    let (captured, released) = tokio::join!(capture(&app, &id, "20", "c"), release(&app, &id, "x"));
    let outcomes = [captured["errors"].is_null(), released["errors"].is_null()];
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{captured} {released}");
    let loser = if outcomes[0] { &released } else { &captured };
    assert_eq!(error_code(loser), "RESERVATION_NOT_HELD");
    let expected = if outcomes[0] { ("80", "80", "0") } else { ("100", "80", "20") };
    assert_eq!(balance(&app, "a").await, owned(expected));
    app.assert_audit_clean().await;
}

async fn bad_reservation_requests_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    app.grant("a", "10", "PAID", None, "g").await;
    for (amount, hold) in [("0", None), ("-1", None), ("1.0000001", None), ("1", Some(0)), ("1", Some(7 * 86400 + 1))] {
        assert_eq!(error_code(&reserve(&app, "a", amount, "bad", hold).await), "BAD_USER_INPUT", "{amount} {hold:?}");
    }
    assert_eq!(error_code(&reserve(&app, "nobody", "1", "k", None).await), "NOT_FOUND");
    assert_eq!(error_code(&capture(&app, &json!("999999"), "1", "k").await), "NOT_FOUND");
    assert_eq!(error_code(&release(&app, &json!("not-an-id"), "k").await), "NOT_FOUND");
    let user = app.user("a");
    let forbidden = app.gql(&user, RESERVE, json!({ "a": "a", "amt": "1", "k": "u" })).await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN", "only the product's backend holds credits");
    assert_eq!(balance(&app, "a").await, owned(("10", "0", "10")));
    // The key of a refused request was not spent on the input error.
    assert!(reserve(&app, "a", "1", "bad", None).await["errors"].is_null());
    app.assert_audit_clean().await;
}

on_both!(
    a_hold_is_captured_in_part_and_the_rest_goes_back,
    held_credits_outlive_their_lot_and_expire_on_return,
    the_worker_releases_holds_past_their_deadline,
    concurrent_holds_and_settlements_never_overdraw,
    bad_reservation_requests_change_nothing
);
