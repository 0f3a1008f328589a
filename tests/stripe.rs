//! Stripe through the real endpoints (issue 27): events shaped as Stripe's API reference shows
//! them, signed with a test secret as Stripe signs them, posted to `/webhooks/stripe`; and the
//! outbound calls (Checkout Sessions, refunds) made to a local fake of Stripe's API that answers
//! in Stripe's shapes and honours its idempotency keys.

use crate::on_both;
use crate::support::{Backend, TestApp, buy, error_code};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use credits::stripe::StripeSettings;
use credits::stripe::client::StripeClient;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const PROGRAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stripe.toml");
const WHSEC: &str = "whsec_test_0123456789abcdef";
const PURCHASE: &str = "mutation($a: ID!, $c: CreditAmount, $k: String!) {
    purchaseCredits(input: {accountId: $a, credits: $c, idempotencyKey: $k}) { id status checkoutUrl amount { amountMinor currency } } }";
const REFUND: &str = "mutation($id: ID!, $k: String!) {
    refundPurchase(input: {purchaseId: $id, idempotencyKey: $k}) { purchase { status } refunded { amountMinor } credits } }";

fn settings(client: Option<StripeClient>) -> StripeSettings {
    StripeSettings { webhook_secrets: vec![WHSEC.to_string()], tolerance: credits::stripe::DEFAULT_TOLERANCE, client: client.map(Arc::new) }
}

/// An event as Stripe sends it.
fn event(id: &str, kind: &str, object: Value) -> String {
    json!({
        "id": id, "object": "event", "api_version": "2024-06-20", "created": chrono::Utc::now().timestamp(),
        "livemode": false, "pending_webhooks": 1, "request": { "id": null, "idempotency_key": null },
        "type": kind, "data": { "object": object }
    })
    .to_string()
}

fn session(purchase: &str, payment_intent: &str, amount: i64, status: &str) -> Value {
    json!({
        "id": format!("cs_test_{purchase}"), "object": "checkout.session", "mode": "payment", "status": "complete",
        "payment_status": status, "payment_intent": payment_intent, "amount_total": amount, "currency": "usd",
        "client_reference_id": purchase, "metadata": { "purchase_id": purchase }
    })
}

fn intent(purchase: &str, id: &str, amount: i64, flow: Option<&str>) -> Value {
    let mut metadata = json!({ "purchase_id": purchase });
    if let Some(flow) = flow {
        metadata["credits_flow"] = json!(flow);
    }
    json!({
        "id": id, "object": "payment_intent", "amount": amount, "amount_received": amount, "currency": "usd",
        "status": "succeeded", "metadata": metadata,
        "last_payment_error": { "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds." }
    })
}

fn charge(payment_intent: &str, amount: i64, refunded: i64, refund_ids: &[&str]) -> Value {
    let refunds: Vec<Value> = refund_ids.iter().map(|id| json!({ "id": id, "object": "refund" })).collect();
    json!({
        "id": format!("ch_{payment_intent}"), "object": "charge", "amount": amount, "amount_refunded": refunded,
        "currency": "usd", "payment_intent": payment_intent, "refunded": refunded == amount, "paid": true,
        "refunds": { "object": "list", "data": refunds, "has_more": false }
    })
}

/// Posts `body` signed with `secret` now; the status and the body's `status`.
async fn deliver_signed(app: &TestApp, body: &str, secret: &str) -> (StatusCode, String) {
    let header = credits::stripe::signature::sign(body.as_bytes(), secret, chrono::Utc::now().timestamp());
    deliver_with(app, body, Some(&header)).await
}

async fn deliver_with(app: &TestApp, body: &str, header: Option<&str>) -> (StatusCode, String) {
    let mut request = app.client.post(format!("{}/webhooks/stripe", app.address)).body(body.to_string());
    if let Some(header) = header {
        request = request.header("Stripe-Signature", header);
    }
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let json: Value = response.json().await.unwrap();
    (status, json["status"].as_str().unwrap_or_default().to_string())
}

