//! Pending purchases end (issue 26): the expiry after the program's lifetime (by the job, by
//! `runJob` and by a test clock's `advanceClock`), `cancelPurchase` and `failPurchase` through
//! the real API with their keys, refusals that change nothing, late confirmations, and the
//! races: a cancellation against a confirmation, the job against confirmations and
//! cancellations, two workers at once. Every test on SQLite and PostgreSQL.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Duration, Utc};
use credits::service::jobs::Job;
use serde_json::{Value, json};

const FIELDS: &str = "id status createdAt expiresAt endedAt endReason failedPaymentReference paymentReference paidAt lotId";
const CANCEL: &str = "mutation($id: ID!, $r: String, $k: String!) {
    cancelPurchase(input: {purchaseId: $id, reason: $r, idempotencyKey: $k}) {
        id status createdAt expiresAt endedAt endReason failedPaymentReference paymentReference paidAt lotId } }";
const FAIL: &str = "mutation($id: ID!, $r: String!, $ref: String, $k: String!) {
    failPurchase(input: {purchaseId: $id, reason: $r, paymentReference: $ref, idempotencyKey: $k}) {
        id status createdAt expiresAt endedAt endReason failedPaymentReference paymentReference paidAt lotId } }";
const CONFIRM: &str = "mutation($id: ID!, $ref: String!) {
    confirmPurchase(input: {purchaseId: $id, paymentReference: $ref}) { id status endedAt endReason paidAt } }";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// The API's form of an instant (async-graphql's `DateTime`).
fn shown(instant: DateTime<Utc>) -> Value {
    json!(instant.to_rfc3339())
}

/// A pending purchase of 50 credits for `account`, made by the service; its id.
async fn pending(app: &TestApp, account: &str, key: &str) -> String {
    let r = app
        .gql(
            &app.service,
            "mutation($a: ID!, $k: String!) { purchaseCredits(input: {accountId: $a, credits: \"50\", idempotencyKey: $k}) { id status } }",
            json!({ "a": account, "k": key }),
        )
        .await;
    assert_eq!(r["data"]["purchaseCredits"]["status"], json!("PENDING"), "{r}");
    r["data"]["purchaseCredits"]["id"].as_str().unwrap().to_string()
}

/// One purchase as the API shows it (`account.purchases` with the never-paid ones).
async fn purchase(app: &TestApp, account: &str, id: &str) -> Value {
    let query = format!(
        "query($a: ID!) {{ account(id: $a) {{ purchases(first: 100, includePending: true) {{ edges {{ node {{ {FIELDS} }} }} }} }} }}"
    );
    let r = app.gql(&app.service, &query, json!({ "a": account })).await;
    let edges = r["data"]["account"]["purchases"]["edges"].as_array().unwrap_or_else(|| panic!("{r}"));
    edges.iter().map(|e| e["node"].clone()).find(|n| n["id"] == json!(id)).unwrap_or_else(|| panic!("no purchase {id}: {r}"))
}

/// The account's outbox events as (topic, payload).
async fn events(app: &TestApp, account: &str) -> Vec<(String, Value)> {
    let id = app.ledger.account(account).await.unwrap().id;
    let rows = credits::store::outbox::for_account(&app.ledger.db, id).await.unwrap();
    rows.into_iter().map(|e| (e.topic, serde_json::from_str(&e.payload).unwrap())).collect()
}

fn topics(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(topic, _)| topic.as_str()).collect()
}

async fn failures_in_a_row(app: &TestApp, account: &str) -> u32 {
    let id = app.ledger.account(account).await.unwrap().id;
    app.ledger.purchase_failures_in_a_row(id).await.unwrap()
}

