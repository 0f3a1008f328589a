use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use serde_json::json;

async fn oversized_deep_and_malformed_requests_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = app.client.get(format!("{}/health", app.address)).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let huge = format!("{{ creditPackages {{ code }} }} # {}", "x".repeat(credits::http::MAX_BODY_BYTES));
    // Its own client: the server closes this connection after the 413, and a pooled client could
    // otherwise send the next request on the closing connection.
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&app.service)
        .json(&json!({ "query": huge }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");

    let malformed = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&app.service)
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: serde_json::Value = malformed.json().await.unwrap();
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    let batch = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&app.service)
        .json(&json!([{ "query": "{ plans { code } }" }, { "query": "{ plans { code } }" }]))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 400, "batches are not accepted");
    let body: serde_json::Value = batch.json().await.unwrap();
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");

    let deep = format!(
        "{{ __schema {{ types {{ {} name {} }} }} }}",
        "fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType {".repeat(2),
        "}}}}}}}}".repeat(2)
    );
    let r = app.gql(&app.service, &deep, json!({})).await;
    assert_eq!(error_code(&r), "BAD_USER_INPUT", "{r}");
    let unknown_field = app.gql(&app.service, "{ nothingHere }", json!({})).await;
    assert_eq!(error_code(&unknown_field), "BAD_USER_INPUT");
}

/// Production mode: no introspection, no GraphiQL; tokens of the secret being rotated out still
/// work; a request past the timeout is stopped with a code and changes nothing.
async fn production_mode_rotation_and_timeouts(backend: Backend) {
    use credits::auth::{AuthKeys, Role};
    let previous = b"the-previous-secret-the-previous".to_vec();
    let security = credits::app::Security { production: true, previous_auth_secret: Some(previous.clone()), ..Default::default() };
    let app = TestApp::spawn_secured(crate::support::TestDb::new(backend).await, backend, crate::support::LEDGER_PROGRAM, security).await;
    let introspection = app.gql(&app.service, "{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(introspection["data"]["__schema"], json!(null), "introspection answers nothing: {introspection}");
    let graphiql = app.client.get(format!("{}/graphql", app.address)).header("accept", "text/html").send().await.unwrap();
    assert_eq!(graphiql.status(), 404);
    // A misspelt field is refused without naming the right one, which would give the schema away.
    let misspelt = app.gql(&app.service, "{ programm { name } }", json!({})).await;
    assert_eq!(error_code(&misspelt), "BAD_USER_INPUT", "{misspelt}");
    assert!(!misspelt.to_string().contains("Did you mean"), "production suggests nothing: {misspelt}");

    let old = AuthKeys::new(&previous).issue(Role::Service, None, std::time::Duration::from_secs(60)).unwrap();
    let created = app.gql(&old, "mutation { createAccount(input: {externalId: \"r\"}) { created } }", json!({})).await;
    assert_eq!(created["data"]["createAccount"]["created"], json!(true), "a token of the previous secret: {created}");
    let foreign =
        AuthKeys::new(b"a-secret-nobody-configured-here!").issue(Role::Admin, Some("ops"), std::time::Duration::from_secs(60)).unwrap();
    assert_eq!(error_code(&app.gql(&foreign, "{ plans { code } }", json!({})).await), "UNAUTHENTICATED");

    let hurried = credits::app::Security { request_timeout: std::time::Duration::from_nanos(1), ..Default::default() };
    let app = TestApp::spawn_secured(crate::support::TestDb::new(backend).await, backend, crate::support::LEDGER_PROGRAM, hurried).await;
    // Another connection holds the accounts table's write lock, so the request is certainly
    // still waiting when its timer fires (a fast machine could otherwise finish it first).
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let blocker = credits::db::connect(&app.db.url, 1).await.unwrap();
    let options =
        sea_orm::TransactionOptions { sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate), ..Default::default() };
    let lock = blocker.begin_with_options(options).await.unwrap();
    let statement = match backend {
        Backend::Sqlite => "UPDATE accounts SET balance_micros = balance_micros",
        Backend::Postgres => "LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE",
    };
    lock.execute_unprepared(statement).await.unwrap();
    let r = app.gql(&app.service, "mutation { createAccount(input: {externalId: \"slow\"}) { created } }", json!({})).await;
    assert_eq!(error_code(&r), "TIMEOUT", "{r}");
    lock.rollback().await.unwrap();
    app.assert_audit_clean().await;
}

