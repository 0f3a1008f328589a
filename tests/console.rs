//! The operator console (`/console`, `src/console.rs`, files in `web/console/`): served from
//! the binary like the portal, with the same strict Content-Security-Policy and revalidated
//! caching; its one GraphQL document registered at start, so it runs under `persisted_only`;
//! nothing in it points at another host; and in Chromium (`tests/browser/console.mjs`), with
//! every host but the server unreachable, an operator signs in, finds an account by prefix,
//! grants credits and sees the new entry, redelivers a failed webhook to a local receiver that
//! has recovered and sees it delivered, and sees a failed job run with its error; each page
//! passes axe-core and fits a phone.

use crate::on_both;
use crate::portal::{a_page_is_served, run_in_document};
use crate::support::browser::BrowserScript;
use crate::support::receiver::Receiver;
use crate::support::{Backend, LEDGER_PROGRAM, TestApp, TestDb, buy, error_code};
use serde_json::{Value, json};

const DOCUMENT: &str = include_str!("../web/console/console.graphql");

/// The console's page, its scripts and styles, and the portal's modules it imports.
const FILES: &[&str] = &[
    "/console/js/app.js",
    "/console/js/session.js",
    "/console/js/ui.js",
    "/console/js/pages/accounts.js",
    "/console/js/pages/account.js",
    "/console/js/pages/audit.js",
    "/console/js/pages/coupons.js",
    "/console/js/pages/jobs.js",
    "/console/js/pages/log.js",
    "/console/js/pages/webhooks.js",
    "/console/console.css",
    "/console/console.graphql",
    "/portal/js/api.js",
    "/portal/js/dom.js",
    "/portal/js/pager.js",
    "/portal/js/pages/history.js",
];

async fn the_console_is_served(app: &TestApp) {
    a_page_is_served(app, "console", &["console/js/app.js", "portal/style.css", "portal/pages.css", "console/console.css"], FILES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_come_from_the_server() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    the_console_is_served(&app).await;
}

/// Operators use the console in production too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_mode_serves_the_console() {
    let security = credits::app::Security { production: true, ..Default::default() };
    let app = TestApp::spawn_secured(TestDb::new(Backend::Sqlite).await, Backend::Sqlite, LEDGER_PROGRAM, security).await;
    the_console_is_served(&app).await;
}

/// Nothing the console loads names another host: its files hold no absolute URL, and every
/// import is a relative path to this server's own files.
#[test]
fn nothing_references_another_host() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/console");
    let mut stack = vec![root.clone()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            seen += 1;
            for absolute in ["http://", "https://", "ws://", "wss://", "//cdn", "url("] {
                assert!(!text.contains(absolute), "{} holds {absolute:?}", path.display());
            }
            for line in text.lines().filter(|line| line.trim_start().starts_with("import ")) {
                if let Some(from) = line.split(" from ").nth(1) {
                    let target = from.trim().trim_end_matches(';').trim_matches('\'');
                    assert!(target.starts_with("./") || target.starts_with("../"), "{}: {line}", path.display());
                }
            }
        }
    }
    assert!(seen >= 10, "only {seen} files under web/console");
}

