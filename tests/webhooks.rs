//! The outbox delivered as signed webhooks, to a real HTTP receiver on 127.0.0.1. Delivery is
//! driven by hand at chosen instants (no sleeps): a retry comes exactly when its backoff says.

use crate::on_both;
use crate::support::receiver::{Received, Receiver};
use crate::support::{Backend, TestApp, buy};
use chrono::{DateTime, Duration, Utc};
use credits::entity::outbox;
use credits::service::Engine;
use credits::service::jobs::Job;
use credits::service::webhooks::{WebhookSender, verify_signature};
use credits::store;
use sea_orm::TransactionTrait;
use serde_json::{Value, json};

/// The example program with gifts between users on (`[gifts]`), which no preset has.
const GIFTS_PROGRAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/gifts.toml");

const WEBHOOK_SECRET: &[u8] = b"webhook-test-secret-webhook-test-secret";

/// How far a receiver accepts a signature's timestamp from its own clock.
fn tolerance() -> Duration {
    Duration::minutes(5)
}

async fn publish(ledger: &Engine, topic: &str, account_id: Option<i64>, data: Value, now: DateTime<Utc>) -> i64 {
    store::outbox::publish(&ledger.db, topic, account_id, &data, now).await.unwrap();
    latest_event(ledger).await.id
}

async fn latest_event(ledger: &Engine) -> outbox::Model {
    use sea_orm::{EntityTrait, QueryOrder};
    outbox::Entity::find().order_by_desc(outbox::Column::Id).one(&ledger.db).await.unwrap().expect("an event")
}

async fn event(ledger: &Engine, id: i64) -> outbox::Model {
    store::outbox::by_id(&ledger.db, id).await.unwrap().expect("the event")
}

