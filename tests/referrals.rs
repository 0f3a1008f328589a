use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::Duration;
use serde_json::{Value, json};

const SIGN_UP: &str = "mutation($id: ID!, $code: String) { createAccount(input: {externalId: $id, referralCode: $code}) { created referralAccepted account { referralCode } } }";

async fn sign_up(app: &TestApp, id: &str, code: Option<&str>) -> Value {
    app.gql(&app.service, SIGN_UP, json!({ "id": id, "code": code })).await
}

async fn buy_and_pay(app: &TestApp, account: &str, credits: &str, key: &str) -> String {
    let r = app
        .gql(&app.service, "mutation($a: ID!, $c: CreditAmount!, $k: String!) { purchaseCredits(input: {accountId: $a, credits: $c, idempotencyKey: $k}) { id } }", json!({ "a": account, "c": credits, "k": key }))
        .await;
    let id = r["data"]["purchaseCredits"]["id"].as_str().unwrap().to_string();
    app.gql(
        &app.service,
        "mutation($id: ID!, $r: String!) { confirmPurchase(input: {purchaseId: $id, paymentReference: $r}) { status } }",
        json!({ "id": id, "r": key }),
    )
    .await;
    id
}

fn referral_credits(balance: &Value) -> Option<String> {
    balance["data"]["account"]["balance"]["bars"]
        .as_array()?
        .iter()
        .find(|b| b["source"] == json!("REFERRAL"))
        .map(|b| b["remaining"].as_str().unwrap().to_string())
}

async fn referral(app: &TestApp, account: &str) -> Option<String> {
    let r = app
        .gql(&app.service, "query($a: ID!) { account(id: $a) { balance { bars { source remaining } } } }", json!({ "a": account }))
        .await;
    referral_credits(&r)
}

async fn arkain_referrals_reward_both_sides_and_hold_the_purchase_bonus(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    let alice = sign_up(&app, "alice", None).await;
    let code = alice["data"]["createAccount"]["account"]["referralCode"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 8);

    let bob = sign_up(&app, "bob", Some(&code.to_lowercase())).await;
    assert_eq!(bob["data"]["createAccount"]["referralAccepted"], json!(true), "{bob}");
    assert_eq!(referral(&app, "bob").await.as_deref(), Some("300"));
    assert_eq!(referral(&app, "alice").await.as_deref(), Some("300"));
    let lots =
        app.gql(&app.service, "{ account(id: \"bob\") { lots { edges { node { source expiresAt grantedAt } } } } }", json!({})).await;
    let lot = lots["data"]["account"]["lots"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["source"] == json!("REFERRAL"))
        .unwrap()
        .clone();
    let granted = chrono::DateTime::parse_from_rfc3339(lot["node"]["grantedAt"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(lot["node"]["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires - granted, Duration::days(60));

    let unknown = sign_up(&app, "mallory", Some("ZZZZZZZZ")).await;
    assert_eq!(error_code(&unknown), "BAD_USER_INPUT");
    assert_eq!(
        error_code(&app.gql(&app.service, "{ account(id: \"mallory\") { id } }", json!({})).await),
        "NOT_FOUND",
        "nothing was created"
    );

    // Bob's first purchase is $5: under $10, so no purchase bonus, ever.
    buy_and_pay(&app, "bob", "250", "bob-1").await;
    buy_and_pay(&app, "bob", "1000", "bob-2").await;
    // Carol's first purchase is $10: both get 600 after the 7-day hold.
    sign_up(&app, "carol", Some(&code)).await;
    buy_and_pay(&app, "carol", "500", "carol-1").await;
    let start = app.clock.now();
    app.clock.set(start + Duration::days(7) - Duration::seconds(1));
    assert_eq!(app.ledger.release_referral_bonuses(app.clock.now(), 100).await.unwrap(), 0);
    // Dave's qualifying purchase is refunded during the hold: his bonus is cancelled.
    sign_up(&app, "dave", Some(&code)).await;
    let dave_purchase = buy_and_pay(&app, "dave", "500", "dave-1").await;
    let refund = app
        .gql(
            &app.admin,
            "mutation($id: ID!) { refundPurchase(input: {purchaseId: $id, idempotencyKey: \"r\"}) { refunded { amountMinor } } }",
            json!({ "id": dave_purchase }),
        )
        .await;
    assert!(refund["errors"].is_null(), "{refund}");
    app.clock.set(start + Duration::days(15));
    assert_eq!(app.ledger.release_referral_bonuses(app.clock.now(), 100).await.unwrap(), 1, "carol's only");
    assert_eq!(app.ledger.release_referral_bonuses(app.clock.now(), 100).await.unwrap(), 0, "once");
    assert_eq!(referral(&app, "carol").await.as_deref(), Some("900"));
    assert_eq!(referral(&app, "alice").await.as_deref(), Some("1500"), "300 x 3 sign-ups + 600");
    assert_eq!(referral(&app, "bob").await.as_deref(), Some("300"));
    // The bonus statuses are stored as the text they always were.
    for (friend, stored) in [("bob", "none"), ("carol", "granted"), ("dave", "cancelled")] {
        let id = app.ledger.account(friend).await.unwrap().id;
        let row = credits::store::referrals::of_referred(&app.ledger.db, id).await.unwrap().expect("a referral");
        assert_eq!(row.bonus_status, stored, "{friend}");
    }

    // At most 10 referrals: the 11th friend signs up, without referral credits.
    for i in 4..=10 {
        assert_eq!(sign_up(&app, &format!("friend-{i}"), Some(&code)).await["data"]["createAccount"]["referralAccepted"], json!(true));
    }
    let eleventh = sign_up(&app, "friend-11", Some(&code)).await;
    assert_eq!(eleventh["data"]["createAccount"]["created"], json!(true));
    assert_eq!(eleventh["data"]["createAccount"]["referralAccepted"], json!(false));
    assert_eq!(referral(&app, "friend-11").await, None);
    let count = app.gql(&app.service, "{ account(id: \"alice\") { referralCount } }", json!({})).await;
    assert_eq!(count["data"]["account"]["referralCount"], json!(10));
    app.assert_audit_clean().await;
}

async fn programs_without_referrals_refuse_codes(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    assert_eq!(error_code(&sign_up(&app, "x", Some("ABCDEFGH")).await), "FEATURE_DISABLED");
    let plain = sign_up(&app, "y", None).await;
    assert_eq!(plain["data"]["createAccount"]["account"]["referralCode"], json!(null));
}

on_both!(arkain_referrals_reward_both_sides_and_hold_the_purchase_bonus, programs_without_referrals_refuse_codes);

/// Twelve friends sign up with one code at once: exactly ten are accepted.
async fn concurrent_sign_ups_respect_the_referral_cap(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    let host = sign_up(&app, "host", None).await;
    let code = host["data"]["createAccount"]["account"]["referralCode"].as_str().unwrap().to_string();
    let ids: Vec<String> = (0..12).map(|i| format!("guest-{i}")).collect();
    let results = futures::future::join_all(ids.iter().map(|id| sign_up(&app, id, Some(&code)))).await;
    assert!(results.iter().all(|r| r["data"]["createAccount"]["created"] == json!(true)), "{results:?}");
    let accepted = results.iter().filter(|r| r["data"]["createAccount"]["referralAccepted"] == json!(true)).count();
    assert_eq!(accepted, 10);
    assert_eq!(referral(&app, "host").await.as_deref(), Some("3000"));
    app.assert_audit_clean().await;
}

on_both!(concurrent_sign_ups_respect_the_referral_cap);