/// The document is one of the server's, so a deployment that runs only registered documents
/// still runs the console's operations; any other text is refused.
async fn persisted_only_runs_the_consoles_operations(backend: Backend) {
    let security = credits::app::Security { persisted_only: true, ..Default::default() };
    assert!(credits::app::SERVER_DOCUMENTS.contains(&credits::console::DOCUMENT));
    assert_eq!(credits::console::DOCUMENT, DOCUMENT);
    let open = TestApp::spawn_with(backend, "arkain").await;
    open.create_account("strict-operator-1").await;
    let app = TestApp::spawn_secured(open.db.shared(), backend, "arkain", security).await;
    let run = |operation: &'static str, variables: Value| run_in_document(&app, &app.admin, DOCUMENT, operation, variables);
    let start = run("ConsoleStart", json!({})).await;
    assert!(start["data"]["program"]["name"].is_string(), "{start}");
    let found = run("ConsoleAccounts", json!({ "search": "strict-op", "first": 5 })).await;
    assert_eq!(found["data"]["accounts"]["nodes"][0]["id"], "strict-operator-1", "{found}");
    let account = run("ConsoleAccount", json!({ "id": "strict-operator-1" })).await;
    assert!(account["data"]["account"]["balance"]["total"].is_string(), "{account}");
    let jobs = run("ConsoleScheduledJobs", json!({})).await;
    assert!(jobs["data"]["scheduledJobs"].as_array().is_some_and(|j| !j.is_empty()), "{jobs}");
    let other = app.gql(&app.admin, "{ scheduledJobs { name } }", json!({})).await;
    assert_eq!(error_code(&other), "PERSISTED_QUERY_NOT_ALLOWED", "{other}");
}

on_both!(persisted_only_runs_the_consoles_operations);

