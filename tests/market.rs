//! The compute market through the API (archipelag): verified providers ask, jobs clear at the
//! cheapest available final price within the budget, the price is held at the match and moves
//! to the provider at completion, exactly once; failure and deadlines return it.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::Duration;
use credits::service::jobs::Job;
use serde_json::{Value, json};

const JOB: &str = "jobId status code provider budget budgetSource price surge earnings fee";

async fn verify(app: &TestApp, account: &str) {
    let r = app
        .gql(
            &app.service,
            "mutation($a: ID!) { setIdentityVerified(accountId: $a, verified: true) { identityVerified } }",
            json!({ "a": account }),
        )
        .await;
    assert_eq!(r["data"]["setIdentityVerified"]["identityVerified"], json!(true), "{r}");
}

async fn provider(app: &TestApp, account: &str, hardware: &str, capacity: i32, default: &str, prices: Value) -> Value {
    app.gql(
        &app.user(account),
        "mutation($a: ID!, $h: HardwareClass!, $c: Int!, $d: CreditAmount!, $p: [WorkloadAskInput!]!) {
           setAskingPrices(input: {accountId: $a, hardwareClass: $h, capacity: $c, defaultPrice: $d, prices: $p}) { workload price } }",
        json!({ "a": account, "h": hardware, "c": capacity, "d": default, "p": prices }),
    )
    .await
}

async fn submit(app: &TestApp, account: &str, inputs: Value, key: &str) -> Value {
    let query = format!(
        "mutation($a: ID!, $i: [JobInputItem!]!, $k: String!) {{ submitJob(input: {{accountId: $a, workload: \"llm-chat\", inputs: $i, idempotencyKey: $k}}) {{ {JOB} }} }}"
    );
    app.gql(&app.user(account), &query, json!({ "a": account, "i": inputs, "k": key })).await
}

async fn end(app: &TestApp, mutation: &str, job: &Value, key: &str) -> Value {
    let query = format!("mutation($j: ID!, $k: String!) {{ {mutation}(input: {{jobId: $j, idempotencyKey: $k}}) {{ {JOB} }} }}");
    app.gql(&app.service, &query, json!({ "j": job, "k": key })).await
}

async fn balances(app: &TestApp, account: &str) -> (String, String) {
    let r = app.gql(&app.service, "query($a: ID!) { account(id: $a) { balance { total held } } }", json!({ "a": account })).await;
    let b = &r["data"]["account"]["balance"];
    (b["total"].as_str().unwrap().to_string(), b["held"].as_str().unwrap().to_string())
}

