//! Money rules where two features meet (issue 16): each test is named for the rule it holds.
//! The books balance in every one of these cases even when the rule is broken, so each checks
//! the rule itself, then the audit.

use crate::on_both;
use crate::support::{Backend, TestApp, buy, error_code};
use chrono::Duration;
use serde_json::{Value, json};

const REFUND: &str = "mutation($id: ID!, $k: String!) {
    refundPurchase(input: {purchaseId: $id, idempotencyKey: $k}) { refunded { amountMinor } credits revoked } }";
const RESERVE: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!, $s: Int) {
    reserveCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"video\", holdSeconds: $s}) {
      reservationId availableAfter takes { lotId amount } } }";
const CAPTURE: &str = "mutation($r: ID!, $amt: CreditAmount!, $k: String!) {
    captureReservation(input: {reservationId: $r, amount: $amt, idempotencyKey: $k}) { status captured released } }";
const RELEASE: &str = "mutation($r: ID!, $k: String!) {
    releaseReservation(input: {reservationId: $r, idempotencyKey: $k}) { status captured released } }";
const BALANCE: &str = "query($a: ID!) { account(id: $a) { balance { total held available bars { source remaining held waiting } } } }";

async fn reserve(app: &TestApp, account: &str, amount: &str, key: &str, hold_seconds: Option<i64>) -> Value {
    app.gql(&app.service, RESERVE, json!({ "a": account, "amt": amount, "k": key, "s": hold_seconds })).await
}

async fn balance(app: &TestApp, account: &str) -> Value {
    let r = app.gql(&app.service, BALANCE, json!({ "a": account })).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["account"]["balance"].clone()
}

fn totals(balance: &Value) -> (&str, &str, &str) {
    (balance["total"].as_str().unwrap(), balance["held"].as_str().unwrap(), balance["available"].as_str().unwrap())
}

/// domain.md §5: the bonus of a refunded purchase is taken back whole, wherever it is; a hold
/// holding some of it shrinks, and releasing the hold later gives back only what was not bonus.
async fn a_refund_takes_back_the_bonus_a_reservation_holds(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("buyer").await;
    // 50 monthly free credits, then 100 bought with a 30 bonus.
    let purchase = buy(&app, "buyer", Some("100"), None, "pay-1").await;
    assert_eq!(totals(&balance(&app, "buyer").await), ("180", "0", "180"));
    // The hold takes the 50 free and the 30 bonus credits: the program's order.
    let held = reserve(&app, "buyer", "80", "r-1", Some(3600)).await;
    let reservation = held["data"]["reserveCredits"]["reservationId"].clone();
    assert_eq!(held["data"]["reserveCredits"]["availableAfter"], json!("100"), "{held}");

    let refunded = app.gql(&app.user("buyer"), REFUND, json!({ "id": purchase, "k": "refund-1" })).await;
    assert_eq!(
        refunded["data"]["refundPurchase"],
        json!({ "refunded": { "amountMinor": 200 }, "credits": "100", "revoked": "30" }),
        "{refunded}"
    );
    // The hold shrank by the bonus it held: 50 held, nothing else left.
    let after = balance(&app, "buyer").await;
    assert_eq!(totals(&after), ("50", "50", "0"), "{after}");
    let too_much = app.gql(&app.service, CAPTURE, json!({ "r": reservation, "amt": "60", "k": "c-1" })).await;
    assert_eq!(error_code(&too_much), "BAD_USER_INPUT", "a capture takes at most what is left: {too_much}");
    let released = app.gql(&app.service, RELEASE, json!({ "r": reservation, "k": "rel-1" })).await;
    assert_eq!(released["data"]["releaseReservation"]["released"], json!("50"), "{released}");
    assert_eq!(totals(&balance(&app, "buyer").await), ("50", "0", "50"), "the bonus never comes back");
    app.assert_audit_clean().await;
}

