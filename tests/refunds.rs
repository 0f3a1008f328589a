use crate::on_both;
use crate::support::{Backend, TestApp, buy, error_code};
use chrono::Duration;
use serde_json::{Value, json};

const REFUND: &str = "mutation($id: ID!, $k: String!) {
    refundPurchase(input: {purchaseId: $id, idempotencyKey: $k}) { purchase { status refundedAmount { amountMinor } } refunded { amountMinor currency } credits revoked } }";

async fn refund(app: &TestApp, token: &str, id: &str, key: &str) -> Value {
    app.gql(token, REFUND, json!({ "id": id, "k": key })).await
}

async fn arkain_refunds_the_unused_part_and_forfeits_the_bonus(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("buyer").await;
    let user = app.user("buyer");
    // 50 monthly free credits, 100 bought, 30 first-purchase bonus.
    let first = buy(&app, "buyer", Some("100"), None, "pay-1").await;
    assert_eq!(app.balance("buyer").await, "180");
    let bonus = app.gql(&user, "{ me { balance { bars { source remaining } } } }", json!({})).await;
    assert!(bonus.to_string().contains(r#"{"remaining":"30","source":"FIRST_PURCHASE_BONUS"}"#), "{bonus}");
    // The free and promotional credits go first: the purchase itself stays untouched.
    assert!(app.spend("buyer", "10", "s-1").await["errors"].is_null());

    let by_other = refund(&app, &app.user("someone"), &first, "r-0").await;
    assert_eq!(error_code(&by_other), "FORBIDDEN");

    let refunded = refund(&app, &user, &first, "r-1").await;
    assert_eq!(
        refunded["data"]["refundPurchase"],
        json!({
            "purchase": { "status": "REFUNDED", "refundedAmount": { "amountMinor": 200 } },
            "refunded": { "amountMinor": 200, "currency": "USD" },
            "credits": "100",
            "revoked": "30",
        }),
        "{refunded}"
    );
    assert_eq!(refund(&app, &user, &first, "r-1").await["data"], refunded["data"], "a replay");
    assert_eq!(error_code(&refund(&app, &user, &first, "r-2").await), "REFUND_NOT_ALLOWED", "once");
    assert_eq!(app.balance("buyer").await, "40");
    let kinds = app.gql(&user, "{ me { history(first: 2) { edges { node { kind amount } } } } }", json!({})).await;
    assert_eq!(
        kinds["data"]["me"]["history"]["edges"],
        json!([{ "node": { "kind": "REVOKE", "amount": "-30" } }, { "node": { "kind": "REFUND", "amount": "-100" } }])
    );
    let account = app.ledger.account("buyer").await.unwrap();
    let events = credits::store::outbox::for_account(&app.ledger.db, account.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].topic, "purchase.refunded");
    assert!(events[0].payload.contains(r#""amountMinor":200"#), "{}", events[0].payload);

    // A later purchase earns no bonus; a part-used one refunds ceil(150 / 75 x 33.333333) = 67 cents.
    let second = buy(&app, "buyer", Some("75"), None, "pay-2").await;
    assert_eq!(app.balance("buyer").await, "115");
    assert!(app.spend("buyer", "81.666667", "s-2").await["errors"].is_null());
    let part = refund(&app, &user, &second, "r-3").await;
    assert_eq!(part["data"]["refundPurchase"]["refunded"]["amountMinor"], json!(67), "{part}");
    assert_eq!(app.balance("buyer").await, "0");
    app.assert_audit_clean().await;
}

async fn arkain_refund_terms_refuse_spent_bonuses_and_late_requests(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("spender").await;
    let user = app.user("spender");
    let id = buy(&app, "spender", Some("100"), None, "pay-1").await;
    // 50 free + 30 bonus + 80 of the purchase: 20 left, less than the 30 bonus credits.
    assert!(app.spend("spender", "160", "s-1").await["errors"].is_null());
    let refused = refund(&app, &user, &id, "r-1").await;
    assert_eq!(error_code(&refused), "REFUND_NOT_ALLOWED");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("promotional"));

    app.create_account("late").await;
    let late_id = buy(&app, "late", None, Some("credits-500"), "pay-2").await;
    app.clock.set(app.clock.now() + Duration::days(7));
    let late = refund(&app, &app.user("late"), &late_id, "r-2").await;
    assert_eq!(error_code(&late), "REFUND_NOT_ALLOWED", "the user's 7 days are over");
    let by_operator = refund(&app, &app.admin, &late_id, "r-3").await;
    assert_eq!(by_operator["data"]["refundPurchase"]["refunded"]["amountMinor"], json!(1000), "{by_operator}");
    app.assert_audit_clean().await;
}

async fn carat_refunds_only_untouched_purchases_and_archipelag_none(backend: Backend) {
    let carat = TestApp::spawn_with(backend, "carat").await;
    carat.create_account("fan").await;
    let first = buy(&carat, "fan", None, Some("topup-5000"), "c-1").await;
    let second = buy(&carat, "fan", None, Some("topup-5000"), "c-2").await;
    // Same expiry: the older top-up is spent first, so the first is touched and the second is not.
    assert!(carat.spend("fan", "1", "s-1").await["errors"].is_null());
    assert_eq!(error_code(&refund(&carat, &carat.user("fan"), &first, "r-1").await), "REFUND_NOT_ALLOWED");
    let full = refund(&carat, &carat.user("fan"), &second, "r-2").await;
    assert_eq!(full["data"]["refundPurchase"]["refunded"]["amountMinor"], json!(999), "{full}");
    carat.assert_audit_clean().await;

    let archipelag = TestApp::spawn_with(backend, "archipelag").await;
    archipelag.create_account("islander").await;
    let id = buy(&archipelag, "islander", None, Some("starter"), "a-1").await;
    assert_eq!(error_code(&refund(&archipelag, &archipelag.admin, &id, "r").await), "REFUND_NOT_ALLOWED");
}

on_both!(
    arkain_refunds_the_unused_part_and_forfeits_the_bonus,
    arkain_refund_terms_refuse_spent_bonuses_and_late_requests,
    carat_refunds_only_untouched_purchases_and_archipelag_none
);