/// Not a microsecond before its lifetime, a pending purchase stays pending; at it, the job
/// expires it, dated at that instant, with one `purchase.expired` event; running again, or by
/// `runJob`, does nothing more. A cancellation or failure then is refused and changes nothing; a
/// payment confirmed late is honoured and keeps the expiry on record.
async fn the_job_expires_pending_purchases_at_their_lifetime(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = at("2026-11-10T10:00:00.123456Z");
    app.clock.set(t0);
    app.create_account("buyer").await;
    let id = pending(&app, "buyer", "p-1").await;
    let until = t0 + Duration::hours(24);
    let before = purchase(&app, "buyer", &id).await;
    assert_eq!((&before["status"], &before["expiresAt"], &before["endedAt"]), (&json!("PENDING"), &shown(until), &Value::Null));
    let lifetime = app.gql(&app.service, "{ program { pendingPurchaseLifetime } }", json!({})).await;
    assert_eq!(lifetime["data"]["program"]["pendingPurchaseLifetime"], json!("24 hours"), "{lifetime}");

    let early = app.ledger.run_job(Job::ExpirePendingPurchases, until - Duration::microseconds(1)).await.unwrap();
    assert_eq!(early.items, 0, "not before its lifetime");
    assert_eq!(purchase(&app, "buyer", &id).await, before);

    app.clock.set(until + Duration::minutes(3));
    let ran = app.ledger.run_job(Job::ExpirePendingPurchases, app.clock.now()).await.unwrap();
    assert_eq!((ran.items, ran.complete), (1, true));
    let expired = purchase(&app, "buyer", &id).await;
    assert_eq!(
        (&expired["status"], &expired["endedAt"], &expired["endReason"], &expired["expiresAt"]),
        (&json!("EXPIRED"), &shown(until), &json!("not paid within 1 day(s)"), &Value::Null),
        "dated at its own expiry instant, not the job's: {expired}"
    );
    let announced = events(&app, "buyer").await;
    assert_eq!(topics(&announced), ["purchase.expired"]);
    assert_eq!(
        announced[0].1,
        json!({ "purchaseId": id.parse::<i64>().unwrap(), "accountId": "buyer", "amountMinor": 100, "currency": "USD",
                "reason": "not paid within 1 day(s)", "endedAt": until.to_rfc3339() })
    );
    assert_eq!(app.ledger.run_job(Job::ExpirePendingPurchases, app.clock.now()).await.unwrap().items, 0, "once");
    let by_operator = app.gql(&app.admin, "mutation { runJob(job: EXPIRE_PENDING_PURCHASES) { items } }", json!({})).await;
    assert_eq!(by_operator["data"]["runJob"]["items"], json!(0), "{by_operator}");
    let listed = app.gql(&app.admin, "{ scheduledJobs { name cadence } }", json!({})).await;
    let listed = listed["data"]["scheduledJobs"].as_array().unwrap().clone();
    assert!(listed.contains(&json!({ "name": "EXPIRE_PENDING_PURCHASES", "cadence": "CONTINUOUS" })), "{listed:?}");

    // Ended: cancelling or failing it is refused, kept under the key, and changes nothing.
    let cancel = app.gql(&app.service, CANCEL, json!({ "id": id, "k": "c-1" })).await;
    assert_eq!(error_code(&cancel), "INVALID_STATE", "{cancel}");
    assert_eq!(app.gql(&app.service, CANCEL, json!({ "id": id, "k": "c-1" })).await, cancel, "the refusal replays");
    let fail = app.gql(&app.service, FAIL, json!({ "id": id, "r": "declined", "k": "f-1" })).await;
    assert_eq!(error_code(&fail), "INVALID_STATE", "{fail}");
    assert_eq!(purchase(&app, "buyer", &id).await, expired);
    assert_eq!(events(&app, "buyer").await.len(), 1);
    assert_eq!(app.balance("buyer").await, "0");

    // The simulated checkout (development) closed with it: no money was taken.
    let simulated =
        app.gql(&app.user("buyer"), "mutation($p: ID!) { simulatePayment(purchaseId: $p) { status } }", json!({ "p": id })).await;
    assert_eq!(error_code(&simulated), "INVALID_STATE", "{simulated}");
    assert_eq!(purchase(&app, "buyer", &id).await, expired);

    // The money came after all: a confirmation is proof of payment, honoured.
    let late = app.gql(&app.service, CONFIRM, json!({ "id": id, "ref": "pay-late" })).await;
    assert_eq!(late["data"]["confirmPurchase"]["status"], json!("PAID"), "{late}");
    assert_eq!(late["data"]["confirmPurchase"]["endedAt"], shown(until), "it keeps its expiry on record");
    assert_eq!(app.gql(&app.service, CONFIRM, json!({ "id": id, "ref": "pay-late" })).await, late, "idempotent on the reference");
    assert_eq!(app.balance("buyer").await, "50");
    // Paid: the job leaves it alone.
    assert_eq!(app.ledger.run_job(Job::ExpirePendingPurchases, until + Duration::days(3)).await.unwrap().items, 0);
    app.assert_audit_clean().await;
}

