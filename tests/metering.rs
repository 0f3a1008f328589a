//! Metered usage through the API (domain.md §4 "When metered usage is charged"), one worked
//! example per resource, on the test program's arkain prices: Micro 1.96/h, Small 6.80/h,
//! Code Supporter +1.96/h, storage 0.018 per GB-hour over the plan's quota (Free: 5 GB),
//! traffic 8 per GB over 10 GB a month, sonnet-4.6 tokens, Snap 5 a use.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Utc};
use credits::service::jobs::Job;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

const SETTLEMENT: &str =
    "settlement { trigger total charged uncollected stoppedContainers lines { containerId resource kind model quantity unit amount } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

async fn start(app: &TestApp, account: &str, container: &str, tier: &str, code_supporter: bool, key: &str) -> Value {
    let query = format!(
        "mutation($a: ID!, $c: String!, $t: String!, $s: Boolean!, $k: String!) {{
           startContainer(input: {{accountId: $a, containerId: $c, tier: $t, codeSupporter: $s, idempotencyKey: $k}}) {{
             container {{ containerId tier state }} {SETTLEMENT} }} }}"
    );
    app.gql(&app.service, &query, json!({ "a": account, "c": container, "t": tier, "s": code_supporter, "k": key })).await
}

async fn stop(app: &TestApp, account: &str, container: &str, key: &str) -> Value {
    let query = format!(
        "mutation($a: ID!, $c: String!, $k: String!) {{
           stopContainer(input: {{accountId: $a, containerId: $c, idempotencyKey: $k}}) {{ container {{ containerId state }} {SETTLEMENT} }} }}"
    );
    app.gql(&app.service, &query, json!({ "a": account, "c": container, "k": key })).await
}

async fn record(app: &TestApp, account: &str, sample: Value, key: &str) -> Value {
    let query = format!("mutation($i: RecordUsageInput!) {{ recordUsage(input: $i) {{ {SETTLEMENT} }} }}");
    let mut input = sample;
    input["accountId"] = json!(account);
    input["idempotencyKey"] = json!(key);
    app.gql(&app.service, &query, json!({ "i": input })).await
}

fn line(container: Option<&str>, resource: &str, quantity: &str, unit: &str, amount: &str) -> Value {
    json!({ "containerId": container, "resource": resource, "kind": null, "model": null, "quantity": quantity, "unit": unit, "amount": amount })
}

async fn usage(app: &TestApp, account: &str, month: &str, day: &str) -> Value {
    let r = app
        .gql(
            &app.service,
            "query($a: ID!, $m: String!, $d: NaiveDate!) { account(id: $a) { usage(month: $m) { month total deducted uncollected
               resources { resource amount } containerDay(day: $d) { containerId resource quantity amount }
               aiLogs(first: 10) { edges { node { kind containerId model amount } } } } } }",
            json!({ "a": account, "m": month, "d": day }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["account"]["usage"].clone()
}