/// Buys 100 credits on arkain and refunds them: a real `purchase.refunded` event.
async fn buy_and_refund(app: &TestApp, account: &str) {
    let r = app
        .gql(
            &app.service,
            "mutation($a: ID!) { purchaseCredits(input: {accountId: $a, credits: \"100\", idempotencyKey: \"buy-1\"}) { id } }",
            json!({ "a": account }),
        )
        .await;
    let id = r["data"]["purchaseCredits"]["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
    let paid = app
        .gql(
            &app.service,
            "mutation($id: ID!) { confirmPurchase(input: {purchaseId: $id, paymentReference: \"pay-1\"}) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(paid["data"]["confirmPurchase"]["status"], json!("PAID"), "{paid}");
    let refunded = app
        .gql(
            &app.admin,
            "mutation($id: ID!) { refundPurchase(input: {purchaseId: $id, idempotencyKey: \"refund-1\"}) { credits } }",
            json!({ "id": id }),
        )
        .await;
    assert!(refunded["errors"].is_null(), "{refunded}");
}

async fn events_are_signed_delivered_once_and_never_resent(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, "arkain").await;
    let t = app.clock.now();
    app.create_account("buyer").await;
    buy_and_refund(&app, "buyer").await;
    let refund_event = latest_event(&app.ledger).await;
    assert_eq!(refund_event.topic, "purchase.refunded");
    let command = publish(&app.ledger, "containers.stop_all", None, json!({ "reason": "test" }), t).await;

    // No receiver configured: the job does nothing and the events wait.
    let idle = app.ledger.run_job(Job::DeliverWebhooks, t).await.unwrap();
    assert_eq!((idle.items, idle.complete), (0, true));
    assert!(event(&app.ledger, refund_event.id).await.delivered_at.is_none());

    let receiver = Receiver::start(0).await;
    app.ledger.webhooks = Some(receiver.sender(WEBHOOK_SECRET));
    let report = app.ledger.run_job(Job::DeliverWebhooks, t).await.unwrap();
    assert_eq!((report.items, report.complete), (2, true));
    let received = receiver.received();
    assert_eq!(received.len(), 2, "{received:?}");

    // Oldest first; the id header matches the body; the body is the envelope around the payload.
    let first = &received[0];
    assert_eq!(first.event_id, format!("evt_{}", refund_event.id));
    let body = first.json();
    assert_eq!(body["id"], json!(first.event_id));
    assert_eq!(body["topic"], json!("purchase.refunded"));
    assert_eq!(body["account"], json!("buyer"), "the product's own account id");
    assert_eq!(body["createdAt"], json!(refund_event.created_at.to_rfc3339()));
    assert_eq!(body["data"], serde_json::from_str::<Value>(&refund_event.payload).unwrap());
    assert_eq!(body["data"]["amountMinor"], json!(200));
    let second = received[1].json();
    assert_eq!((second["id"].clone(), second["account"].clone()), (json!(format!("evt_{command}")), Value::Null));

    // Each signature verifies with the secret, over exactly the bytes sent, near its time.
    for request in &received {
        assert!(request.signature.starts_with(&format!("t={},v1=", t.timestamp())), "{}", request.signature);
        assert!(verify_signature(WEBHOOK_SECRET, &request.signature, &request.body, t, tolerance()));
        let mut tampered = request.body.clone();
        tampered[1] ^= 1;
        assert!(!verify_signature(WEBHOOK_SECRET, &request.signature, &tampered, t, tolerance()));
        assert!(!verify_signature(b"not-the-secret-not-the-secret-xx", &request.signature, &request.body, t, tolerance()));
        assert!(!verify_signature(WEBHOOK_SECRET, &request.signature, &request.body, t + Duration::hours(1), tolerance()));
    }

    // Acknowledged: delivered, never sent again, however often the job runs.
    let stored = event(&app.ledger, refund_event.id).await;
    assert_eq!((stored.delivered_at, stored.attempts, stored.last_error), (Some(t), 0, None));
    for later in [t, t + Duration::seconds(5), t + Duration::hours(2), t + Duration::days(40)] {
        assert_eq!(app.ledger.run_job(Job::DeliverWebhooks, later).await.unwrap().items, 0);
    }
    assert_eq!(receiver.received().len(), 2);
}

async fn a_failing_receiver_gets_the_same_event_again_after_its_backoff(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let t = app.clock.now();
    let receiver = Receiver::start(2).await;
    app.ledger.webhooks = Some(receiver.sender(WEBHOOK_SECRET));
    let id = publish(&app.ledger, "purchase.refunded", None, json!({ "n": 1 }), t).await;

    app.ledger.run_job(Job::DeliverWebhooks, t).await.unwrap();
    let failed = event(&app.ledger, id).await;
    assert_eq!((failed.attempts, failed.next_attempt_at, failed.delivered_at), (1, Some(t + Duration::seconds(10)), None));
    assert!(failed.last_error.as_deref().unwrap().contains("HTTP 500"), "{failed:?}");

    // Before the backoff has passed, nothing is sent; at its instant, the event goes again.
    assert_eq!(app.ledger.run_job(Job::DeliverWebhooks, t + Duration::seconds(9)).await.unwrap().items, 0);
    assert_eq!(receiver.received().len(), 1);
    app.ledger.run_job(Job::DeliverWebhooks, t + Duration::seconds(10)).await.unwrap();
    assert_eq!(receiver.received().len(), 2);
    let failed = event(&app.ledger, id).await;
    assert_eq!((failed.attempts, failed.next_attempt_at), (2, Some(t + Duration::seconds(30))), "then 20 s");

    app.ledger.run_job(Job::DeliverWebhooks, t + Duration::seconds(29)).await.unwrap();
    assert_eq!(receiver.received().len(), 2);
    app.ledger.run_job(Job::DeliverWebhooks, t + Duration::seconds(30)).await.unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.event_id == format!("evt_{id}")), "the same id on every attempt: {received:?}");
    assert!(received.windows(2).all(|w| w[0].body == w[1].body), "the same body on every attempt");
    let retry_at = t + Duration::seconds(30);
    assert!(verify_signature(WEBHOOK_SECRET, &received[2].signature, &received[2].body, retry_at, tolerance()), "signed anew");
    let delivered = event(&app.ledger, id).await;
    assert_eq!((delivered.delivered_at, delivered.attempts), (Some(retry_at), 2));

    app.ledger.run_job(Job::DeliverWebhooks, t + Duration::days(1)).await.unwrap();
    assert_eq!(receiver.received().len(), 3, "acknowledged: not sent again");
}