/// Two providers and a consumer: identity checks, the budget's sources, the cheapest final
/// price, completion paying the provider once, failure and the deadline returning the hold.
async fn jobs_clear_at_the_cheapest_final_price_and_pay_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    for id in ["c", "p1", "p2"] {
        app.create_account(id).await;
    }
    assert_eq!(error_code(&provider(&app, "p1", "ENTRY", 2, "3", json!([])).await), "IDENTITY_NOT_VERIFIED");
    verify(&app, "p1").await;
    verify(&app, "p2").await;
    let asks = provider(&app, "p1", "ENTRY", 2, "3", json!([{ "workload": "llm-chat", "price": "2" }])).await;
    assert_eq!(asks["data"]["setAskingPrices"], json!([{ "workload": "llm-chat", "price": "2" }]), "{asks}");
    assert!(provider(&app, "p2", "HIGH_END", 1, "2", json!([])).await["errors"].is_null());

    let rates = app
        .gql(&app.user("c"), "{ marketRates(workload: \"llm-chat\") { now { average min max providers } suggestedBid } }", json!({}))
        .await;
    assert_eq!(
        rates["data"]["marketRates"],
        json!({ "now": { "average": "2", "min": "2", "max": "2", "providers": 2 }, "suggestedBid": "2.1" })
    );

    assert_eq!(error_code(&submit(&app, "c", json!([{ "input": "hi", "bidPrice": "5" }]), "unverified").await), "IDENTITY_NOT_VERIFIED");
    verify(&app, "c").await;
    // p1: 2 x 1.0 = 2; p2: 2 x 1.5 = 3. The cheapest wins.
    let first = submit(&app, "c", json!([{ "input": "hi", "bidPrice": "5" }]), "s-1").await;
    let job = &first["data"]["submitJob"][0];
    assert_eq!(
        (&job["status"], &job["provider"], &job["price"], &job["budgetSource"]),
        (&json!("RUNNING"), &json!("p1"), &json!("2"), &json!("BID")),
        "{first}"
    );
    assert_eq!(balances(&app, "c").await, ("10000".into(), "2".into()), "held at the match");
    assert_eq!(submit(&app, "c", json!([{ "input": "hi", "bidPrice": "5" }]), "s-1").await["data"], first["data"], "a replay");

    // No bids: the budget is the market's average, 2. p1 has one slot left; p2 costs 3.
    let batch = submit(&app, "c", json!([{ "input": "a" }, { "input": "b" }]), "s-2").await;
    let jobs = batch["data"]["submitJob"].as_array().unwrap();
    assert_eq!(
        (&jobs[0]["status"], &jobs[0]["budgetSource"], &jobs[0]["provider"]),
        (&json!("RUNNING"), &json!("AVERAGE_RATE"), &json!("p1")),
        "{batch}"
    );
    assert_eq!((&jobs[1]["status"], &jobs[1]["code"]), (&json!("REJECTED"), &json!("ALL_BUSY")), "p1 fits the budget but is full");
    let low = submit(&app, "c", json!([{ "input": "d", "bidPrice": "1" }]), "s-low").await;
    assert_eq!(low["data"]["submitJob"][0]["code"], json!("BID_TOO_LOW"), "p2 is free but costs 3: {low}");
    let saved = app
        .gql(&app.user("c"), "mutation { setBidPreference(accountId: \"c\", workload: \"llm-chat\", bidPrice: \"3\") }", json!({}))
        .await;
    assert_eq!(saved["data"]["setBidPreference"], json!("3"), "{saved}");
    let third = submit(&app, "c", json!([{ "input": "c" }]), "s-3").await;
    let third = &third["data"]["submitJob"][0];
    assert_eq!((&third["provider"], &third["price"], &third["budgetSource"]), (&json!("p2"), &json!("3"), &json!("PREFERENCE")));
    assert_eq!(balances(&app, "c").await, ("10000".into(), "7".into()));

    let done = end(&app, "completeJob", &job["jobId"], "done-1").await;
    assert_eq!(
        (&done["data"]["completeJob"]["status"], &done["data"]["completeJob"]["earnings"]),
        (&json!("COMPLETED"), &json!("2")),
        "{done}"
    );
    assert_eq!(end(&app, "completeJob", &job["jobId"], "done-1").await["data"], done["data"], "a replay pays nothing more");
    assert_eq!(error_code(&end(&app, "completeJob", &job["jobId"], "done-2").await), "INVALID_STATE", "never twice");
    assert_eq!(error_code(&end(&app, "failJob", &job["jobId"], "fail-0").await), "INVALID_STATE");
    assert_eq!(balances(&app, "p1").await, ("10002".into(), "0".into()), "the sign-up grant and the job's earnings");
    let failed = end(&app, "failJob", &jobs[0]["jobId"], "fail-1").await;
    assert_eq!(failed["data"]["failJob"]["status"], json!("FAILED"), "{failed}");
    assert_eq!(balances(&app, "c").await, ("9998".into(), "3".into()), "paid 2, the failed job's 2 back, 3 still held");

    // Nobody ends the third: its deadline (60 minutes) returns the hold and fails it.
    let later = app.clock.now() + Duration::minutes(61);
    assert_eq!(app.ledger.run_job(Job::ExpireReservations, later).await.unwrap().items, 1);
    app.clock.set(later);
    let listed = app.gql(&app.user("c"), "{ me { jobs(first: 10) { edges { node { status code } } } } }", json!({})).await;
    assert_eq!(listed["data"]["me"]["jobs"]["edges"][0]["node"], json!({ "status": "FAILED", "code": "DEADLINE" }), "{listed}");
    assert_eq!(balances(&app, "c").await, ("9998".into(), "0".into()));
    let history = app.gql(&app.user("p1"), "{ me { history(first: 1) { edges { node { kind amount feature } } } } }", json!({})).await;
    assert_eq!(history["data"]["me"]["history"]["edges"][0]["node"], json!({ "kind": "GRANT", "amount": "2", "feature": "llm-chat" }));
    app.assert_audit_clean().await;
}

/// Surge: a submission whose waiting jobs exceed twice the free capacity pays x1.25.
async fn surge_applies_when_demand_outruns_capacity(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    for id in ["c", "p"] {
        app.create_account(id).await;
        verify(&app, id).await;
    }
    provider(&app, "p", "ENTRY", 2, "2", json!([])).await;
    let inputs: Vec<Value> = (0..5).map(|i| json!({ "input": format!("x{i}"), "bidPrice": "2.5" })).collect();
    let r = submit(&app, "c", json!(inputs), "s").await;
    let jobs = r["data"]["submitJob"].as_array().unwrap_or_else(|| panic!("{r}"));
    let seen: Vec<_> = jobs.iter().map(|j| (j["status"].clone(), j["price"].clone(), j["surge"].clone(), j["code"].clone())).collect();
    assert_eq!(
        seen,
        [
            (json!("RUNNING"), json!("2.5"), json!(true), json!(null)),
            (json!("RUNNING"), json!("2.5"), json!(true), json!(null)),
            (json!("REJECTED"), json!(null), json!(false), json!("ALL_BUSY")),
            (json!("REJECTED"), json!(null), json!(false), json!("ALL_BUSY")),
            (json!("REJECTED"), json!(null), json!(false), json!("ALL_BUSY")),
        ],
        "5 waiting > 2 x 2 free, then 4 > 2 x 1; then no capacity"
    );
    app.assert_audit_clean().await;
}

