//! Who did what (issue 23): admin tokens name their operator; credits an operator moves carry
//! the name on their journal entries; every admin mutation lands in the operators' log; a
//! one-time console link opens a short admin session once; the whole audit runs in the
//! background and keeps its result. All through the real API, on both databases.

use crate::on_both;
use crate::support::{ADMIN_SUBJECT, Backend, TestApp, error_code};
use chrono::Duration;
use credits::auth::Role;
use credits::service::jobs::Job;
use serde_json::{Value, json};

const GRANT: &str = "mutation($a: ID!, $k: String!, $amount: CreditAmount!) {
    grantCredits(input: {accountId: $a, amount: $amount, class: PAID, source: ADJUSTMENT, reason: \"goodwill\", idempotencyKey: $k}) { lotId sequence } }";
const HISTORY: &str = "query($a: ID!) { account(id: $a) { history(first: 20) { nodes { sequence kind operation reason actor amount } } } }";
const LOG: &str = "query($s: String, $f: Int, $after: String) { adminActions(subject: $s, first: $f, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } nodes { id at subject action accountId arguments } } }";
const OPEN: &str = "mutation($code: String!) { openConsoleSession(code: $code) { token subject expiresAt } }";
const VIEWER: &str = "{ viewer { role accountId subject expiresAt } }";
const START_AUDIT: &str =
    "mutation { startAudit { id status requestedBy requestedAt startedAt finishedAt accounts lots entries problems error } }";
const AUDIT_RUNS: &str =
    "query($f: Int) { auditRuns(first: $f) { id status requestedBy startedAt finishedAt accounts lots entries problems error } }";

fn admin_named(app: &TestApp, subject: &str) -> String {
    app.keys.issue(Role::Admin, Some(subject), std::time::Duration::from_secs(600)).unwrap()
}

fn data<'a>(r: &'a Value, field: &str) -> &'a Value {
    assert!(r["errors"].is_null(), "{r}");
    &r["data"][field]
}

async fn history(app: &TestApp, account: &str) -> Vec<Value> {
    let r = app.gql(&app.service, HISTORY, json!({ "a": account })).await;
    data(&r, "account")["history"]["nodes"].as_array().unwrap_or_else(|| panic!("{r}")).clone()
}

async fn log(app: &TestApp, subject: Option<&str>) -> Vec<Value> {
    let r = app.gql(&app.admin, LOG, json!({ "s": subject, "f": 100 })).await;
    data(&r, "adminActions")["nodes"].as_array().unwrap_or_else(|| panic!("{r}")).clone()
}

