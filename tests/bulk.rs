//! Bulk mutations (`spendCreditsBatch`, `recordUsageBatch`, src/graphql/bulk.rs) through the real
//! API: each item gets exactly the outcome it would have had sent alone, in order, through
//! `spendCredits` / `recordUsage` on a twin database set up the same way; the request's own
//! limits refuse it whole and change nothing; replays (of an item, of a whole request, at once
//! from many clients and over the WebSocket) charge exactly once.

use crate::on_both;
use crate::support::ws::{connect_as, execute};
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const SPEND_BATCH: &str = "mutation($items: [SpendCreditsInput!]!) { spendCreditsBatch(input: {items: $items}) {
    results { index accountId idempotencyKey ok
              receipt { sequence amount availableAfter takes { lotId amount } effectiveAt }
              error { code message details { name value } } } } }";

const SPEND: &str = "mutation($input: SpendCreditsInput!) {
    spendCredits(input: $input) { sequence amount availableAfter takes { lotId amount } effectiveAt } }";

const SETTLEMENT: &str = "settlement { trigger total charged uncollected lines { containerId resource kind model quantity unit amount } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn item(account: &str, amount: &str, key: &str) -> Value {
    json!({ "accountId": account, "amount": amount, "feature": "chat", "idempotencyKey": key })
}

/// Accounts and lots, the same on every app it is called on (so lot ids match too).
async fn set_up(app: &TestApp) {
    app.clock.set(at("2026-11-10T10:00:00Z"));
    for id in ["alice", "bob", "carol", "dave"] {
        app.create_account(id).await;
    }
    let now = app.clock.now();
    app.grant("alice", "10", "FREE", Some(now + chrono::Duration::days(2)), "g-a1").await;
    app.grant("alice", "5", "PAID", None, "g-a2").await;
    app.grant("bob", "3", "PAID", None, "g-b").await;
    app.grant("carol", "1", "PROMOTIONAL", Some(now + chrono::Duration::days(9)), "g-c").await;
    let suspended =
        app.gql(&app.admin, "mutation { setAccountStatus(input: {accountId: \"dave\", status: SUSPENDED}) { status } }", json!({})).await;
    assert_eq!(suspended["data"]["setAccountStatus"]["status"], "SUSPENDED", "{suspended}");
}

/// A spend's answer alone, shaped as a batch item's: `(ok, receipt, error code, details)`.
fn alone(response: &Value) -> (bool, Value, Value, Value) {
    if response["errors"].is_null() {
        (true, response["data"]["spendCredits"].clone(), Value::Null, json!([]))
    } else {
        let extensions = response["errors"][0]["extensions"].as_object().unwrap();
        let mut details: Vec<Value> =
            extensions.iter().filter(|(name, _)| *name != "code").map(|(name, value)| json!({ "name": name, "value": value })).collect();
        details.sort_by_key(|d| d["name"].as_str().unwrap().to_string());
        (false, Value::Null, json!(error_code(response)), json!(details))
    }
}

fn batched(result: &Value) -> (bool, Value, Value, Value) {
    let mut details = result["error"]["details"].as_array().cloned().unwrap_or_default();
    details.sort_by_key(|d| d["name"].as_str().unwrap().to_string());
    (result["ok"].as_bool().unwrap(), result["receipt"].clone(), result["error"]["code"].clone(), json!(details))
}

fn results(response: &Value, field: &str) -> Vec<Value> {
    response["data"][field]["results"].as_array().unwrap_or_else(|| panic!("{response}")).clone()
}