/// The operator the console link is for.
const OPERATOR: &str = "olga@ops";

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// The console in Chromium (see the module's comment and `tests/browser/console.mjs`).
async fn an_operator_uses_the_console_in_chromium(backend: Backend) {
    let receiver = Receiver::start(u32::MAX).await;
    let sender = receiver.sender(b"console-test-secret-console-test-secret");
    let mut app = TestApp::spawn_with_webhooks(backend, "arkain", sender).await;
    // A failed job run and a failed delivery are what this test is about.
    app.expect_job_failures();
    app.clock.set(at("2026-04-20T12:00:00Z"));
    for id in ["acme-alice", "acme-bob", "zeta-carol", "job-breaker"] {
        app.create_account(id).await;
    }
    // A failed period of the monthly grant: a stored value the code does not know makes one
    // account's grant fail mid-sweep (as in tests/operations.rs), then the value is mended so
    // every page reads the account again; the period stays FAILED until it is run again.
    use sea_orm::ConnectionTrait;
    let db = &app.ledger.db;
    db.execute_unprepared("UPDATE accounts SET status = 'bogus' WHERE external_id = 'job-breaker'").await.unwrap();
    app.clock.set(at("2026-05-01T00:00:00Z"));
    let failed = app.gql(&app.admin, "mutation { runJob(job: GRANT_MONTHLY_PLAN_CREDITS) { items } }", json!({})).await;
    assert!(!failed["errors"].is_null(), "the run fails: {failed}");
    db.execute_unprepared("UPDATE accounts SET status = 'active' WHERE external_id = 'job-breaker'").await.unwrap();
    let runs = app.gql(&app.admin, "{ jobRuns(job: GRANT_MONTHLY_PLAN_CREDITS) { period status lastError } }", json!({})).await;
    let job_error = runs["data"]["jobRuns"][0]["lastError"].as_str().unwrap_or_else(|| panic!("{runs}")).to_string();

    // A paid purchase, for the refund button.
    let purchase = buy(&app, "acme-alice", Some("100"), None, "console-purchase").await;
    // A lot with terms of its own, for the lots table: a start, a scope and a priority.
    let termed = app
        .gql(
            &app.admin,
            "mutation { grantCredits(input: {accountId: \"acme-alice\", amount: \"3\", class: PROMOTIONAL, priority: 10,
               features: [\"snap\", \"side-chat\"], effectiveAt: \"2026-06-01T00:00:00Z\", idempotencyKey: \"termed\"}) { lotId } }",
            json!({}),
        )
        .await;
    assert!(termed["errors"].is_null(), "{termed}");
    let total_before_grant = app.balance("acme-alice").await;

    // A failed delivery: the receiver answers 500.
    let alice = credits::store::accounts::by_external_id(db, "acme-alice").await.unwrap().expect("the account").id;
    credits::store::outbox::publish(db, "purchase.refunded", Some(alice), &json!({ "purchaseId": "7" }), app.clock.now()).await.unwrap();
    let delivering = app.gql(&app.admin, "mutation { runJob(job: DELIVER_WEBHOOKS) { items } }", json!({})).await;
    assert!(delivering["errors"].is_null(), "{delivering}");
    let outbox = app.gql(&app.admin, "{ outbox(status: FAILED) { nodes { id eventId topic accountId lastError } } }", json!({})).await;
    let failed_event = outbox["data"]["outbox"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["topic"] == json!("purchase.refunded") && n["accountId"] == json!("acme-alice"))
        .unwrap_or_else(|| panic!("the event failed: {outbox}"))
        .clone();

    let screenshots = match (backend, std::env::var("CONSOLE_SCREENSHOTS")) {
        (Backend::Sqlite, Ok(dir)) => dir,
        _ => String::new(),
    };
    let bad_token = credits::auth::AuthKeys::new(b"not-this-servers-secret-not-this-servers")
        .issue(credits::auth::Role::Admin, Some("mallory"), std::time::Duration::from_secs(3600))
        .unwrap();
    let user_token = app.user("acme-alice");
    // The operator's link, made the way `credits console-link` makes it.
    let code = app.ledger.create_console_link(OPERATOR, chrono::Duration::minutes(10), app.clock.now()).await.unwrap();
    let link = credits::links::console(&credits::links::parse_public_url(&app.address).unwrap(), &code);
    // A token pasted into the form, for a second operator.
    let pasted = app.keys.issue(credits::auth::Role::Admin, Some("pat@ops"), std::time::Duration::from_secs(600)).unwrap();
    let event_id = failed_event["id"].as_str().unwrap().to_string();
    let env = [
        ("LINK", link.as_str()),
        ("TOKEN", pasted.as_str()),
        ("AUDIT", "1"),
        ("BAD_TOKEN", bad_token.as_str()),
        ("USER_TOKEN", user_token.as_str()),
        ("SEARCH", "acme-"),
        ("ACCOUNT", "acme-alice"),
        ("PURCHASE", purchase.as_str()),
        ("EVENT", event_id.as_str()),
        ("FAILED_JOB", "GRANT_MONTHLY_PLAN_CREDITS"),
        ("CONSOLE_SCREENSHOTS", screenshots.as_str()),
    ];
    let Some(mut script) = BrowserScript::start("console.mjs", &app.address, &env).await else {
        return;
    };
    script.reached("event-failed-seen").await;
    receiver.heal();
    script.resume("healed").await;
    // The page queued the whole audit; a worker runs it (here, the job run at once).
    script.reached("audit-queued").await;
    let audited = app.gql(&app.admin, "mutation { runJob(job: AUDIT_LEDGER) { items } }", json!({})).await;
    assert!(audited["errors"].is_null(), "{audited}");
    let seen = script.finish().await;

    // Signed in through the link: its code left the address bar at once, and the admin token
    // it was exchanged for is kept in this tab's session storage only.
    assert_eq!(seen["signIn"]["addressBarAtOnce"], format!("{}/console#/accounts", app.address), "{seen}");
    assert_eq!(seen["signIn"]["viewer"], OPERATOR, "{seen}");
    assert_eq!(seen["signIn"]["stored"], true, "{seen}");
    assert_eq!(seen["signIn"]["localStorage"], 0, "{seen}");
    assert_eq!(seen["signIn"]["cookies"], "", "{seen}");
    // Found by prefix, newest first, only those.
    assert_eq!(seen["found"], json!(["acme-bob", "acme-alice"]), "{seen}");
    let terms = seen["lotTerms"].as_array().unwrap_or_else(|| panic!("{seen}"));
    assert_eq!(terms.len(), 1, "{seen}");
    let terms = terms[0].as_str().unwrap();
    assert!(terms.starts_with("starts ") && terms.ends_with("; only side-chat, snap; priority 10"), "{terms}");
    // The grant: its entry headed the history when it was made, with the reason and the
    // operator (the refund's entries came after it).
    let history = app
        .gql(
            &app.admin,
            "{ account(id: \"acme-alice\") { balance { total } history(first: 10) { nodes { sequence reason actor } } } }",
            json!({}),
        )
        .await;
    let grant = history["data"]["account"]["history"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["sequence"] == seen["granted"]["firstEntry"]["sequence"])
        .unwrap_or_else(|| panic!("the entry the page showed: {seen} {history}"))
        .clone();
    assert_eq!(grant["reason"], "Goodwill for the outage", "{history}");
    assert_eq!(grant["actor"], OPERATOR, "{history}");
    assert_eq!(seen["granted"]["outcome"], "Granted 25 credits.", "{seen}");
    assert_eq!(seen["granted"]["firstEntry"]["reason"], "Goodwill for the outage", "{seen}");
    assert_eq!(seen["granted"]["firstEntry"]["actor"], OPERATOR, "the entry names the operator: {seen}");
    let granted_total = total_before_grant.parse::<rust_decimal::Decimal>().unwrap() + rust_decimal::Decimal::from(25);
    assert_eq!(seen["granted"]["total"], granted_total.to_string(), "{seen}");
    // The refund: the purchase refunded, and the total the page then shows is the server's.
    assert!(seen["refund"]["outcome"].as_str().unwrap().starts_with("Refunded "), "{seen}");
    assert_eq!(seen["refund"]["total"], history["data"]["account"]["balance"]["total"], "{seen}");
    let refunded = app.gql(&app.admin, "{ account(id: \"acme-alice\") { purchases { nodes { id status } } } }", json!({})).await;
    assert_eq!(refunded["data"]["account"]["purchases"]["nodes"][0], json!({ "id": purchase, "status": "REFUNDED" }), "{refunded}");
    // Suspended, then active again.
    assert_eq!(seen["statuses"], json!(["Status is now Suspended.", "Status is now Active."]), "{seen}");
    // Identity verified from the page.
    assert_eq!(seen["verified"], json!({ "outcome": "Identity marked verified.", "button": "Mark identity not verified" }), "{seen}");
    let identity = app.gql(&app.admin, "{ account(id: \"acme-alice\") { identityVerified } }", json!({})).await;
    assert_eq!(identity["data"]["account"]["identityVerified"], true, "{identity}");
    // The failed event, then redelivered to the healed receiver under the same event id.
    assert!(seen["webhook"]["failedError"].as_str().unwrap().contains("HTTP 500"), "{seen}");
    assert_eq!(seen["webhook"]["outcome"], format!("Event {} delivered.", failed_event["eventId"].as_str().unwrap()), "{seen}");
    assert_eq!(seen["webhook"]["deliveredStatus"], "DELIVERED", "{seen}");
    let event_id = failed_event["eventId"].as_str().unwrap().to_string();
    assert_eq!(receiver.event_ids().iter().filter(|e| **e == event_id).count(), 2, "{:?}", receiver.event_ids());
    // The failed job run with its error, on the dashboard and among the job's periods.
    assert_eq!(seen["jobs"]["status"], "FAILED", "{seen}");
    assert_eq!(seen["jobs"]["lastError"], job_error, "{seen}");
    assert_eq!(seen["jobs"]["periods"][0], json!(["2026-05", "FAILED", job_error]), "{seen}");
    assert!(seen["jobs"]["ranNow"].as_str().unwrap().starts_with("Purge idempotency keys ran"), "{seen}");
    // Coupons: created from the page and listed with its cap.
    assert_eq!(seen["coupon"]["row"], json!(["SPRING-26", "10", "0", "100 of 100"]), "{seen}");
    // The whole audit, run in the background, shown with what the API says of it.
    let runs = app.gql(&app.admin, "{ auditRuns(first: 1) { id status requestedBy accounts } }", json!({})).await;
    let run = &runs["data"]["auditRuns"][0];
    assert_eq!(run["requestedBy"], OPERATOR, "{runs}");
    assert_eq!(seen["audit"]["status"], run["status"], "{seen}");
    assert!(seen["audit"]["queued"].as_str().unwrap().contains("queued"), "{seen}");
    assert_eq!(seen["audit"]["row"][0], run["id"], "{seen}");
    // The admin log: this operator's actions, newest first, each with its account.
    let log: Vec<Vec<String>> = serde_json::from_value(seen["log"].clone()).unwrap();
    assert!(log.iter().all(|row| row[0] == OPERATOR), "{log:?}");
    let actions: Vec<&str> = log.iter().map(|row| row[1].as_str()).collect();
    assert_eq!(
        actions,
        [
            "startAudit",
            "createCoupon",
            "runJob",
            "redeliverEvent",
            "setAccountStatus",
            "setAccountStatus",
            "setIdentityVerified",
            "refundPurchase",
            "grantCredits"
        ],
        "{log:?}"
    );
    for named in [4, 5, 6, 8] {
        assert_eq!(log[named][2], "acme-alice", "{log:?}");
    }
    // Refusals: a token the server does not accept, a user's token, and signing out.
    assert_eq!(seen["refused"]["bad"]["message"], "Your session has ended: it expired or the server refused it. Sign in again.", "{seen}");
    assert_eq!(seen["refused"]["bad"]["stored"], Value::Null, "{seen}");
    assert_eq!(seen["refused"]["user"]["message"], "That token is not an operator’s: the console needs an admin token.", "{seen}");
    assert_eq!(seen["refused"]["signedOut"]["message"], "You are signed out.", "{seen}");
    assert_eq!(seen["refused"]["signedOut"]["stored"], Value::Null, "{seen}");
    // The link worked once; a pasted admin token signs in too.
    assert!(seen["refused"]["linkAgain"]["message"].as_str().unwrap().contains("does not work any more"), "{seen}");
    assert_eq!(seen["refused"]["linkAgain"]["addressBar"], format!("{}/console#/accounts", app.address), "{seen}");
    assert_eq!(seen["pasted"]["viewer"], "pat@ops", "{seen}");
    assert_eq!(seen["pasted"]["stored"], true, "{seen}");
    assert_eq!(seen["pasted"]["localStorage"], 0, "{seen}");
    assert_eq!(seen["pasted"]["cookies"], "", "{seen}");
    for (page, widths) in seen["phone"].as_object().unwrap() {
        assert!(widths["scrollWidth"].as_i64() <= widths["clientWidth"].as_i64(), "{page} scrolls sideways on a phone: {widths}");
    }
    for (page, violations) in seen["axe"].as_object().unwrap() {
        assert_eq!(violations, &json!([]), "axe-core on {page}");
    }
    assert!(seen["axe"].as_object().unwrap().len() >= 9, "{seen}");
    assert_eq!(seen["foreign"], json!([]), "the page tried to reach another host: {seen}");
    assert_eq!(seen["problems"], json!([]), "errors in the page (a policy violation, a failed load): {seen}");
}

on_both!(an_operator_uses_the_console_in_chromium);

/// The account page shows the auto top-up and spend limits the user set, as the API gives them
/// (a failed payment counted, what a limit used), and the operator turns auto top-up
/// off: the API then says it is off, with the setting kept.
async fn an_operator_sees_and_turns_off_auto_top_up(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("dana").await;
    let user = app.user("dana");
    let set = app
        .gql(
            &user,
            "mutation { setAutoTopUp(input: {accountId: \"dana\", enabled: true, threshold: \"500\", amount: \"100\", monthlyCap: \"1000\"}) {
               pendingPurchase { id } } }",
            json!({}),
        )
        .await;
    // 50 plan credits are under 500: a top-up is asked for at once; its payment fails.
    let pending = set["data"]["setAutoTopUp"]["pendingPurchase"]["id"].as_str().unwrap_or_else(|| panic!("{set}")).to_string();
    let failed = app
        .gql(
            &app.service,
            "mutation($id: ID!) { failPurchase(input: {purchaseId: $id, reason: \"card declined\", idempotencyKey: \"f1\"}) { status } }",
            json!({ "id": pending }),
        )
        .await;
    assert!(failed["errors"].is_null(), "{failed}");
    let limits = app
        .gql(
            &user,
            "mutation { setSpendLimits(input: {accountId: \"dana\", maxPerCharge: \"20\",
               limits: [{feature: \"chat\", period: DAY, max: \"4\"}, {period: MONTH, max: \"40\"}]}) { maxPerCharge } }",
            json!({}),
        )
        .await;
    assert!(limits["errors"].is_null(), "{limits}");
    let spent = app.spend("dana", "3", "chat-3").await;
    assert!(spent["errors"].is_null(), "{spent}");
    let api = app.gql(&app.admin, "{ account(id: \"dana\") { autoTopUp { boughtThisMonth pendingPurchase { id } } } }", json!({})).await;
    let screenshots = match (backend, std::env::var("CONSOLE_SCREENSHOTS")) {
        (Backend::Sqlite, Ok(dir)) => dir,
        _ => String::new(),
    };
    let env = [("TOKEN", app.admin.as_str()), ("ACCOUNT", "dana"), ("CONSOLE_SCREENSHOTS", screenshots.as_str())];
    let Some(script) = BrowserScript::start("console-controls.mjs", &app.address, &env).await else {
        return;
    };
    let seen = script.finish().await;
    assert_eq!(seen["foreign"], json!([]), "{seen}");
    assert_eq!(seen["problems"], json!([]), "{seen}");
    assert_eq!(seen["axe"], json!([]), "axe-core on the account page");
    let before = &seen["before"];
    for word in ["null", "undefined", "NaN", "[object"] {
        assert!(!before["text"].as_str().unwrap().contains(word), "{word} on the page: {seen}");
    }
    assert_eq!(before["enabled"], "true", "{seen}");
    assert_eq!(before["summary"], "On When its credits fall under 500, buy 100 each time; at most 1,000 a month.", "{seen}");
    assert_eq!(before["failures"], "1 of 3", "{seen}");
    // The spend after the failure asked for another top-up, as the API says.
    let api = &api["data"]["account"]["autoTopUp"];
    assert_eq!(before["bought"], format!("{} of 1,000", api["boughtThisMonth"].as_str().unwrap()), "{seen} {api}");
    let pending_now = api["pendingPurchase"]["id"].as_str().unwrap_or_else(|| panic!("another top-up: {api}"));
    assert_ne!(pending_now, pending, "the failed one is not pending");
    assert_eq!(before["pending"], format!("#{pending_now}, 100 credits"), "{seen}");
    assert_eq!(before["offButton"], true, "{seen}");
    assert_eq!(before["limits"][0][0], "chat:DAY", "{seen}");
    assert_eq!(before["limits"][0].as_array().unwrap()[1..5], [json!("chat"), json!("Day"), json!("4"), json!("3")], "{seen}");
    assert_eq!(before["limits"][1][0], "*:MONTH", "{seen}");
    assert_eq!(before["perCharge"], "At most 20 credits per charge.", "{seen}");
    assert_eq!(seen["outcome"], "Auto top-up turned off. The user can turn it on again.", "{seen}");
    assert_eq!(seen["after"]["enabled"], "false", "{seen}");
    assert_eq!(seen["after"]["offButton"], false, "{seen}");
    let now = app.gql(&app.admin, "{ account(id: \"dana\") { autoTopUp { enabled threshold amount monthlyCap } } }", json!({})).await;
    assert_eq!(
        now["data"]["account"]["autoTopUp"],
        json!({ "enabled": false, "threshold": "500", "amount": "100", "monthlyCap": "1000" }),
        "off, the setting kept: {now}"
    );
}

on_both!(an_operator_sees_and_turns_off_auto_top_up);