async fn an_operators_actions_are_recorded_under_their_name(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("alice").await;
    let carol = admin_named(&app, "carol@ops");

    // Credits an operator moves carry their name on the entry; the service's do not.
    let granted = app.gql(&carol, GRANT, json!({ "a": "alice", "k": "g-1", "amount": "25" })).await;
    let sequence = data(&granted, "grantCredits")["sequence"].clone();
    assert!(app.spend("alice", "5", "s-1").await["errors"].is_null());
    let entries = history(&app, "alice").await;
    let grant = entries.iter().find(|e| e["sequence"] == sequence).unwrap_or_else(|| panic!("{entries:?}"));
    assert_eq!((&grant["operation"], &grant["actor"], &grant["reason"]), (&json!("grant"), &json!("carol@ops"), &json!("goodwill")));
    let spend = entries.iter().find(|e| e["operation"] == json!("spend")).unwrap_or_else(|| panic!("{entries:?}"));
    assert_eq!(spend["actor"], Value::Null, "the service's spend names no operator");

    // A replay by another operator is the same grant: it keeps the first operator's name.
    let replay = app.gql(&app.admin, GRANT, json!({ "a": "alice", "k": "g-1", "amount": "25" })).await;
    assert_eq!(data(&replay, "grantCredits")["sequence"], sequence);
    assert_eq!(history(&app, "alice").await.iter().filter(|e| e["operation"] == json!("grant")).count(), 1);

    // What moves no credits is in the operators' log, with the account and the arguments.
    let status =
        app.gql(&carol, "mutation { setAccountStatus(input: {accountId: \"alice\", status: SUSPENDED}) { status } }", json!({})).await;
    assert!(status["errors"].is_null(), "{status}");
    let verified =
        app.gql(&carol, "mutation($a: ID!) { setIdentityVerified(accountId: $a, verified: true) { id } }", json!({ "a": "alice" })).await;
    assert!(verified["errors"].is_null(), "{verified}");
    let coupon = app.gql(&app.admin, "mutation { createCoupon(input: {code: \"LOGGED\", credits: \"3\"}) { code } }", json!({})).await;
    assert!(coupon["errors"].is_null(), "{coupon}");
    // Refused, or not an operator's: not logged.
    let refused = app.gql(&carol, GRANT, json!({ "a": "nobody", "k": "g-2", "amount": "1" })).await;
    assert_eq!(error_code(&refused), "NOT_FOUND", "{refused}");
    let by_service =
        app.gql(&app.service, "mutation { setAccountStatus(input: {accountId: \"alice\", status: ACTIVE}) { status } }", json!({})).await;
    assert!(by_service["errors"].is_null(), "{by_service}");

    let carols = log(&app, Some("carol@ops")).await;
    let actions: Vec<&str> = carols.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["setIdentityVerified", "setAccountStatus", "grantCredits"], "newest first: {carols:?}");
    assert!(carols.iter().all(|a| a["subject"] == json!("carol@ops") && a["accountId"] == json!("alice")), "{carols:?}");
    let arguments: Value = serde_json::from_str(carols[2]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments["input"]["amount"], json!("25"), "variables are filled in: {arguments}");
    assert_eq!(arguments["input"]["idempotencyKey"], json!("g-1"));
    let everyone = log(&app, None).await;
    let names: Vec<(&str, &str)> = everyone.iter().map(|a| (a["subject"].as_str().unwrap(), a["action"].as_str().unwrap())).collect();
    assert_eq!(
        names,
        [
            (ADMIN_SUBJECT, "createCoupon"),
            ("carol@ops", "setIdentityVerified"),
            ("carol@ops", "setAccountStatus"),
            (ADMIN_SUBJECT, "grantCredits"),
            ("carol@ops", "grantCredits"),
        ],
        "the replay is logged too (it was asked), the refusal and the service's action are not"
    );
    assert_eq!(everyone[0]["accountId"], Value::Null, "a coupon names no account");

    // Paged like every list, and admin only.
    let first = app.gql(&app.admin, LOG, json!({ "f": 2 })).await;
    let page = data(&first, "adminActions");
    assert_eq!((&page["totalCount"], &page["pageInfo"]["hasNextPage"]), (&json!(5), &json!(true)));
    let next = app.gql(&app.admin, LOG, json!({ "f": 100, "after": page["pageInfo"]["endCursor"] })).await;
    assert_eq!(data(&next, "adminActions")["nodes"].as_array().unwrap().len(), 3);
    for token in [app.service.clone(), app.user("alice")] {
        assert_eq!(error_code(&app.gql(&token, LOG, json!({})).await), "FORBIDDEN");
    }

    // A refund by an operator carries the name too.
    let active =
        app.gql(&carol, "mutation { setAccountStatus(input: {accountId: \"alice\", status: ACTIVE}) { status } }", json!({})).await;
    assert!(active["errors"].is_null(), "{active}");
    let purchase = crate::support::buy(&app, "alice", Some("50"), None, "pay-1").await;
    let refund = app
        .gql(
            &carol,
            "mutation($p: ID!) { refundPurchase(input: {purchaseId: $p, idempotencyKey: \"r-1\"}) { credits } }",
            json!({ "p": purchase }),
        )
        .await;
    assert!(refund["errors"].is_null(), "{refund}");
    let refunds: Vec<Value> = history(&app, "alice").await.into_iter().filter(|e| e["operation"] == json!("refund")).collect();
    assert!(!refunds.is_empty() && refunds.iter().all(|e| e["actor"] == json!("carol@ops")), "{refunds:?}");
    app.assert_audit_clean().await;
}

async fn viewer_says_who_the_token_is(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("alice").await;
    let admin = data(&app.gql(&app.admin, VIEWER, json!({})).await, "viewer").clone();
    assert_eq!((&admin["role"], &admin["subject"], &admin["accountId"]), (&json!("ADMIN"), &json!(ADMIN_SUBJECT), &Value::Null));
    assert!(admin["expiresAt"].is_string(), "{admin}");
    let user = data(&app.gql(&app.user("alice"), VIEWER, json!({})).await, "viewer").clone();
    assert_eq!((&user["role"], &user["accountId"], &user["subject"]), (&json!("USER"), &json!("alice"), &Value::Null));
    assert_eq!(data(&app.gql(&app.service, VIEWER, json!({})).await, "viewer")["role"], json!("SERVICE"));
    assert_eq!(error_code(&app.gql("not-a-token", VIEWER, json!({})).await), "UNAUTHENTICATED");
}