async fn deliver(app: &TestApp, body: &str) -> String {
    let (status, outcome) = deliver_signed(app, body, WHSEC).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    outcome
}

async fn purchase(app: &TestApp, account: &str, credits: &str, key: &str) -> Value {
    app.gql(&app.service, PURCHASE, json!({ "a": account, "c": credits, "k": key })).await
}

async fn purchase_status(app: &TestApp, id: &str) -> Value {
    let fields = "id status checkoutUrl paymentReference failedPaymentReference refundedAmount { amountMinor }";
    let query =
        format!("{{ account(id: \"payer\") {{ purchases(first: 100, includePending: true) {{ edges {{ node {{ {fields} }} }} }} }} }}");
    let r = app.gql(&app.service, &query, json!({})).await;
    let edges = r["data"]["account"]["purchases"]["edges"].as_array().unwrap_or_else(|| panic!("{r}")).clone();
    edges.into_iter().map(|e| e["node"].clone()).find(|n| n["id"] == json!(id)).unwrap_or_else(|| panic!("no purchase {id}: {r}"))
}

async fn outbox_topics(app: &TestApp) -> Vec<String> {
    use sea_orm::EntityTrait;
    let rows = credits::entity::outbox::Entity::find().all(&app.ledger.db).await.unwrap();
    rows.into_iter().map(|r| r.topic).collect()
}

async fn payments_confirm_once_whichever_event_comes_first(backend: Backend) {
    let app = TestApp::spawn_with_stripe(backend, PROGRAM, settings(None)).await;
    app.create_account("payer").await;
    // 100 credits at 2 cents.
    let made = purchase(&app, "payer", "100", "buy-1").await;
    let id = made["data"]["purchaseCredits"]["id"].as_str().unwrap().to_string();
    assert_eq!(made["data"]["purchaseCredits"]["amount"]["amountMinor"], json!(200), "{made}");

    // Checkout completed but a delayed method is not paid yet: nothing happens.
    let unpaid = event("evt_unpaid", "checkout.session.completed", session(&id, "pi_A", 200, "unpaid"));
    assert_eq!(deliver(&app, &unpaid).await, "ignored");
    assert_eq!(app.balance("payer").await, "0");

    // The three events of one payment, all at once: one confirmation.
    let events = [
        event("evt_1", "checkout.session.completed", session(&id, "pi_A", 200, "paid")),
        event("evt_2", "checkout.session.async_payment_succeeded", session(&id, "pi_A", 200, "paid")),
        event("evt_3", "payment_intent.succeeded", intent(&id, "pi_A", 200, Some("checkout"))),
    ];
    let outcomes = futures_util::future::join_all(events.iter().map(|e| deliver(&app, e))).await;
    assert_eq!(outcomes.iter().filter(|o| *o == "confirmed").count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o == "confirmed" || o == "already_applied"), "{outcomes:?}");
    assert_eq!(app.balance("payer").await, "100");
    let paid = purchase_status(&app, &id).await;
    assert_eq!(paid["status"], json!("PAID"));
    assert_eq!(paid["paymentReference"], json!("pi_A"));

    // Redelivered: nothing twice.
    assert_eq!(deliver(&app, &events[0]).await, "duplicate");
    assert_eq!(app.balance("payer").await, "100");

    // Unknown types, and payments that are not ours, are acknowledged and ignored.
    assert_eq!(deliver(&app, &event("evt_4", "customer.created", json!({ "id": "cus_1", "object": "customer" }))).await, "ignored");
    let foreign = json!({ "id": "pi_other", "object": "payment_intent", "amount": 5, "currency": "usd", "metadata": {} });
    assert_eq!(deliver(&app, &event("evt_5", "payment_intent.succeeded", foreign)).await, "ignored");
    app.assert_audit_clean().await;
}

