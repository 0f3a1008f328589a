use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Duration, Utc};
use credits::service::jobs::Job;
use serde_json::{Value, json};

const CLAIM: &str = "mutation($a: ID!, $k: String!) { claimLuckyCredits(input: {accountId: $a, idempotencyKey: $k}) { day amount expiresAt distribution } }";
const STATUS: &str = "{ me { luckyCredits { eligible reason claimedToday claimed maxCredits nextAvailableAt promotionEndsAt } } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

async fn subscriber(app: &TestApp, id: &str, plan: &str) {
    let r = app
        .gql(
            &app.service,
            "mutation($id: ID!, $p: String!) { createAccount(input: {externalId: $id, plan: $p}) { created } }",
            json!({ "id": id, "p": plan }),
        )
        .await;
    assert_eq!(r["data"]["createAccount"]["created"], json!(true), "{r}");
}

fn whole(value: &Value) -> i64 {
    value.as_str().unwrap().parse().unwrap()
}

async fn paid_subscribers_claim_a_bounded_random_amount_once_a_day(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    app.ledger.seed_draws(7);
    app.clock.set(at("2026-04-01T12:00:00Z"));
    subscriber(&app, "plus", "plus").await;
    subscriber(&app, "free", "free").await;
    let user = app.user("plus");

    let status = app.gql(&user, STATUS, json!({})).await;
    assert_eq!(status["data"]["me"]["luckyCredits"]["eligible"], json!(true), "{status}");
    assert_eq!(status["data"]["me"]["luckyCredits"]["maxCredits"], json!("700"));
    let first = app.gql(&user, CLAIM, json!({ "a": "plus", "k": "l-1" })).await;
    let payload = &first["data"]["claimLuckyCredits"];
    assert!((1..=700).contains(&whole(&payload["amount"])), "{first}");
    assert_eq!(payload["expiresAt"], json!("2026-04-02T12:00:00+00:00"), "valid 24 hours from claiming");
    assert_eq!(payload["distribution"], json!("uniform(1..=3500)"));
    assert_eq!(app.gql(&user, CLAIM, json!({ "a": "plus", "k": "l-1" })).await["data"], first["data"]);
    assert_eq!(error_code(&app.gql(&user, CLAIM, json!({ "a": "plus", "k": "l-2" })).await), "ALREADY_CLAIMED");
    let history = app.gql(&user, "{ me { history(first: 1) { edges { node { reason } } } } }", json!({})).await;
    let reason = history["data"]["me"]["history"]["edges"][0]["node"]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("uniform(1..=3500)") && reason.contains("capped at 700"), "the journal records the draw: {reason}");

    // Every day of the month: a draw within the plan's cap, never above it.
    for day in 2..=30 {
        app.clock.set(at(&format!("2026-04-{day:02}T00:00:00Z")));
        let r = app.gql(&user, CLAIM, json!({ "a": "plus", "k": format!("day-{day}") })).await;
        let amount = whole(&r["data"]["claimLuckyCredits"]["amount"]);
        assert!((1..=700).contains(&amount), "day {day}: {r}");
    }

    let free = app.gql(&app.user("free"), CLAIM, json!({ "a": "free", "k": "l" })).await;
    assert_eq!(error_code(&free), "NOT_ELIGIBLE");
    // The promotion ends at the end of 2026-04-30, UTC.
    app.clock.set(at("2026-04-30T23:59:59Z") + Duration::seconds(1));
    assert_eq!(error_code(&app.gql(&user, CLAIM, json!({ "a": "plus", "k": "late" })).await), "NOT_ELIGIBLE");
    let ended = app.gql(&user, STATUS, json!({})).await;
    assert_eq!(ended["data"]["me"]["luckyCredits"]["reason"], json!("the lucky-credit promotion has ended"));
    app.assert_audit_clean().await;
}

async fn concurrent_lucky_claims_grant_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    app.clock.set(at("2026-03-15T09:00:00Z"));
    subscriber(&app, "pro", "pro").await;
    let user = app.user("pro");
    let results = futures::future::join_all((0..20).map(|i| app.gql(&user, CLAIM, json!({ "a": "pro", "k": format!("k-{i}") })))).await;
    let granted: Vec<_> = results.iter().filter(|r| r["errors"].is_null()).collect();
    assert_eq!(granted.len(), 1, "{results:?}");
    assert!(results.iter().filter(|r| !r["errors"].is_null()).all(|r| error_code(r) == "ALREADY_CLAIMED"));
    let amount = whole(&granted[0]["data"]["claimLuckyCredits"]["amount"]);
    assert!((1..=3500).contains(&amount));
    app.assert_audit_clean().await;
}

on_both!(
    paid_subscribers_claim_a_bounded_random_amount_once_a_day,
    concurrent_lucky_claims_grant_once,
    the_daily_reset_writes_off_yesterday_and_drops_lucky_credits
);

const WAITING: &str = "{ me { luckyCredits { dropWaiting claimedToday } } }";