/// Claims are rate-limited per account and per client address: past the limit a claim gets
/// `TOO_MANY_ATTEMPTS` and nothing is claimed or stored; other accounts on other addresses are not
/// affected by one account's limit.
async fn claims_are_rate_limited_per_account_and_address(backend: Backend) {
    let security = credits::app::Security { claims_per_minute_per_account: 3, claims_per_minute_per_ip: 5, ..Default::default() };
    let app = TestApp::spawn_secured(crate::support::TestDb::new(backend).await, backend, "arkain", security).await;
    app.create_account("a").await;
    app.create_account("b").await;
    let redeem = |account: &'static str, key: String| {
        let app = &app;
        async move {
            app.gql(
                &app.user(account),
                "mutation($a: ID!, $k: String!) { redeemCoupon(input: {accountId: $a, code: \"NO-SUCH-CODE\", idempotencyKey: $k}) { amount } }",
                json!({ "a": account, "k": key }),
            )
            .await
        }
    };
    // The first three get the coupon's own answer; the fourth is stopped before the ledger.
    for i in 0..3 {
        assert_eq!(error_code(&redeem("a", format!("k-{i}")).await), "COUPON_NOT_FOUND");
    }
    let limited = redeem("a", "k-3".into()).await;
    assert_eq!(error_code(&limited), "TOO_MANY_ATTEMPTS", "{limited}");
    let checked_in =
        app.gql(&app.user("a"), "mutation { checkIn(input: {accountId: \"a\", idempotencyKey: \"c\"}) { amount } }", json!({})).await;
    assert_eq!(error_code(&checked_in), "TOO_MANY_ATTEMPTS", "every claim counts against the account");
    // Another account still has its own budget, until the address's runs out: 3 of a's and 2 of
    // b's reached it (claims an account limit stopped are not counted again).
    assert_eq!(error_code(&redeem("b", "k-0".into()).await), "COUPON_NOT_FOUND");
    assert_eq!(error_code(&redeem("b", "k-1".into()).await), "COUPON_NOT_FOUND");
    let by_address = redeem("b", "k-2".into()).await;
    assert_eq!(error_code(&by_address), "TOO_MANY_ATTEMPTS", "6 claims from one address: {by_address}");
    // The product's backend checks in on behalf of its users from the same address: held to the
    // per-account limit only, so the address's spent budget does not stop it.
    for account in ["c", "d", "e", "f", "g", "h"] {
        app.create_account(account).await;
        let checked_in = app
            .gql(
                &app.service,
                "mutation($a: ID!) { checkIn(input: {accountId: $a, idempotencyKey: \"c\"}) { amount } }",
                json!({ "a": account }),
            )
            .await;
        assert!(checked_in["errors"].is_null(), "{checked_in}");
    }
    let fourth = |key: &'static str| {
        let app = &app;
        async move {
            app.gql(
                &app.service,
                "mutation($k: String!) { redeemCoupon(input: {accountId: \"c\", code: \"NO-SUCH-CODE\", idempotencyKey: $k}) { amount } }",
                json!({ "k": key }),
            )
            .await
        }
    };
    assert_eq!(error_code(&fourth("r-1").await), "COUPON_NOT_FOUND");
    assert_eq!(error_code(&fourth("r-2").await), "COUPON_NOT_FOUND");
    assert_eq!(error_code(&fourth("r-3").await), "TOO_MANY_ATTEMPTS", "the per-account limit holds for the backend too");
    app.assert_audit_clean().await;
}

/// Two processes on one database hold one claim limit between them (issue 28): the counts are
/// in the database, not in each process. With `claim_limits = "memory"` each would allow its own.
async fn claim_limits_hold_across_processes(backend: Backend) {
    let security = || credits::app::Security { claims_per_minute_per_account: 3, claims_per_minute_per_ip: 100, ..Default::default() };
    let first = TestApp::spawn_secured(crate::support::TestDb::new(backend).await, backend, "arkain", security()).await;
    let second = TestApp::spawn_secured(first.db.shared(), backend, "arkain", security()).await;
    first.create_account("a").await;
    async fn redeem(app: &TestApp, key: &str) -> serde_json::Value {
        app.gql(
            &app.user("a"),
            "mutation($k: String!) { redeemCoupon(input: {accountId: \"a\", code: \"NO-SUCH-CODE\", idempotencyKey: $k}) { amount } }",
            json!({ "k": key }),
        )
        .await
    }
    assert_eq!(error_code(&redeem(&first, "k-1").await), "COUPON_NOT_FOUND");
    assert_eq!(error_code(&redeem(&second, "k-2").await), "COUPON_NOT_FOUND");
    assert_eq!(error_code(&redeem(&first, "k-3").await), "COUPON_NOT_FOUND");
    // Each process has seen at most two: only a shared count stops these.
    let limited = redeem(&second, "k-4").await;
    assert_eq!(error_code(&limited), "TOO_MANY_ATTEMPTS", "{limited}");
    assert_eq!(error_code(&redeem(&first, "k-5").await), "TOO_MANY_ATTEMPTS");
    let message = limited["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("retry in"), "{message}");
    // Concurrent claims from both processes: of 10 more on a fresh account, exactly 3 pass.
    first.create_account("b").await;
    let burst = (0..10).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        async move {
            app.gql(
                &app.user("b"),
                "mutation($k: String!) { redeemCoupon(input: {accountId: \"b\", code: \"NO-SUCH-CODE\", idempotencyKey: $k}) { amount } }",
                json!({ "k": format!("b-{i}") }),
            )
            .await
        }
    });
    let outcomes: Vec<String> = futures_util::future::join_all(burst).await.iter().map(|r| error_code(r).to_string()).collect();
    assert_eq!(outcomes.iter().filter(|c| *c == "COUPON_NOT_FOUND").count(), 3, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|c| *c == "TOO_MANY_ATTEMPTS").count(), 7, "{outcomes:?}");
}