async fn bad_signatures_are_refused_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn_with_stripe(backend, PROGRAM, settings(None)).await;
    app.create_account("payer").await;
    let made = purchase(&app, "payer", "100", "buy-1").await;
    let id = made["data"]["purchaseCredits"]["id"].as_str().unwrap().to_string();
    let body = event("evt_1", "payment_intent.succeeded", intent(&id, "pi_A", 200, None));

    assert_eq!(deliver_signed(&app, &body, "whsec_wrong").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(deliver_with(&app, &body, None).await.0, StatusCode::BAD_REQUEST);
    // Signed long ago: a replayed capture.
    let old = credits::stripe::signature::sign(body.as_bytes(), WHSEC, chrono::Utc::now().timestamp() - 3600);
    assert_eq!(deliver_with(&app, &body, Some(&old)).await.0, StatusCode::BAD_REQUEST);
    // The body changed after signing.
    let header = credits::stripe::signature::sign(body.as_bytes(), WHSEC, chrono::Utc::now().timestamp());
    assert_eq!(deliver_with(&app, &body.replace("pi_A", "pi_B"), Some(&header)).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.balance("payer").await, "0");
    assert_eq!(purchase_status(&app, &id).await["status"], json!("PENDING"));

    // The same event, signed right, goes through: the refusals recorded nothing under its id.
    assert_eq!(deliver(&app, &body).await, "confirmed");
    assert_eq!(app.balance("payer").await, "100");

    // Without a secret configured, the endpoint is off.
    let off = TestApp::spawn(backend).await;
    assert_eq!(deliver_signed(&off, &body, WHSEC).await.0, StatusCode::SERVICE_UNAVAILABLE);
}

async fn failures_end_a_purchase_but_not_an_open_checkout(backend: Backend) {
    let app = TestApp::spawn_with_stripe(backend, PROGRAM, settings(None)).await;
    app.create_account("payer").await;
    let made = purchase(&app, "payer", "100", "buy-1").await;
    let id = made["data"]["purchaseCredits"]["id"].as_str().unwrap().to_string();

    // A declined card on our Checkout page: the page stays open for another card.
    let declined = event("evt_1", "payment_intent.payment_failed", intent(&id, "pi_A", 200, Some("checkout")));
    assert_eq!(deliver(&app, &declined).await, "noted");
    assert_eq!(purchase_status(&app, &id).await["status"], json!("PENDING"));
    // The second card goes through.
    assert_eq!(deliver(&app, &event("evt_2", "payment_intent.succeeded", intent(&id, "pi_A", 200, Some("checkout")))).await, "confirmed");

    // A payment the product started itself (no Checkout) fails its purchase.
    let other = purchase(&app, "payer", "50", "buy-2").await;
    let other = other["data"]["purchaseCredits"]["id"].as_str().unwrap().to_string();
    let failed = event("evt_3", "payment_intent.payment_failed", intent(&other, "pi_B", 100, None));
    assert_eq!(deliver(&app, &failed).await, "failed");
    let status = purchase_status(&app, &other).await;
    assert_eq!(status["status"], json!("FAILED"), "{status}");
    assert_eq!(status["failedPaymentReference"], json!("pi_B"));
    assert_eq!(deliver(&app, &failed).await, "duplicate");
    // A delayed method that failed after Checkout completed fails it too.
    let third = purchase(&app, "payer", "50", "buy-3").await;
    let third = third["data"]["purchaseCredits"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        deliver(&app, &event("evt_4", "checkout.session.async_payment_failed", session(&third, "pi_C", 100, "unpaid"))).await,
        "failed"
    );
    assert_eq!(purchase_status(&app, &third).await["status"], json!("FAILED"));
    assert!(outbox_topics(&app).await.iter().filter(|t| *t == "purchase.failed").count() == 2);
}

