//! The operator's admin API for the machinery (issue 23): scheduled jobs and their periods,
//! running a job now, the webhook outbox and redelivering an event, through the real API.

use crate::on_both;
use crate::support::receiver::Receiver;
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Utc};
use credits::service::jobs::Job;
use credits::store;
use serde_json::{Value, json};

const WEBHOOK_SECRET: &[u8] = b"operations-test-secret-operations-test";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

const RUN_JOB: &str = "mutation($j: JobName!) { runJob(job: $j) { job ranAt periods items } }";
const JOB_RUNS: &str = "query($j: JobName!, $l: Int) { jobRuns(job: $j, limit: $l) { period status items batches attempts lastError startedAt updatedAt finishedAt } }";
const OUTBOX: &str = "query($s: OutboxStatus, $f: Int, $a: String) { outbox(status: $s, first: $f, after: $a) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id eventId topic accountId createdAt status attempts nextAttemptAt lastError deliveredAt payload } } } }";
const REDELIVER: &str = "mutation($id: ID!) { redeliverEvent(id: $id) { id eventId status attempts lastError deliveredAt nextAttemptAt } }";

/// Runs `job` through the API as the operator; the whole answer.
async fn run_job(app: &TestApp, job: &str) -> Value {
    app.gql(&app.admin, RUN_JOB, json!({ "j": job })).await
}

async fn job_runs(app: &TestApp, job: &str) -> Vec<Value> {
    let r = app.gql(&app.admin, JOB_RUNS, json!({ "j": job })).await;
    r["data"]["jobRuns"].as_array().unwrap_or_else(|| panic!("{r}")).clone()
}

async fn outbox(app: &TestApp, status: Option<&str>) -> Value {
    let r = app.gql(&app.admin, OUTBOX, json!({ "s": status })).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["outbox"].clone()
}

async fn jobs_are_listed_and_run_once_per_period(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.clock.set(at("2026-04-20T12:00:00Z"));
    for i in 0..3 {
        app.create_account(&format!("user-{i}")).await;
    }
    let may = at("2026-05-01T00:10:00Z");
    app.clock.set(may);

    // The first run of May grants each account its plan credits; the second finds May done.
    let first = run_job(&app, "GRANT_MONTHLY_PLAN_CREDITS").await;
    assert!(first["errors"].is_null(), "{first}");
    assert_eq!(
        first["data"]["runJob"],
        json!({ "job": "GRANT_MONTHLY_PLAN_CREDITS", "ranAt": "2026-05-01T00:10:00+00:00", "periods": ["2026-05"], "items": 3 })
    );
    let lots = "{ account(id: \"user-0\") { lots { totalCount } } }";
    let lots_after_first = app.gql(&app.service, lots, json!({})).await["data"]["account"]["lots"]["totalCount"].clone();
    let again = run_job(&app, "GRANT_MONTHLY_PLAN_CREDITS").await;
    assert_eq!(again["data"]["runJob"]["periods"], json!([]), "{again}");
    assert_eq!(again["data"]["runJob"]["items"], json!(0), "a period already done is not redone: {again}");
    let lots_after_second = app.gql(&app.service, lots, json!({})).await["data"]["account"]["lots"]["totalCount"].clone();
    assert!(lots_after_first.as_i64().is_some_and(|n| n >= 1), "{lots_after_first}");
    assert_eq!(lots_after_second, lots_after_first, "no second grant");

    let runs = job_runs(&app, "GRANT_MONTHLY_PLAN_CREDITS").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let may_run = &runs[0];
    assert_eq!(
        (&may_run["period"], &may_run["status"], &may_run["items"], &may_run["attempts"], &may_run["lastError"]),
        (&json!("2026-05"), &json!("DONE"), &json!(3), &json!(1), &Value::Null)
    );
    assert_eq!(may_run["finishedAt"], json!("2026-05-01T00:10:00+00:00"));
    // A continuous job has no periods.
    let drained = run_job(&app, "EXPIRE_LOTS").await;
    assert_eq!(drained["data"]["runJob"]["periods"], json!([]), "{drained}");
    assert_eq!(job_runs(&app, "EXPIRE_LOTS").await, Vec::<Value>::new());

    // The dashboard: every job, its cadence, next start and latest period.
    let r = app.gql(&app.admin, "{ scheduledJobs { name cadence schedule nextStart latestRun { period status } } }", json!({})).await;
    let jobs = r["data"]["scheduledJobs"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(jobs.len(), Job::ALL.len());
    let named = |name: &str| jobs.iter().find(|j| j["name"] == json!(name)).unwrap_or_else(|| panic!("{name} in {r}")).clone();
    assert_eq!(
        named("GRANT_MONTHLY_PLAN_CREDITS"),
        json!({ "name": "GRANT_MONTHLY_PLAN_CREDITS", "cadence": "MONTHLY", "schedule": "5 0 * * * *",
                "nextStart": "2026-06-01T00:00:00+00:00", "latestRun": { "period": "2026-05", "status": "DONE" } })
    );
    assert_eq!(named("RESET_DAILY_CREDITS")["cadence"], json!("DAILY"));
    assert_eq!(named("RESET_DAILY_CREDITS")["nextStart"], json!("2026-05-02T00:00:00+00:00"));
    let expire = named("EXPIRE_LOTS");
    assert_eq!((&expire["cadence"], &expire["nextStart"], &expire["latestRun"]), (&json!("CONTINUOUS"), &Value::Null, &Value::Null));

    // Bounded, and the arguments are checked.
    for limit in [0, -1, 101] {
        let r = app.gql(&app.admin, JOB_RUNS, json!({ "j": "GRANT_MONTHLY_PLAN_CREDITS", "l": limit })).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "limit {limit}: {r}");
    }
    assert_eq!(error_code(&run_job(&app, "NO_SUCH_JOB").await), "BAD_USER_INPUT");

    // An operator's run of a job that is still going in this process: a second is refused.
    let held = app.ledger.operator_jobs.start(Job::ExpireLots).expect("not running");
    let refused = run_job(&app, "EXPIRE_LOTS").await;
    assert_eq!(error_code(&refused), "INVALID_STATE", "{refused}");
    assert!(run_job(&app, "EXPIRE_RESERVATIONS").await["errors"].is_null(), "another job runs meanwhile");
    drop(held);
    assert!(run_job(&app, "EXPIRE_LOTS").await["errors"].is_null(), "once the first run ended");

    // Without a webhook receiver there is nowhere to redeliver to.
    let r = app.gql(&app.admin, REDELIVER, json!({ "id": "1" })).await;
    assert_eq!(error_code(&r), "FEATURE_DISABLED", "{r}");
    app.assert_audit_clean().await;
}