/// Every kind of item in one request: charges over several accounts, a later spend of an account
/// seeing an earlier one's takes, too little left, a key repeated (the same request replays, another
/// conflicts), an unknown and a suspended account, an input the service refuses. Each answer is
/// the one `spendCredits` gives alone, in the same order, on a twin database.
async fn each_spend_of_a_batch_is_answered_as_it_would_be_alone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let twin = TestApp::spawn(backend).await;
    set_up(&app).await;
    set_up(&twin).await;
    let items = vec![
        item("alice", "4", "a-1"),
        item("bob", "2", "b-1"),
        item("alice", "12", "a-2"),
        item("bob", "2", "b-2"),
        item("alice", "4", "a-1"),
        item("alice", "1", "a-1"),
        item("nobody", "1", "n-1"),
        item("dave", "1", "d-1"),
        item("carol", "1", ""),
        json!({ "accountId": "carol", "amount": "0.5", "feature": "no spaces allowed", "idempotencyKey": "c-0" }),
        item("carol", "0.25", "c-1"),
        item("alice", "4", "a-3"),
    ];
    let response = app.gql(&app.service, SPEND_BATCH, json!({ "items": items })).await;
    assert!(response["errors"].is_null(), "{response}");
    let got = results(&response, "spendCreditsBatch");
    assert_eq!(got.len(), items.len());
    let mut codes = Vec::new();
    for (index, (sent, result)) in items.iter().zip(&got).enumerate() {
        assert_eq!(
            (result["index"].as_u64(), &result["accountId"], &result["idempotencyKey"]),
            (Some(index as u64), &sent["accountId"], &sent["idempotencyKey"])
        );
        let one = twin.gql(&twin.service, SPEND, json!({ "input": sent })).await;
        // The journal's sequence numbers are only promised to increase (on PostgreSQL a batch
        // takes one per key it may charge, so the twin's, taken one spend at a time, differ):
        // compared apart, below.
        let (mut batched, mut alone) = (batched(result), alone(&one));
        for receipt in [&mut batched.1, &mut alone.1] {
            if let Some(receipt) = receipt.as_object_mut() {
                receipt.remove("sequence");
            }
        }
        assert_eq!(batched, alone, "item {index} ({sent}): batched {result}, alone {one}");
        codes.push(result["error"]["code"].as_str().unwrap_or("ok").to_string());
    }
    // Each charge's entry after the one before it, a replayed key's the same as its first's.
    let sequences: Vec<u64> =
        got.iter().filter(|r| r["ok"] == json!(true)).map(|r| r["receipt"]["sequence"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(sequences.len(), 5);
    // Items 0, 1, 4 (item 0's key again), 10 and 11.
    assert_eq!(sequences[2], sequences[0], "{sequences:?}");
    let distinct: Vec<u64> = sequences.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, s)| *s).collect();
    assert!(distinct.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    assert_eq!(
        codes,
        [
            "ok",
            "ok",
            "INSUFFICIENT_CREDITS",
            "INSUFFICIENT_CREDITS",
            "ok",
            "IDEMPOTENCY_CONFLICT",
            "NOT_FOUND",
            "ACCOUNT_NOT_ACTIVE",
            "BAD_USER_INPUT",
            "BAD_USER_INPUT",
            "ok",
            "ok"
        ]
    );
    assert_eq!(got[4]["receipt"], got[0]["receipt"], "a key repeated in the batch replays its first outcome");
    let short = &got[2]["error"]["details"];
    assert!(short.as_array().unwrap().contains(&json!({ "name": "available", "value": "11" })), "{short}");
    for account in ["alice", "bob", "carol", "dave"] {
        assert_eq!(app.balance(account).await, twin.balance(account).await, "{account}");
    }
    assert_eq!(app.balance("alice").await, "7");

    // The whole request again: every item answers as before and nothing moves.
    let again = app.gql(&app.service, SPEND_BATCH, json!({ "items": items })).await;
    assert_eq!(again, response, "a replayed request answers the same");
    assert_eq!((app.balance("alice").await, app.balance("bob").await), ("7".to_string(), "1".to_string()));
    app.assert_audit_clean().await;
    twin.assert_audit_clean().await;
}

/// The request's own limits refuse it whole, with a code, and change nothing.
async fn a_batch_outside_its_limits_is_refused_whole(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    set_up(&app).await;
    let empty = app.gql(&app.service, SPEND_BATCH, json!({ "items": [] })).await;
    assert_eq!(error_code(&empty), "BAD_USER_INPUT", "{empty}");
    let many: Vec<Value> = (0..101).map(|i| item("alice", "0.01", &format!("m-{i}"))).collect();
    let over = app.gql(&app.service, SPEND_BATCH, json!({ "items": many })).await;
    assert_eq!(error_code(&over), "BAD_USER_INPUT", "{over}");
    assert!(over["errors"][0]["message"].as_str().unwrap().contains("1 to 100"), "{over}");
    let user = app.gql(&app.user("alice"), SPEND_BATCH, json!({ "items": [item("alice", "1", "u-1")] })).await;
    assert_eq!(error_code(&user), "FORBIDDEN", "{user}");
    let malformed = app.gql(&app.service, SPEND_BATCH, json!({ "items": [item("alice", "-1", "x-1")] })).await;
    assert_eq!(error_code(&malformed), "BAD_USER_INPUT", "{malformed}");
    assert_eq!(app.balance("alice").await, "15", "nothing was charged");
    // A full request of the documented maximum is accepted: two transactions of the service.
    let full: Vec<Value> = (0..100).map(|i| item("alice", "0.01", &format!("f-{i}"))).collect();
    let response = app.gql(&app.service, SPEND_BATCH, json!({ "items": full })).await;
    assert!(results(&response, "spendCreditsBatch").iter().all(|r| r["ok"] == json!(true)), "{response}");
    assert_eq!(app.balance("alice").await, "14");
    app.assert_audit_clean().await;
}