async fn what_the_rules_refuse_is_announced_to_the_operator_once(backend: Backend) {
    let app = TestApp::spawn_with_stripe(backend, PROGRAM, settings(None)).await;
    app.create_account("payer").await;
    let made = purchase(&app, "payer", "100", "buy-1").await;
    let id = made["data"]["purchaseCredits"]["id"].as_str().unwrap().to_string();

    // Paid less than the price.
    let short = event("evt_1", "payment_intent.succeeded", intent(&id, "pi_A", 150, None));
    assert_eq!(deliver(&app, &short).await, "needs_attention");
    assert_eq!(deliver(&app, &short).await, "duplicate");
    assert_eq!(app.balance("payer").await, "0");
    // Paid for a purchase that was cancelled in the meantime.
    let cancelled = purchase(&app, "payer", "50", "buy-2").await;
    let cancelled = cancelled["data"]["purchaseCredits"]["id"].as_str().unwrap().to_string();
    let r = app
        .gql(
            &app.service,
            "mutation($id: ID!) { cancelPurchase(input: {purchaseId: $id, idempotencyKey: \"c-1\"}) { status } }",
            json!({ "id": cancelled }),
        )
        .await;
    assert_eq!(r["data"]["cancelPurchase"]["status"], json!("CANCELLED"), "{r}");
    assert_eq!(deliver(&app, &event("evt_2", "payment_intent.succeeded", intent(&cancelled, "pi_B", 100, None))).await, "needs_attention");
    // A purchase id that does not exist.
    assert_eq!(deliver(&app, &event("evt_3", "payment_intent.succeeded", intent("999999", "pi_C", 100, None))).await, "needs_attention");

    let attention = outbox_topics(&app).await.into_iter().filter(|t| t == "purchase.needs_attention").count();
    assert_eq!(attention, 3);
    app.assert_audit_clean().await;
}

async fn dashboard_refunds_follow_the_rules_and_ours_are_known(backend: Backend) {
    let app = TestApp::spawn_with_stripe(backend, PROGRAM, settings(None)).await;
    app.create_account("payer").await;
    let made = purchase(&app, "payer", "100", "buy-1").await;
    let id = made["data"]["purchaseCredits"]["id"].as_str().unwrap().to_string();
    assert_eq!(deliver(&app, &event("evt_1", "payment_intent.succeeded", intent(&id, "pi_A", 200, None))).await, "confirmed");

    // 50 cents of 200 refunded in the dashboard: a quarter of the credits goes.
    assert_eq!(deliver(&app, &event("evt_2", "charge.refunded", charge("pi_A", 200, 50, &["re_dash1"]))).await, "refund_applied");
    assert_eq!(app.balance("payer").await, "75");
    assert_eq!(deliver(&app, &event("evt_2", "charge.refunded", charge("pi_A", 200, 50, &["re_dash1"]))).await, "duplicate");
    // Another event about the same total (refund.updated's charge, say) finds it applied.
    assert_eq!(deliver(&app, &event("evt_3", "charge.refunded", charge("pi_A", 200, 50, &["re_dash1"]))).await, "refund_known");
    assert_eq!(app.balance("payer").await, "75");

    // The user spends 50; a refund of the rest of the money stands for 75 credits: refused by
    // the rules, announced.
    assert!(app.spend("payer", "50", "s-1").await["errors"].is_null());
    assert_eq!(
        deliver(&app, &event("evt_4", "charge.refunded", charge("pi_A", 200, 200, &["re_dash1", "re_dash2"]))).await,
        "needs_attention"
    );
    assert_eq!(app.balance("payer").await, "25");
    let status = purchase_status(&app, &id).await;
    assert_eq!(status["refundedAmount"]["amountMinor"], json!(50), "{status}");
    assert!(outbox_topics(&app).await.contains(&"purchase.needs_attention".to_string()));

    // A refund we asked for (the product's backend confirmed this purchase itself with a
    // PaymentIntent reference): the ledger holds it before Stripe's event comes.
    let second = buy(&app, "payer", Some("50"), None, "pi_B").await;
    let refunded = app.gql(&app.service, REFUND, json!({ "id": second, "k": "r-1" })).await;
    assert_eq!(refunded["data"]["refundPurchase"]["refunded"]["amountMinor"], json!(100), "{refunded}");
    let balance = app.balance("payer").await;
    assert_eq!(deliver(&app, &event("evt_5", "charge.refunded", charge("pi_B", 100, 100, &["re_ours"]))).await, "refund_known");
    assert_eq!(app.balance("payer").await, balance);
    app.assert_audit_clean().await;
}