/// On a test clock, `advanceClock` runs the expiry job at each stop like the workers would: 23
/// hours leave the purchase pending, the 24th expires it, dated at its instant.
async fn advance_clock_expires_pending_purchases(backend: Backend) {
    let start = at("2026-11-10T10:00:00Z");
    let app = TestApp::spawn_on_test_clock(backend, crate::support::LEDGER_PROGRAM, start).await;
    app.create_account("buyer").await;
    let id = pending(&app, "buyer", "p-1").await;
    let advance = |by: &'static str| {
        app.gql(&app.admin, "mutation($by: String) { advanceClock(by: $by) { now ran { job items } } }", json!({ "by": by }))
    };
    let items = |r: &Value| {
        r["data"]["advanceClock"]["ran"]
            .as_array()
            .unwrap_or_else(|| panic!("{r}"))
            .iter()
            .find(|j| j["job"] == json!("ExpirePendingPurchases"))
            .map(|j| j["items"].clone())
    };
    let first = advance("23 hours").await;
    assert_eq!(items(&first), None, "nothing to expire yet (jobs with nothing done are not listed): {first}");
    assert_eq!(purchase(&app, "buyer", &id).await["status"], json!("PENDING"));
    let second = advance("1 hour").await;
    assert_eq!(items(&second), Some(json!(1)), "{second}");
    let expired = purchase(&app, "buyer", &id).await;
    assert_eq!((&expired["status"], &expired["endedAt"]), (&json!("EXPIRED"), &shown(start + Duration::hours(24))), "{expired}");
    assert_eq!(topics(&events(&app, "buyer").await), ["purchase.expired"]);
    app.assert_audit_clean().await;
}