/// domain.md §5, the worked example: buy 100 for $2.00 with a 30 bonus; spend 40 (30 bonus, 10
/// bought); the refund takes the spent 30 out of the 90 unused: 120 cents back, 90 credits out.
async fn a_refund_takes_a_spent_bonus_out_of_the_unused_credits_first(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("buyer").await;
    assert!(app.spend("buyer", "50", "s-free").await["errors"].is_null(), "the 50 free credits go first");
    let purchase = buy(&app, "buyer", Some("100"), None, "pay-1").await;
    assert!(app.spend("buyer", "40", "s-1").await["errors"].is_null());
    let refunded = app.gql(&app.user("buyer"), REFUND, json!({ "id": purchase, "k": "refund-1" })).await;
    assert_eq!(
        refunded["data"]["refundPurchase"],
        json!({ "refunded": { "amountMinor": 120 }, "credits": "60", "revoked": "30" }),
        "{refunded}"
    );
    assert_eq!(app.balance("buyer").await, "0");

    // Not enough unused credits: the rest of the spent bonus comes from the account's others.
    app.create_account("second").await;
    assert!(app.spend("second", "50", "s-free").await["errors"].is_null());
    let purchase = buy(&app, "second", Some("100"), None, "pay-2").await;
    app.grant("second", "40", "PAID", None, "g-1").await;
    // Promotional first: 30 bonus, then 90 bought (the purchase's lot is older than the grant).
    assert!(app.spend("second", "120", "s-1").await["errors"].is_null());
    let refunded = app.gql(&app.user("second"), REFUND, json!({ "id": purchase, "k": "refund-1" })).await;
    // 10 unused bought credits make up 10 of the 30; nothing is left to refund.
    assert_eq!(error_code(&refunded), "REFUND_NOT_ALLOWED", "{refunded}");
    assert_eq!(app.balance("second").await, "50", "a refused refund changes nothing");
    app.assert_audit_clean().await;
}

/// The refund is refused when the balance (held credits included) is below the bonus received.
async fn a_refund_needs_a_total_balance_of_at_least_the_bonus(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("buyer").await;
    let purchase = buy(&app, "buyer", Some("100"), None, "pay-1").await;
    // 50 free, 30 bonus, 80 bought spent; 20 left, 10 of them held: total 20 < 30.
    assert!(app.spend("buyer", "160", "s-1").await["errors"].is_null());
    assert!(reserve(&app, "buyer", "10", "r-1", None).await["errors"].is_null());
    let refused = app.gql(&app.user("buyer"), REFUND, json!({ "id": purchase, "k": "refund-1" })).await;
    assert_eq!(error_code(&refused), "REFUND_NOT_ALLOWED", "{refused}");
    assert_eq!(totals(&balance(&app, "buyer").await), ("20", "10", "10"));
    app.assert_audit_clean().await;
}

/// domain.md §5: a hold's deadline is exact, like a lot's expiry. Past it nothing is held, a
/// capture is refused, and a spend takes the credits, whether or not the worker has run.
async fn a_hold_past_its_deadline_holds_nothing_before_the_worker_runs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    app.grant("a", "100", "PAID", None, "g-1").await;
    let held = reserve(&app, "a", "60", "r-1", Some(1)).await;
    let reservation = held["data"]["reserveCredits"]["reservationId"].clone();
    assert_eq!(totals(&balance(&app, "a").await), ("100", "60", "40"));
    app.clock.set(app.clock.now() + Duration::seconds(1));
    let after = balance(&app, "a").await;
    assert_eq!(totals(&after), ("100", "0", "100"), "at the deadline the credits are available again: {after}");
    let late = app.gql(&app.service, CAPTURE, json!({ "r": reservation, "amt": "10", "k": "c-1" })).await;
    assert_eq!(error_code(&late), "RESERVATION_NOT_HELD", "{late}");
    assert_eq!(
        error_code(&app.gql(&app.service, CAPTURE, json!({ "r": reservation, "amt": "10", "k": "c-1" })).await),
        "RESERVATION_NOT_HELD"
    );

    // A second lapsed hold: the spend that needs its credits releases it in its own transaction.
    let second = reserve(&app, "a", "70", "r-2", Some(1)).await;
    assert!(second["errors"].is_null(), "{second}");
    app.clock.set(app.clock.now() + Duration::seconds(2));
    let spent = app.spend("a", "100", "s-1").await;
    assert_eq!(spent["data"]["spendCredits"]["availableAfter"], json!("0"), "{spent}");
    assert_eq!(totals(&balance(&app, "a").await), ("0", "0", "0"));
    let account = app.ledger.account("a").await.unwrap();
    let rows = credits::store::reservations::lapsed(&app.ledger.db, &[account.id], app.clock.now()).await.unwrap();
    assert!(rows.is_empty(), "both lapsed holds are released");
    app.assert_audit_clean().await;
}