/// A fake of the two Stripe endpoints the client calls, in Stripe's shapes: the first answer
/// under an idempotency key is the answer to every repeat, as Stripe's are.
/// A call the fake received: the path, the form, the idempotency key.
type Call = (String, HashMap<String, String>, String);

#[derive(Clone, Default)]
struct FakeStripe {
    calls: Arc<Mutex<Vec<Call>>>,
    answers: Arc<Mutex<HashMap<String, Value>>>,
    down: Arc<AtomicBool>,
}

async fn fake_sessions(State(fake): State<FakeStripe>, headers: HeaderMap, body: String) -> (StatusCode, axum::Json<Value>) {
    fake.answer("/v1/checkout/sessions", &headers, &body, |form, n| {
        json!({ "id": format!("cs_test_{n}"), "object": "checkout.session", "mode": "payment", "status": "open",
            "payment_status": "unpaid", "amount_total": form["line_items[0][price_data][unit_amount]"].parse::<i64>().unwrap(),
            "currency": form["line_items[0][price_data][currency]"], "metadata": { "purchase_id": form["metadata[purchase_id]"] },
            "url": format!("https://checkout.stripe.com/c/pay/cs_test_{n}") })
    })
}

async fn fake_payment_intents(State(fake): State<FakeStripe>, headers: HeaderMap, body: String) -> (StatusCode, axum::Json<Value>) {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    if form.get("payment_method").map(String::as_str) == Some("pm_card_chargeDeclined") {
        // Stripe's answer to a declined off-session charge: 402, a card_error naming the
        // PaymentIntent it made.
        fake.calls.lock().unwrap().push(("/v1/payment_intents".into(), form, String::new()));
        let error = json!({ "error": { "type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
            "message": "Your card was declined.", "payment_intent": { "id": "pi_declined", "object": "payment_intent", "status": "requires_payment_method" } } });
        return (StatusCode::PAYMENT_REQUIRED, axum::Json(error));
    }
    fake.answer("/v1/payment_intents", &headers, &body, |form, n| {
        let amount = form["amount"].parse::<i64>().unwrap();
        json!({ "id": format!("pi_test_{n}"), "object": "payment_intent", "status": "succeeded", "amount": amount,
            "amount_received": amount, "currency": form["currency"], "customer": form["customer"],
            "metadata": { "purchase_id": form["metadata[purchase_id]"], "credits_flow": form["metadata[credits_flow]"] } })
    })
}

async fn fake_refunds(State(fake): State<FakeStripe>, headers: HeaderMap, body: String) -> (StatusCode, axum::Json<Value>) {
    fake.answer("/v1/refunds", &headers, &body, |form, n| {
        json!({ "id": format!("re_test_{n}"), "object": "refund", "status": "succeeded",
            "amount": form["amount"].parse::<i64>().unwrap(), "payment_intent": form["payment_intent"], "currency": "usd" })
    })
}

impl FakeStripe {
    fn answer(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: &str,
        make: impl FnOnce(&HashMap<String, String>, usize) -> Value,
    ) -> (StatusCode, axum::Json<Value>) {
        let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(auth, "Bearer sk_test_fake", "the secret key as a bearer token");
        self.calls.lock().unwrap().push((path.to_string(), form.clone(), key.clone()));
        if self.down.load(Ordering::SeqCst) {
            let error = json!({ "error": { "type": "api_error", "message": "An unknown error occurred" } });
            return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(error));
        }
        let mut answers = self.answers.lock().unwrap();
        let n = answers.len() + 1;
        let answer = answers.entry(format!("{path} {key}")).or_insert_with(|| make(&form, n)).clone();
        (StatusCode::OK, axum::Json(answer))
    }

    async fn start(&self) -> String {
        let router = axum::Router::new()
            .route("/v1/checkout/sessions", post(fake_sessions))
            .route("/v1/refunds", post(fake_refunds))
            .route("/v1/payment_intents", post(fake_payment_intents))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        base
    }

    fn calls_to(&self, path: &str) -> Vec<(HashMap<String, String>, String)> {
        self.calls.lock().unwrap().iter().filter(|(p, _, _)| p == path).map(|(_, f, k)| (f.clone(), k.clone())).collect()
    }
}