/// On a test clock, an advance retries a failed delivery when its backoff has passed by the
/// clock, and the event keeps the clock's dates; the signature's timestamp stays on the wall,
/// which is what the receiver compares it with.
async fn on_a_test_clock_retries_follow_the_clock_and_signatures_the_wall(backend: Backend) {
    use credits::ledger::test_clock::Advance;
    let start: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().unwrap();
    let mut app = TestApp::spawn_on_test_clock(backend, crate::support::LEDGER_PROGRAM, start).await;
    let receiver = Receiver::start(1).await;
    app.ledger.webhooks = Some(receiver.sender(WEBHOOK_SECRET));
    let id = publish(&app.ledger, "purchase.refunded", None, json!({ "n": 1 }), app.clock.now()).await;
    app.ledger.run_job(Job::DeliverWebhooks, app.clock.now()).await.unwrap();
    let failed = event(&app.ledger, id).await;
    assert_eq!((failed.attempts, failed.next_attempt_at), (1, Some(start + Duration::seconds(10))));

    let advanced = app.ledger.advance_clock(Advance::To(start + Duration::seconds(10))).await.unwrap();
    assert!(advanced.jobs.iter().any(|(job, ran)| *job == Job::DeliverWebhooks && ran.items == 1), "{advanced:?}");
    let received = receiver.received();
    assert_eq!(received.len(), 2, "retried by the advance");
    assert_eq!(event(&app.ledger, id).await.delivered_at, Some(start + Duration::seconds(10)), "dated by the clock");
    assert!(
        verify_signature(WEBHOOK_SECRET, &received[1].signature, &received[1].body, Utc::now(), tolerance()),
        "signed at the wall time"
    );
    assert!(!verify_signature(WEBHOOK_SECRET, &received[1].signature, &received[1].body, start, tolerance()));
}

/// Events are never dropped: past the one-hour cap they keep being tried hourly, and are
/// delivered once the receiver recovers.
async fn retries_never_give_up_and_settle_at_hourly(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let t = app.clock.now();
    let receiver = Receiver::start(u32::MAX).await;
    app.ledger.webhooks = Some(receiver.sender(WEBHOOK_SECRET));
    let id = publish(&app.ledger, "purchase.refunded", None, json!({}), t).await;
    let mut at = t;
    let mut waits = Vec::new();
    for _ in 0..12 {
        app.ledger.run_job(Job::DeliverWebhooks, at).await.unwrap();
        let next = event(&app.ledger, id).await.next_attempt_at.expect("due again");
        waits.push((next - at).num_seconds());
        at = next;
    }
    assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600, 3600]);
    assert_eq!(receiver.received().len(), 12);
    assert_eq!(event(&app.ledger, id).await.attempts, 12);

    receiver.heal();
    app.ledger.run_job(Job::DeliverWebhooks, at).await.unwrap();
    assert_eq!(event(&app.ledger, id).await.delivered_at, Some(at));
    assert_eq!(receiver.received().len(), 13);
}

/// Two workers delivering at the same moment: every event is sent once, by one of them.
async fn concurrent_runs_send_each_event_once(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let t = app.clock.now();
    let receiver = Receiver::start(0).await;
    let sender = receiver.sender(WEBHOOK_SECRET);
    app.ledger.webhooks = Some(sender.clone());
    for n in 0..20 {
        publish(&app.ledger, "purchase.refunded", None, json!({ "n": n }), t).await;
    }
    let (a, b) = tokio::join!(app.ledger.deliver_webhooks(&sender, t, 100), app.ledger.deliver_webhooks(&sender, t, 100));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.delivered + b.delivered, 20, "{a:?} {b:?}");
    assert_eq!((a.failed, b.failed), (0, 0));
    // And through the job, twice at once: nothing is left to send.
    let (c, d) = tokio::join!(app.ledger.run_job(Job::DeliverWebhooks, t), app.ledger.run_job(Job::DeliverWebhooks, t));
    assert_eq!((c.unwrap().items, d.unwrap().items), (0, 0));
    let mut ids: Vec<String> = receiver.received().into_iter().map(|r| r.event_id).collect();
    assert_eq!(ids.len(), 20);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "each event once");
}

