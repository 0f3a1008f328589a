//! Gifts between users (issue 26, `giftCredits`, `ledger::gift`, `service::gifts`): paid credits
//! move from one account to another keeping their expiry, within per-day limits, keyed, refused
//! across suspended accounts; both histories name the other side; a refund after a gift mints
//! nothing; gifts in both directions at once never deadlock and keep sums exact. On both
//! databases, through the HTTP API, with the audit clean after each.

use crate::on_both;
use crate::support::{Backend, TestApp, buy, error_code};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

const PROGRAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/gifts.toml");
const GIFT: &str = "mutation($f: ID, $t: ID!, $a: CreditAmount!, $n: String, $k: String!) {
    giftCredits(input: {fromAccount: $f, toAccount: $t, amount: $a, note: $n, idempotencyKey: $k}) {
      fromAccount toAccount amount sentSequence receivedSequence balanceAfter effectiveAt
      lots { lotId fromLotId amount expiresAt } } }";
const HISTORY: &str = "query($a: ID!) { account(id: $a) { history(first: 20, filter: {kinds: [GIFT_SENT, GIFT_RECEIVED]}) {
    edges { node { sequence kind amount reason counterparty lines { lotId amount } } } } } }";
const LOTS: &str = "query($a: ID!) { account(id: $a) { lots(first: 50) { edges { node { id class source remaining expiresAt } } } } }";
const REFUND: &str =
    "mutation($id: ID!, $k: String!) { refundPurchase(input: {purchaseId: $id, idempotencyKey: $k}) { refunded { amountMinor } credits } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

async fn gift(app: &TestApp, token: &str, from: Option<&str>, to: &str, amount: &str, key: &str) -> Value {
    app.gql(token, GIFT, json!({ "f": from, "t": to, "a": amount, "k": key })).await
}

async fn gift_ok(app: &TestApp, from: &str, to: &str, amount: &str, key: &str) -> Value {
    let r = gift(app, &app.service, Some(from), to, amount, key).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["giftCredits"].clone()
}

async fn grant_paid(app: &TestApp, account: &str, amount: &str, expires_at: Option<DateTime<Utc>>, key: &str) {
    let r = app.grant(account, amount, "PAID", expires_at, key).await;
    assert!(r["errors"].is_null(), "{r}");
}

async fn lots_of(app: &TestApp, account: &str) -> Vec<Value> {
    let r = app.gql(&app.service, LOTS, json!({ "a": account })).await;
    r["data"]["account"]["lots"]["edges"].as_array().unwrap_or_else(|| panic!("{r}")).iter().map(|e| e["node"].clone()).collect()
}

async fn gift_history(app: &TestApp, account: &str) -> Vec<Value> {
    let r = app.gql(&app.service, HISTORY, json!({ "a": account })).await;
    r["data"]["account"]["history"]["edges"].as_array().unwrap_or_else(|| panic!("{r}")).iter().map(|e| e["node"].clone()).collect()
}

