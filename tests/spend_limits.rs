//! Spend limits set by the user (issue 26), through the real API on both databases: caps per
//! feature or every feature per UTC day or month, a maximum per charge, holds counting when taken
//! and giving room back when settled, market jobs rejected, metered usage charged and shown
//! exceeded, the refusal stored and replayed under its key, and concurrent spends against a cap.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Utc};
use credits::service::jobs::Job;
use serde_json::{Value, json};

const SET: &str = "mutation($i: SetSpendLimitsInput!) {
    setSpendLimits(input: $i) { maxPerCharge limits { feature period max used remaining resetsAt exceeded } } }";
const LIMITS: &str =
    "query($a: ID!) { account(id: $a) { spendLimits { maxPerCharge limits { feature period max used remaining resetsAt exceeded } } } }";
const SPEND: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!, $f: String!) {
    spendCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: $f}) { amount availableAfter } }";
const RESERVE: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!, $s: Int) {
    reserveCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"video\", holdSeconds: $s}) { reservationId } }";
const CAPTURE: &str = "mutation($r: ID!, $amt: CreditAmount!, $k: String!) {
    captureReservation(input: {reservationId: $r, amount: $amt, idempotencyKey: $k}) { status captured released } }";
const RELEASE: &str = "mutation($r: ID!, $k: String!) {
    releaseReservation(input: {reservationId: $r, idempotencyKey: $k}) { status released } }";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

async fn set(app: &TestApp, token: &str, account: &str, limits: Value, max_per_charge: Option<&str>) -> Value {
    let input = json!({ "accountId": account, "limits": limits, "maxPerCharge": max_per_charge });
    app.gql(token, SET, json!({ "i": input })).await
}

async fn set_ok(app: &TestApp, account: &str, limits: Value, max_per_charge: Option<&str>) {
    let r = set(app, &app.service, account, limits, max_per_charge).await;
    assert!(r["errors"].is_null(), "{r}");
}

async fn spend(app: &TestApp, account: &str, amount: &str, key: &str, feature: &str) -> Value {
    app.gql(&app.service, SPEND, json!({ "a": account, "amt": amount, "k": key, "f": feature })).await
}

/// The account's limits as `account.spendLimits` shows them.
async fn limits(app: &TestApp, account: &str) -> Value {
    let r = app.gql(&app.service, LIMITS, json!({ "a": account })).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["account"]["spendLimits"].clone()
}

/// The `used` of the account's `index`th limit.
async fn used(app: &TestApp, account: &str, index: usize) -> String {
    limits(app, account).await["limits"][index]["used"].as_str().unwrap().to_string()
}

fn extensions(r: &Value) -> &Value {
    &r["errors"][0]["extensions"]
}

async fn funded(backend: Backend, program: Option<&str>, account: &str, credits: &str) -> TestApp {
    let app = match program {
        Some(program) => TestApp::spawn_with(backend, program).await,
        None => TestApp::spawn(backend).await,
    };
    app.clock.set(at("2026-12-03T10:00:00Z"));
    app.create_account(account).await;
    let r = app.grant(account, credits, "PAID", None, "fund").await;
    assert!(r["errors"].is_null(), "{r}");
    app
}

