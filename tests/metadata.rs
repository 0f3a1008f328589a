//! Metadata (issue 25) through the real API on both databases: a small object of string pairs on
//! grants, spends, reservations, purchases and market jobs, kept on the journal entries they
//! write (and on their own rows), returned in history and filterable by one key and value; bad
//! shapes refused with `BAD_USER_INPUT` and nothing changed; part of the request a key stands
//! for, in any key order, while a request without metadata hashes exactly as before (keys stored
//! by a build from before metadata replay).

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use sea_orm::{ConnectionTrait, Statement, Value as SqlValue};
use serde_json::{Value, json};

const GRANT: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!, $m: Metadata) {
  grantCredits(input: {accountId: $a, amount: $amt, class: PAID, idempotencyKey: $k, metadata: $m}) { lotId sequence } }";
const SPEND: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!, $m: Metadata) {
  spendCredits(input: {accountId: $a, amount: $amt, feature: \"chat\", idempotencyKey: $k, metadata: $m}) { sequence amount } }";
const RESERVE: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!, $m: Metadata) {
  reserveCredits(input: {accountId: $a, amount: $amt, feature: \"chat\", idempotencyKey: $k, metadata: $m}) { reservationId sequence } }";
const PURCHASE: &str = "mutation($a: ID!, $c: CreditAmount!, $k: String!, $m: Metadata) {
  purchaseCredits(input: {accountId: $a, credits: $c, idempotencyKey: $k, metadata: $m}) { id metadata } }";
const HISTORY: &str = "query($a: ID!, $f: HistoryFilter) { account(id: $a) { history(first: 100, filter: $f) {
  totalCount nodes { sequence kind operation amount metadata } } } }";

async fn history(app: &TestApp, account: &str, filter: Value) -> Value {
    let r = app.gql(&app.service, HISTORY, json!({ "a": account, "f": filter })).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["account"]["history"].clone()
}

/// The entry with this sequence, as history shows it.
async fn entry(app: &TestApp, account: &str, sequence: &Value) -> Value {
    let h = history(app, account, Value::Null).await;
    h["nodes"].as_array().unwrap().iter().find(|n| &n["sequence"] == sequence).cloned().unwrap_or_else(|| panic!("{sequence} in {h}"))
}

fn ok<'a>(r: &'a Value, field: &str) -> &'a Value {
    assert!(r["errors"].is_null(), "{r}");
    &r["data"][field]
}