/// What was committed is delivered, by whichever process runs next: a fresh ledger on the same
/// database delivers an event published before, and one whose worker died mid-delivery once
/// that worker's lease has run out (wall time, whatever the ledger's clock says). What was
/// rolled back never existed.
async fn events_survive_a_crash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = app.clock.now();
    let txn = app.ledger.db.begin().await.unwrap();
    store::outbox::publish(&txn, "purchase.refunded", None, &json!({ "committed": true }), t).await.unwrap();
    txn.commit().await.unwrap();
    let committed = latest_event(&app.ledger).await.id;
    let txn = app.ledger.db.begin().await.unwrap();
    store::outbox::publish(&txn, "purchase.refunded", None, &json!({ "committed": false }), t).await.unwrap();
    txn.rollback().await.unwrap();
    let orphaned = publish(&app.ledger, "purchase.refunded", None, json!({ "orphaned": true }), t).await;
    // A worker took this one (its lease ends 2 s from now), then died before recording anything.
    let seen = event(&app.ledger, orphaned).await;
    let lease = chrono::Utc::now() + Duration::seconds(2);
    assert!(store::outbox::claim(&app.ledger.db, &seen, lease).await.unwrap());
    assert!(!store::outbox::claim(&app.ledger.db, &seen, lease).await.unwrap(), "one claim wins");

    let receiver = Receiver::start(0).await;
    let db = credits::db::connect(&app.db.url, 2).await.unwrap();
    let mut fresh = Engine::new(db, app.ledger.program.clone());
    fresh.webhooks = Some(receiver.sender(WEBHOOK_SECRET));
    fresh.run_job(Job::DeliverWebhooks, t + Duration::seconds(1)).await.unwrap();
    let sent: Vec<Value> = receiver.received().iter().map(Received::json).collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0]["id"].clone(), sent[0]["data"].clone()), (json!(format!("evt_{committed}")), json!({ "committed": true })));

    // The dead worker's lease is respected until it ends, even by a ledger clock a day on
    // (a test clock's jump), then the event is due again.
    fresh.run_job(Job::DeliverWebhooks, t + Duration::days(1)).await.unwrap();
    assert_eq!(receiver.received().len(), 1);
    tokio::time::sleep((lease - chrono::Utc::now()).to_std().unwrap_or_default()).await;
    fresh.run_job(Job::DeliverWebhooks, t + Duration::seconds(60)).await.unwrap();
    let sent = receiver.received();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].event_id, format!("evt_{orphaned}"));
    assert_eq!(event(&fresh, orphaned).await.delivered_at, Some(t + Duration::seconds(60)));
    assert!(fresh.run_job(Job::DeliverWebhooks, t + Duration::days(1)).await.unwrap().items == 0, "nothing else, ever");
}

/// An unreachable receiver costs one attempt per run, not one timeout per event: the run stops
/// there and the other events stay due, untouched.
async fn an_unreachable_receiver_stops_the_run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = app.clock.now();
    // A port that was just free: nothing listens there.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let sender = WebhookSender::new(&format!("http://{closed}/hooks"), WEBHOOK_SECRET).unwrap();
    let ids = [
        publish(&app.ledger, "purchase.refunded", None, json!({}), t).await,
        publish(&app.ledger, "purchase.refunded", None, json!({}), t).await,
        publish(&app.ledger, "purchase.refunded", None, json!({}), t).await,
    ];
    let report = app.ledger.deliver_webhooks(&sender, t, 100).await.unwrap();
    assert_eq!((report.failed, report.delivered, report.stopped), (1, 0, true), "{report:?}");
    let first = event(&app.ledger, ids[0]).await;
    assert_eq!((first.attempts, first.next_attempt_at), (1, Some(t + Duration::seconds(10))));
    assert!(first.last_error.as_deref().unwrap().contains("could not be reached"), "{first:?}");
    assert!(!first.last_error.as_deref().unwrap().contains(&closed.port().to_string()), "no URL in the error: {first:?}");
    for id in &ids[1..] {
        let rest = event(&app.ledger, *id).await;
        assert_eq!((rest.attempts, rest.next_attempt_at), (0, None), "still due, never tried");
    }
}