async fn checkout_and_refunds_go_through_stripe(backend: Backend) {
    let fake = FakeStripe::default();
    let base = fake.start().await;
    let client = StripeClient::new(
        &base,
        "sk_test_fake",
        "https://app.example.com/paid?p={purchase_id}&s={CHECKOUT_SESSION_ID}",
        "https://app.example.com/buy",
    )
    .unwrap();
    let app = TestApp::spawn_with_stripe(backend, PROGRAM, settings(Some(client))).await;
    app.create_account("payer").await;
    let mode = app.gql(&app.user("payer"), "{ program { checkout } }", json!({})).await;
    assert_eq!(mode["data"]["program"]["checkout"], json!("EXTERNAL"), "{mode}");

    // Stripe is down: the purchase is recorded, the call says so, and the same call later
    // hands out the session.
    fake.down.store(true, Ordering::SeqCst);
    let refused = purchase(&app, "payer", "100", "buy-1").await;
    assert_eq!(error_code(&refused), "UNAVAILABLE", "{refused}");
    fake.down.store(false, Ordering::SeqCst);
    let made = purchase(&app, "payer", "100", "buy-1").await;
    let id = made["data"]["purchaseCredits"]["id"].as_str().unwrap_or_else(|| panic!("{made}")).to_string();
    let url = made["data"]["purchaseCredits"]["checkoutUrl"].as_str().unwrap().to_string();
    assert!(url.starts_with("https://checkout.stripe.com/c/pay/cs_test_"), "{url}");
    // A replay hands out the same page without asking Stripe again.
    let calls = fake.calls_to("/v1/checkout/sessions").len();
    let again = purchase(&app, "payer", "100", "buy-1").await;
    assert_eq!(again["data"]["purchaseCredits"]["checkoutUrl"], json!(url));
    assert_eq!(fake.calls_to("/v1/checkout/sessions").len(), calls);
    // What Stripe was asked: the price, and the purchase id everywhere an event will carry it.
    let sessions = fake.calls_to("/v1/checkout/sessions");
    assert!(sessions.iter().all(|(_, key)| *key == format!("credits-checkout-{id}")), "{sessions:?}");
    let (form, _) = &sessions[0];
    assert_eq!(form["mode"], "payment");
    assert_eq!(form["line_items[0][price_data][unit_amount]"], "200");
    assert_eq!(form["line_items[0][price_data][currency]"], "usd");
    assert_eq!(form["metadata[purchase_id]"], id);
    assert_eq!(form["client_reference_id"], id);
    assert_eq!(form["payment_intent_data[metadata][purchase_id]"], id);
    assert_eq!(form["success_url"], format!("https://app.example.com/paid?p={id}&s={{CHECKOUT_SESSION_ID}}"));

    // Stripe says it was paid; the session's page is no longer offered.
    let paid = event("evt_1", "checkout.session.completed", session(&id, "pi_A", 200, "paid"));
    assert_eq!(deliver(&app, &paid).await, "confirmed");
    let r = purchase_status(&app, &id).await;
    assert_eq!((&r["status"], &r["checkoutUrl"]), (&json!("PAID"), &json!(null)), "{r}");

    // The refund goes to Stripe, keyed per purchase; Stripe down first, then back.
    fake.down.store(true, Ordering::SeqCst);
    let refused = app.gql(&app.service, REFUND, json!({ "id": id, "k": "r-1" })).await;
    assert_eq!(error_code(&refused), "UNAVAILABLE", "{refused}");
    // The ledger's refund stands meanwhile.
    assert_eq!(app.balance("payer").await, "0");
    fake.down.store(false, Ordering::SeqCst);
    let refunded = app.gql(&app.service, REFUND, json!({ "id": id, "k": "r-1" })).await;
    assert_eq!(refunded["data"]["refundPurchase"]["refunded"]["amountMinor"], json!(200), "{refunded}");
    let refunds = fake.calls_to("/v1/refunds");
    assert_eq!(refunds.len(), 2, "one refused, one answered");
    assert!(
        refunds
            .iter()
            .all(|(form, key)| form["payment_intent"] == "pi_A" && form["amount"] == "200" && *key == format!("credits-refund-{id}"))
    );
    // Its event is known as ours.
    assert_eq!(deliver(&app, &event("evt_2", "charge.refunded", charge("pi_A", 200, 200, &["re_test_2"]))).await, "refund_known");
    assert_eq!(app.balance("payer").await, "0");
    app.assert_audit_clean().await;
}

