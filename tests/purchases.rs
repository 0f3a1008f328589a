use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use serde_json::{Value, json};

const PURCHASE: &str = "mutation($a: ID!, $p: String, $c: CreditAmount, $k: String!) {
    purchaseCredits(input: {accountId: $a, package: $p, credits: $c, idempotencyKey: $k}) { id status credits package amount { amountMinor currency } } }";
const CONFIRM: &str = "mutation($id: ID!, $ref: String!, $paid: Int) {
    confirmPurchase(input: {purchaseId: $id, paymentReference: $ref, amountMinor: $paid}) { id status lotId paymentReference } }";

async fn buy(app: &TestApp, token: &str, vars: Value) -> Value {
    app.gql(token, PURCHASE, vars).await
}

async fn purchases_are_priced_then_paid_exactly_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("buyer").await;
    let user = app.user("buyer");

    let packages = app.gql(&user, "{ creditPackages { code credits price { amountMinor currency } } }", json!({})).await;
    assert_eq!(
        packages["data"]["creditPackages"][0],
        json!({ "code": "credits-100", "credits": "100", "price": { "amountMinor": 200, "currency": "USD" } })
    );

    // A custom amount at $0.02 a credit; the minimum is 50 credits, in whole credits.
    let custom = buy(&app, &user, json!({ "a": "buyer", "c": "75", "k": "p-1" })).await;
    let purchase = &custom["data"]["purchaseCredits"];
    assert_eq!(purchase["amount"], json!({ "amountMinor": 150, "currency": "USD" }), "{custom}");
    assert_eq!(purchase["status"], json!("PENDING"));
    let replay = buy(&app, &user, json!({ "a": "buyer", "c": "75", "k": "p-1" })).await;
    assert_eq!(replay["data"]["purchaseCredits"]["id"], purchase["id"], "a replayed purchase is the same purchase");
    let conflict = buy(&app, &user, json!({ "a": "buyer", "c": "80", "k": "p-1" })).await;
    assert_eq!(error_code(&conflict), "IDEMPOTENCY_CONFLICT");
    for (credits, package) in [
        (Some("49"), None),
        (Some("50.5"), None),
        (Some("-100"), None),
        (None, Some("nope")),
        (None, None),
        (Some("100"), Some("credits-100")),
    ] {
        let r = buy(&app, &user, json!({ "a": "buyer", "c": credits, "p": package, "k": "p-bad" })).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{credits:?} {package:?}: {r}");
    }
    let other = buy(&app, &user, json!({ "a": "someone-else", "c": "100", "k": "p-2" })).await;
    assert_eq!(error_code(&other), "FORBIDDEN");
    assert_eq!(app.balance("buyer").await, "0", "nothing is credited before payment");

    // Confirmation is the service's, idempotent on the payment reference.
    let id = purchase["id"].as_str().unwrap();
    let by_user = app.gql(&user, CONFIRM, json!({ "id": id, "ref": "pay-1" })).await;
    assert_eq!(error_code(&by_user), "FORBIDDEN");
    let wrong_amount = app.gql(&app.service, CONFIRM, json!({ "id": id, "ref": "pay-1", "paid": 149 })).await;
    assert_eq!(error_code(&wrong_amount), "BAD_USER_INPUT");
    let paid = app.gql(&app.service, CONFIRM, json!({ "id": id, "ref": "pay-1", "paid": 150 })).await;
    assert_eq!(paid["data"]["confirmPurchase"]["status"], json!("PAID"), "{paid}");
    let again = app.gql(&app.service, CONFIRM, json!({ "id": id, "ref": "pay-1" })).await;
    assert_eq!(again["data"]["confirmPurchase"], paid["data"]["confirmPurchase"]);
    let other_ref = app.gql(&app.service, CONFIRM, json!({ "id": id, "ref": "pay-2" })).await;
    assert_eq!(error_code(&other_ref), "IDEMPOTENCY_CONFLICT");
    assert_eq!(app.balance("buyer").await, "75");

    let second = buy(&app, &user, json!({ "a": "buyer", "p": "credits-500", "k": "p-3" })).await;
    let second_id = second["data"]["purchaseCredits"]["id"].as_str().unwrap().to_string();
    let reused_ref = app.gql(&app.service, CONFIRM, json!({ "id": second_id, "ref": "pay-1" })).await;
    assert_eq!(error_code(&reused_ref), "IDEMPOTENCY_CONFLICT");
    let unknown = app.gql(&app.service, CONFIRM, json!({ "id": "999999", "ref": "pay-9" })).await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");

    // Concurrent confirmations of one purchase under one reference credit it once.
    let confirms =
        futures::future::join_all((0..10).map(|_| app.gql(&app.service, CONFIRM, json!({ "id": second_id, "ref": "pay-3" })))).await;
    assert!(confirms.iter().all(|r| r["data"]["confirmPurchase"]["status"] == json!("PAID")), "{confirms:?}");
    assert_eq!(app.balance("buyer").await, "575");

    let history = app
        .gql(&user, "{ me { purchases { edges { node { package credits status amount { amountMinor } createdAt } } } } }", json!({}))
        .await;
    let edges = history["data"]["me"]["purchases"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2, "{history}");
    assert_eq!(edges[0]["node"]["package"], json!("500 credits"), "newest first");
    assert_eq!(edges[0]["node"]["amount"]["amountMinor"], json!(1000));
    assert_eq!(edges[1]["node"]["package"], Value::Null, "a custom amount has no package");
    app.assert_audit_clean().await;
}

async fn carat_top_ups_expire_a_calendar_month_after_payment(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    let program = app.gql(&app.service, "{ program { purchasedValidity } }", json!({})).await;
    assert_eq!(program["data"]["program"]["purchasedValidity"], json!("1 month"), "one unit reads in the singular: {program}");
    app.create_account("fan").await;
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-31T10:00:00Z").unwrap().to_utc();
    app.clock.set(start);
    let bought = buy(&app, &app.service, json!({ "a": "fan", "p": "topup-5000", "k": "t-1" })).await;
    let id = bought["data"]["purchaseCredits"]["id"].as_str().unwrap().to_string();
    app.gql(&app.service, CONFIRM, json!({ "id": id, "ref": "carat-pay-1" })).await;
    let lots = app.gql(&app.service, "{ account(id: \"fan\") { lots { edges { node { class source expiresAt } } } } }", json!({})).await;
    assert_eq!(
        lots["data"]["account"]["lots"]["edges"][0]["node"],
        json!({ "class": "PAID", "source": "PURCHASE", "expiresAt": "2026-02-28T10:00:00+00:00" }),
        "{lots}"
    );
    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-02-28T09:59:59.999999Z").unwrap().to_utc());
    // The day's 100 free credits count too: a spend short of the top-up would take them last.
    assert_eq!(app.balance("fan").await, "5100");
    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-02-28T10:00:00Z").unwrap().to_utc());
    // Expiry is exclusive; with the top-up gone, the free plan's daily free credits show.
    let balance = app.gql(&app.service, "{ account(id: \"fan\") { balance { bars { source remaining } } } }", json!({})).await;
    assert_eq!(balance["data"]["account"]["balance"]["bars"], json!([{ "source": "DAILY_FREE", "remaining": "100" }]));
}

on_both!(purchases_are_priced_then_paid_exactly_once, carat_top_ups_expire_a_calendar_month_after_payment);