async fn moves_exact_amounts_keeping_each_lots_expiry(backend: Backend) {
    let app = TestApp::spawn_with(backend, PROGRAM).await;
    app.clock.set(at("2026-12-03T10:00:00Z"));
    let now = app.clock.now();
    for name in ["alice", "bob"] {
        app.create_account(name).await;
    }
    let soon = now + Duration::days(10);
    let later = now + Duration::days(40);
    grant_paid(&app, "alice", "30", Some(soon), "g-1").await;
    grant_paid(&app, "alice", "40", Some(later), "g-2").await;
    grant_paid(&app, "alice", "50", None, "g-3").await;
    // Promotional credits are not giftable, whatever the order would take first.
    let promo = app.grant("alice", "100", "PROMOTIONAL", None, "g-4").await;
    assert!(promo["errors"].is_null(), "{promo}");

    // A user gives from its own account and may leave fromAccount out.
    let receipt = gift(&app, &app.user("alice"), None, "bob", "85.5", "gift-1").await;
    assert!(receipt["errors"].is_null(), "{receipt}");
    let receipt = &receipt["data"]["giftCredits"];
    assert_eq!((receipt["fromAccount"].as_str(), receipt["toAccount"].as_str()), (Some("alice"), Some("bob")));
    assert_eq!(receipt["amount"], json!("85.5"));
    assert_eq!(receipt["balanceAfter"], json!("134.5"), "220 - 85.5");
    let parts: Vec<(String, Value)> =
        receipt["lots"].as_array().unwrap().iter().map(|l| (l["amount"].as_str().unwrap().to_string(), l["expiresAt"].clone())).collect();
    // Soonest expiry first, never-expiring last; each part keeps its expiry.
    assert_eq!(
        parts,
        vec![
            ("30".to_string(), json!(soon.to_rfc3339())),
            ("40".to_string(), json!(later.to_rfc3339())),
            ("15.5".to_string(), Value::Null),
        ]
    );
    assert_eq!(app.balance("alice").await, "134.5");
    assert_eq!(app.balance("bob").await, "85.5");
    let bob_lots = lots_of(&app, "bob").await;
    assert_eq!(bob_lots.len(), 3, "{bob_lots:?}");
    for lot in &bob_lots {
        assert_eq!((lot["class"].as_str(), lot["source"].as_str()), (Some("PAID"), Some("GIFT")), "{lot}");
        let part = receipt["lots"].as_array().unwrap().iter().find(|p| p["lotId"] == lot["id"]).expect("each lot is in the receipt");
        assert_eq!(lot["expiresAt"], part["expiresAt"]);
        assert_eq!(lot["remaining"], part["amount"]);
    }

    // Only paid credits: alice has 34.5 paid and 100 promotional left.
    let short = gift(&app, &app.service, Some("alice"), "bob", "35", "gift-2").await;
    assert_eq!(error_code(&short), "INSUFFICIENT_CREDITS", "{short}");
    assert_eq!(short["errors"][0]["extensions"]["available"], json!("34.5"));
    assert!(short["errors"][0]["message"].as_str().unwrap().contains("only paid credits can be gifted"), "{short}");
    // A refusal is the key's outcome: replayed even once the credits are there.
    grant_paid(&app, "alice", "10", None, "g-5").await;
    let again = gift(&app, &app.service, Some("alice"), "bob", "35", "gift-2").await;
    assert_eq!(error_code(&again), "INSUFFICIENT_CREDITS", "{again}");

    // Bob can give gifted credits on, with their expiry still.
    let back = gift_ok(&app, "bob", "alice", "30", "back-1").await;
    assert_eq!(back["lots"][0]["expiresAt"], receipt["lots"][0]["expiresAt"]);
    assert_eq!(app.balance("bob").await, "55.5");
    assert_eq!(app.balance("alice").await, "174.5");
    app.assert_audit_clean().await;
}

