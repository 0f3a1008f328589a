//! Auto top-up (issue 26) through the real API: one pending purchase when a spend, a hold or an
//! expiry leaves the account under its threshold, none while it is pending, the monthly cap,
//! the target form, a pending one past its lifetime replaced, failures that turn it off, bad
//! settings refused, and concurrent spends and holds crossing the threshold together making one
//! purchase. Every test on SQLite and PostgreSQL.

use crate::on_both;
use crate::support::{Backend, TestApp, buy, error_code};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

const SET: &str = "mutation($input: SetAutoTopUpInput!) { setAutoTopUp(input: $input) {
    enabled threshold amount targetBalance monthlyCap boughtThisMonth failuresInARow maxFailures disabledAt disabledReason
    pendingPurchase { id credits status autoTopUp } } }";
const SHOW: &str = "query($a: ID!) { account(id: $a) { autoTopUp {
    enabled threshold amount targetBalance monthlyCap boughtThisMonth monthEndsAt failuresInARow maxFailures disabledAt disabledReason
    pendingPurchase { id credits status autoTopUp amount { amountMinor currency } } } } }";
const FAIL: &str = "mutation($id: ID!, $k: String!) {
    failPurchase(input: {purchaseId: $id, reason: \"card declined\", idempotencyKey: $k}) { status } }";
const CONFIRM: &str = "mutation($id: ID!, $ref: String!) {
    confirmPurchase(input: {purchaseId: $id, paymentReference: $ref}) { status autoTopUp } }";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// An account with `paid` purchased credits, on the clock's day.
async fn funded(app: &TestApp, account: &str, paid: &str) {
    app.create_account(account).await;
    buy(app, account, Some(paid), None, &format!("fund-{account}")).await;
}

async fn set(app: &TestApp, token: &str, input: Value) -> Value {
    app.gql(token, SET, json!({ "input": input })).await
}

async fn show(app: &TestApp, account: &str) -> Value {
    let r = app.gql(&app.service, SHOW, json!({ "a": account })).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["account"]["autoTopUp"].clone()
}

/// The account's outbox events as (topic, payload).
async fn events(app: &TestApp, account: &str) -> Vec<(String, Value)> {
    let id = app.ledger.account(account).await.unwrap().id;
    let rows = credits::store::outbox::for_account(&app.ledger.db, id).await.unwrap();
    rows.into_iter().map(|e| (e.topic, serde_json::from_str(&e.payload).unwrap())).collect()
}

async fn requested(app: &TestApp, account: &str) -> Vec<Value> {
    events(app, account).await.into_iter().filter(|(t, _)| t == "purchase.auto_topup_requested").map(|(_, p)| p).collect()
}

/// The account's purchases made by auto top-up, oldest first: (id, credits, status).
async fn top_ups(app: &TestApp, account: &str) -> Vec<(String, String, String)> {
    let r = app
        .gql(
            &app.service,
            "query($a: ID!) { account(id: $a) { purchases(first: 100, includePending: true) { edges { node { id credits status autoTopUp } } } } }",
            json!({ "a": account }),
        )
        .await;
    let mut found: Vec<(String, String, String)> = r["data"]["account"]["purchases"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|e| &e["node"])
        .filter(|n| n["autoTopUp"] == json!(true))
        .map(|n| (n["id"].as_str().unwrap().into(), n["credits"].as_str().unwrap().into(), n["status"].as_str().unwrap().into()))
        .collect();
    found.reverse();
    found
}

fn fixed(account: &str, threshold: &str, amount: &str, cap: &str) -> Value {
    json!({ "accountId": account, "enabled": true, "threshold": threshold, "amount": amount, "monthlyCap": cap })
}

/// Over the threshold nothing happens; the spend that crosses it makes one pending purchase and
/// its event in the same transaction; more spends while it is pending make none; once it is
/// paid the next crossing makes the next; the monthly cap cuts the last one and then holds
/// them back (said once), until the month turns.
async fn a_crossing_asks_for_one_top_up_at_a_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    funded(&app, "ann", "100").await;
    let on = set(&app, &app.user("ann"), fixed("ann", "20", "70", "200")).await;
    assert!(on["errors"].is_null(), "{on}");
    let on = &on["data"]["setAutoTopUp"];
    assert_eq!(
        (&on["enabled"], &on["threshold"], &on["amount"], &on["targetBalance"], &on["monthlyCap"], &on["pendingPurchase"]),
        (&json!(true), &json!("20"), &json!("70"), &Value::Null, &json!("200"), &Value::Null)
    );

    assert!(app.spend("ann", "80", "s-1").await["errors"].is_null(), "exactly the threshold left");
    assert!(top_ups(&app, "ann").await.is_empty());
    assert!(app.spend("ann", "0.000001", "s-2").await["errors"].is_null(), "one micro-credit under");
    let made = top_ups(&app, "ann").await;
    assert_eq!(made.len(), 1, "{made:?}");
    let (first, credits, status) = &made[0];
    assert_eq!((credits.as_str(), status.as_str()), ("70", "PENDING"));
    let asked = requested(&app, "ann").await;
    assert_eq!(
        asked,
        [json!({ "purchaseId": first.parse::<i64>().unwrap(), "accountId": "ann", "credits": "70", "amountMinor": 140,
                  "currency": "USD", "available": "19.999999", "threshold": "20",
                  "pendingUntil": (app.clock.now() + Duration::hours(24)).to_rfc3339() })]
    );
    for key in ["s-3", "s-4"] {
        assert!(app.spend("ann", "5", key).await["errors"].is_null());
    }
    assert_eq!(top_ups(&app, "ann").await.len(), 1, "none while one is pending");
    let shown = show(&app, "ann").await;
    assert_eq!((&shown["boughtThisMonth"], &shown["pendingPurchase"]["id"]), (&json!("70"), &json!(first)));
    assert_eq!(shown["pendingPurchase"]["amount"], json!({ "amountMinor": 140, "currency": "USD" }));
    assert_eq!(shown["monthEndsAt"], json!(at("2026-12-01T00:00:00Z").to_rfc3339()));

    let paid = app.gql(&app.service, CONFIRM, json!({ "id": first, "ref": "card-1" })).await;
    assert_eq!(paid["data"]["confirmPurchase"], json!({ "status": "PAID", "autoTopUp": true }), "{paid}");
    assert_eq!(app.balance("ann").await, "79.999999");
    assert!(app.spend("ann", "60", "s-5").await["errors"].is_null());
    let made = top_ups(&app, "ann").await;
    assert_eq!(made.iter().map(|m| (m.1.as_str(), m.2.as_str())).collect::<Vec<_>>(), [("70", "PAID"), ("70", "PENDING")]);
    let second = made[1].0.clone();
    assert!(app.gql(&app.service, CONFIRM, json!({ "id": second, "ref": "card-2" })).await["errors"].is_null());

    // 140 of 200 bought this month: the third is cut to the 60 left.
    assert!(app.spend("ann", "70", "s-6").await["errors"].is_null());
    let made = top_ups(&app, "ann").await;
    assert_eq!(made.last().map(|m| (m.1.as_str(), m.2.as_str())), Some(("60", "PENDING")), "{made:?}");
    let third = made[2].0.clone();
    assert!(app.gql(&app.service, CONFIRM, json!({ "id": third, "ref": "card-3" })).await["errors"].is_null());
    // The cap is spent: under the threshold again, nothing is bought, and that is said once.
    for (key, amount) in [("s-7", "30"), ("s-8", "30"), ("s-9", "1")] {
        assert!(app.spend("ann", amount, key).await["errors"].is_null());
    }
    assert_eq!(top_ups(&app, "ann").await.len(), 3);
    let capped: Vec<Value> = events(&app, "ann").await.into_iter().filter(|(t, _)| t == "auto_topup.cap_reached").map(|(_, p)| p).collect();
    assert_eq!(capped.len(), 1, "{capped:?}");
    assert_eq!(
        (&capped[0]["month"], &capped[0]["monthlyCap"], &capped[0]["boughtThisMonth"], &capped[0]["resumesAt"]),
        (&json!("2026-11"), &json!("200"), &json!("200"), &json!(at("2026-12-01T00:00:00Z").to_rfc3339()))
    );
    // A new month: the next crossing buys again.
    app.clock.set(at("2026-12-01T00:00:01Z"));
    assert!(app.spend("ann", "1", "s-10").await["errors"].is_null());
    let made = top_ups(&app, "ann").await;
    assert_eq!(made.len(), 4, "{made:?}");
    assert_eq!(show(&app, "ann").await["boughtThisMonth"], json!("70"));
    app.assert_audit_clean().await;
}