/// A session: 90 minutes of Micro with Code Supporter, 1 GB over the storage quota, and traffic
/// crossing the free 10 GB; all of it in the stop's one deduction. The restart two hours later
/// charges the storage used while stopped.
async fn a_stop_charges_the_session_in_one_deduction(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    app.create_account("a").await;
    app.grant("a", "100", "PAID", None, "g").await;
    let before: rust_decimal::Decimal = app.balance("a").await.parse().unwrap();

    let started = start(&app, "a", "web", "micro", true, "s-1").await;
    assert_eq!(
        started["data"]["startContainer"]["container"],
        json!({ "containerId": "web", "tier": "micro", "state": "RUNNING" }),
        "{started}"
    );
    assert_eq!(started["data"]["startContainer"]["settlement"], json!(null), "nothing accrued yet");
    assert!(record(&app, "a", json!({ "storage": { "containerId": "web", "gb": "6" } }), "u-1").await["errors"].is_null());
    app.clock.set(at("2026-11-10T11:30:00Z"));
    let traffic = record(&app, "a", json!({ "traffic": { "containerId": "web", "bytes": "10500000000" } }), "u-2").await;
    assert_eq!(traffic["data"]["recordUsage"]["settlement"], json!(null), "traffic accrues until the stop: {traffic}");

    let stopped = stop(&app, "a", "web", "x-1").await;
    let settlement = &stopped["data"]["stopContainer"]["settlement"];
    assert_eq!(stopped["data"]["stopContainer"]["container"]["state"], json!("STOPPED"), "{stopped}");
    assert_eq!(
        settlement["lines"],
        json!([
            // 5400 s x 1.96 / 3600
            line(Some("web"), "CONTAINER", "5400", "SECOND", "2.94"),
            line(Some("web"), "ADDON", "5400", "SECOND", "2.94"),
            // 0.5 GB past the free 10 GB, at 8 per GB
            line(Some("web"), "TRAFFIC", "500000000", "BYTE", "4"),
            // 1 GB over the 5 GB quota for 1.5 h, at 0.018 per GB-hour
            line(None, "STORAGE", "5400", "GB_SECOND", "0.027"),
        ])
    );
    assert_eq!(
        (&settlement["trigger"], &settlement["total"], &settlement["charged"], &settlement["uncollected"]),
        (&json!("STOP"), &json!("9.907"), &json!("9.907"), &json!("0"))
    );
    assert_eq!(stop(&app, "a", "web", "x-1").await["data"], stopped["data"], "a replay charges nothing more");
    assert_eq!(error_code(&stop(&app, "a", "web", "x-2").await), "INVALID_STATE");

    app.clock.set(at("2026-11-10T13:30:00Z"));
    let restarted = start(&app, "a", "web", "micro", false, "s-2").await;
    let settlement = &restarted["data"]["startContainer"]["settlement"];
    assert_eq!(settlement["trigger"], json!("START"), "{restarted}");
    assert_eq!(settlement["lines"], json!([line(None, "STORAGE", "7200", "GB_SECOND", "0.036")]), "2 h stopped, 1 GB over");
    assert_eq!(error_code(&start(&app, "a", "web", "micro", false, "s-3").await), "INVALID_STATE", "already running");

    let after: rust_decimal::Decimal = app.balance("a").await.parse().unwrap();
    assert_eq!((before - after).to_string(), "9.943");
    let report = usage(&app, "a", "2026-11", "2026-11-10").await;
    assert_eq!((&report["total"], &report["deducted"], &report["uncollected"]), (&json!("9.943"), &json!("9.943"), &json!("0")));
    assert_eq!(
        report["resources"],
        json!([
            { "resource": "CONTAINER", "amount": "2.94" }, { "resource": "ADDON", "amount": "2.94" },
            { "resource": "STORAGE", "amount": "0.063" }, { "resource": "TRAFFIC", "amount": "4" }, { "resource": "AI", "amount": "0" },
        ])
    );
    assert_eq!(report["containerDay"].as_array().unwrap().len(), 3, "the container's time, add-on and traffic that day: {report}");
    app.assert_audit_clean().await;
}

/// Running time is cut at UTC midnight, so each day's container log holds that day's seconds.
async fn a_session_across_midnight_is_logged_per_day(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T23:30:00Z"));
    app.create_account("a").await;
    app.grant("a", "100", "PAID", None, "g").await;
    start(&app, "a", "web", "small", false, "s").await;
    app.clock.set(at("2026-11-11T01:00:00Z"));
    let stopped = stop(&app, "a", "web", "x").await;
    assert_eq!(
        stopped["data"]["stopContainer"]["settlement"]["lines"],
        json!([line(Some("web"), "CONTAINER", "1800", "SECOND", "3.4"), line(Some("web"), "CONTAINER", "3600", "SECOND", "6.8")])
    );
    let first = usage(&app, "a", "2026-11", "2026-11-10").await;
    assert_eq!(first["containerDay"], json!([{ "containerId": "web", "resource": "CONTAINER", "quantity": "1800", "amount": "3.4" }]));
    let second = usage(&app, "a", "2026-11", "2026-11-11").await;
    assert_eq!(second["containerDay"], json!([{ "containerId": "web", "resource": "CONTAINER", "quantity": "3600", "amount": "6.8" }]));
    app.assert_audit_clean().await;
}