async fn drops_waiting(app: &TestApp, accounts: &[&str]) -> Vec<bool> {
    let mut waiting = Vec::new();
    for account in accounts {
        let r = app.gql(&app.user(account), WAITING, json!({})).await;
        waiting.push(r["data"]["me"]["luckyCredits"]["dropWaiting"].as_bool().unwrap_or_else(|| panic!("{r}")));
    }
    waiting
}

/// Lucky drops drawn for `day`, per account, straight from the table the reset writes.
async fn drops_on(app: &TestApp, day: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.ledger.db.clone();
    let sql = format!("SELECT COUNT(*) AS n FROM claims WHERE kind = 'lucky_drop' AND period = '{day}'");
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// The daily reset (domain.md §8): at 00:00 UTC yesterday's daily free and lucky credits are
/// written off, dated at their expiry; yesterday's unclaimed drops lapse; each paid subscriber
/// gets the day's drop, which the banner claims. Retried, it draws nothing twice; caught up after
/// downtime, it draws only for the current day.
async fn the_daily_reset_writes_off_yesterday_and_drops_lucky_credits(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    app.ledger.seed_draws(11);
    app.clock.set(at("2026-04-01T10:00:00Z"));
    for (id, plan) in [("plus", "plus"), ("pro", "pro"), ("free", "free")] {
        subscriber(&app, id, plan).await;
    }
    // The free account spends from its daily free credits, which writes the day's lot.
    assert!(app.spend("free", "10", "s-1").await["errors"].is_null());
    // Claimed before any reset: drawn at claim time, valid until tomorrow 10:00.
    let early = app.gql(&app.user("plus"), CLAIM, json!({ "a": "plus", "k": "p-1" })).await;
    assert!(early["errors"].is_null(), "{early}");

    let reset = at("2026-04-02T00:00:05Z");
    let report = app.ledger.run_job(Job::ResetDailyCredits, reset).await.unwrap();
    assert_eq!(report.periods, ["2026-04-02"]);
    app.clock.set(reset);
    let expiries = app
        .gql(
            &app.user("free"),
            "{ me { history(first: 5, filter: {kinds: [EXPIRE]}) { edges { node { amount effectiveAt } } } } }",
            json!({}),
        )
        .await;
    let edges = &expiries["data"]["me"]["history"]["edges"];
    assert_eq!(edges.as_array().map(Vec::len), Some(1), "{expiries}");
    assert_eq!(edges[0]["node"]["amount"], json!("-90"), "yesterday's unused daily free credits");
    assert_eq!(edges[0]["node"]["effectiveAt"], json!("2026-04-02T00:00:00+00:00"), "dated at the reset, not when written");
    let lucky = whole(&early["data"]["claimLuckyCredits"]["amount"]);
    assert_eq!(
        app.balance("plus").await,
        (10_000 + lucky).to_string(),
        "the plan's credits and the lucky lot, valid 24 h, not to midnight"
    );
    assert_eq!(drops_waiting(&app, &["plus", "pro"]).await, [true, true]);
    assert_eq!(drops_on(&app, "2026-04-02").await, 2, "paid subscribers only");

    // A retry of the same day draws nothing again.
    assert!(app.ledger.run_job(Job::ResetDailyCredits, reset + Duration::minutes(5)).await.unwrap().periods.is_empty());
    assert_eq!(drops_on(&app, "2026-04-02").await, 2);

    // Pro claims the drop that was drawn for it.
    app.clock.set(at("2026-04-02T08:00:00Z"));
    let claimed = app.gql(&app.user("pro"), CLAIM, json!({ "a": "pro", "k": "d-1" })).await;
    let amount = whole(&claimed["data"]["claimLuckyCredits"]["amount"]);
    assert!((1..=3500).contains(&amount), "{claimed}");
    let history = app.gql(&app.user("pro"), "{ me { history(first: 1) { edges { node { reason } } } } }", json!({})).await;
    let reason = history["data"]["me"]["history"]["edges"][0]["node"]["reason"].as_str().unwrap().to_string();
    assert!(reason.starts_with(&format!("lucky drop of {amount} for 2026-04-02")), "{reason}");
    assert_eq!(drops_waiting(&app, &["plus", "pro"]).await, [true, false]);

    // Down for three days: the missed resets run in order; the lapsed days get no drop, today does.
    let back = at("2026-04-05T06:00:00Z");
    let caught_up = app.ledger.run_job(Job::ResetDailyCredits, back).await.unwrap();
    assert_eq!(caught_up.periods, ["2026-04-03", "2026-04-04", "2026-04-05"]);
    assert_eq!((drops_on(&app, "2026-04-03").await, drops_on(&app, "2026-04-04").await, drops_on(&app, "2026-04-05").await), (0, 0, 2));
    app.clock.set(back);
    assert_eq!(app.balance("plus").await, "10000", "the lucky lot claimed on the 1st was written off");
    assert_eq!(drops_waiting(&app, &["plus", "pro"]).await, [true, true], "plus's unclaimed drop of the 2nd lapsed; the 5th's waits");
    app.assert_audit_clean().await;
}