/// A daily cap on every feature: reaching it exactly is allowed, one micro-credit more is
/// refused with the limit, what was used and when it resets, and nothing is charged; the
/// refusal replays under its key even after the cap is raised; the next UTC day starts over.
async fn a_daily_cap_refuses_the_spend_that_would_cross_it(backend: Backend) {
    let app = funded(backend, None, "a", "1000").await;
    set_ok(&app, "a", json!([{ "feature": null, "period": "DAY", "max": "100" }]), None).await;
    assert!(spend(&app, "a", "60", "s-1", "chat").await["errors"].is_null());
    assert!(spend(&app, "a", "40", "s-2", "image").await["errors"].is_null(), "reaching the cap exactly is allowed");
    let refused = spend(&app, "a", "0.000001", "s-3", "chat").await;
    assert_eq!(error_code(&refused), "SPEND_LIMIT_REACHED", "{refused}");
    let ext = extensions(&refused);
    assert_eq!(
        (&ext["period"], &ext["limit"], &ext["used"], &ext["requested"], &ext["resetsAt"], &ext["feature"]),
        (&json!("DAY"), &json!("100"), &json!("100"), &json!("0.000001"), &json!("2026-12-04T00:00:00Z"), &Value::Null),
        "{refused}"
    );
    assert_eq!(app.balance("a").await, "900", "a refusal charges nothing");
    let state = limits(&app, "a").await;
    assert_eq!(
        state["limits"][0],
        json!({ "feature": null, "period": "DAY", "max": "100", "used": "100", "remaining": "0",
                "resetsAt": "2026-12-04T00:00:00+00:00", "exceeded": false })
    );

    // Raised: the stored refusal still replays under its key; a new key goes through.
    set_ok(&app, "a", json!([{ "period": "DAY", "max": "200" }]), None).await;
    let replay = spend(&app, "a", "0.000001", "s-3", "chat").await;
    assert_eq!(replay["errors"], refused["errors"], "the same refusal, replayed");
    assert!(spend(&app, "a", "0.000001", "s-4", "chat").await["errors"].is_null(), "raising keeps what was used: 100 of 200");
    assert_eq!(used(&app, "a", 0).await, "100.000001");

    // The last second of the day still counts; at midnight UTC the count starts over.
    set_ok(&app, "a", json!([{ "period": "DAY", "max": "100" }]), None).await;
    app.clock.set(at("2026-12-03T23:59:59.999999Z"));
    assert_eq!(error_code(&spend(&app, "a", "1", "s-5", "chat").await), "SPEND_LIMIT_REACHED");
    app.clock.set(at("2026-12-04T00:00:00Z"));
    assert_eq!(used(&app, "a", 0).await, "0");
    assert!(spend(&app, "a", "100", "s-6", "chat").await["errors"].is_null(), "a new day");
    app.assert_audit_clean().await;
}

/// A monthly cap on one feature leaves other features alone and resets on the 1st; the maximum
/// per charge refuses a single charge over it whatever the caps say.
async fn monthly_feature_caps_and_the_maximum_per_charge(backend: Backend) {
    let app = funded(backend, None, "a", "1000").await;
    app.clock.set(at("2026-12-31T20:00:00Z"));
    let limits_given = json!([{ "feature": "image", "period": "MONTH", "max": "50" }]);
    set_ok(&app, "a", limits_given, Some("30")).await;
    assert!(spend(&app, "a", "30", "i-1", "image").await["errors"].is_null());
    let over = spend(&app, "a", "30", "i-2", "image").await;
    let ext = extensions(&over);
    assert_eq!(
        (&ext["code"], &ext["feature"], &ext["period"], &ext["limit"], &ext["used"], &ext["resetsAt"]),
        (&json!("SPEND_LIMIT_REACHED"), &json!("image"), &json!("MONTH"), &json!("50"), &json!("30"), &json!("2027-01-01T00:00:00Z")),
        "{over}"
    );
    assert!(spend(&app, "a", "30", "c-1", "chat").await["errors"].is_null(), "another feature is not capped");
    let big = spend(&app, "a", "30.000001", "c-2", "chat").await;
    let ext = extensions(&big);
    assert_eq!((&ext["code"], &ext["period"], &ext["limit"]), (&json!("SPEND_LIMIT_REACHED"), &json!("CHARGE"), &json!("30")), "{big}");
    assert!(ext["resetsAt"].is_null(), "the per-charge maximum never resets: {big}");
    app.clock.set(at("2027-01-01T00:00:00Z"));
    assert!(spend(&app, "a", "30", "i-3", "image").await["errors"].is_null(), "a new month");
    // Clearing the set lifts every limit.
    set_ok(&app, "a", json!([]), None).await;
    assert_eq!(limits(&app, "a").await, json!({ "maxPerCharge": null, "limits": [] }));
    assert!(spend(&app, "a", "100", "c-3", "chat").await["errors"].is_null());
    app.assert_audit_clean().await;
}

