//! Roles are enforced for every operation: a table of each operation x each caller (a user on
//! its own account, a user on another's, the service, an admin, no token), checked through the
//! real API. The table must name every mutation in the schema, so a new one cannot slip by.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use serde_json::json;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum May {
    Yes,
    No,
}
use May::{No, Yes};

/// (operation, GraphQL with `ACC` for the account acted on and `PUR` for a purchase of it,
/// user on own, user on other, service, admin)
const TABLE: &[(&str, &str, May, May, May, May)] = &[
    ("createAccount", r#"mutation { createAccount(input: {externalId: "ACC-new"}) { created } }"#, No, No, Yes, Yes),
    ("setAccountStatus", r#"mutation { setAccountStatus(input: {accountId: "ACC", status: ACTIVE}) { id } }"#, No, No, Yes, Yes),
    ("setIdentityVerified", r#"mutation { setIdentityVerified(accountId: "ACC", verified: false) { id } }"#, No, No, Yes, Yes),
    ("setCreditMail", r#"mutation { setCreditMail(accountId: "ACC", enabled: true) { id } }"#, Yes, No, Yes, Yes),
    ("setAutoTopUp", r#"mutation { setAutoTopUp(input: {accountId: "ACC", enabled: false}) { enabled } }"#, Yes, No, Yes, Yes),
    (
        "setSpendLimits",
        r#"mutation { setSpendLimits(input: {accountId: "ACC", limits: [{period: DAY, max: "100"}], maxPerCharge: "50"}) { maxPerCharge } }"#,
        Yes,
        No,
        Yes,
        Yes,
    ),
    (
        "changePlan",
        r#"mutation { changePlan(input: {accountId: "ACC", plan: "free", idempotencyKey: "k"}) { grantedLotId } }"#,
        No,
        No,
        Yes,
        Yes,
    ),
    (
        "purchaseCredits",
        r#"mutation { purchaseCredits(input: {accountId: "ACC", credits: "50", idempotencyKey: "k"}) { id } }"#,
        Yes,
        No,
        Yes,
        Yes,
    ),
    (
        "confirmPurchase",
        r#"mutation { confirmPurchase(input: {purchaseId: "PUR", paymentReference: "ref-ACC"}) { id } }"#,
        No,
        No,
        Yes,
        Yes,
    ),
    ("simulatePayment", r#"mutation { simulatePayment(purchaseId: "PUR") { id } }"#, Yes, No, Yes, Yes),
    ("createPortalSession", r#"mutation { createPortalSession(accountId: "ACC") { url } }"#, No, No, Yes, Yes),
    ("cancelPurchase", r#"mutation { cancelPurchase(input: {purchaseId: "PUR", idempotencyKey: "cancel"}) { status } }"#, No, No, Yes, Yes),
    (
        "failPurchase",
        r#"mutation { failPurchase(input: {purchaseId: "PUR", reason: "declined", idempotencyKey: "fail"}) { status } }"#,
        No,
        No,
        Yes,
        Yes,
    ),
    ("refundPurchase", r#"mutation { refundPurchase(input: {purchaseId: "PUR", idempotencyKey: "k"}) { credits } }"#, Yes, No, Yes, Yes),
    (
        "spendCredits",
        r#"mutation { spendCredits(input: {accountId: "ACC", amount: "1", idempotencyKey: "k", feature: "x"}) { amount } }"#,
        No,
        No,
        Yes,
        Yes,
    ),
    (
        "spendCreditsBatch",
        r#"mutation { spendCreditsBatch(input: {items: [{accountId: "ACC", amount: "1", idempotencyKey: "kb", feature: "x"}]}) { results { ok } } }"#,
        No,
        No,
        Yes,
        Yes,
    ),
    (
        "reserveCredits",
        r#"mutation { reserveCredits(input: {accountId: "ACC", amount: "1", idempotencyKey: "k", feature: "x"}) { amount } }"#,
        No,
        No,
        Yes,
        Yes,
    ),
    (
        "captureReservation",
        r#"mutation { captureReservation(input: {reservationId: "1", amount: "1", idempotencyKey: "k"}) { status } }"#,
        No,
        No,
        Yes,
        Yes,
    ),
    (
        "releaseReservation",
        r#"mutation { releaseReservation(input: {reservationId: "1", idempotencyKey: "k"}) { status } }"#,
        No,
        No,
        Yes,
        Yes,
    ),
    (
        "grantCredits",
        r#"mutation { grantCredits(input: {accountId: "ACC", amount: "1", class: PAID, idempotencyKey: "k"}) { lotId } }"#,
        No,
        No,
        No,
        Yes,
    ),
    ("createCoupon", r#"mutation { createCoupon(input: {code: "ROLES-ACC", credits: "1"}) { code } }"#, No, No, No, Yes),
    // On the system clock an admin is told FEATURE_DISABLED; the others are refused first.
    ("advanceClock", r#"mutation { advanceClock(by: "1 day") { now } }"#, No, No, No, Yes),
    // The operator's machinery (issue 23): admin only. An admin's runJob runs a job with
    // nothing to do here; redeliverEvent is FEATURE_DISABLED without a webhook receiver.
    ("runJob", r#"mutation { runJob(job: EXPIRE_RESERVATIONS) { items } }"#, No, No, No, Yes),
    ("redeliverEvent", r#"mutation { redeliverEvent(id: "1") { status } }"#, No, No, No, Yes),
    ("startAudit", r#"mutation { startAudit { status } }"#, No, No, No, Yes),
    // Corrections (issue 25): a named admin only (an admin may be told NOT_FOUND here).
    ("voidLot", r#"mutation { voidLot(input: {lotId: "1", reason: "roles", idempotencyKey: "k"}) { voided } }"#, No, No, No, Yes),
    (
        "adjustCredits",
        r#"mutation { adjustCredits(input: {accountId: "ACC", amount: "1", reason: "roles", idempotencyKey: "k"}) { amount } }"#,
        No,
        No,
        No,
        Yes,
    ),
    (
        "changeLotExpiry",
        r#"mutation { changeLotExpiry(input: {lotId: "1", expiresAt: "2030-01-01T00:00:00Z", reason: "roles", idempotencyKey: "k"}) { expiresAt } }"#,
        No,
        No,
        No,
        Yes,
    ),
    (
        "redeemCoupon",
        r#"mutation { redeemCoupon(input: {accountId: "ACC", code: "NOPE", idempotencyKey: "k"}) { amount } }"#,
        Yes,
        No,
        Yes,
        Yes,
    ),
    ("checkIn", r#"mutation { checkIn(input: {accountId: "ACC", idempotencyKey: "k"}) { amount } }"#, Yes, No, Yes, Yes),
    // A user gives from its own account only; the service for any; an admin is not a party.
    (
        "giftCredits",
        r#"mutation { giftCredits(input: {fromAccount: "ACC", toAccount: "someone", amount: "1", idempotencyKey: "k"}) { amount } }"#,
        Yes,
        No,
        Yes,
        No,
    ),
    (
        "claimLuckyCredits",
        r#"mutation { claimLuckyCredits(input: {accountId: "ACC", idempotencyKey: "k"}) { amount } }"#,
        Yes,
        No,
        Yes,
        Yes,
    ),
    ("claimAdReward", r#"mutation { claimAdReward(input: {accountId: "ACC", idempotencyKey: "k"}) { amount } }"#, Yes, No, Yes, Yes),
    (
        "startContainer",
        r#"mutation { startContainer(input: {accountId: "ACC", containerId: "c", tier: "micro", idempotencyKey: "k"}) { container { state } } }"#,
        No,
        No,
        Yes,
        Yes,
    ),
    (
        "stopContainer",
        r#"mutation { stopContainer(input: {accountId: "ACC", containerId: "c", idempotencyKey: "k2"}) { container { state } } }"#,
        No,
        No,
        Yes,
        Yes,
    ),
    (
        "recordUsage",
        r#"mutation { recordUsage(input: {accountId: "ACC", idempotencyKey: "k", ai: {kind: SNAP}}) { settlement { total } } }"#,
        No,
        No,
        Yes,
        Yes,
    ),
    (
        "recordUsageBatch",
        r#"mutation { recordUsageBatch(input: {items: [{accountId: "ACC", idempotencyKey: "kb", ai: {kind: SNAP}}]}) { results { ok } } }"#,
        No,
        No,
        Yes,
        Yes,
    ),
    (
        "setAskingPrices",
        r#"mutation { setAskingPrices(input: {accountId: "ACC", hardwareClass: ENTRY, capacity: 1, defaultPrice: "1"}) { price } }"#,
        Yes,
        No,
        Yes,
        Yes,
    ),
    ("setBidPreference", r#"mutation { setBidPreference(accountId: "ACC", workload: "x", bidPrice: "1") }"#, Yes, No, Yes, Yes),
    (
        "submitJob",
        r#"mutation { submitJob(input: {accountId: "ACC", workload: "x", inputs: [{input: "i"}], idempotencyKey: "k"}) { status } }"#,
        Yes,
        No,
        Yes,
        Yes,
    ),
    ("completeJob", r#"mutation { completeJob(input: {jobId: "1", idempotencyKey: "k"}) { status } }"#, No, No, Yes, Yes),
    ("failJob", r#"mutation { failJob(input: {jobId: "1", idempotencyKey: "k"}) { status } }"#, No, No, Yes, Yes),
    // Reads.
    (
        "account",
        r#"{ account(id: "ACC") { balance { total } lots(first: 1) { edges { cursor } } history(first: 1) { edges { cursor } } purchases(first: 1) { edges { cursor } } usage { total } lowCredits { applies } jobs(first: 1) { edges { cursor } } containers { state } } }"#,
        Yes,
        No,
        Yes,
        Yes,
    ),
    ("benefits", r#"{ account(id: "ACC") { benefits { kind credits endsAt } } }"#, Yes, No, Yes, Yes),
    ("statement", r#"{ account(id: "ACC") { statement(month: "2026-01") { digest json } } }"#, Yes, No, Yes, Yes),
    ("priceQuote", r#"{ priceQuote(feature: "snap") { total } }"#, Yes, Yes, Yes, Yes),
    ("creditPackages", r#"{ creditPackages { code } plans { code } program { name } }"#, Yes, Yes, Yes, Yes),
    ("scheduledJobs", r#"{ scheduledJobs { name latestRun { status } } }"#, No, No, No, Yes),
    ("jobRuns", r#"{ jobRuns(job: GRANT_MONTHLY_PLAN_CREDITS) { period } }"#, No, No, No, Yes),
    ("outbox", r#"{ outbox(status: FAILED, first: 5) { totalCount edges { node { eventId } } } }"#, No, No, No, Yes),
];

async fn every_operation_enforces_its_roles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("own").await;
    app.create_account("other").await;
    // A purchase of each account, for the refund and confirmation rows.
    let mut purchases = std::collections::BTreeMap::new();
    for account in ["own", "other"] {
        let r = app
            .gql(
                &app.service,
                "mutation($a: ID!) { purchaseCredits(input: {accountId: $a, credits: \"50\", idempotencyKey: \"p\"}) { id } }",
                json!({ "a": account }),
            )
            .await;
        purchases.insert(account, r["data"]["purchaseCredits"]["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_string());
    }
    let (user, service, admin) = (app.user("own"), app.service.clone(), app.admin.clone());
    let mut tried = 0;
    for (operation, template, own, other, as_service, as_admin) in TABLE {
        let cases = [
            ("user on own", &user, "own", *own),
            ("user on other", &user, "other", *other),
            ("service", &service, "other", *as_service),
            ("admin", &admin, "other", *as_admin),
        ];
        for (who, token, account, may) in cases {
            let query = template.replace("PUR", &purchases[account]).replace("ACC", account);
            let r = app.gql(token, &query, json!({})).await;
            let code = if r["errors"].is_null() { "" } else { error_code(&r) };
            match may {
                Yes => assert!(code != "FORBIDDEN" && code != "UNAUTHENTICATED", "{operation} as {who} must be allowed: {r}"),
                No => assert_eq!(code, "FORBIDDEN", "{operation} as {who} must be refused: {r}"),
            }
            tried += 1;
        }
        let anonymous = app.gql("not-a-token", &template.replace("PUR", &purchases["own"]).replace("ACC", "own"), json!({})).await;
        assert_eq!(error_code(&anonymous), "UNAUTHENTICATED", "{operation} without a valid token: {anonymous}");
        tried += 1;
    }
    println!("roles: {tried} cases over {} operations", TABLE.len());
    app.assert_audit_clean().await;
}

/// Mutations that need no token: what they take is the credential (a console link's one-time
/// code). `tests/console_session.rs` shows a bad code refused alike with any token or none.
const NEEDS_NO_TOKEN: &[&str] = &["openConsoleSession"];

/// Every mutation of the schema has a row.
#[test]
fn the_table_covers_every_mutation() {
    let names = crate::support::mutation_names();
    assert!(names.len() > 20, "{names:?}");
    for name in names {
        assert!(TABLE.iter().any(|(op, ..)| *op == name) || NEEDS_NO_TOKEN.contains(&name.as_str()), "no role row for {name}");
    }
}

on_both!(every_operation_enforces_its_roles);