/// domain.md §4 (carat): the day's free credits are the last tier of one all-or-nothing spend.
async fn carat_takes_the_days_free_credits_last_to_complete_a_short_spend(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    app.create_account("fan").await;
    app.grant("fan", "20", "PROMOTIONAL", Some(app.clock.now() + Duration::days(3)), "g-1").await;
    let before = balance(&app, "fan").await;
    assert_eq!(totals(&before), ("120", "0", "120"), "{before}");
    let waiting = before["bars"].as_array().unwrap().iter().find(|b| b["source"] == json!("DAILY_FREE")).cloned().unwrap();
    assert_eq!(waiting["waiting"], json!(true), "shown as waiting while others are left: {before}");
    let spent = app.spend("fan", "30", "s-1").await;
    assert_eq!(spent["data"]["spendCredits"]["availableAfter"], json!("90"), "{spent}");
    let takes = spent["data"]["spendCredits"]["takes"].as_array().unwrap().clone();
    assert_eq!(takes.iter().map(|t| t["amount"].as_str().unwrap()).collect::<Vec<_>>(), ["20", "10"], "promotional, then free");
    let after = balance(&app, "fan").await;
    assert_eq!(totals(&after), ("90", "0", "90"));
    assert_eq!(after["bars"], json!([{ "source": "DAILY_FREE", "remaining": "90", "held": "0", "waiting": false }]));
    // All of them together short: refused, with what a spend could take now.
    let short = app.spend("fan", "91", "s-2").await;
    assert_eq!(error_code(&short), "INSUFFICIENT_CREDITS");
    assert_eq!(short["errors"][0]["extensions"]["available"], json!("90"), "{short}");
    // A hold follows the same order.
    app.grant("fan", "5", "PAID", None, "g-2").await;
    let held = reserve(&app, "fan", "10", "r-1", None).await;
    let takes = held["data"]["reserveCredits"]["takes"].as_array().unwrap().clone();
    assert_eq!(takes.iter().map(|t| t["amount"].as_str().unwrap()).collect::<Vec<_>>(), ["5", "5"], "{held}");
    app.assert_audit_clean().await;
}

/// Seed 003: "Identity Verification — Required for spending credits", on every way to spend;
/// checked before the idempotency key and never stored.
async fn archipelag_refuses_every_spend_of_an_unverified_account(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    app.create_account("islander").await;
    assert_eq!(error_code(&app.spend("islander", "10", "s-1").await), "IDENTITY_NOT_VERIFIED");
    assert_eq!(error_code(&reserve(&app, "islander", "10", "r-1", None).await), "IDENTITY_NOT_VERIFIED");
    assert_eq!(app.balance("islander").await, "10000", "nothing changed");
    app.ledger.set_identity_verified("islander", true).await.unwrap();
    // Not stored: the same keys now go through.
    assert!(app.spend("islander", "10", "s-1").await["errors"].is_null());
    assert!(reserve(&app, "islander", "10", "r-1", None).await["errors"].is_null());
    assert_eq!(totals(&balance(&app, "islander").await), ("9990", "10", "9980"));
    app.assert_audit_clean().await;
}