async fn keyed_replays_conflicts_and_input_refusals(backend: Backend) {
    let app = TestApp::spawn_with(backend, PROGRAM).await;
    for name in ["alice", "bob", "carol"] {
        app.create_account(name).await;
    }
    grant_paid(&app, "alice", "200", None, "g").await;
    let first = gift_ok(&app, "alice", "bob", "50", "k-1").await;
    let replay = gift_ok(&app, "alice", "bob", "50", "k-1").await;
    assert_eq!(first, replay, "the same key and request replay the first receipt");
    assert_eq!(app.balance("alice").await, "150");
    assert_eq!(app.balance("bob").await, "50");
    for (to, amount) in [("carol", "50"), ("bob", "51")] {
        let conflict = gift(&app, &app.service, Some("alice"), to, amount, "k-1").await;
        assert_eq!(error_code(&conflict), "IDEMPOTENCY_CONFLICT", "{conflict}");
    }
    let noted = app.gql(&app.service, GIFT, json!({ "f": "alice", "t": "bob", "a": "50", "n": "thanks", "k": "k-1" })).await;
    assert_eq!(error_code(&noted), "IDEMPOTENCY_CONFLICT", "the note is part of the request");

    // Refused before the key, never stored: the same key then succeeds.
    for (from, to, amount, code) in [
        ("alice", "alice", "1", "BAD_USER_INPUT"),
        ("alice", "nobody", "1", "NOT_FOUND"),
        ("alice", "bob", "0", "BAD_USER_INPUT"),
        ("alice", "bob", "300.000001", "BAD_USER_INPUT"),
        ("nobody", "bob", "1", "NOT_FOUND"),
    ] {
        let r = gift(&app, &app.service, Some(from), to, amount, "k-2").await;
        assert_eq!(error_code(&r), code, "{from} -> {to} {amount}: {r}");
    }
    let number = app.gql(&app.service, GIFT, json!({ "f": "alice", "t": "bob", "a": 1, "k": "k-2" })).await;
    assert_eq!(error_code(&number), "BAD_USER_INPUT", "an amount is a string");
    gift_ok(&app, "alice", "bob", "1", "k-2").await;

    // Roles: a user gives from its own account only; a service token names the sender; an admin
    // token is not a party to gifts.
    let other = gift(&app, &app.user("bob"), Some("alice"), "carol", "1", "k-3").await;
    assert_eq!(error_code(&other), "FORBIDDEN", "{other}");
    let unnamed = gift(&app, &app.service, None, "carol", "1", "k-3").await;
    assert_eq!(error_code(&unnamed), "BAD_USER_INPUT", "{unnamed}");
    let admin = gift(&app, &app.admin, Some("alice"), "carol", "1", "k-3").await;
    assert_eq!(error_code(&admin), "FORBIDDEN", "{admin}");
    assert_eq!(app.balance("alice").await, "149");
    app.assert_audit_clean().await;
}

async fn the_day_limits_hold_and_reset_at_utc_midnight(backend: Backend) {
    let app = TestApp::spawn_with(backend, PROGRAM).await;
    app.clock.set(at("2026-12-03T23:00:00Z"));
    for name in ["alice", "bob", "carol"] {
        app.create_account(name).await;
    }
    grant_paid(&app, "alice", "2000", None, "g").await;
    // 500 a day over all recipients.
    gift_ok(&app, "alice", "bob", "300", "d1-1").await;
    gift_ok(&app, "alice", "carol", "200", "d1-2").await;
    let over = gift(&app, &app.service, Some("alice"), "bob", "0.000001", "d1-3").await;
    assert_eq!(error_code(&over), "DAILY_LIMIT_REACHED", "{over}");
    assert!(over["errors"][0]["message"].as_str().unwrap().contains("2026-12-04T00:00:00+00:00"), "says when it resets: {over}");
    // The limit is the sender's: carol may still give.
    gift_ok(&app, "carol", "bob", "100", "c-1").await;
    // The last microsecond of the day is still the day.
    app.clock.set(at("2026-12-04T00:00:00Z") - Duration::microseconds(1));
    let last = gift(&app, &app.service, Some("alice"), "bob", "1", "d1-4").await;
    assert_eq!(error_code(&last), "DAILY_LIMIT_REACHED", "{last}");
    // A new UTC day: the limit resets; the refused key still replays its refusal.
    app.clock.set(at("2026-12-04T00:00:00Z"));
    let replayed = gift(&app, &app.service, Some("alice"), "bob", "0.000001", "d1-3").await;
    assert_eq!(error_code(&replayed), "DAILY_LIMIT_REACHED", "{replayed}");
    // The day's count: 5 gifts.
    for n in 0..5 {
        gift_ok(&app, "alice", "bob", "1", &format!("d2-{n}")).await;
    }
    let sixth = gift(&app, &app.service, Some("alice"), "bob", "1", "d2-5").await;
    assert_eq!(error_code(&sixth), "DAILY_LIMIT_REACHED", "{sixth}");
    assert_eq!(app.balance("alice").await, "1495");
    assert_eq!(app.balance("bob").await, "405", "300 and 5 from alice, 100 from carol");
    app.assert_audit_clean().await;
}