/// A hold that leaves the account under the threshold asks for a top-up, and so does the
/// write-off of an expired lot; turning it on while already under the threshold asks at once.
async fn holds_expiries_and_turning_it_on_ask_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = at("2026-11-10T10:00:00Z");
    app.clock.set(t0);
    // A hold.
    funded(&app, "hold", "100").await;
    assert!(set(&app, &app.service, fixed("hold", "30", "50", "500")).await["errors"].is_null());
    let held = app
        .gql(
            &app.service,
            "mutation { reserveCredits(input: {accountId: \"hold\", amount: \"75\", idempotencyKey: \"r-1\", feature: \"video\", model: \"ltx\", holdSeconds: 600}) { reservationId } }",
            json!({}),
        )
        .await;
    assert!(held["errors"].is_null(), "{held}");
    assert_eq!(top_ups(&app, "hold").await.len(), 1, "the hold left 25");

    // An expiry: promotional credits that run out at noon leave 10 paid ones.
    app.create_account("exp").await;
    assert!(app.grant("exp", "60", "PROMOTIONAL", Some(at("2026-11-10T12:00:00Z")), "g-1").await["errors"].is_null());
    buy(&app, "exp", Some("50"), None, "fund-exp").await;
    assert!(app.spend("exp", "40", "s-1").await["errors"].is_null(), "the promotional credits go first");
    assert!(set(&app, &app.service, fixed("exp", "60", "50", "500")).await["errors"].is_null());
    assert!(top_ups(&app, "exp").await.is_empty(), "70 left");
    let ran = app.ledger.run_job(credits::service::jobs::Job::ExpireLots, at("2026-11-10T12:00:01Z")).await.unwrap();
    assert!(ran.items >= 1, "{ran:?}");
    assert_eq!(top_ups(&app, "exp").await.len(), 1, "the write-off of 20 promotional credits left 50");

    // Turning it on under the threshold.
    funded(&app, "late", "50").await;
    assert!(app.spend("late", "45", "s-1").await["errors"].is_null());
    let on = set(
        &app,
        &app.user("late"),
        json!({ "accountId": "late", "enabled": true, "threshold": "10", "targetBalance": "100", "monthlyCap": "500" }),
    )
    .await;
    assert_eq!(on["data"]["setAutoTopUp"]["pendingPurchase"]["credits"], json!("95"), "100 - 5: {on}");
    assert_eq!(on["data"]["setAutoTopUp"]["pendingPurchase"]["autoTopUp"], json!(true));
    app.assert_audit_clean().await;
}