/// `cancelPurchase` and `failPurchase` through the API: their answers, replays with the same key,
/// IDEMPOTENCY_CONFLICT with another request, refusals (not pending, unknown, bad input, the
/// wrong role) that change nothing, events once per end, and the failures counted in a row.
async fn cancel_and_fail_through_the_api(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = at("2026-11-10T10:00:00Z");
    app.clock.set(t0);
    app.create_account("buyer").await;
    let (first, second, third) =
        (pending(&app, "buyer", "p-1").await, pending(&app, "buyer", "p-2").await, pending(&app, "buyer", "p-3").await);
    app.clock.set(t0 + Duration::minutes(5));

    // Cancel, with a reason; a replay answers the same; another reason under the key conflicts.
    let cancelled = app.gql(&app.service, CANCEL, json!({ "id": first, "r": "checkout closed", "k": "c-1" })).await;
    let node = &cancelled["data"]["cancelPurchase"];
    assert_eq!(
        (&node["status"], &node["endedAt"], &node["endReason"], &node["expiresAt"], &node["paidAt"]),
        (&json!("CANCELLED"), &shown(t0 + Duration::minutes(5)), &json!("checkout closed"), &Value::Null, &Value::Null),
        "{cancelled}"
    );
    app.clock.set(t0 + Duration::minutes(6));
    assert_eq!(app.gql(&app.service, CANCEL, json!({ "id": first, "r": "checkout closed", "k": "c-1" })).await, cancelled, "a replay");
    let conflict = app.gql(&app.service, CANCEL, json!({ "id": first, "r": "another", "k": "c-1" })).await;
    assert_eq!(error_code(&conflict), "IDEMPOTENCY_CONFLICT", "{conflict}");
    let again = app.gql(&app.service, CANCEL, json!({ "id": first, "k": "c-2" })).await;
    assert_eq!(error_code(&again), "INVALID_STATE", "cancelled once: {again}");
    // Cancelled is final: the payment confirmation is refused and grants nothing.
    let confirm = app.gql(&app.service, CONFIRM, json!({ "id": first, "ref": "pay-1" })).await;
    assert_eq!(error_code(&confirm), "INVALID_STATE", "{confirm}");

    // Fail, with the attempt's reference; replay, conflict, and refusals.
    let failed = app.gql(&app.service, FAIL, json!({ "id": second, "r": "card declined", "ref": "pi_123", "k": "f-1" })).await;
    let node = &failed["data"]["failPurchase"];
    assert_eq!(
        (&node["status"], &node["endReason"], &node["failedPaymentReference"], &node["paymentReference"]),
        (&json!("FAILED"), &json!("card declined"), &json!("pi_123"), &Value::Null),
        "{failed}"
    );
    assert_eq!(app.gql(&app.service, FAIL, json!({ "id": second, "r": "card declined", "ref": "pi_123", "k": "f-1" })).await, failed);
    let conflict = app.gql(&app.service, FAIL, json!({ "id": second, "r": "card declined", "ref": "pi_124", "k": "f-1" })).await;
    assert_eq!(error_code(&conflict), "IDEMPOTENCY_CONFLICT", "{conflict}");
    assert_eq!(error_code(&app.gql(&app.service, CANCEL, json!({ "id": second, "k": "c-3" })).await), "INVALID_STATE");
    assert_eq!(error_code(&app.gql(&app.service, CONFIRM, json!({ "id": second, "ref": "pay-2" })).await), "INVALID_STATE");
    assert_eq!(failures_in_a_row(&app, "buyer").await, 1);

    // Refusals before anything runs, and for what is not there or not the caller's to do.
    let before = (purchase(&app, "buyer", &third).await, events(&app, "buyer").await);
    for (query, vars, code) in [
        (FAIL, json!({ "id": third, "r": "", "k": "f-2" }), "BAD_USER_INPUT"),
        (FAIL, json!({ "id": third, "r": "x".repeat(501), "k": "f-2" }), "BAD_USER_INPUT"),
        (FAIL, json!({ "id": third, "r": "declined", "ref": "", "k": "f-2" }), "BAD_USER_INPUT"),
        (CANCEL, json!({ "id": third, "k": "" }), "BAD_USER_INPUT"),
        (CANCEL, json!({ "id": "999999", "k": "c-9" }), "NOT_FOUND"),
        (CANCEL, json!({ "id": "not-a-number", "k": "c-9" }), "NOT_FOUND"),
        (FAIL, json!({ "id": "999999", "r": "declined", "k": "f-9" }), "NOT_FOUND"),
    ] {
        let r = app.gql(&app.service, query, vars.clone()).await;
        assert_eq!(error_code(&r), code, "{vars}: {r}");
    }
    for token in [app.user("buyer")] {
        assert_eq!(error_code(&app.gql(&token, CANCEL, json!({ "id": third, "k": "c-u" })).await), "FORBIDDEN");
        assert_eq!(error_code(&app.gql(&token, FAIL, json!({ "id": third, "r": "x", "k": "f-u" })).await), "FORBIDDEN");
    }
    assert_eq!((purchase(&app, "buyer", &third).await, events(&app, "buyer").await), before, "refusals change nothing");
    // The key refused with BAD_USER_INPUT was not used: it works now.
    let failed_third = app.gql(&app.service, FAIL, json!({ "id": third, "r": "insufficient funds", "k": "f-2" })).await;
    assert_eq!(failed_third["data"]["failPurchase"]["status"], json!("FAILED"), "{failed_third}");
    assert_eq!(failures_in_a_row(&app, "buyer").await, 2);

    // A paid purchase cannot be cancelled or failed; a payment resets the count of failures.
    let paid = crate::support::buy(&app, "buyer", Some("50"), None, "pay-3").await;
    let paid_before = purchase(&app, "buyer", &paid).await;
    assert_eq!(error_code(&app.gql(&app.service, CANCEL, json!({ "id": paid, "k": "c-4" })).await), "INVALID_STATE");
    assert_eq!(error_code(&app.gql(&app.service, FAIL, json!({ "id": paid, "r": "late decline", "k": "f-4" })).await), "INVALID_STATE");
    assert_eq!(purchase(&app, "buyer", &paid).await, paid_before);
    assert_eq!(failures_in_a_row(&app, "buyer").await, 0);

    // One event per end, with what the product needs.
    let announced = events(&app, "buyer").await;
    assert_eq!(topics(&announced), ["purchase.cancelled", "purchase.failed", "purchase.failed"]);
    assert_eq!(announced[0].1["reason"], json!("checkout closed"));
    assert_eq!(announced[1].1["paymentReference"], json!("pi_123"));
    assert_eq!(announced[2].1["paymentReference"], Value::Null);
    assert_eq!(app.balance("buyer").await, "50", "only the paid purchase granted credits");

    // Past its lifetime, a cancellation finds it expired (dated at its instant), whether or
    // not the job has run, and is refused; the expiry is announced once.
    let late = pending(&app, "buyer", "p-4").await;
    let created = at(purchase(&app, "buyer", &late).await["createdAt"].as_str().unwrap());
    app.clock.set(created + Duration::hours(24));
    let cancel_late = app.gql(&app.service, CANCEL, json!({ "id": late, "k": "c-5" })).await;
    assert_eq!(error_code(&cancel_late), "INVALID_STATE", "{cancel_late}");
    let expired = purchase(&app, "buyer", &late).await;
    assert_eq!((&expired["status"], &expired["endedAt"]), (&json!("EXPIRED"), &shown(created + Duration::hours(24))));
    assert_eq!(app.ledger.run_job(Job::ExpirePendingPurchases, app.clock.now()).await.unwrap().items, 0, "already expired");
    assert_eq!(topics(&events(&app, "buyer").await).iter().filter(|t| **t == "purchase.expired").count(), 1);
    app.assert_audit_clean().await;
}