const SET_TOP_UP: &str = "mutation($m: StripePaymentMethodInput) { setAutoTopUp(input: {accountId: \"payer\", enabled: true,
    threshold: \"50\", amount: \"100\", monthlyCap: \"1000\", stripePaymentMethod: $m}) { paysWithStripe failuresInARow } }";

async fn auto_top_ups_are_charged_off_session(backend: Backend) {
    let fake = FakeStripe::default();
    let base = fake.start().await;
    let client = StripeClient::new(&base, "sk_test_fake", "https://app.example.com/paid", "https://app.example.com/buy").unwrap();
    let app = TestApp::spawn_with_stripe(backend, PROGRAM, settings(Some(client))).await;
    app.create_account("payer").await;
    assert!(app.grant("payer", "100", "PAID", None, "fund").await["errors"].is_null());
    let card = json!({ "customer": "cus_1", "paymentMethod": "pm_card_visa" });
    // The card is the product's to save, not the user's.
    let by_user = app.gql(&app.user("payer"), SET_TOP_UP, json!({ "m": card })).await;
    assert_eq!(error_code(&by_user), "FORBIDDEN", "{by_user}");
    let bad = app.gql(&app.service, SET_TOP_UP, json!({ "m": { "customer": "me", "paymentMethod": "pm_1" } })).await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT", "{bad}");
    let set = app.gql(&app.service, SET_TOP_UP, json!({ "m": card })).await;
    assert_eq!(set["data"]["setAutoTopUp"]["paysWithStripe"], json!(true), "{set}");

    // Under the threshold: a pending top-up, charged by the job to the saved card.
    assert!(app.spend("payer", "60", "s-1").await["errors"].is_null());
    let job = credits::service::jobs::Job::ChargeAutoTopUps;
    assert_eq!(app.ledger.run_job(job, app.clock.now()).await.unwrap().items, 1);
    assert_eq!(app.balance("payer").await, "140");
    let charges = fake.calls_to("/v1/payment_intents");
    assert_eq!(charges.len(), 1, "{charges:?}");
    let (form, key) = &charges[0];
    let id = form["metadata[purchase_id]"].clone();
    assert_eq!(*key, format!("credits-topup-{id}"));
    assert_eq!((form["amount"].as_str(), form["currency"].as_str()), ("200", "usd"));
    assert_eq!((form["customer"].as_str(), form["payment_method"].as_str()), ("cus_1", "pm_card_visa"));
    assert_eq!((form["off_session"].as_str(), form["confirm"].as_str()), ("true", "true"));
    let paid = purchase_status(&app, &id).await;
    assert_eq!((&paid["status"], &paid["paymentReference"]), (&json!("PAID"), &json!("pi_test_1")), "{paid}");
    // Its webhook finds it paid; the job finds nothing more to charge.
    let succeeded = event("evt_1", "payment_intent.succeeded", intent(&id, "pi_test_1", 200, Some("auto_topup")));
    assert_eq!(deliver(&app, &succeeded).await, "already_applied");
    assert_eq!(app.ledger.run_job(job, app.clock.now()).await.unwrap().items, 0);

    // A declined card fails the top-up, which counts toward turning auto top-up off.
    let declined = json!({ "customer": "cus_1", "paymentMethod": "pm_card_chargeDeclined" });
    assert!(app.gql(&app.service, SET_TOP_UP, json!({ "m": declined })).await["errors"].is_null());
    assert!(app.spend("payer", "100", "s-2").await["errors"].is_null());
    assert_eq!(app.ledger.run_job(job, app.clock.now()).await.unwrap().items, 1);
    assert_eq!(app.balance("payer").await, "40");
    let r = app.gql(&app.service, "{ account(id: \"payer\") { autoTopUp { failuresInARow pendingPurchase { id } } } }", json!({})).await;
    assert_eq!(r["data"]["account"]["autoTopUp"], json!({ "failuresInARow": 1, "pendingPurchase": null }), "{r}");
    assert_eq!(app.ledger.run_job(job, app.clock.now()).await.unwrap().items, 0, "a failed top-up is not charged again");
    app.assert_audit_clean().await;
}