/// Many clients send overlapping batches at once, each request twice (once over HTTP, once over
/// the WebSocket), with single spends of the same keys racing them: every key is charged exactly
/// once, every answer for a key is the same, and the audit is clean.
async fn concurrent_batches_charge_each_key_exactly_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let accounts: Vec<String> = (0..8).map(|i| format!("acct-{i}")).collect();
    for account in &accounts {
        app.create_account(account).await;
        app.grant(account, "100", "PAID", None, &format!("g-{account}")).await;
    }
    // Batch b holds keys 8b .. 8b+15, key k on account k mod 8: each overlaps the next by half.
    let account_of = |key: usize| accounts[key % accounts.len()].clone();
    let batch = |b: usize| -> Vec<Value> { (b * 8..b * 8 + 16).map(|k| item(&account_of(k), "0.5", &format!("k-{k}"))).collect() };
    let mut tasks = Vec::new();
    for b in 0..8 {
        for copy in 0..2 {
            let (client, address, token, items) = (app.client.clone(), app.address.clone(), app.service.clone(), batch(b));
            tasks.push(tokio::spawn(async move {
                let response = if copy == 0 {
                    crate::support::gql_at(&client, &address, &token, SPEND_BATCH, json!({ "items": items })).await
                } else {
                    let mut socket = connect_as(&address, Some(&token)).await;
                    execute(&mut socket, "bulk", SPEND_BATCH, json!({ "items": items })).await
                };
                results(&response, "spendCreditsBatch")
                    .into_iter()
                    .map(|r| {
                        assert_eq!(r["ok"], json!(true), "{r}");
                        (r["idempotencyKey"].as_str().unwrap().to_string(), r["receipt"].clone())
                    })
                    .collect::<Vec<_>>()
            }));
        }
    }
    // Single spends of some of the same keys race the batches.
    for key in [3usize, 20, 41, 70] {
        let (client, address, token, account) = (app.client.clone(), app.address.clone(), app.service.clone(), account_of(key));
        tasks.push(tokio::spawn(async move {
            let input = item(&account, "0.5", &format!("k-{key}"));
            let single = crate::support::gql_at(&client, &address, &token, SPEND, json!({ "input": input })).await;
            assert!(single["errors"].is_null(), "{single}");
            vec![(format!("k-{key}"), single["data"]["spendCredits"].clone())]
        }));
    }
    let mut by_key: std::collections::BTreeMap<String, Value> = Default::default();
    for answers in futures::future::join_all(tasks).await.into_iter().map(|r| r.unwrap()) {
        for (key, receipt) in answers {
            if let Some(first) = by_key.insert(key.clone(), receipt.clone()) {
                assert_eq!(first, receipt, "{key} answered two ways");
            }
        }
    }
    // Keys k-0 .. k-71 (8 batches of 16 keys, overlapping by 8): 72 spends of 0.5 in all.
    assert_eq!(by_key.len(), 72);
    let mut total = rust_decimal::Decimal::ZERO;
    for account in &accounts {
        total += app.balance(account).await.parse::<rust_decimal::Decimal>().unwrap();
    }
    assert_eq!(total, rust_decimal::Decimal::from(800 - 36), "each key charged exactly once");
    app.assert_audit_clean().await;
}