/// A pending top-up whose lifetime ran out no longer blocks: the next crossing expires it (one
/// `purchase.expired`) and asks for a new one, without waiting for the job.
async fn a_top_up_past_its_lifetime_is_replaced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = at("2026-11-10T10:00:00Z");
    app.clock.set(t0);
    funded(&app, "bo", "100").await;
    assert!(set(&app, &app.service, fixed("bo", "50", "50", "500")).await["errors"].is_null());
    assert!(app.spend("bo", "60", "s-1").await["errors"].is_null());
    assert_eq!(top_ups(&app, "bo").await.len(), 1);
    app.clock.set(t0 + Duration::hours(23));
    assert!(app.spend("bo", "1", "s-2").await["errors"].is_null());
    assert_eq!(top_ups(&app, "bo").await.len(), 1, "still pending");
    app.clock.set(t0 + Duration::hours(24));
    assert!(app.spend("bo", "1", "s-3").await["errors"].is_null());
    let made = top_ups(&app, "bo").await;
    assert_eq!(made.iter().map(|m| m.2.as_str()).collect::<Vec<_>>(), ["EXPIRED", "PENDING"], "{made:?}");
    let topics: Vec<String> = events(&app, "bo").await.into_iter().map(|(t, _)| t).collect();
    assert_eq!(topics, ["purchase.auto_topup_requested", "purchase.expired", "purchase.auto_topup_requested"]);
    // An expired top-up does not count against the cap.
    assert_eq!(show(&app, "bo").await["boughtThisMonth"], json!("50"));
}