/// The portal's "Buy credits" hands off to the purchase's Checkout page, in Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_portal_hands_off_to_stripe_checkout() {
    let fake = FakeStripe::default();
    let base = fake.start().await;
    let client = StripeClient::new(&base, "sk_test_fake", "https://app.example.com/paid", "https://app.example.com/buy").unwrap();
    let app = TestApp::spawn_with_stripe(Backend::Sqlite, PROGRAM, settings(Some(client))).await;
    app.create_account("payer").await;
    let opened = app.gql(&app.service, "mutation { createPortalSession(accountId: \"payer\") { url } }", json!({})).await;
    let url = opened["data"]["createPortalSession"]["url"].as_str().unwrap_or_else(|| panic!("{opened}")).to_string();
    let env = [("URL", url.as_str()), ("CHECKOUT", "https://checkout.stripe.com/")];
    let Some(script) = crate::support::browser::BrowserScript::start("portal-stripe.mjs", &app.address, &env).await else {
        return;
    };
    let seen = script.finish().await;
    let sessions = fake.calls_to("/v1/checkout/sessions");
    assert_eq!(sessions.len(), 1, "one session for the one purchase: {sessions:?}");
    let made = &sessions[0].0;
    assert_eq!(seen["sentTo"], json!("https://checkout.stripe.com/c/pay/cs_test_1"), "{seen}");
    assert_eq!(seen["navigation"], json!(true), "the page itself goes there: {seen}");
    assert!(seen["checkoutNote"].as_str().unwrap().contains("payment page"), "{seen}");
    // The hand-off is listed as requested and as blocked: nothing else left the server.
    let foreign: std::collections::BTreeSet<&str> = seen["foreign"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(foreign, ["https://checkout.stripe.com/c/pay/cs_test_1"].into(), "{seen}");
    assert_eq!(seen["problems"], json!([]), "{seen}");
    // The package's price went to Stripe.
    let packages = app.gql(&app.service, "{ creditPackages { code price { amountMinor } } }", json!({})).await;
    let first = &packages["data"]["creditPackages"][0];
    assert_eq!(made["line_items[0][price_data][unit_amount]"], first["price"]["amountMinor"].to_string(), "{packages}");
}

on_both!(
    payments_confirm_once_whichever_event_comes_first,
    bad_signatures_are_refused_and_change_nothing,
    failures_end_a_purchase_but_not_an_open_checkout,
    what_the_rules_refuse_is_announced_to_the_operator_once,
    dashboard_refunds_follow_the_rules_and_ours_are_known,
    checkout_and_refunds_go_through_stripe,
    auto_top_ups_are_charged_off_session,
);