async fn start(app: &TestApp, account: &str, container: &str) {
    let r = app
        .gql(
            &app.service,
            "mutation($a: ID!, $c: String!) { startContainer(input: {accountId: $a, containerId: $c, tier: \"micro\", codeSupporter: false, idempotencyKey: $c}) { container { state } } }",
            json!({ "a": account, "c": container }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
}

fn sample(account: &str, key: &str, sample: Value) -> Value {
    let mut input = sample;
    input["accountId"] = json!(account);
    input["idempotencyKey"] = json!(key);
    input
}

/// Usage samples in bulk: storage, traffic and AI uses over two accounts, with an unknown
/// container (which fails the service's batch and sends its samples one by one), a sample naming
/// two kinds, an AI use the account cannot pay and a repeated key: each answered as `recordUsage`
/// alone, on a twin database.
async fn each_sample_of_a_batch_is_answered_as_it_would_be_alone(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    let twin = TestApp::spawn_with(backend, "arkain").await;
    for app in [&app, &twin] {
        app.clock.set(at("2026-11-10T10:00:00Z"));
        for id in ["a", "b"] {
            app.create_account(id).await;
            app.grant(id, "20", "PAID", None, &format!("g-{id}")).await;
            start(app, id, "web").await;
        }
        app.clock.set(at("2026-11-10T11:00:00Z"));
    }
    let chat = json!({ "ai": { "kind": "CHAT", "containerId": "web", "tokens": { "input": 1000, "output": 500 } } });
    let items = vec![
        sample("a", "s-1", json!({ "storage": { "containerId": "web", "gb": "7.5" } })),
        sample("b", "t-1", json!({ "traffic": { "containerId": "web", "bytes": "2000000000" } })),
        sample("a", "ai-1", chat.clone()),
        sample("b", "ai-2", json!({ "ai": { "kind": "SNAP" } })),
        sample("a", "x-1", json!({ "storage": { "containerId": "nowhere", "gb": "1" } })),
        sample("a", "x-2", json!({ "storage": { "containerId": "web", "gb": "1" }, "ai": { "kind": "SNAP" } })),
        sample("a", "ai-1", chat.clone()),
        sample("b", "ai-3", json!({ "ai": { "kind": "SNAP" } })),
        sample("b", "ai-4", json!({ "ai": { "kind": "SNAP" } })),
        sample("b", "ai-5", json!({ "ai": { "kind": "SNAP" } })),
        sample("b", "ai-6", json!({ "ai": { "kind": "SNAP" } })),
        sample("a", "ai-7", chat),
    ];
    let query = format!(
        "mutation($items: [RecordUsageInput!]!) {{ recordUsageBatch(input: {{items: $items}}) {{
           results {{ index accountId idempotencyKey ok receipt {{ {SETTLEMENT} }} error {{ code details {{ name value }} }} }} }} }}"
    );
    let single = format!("mutation($i: RecordUsageInput!) {{ recordUsage(input: $i) {{ {SETTLEMENT} }} }}");
    let response = app.gql(&app.service, &query, json!({ "items": items })).await;
    assert!(response["errors"].is_null(), "{response}");
    let got = results(&response, "recordUsageBatch");
    let mut codes = Vec::new();
    for (index, (sent, result)) in items.iter().zip(&got).enumerate() {
        let one = twin.gql(&twin.service, &single, json!({ "i": sent })).await;
        let expected = if one["errors"].is_null() {
            (true, one["data"]["recordUsage"].clone(), Value::Null)
        } else {
            (false, Value::Null, json!(error_code(&one)))
        };
        assert_eq!(
            (result["ok"].as_bool().unwrap(), result["receipt"].clone(), result["error"]["code"].clone()),
            expected,
            "item {index}: {result} / {one}"
        );
        codes.push(result["error"]["code"].as_str().unwrap_or("ok").to_string());
    }
    assert!(codes.contains(&"NOT_FOUND".to_string()) && codes.contains(&"BAD_USER_INPUT".to_string()), "{codes:?}");
    assert!(codes.iter().filter(|c| *c == "ok").count() >= 6, "{codes:?}");
    assert_eq!(got[6]["receipt"], got[2]["receipt"], "the repeated key replays");
    for account in ["a", "b"] {
        assert_eq!(app.balance(account).await, twin.balance(account).await, "{account}");
    }
    let again = app.gql(&app.service, &query, json!({ "items": items })).await;
    assert_eq!(again, response, "a replayed request answers the same");
    app.assert_audit_clean().await;
    twin.assert_audit_clean().await;
}

on_both!(
    each_spend_of_a_batch_is_answered_as_it_would_be_alone,
    a_batch_outside_its_limits_is_refused_whole,
    concurrent_batches_charge_each_key_exactly_once,
    each_sample_of_a_batch_is_answered_as_it_would_be_alone
);