async fn suspended_accounts_are_refused_on_either_side(backend: Backend) {
    let app = TestApp::spawn_with(backend, PROGRAM).await;
    for name in ["alice", "bob"] {
        app.create_account(name).await;
    }
    grant_paid(&app, "alice", "100", None, "g").await;
    grant_paid(&app, "bob", "100", None, "g").await;
    let status = |id: &str, s: &str| format!("mutation {{ setAccountStatus(input: {{accountId: \"{id}\", status: {s}}}) {{ status }} }}");
    app.gql(&app.admin, &status("bob", "SUSPENDED"), json!({})).await;
    let to_suspended = gift(&app, &app.service, Some("alice"), "bob", "10", "s-1").await;
    assert_eq!(error_code(&to_suspended), "ACCOUNT_NOT_ACTIVE", "{to_suspended}");
    let from_suspended = gift(&app, &app.service, Some("bob"), "alice", "10", "s-2").await;
    assert_eq!(error_code(&from_suspended), "ACCOUNT_NOT_ACTIVE", "{from_suspended}");
    // Kept under the keys: reactivated, the same keys still answer the refusal.
    app.gql(&app.admin, &status("bob", "ACTIVE"), json!({})).await;
    let replay = gift(&app, &app.service, Some("alice"), "bob", "10", "s-1").await;
    assert_eq!(error_code(&replay), "ACCOUNT_NOT_ACTIVE", "{replay}");
    gift_ok(&app, "alice", "bob", "10", "s-3").await;
    assert_eq!((app.balance("alice").await, app.balance("bob").await), ("90".to_string(), "110".to_string()));
    app.assert_audit_clean().await;
}

async fn both_histories_show_the_other_side(backend: Backend) {
    let app = TestApp::spawn_with(backend, PROGRAM).await;
    for name in ["alice", "bob"] {
        app.create_account(name).await;
    }
    grant_paid(&app, "alice", "10", None, "g-1").await;
    grant_paid(&app, "alice", "10", Some(app.clock.now() + Duration::days(3)), "g-2").await;
    let r = app.gql(&app.service, GIFT, json!({ "f": "alice", "t": "bob", "a": "15", "n": "for the coffee", "k": "h-1" })).await;
    assert!(r["errors"].is_null(), "{r}");
    let receipt = &r["data"]["giftCredits"];
    let sent = gift_history(&app, "alice").await;
    let received = gift_history(&app, "bob").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(received.len(), 1);
    let (sent, received) = (&sent[0], &received[0]);
    assert_eq!(
        (sent["kind"].as_str(), sent["counterparty"].as_str(), sent["amount"].as_str()),
        (Some("GIFT_SENT"), Some("bob"), Some("-15"))
    );
    assert_eq!(
        (received["kind"].as_str(), received["counterparty"].as_str(), received["amount"].as_str()),
        (Some("GIFT_RECEIVED"), Some("alice"), Some("15"))
    );
    assert_eq!(sent["reason"], json!("for the coffee"));
    assert_eq!(received["reason"], json!("for the coffee"));
    assert_eq!(sent["sequence"], receipt["sentSequence"]);
    assert_eq!(received["sequence"], receipt["receivedSequence"]);
    assert_eq!(sent["lines"].as_array().unwrap().len(), 2, "two of alice's lots");
    assert_eq!(received["lines"].as_array().unwrap().len(), 2, "two new lots of bob's");
    // Other entries name no counterparty.
    let all = app
        .gql(&app.service, "query { account(id: \"alice\") { history(first: 5) { edges { node { kind counterparty } } } } }", json!({}))
        .await;
    let grants: Vec<&Value> =
        all["data"]["account"]["history"]["edges"].as_array().unwrap().iter().filter(|e| e["node"]["kind"] == "GRANT").collect();
    assert!(grants.iter().all(|e| e["node"]["counterparty"].is_null()), "{all}");
    app.assert_audit_clean().await;
}