/// A cancellation and a payment confirmation of one purchase, sent at once: exactly one wins.
/// Either it is paid (its credits granted, the cancellation refused) or cancelled (nothing
/// granted, the confirmation refused), over several rounds, and the audit stays clean.
async fn a_cancellation_racing_a_confirmation_has_one_winner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("buyer").await;
    let (mut paid, mut cancelled) = (0, 0);
    for round in 0..8 {
        let id = pending(&app, "buyer", &format!("p-{round}")).await;
        let cancel = app.gql(&app.service, CANCEL, json!({ "id": id, "k": format!("c-{round}") }));
        let confirm = app.gql(&app.service, CONFIRM, json!({ "id": id, "ref": format!("pay-{round}") }));
        let (cancel, confirm) = futures::join!(cancel, confirm);
        let status = purchase(&app, "buyer", &id).await["status"].clone();
        match (cancel["errors"].is_null(), confirm["errors"].is_null()) {
            (true, false) => {
                assert_eq!(error_code(&confirm), "INVALID_STATE", "{confirm}");
                assert_eq!(status, json!("CANCELLED"));
                cancelled += 1;
            }
            (false, true) => {
                assert_eq!(error_code(&cancel), "INVALID_STATE", "{cancel}");
                assert_eq!(status, json!("PAID"));
                paid += 1;
            }
            _ => panic!("exactly one wins: {cancel} {confirm}"),
        }
    }
    println!("cancel vs confirm: {paid} paid, {cancelled} cancelled");
    assert_eq!(app.balance("buyer").await, (50 * paid).to_string());
    assert_eq!(topics(&events(&app, "buyer").await).len(), cancelled, "one event per cancellation");
    app.assert_audit_clean().await;
}