/// Overuse: the stop costs more than the account has. It takes what there is, records the rest
/// as uncollected, stops every other running container (their time is usage too) and writes the
/// stop-all command to the outbox in the same transaction.
async fn overuse_takes_what_there_is_and_stops_everything(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    app.create_account("a").await;
    app.grant("a", "1", "PAID", None, "g").await;
    start(&app, "a", "big", "small", false, "s-1").await;
    start(&app, "a", "tiny", "micro", false, "s-2").await;
    assert!(record(&app, "a", json!({ "storage": { "containerId": "tiny", "gb": "1" } }), "u").await["errors"].is_null());
    app.clock.set(at("2026-11-10T11:00:00Z"));
    let stopped = stop(&app, "a", "big", "x").await;
    let settlement = &stopped["data"]["stopContainer"]["settlement"];
    assert_eq!(
        (&settlement["total"], &settlement["charged"], &settlement["uncollected"]),
        (&json!("8.76"), &json!("1"), &json!("7.76")),
        "{stopped}"
    );
    assert_eq!(settlement["stoppedContainers"], json!(["tiny"]));
    assert_eq!(app.balance("a").await, "0");
    let containers = app.gql(&app.service, "{ account(id: \"a\") { containers { containerId state } } }", json!({})).await;
    assert_eq!(
        containers["data"]["account"]["containers"],
        json!([{ "containerId": "big", "state": "STOPPED" }, { "containerId": "tiny", "state": "INACTIVE" }]),
        "the one holding storage is inactive"
    );
    let db = &app.ledger.db;
    let rows =
        db.query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT topic, payload FROM outbox".to_string())).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].try_get::<String>("", "topic").unwrap(), "containers.stop_all");
    let payload: Value = serde_json::from_str(&rows[0].try_get::<String>("", "payload").unwrap()).unwrap();
    assert_eq!((&payload["command"], &payload["uncollected"]), (&json!("stop_all_containers"), &json!("7.76")));
    let report = usage(&app, "a", "2026-11", "2026-11-10").await;
    assert_eq!(
        (&report["total"], &report["deducted"], &report["uncollected"]),
        (&json!("8.76"), &json!("1"), &json!("7.76")),
        "the usage page shows the difference"
    );
    app.assert_audit_clean().await;
}

/// The 1st of the month settles every running container up to midnight, once; a stop racing it
/// charges each second exactly once whichever runs first.
async fn the_monthly_settlement_and_a_racing_stop_charge_each_second_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-30T22:00:00Z"));
    app.create_account("a").await;
    app.grant("a", "100", "PAID", None, "g").await;
    start(&app, "a", "one", "micro", false, "s-1").await;
    app.clock.set(at("2026-11-30T23:00:00Z"));
    start(&app, "a", "two", "micro", false, "s-2").await;

    let first = app.ledger.run_job(Job::SettleMonthlyUsage, at("2026-12-01T00:00:05Z")).await.unwrap();
    assert_eq!(first.periods, ["2026-12"]);
    assert!(app.ledger.run_job(Job::SettleMonthlyUsage, at("2026-12-01T01:00:00Z")).await.unwrap().periods.is_empty(), "once a month");
    app.clock.set(at("2026-12-01T00:00:05Z"));
    // November: 2 h of one and 1 h of two, at 1.96 an hour.
    assert_eq!(usage(&app, "a", "2026-11", "2026-11-30").await["total"], json!("5.88"));

    app.clock.set(at("2026-12-01T00:30:00Z"));
    let (stopped, _) = tokio::join!(stop(&app, "a", "two", "x"), app.ledger.run_job(Job::SettleMonthlyUsage, at("2026-12-01T00:30:00Z")));
    assert!(stopped["errors"].is_null(), "{stopped}");
    app.clock.set(at("2026-12-01T01:00:00Z"));
    stop(&app, "a", "one", "y").await;
    // December so far: 30 min of two, 1 h of one.
    assert_eq!(usage(&app, "a", "2026-12", "2026-12-01").await["total"], json!("2.94"));
    assert_eq!(app.balance("a").await, "91.18", "100 - 5.88 - 2.94: every second once");
    app.assert_audit_clean().await;
}