async fn a_console_link_opens_one_session_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("alice").await;
    let now = app.clock.now();
    let code = app.ledger.create_console_link("dana@ops", Duration::minutes(10), now).await.unwrap();
    assert_eq!(code.len(), 43, "32 random bytes, base64url: {code}");

    // Exchanged without a token; the session's token names the link's operator.
    let opened = app.gql("", OPEN, json!({ "code": code })).await;
    let session = data(&opened, "openConsoleSession").clone();
    assert_eq!(session["subject"], json!("dana@ops"));
    let token = session["token"].as_str().unwrap().to_string();
    let viewer = data(&app.gql(&token, VIEWER, json!({})).await, "viewer").clone();
    assert_eq!((&viewer["role"], &viewer["subject"]), (&json!("ADMIN"), &json!("dana@ops")));
    let expires = chrono::DateTime::parse_from_rfc3339(session["expiresAt"].as_str().unwrap()).unwrap().to_utc();
    let lasts = expires - chrono::Utc::now();
    assert!(lasts > Duration::minutes(59) && lasts <= Duration::minutes(60), "one hour: {lasts}");
    let granted = app.gql(&token, GRANT, json!({ "a": "alice", "k": "g-dana", "amount": "1" })).await;
    assert!(granted["errors"].is_null(), "{granted}");
    assert_eq!(history(&app, "alice").await[0]["actor"], json!("dana@ops"));

    // Once only; an unknown code and an expired link alike; whatever token comes with them.
    let again = app.gql("", OPEN, json!({ "code": code })).await;
    assert_eq!(error_code(&again), "UNAUTHENTICATED", "{again}");
    let expired = app.ledger.create_console_link("dana@ops", Duration::minutes(1), now - Duration::minutes(2)).await.unwrap();
    for (code, token) in [(expired.as_str(), ""), ("nope", ""), ("", ""), (&"x".repeat(500)[..], ""), ("nope", app.admin.as_str())] {
        let r = app.gql(token, OPEN, json!({ "code": code })).await;
        assert_eq!(error_code(&r), "UNAUTHENTICATED", "{code}: {r}");
        assert!(r["errors"][0]["message"].as_str().unwrap().contains("console-link"), "says how to get a new one: {r}");
    }

    // Two tabs racing with one code: exactly one session.
    let code = app.ledger.create_console_link("erin@ops", Duration::minutes(10), app.clock.now()).await.unwrap();
    let answers = futures::future::join_all((0..6).map(|_| app.gql("", OPEN, json!({ "code": code })))).await;
    let opened = answers.iter().filter(|r| r["errors"].is_null()).count();
    assert_eq!(opened, 1, "{answers:?}");
    assert!(answers.iter().filter(|r| !r["errors"].is_null()).all(|r| error_code(r) == "UNAUTHENTICATED"), "{answers:?}");

    // Links are for a named operator, for at most a day.
    assert!(app.ledger.create_console_link(" ", Duration::minutes(10), now).await.is_err());
    assert!(app.ledger.create_console_link("frank", Duration::hours(25), now).await.is_err());
    assert!(app.ledger.create_console_link("frank", Duration::zero(), now).await.is_err());
}

async fn audit_runs(app: &TestApp) -> Vec<Value> {
    let r = app.gql(&app.admin, AUDIT_RUNS, json!({})).await;
    data(&r, "auditRuns").as_array().unwrap_or_else(|| panic!("{r}")).clone()
}