/// Aliases are bounded per document (one request cannot repeat a mutation thirty times);
/// batches are off by default and, when configured, bounded in size. A refused request changes
/// nothing.
async fn aliases_and_batches_are_bounded(backend: Backend) {
    let security = credits::app::Security { max_aliases: 5, max_batch_size: 3, max_directives: 1, ..Default::default() };
    let app = TestApp::spawn_secured(crate::support::TestDb::new(backend).await, backend, crate::support::LEDGER_PROGRAM, security).await;
    app.create_account("a").await;
    let creates = |n: usize| {
        let fields: Vec<String> =
            (0..n).map(|i| format!("c{i}: createAccount(input: {{externalId: \"alias-{i}\"}}) {{ created }}")).collect();
        format!("mutation {{ {} }}", fields.join(" "))
    };
    // Development mode suggests the field meant.
    let misspelt = app.gql(&app.service, "{ programm { name } }", json!({})).await;
    assert!(misspelt.to_string().contains("Did you mean \\\"program\\\"?"), "{misspelt}");
    // Directives are bounded per field (one here): two on a field are refused before anything runs.
    let one = app.gql(&app.service, "{ plans @include(if: true) { code } }", json!({})).await;
    assert!(one["errors"].is_null(), "{one}");
    let two = app.gql(&app.service, "{ plans @include(if: true) @skip(if: false) { code } }", json!({})).await;
    assert_eq!(error_code(&two), "BAD_USER_INPUT", "{two}");
    assert!(two["errors"][0]["message"].as_str().unwrap().contains("number of directives"), "{two}");
    assert!(two["data"].is_null(), "{two}");
    let five = app.gql(&app.service, &creates(5), json!({})).await;
    assert_eq!(five["data"]["c4"]["created"], json!(true), "5 aliases are allowed: {five}");
    let six = app.gql(&app.service, &creates(6), json!({})).await;
    assert_eq!(error_code(&six), "BAD_USER_INPUT", "{six}");
    assert!(six["errors"][0]["message"].as_str().unwrap().contains("6 aliases"), "{six}");
    let r = app.gql(&app.service, "{ account(id: \"alias-5\") { id } }", json!({})).await;
    assert_eq!(r["data"]["account"], json!(null), "the refused request created nothing: {r}");

    let post = |body: serde_json::Value| {
        let app = &app;
        async move { app.client.post(format!("{}/graphql", app.address)).bearer_auth(&app.service).json(&body).send().await.unwrap() }
    };
    let three =
        post(json!([{ "query": "{ plans { code } }" }, { "query": "{ account(id: \"a\") { id } }" }, { "query": "{ nothing }" }])).await;
    assert_eq!(three.status(), 200);
    let answers: serde_json::Value = three.json().await.unwrap();
    assert_eq!(answers[1]["data"]["account"]["id"], json!("a"), "{answers}");
    assert_eq!(answers[2]["errors"][0]["extensions"]["code"], json!("BAD_USER_INPUT"), "{answers}");
    let four = post(json!([{ "query": "{ plans { code } }" }, { "query": "{ plans { code } }" }, { "query": "{ plans { code } }" }, { "query": "{ plans { code } }" }])).await;
    assert_eq!(four.status(), 400);
    let body: serde_json::Value = four.json().await.unwrap();
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    // An empty array is a batch of nothing: refused with a code.
    let empty: serde_json::Value = post(json!([])).await.json().await.unwrap();
    assert_eq!(error_code(&empty), "BAD_USER_INPUT", "{empty}");
    app.assert_audit_clean().await;
}

on_both!(
    claim_limits_hold_across_processes,
    aliases_and_batches_are_bounded,
    oversized_deep_and_malformed_requests_are_refused,
    production_mode_rotation_and_timeouts,
    claims_are_rate_limited_per_account_and_address
);