/// A hold counts when taken; a release gives its room back, a capture of less gives back the
/// difference, and a hold that lapses gives it back when the job releases it: each to the day
/// the hold was counted in.
async fn holds_count_and_settling_gives_room_back(backend: Backend) {
    let app = funded(backend, None, "a", "1000").await;
    set_ok(&app, "a", json!([{ "period": "DAY", "max": "100" }]), None).await;
    let reserve = |amount: &'static str, key: &'static str, hold: Option<i64>| {
        let app = &app;
        async move { app.gql(&app.service, RESERVE, json!({ "a": "a", "amt": amount, "k": key, "s": hold })).await }
    };
    let first = reserve("70", "r-1", Some(3600)).await;
    let id = first["data"]["reserveCredits"]["reservationId"].clone();
    assert_eq!(used(&app, "a", 0).await, "70");
    let refused = reserve("31", "r-2", Some(3600)).await;
    assert_eq!((error_code(&refused), &extensions(&refused)["used"]), ("SPEND_LIMIT_REACHED", &json!("70")), "{refused}");
    assert_eq!(error_code(&spend(&app, "a", "31", "s-1", "chat").await), "SPEND_LIMIT_REACHED", "the hold counts for spends too");

    let released = app.gql(&app.service, RELEASE, json!({ "r": id, "k": "rel-1" })).await;
    assert_eq!(released["data"]["releaseReservation"]["status"], json!("RELEASED"), "{released}");
    assert_eq!(used(&app, "a", 0).await, "0", "a release gives the room back");

    let second = reserve("80", "r-3", Some(3600)).await;
    let id = second["data"]["reserveCredits"]["reservationId"].clone();
    let captured = app.gql(&app.service, CAPTURE, json!({ "r": id, "amt": "25", "k": "cap-1" })).await;
    assert_eq!(captured["data"]["captureReservation"]["captured"], json!("25"), "{captured}");
    assert_eq!(used(&app, "a", 0).await, "25", "a capture of less gives back the difference");

    // Held today, lapsed and released by the job tomorrow: today's count gets it back, and
    // tomorrow's never saw it.
    app.clock.set(at("2026-12-03T23:00:00Z"));
    assert!(reserve("75", "r-4", Some(7200)).await["errors"].is_null());
    assert_eq!(used(&app, "a", 0).await, "100");
    app.clock.set(at("2026-12-04T02:00:00Z"));
    app.ledger.run_job(Job::ExpireReservations, app.clock.now()).await.unwrap();
    assert_eq!(used(&app, "a", 0).await, "0", "a new day, untouched by the release");
    app.clock.set(at("2026-12-03T23:30:00Z"));
    assert_eq!(used(&app, "a", 0).await, "25", "the day it was counted in got its room back");
    app.clock.set(at("2026-12-04T02:00:00Z"));
    app.assert_audit_clean().await;
}

/// A hold past its deadline holds nothing, released yet or not: a new hold is checked against
/// the limits after the lapsed one gave its room back, as a spend is (before, a hold was
/// refused SPEND_LIMIT_REACHED counting a hold that had lapsed, where a spend went through).
async fn a_lapsed_hold_gives_its_room_back_before_a_new_hold_is_checked(backend: Backend) {
    let app = funded(backend, None, "a", "1000").await;
    set_ok(&app, "a", json!([{ "period": "DAY", "max": "100" }]), None).await;
    let reserve = |amount: &'static str, key: &'static str| {
        let app = &app;
        async move { app.gql(&app.service, RESERVE, json!({ "a": "a", "amt": amount, "k": key, "s": 60 })).await }
    };
    assert!(reserve("80", "r-1").await["errors"].is_null());
    let refused = reserve("30", "r-2").await;
    assert_eq!((error_code(&refused), &extensions(&refused)["used"]), ("SPEND_LIMIT_REACHED", &json!("80")), "{refused}");
    // Past the first hold's deadline, no job has run: the new hold finds the room.
    app.clock.set(at("2026-12-03T10:01:00Z"));
    let held = reserve("30", "r-3").await;
    assert!(held["errors"].is_null(), "{held}");
    assert_eq!(used(&app, "a", 0).await, "30", "the lapsed hold was released and gave its 80 back");
    app.assert_audit_clean().await;
}