async fn the_whole_audit_runs_in_the_background(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    for account in ["alice", "bob"] {
        app.create_account(account).await;
        assert!(app.grant(account, "10", "PAID", None, &format!("g-{account}")).await["errors"].is_null());
    }
    assert_eq!(audit_runs(&app).await, Vec::<Value>::new());

    // Asking queues it; asking again while it waits answers the same run.
    let started = app.gql(&app.admin, START_AUDIT, json!({})).await;
    let run = data(&started, "startAudit").clone();
    assert_eq!(
        (&run["status"], &run["requestedBy"], &run["startedAt"], &run["accounts"]),
        (&json!("QUEUED"), &json!(ADMIN_SUBJECT), &Value::Null, &Value::Null)
    );
    let again = app.gql(&admin_named(&app, "carol@ops"), START_AUDIT, json!({})).await;
    assert_eq!(data(&again, "startAudit")["id"], run["id"], "one queued run at a time");

    // A worker's tick runs it and keeps what it found.
    let report = app.ledger.run_job(Job::AuditLedger, app.clock.now()).await.unwrap();
    assert_eq!(report.items, 1);
    let runs = audit_runs(&app).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let done = &runs[0];
    assert_eq!(
        (&done["id"], &done["status"], &done["accounts"], &done["problems"], &done["error"]),
        (&run["id"], &json!("CLEAN"), &json!(2), &json!([]), &Value::Null)
    );
    assert!(done["lots"].as_i64().unwrap() >= 2 && done["entries"].as_i64().unwrap() >= 2, "{done}");
    assert!(done["startedAt"].is_string() && done["finishedAt"].is_string(), "{done}");
    assert_eq!(app.ledger.run_job(Job::AuditLedger, app.clock.now()).await.unwrap().items, 0, "nothing waits now");

    // A ledger that disagrees with itself: the next run says where.
    use sea_orm::ConnectionTrait;
    let db = &app.ledger.db;
    db.execute_unprepared("UPDATE lots SET remaining_micros = remaining_micros - 1 WHERE id = (SELECT MIN(id) FROM lots)").await.unwrap();
    let second = app.gql(&app.admin, START_AUDIT, json!({})).await;
    let second_id = data(&second, "startAudit")["id"].clone();
    assert_ne!(second_id, run["id"], "a finished run is not answered again");
    // Through the API, as the console does it: the job's run is the worker's code.
    let ran = app.gql(&app.admin, "mutation { runJob(job: AUDIT_LEDGER) { items } }", json!({})).await;
    assert_eq!(data(&ran, "runJob")["items"], json!(1));
    let latest = audit_runs(&app).await[0].clone();
    assert_eq!((&latest["id"], &latest["status"]), (&second_id, &json!("PROBLEMS")), "{latest}");
    assert!(!latest["problems"].as_array().unwrap().is_empty(), "{latest}");
    db.execute_unprepared("UPDATE lots SET remaining_micros = remaining_micros + 1 WHERE id = (SELECT MIN(id) FROM lots)").await.unwrap();

    // A run whose worker died is taken again after an hour; before that it is left alone.
    let third = data(&app.gql(&app.admin, START_AUDIT, json!({})).await, "startAudit")["id"].clone();
    let third_id: i64 = third.as_str().unwrap().parse().unwrap();
    let an_hour_ago = app.clock.now() - Duration::minutes(30);
    credits::store::audit_runs::take(db, &credits::store::audit_runs::by_id(db, third_id).await.unwrap().unwrap(), an_hour_ago)
        .await
        .unwrap();
    assert_eq!(app.ledger.run_job(Job::AuditLedger, app.clock.now()).await.unwrap().items, 0, "its worker may still be at it");
    assert_eq!(audit_runs(&app).await[0]["status"], json!("RUNNING"));
    let later = app.clock.now() + Duration::minutes(31);
    assert_eq!(app.ledger.run_job(Job::AuditLedger, later).await.unwrap().items, 1, "taken over");
    assert_eq!(audit_runs(&app).await[0]["status"], json!("CLEAN"));

    // Admin only, and bounded.
    for token in [app.service.clone(), app.user("alice")] {
        assert_eq!(error_code(&app.gql(&token, AUDIT_RUNS, json!({})).await), "FORBIDDEN");
        assert_eq!(error_code(&app.gql(&token, START_AUDIT, json!({})).await), "FORBIDDEN");
    }
    for first in [0, 51, -1] {
        assert_eq!(error_code(&app.gql(&app.admin, AUDIT_RUNS, json!({ "f": first })).await), "BAD_USER_INPUT");
    }
}

on_both!(
    an_operators_actions_are_recorded_under_their_name,
    viewer_says_who_the_token_is,
    a_console_link_opens_one_session_once,
    the_whole_audit_runs_in_the_background,
);