async fn metadata_rides_with_every_operation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    let order = json!({ "order_id": "ord_42", "customer.tier": "gold" });

    // A grant: on its entry, keys sorted, values as given.
    let g = app.gql(&app.admin, GRANT, json!({ "a": "a", "amt": "100", "k": "g-1", "m": order })).await;
    let g = ok(&g, "grantCredits");
    let e = entry(&app, "a", &g["sequence"]).await;
    assert_eq!(e["metadata"], order, "{e}");
    assert_eq!(serde_json::to_string(&e["metadata"]).unwrap(), r#"{"customer.tier":"gold","order_id":"ord_42"}"#, "sorted keys");

    // A spend.
    let m = json!({ "request": "req-1", "note": "say \"hi\" 🙂 <b>" });
    let s = app.gql(&app.service, SPEND, json!({ "a": "a", "amt": "3", "k": "s-1", "m": m })).await;
    let e = entry(&app, "a", &ok(&s, "spendCredits")["sequence"]).await;
    assert_eq!((&e["kind"], &e["metadata"]), (&json!("SPEND"), &m), "{e}");

    // Without metadata, `{}` and null alike: null in history.
    for (k, given) in [("s-2", Value::Null), ("s-3", json!({}))] {
        let s = app.gql(&app.service, SPEND, json!({ "a": "a", "amt": "1", "k": k, "m": given })).await;
        let e = entry(&app, "a", &ok(&s, "spendCredits")["sequence"]).await;
        assert_eq!(e["metadata"], Value::Null, "{e}");
    }

    // A reservation: on its hold, and carried on to the capture's entries.
    let job = json!({ "job": "render-7" });
    let r = app.gql(&app.service, RESERVE, json!({ "a": "a", "amt": "10", "k": "r-1", "m": job })).await;
    let r = ok(&r, "reserveCredits").clone();
    assert_eq!(entry(&app, "a", &r["sequence"]).await["metadata"], job);
    let capture = "mutation($r: ID!) { captureReservation(input: {reservationId: $r, amount: \"4\", idempotencyKey: \"c-1\"}) { status } }";
    let c = app.gql(&app.service, capture, json!({ "r": r["reservationId"] })).await;
    assert_eq!(ok(&c, "captureReservation")["status"], json!("CAPTURED"));
    let h = history(&app, "a", json!({ "metadata": { "key": "job", "value": "render-7" } })).await;
    let kinds: Vec<&Value> = h["nodes"].as_array().unwrap().iter().map(|n| &n["kind"]).collect();
    assert_eq!(kinds, [&json!("SPEND"), &json!("RELEASE"), &json!("HOLD")], "capture: release the hold, spend what was used: {h}");
    // ...and to a release's.
    let r = app.gql(&app.service, RESERVE, json!({ "a": "a", "amt": "2", "k": "r-2", "m": { "job": "render-8" } })).await;
    let r = ok(&r, "reserveCredits").clone();
    let release = "mutation($r: ID!) { releaseReservation(input: {reservationId: $r, idempotencyKey: \"rel-1\"}) { status } }";
    assert_eq!(
        ok(&app.gql(&app.service, release, json!({ "r": r["reservationId"] })).await, "releaseReservation")["status"],
        json!("RELEASED")
    );
    let h = history(&app, "a", json!({ "metadata": { "key": "job", "value": "render-8" } })).await;
    assert_eq!(h["totalCount"], json!(2), "the hold and its release: {h}");

    // A purchase: on the purchase, and on the grant of its payment.
    let p = app.gql(&app.service, PURCHASE, json!({ "a": "a", "c": "60", "k": "b-1", "m": { "campaign": "winter" } })).await;
    let p = ok(&p, "purchaseCredits").clone();
    assert_eq!(p["metadata"], json!({ "campaign": "winter" }));
    let confirm = "mutation($p: ID!) { confirmPurchase(input: {purchaseId: $p, paymentReference: \"pay-1\"}) { status metadata } }";
    let paid = app.gql(&app.service, confirm, json!({ "p": p["id"] })).await;
    assert_eq!(ok(&paid, "confirmPurchase")["metadata"], json!({ "campaign": "winter" }));
    let h = history(&app, "a", json!({ "metadata": { "key": "campaign", "value": "winter" } })).await;
    assert_eq!(h["nodes"][0]["operation"], json!("confirm_purchase"), "{h}");
    assert_eq!(h["totalCount"], json!(1), "{h}");
    let listed = app.gql(&app.service, "query { account(id: \"a\") { purchases(first: 5) { nodes { id metadata } } } }", json!({})).await;
    assert_eq!(listed["data"]["account"]["purchases"]["nodes"][0]["metadata"], json!({ "campaign": "winter" }), "{listed}");
    app.assert_audit_clean().await;
}