/// AI is charged as it is used: Chat by model and tokens, Snap per use; the logs show the model
/// for Chat only.
async fn ai_uses_are_charged_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    app.create_account("a").await;
    app.grant("a", "10", "PAID", None, "g").await;
    start(&app, "a", "web", "micro", false, "s").await;
    let chat =
        record(&app, "a", json!({ "ai": { "kind": "CHAT", "containerId": "web", "tokens": { "input": 1000, "output": 500 } } }), "ai-1")
            .await;
    assert_eq!(chat["data"]["recordUsage"]["settlement"]["charged"], json!("0.84"), "1000 x 0.00024 + 500 x 0.0012: {chat}");
    let snap = record(&app, "a", json!({ "ai": { "kind": "SNAP" } }), "ai-2").await;
    assert_eq!(snap["data"]["recordUsage"]["settlement"]["charged"], json!("5"));
    assert_eq!(record(&app, "a", json!({ "ai": { "kind": "SNAP" } }), "ai-2").await["data"], snap["data"], "a replay");
    let supporter =
        record(&app, "a", json!({ "ai": { "kind": "AI_SUPPORTER", "model": "gpt-5-nano", "tokens": { "cacheRead": 1000000 } } }), "ai-3")
            .await;
    assert_eq!(supporter["data"]["recordUsage"]["settlement"]["charged"], json!("0.4"));
    assert_eq!(app.balance("a").await, "3.76");
    let history =
        app.gql(&app.service, "{ account(id: \"a\") { history(first: 3) { edges { node { feature model amount } } } } }", json!({})).await;
    assert_eq!(
        history["data"]["account"]["history"]["edges"][2]["node"],
        json!({ "feature": "side-chat", "model": "claude-sonnet-4.6", "amount": "-0.84" })
    );
    let report = usage(&app, "a", "2026-11", "2026-11-10").await;
    assert_eq!(
        report["aiLogs"]["edges"],
        json!([
            { "node": { "kind": "AI_SUPPORTER", "containerId": null, "model": null, "amount": "0.4" } },
            { "node": { "kind": "SNAP", "containerId": null, "model": null, "amount": "5" } },
            { "node": { "kind": "CHAT", "containerId": "web", "model": "claude-sonnet-4.6", "amount": "0.84" } },
        ])
    );
    app.assert_audit_clean().await;
}

/// arkain's free trial: Snap and Side Chat share 3 free uses.
async fn snap_and_chat_share_three_free_trial_uses(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("a").await;
    let before = app.balance("a").await;
    for (i, kind) in ["SNAP", "CHAT", "SNAP"].iter().enumerate() {
        let tokens = if *kind == "CHAT" { json!({ "input": 10 }) } else { json!(null) };
        let r = record(&app, "a", json!({ "ai": { "kind": kind, "tokens": tokens } }), &format!("t-{i}")).await;
        assert_eq!(r["data"]["recordUsage"]["settlement"]["charged"], json!("0"), "use {i} is free: {r}");
    }
    assert_eq!(app.balance("a").await, before);
    let fourth = record(&app, "a", json!({ "ai": { "kind": "SNAP" } }), "t-3").await;
    assert_eq!(fourth["data"]["recordUsage"]["settlement"]["total"], json!("5"), "{fourth}");
    app.assert_audit_clean().await;
}

/// A plan change charges what accrued so far at the old plan's quota, then the new quota counts.
async fn a_plan_change_settles_at_the_old_quota(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    app.create_account("a").await;
    app.grant("a", "100", "PAID", None, "g").await;
    start(&app, "a", "web", "micro", false, "s").await;
    record(&app, "a", json!({ "storage": { "containerId": "web", "gb": "10" } }), "u").await;
    app.clock.set(at("2026-11-10T11:00:00Z"));
    let changed = app
        .gql(
            &app.service,
            "mutation { changePlan(input: {accountId: \"a\", plan: \"membership\", idempotencyKey: \"p\"}) { account { plan } } }",
            json!({}),
        )
        .await;
    assert!(changed["errors"].is_null(), "{changed}");
    // 1 h of Micro and 5 GB over Free's 5 GB quota for an hour: 1.96 + 0.09.
    let report = usage(&app, "a", "2026-11", "2026-11-10").await;
    assert_eq!(report["total"], json!("2.05"), "{report}");
    app.clock.set(at("2026-11-10T12:00:00Z"));
    let stopped = stop(&app, "a", "web", "x").await;
    assert_eq!(
        stopped["data"]["stopContainer"]["settlement"]["lines"],
        json!([line(Some("web"), "CONTAINER", "3600", "SECOND", "1.96")]),
        "10 GB is within Membership's 15"
    );
    app.assert_audit_clean().await;
}