async fn a_failed_job_run_shows_its_error_and_is_resumed(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.clock.set(at("2026-04-20T00:00:00Z"));
    for i in 0..4 {
        app.create_account(&format!("user-{i}")).await;
    }
    // A stored value the code does not know makes one account's grant fail mid-sweep.
    use sea_orm::ConnectionTrait;
    let db = &app.ledger.db;
    db.execute_unprepared("UPDATE accounts SET status = 'bogus' WHERE external_id = 'user-2'").await.unwrap();
    app.clock.set(at("2026-05-01T00:00:00Z"));
    let failed = run_job(&app, "GRANT_MONTHLY_PLAN_CREDITS").await;
    assert!(!failed["errors"].is_null(), "the job's error is the answer: {failed}");
    let runs = job_runs(&app, "GRANT_MONTHLY_PLAN_CREDITS").await;
    let may = runs.iter().find(|r| r["period"] == json!("2026-05")).unwrap_or_else(|| panic!("{runs:?}"));
    assert_eq!((&may["status"], &may["attempts"]), (&json!("FAILED"), &json!(2)), "{may}");
    let error = may["lastError"].as_str().unwrap_or_else(|| panic!("{may}"));
    assert!(error.contains("account"), "names the account: {error}");
    assert_eq!(may["finishedAt"], Value::Null);

    // Fixed, run again: the period resumes and ends, each account granted once.
    db.execute_unprepared("UPDATE accounts SET status = 'active' WHERE external_id = 'user-2'").await.unwrap();
    app.clock.set(at("2026-05-01T00:01:00Z"));
    let resumed = run_job(&app, "GRANT_MONTHLY_PLAN_CREDITS").await;
    assert_eq!(resumed["data"]["runJob"]["periods"], json!(["2026-05"]), "{resumed}");
    let runs = job_runs(&app, "GRANT_MONTHLY_PLAN_CREDITS").await;
    assert_eq!((&runs[0]["status"], &runs[0]["items"]), (&json!("DONE"), &json!(4)), "{runs:?}");
    assert_eq!(runs[0]["lastError"].as_str().map(|e| e.contains("account")), Some(true), "the last error stays for the record");
    app.assert_audit_clean().await;
}