/// A market job whose price would pass the consumer's cap is rejected with its code, and the
/// submission's outcome replays under its key; within the cap a job runs and counts.
async fn market_jobs_over_a_cap_are_rejected(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    for id in ["c", "p"] {
        app.create_account(id).await;
        let r = app
            .gql(
                &app.service,
                "mutation($a: ID!) { setIdentityVerified(accountId: $a, verified: true) { identityVerified } }",
                json!({ "a": id }),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
    }
    let asks = app
        .gql(
            &app.user("p"),
            "mutation { setAskingPrices(input: {accountId: \"p\", hardwareClass: \"ENTRY\", capacity: 5, defaultPrice: \"3\",
               prices: [{workload: \"llm-chat\", price: \"2\"}]}) { workload } }",
            json!({}),
        )
        .await;
    assert!(asks["errors"].is_null(), "{asks}");
    let r = set(&app, &app.user("c"), "c", json!([{ "feature": "llm-chat", "period": "DAY", "max": "3" }]), None).await;
    assert!(r["errors"].is_null(), "a user sets its own limits: {r}");
    let submit = |key: &'static str| {
        let app = &app;
        async move {
            app.gql(
                &app.user("c"),
                "mutation($k: String!) { submitJob(input: {accountId: \"c\", workload: \"llm-chat\", inputs: [{input: \"a\", bidPrice: \"5\"}, {input: \"b\", bidPrice: \"5\"}], idempotencyKey: $k}) { status code price } }",
                json!({ "k": key }),
            )
            .await
        }
    };
    let jobs = submit("j-1").await;
    assert_eq!(
        jobs["data"]["submitJob"],
        json!([{ "status": "RUNNING", "code": null, "price": "2" }, { "status": "REJECTED", "code": "SPEND_LIMIT_REACHED", "price": null }]),
        "{jobs}"
    );
    assert_eq!(submit("j-1").await["data"], jobs["data"], "a replay");
    assert_eq!(used(&app, "c", 0).await, "2");
    app.assert_audit_clean().await;
}

/// Metered usage that already happened is charged whatever the cap says, counted, and the
/// limit's state says it was exceeded; the next spend is refused.
async fn metered_usage_is_charged_and_shows_the_cap_exceeded(backend: Backend) {
    let app = funded(backend, None, "a", "100").await;
    set_ok(&app, "a", json!([{ "period": "DAY", "max": "3" }]), None).await;
    let r = app
        .gql(
            &app.service,
            "mutation($i: RecordUsageInput!) { recordUsage(input: $i) { settlement { charged } } }",
            json!({ "i": { "accountId": "a", "idempotencyKey": "snap-1", "ai": { "kind": "SNAP" } } }),
        )
        .await;
    assert_eq!(r["data"]["recordUsage"]["settlement"]["charged"], json!("5"), "{r}");
    assert_eq!(app.balance("a").await, "95");
    let state = &limits(&app, "a").await["limits"][0];
    assert_eq!((&state["used"], &state["remaining"], &state["exceeded"]), (&json!("5"), &json!("0"), &json!(true)), "{state}");
    let refused = spend(&app, "a", "1", "s-1", "chat").await;
    assert_eq!((error_code(&refused), &extensions(&refused)["used"]), ("SPEND_LIMIT_REACHED", &json!("5")));
    app.assert_audit_clean().await;
}

/// Concurrent spends against a cap (committed together in batches): exactly as many succeed as
/// fit, and the counter is their sum.
async fn concurrent_spends_against_a_cap_fit_exactly(backend: Backend) {
    let app = funded(backend, None, "a", "10000").await;
    set_ok(&app, "a", json!([{ "period": "DAY", "max": "100" }, { "feature": "chat", "period": "MONTH", "max": "1000" }]), None).await;
    let spends = (0..24).map(|i| {
        let app = &app;
        async move { spend(app, "a", "7", &format!("c-{i}"), "chat").await }
    });
    let outcomes = futures_util::future::join_all(spends).await;
    let ok = outcomes.iter().filter(|r| r["errors"].is_null()).count();
    let refused = outcomes.iter().filter(|r| !r["errors"].is_null() && error_code(r) == "SPEND_LIMIT_REACHED").count();
    assert_eq!((ok, refused), (14, 10), "14 x 7 = 98 fits under 100: {outcomes:?}");
    let state = limits(&app, "a").await;
    assert_eq!(state["limits"][0]["used"], json!("98"), "{state}");
    assert_eq!(state["limits"][1]["used"], json!("98"), "{state}");
    assert_eq!(app.balance("a").await, "9902");
    app.assert_audit_clean().await;
}

/// The input's rules, each BAD_USER_INPUT that changes nothing; a user sets its own account's
/// limits only; with a key, a retry replays and another set under it is a conflict.
async fn the_set_is_validated_and_keyed(backend: Backend) {
    let app = funded(backend, None, "a", "10").await;
    app.create_account("b").await;
    let day = |max: &str| json!({ "period": "DAY", "max": max });
    for (limits, per_charge) in [
        (json!([day("0")]), None),
        (json!([]), Some("0")),
        (json!([day("1"), day("2")]), None),
        (json!([{ "feature": "bad name", "period": "DAY", "max": "1" }]), None),
        (json!((0..33).map(|i| json!({ "feature": format!("f{i}"), "period": "DAY", "max": "1" })).collect::<Vec<_>>()), None),
    ] {
        let r = set(&app, &app.service, "a", limits.clone(), per_charge).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{limits} {per_charge:?}: {r}");
    }
    assert_eq!(limits(&app, "a").await, json!({ "maxPerCharge": null, "limits": [] }), "nothing changed");
    assert_eq!(error_code(&set(&app, &app.user("b"), "a", json!([day("1")]), None).await), "FORBIDDEN");
    assert_eq!(error_code(&set(&app, &app.service, "nobody", json!([day("1")]), None).await), "NOT_FOUND");

    let keyed = |limits: Value| json!({ "i": { "accountId": "a", "limits": limits, "idempotencyKey": "k-1" } });
    let first = app.gql(&app.user("a"), SET, keyed(json!([day("5")]))).await;
    assert_eq!(first["data"]["setSpendLimits"]["limits"][0]["max"], json!("5"), "{first}");
    assert!(app.gql(&app.user("a"), SET, keyed(json!([day("5")]))).await["errors"].is_null(), "a replay");
    assert_eq!(error_code(&app.gql(&app.user("a"), SET, keyed(json!([day("6")]))).await), "IDEMPOTENCY_CONFLICT");
}

on_both!(
    a_daily_cap_refuses_the_spend_that_would_cross_it,
    monthly_feature_caps_and_the_maximum_per_charge,
    holds_count_and_settling_gives_room_back,
    a_lapsed_hold_gives_its_room_back_before_a_new_hold_is_checked,
    market_jobs_over_a_cap_are_rejected,
    metered_usage_is_charged_and_shows_the_cap_exceeded,
    concurrent_spends_against_a_cap_fit_exactly,
    the_set_is_validated_and_keyed
);