async fn a_refund_after_a_gift_mints_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, PROGRAM).await;
    for name in ["alice", "bob"] {
        app.create_account(name).await;
    }
    // 100 credits for $2.00; 60 of them given away.
    let purchase = buy(&app, "alice", Some("100"), None, "pay-1").await;
    gift_ok(&app, "alice", "bob", "60", "r-1").await;
    let refund = app.gql(&app.service, REFUND, json!({ "id": purchase, "k": "refund-1" })).await;
    assert!(refund["errors"].is_null(), "{refund}");
    // Only the 40 alice still holds come back, for 80 cents; bob keeps the 60 he was given, paid
    // for with the $1.20 alice was not refunded.
    assert_eq!(refund["data"]["refundPurchase"]["credits"], json!("40"));
    assert_eq!(refund["data"]["refundPurchase"]["refunded"]["amountMinor"], json!(80));
    assert_eq!(app.balance("alice").await, "0");
    assert_eq!(app.balance("bob").await, "60");

    // All of a purchase gifted: nothing is left to refund.
    let second = buy(&app, "alice", Some("50"), None, "pay-2").await;
    gift_ok(&app, "alice", "bob", "50", "r-2").await;
    let nothing = app.gql(&app.service, REFUND, json!({ "id": second, "k": "refund-2" })).await;
    assert_eq!(error_code(&nothing), "REFUND_NOT_ALLOWED", "{nothing}");
    // The gifted credits are nobody's purchase: bob buys nothing, so he has nothing to refund,
    // and his GIFT lots are spent like any paid credits.
    assert_eq!(app.balance("bob").await, "110");
    let spent = app.spend("bob", "110", "spend-1").await;
    assert!(spent["errors"].is_null(), "{spent}");
    app.assert_audit_clean().await;
}

async fn gifts_both_ways_at_once_never_deadlock_and_keep_sums_exact(backend: Backend) {
    let app = TestApp::spawn_with(backend, PROGRAM).await;
    for name in ["alice", "bob"] {
        app.create_account(name).await;
    }
    grant_paid(&app, "alice", "100", None, "g").await;
    grant_paid(&app, "bob", "100", None, "g").await;
    // 16 gifts each way at once, each of 1.5 (the day's count is 5: the rest are refused, and
    // the sums must still be exact).
    let mut tasks = Vec::new();
    for n in 0..16 {
        for (from, to) in [("alice", "bob"), ("bob", "alice")] {
            let (client, address, token) = (app.client.clone(), app.address.clone(), app.service.clone());
            let key = format!("c-{from}-{n}");
            tasks.push(tokio::spawn(async move {
                crate::support::gql_at(&client, &address, &token, GIFT, json!({ "f": from, "t": to, "a": "1.5", "k": key })).await
            }));
        }
    }
    let mut made = std::collections::BTreeMap::<String, u32>::new();
    for task in tasks {
        let r = task.await.unwrap();
        if r["errors"].is_null() {
            *made.entry(r["data"]["giftCredits"]["fromAccount"].as_str().unwrap().to_string()).or_default() += 1;
        } else {
            assert_eq!(error_code(&r), "DAILY_LIMIT_REACHED", "{r}");
        }
    }
    assert_eq!(made.get("alice"), Some(&5), "{made:?}");
    assert_eq!(made.get("bob"), Some(&5), "{made:?}");
    // Each gave 7.5 and received 7.5.
    assert_eq!(app.balance("alice").await, "100");
    assert_eq!(app.balance("bob").await, "100");
    app.assert_audit_clean().await;
}

async fn off_unless_the_program_says_so(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for name in ["alice", "bob"] {
        app.create_account(name).await;
    }
    let r = gift(&app, &app.service, Some("alice"), "bob", "1", "off-1").await;
    assert_eq!(error_code(&r), "FEATURE_DISABLED", "{r}");
}

on_both!(
    moves_exact_amounts_keeping_each_lots_expiry,
    keyed_replays_conflicts_and_input_refusals,
    the_day_limits_hold_and_reset_at_utc_midnight,
    suspended_accounts_are_refused_on_either_side,
    both_histories_show_the_other_side,
    a_refund_after_a_gift_mints_nothing,
    gifts_both_ways_at_once_never_deadlock_and_keep_sums_exact,
    off_unless_the_program_says_so,
);