async fn the_outbox_shows_a_failed_delivery_and_redelivery_sends_the_same_event(backend: Backend) {
    let receiver = Receiver::start(u32::MAX).await;
    let sender = receiver.sender(WEBHOOK_SECRET);
    let app = TestApp::spawn_with_webhooks(backend, "arkain", sender).await;
    let t = app.clock.now();
    app.create_account("buyer").await;
    let buyer = store::accounts::by_external_id(&app.ledger.db, "buyer").await.unwrap().expect("the account").id;
    let before = outbox(&app, None).await["totalCount"].as_i64().unwrap();
    store::outbox::publish(&app.ledger.db, "purchase.refunded", Some(buyer), &json!({ "purchaseId": "7" }), t).await.unwrap();
    store::outbox::publish(&app.ledger.db, "containers.stop_all", None, &json!({ "reason": "test" }), t).await.unwrap();

    // Newest first, in pages; the backlog is what is not delivered yet.
    let all = outbox(&app, None).await;
    assert_eq!(all["totalCount"], json!(before + 2));
    let newest = &all["edges"][0]["node"];
    assert_eq!(
        (&newest["topic"], &newest["accountId"], &newest["status"]),
        (&json!("containers.stop_all"), &Value::Null, &json!("PENDING"))
    );
    let refund = all["edges"][1]["node"].clone();
    assert_eq!((&refund["topic"], &refund["accountId"], &refund["attempts"]), (&json!("purchase.refunded"), &json!("buyer"), &json!(0)));
    assert_eq!(refund["eventId"], json!(format!("evt_{}", refund["id"].as_str().unwrap())));
    assert_eq!(serde_json::from_str::<Value>(refund["payload"].as_str().unwrap()).unwrap(), json!({ "purchaseId": "7" }));
    let page = app.gql(&app.admin, OUTBOX, json!({ "f": 1 })).await;
    assert_eq!(page["data"]["outbox"]["pageInfo"]["hasNextPage"], json!(true), "{page}");
    let cursor = page["data"]["outbox"]["pageInfo"]["endCursor"].clone();
    let next = app.gql(&app.admin, OUTBOX, json!({ "f": 1, "a": cursor })).await;
    assert_eq!(next["data"]["outbox"]["edges"][0]["node"]["id"], refund["id"], "{next}");
    let backlog = outbox(&app, Some("PENDING")).await["totalCount"].as_i64().unwrap();
    assert!(backlog >= 2, "{backlog}");

    // The receiver fails: the delivery job records it, and the outbox shows why.
    let delivering = run_job(&app, "DELIVER_WEBHOOKS").await;
    assert!(delivering["errors"].is_null(), "{delivering}");
    let failed = outbox(&app, Some("FAILED")).await;
    let event = failed["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .find(|n| n["id"] == refund["id"])
        .unwrap_or_else(|| panic!("the refund event failed: {failed}"));
    assert_eq!((&event["status"], &event["attempts"], &event["deliveredAt"]), (&json!("FAILED"), &json!(1), &Value::Null));
    assert!(event["lastError"].as_str().unwrap().contains("HTTP 500"), "{event}");
    assert!(!event["nextAttemptAt"].is_null(), "a retry is scheduled: {event}");
    assert_eq!(outbox(&app, Some("PENDING")).await["totalCount"].as_i64().unwrap(), backlog, "failed events are still backlog");
    let id = refund["id"].as_str().unwrap().to_string();
    let event_id = format!("evt_{id}");
    assert_eq!(receiver.event_ids().iter().filter(|e| **e == event_id).count(), 1);

    // The receiver recovers: redelivering sends the same event now, without waiting out the
    // backoff, and it is delivered.
    receiver.heal();
    let r = app.gql(&app.admin, REDELIVER, json!({ "id": id })).await;
    let redelivered = &r["data"]["redeliverEvent"];
    assert_eq!(
        (&redelivered["status"], &redelivered["eventId"], &redelivered["attempts"]),
        (&json!("DELIVERED"), &json!(event_id), &json!(1)),
        "{r}"
    );
    assert!(!redelivered["deliveredAt"].is_null() && redelivered["nextAttemptAt"].is_null(), "{r}");
    assert_eq!(receiver.event_ids().iter().filter(|e| **e == event_id).count(), 2, "the same event id: {:?}", receiver.event_ids());

    // Pressing again sends the same event again (receivers de-duplicate on its id).
    let again = app.gql(&app.admin, REDELIVER, json!({ "id": id })).await;
    assert_eq!(again["data"]["redeliverEvent"]["status"], json!("DELIVERED"), "{again}");
    assert_eq!(receiver.event_ids().iter().filter(|e| **e == event_id).count(), 3);
    let delivered = outbox(&app, Some("DELIVERED")).await;
    assert!(delivered["edges"].as_array().unwrap().iter().any(|e| e["node"]["id"] == json!(id)), "{delivered}");
    assert!(
        !outbox(&app, Some("FAILED")).await["edges"].as_array().unwrap().iter().any(|e| e["node"]["id"] == json!(id)),
        "no longer failed"
    );

    for missing in ["999999", "0", "-1", "abc", ""] {
        let r = app.gql(&app.admin, REDELIVER, json!({ "id": missing })).await;
        assert_eq!(error_code(&r), "NOT_FOUND", "{missing:?}: {r}");
    }
    // Deliver the rest, so the test leaves nothing failing behind.
    assert!(run_job(&app, "DELIVER_WEBHOOKS").await["errors"].is_null());
    let delivered_later = app.clock.now() + chrono::Duration::hours(2);
    app.clock.set(delivered_later);
    assert!(run_job(&app, "DELIVER_WEBHOOKS").await["errors"].is_null());
    assert_eq!(outbox(&app, Some("PENDING")).await["totalCount"], json!(0));
}

on_both!(jobs_are_listed_and_run_once_per_period);
on_both!(a_failed_job_run_shows_its_error_and_is_resumed);
on_both!(the_outbox_shows_a_failed_delivery_and_redelivery_sends_the_same_event);