async fn market_jobs_carry_metadata(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    for id in ["c", "p"] {
        app.create_account(id).await;
        let verify = "mutation($a: ID!) { setIdentityVerified(accountId: $a, verified: true) { identityVerified } }";
        assert!(app.gql(&app.service, verify, json!({ "a": id })).await["errors"].is_null());
    }
    let asks = "mutation { setAskingPrices(input: {accountId: \"p\", hardwareClass: ENTRY, capacity: 2, defaultPrice: \"2\", prices: []}) { workload } }";
    assert!(app.gql(&app.user("p"), asks, json!({})).await["errors"].is_null());
    let submit = "mutation($m: Metadata, $k: String!) { submitJob(input: {accountId: \"c\", workload: \"llm-chat\",
        inputs: [{input: \"a\", bidPrice: \"5\"}, {input: \"b\", bidPrice: \"5\"}], idempotencyKey: $k, metadata: $m}) { jobId status metadata } }";
    let m = json!({ "batch": "nightly-3" });
    let jobs = app.gql(&app.user("c"), submit, json!({ "m": m, "k": "j-1" })).await;
    let jobs = ok(&jobs, "submitJob").as_array().unwrap().clone();
    assert!(jobs.iter().all(|j| j["status"] == json!("RUNNING") && j["metadata"] == m), "{jobs:?}");
    // A replay answers the same jobs, metadata and all; other metadata under the key conflicts.
    let again = app.gql(&app.user("c"), submit, json!({ "m": m, "k": "j-1" })).await;
    assert_eq!(ok(&again, "submitJob").as_array().unwrap(), &jobs);
    let other = app.gql(&app.user("c"), submit, json!({ "m": { "batch": "nightly-4" }, "k": "j-1" })).await;
    assert_eq!(error_code(&other), "IDEMPOTENCY_CONFLICT", "{other}");

    let complete = "mutation($j: ID!) { completeJob(input: {jobId: $j, idempotencyKey: \"done-1\"}) { status metadata } }";
    let done = app.gql(&app.service, complete, json!({ "j": jobs[0]["jobId"] })).await;
    assert_eq!(ok(&done, "completeJob")["metadata"], m);
    let listed = app.gql(&app.service, "query { account(id: \"c\") { jobs(first: 5) { nodes { metadata } } } }", json!({})).await;
    assert!(listed["data"]["account"]["jobs"]["nodes"].as_array().unwrap().iter().all(|j| j["metadata"] == m), "{listed}");
    // The consumer's entries carry it: two holds, the completed job's release and transfer.
    let h = history(&app, "c", json!({ "metadata": { "key": "batch", "value": "nightly-3" } })).await;
    let mut kinds: Vec<String> = h["nodes"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap().to_string()).collect();
    kinds.sort();
    assert_eq!(kinds, ["HOLD", "HOLD", "RELEASE", "TRANSFER"], "{h}");
    // The provider's earnings do not: the consumer's metadata is the consumer's.
    let earned = history(&app, "p", Value::Null).await;
    assert!(earned["nodes"].as_array().unwrap().iter().all(|n| n["metadata"].is_null()), "{earned}");
    app.assert_audit_clean().await;
}

async fn history_filters_by_one_key_and_value(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    app.create_account("b").await;
    ok(&app.gql(&app.admin, GRANT, json!({ "a": "a", "amt": "100", "k": "g", "m": { "order": "1" } })).await, "grantCredits");
    ok(&app.gql(&app.admin, GRANT, json!({ "a": "b", "amt": "100", "k": "g", "m": { "order": "1" } })).await, "grantCredits");
    let tricky = "it's \"quoted\", 100% _literal_ \\ 理由";
    let spends = [
        ("s1", json!({ "order": "1", "line": "a" })),
        ("s2", json!({ "order": "2" })),
        ("s3", json!({ "order": "10" })),
        ("s4", json!({ "Order": "1" })),
        ("s5", json!({ "x.y": "1" })),
        ("s6", json!({ "note": tricky })),
        ("s7", Value::Null),
    ];
    let mut sequence = std::collections::HashMap::new();
    for (k, m) in &spends {
        let s = app.gql(&app.service, SPEND, json!({ "a": "a", "amt": "1", "k": k, "m": m })).await;
        sequence.insert(*k, ok(&s, "spendCredits")["sequence"].clone());
    }
    let found = |h: &Value| -> Vec<Value> { h["nodes"].as_array().unwrap().iter().map(|n| n["sequence"].clone()).collect() };
    let by = |key: &str, value: &str| json!({ "metadata": { "key": key, "value": value } });

    // Exact key and value: "1" is not "10", "order" is not "Order"; another account's entries
    // never show; newest first, with the count.
    let h = history(&app, "a", by("order", "1")).await;
    assert_eq!(h["totalCount"], json!(2), "{h}");
    assert_eq!(found(&h)[0], sequence["s1"]);
    assert_eq!(h["nodes"][1]["kind"], json!("GRANT"));
    assert_eq!(found(&history(&app, "a", by("Order", "1")).await), [sequence["s4"].clone()]);
    // A dotted key is one key, not a path.
    assert_eq!(found(&history(&app, "a", by("x.y", "1")).await), [sequence["s5"].clone()]);
    assert_eq!(found(&history(&app, "a", by("x", "1")).await), Vec::<Value>::new());
    // Quotes, percent, underscore and backslash are compared as text, not as patterns.
    assert_eq!(found(&history(&app, "a", by("note", tricky)).await), [sequence["s6"].clone()]);
    assert_eq!(found(&history(&app, "a", by("note", "it's")).await), Vec::<Value>::new());
    assert_eq!(found(&history(&app, "a", by("line", "%")).await), Vec::<Value>::new());
    // With the other conditions.
    let h = history(&app, "a", json!({ "kinds": ["GRANT"], "metadata": { "key": "order", "value": "1" } })).await;
    assert_eq!(h["totalCount"], json!(1), "{h}");
    // A bad key or value is refused like bad metadata.
    for bad in [by("", "1"), by("a b", "1"), by("k", ""), by(&"k".repeat(41), "1"), by("k", &"v".repeat(501)), by("k'--", "1")] {
        let r = app.gql(&app.service, HISTORY, json!({ "a": "a", "f": bad })).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{bad}: {r}");
    }
}

/// Shapes refused by every operation that takes metadata.
fn bad_shapes() -> Vec<(&'static str, Value)> {
    let seventeen: serde_json::Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    let too_big: serde_json::Map<String, Value> = (0..16).map(|i| (format!("k{i}"), json!("v".repeat(400)))).collect();
    vec![
        ("a list", json!(["a"])),
        ("a string", json!("text")),
        ("a number value", json!({ "n": 1 })),
        ("a float value", json!({ "n": 1.5 })),
        ("a bool value", json!({ "b": true })),
        ("a null value", json!({ "n": null })),
        ("a nested object", json!({ "o": { "x": "y" } })),
        ("a list value", json!({ "l": ["x"] })),
        ("an empty key", json!({ "": "v" })),
        ("a key with a space", json!({ "a b": "v" })),
        ("a key with a quote", json!({ "a\"b": "v" })),
        ("a key of 41 characters", json!({ "k".repeat(41): "v" })),
        ("an empty value", json!({ "k": "" })),
        ("a value of 501 characters", json!({ "k": "v".repeat(501) })),
        ("a NUL in a value", json!({ "k": "a\u{0}b" })),
        ("a newline in a value", json!({ "k": "a\nb" })),
        ("17 keys", Value::Object(seventeen)),
        ("over 4096 bytes", Value::Object(too_big)),
    ]
}

async fn bad_metadata_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    ok(&app.gql(&app.admin, GRANT, json!({ "a": "a", "amt": "100", "k": "g-0" })).await, "grantCredits");
    let before = history(&app, "a", Value::Null).await;
    let balance = app.balance("a").await;
    let ops: [(&str, &str, &str, Value); 4] = [
        ("grantCredits", GRANT, &app.admin, json!({ "a": "a", "amt": "5", "k": "k-1" })),
        ("spendCredits", SPEND, &app.service, json!({ "a": "a", "amt": "5", "k": "k-1" })),
        ("reserveCredits", RESERVE, &app.service, json!({ "a": "a", "amt": "5", "k": "k-1" })),
        ("purchaseCredits", PURCHASE, &app.service, json!({ "a": "a", "c": "60", "k": "k-1" })),
    ];
    for (name, query, token, base) in &ops {
        for (what, shape) in bad_shapes() {
            let mut variables = base.clone();
            variables["m"] = shape;
            let r = app.gql(token, query, variables).await;
            assert_eq!(error_code(&r), "BAD_USER_INPUT", "{name} with {what}: {r}");
            assert!(r["data"].is_null() || r["data"][name].is_null(), "{name} with {what}: {r}");
        }
        // And inline in the document, not only as a variable.
        let inline = format!("mutation {{ {name}(input: {{accountId: \"a\", metadata: {{n: 1}}}}) {{ __typename }} }}");
        assert_eq!(error_code(&app.gql(token, &inline, json!({})).await), "BAD_USER_INPUT", "{name} inline");
    }
    assert_eq!(history(&app, "a", Value::Null).await, before, "nothing was written");
    assert_eq!(app.balance("a").await, balance);
    let purchases =
        app.gql(&app.service, "query { account(id: \"a\") { purchases(first: 5, includePending: true) { totalCount } } }", json!({})).await;
    assert_eq!(purchases["data"]["account"]["purchases"]["totalCount"], json!(0), "{purchases}");
    // Input errors are never stored: the key is still free for a good request.
    for (name, query, token, base) in &ops {
        let mut variables = base.clone();
        variables["m"] = json!({ "k": "v" });
        assert!(app.gql(token, query, variables).await["errors"].is_null(), "{name}");
    }
    // The largest metadata within every bound is accepted.
    let largest: serde_json::Map<String, Value> =
        (0..16).map(|i| (format!("{i:0>40}"), json!("v".repeat(if i < 6 { 200 } else { 100 })))).collect();
    let json_len = serde_json::to_string(&largest).unwrap().len();
    assert!(json_len <= 4096, "{json_len}");
    let r = app.gql(&app.service, SPEND, json!({ "a": "a", "amt": "1", "k": "big", "m": largest })).await;
    assert_eq!(entry(&app, "a", &ok(&r, "spendCredits")["sequence"]).await["metadata"], Value::Object(largest));
}

async fn the_key_covers_metadata_in_any_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    ok(&app.gql(&app.admin, GRANT, json!({ "a": "a", "amt": "100", "k": "g-0" })).await, "grantCredits");
    // Key order does not matter: the same request, replayed. (A JSON object's order reaches the
    // server as sent: serde_json keeps it in the variables.)
    let first = app.gql(&app.service, SPEND, json!({ "a": "a", "amt": "2", "k": "s-1", "m": { "a": "1", "b": "2" } })).await;
    let reordered = "mutation { spendCredits(input: {accountId: \"a\", amount: \"2\", feature: \"chat\", idempotencyKey: \"s-1\", metadata: {b: \"2\", a: \"1\"}}) { sequence amount } }";
    let again = app.gql(&app.service, reordered, json!({})).await;
    assert_eq!(ok(&again, "spendCredits"), ok(&first, "spendCredits"));
    assert_eq!(app.balance("a").await, "98", "charged once");
    // Other metadata, metadata added or taken away: another request under the key.
    for m in [json!({ "a": "1", "b": "3" }), json!({ "a": "1" }), Value::Null, json!({})] {
        let r = app.gql(&app.service, SPEND, json!({ "a": "a", "amt": "2", "k": "s-1", "m": m })).await;
        assert_eq!(error_code(&r), "IDEMPOTENCY_CONFLICT", "{m}: {r}");
    }
    // A key used without metadata: `{}` is the same request, metadata is another.
    let plain = app.gql(&app.service, SPEND, json!({ "a": "a", "amt": "2", "k": "s-2" })).await;
    let empty = app.gql(&app.service, SPEND, json!({ "a": "a", "amt": "2", "k": "s-2", "m": {} })).await;
    assert_eq!(ok(&empty, "spendCredits"), ok(&plain, "spendCredits"));
    let added = app.gql(&app.service, SPEND, json!({ "a": "a", "amt": "2", "k": "s-2", "m": { "a": "1" } })).await;
    assert_eq!(error_code(&added), "IDEMPOTENCY_CONFLICT", "{added}");
    // The same for the other operations.
    let g = app.gql(&app.admin, GRANT, json!({ "a": "a", "amt": "1", "k": "g-1", "m": { "x": "1" } })).await;
    assert_eq!(
        ok(&app.gql(&app.admin, GRANT, json!({ "a": "a", "amt": "1", "k": "g-1", "m": { "x": "1" } })).await, "grantCredits"),
        ok(&g, "grantCredits")
    );
    assert_eq!(
        error_code(&app.gql(&app.admin, GRANT, json!({ "a": "a", "amt": "1", "k": "g-1", "m": { "x": "2" } })).await),
        "IDEMPOTENCY_CONFLICT"
    );
    let r = app.gql(&app.service, RESERVE, json!({ "a": "a", "amt": "1", "k": "r-1", "m": { "x": "1" } })).await;
    assert_eq!(
        ok(&app.gql(&app.service, RESERVE, json!({ "a": "a", "amt": "1", "k": "r-1", "m": { "x": "1" } })).await, "reserveCredits"),
        ok(&r, "reserveCredits")
    );
    assert_eq!(error_code(&app.gql(&app.service, RESERVE, json!({ "a": "a", "amt": "1", "k": "r-1" })).await), "IDEMPOTENCY_CONFLICT");
    let p = app.gql(&app.service, PURCHASE, json!({ "a": "a", "c": "60", "k": "b-1", "m": { "x": "1" } })).await;
    assert_eq!(
        ok(&app.gql(&app.service, PURCHASE, json!({ "a": "a", "c": "60", "k": "b-1", "m": { "x": "1" } })).await, "purchaseCredits"),
        ok(&p, "purchaseCredits")
    );
    assert_eq!(
        error_code(&app.gql(&app.service, PURCHASE, json!({ "a": "a", "c": "60", "k": "b-1", "m": { "x": "2" } })).await),
        "IDEMPOTENCY_CONFLICT"
    );
}