/// The binary's configuration: a webhook URL without a strong secret refuses to start; with
/// one, `credits jobs --run` (the worker's code path) delivers what is in the outbox.
async fn the_binary_delivers_with_a_configured_receiver(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start(0).await;
    let id = publish(&app.ledger, "purchase.refunded", None, json!({ "via": "cli" }), Utc::now()).await;
    let credits = |secret: &str| {
        let dir = tempfile::tempdir().unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_credits"))
            .args(["jobs", "--run"])
            .current_dir(dir.path())
            .env_remove("CREDITS_CONFIG")
            .env("DATABASE_URL", &app.db.url)
            .env("CREDITS_PROGRAM", crate::support::LEDGER_PROGRAM)
            .env("CREDITS_AUTH_SECRET", std::str::from_utf8(crate::support::SECRET).unwrap())
            .env("CREDITS_WEBHOOK_URL", &receiver.url)
            .env("CREDITS_WEBHOOK_SECRET", secret)
            .env("RUST_LOG", "warn")
            .output();
        async move {
            let out = out.await.expect("the binary runs");
            drop(dir);
            out
        }
    };
    let refused = credits("too-short").await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("CREDITS_WEBHOOK_SECRET") && stderr.contains("32 bytes"), "{stderr}");
    assert!(receiver.received().is_empty());

    let ran = credits(std::str::from_utf8(WEBHOOK_SECRET).unwrap()).await;
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].event_id, format!("evt_{id}"));
    assert!(verify_signature(WEBHOOK_SECRET, &received[0].signature, &received[0].body, Utc::now(), tolerance()));
    assert!(event(&app.ledger, id).await.delivered_at.is_some());
}

on_both!(
    the_binary_delivers_with_a_configured_receiver,
    events_are_signed_delivered_once_and_never_resent,
    a_failing_receiver_gets_the_same_event_again_after_its_backoff,
    retries_never_give_up_and_settle_at_hourly,
    concurrent_runs_send_each_event_once,
    events_survive_a_crash,
    an_unreachable_receiver_stops_the_run
);

on_both!(on_a_test_clock_retries_follow_the_clock_and_signatures_the_wall, every_event_sent_matches_its_topics_schema);

/// docs/webhooks/{topic}.schema.json, each a valid draft 2020-12 schema, by topic.
fn topic_schemas() -> std::collections::BTreeMap<String, jsonschema::Validator> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/webhooks");
    let mut schemas = std::collections::BTreeMap::new();
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        let Some(topic) = path.file_name().unwrap().to_str().unwrap().strip_suffix(".schema.json").map(str::to_string) else { continue };
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        jsonschema::meta::validate(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(schema["properties"]["topic"]["const"], json!(topic), "{} names its topic", path.display());
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        schemas.insert(topic, validator);
    }
    schemas
}