/// Spends a little and returns the account's pending top-up, made by that spend or before it.
async fn next_top_up(app: &TestApp, account: &str) -> String {
    static NUDGES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let key = format!("nudge-{}", NUDGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let r = app.spend(account, "0.1", &key).await;
    assert!(r["errors"].is_null(), "{r}");
    let made = top_ups(app, account).await;
    let (id, _, status) = made.last().cloned().expect("a top-up");
    assert_eq!(status, "PENDING", "{made:?}");
    id
}

/// Failed payments in a row turn it off (an event and the setting say so); a paid one in
/// between starts the count again; setting it again turns it back on with a new count.
async fn failures_in_a_row_turn_it_off(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    funded(&app, "cy", "100").await;
    assert!(set(&app, &app.service, fixed("cy", "90", "50", "1000")).await["errors"].is_null());
    assert!(app.spend("cy", "15", "first").await["errors"].is_null());
    for n in 1..=2 {
        let id = next_top_up(&app, "cy").await;
        let failed = app.gql(&app.service, FAIL, json!({ "id": id, "k": format!("f-{n}") })).await;
        assert_eq!(failed["data"]["failPurchase"]["status"], json!("FAILED"), "{failed}");
    }
    assert_eq!(show(&app, "cy").await["failuresInARow"], json!(2));
    // A payment that goes through ends the run.
    let id = next_top_up(&app, "cy").await;
    assert!(app.gql(&app.service, CONFIRM, json!({ "id": id, "ref": "ok-1" })).await["errors"].is_null());
    assert_eq!(show(&app, "cy").await["failuresInARow"], json!(0));
    assert!(app.spend("cy", "60", "big").await["errors"].is_null());
    for n in 3..=5 {
        let id = next_top_up(&app, "cy").await;
        assert!(app.gql(&app.service, FAIL, json!({ "id": id, "k": format!("f-{n}") })).await["errors"].is_null());
    }
    let off = show(&app, "cy").await;
    assert_eq!(
        (&off["enabled"], &off["failuresInARow"], &off["maxFailures"], &off["disabledReason"], &off["disabledAt"]),
        (&json!(false), &json!(3), &json!(3), &json!("3 top-up payments failed in a row"), &json!(app.clock.now().to_rfc3339()))
    );
    let disabled: Vec<Value> = events(&app, "cy").await.into_iter().filter(|(t, _)| t == "auto_topup.disabled").map(|(_, p)| p).collect();
    assert_eq!(disabled.len(), 1);
    assert_eq!((&disabled[0]["failuresInARow"], &disabled[0]["accountId"]), (&json!(3), &json!("cy")));
    let before = top_ups(&app, "cy").await.len();
    assert!(app.spend("cy", "1", "off-1").await["errors"].is_null());
    assert_eq!(top_ups(&app, "cy").await.len(), before, "off: nothing is asked for");
    // Set again: on, a new count, and (still under the threshold) a top-up at once.
    let again = set(&app, &app.user("cy"), fixed("cy", "90", "50", "1000")).await;
    let again = &again["data"]["setAutoTopUp"];
    assert_eq!((&again["enabled"], &again["failuresInARow"], &again["disabledReason"]), (&json!(true), &json!(0), &Value::Null));
    assert_eq!(again["pendingPurchase"]["status"], json!("PENDING"));
    app.assert_audit_clean().await;
}

/// Bad settings are BAD_USER_INPUT and change nothing; a user may set only their own; off keeps
/// the setting for later.
async fn bad_settings_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    funded(&app, "dee", "100").await;
    app.create_account("eve").await;
    let bad = [
        json!({ "accountId": "dee", "enabled": true, "threshold": "0", "amount": "50", "monthlyCap": "500" }),
        json!({ "accountId": "dee", "enabled": true, "threshold": "10", "amount": "49", "monthlyCap": "500" }),
        json!({ "accountId": "dee", "enabled": true, "threshold": "10", "amount": "50.5", "monthlyCap": "500" }),
        json!({ "accountId": "dee", "enabled": true, "threshold": "10", "amount": "50", "targetBalance": "100", "monthlyCap": "500" }),
        json!({ "accountId": "dee", "enabled": true, "threshold": "10", "monthlyCap": "500" }),
        json!({ "accountId": "dee", "enabled": true, "threshold": "10", "amount": "50" }),
        json!({ "accountId": "dee", "enabled": true, "amount": "50", "monthlyCap": "500" }),
        json!({ "accountId": "dee", "enabled": true, "threshold": "10", "amount": "50", "monthlyCap": "49" }),
        json!({ "accountId": "dee", "enabled": true, "threshold": "10", "targetBalance": "10", "monthlyCap": "500" }),
        json!({ "accountId": "dee", "enabled": true, "threshold": "10", "targetBalance": "20.5", "monthlyCap": "500" }),
    ];
    for input in bad {
        let r = set(&app, &app.user("dee"), input.clone()).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{input}: {r}");
    }
    assert_eq!(show(&app, "dee").await, Value::Null, "nothing was set");
    let other = set(&app, &app.user("eve"), fixed("dee", "10", "50", "500")).await;
    assert_eq!(error_code(&other), "FORBIDDEN", "{other}");
    let unknown = set(&app, &app.service, fixed("nobody", "10", "50", "500")).await;
    assert_eq!(error_code(&unknown), "NOT_FOUND", "{unknown}");
    // Off before anything was set: nothing to show, and nothing wrong with asking.
    let off = set(&app, &app.service, json!({ "accountId": "dee", "enabled": false })).await;
    assert_eq!(off["data"]["setAutoTopUp"], Value::Null, "{off}");
    assert!(set(&app, &app.service, fixed("dee", "10", "50", "500")).await["errors"].is_null());
    let off = set(&app, &app.service, json!({ "accountId": "dee", "enabled": false })).await;
    let off = &off["data"]["setAutoTopUp"];
    assert_eq!((&off["enabled"], &off["threshold"], &off["amount"]), (&json!(false), &json!("10"), &json!("50")), "kept for later");
    assert!(app.spend("dee", "95", "s-1").await["errors"].is_null());
    assert!(top_ups(&app, "dee").await.is_empty(), "off");
}