async fn bad_metering_requests_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    app.grant("a", "10", "PAID", None, "g").await;
    assert_eq!(error_code(&start(&app, "a", "web", "warp", false, "k").await), "BAD_USER_INPUT");
    assert_eq!(error_code(&start(&app, "a", "web", "gpu_basic", false, "k").await), "NOT_ELIGIBLE", "GPU is for Membership");
    assert_eq!(error_code(&start(&app, "nobody", "web", "micro", false, "k").await), "NOT_FOUND");
    assert_eq!(error_code(&stop(&app, "a", "ghost", "k2").await), "NOT_FOUND");
    start(&app, "a", "web", "micro", false, "ok").await;
    for sample in [
        json!({ "storage": { "containerId": "web", "gb": "-1" } }),
        json!({ "storage": { "containerId": "web", "gb": "0.0000000001" } }),
        json!({ "traffic": { "containerId": "web", "bytes": "0" } }),
        json!({ "traffic": { "containerId": "web", "bytes": "1.5" } }),
        // Quantities are strings of plain digits too: never a JSON number, an exponent or a sign.
        json!({ "storage": { "containerId": "web", "gb": 6 } }),
        json!({ "storage": { "containerId": "web", "gb": 0.5 } }),
        json!({ "storage": { "containerId": "web", "gb": "6e0" } }),
        json!({ "storage": { "containerId": "web", "gb": "+6" } }),
        json!({ "storage": { "containerId": "web", "gb": "06" } }),
        json!({ "traffic": { "containerId": "web", "bytes": 1000 } }),
        json!({ "traffic": { "containerId": "web", "bytes": "1e3" } }),
        json!({ "traffic": { "containerId": "web", "bytes": "1_000" } }),
        json!({ "traffic": { "containerId": "web", "bytes": "1" }, "storage": { "containerId": "web", "gb": "1" } }),
        json!({}),
        json!({ "ai": { "kind": "CHAT" } }),
        json!({ "ai": { "kind": "CHAT", "model": "gpt-9", "tokens": { "input": 1 } } }),
        json!({ "ai": { "kind": "SNAP", "tokens": { "input": 1 } } }),
    ] {
        assert_eq!(error_code(&record(&app, "a", sample.clone(), "bad").await), "BAD_USER_INPUT", "{sample}");
    }
    assert_eq!(error_code(&record(&app, "a", json!({ "traffic": { "containerId": "ghost", "bytes": "1" } }), "g").await), "NOT_FOUND");
    let user = app.user("a");
    let forbidden = app
        .gql(
            &user,
            "mutation { stopContainer(input: {accountId: \"a\", containerId: \"web\", idempotencyKey: \"u\"}) { container { state } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    assert_eq!(app.balance("a").await, "10");
    app.assert_audit_clean().await;

    let carat = TestApp::spawn_with(backend, "carat").await;
    carat.create_account("c").await;
    assert_eq!(error_code(&start(&carat, "c", "web", "micro", false, "k").await), "FEATURE_DISABLED");
}

on_both!(
    a_stop_charges_the_session_in_one_deduction,
    a_session_across_midnight_is_logged_per_day,
    overuse_takes_what_there_is_and_stops_everything,
    the_monthly_settlement_and_a_racing_stop_charge_each_second_once,
    ai_uses_are_charged_at_once,
    snap_and_chat_share_three_free_trial_uses,
    a_plan_change_settles_at_the_old_quota,
    bad_metering_requests_change_nothing
);