/// The schemas in docs/webhooks say what receivers get: every topic the service publishes is made
/// to happen through the API and the jobs (a refund, a low balance, credits about to expire, a
/// settlement that runs short, purchases cancelled, failed and expired, auto top-ups asked for, capped and
/// turned off, a gift), delivered to a real receiver, and each body sent must match its
/// topic's schema, which refuses fields it does not list. Every schema is met at least once.
async fn every_event_sent_matches_its_topics_schema(backend: Backend) {
    let schemas = topic_schemas();
    let receiver = Receiver::start(0).await;
    let mut app = TestApp::spawn_with(backend, "arkain").await;
    app.ledger.webhooks = Some(receiver.sender(WEBHOOK_SECRET));
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    app.clock.set(at("2026-11-10T10:00:00Z"));
    // purchase.refunded
    app.create_account("buyer").await;
    buy_and_refund(&app, "buyer").await;
    // purchase.cancelled, purchase.failed, purchase.expired: three checkouts that end unpaid.
    app.create_account("unpaid").await;
    let mut unpaid = Vec::new();
    for key in ["to-cancel", "to-fail", "to-expire"] {
        let r = app
            .gql(
                &app.service,
                "mutation($k: String!) { purchaseCredits(input: {accountId: \"unpaid\", credits: \"50\", idempotencyKey: $k}) { id } }",
                json!({ "k": key }),
            )
            .await;
        unpaid.push(r["data"]["purchaseCredits"]["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_string());
    }
    let cancelled = app
        .gql(
            &app.service,
            "mutation($id: ID!) { cancelPurchase(input: {purchaseId: $id, reason: \"closed\", idempotencyKey: \"c\"}) { status } }",
            json!({ "id": unpaid[0] }),
        )
        .await;
    assert_eq!(cancelled["data"]["cancelPurchase"]["status"], json!("CANCELLED"), "{cancelled}");
    let failed = app
        .gql(
            &app.service,
            "mutation($id: ID!) { failPurchase(input: {purchaseId: $id, reason: \"declined\", paymentReference: \"pi_1\", idempotencyKey: \"f\"}) { status } }",
            json!({ "id": unpaid[1] }),
        )
        .await;
    assert_eq!(failed["data"]["failPurchase"]["status"], json!("FAILED"), "{failed}");
    assert_eq!(app.ledger.run_job(Job::ExpirePendingPurchases, at("2026-11-11T10:00:00Z")).await.unwrap().items, 1);
    // credits.low: 6 credits left cover less than an hour of a small container (6.8 an hour).
    app.create_account("low").await;
    let start = |account: &'static str, container: &'static str, tier: &'static str| {
        app.gql(
            &app.service,
            "mutation($a: ID!, $c: String!, $t: String!) { startContainer(input: {accountId: $a, containerId: $c, tier: $t, idempotencyKey: $c}) { container { state } } }",
            json!({ "a": account, "c": container, "t": tier }),
        )
    };
    let started = start("low", "web", "small").await;
    assert!(started["errors"].is_null(), "{started}");
    assert!(app.spend("low", "44", "s-1").await["errors"].is_null());
    // credits.expiring: a promotional lot ending within the notice window.
    app.create_account("expiring").await;
    assert!(app.grant("expiring", "7", "PROMOTIONAL", Some(at("2026-11-12T00:00:00Z")), "soon").await["errors"].is_null());
    app.ledger.run_job(Job::NotifyExpiringCredits, at("2026-11-10T10:15:00Z")).await.unwrap();
    // containers.stop_all: ten hours of a small container (68 credits) on the plan's 50.
    app.create_account("over").await;
    assert!(start("over", "big", "small").await["errors"].is_null());
    assert!(start("over", "tiny", "micro").await["errors"].is_null());
    app.clock.set(at("2026-11-10T20:00:00Z"));
    let stopped = app
        .gql(
            &app.service,
            r#"mutation { stopContainer(input: {accountId: "over", containerId: "big", idempotencyKey: "stop"}) { container { state } } }"#,
            json!({}),
        )
        .await;
    assert!(stopped["errors"].is_null(), "{stopped}");

    // purchase.auto_topup_requested and auto_topup.disabled: three top-ups whose payments fail
    // (a threshold no balance here reaches: every spend finds the account under it).
    app.create_account("auto").await;
    assert!(app.grant("auto", "100", "PAID", None, "fund-auto").await["errors"].is_null());
    let auto_topup = |account: &'static str| {
        app.gql(
            &app.service,
            "mutation($a: ID!) { setAutoTopUp(input: {accountId: $a, enabled: true, threshold: \"100000\", amount: \"50\", monthlyCap: \"50\"}) { enabled } }",
            json!({ "a": account }),
        )
    };
    let pending_top_up = async |account: &str| {
        let r = app
            .gql(&app.service, "query($a: ID!) { account(id: $a) { autoTopUp { pendingPurchase { id } } } }", json!({ "a": account }))
            .await;
        r["data"]["account"]["autoTopUp"]["pendingPurchase"]["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_string()
    };
    assert!(auto_topup("auto").await["errors"].is_null());
    for n in 0..3 {
        assert!(app.spend("auto", "5", &format!("auto-{n}")).await["errors"].is_null());
        let id = pending_top_up("auto").await;
        let failed = app
            .gql(
                &app.service,
                "mutation($id: ID!, $k: String!) { failPurchase(input: {purchaseId: $id, reason: \"declined\", idempotencyKey: $k}) { status } }",
                json!({ "id": id, "k": format!("auto-fail-{n}") }),
            )
            .await;
        assert_eq!(failed["data"]["failPurchase"]["status"], json!("FAILED"), "{failed}");
    }
    // auto_topup.cap_reached: a cap of one top-up, paid, and the balance under the threshold again.
    app.create_account("capped").await;
    assert!(app.grant("capped", "100", "PAID", None, "fund-capped").await["errors"].is_null());
    assert!(auto_topup("capped").await["errors"].is_null());
    assert!(app.spend("capped", "20", "capped-1").await["errors"].is_null());
    let id = pending_top_up("capped").await;
    let paid = app
        .gql(
            &app.service,
            "mutation($id: ID!) { confirmPurchase(input: {purchaseId: $id, paymentReference: \"capped-pay\"}) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(paid["data"]["confirmPurchase"]["status"], json!("PAID"), "{paid}");
    assert!(app.spend("capped", "60", "capped-2").await["errors"].is_null());

    // gift.sent: on a program with gifts (none of the presets), to the same receiver; a replay
    // of the gift's key publishes nothing more.
    let mut gifts = TestApp::spawn_with(backend, GIFTS_PROGRAM).await;
    gifts.ledger.webhooks = Some(receiver.sender(WEBHOOK_SECRET));
    gifts.create_account("giver").await;
    gifts.create_account("taker").await;
    assert!(gifts.grant("giver", "80", "PAID", None, "fund-giver").await["errors"].is_null());
    let gift = "mutation { giftCredits(input: {fromAccount: \"giver\", toAccount: \"taker\", amount: \"30.5\", idempotencyKey: \"g-1\"}) { sentSequence receivedSequence } }";
    let given = gifts.gql(&gifts.service, gift, json!({})).await;
    assert!(given["errors"].is_null(), "{given}");
    assert_eq!(gifts.gql(&gifts.service, gift, json!({})).await, given, "a replay");
    gifts.ledger.run_job(Job::DeliverWebhooks, Utc::now()).await.unwrap();
    let sent: Vec<Value> = receiver.received().iter().map(Received::json).filter(|b| b["topic"] == json!("gift.sent")).collect();
    assert_eq!(sent.len(), 1, "one event per gift: {sent:?}");
    let data = &sent[0]["data"];
    assert_eq!(sent[0]["account"], json!("giver"));
    assert_eq!((&data["fromAccountId"], &data["toAccountId"], &data["credits"]), (&json!("giver"), &json!("taker"), &json!("30.5")));
    let sequence = |field: &str| given["data"]["giftCredits"][field].as_str().unwrap().parse::<i64>().unwrap();
    assert_eq!(
        (&data["sentSequence"], &data["receivedSequence"]),
        (&json!(sequence("sentSequence")), &json!(sequence("receivedSequence")))
    );

    // purchase.needs_attention: Stripe took a payment for a purchase that does not exist; and
    // purchase.refunded from a refund made in Stripe's dashboard (`source`).
    let stripe_event = |id: &str, kind: &str, object: Value| {
        let body = json!({ "id": id, "object": "event", "type": kind, "data": { "object": object } });
        credits::stripe::events::Event::parse(body.to_string().as_bytes()).unwrap()
    };
    let stray = json!({ "id": "pi_stray", "object": "payment_intent", "amount": 100, "amount_received": 100, "currency": "usd", "metadata": { "purchase_id": "999999" } });
    let outcome =
        app.ledger.handle_stripe_event(&stripe_event("evt_stray", "payment_intent.succeeded", stray), app.clock.now()).await.unwrap();
    assert_eq!(outcome, credits::service::stripe::Outcome::NeedsAttention);
    app.create_account("dashboard").await;
    buy(&app, "dashboard", Some("100"), None, "pi_dashboard").await;
    let charge = json!({ "id": "ch_1", "object": "charge", "amount": 200, "amount_refunded": 200, "currency": "usd", "payment_intent": "pi_dashboard" });
    let outcome = app.ledger.handle_stripe_event(&stripe_event("evt_dash", "charge.refunded", charge), app.clock.now()).await.unwrap();
    assert_eq!(outcome, credits::service::stripe::Outcome::RefundApplied);

    app.ledger.run_job(Job::DeliverWebhooks, Utc::now()).await.unwrap();
    let received = receiver.received();
    let mut seen = std::collections::BTreeSet::new();
    for request in &received {
        let body = request.json();
        let topic = body["topic"].as_str().unwrap_or_else(|| panic!("a topic: {body}")).to_string();
        let schema = schemas.get(&topic).unwrap_or_else(|| panic!("docs/webhooks has no schema for {topic}"));
        let errors: Vec<String> = schema.iter_errors(&body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{topic}: {errors:?}\n{body:#}");
        seen.insert(topic);
    }
    assert_eq!(seen, schemas.keys().cloned().collect(), "every schema met a real event: {received:?}");

    // The schemas are strict enough to catch drift: an extra field, or an amount as a number.
    let refunded = received.iter().map(Received::json).find(|b| b["topic"] == json!("purchase.refunded")).unwrap();
    let mut extra = refunded.clone();
    extra["data"]["unlisted"] = json!(1);
    assert!(!schemas["purchase.refunded"].is_valid(&extra));
    let low = received.iter().map(Received::json).find(|b| b["topic"] == json!("credits.low")).unwrap();
    let mut number = low.clone();
    number["data"]["balance"] = json!(6);
    assert!(!schemas["credits.low"].is_valid(&number));
    app.assert_audit_clean().await;
}

/// Our requests verify with the Standard Webhooks spec's own library (npm `standardwebhooks`, run
/// by `tests/browser/standard_webhooks.mjs`), given `whsec_` + base64 of our secret; a body
/// changed by one byte does not. `webhook-id` is the event id receivers de-duplicate on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_verify_with_a_standard_webhooks_library() {
    let receiver = Receiver::start(0).await;
    let mut app = TestApp::spawn_with(Backend::Sqlite, "arkain").await;
    app.ledger.webhooks = Some(receiver.sender(WEBHOOK_SECRET));
    app.create_account("alice").await;
    buy_and_refund(&app, "alice").await;
    let now = chrono::Utc::now();
    app.ledger.run_job(Job::DeliverWebhooks, now).await.unwrap();
    let received = receiver.received();
    assert!(!received.is_empty(), "events were sent");
    for request in &received {
        assert_eq!(request.headers["webhook-id"], request.event_id);
        assert!(request.headers["webhook-signature"].starts_with("v1,"), "{:?}", request.headers);
        let timestamp: i64 = request.headers["webhook-timestamp"].parse().unwrap();
        assert!((timestamp - now.timestamp()).abs() <= 5, "{timestamp}");
    }
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !scripts.join("node_modules/standardwebhooks").is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set, so tests/browser/node_modules must hold standardwebhooks (npm ci --prefix tests/browser)"
        );
        eprintln!("SKIPPED the Standard Webhooks library check: npm ci --prefix tests/browser");
        return;
    }
    let input = json!({
        "secret": credits::service::webhooks::standard_secret(WEBHOOK_SECRET),
        "requests": received.iter().map(|r| json!({ "headers": r.headers, "body": String::from_utf8(r.body.clone()).unwrap() })).collect::<Vec<_>>(),
    });
    let mut node = tokio::process::Command::new("node")
        .arg(scripts.join("standard_webhooks.mjs"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    use tokio::io::AsyncWriteExt;
    let mut stdin = node.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = node.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("{stdout}{}", String::from_utf8_lossy(&output.stderr)));
    let results: Vec<Value> = serde_json::from_str(line).unwrap();
    assert_eq!(results.len(), received.len());
    for result in results {
        assert_eq!(result, json!({ "verified": true, "error": null, "tamperedRefused": true }));
    }
}