/// Real concurrent requests: two consumers racing for one provider's last slot, and two jobs
/// racing for one consumer's last credits.
async fn races_never_overbook_or_overdraw(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    for id in ["a", "b", "p"] {
        app.create_account(id).await;
        verify(&app, id).await;
    }
    provider(&app, "p", "ENTRY", 1, "2", json!([])).await;
    let (ra, rb) = tokio::join!(
        submit(&app, "a", json!([{ "input": "x", "bidPrice": "2" }]), "k"),
        submit(&app, "b", json!([{ "input": "x", "bidPrice": "2" }]), "k")
    );
    let statuses = [ra["data"]["submitJob"][0]["status"].clone(), rb["data"]["submitJob"][0]["status"].clone()];
    assert_eq!(statuses.iter().filter(|s| **s == json!("RUNNING")).count(), 1, "{ra} {rb}");
    assert!([&ra, &rb].iter().any(|r| r["data"]["submitJob"][0]["code"] == json!("ALL_BUSY")));

    // Room for many jobs now, and a consumer with 3 credits: two jobs of 2 race for them.
    provider(&app, "p", "ENTRY", 10, "2", json!([])).await;
    app.create_account("d").await;
    verify(&app, "d").await;
    assert!(app.spend("d", "9997", "drain").await["errors"].is_null());
    let (r1, r2) = tokio::join!(
        submit(&app, "d", json!([{ "input": "y", "bidPrice": "3" }]), "k1"),
        submit(&app, "d", json!([{ "input": "z", "bidPrice": "3" }]), "k2")
    );
    let outcomes = [r1["data"]["submitJob"][0].clone(), r2["data"]["submitJob"][0].clone()];
    let running = outcomes.iter().filter(|j| j["status"] == json!("RUNNING")).count();
    let short = outcomes.iter().filter(|j| j["code"] == json!("INSUFFICIENT_CREDITS")).count();
    assert_eq!((running, short), (1, 1), "{outcomes:?}");
    assert_eq!(balances(&app, "d").await, ("3".into(), "2".into()), "one hold, never an overdraft");
    app.assert_audit_clean().await;
}

/// A configured fee lands on the platform account; the books balance across all three.
async fn the_platform_fee_lands_on_the_platform_account(backend: Backend) {
    let preset = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/presets/archipelag.toml")).unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), preset.replace("fee_rate = \"0\"", "fee_rate = \"0.1\"")).unwrap();
    let app = TestApp::spawn_with(backend, file.path().to_str().unwrap()).await;
    for id in ["c", "p"] {
        app.create_account(id).await;
        verify(&app, id).await;
    }
    provider(&app, "p", "MID_RANGE", 1, "2.5", json!([])).await;
    let r = submit(&app, "c", json!([{ "input": "x", "bidPrice": "3" }]), "k").await;
    let job = &r["data"]["submitJob"][0];
    assert_eq!(job["price"], json!("3"), "2.5 x 1.2: {r}");
    let done = end(&app, "completeJob", &job["jobId"], "d").await;
    assert_eq!((&done["data"]["completeJob"]["earnings"], &done["data"]["completeJob"]["fee"]), (&json!("2.7"), &json!("0.3")), "{done}");
    assert_eq!(balances(&app, "archipelag-platform").await.0, "0.3", "created for its first fee, with no sign-up grant");
    assert_eq!(balances(&app, "p").await.0, "10002.7");
    assert_eq!(balances(&app, "c").await.0, "9997");
    app.assert_audit_clean().await;
}

/// Market rates are snapshotted every 5 minutes, once per mark, and kept as history.
async fn market_rates_are_snapshotted_every_five_minutes(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    app.create_account("p").await;
    verify(&app, "p").await;
    provider(&app, "p", "ENTRY", 1, "4", json!([{ "workload": "llm-chat", "price": "1.5" }])).await;
    let now = app.clock.now();
    let mark = now - Duration::seconds(now.timestamp() % 300) + Duration::minutes(5);
    assert_eq!(
        app.ledger.run_job(Job::SnapshotMarketRates, mark + Duration::seconds(1)).await.unwrap().items,
        2,
        "llm-chat and image (at the default ask)"
    );
    assert_eq!(app.ledger.run_job(Job::SnapshotMarketRates, mark + Duration::seconds(200)).await.unwrap().items, 0, "once per mark");
    app.ledger.run_job(Job::SnapshotMarketRates, mark + Duration::minutes(5)).await.unwrap();
    let rates =
        app.gql(&app.service, "{ marketRates(workload: \"llm-chat\") { history { rate { average providers } } } }", json!({})).await;
    assert_eq!(
        rates["data"]["marketRates"]["history"],
        json!([{ "rate": { "average": "1.5", "providers": 1 } }, { "rate": { "average": "1.5", "providers": 1 } }]),
        "{rates}"
    );
}

on_both!(
    jobs_clear_at_the_cheapest_final_price_and_pay_once,
    surge_applies_when_demand_outruns_capacity,
    races_never_overbook_or_overdraw,
    the_platform_fee_lands_on_the_platform_account,
    market_rates_are_snapshotted_every_five_minutes
);