/// domain.md, amounts and limits: an account holds at most 10^12 credits, held included; an
/// operation that would pass it is refused and changes nothing.
async fn a_grant_past_the_balance_limit_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("whale").await;
    let now = app.clock.now();
    // 1,000 grants of the largest amount one operation moves: exactly the limit.
    for i in 0..1000 {
        let request = credits::service::spending::GrantRequest {
            account: "whale".into(),
            amount: credits::ledger::Credits::from_whole(1_000_000_000),
            class: credits::ledger::LotClass::Paid,
            source: credits::ledger::LotSource::Adjustment,
            expires_at: None,
            valid_for: None,
            reason: None,
            priority: None,
            effective_at: None,
            features: None,
            idempotency_key: format!("g-{i}"),
            actor: None,
            metadata: None,
        };
        app.ledger.grant(request, now).await.unwrap();
    }
    assert_eq!(app.balance("whale").await, "1000000000000");
    let over = app.grant("whale", "0.000001", "PAID", None, "g-over").await;
    assert_eq!(error_code(&over), "BALANCE_LIMIT_EXCEEDED", "{over}");
    // Held credits count: a hold, then a grant that would pass the limit with them.
    assert!(reserve(&app, "whale", "5", "r-1", None).await["errors"].is_null());
    assert_eq!(error_code(&app.grant("whale", "1", "PAID", None, "g-over-2").await), "BALANCE_LIMIT_EXCEEDED");
    assert!(app.spend("whale", "5", "s-1").await["errors"].is_null());
    assert!(app.grant("whale", "5", "PAID", None, "g-over-2").await["errors"].is_null(), "not stored: the same key, once under the limit");
    let report = credits::audit::run(&app.ledger.db, app.clock.now()).await.unwrap();
    assert!(report.is_clean(), "{report}");
}

/// The audit's sums over the whole database never overflow, whatever the database holds.
async fn the_audit_sums_past_the_range_of_an_i64(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    use sea_orm::ConnectionTrait;
    let db = &app.ledger.db;
    db.execute_unprepared("CREATE TABLE wide_sum_probe (id BIGINT, amount_micros BIGINT)").await.unwrap();
    db.execute_unprepared("INSERT INTO wide_sum_probe VALUES (1, 9000000000000000000), (2, 9000000000000000000), (3, -5), (4, 7)")
        .await
        .unwrap();
    let sum = credits::audit::wide_sum(db, "amount_micros", "wide_sum_probe").await.unwrap();
    assert_eq!(sum, 18_000_000_000_000_000_002i128);
    let negative = credits::audit::wide_sum(db, "-amount_micros", "wide_sum_probe").await.unwrap();
    assert_eq!(negative, -18_000_000_000_000_000_002i128);
}

/// api.md: the product's backend refunds on a user's behalf, within the user's window only.
async fn the_service_refunds_on_a_users_behalf_within_the_users_window(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("buyer").await;
    let first = buy(&app, "buyer", Some("100"), None, "pay-1").await;
    let second = buy(&app, "buyer", Some("60"), None, "pay-2").await;
    let refunded = app.gql(&app.service, REFUND, json!({ "id": second, "k": "refund-1" })).await;
    assert_eq!(refunded["data"]["refundPurchase"]["refunded"], json!({ "amountMinor": 120 }), "{refunded}");
    app.clock.set(app.clock.now() + Duration::days(7));
    let late = app.gql(&app.service, REFUND, json!({ "id": first, "k": "refund-2" })).await;
    assert_eq!(error_code(&late), "REFUND_NOT_ALLOWED", "the operator's longer window is the admin's: {late}");
    app.assert_audit_clean().await;
}

/// A purchase history lists what was bought; never-paid purchases only when asked for.
async fn a_purchase_history_leaves_out_purchases_never_paid(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("buyer").await;
    buy(&app, "buyer", Some("100"), None, "pay-1").await;
    let pending = app
        .gql(
            &app.service,
            "mutation { purchaseCredits(input: {accountId: \"buyer\", credits: \"70\", idempotencyKey: \"p-2\"}) { id } }",
            json!({}),
        )
        .await;
    assert!(pending["errors"].is_null(), "{pending}");
    let list = |all: bool| {
        let app = &app;
        async move {
            let r = app
                .gql(
                    &app.service,
                    "query($p: Boolean!) { account(id: \"buyer\") { purchases(includePending: $p) { edges { node { credits status } } } } }",
                    json!({ "p": all }),
                )
                .await;
            r["data"]["account"]["purchases"]["edges"].clone()
        }
    };
    assert_eq!(list(false).await, json!([{ "node": { "credits": "100", "status": "PAID" } }]));
    assert_eq!(
        list(true).await,
        json!([{ "node": { "credits": "70", "status": "PENDING" } }, { "node": { "credits": "100", "status": "PAID" } }])
    );
}