/// What a build from before metadata stored for the requests of `old_requests` (run on commit
/// 40faa47 in this order on the `archipelag` program, on SQLite, and read from
/// `idempotency_keys`): operation, key, request hash and outcome, byte for byte. The ids match
/// what the same steps give here; the instants in them are that run's. A request without metadata
/// must hash to exactly these, or every key stored before the upgrade would answer
/// IDEMPOTENCY_CONFLICT to its retry; and the outcomes must still read back.
const PRE_METADATA: [(&str, &str, &str, &str); 5] = [
    ("grant", "g-old", "f88cc0739ce69b4f66f015b847c7a5eda4ff75a11bbf125a726d8036dadf04fa", r#"{"Done":{"entry_id":3,"lot_id":3}}"#),
    (
        "spend",
        "s-old",
        "1576aefdcf7a660d5fa3053cb8874cafb54fed91fbfe9a71bcd5241224d872c5",
        r#"{"Done":{"entry_id":4,"amount":3000000,"takes":[{"lot_id":1,"amount":3000000}],"available_after":10097000000,"effective_at":"2026-12-03T15:43:50.622734Z"}}"#,
    ),
    (
        "reserve",
        "r-old",
        "a3929477b4c65155e274ef18760e0f5b058263a97ad6f1acd1444799a36d168e",
        r#"{"Done":{"reservation_id":1,"amount":2000000,"takes":[{"lot_id":1,"amount":2000000}],"deadline":"2026-12-03T16:43:50.622734Z","available_after":10095000000,"entry_id":5}}"#,
    ),
    ("purchase", "b-old", "bd6a177480918c153792512111a40db92ea66186e9dea5b3e112487e8d0b3c27", r#"{"Done":{"purchase_id":1}}"#),
    (
        "submit_job",
        "j-old",
        "c236b4276dbff162ab57795782aef156718d2c01273a34e076edbdb61654fda8",
        r#"{"Done":[{"id":1,"workload":"llm-chat","input":"hi","priority":50,"status":"running","rejection_code":null,"provider":"p","budget":5000000,"budget_source":"bid","price":2000000,"surge":false,"reservation_id":2,"earnings":null,"fee":null,"deadline":"2026-12-03T16:43:50.622734Z"}]}"#,
    ),
];

fn statement(app: &TestApp, sqlite: &str, values: Vec<SqlValue>) -> Statement {
    let backend = app.ledger.db.get_database_backend();
    let mut sql = sqlite.to_string();
    if backend == sea_orm::DbBackend::Postgres {
        for n in 1..=values.len() {
            sql = sql.replacen('?', &format!("${n}"), 1);
        }
    }
    Statement::from_sql_and_values(backend, sql, values)
}

async fn stored_hash(app: &TestApp, operation: &str, key: &str) -> String {
    let sql = "SELECT request_hash FROM idempotency_keys WHERE operation = ? AND key = ?";
    let row = app.ledger.db.query_one_raw(statement(app, sql, vec![operation.into(), key.into()])).await.unwrap();
    row.unwrap_or_else(|| panic!("{key}")).try_get_by_index(0).unwrap()
}

/// The requests of `PRE_METADATA`, exactly as they were recorded (none has metadata).
async fn old_requests(app: &TestApp) -> [Value; 5] {
    [
        app.gql(&app.admin, "mutation { grantCredits(input: {accountId: \"a\", amount: \"100\", class: PAID, reason: \"why\", idempotencyKey: \"g-old\"}) { lotId sequence } }", json!({})).await,
        app.gql(&app.service, "mutation { spendCredits(input: {accountId: \"a\", amount: \"3\", idempotencyKey: \"s-old\", feature: \"llm-chat\", reason: \"why\"}) { sequence amount } }", json!({})).await,
        app.gql(&app.service, "mutation { reserveCredits(input: {accountId: \"a\", amount: \"2\", idempotencyKey: \"r-old\", feature: \"llm-chat\"}) { reservationId sequence } }", json!({})).await,
        app.gql(&app.service, "mutation { purchaseCredits(input: {accountId: \"a\", credits: \"100\", idempotencyKey: \"b-old\"}) { id } }", json!({})).await,
        app.gql(&app.user("a"), "mutation { submitJob(input: {accountId: \"a\", workload: \"llm-chat\", inputs: [{input: \"hi\", bidPrice: \"5\"}], idempotencyKey: \"j-old\"}) { jobId status price metadata } }", json!({})).await,
    ]
}

async fn keys_stored_before_metadata_still_replay(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    for id in ["a", "p"] {
        app.create_account(id).await;
        let verify = "mutation($a: ID!) { setIdentityVerified(accountId: $a, verified: true) { identityVerified } }";
        assert!(app.gql(&app.service, verify, json!({ "a": id })).await["errors"].is_null());
    }
    let asks = "mutation { setAskingPrices(input: {accountId: \"p\", hardwareClass: ENTRY, capacity: 2, defaultPrice: \"2\", prices: []}) { workload } }";
    assert!(app.gql(&app.user("p"), asks, json!({})).await["errors"].is_null());

    // Today's build, without metadata, stores the hashes the old build stored.
    let first = old_requests(&app).await;
    for (r, (operation, key, hash, _)) in first.iter().zip(PRE_METADATA) {
        assert!(r["errors"].is_null(), "{r}");
        assert_eq!(stored_hash(&app, operation, key).await, hash, "{operation}");
    }
    let balance = app.balance("a").await;

    // The keys as the old build stored them, hash and outcome byte for byte, replay on this one:
    // the same answers, nothing charged again, no IDEMPOTENCY_CONFLICT (a job's old outcome has
    // no `metadata` field, and reads back as none).
    for (operation, key, hash, outcome) in PRE_METADATA {
        let sql = "UPDATE idempotency_keys SET request_hash = ?, outcome = ? WHERE operation = ? AND key = ?";
        let values = vec![hash.into(), outcome.into(), operation.into(), key.into()];
        let done = app.ledger.db.execute_raw(statement(&app, sql, values)).await.unwrap();
        assert_eq!(done.rows_affected(), 1, "{key}");
    }
    let again = old_requests(&app).await;
    for (first, again) in first.iter().zip(&again) {
        assert_eq!(first, again);
    }
    assert_eq!(app.balance("a").await, balance, "nothing moved on the replays");
    // The same keys with metadata are other requests.
    let with = "mutation { spendCredits(input: {accountId: \"a\", amount: \"3\", idempotencyKey: \"s-old\", feature: \"llm-chat\", reason: \"why\", metadata: {k: \"v\"}}) { sequence } }";
    assert_eq!(error_code(&app.gql(&app.service, with, json!({})).await), "IDEMPOTENCY_CONFLICT");
}

on_both!(
    metadata_rides_with_every_operation,
    market_jobs_carry_metadata,
    history_filters_by_one_key_and_value,
    bad_metadata_is_refused_and_changes_nothing,
    the_key_covers_metadata_in_any_order,
    keys_stored_before_metadata_still_replay,
);