/// Spends and holds crossing the threshold together, as concurrent requests, make exactly one
/// purchase (and one event): whether they were batched together or ran one after another, each
/// checked under the account's lock.
async fn concurrent_crossings_make_one_purchase(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    funded(&app, "fay", "100").await;
    assert!(set(&app, &app.service, fixed("fay", "50", "50", "5000")).await["errors"].is_null());
    let keys: Vec<String> = (0..16).map(|n| format!("c-{n}")).collect();
    let spends = futures::future::join_all(keys.iter().map(|k| app.spend("fay", "5", k))).await;
    assert!(spends.iter().all(|r| r["errors"].is_null()), "{spends:?}");
    assert_eq!(app.balance("fay").await, "20");
    assert_eq!(top_ups(&app, "fay").await.len(), 1);
    assert_eq!(requested(&app, "fay").await.len(), 1);

    funded(&app, "gus", "100").await;
    assert!(set(&app, &app.service, fixed("gus", "50", "50", "5000")).await["errors"].is_null());
    let holds = futures::future::join_all((0..12).map(|n| {
        app.gql(
            &app.service,
            "mutation($k: String!) { reserveCredits(input: {accountId: \"gus\", amount: \"6\", idempotencyKey: $k, feature: \"video\", model: \"ltx\", holdSeconds: 600}) { reservationId } }",
            json!({ "k": format!("h-{n}") }),
        )
    }))
    .await;
    assert!(holds.iter().all(|r| r["errors"].is_null()), "{holds:?}");
    assert_eq!(top_ups(&app, "gus").await.len(), 1);
    assert_eq!(requested(&app, "gus").await.len(), 1);
    app.assert_audit_clean().await;
}

on_both!(
    a_crossing_asks_for_one_top_up_at_a_time,
    holds_expiries_and_turning_it_on_ask_too,
    a_top_up_past_its_lifetime_is_replaced,
    failures_in_a_row_turn_it_off,
    bad_settings_are_refused,
    concurrent_crossings_make_one_purchase
);