/// A spend answered `TIMEOUT` must not be said to have changed nothing when it did: one still
/// waiting for its batch when its caller left is cancelled; one already inside a batch commits,
/// and a retry with its key returns that outcome.
async fn a_timed_out_spend_is_cancelled_unless_its_batch_had_started(backend: Backend) {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let security = credits::app::Security {
        request_timeout: std::time::Duration::from_millis(1000),
        claims_per_minute_per_account: 100_000,
        claims_per_minute_per_ip: 100_000,
        ..Default::default()
    };
    let app = TestApp::spawn_secured(crate::support::TestDb::new(backend).await, backend, crate::support::LEDGER_PROGRAM, security).await;
    app.create_account("a").await;
    app.grant("a", "100", "PAID", None, "g-1").await;
    // A second connection holds the account's write lock, so the first spend's batch waits on it.
    let blocker = credits::db::connect(&app.db.url, 1).await.unwrap();
    let lock = blocker
        .begin_with_options(sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
        .unwrap();
    lock.execute_unprepared("UPDATE accounts SET balance_micros = balance_micros WHERE external_id = 'a'").await.unwrap();
    let before = app.ledger.spends.stats();
    let send = |amount: &'static str, key: &'static str| {
        let (client, address, token) = (app.client.clone(), app.address.clone(), app.service.clone());
        let query = "mutation($amt: CreditAmount!, $k: String!) { spendCredits(input: {accountId: \"a\", amount: $amt, idempotencyKey: $k, feature: \"chat\"}) { sequence } }";
        tokio::spawn(async move { crate::support::gql_at(&client, &address, &token, query, json!({ "amt": amount, "k": key })).await })
    };
    let in_batch = send("10", "in-batch");
    for _ in 0..500 {
        if app.ledger.spends.stats().spends > before.spends {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(app.ledger.spends.stats().spends, before.spends + 1, "the first spend is in a batch, waiting on the lock");
    let queued = send("20", "queued");
    for _ in 0..500 {
        if app.ledger.spends.waiting() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(app.ledger.spends.waiting(), 1, "the second waits behind the first batch");
    for answer in [in_batch.await.unwrap(), queued.await.unwrap()] {
        assert_eq!(error_code(&answer), "TIMEOUT", "{answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("may or may not have completed") && !message.contains("nothing changed"), "{message}");
    }
    lock.commit().await.unwrap();
    for _ in 0..500 {
        if app.balance("a").await == "90" && app.ledger.spends.waiting() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.balance("a").await, "90", "the batch that had started committed; the waiting spend was cancelled");
    assert_eq!(app.ledger.spends.stats().spends, before.spends + 1, "the cancelled spend never reached a batch");
    // Retries with the same keys: the first outcome, and a fresh run of the cancelled one.
    assert!(app.spend("a", "10", "in-batch").await["errors"].is_null());
    assert_eq!(app.balance("a").await, "90", "a replay charges nothing");
    assert!(app.spend("a", "20", "queued").await["errors"].is_null());
    assert_eq!(app.balance("a").await, "70");
    app.assert_audit_clean().await;
}

on_both!(
    a_timed_out_spend_is_cancelled_unless_its_batch_had_started,
    a_refund_takes_back_the_bonus_a_reservation_holds,
    a_refund_takes_a_spent_bonus_out_of_the_unused_credits_first,
    a_refund_needs_a_total_balance_of_at_least_the_bonus,
    a_hold_past_its_deadline_holds_nothing_before_the_worker_runs,
    carat_takes_the_days_free_credits_last_to_complete_a_short_spend,
    archipelag_refuses_every_spend_of_an_unverified_account,
    a_grant_past_the_balance_limit_is_refused_and_changes_nothing,
    the_audit_sums_past_the_range_of_an_i64,
    the_service_refunds_on_a_users_behalf_within_the_users_window,
    a_purchase_history_leaves_out_purchases_never_paid
);