/// The expiry job, run by two workers at once, racing confirmations of half the purchases and
/// cancellations of the rest, all past their lifetime: every confirmation is honoured (a late
/// payment), every cancellation is refused, every purchase ends once, and no purchase is
/// announced expired twice.
async fn the_job_racing_confirmations_and_cancellations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t0 = at("2026-11-10T10:00:00Z");
    app.clock.set(t0);
    app.create_account("buyer").await;
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(pending(&app, "buyer", &format!("p-{n}")).await);
    }
    let later = t0 + Duration::hours(25);
    app.clock.set(later);
    let (to_confirm, to_cancel) = ids.split_at(6);
    let confirms = futures::future::join_all(
        to_confirm.iter().map(|id| app.gql(&app.service, CONFIRM, json!({ "id": id, "ref": format!("pay-{id}") }))),
    );
    let cancels =
        futures::future::join_all(to_cancel.iter().map(|id| app.gql(&app.service, CANCEL, json!({ "id": id, "k": format!("c-{id}") }))));
    let jobs = futures::future::join(
        app.ledger.run_job(Job::ExpirePendingPurchases, later),
        app.ledger.run_job(Job::ExpirePendingPurchases, later),
    );
    let (confirms, cancels, (job_a, job_b)) = futures::join!(confirms, cancels, jobs);
    for r in &confirms {
        assert_eq!(r["data"]["confirmPurchase"]["status"], json!("PAID"), "a late payment is honoured: {r}");
    }
    for r in &cancels {
        assert_eq!(error_code(r), "INVALID_STATE", "too late to cancel: {r}");
    }
    let expired_by_jobs = job_a.unwrap().items + job_b.unwrap().items;
    for id in to_confirm {
        assert_eq!(purchase(&app, "buyer", id).await["status"], json!("PAID"));
    }
    for id in to_cancel {
        let node = purchase(&app, "buyer", id).await;
        assert_eq!((&node["status"], &node["endedAt"]), (&json!("EXPIRED"), &shown(t0 + Duration::hours(24))), "{node}");
    }
    let announced = events(&app, "buyer").await;
    let mut expired_ids: Vec<i64> = announced
        .iter()
        .map(|(topic, e)| {
            assert_eq!(topic, "purchase.expired");
            e["purchaseId"].as_i64().unwrap()
        })
        .collect();
    let count = expired_ids.len();
    expired_ids.sort_unstable();
    expired_ids.dedup();
    assert_eq!(expired_ids.len(), count, "no purchase announced expired twice: {announced:?}");
    assert!(count >= to_cancel.len() && count <= ids.len(), "{count}");
    assert!(expired_by_jobs as usize <= count, "{expired_by_jobs} by the jobs, {count} in all");
    assert_eq!(app.balance("buyer").await, (50 * to_confirm.len()).to_string());
    app.assert_audit_clean().await;
}

on_both!(
    the_job_expires_pending_purchases_at_their_lifetime,
    advance_clock_expires_pending_purchases,
    cancel_and_fail_through_the_api,
    a_cancellation_racing_a_confirmation_has_one_winner,
    the_job_racing_confirmations_and_cancellations
);
