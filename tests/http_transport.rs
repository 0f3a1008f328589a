//! GraphQL over HTTP through the real server: GET queries, media types and status codes, and
//! the caching headers (src/graphql_http).

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use reqwest::header::{ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE, VARY};
use serde_json::{Value, json};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// A GET of `/graphql` with these query parameters, `Accept` and token.
async fn get(app: &TestApp, params: &[(&str, &str)], accept: Option<&str>, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(format!("{}/graphql", app.address)).query(params);
    if let Some(accept) = accept {
        request = request.header(ACCEPT, accept);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("the server answers")
}

/// A POST of `body` (as JSON) with this `Accept` and token.
async fn post(app: &TestApp, body: &Value, accept: Option<&str>, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.post(format!("{}/graphql", app.address)).json(body);
    if let Some(accept) = accept {
        request = request.header(ACCEPT, accept);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("the server answers")
}

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> String {
    response.headers().get_all(name).iter().map(|v| v.to_str().unwrap()).collect::<Vec<_>>().join(", ")
}

/// Status, `Content-Type` and the body as JSON.
async fn read(response: reqwest::Response) -> (u16, String, Value) {
    let (status, content_type) = (response.status().as_u16(), header(&response, CONTENT_TYPE));
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("HTTP {status}, not JSON ({e}): {text}"));
    (status, content_type, body)
}

async fn get_runs_queries_with_variables(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("alice").await;
    let granted = app.grant("alice", "12.5", "PAID", None, "g-1").await;
    assert!(granted["errors"].is_null(), "{granted}");

    let query = "query Balance($a: ID!) { account(id: $a) { balance { total } } }";
    let response = get(&app, &[("query", query), ("variables", r#"{"a": "alice"}"#)], Some("application/json"), Some(&app.service)).await;
    let (status, content_type, body) = read(response).await;
    assert_eq!((status, body["data"]["account"]["balance"]["total"].as_str()), (200, Some("12.5")), "{body}");
    assert!(content_type.starts_with("application/json"), "{content_type}");

    // `operationName` picks the operation of a document holding several, here a query beside
    // a mutation, which does not run.
    let document = "query Balance($a: ID!) { account(id: $a) { balance { total } } } \
                    mutation Create { createAccount(input: {externalId: \"mallory\"}) { created } }";
    let params = [("query", document), ("operationName", "Balance"), ("variables", r#"{"a": "alice"}"#)];
    let (status, content_type, body) = read(get(&app, &params, Some(GRAPHQL_RESPONSE), Some(&app.service)).await).await;
    assert_eq!((status, body["data"]["account"]["balance"]["total"].as_str()), (200, Some("12.5")), "{body}");
    assert!(content_type.starts_with(GRAPHQL_RESPONSE), "{content_type}");

    // Variables that are not a JSON object, or a GET without a query: 400 with a code.
    let (status, _, body) = read(get(&app, &[("query", query), ("variables", "alice")], None, Some(&app.service)).await).await;
    assert_eq!((status, error_code(&body)), (400, "BAD_USER_INPUT"), "{body}");
    let (status, _, body) = read(get(&app, &[], Some("application/json"), None).await).await;
    assert_eq!((status, error_code(&body)), (400, "BAD_USER_INPUT"), "{body}");
}

async fn get_refuses_mutations_with_405(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let create = "mutation { createAccount(input: {externalId: \"bob\"}) { created } }";
    for accept in [Some("application/json"), Some(GRAPHQL_RESPONSE), None] {
        let response = get(&app, &[("query", create)], accept, Some(&app.service)).await;
        assert_eq!(header(&response, ALLOW), "POST");
        let (status, _, body) = read(response).await;
        assert_eq!((status, error_code(&body)), (405, "BAD_USER_INPUT"), "{accept:?}: {body}");
        assert!(body.get("data").is_none(), "nothing ran: {body}");
    }
    // Named by `operationName` in a document that also holds a query.
    let document = format!("query Plans {{ plans {{ code }} }} mutation Create {}", &create["mutation ".len()..]);
    let response = get(&app, &[("query", &document), ("operationName", "Create")], None, Some(&app.service)).await;
    assert_eq!(response.status(), 405);
    let r = app.gql(&app.service, "{ account(id: \"bob\") { id } }", json!({})).await;
    assert_eq!(error_code(&r), "NOT_FOUND", "no GET created the account: {r}");

    // The same mutation over POST runs.
    let (status, _, body) = read(post(&app, &json!({ "query": create }), None, Some(&app.service)).await).await;
    assert_eq!((status, &body["data"]["createAccount"]["created"]), (200, &json!(true)), "{body}");
}

async fn accept_chooses_graphiql_or_data(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page = get(&app, &[], Some(BROWSER), None).await;
    assert_eq!(page.status(), 200);
    assert!(header(&page, CONTENT_TYPE).starts_with("text/html"), "a browser gets the page");

    let typename = [("query", "{ __typename }")];
    for (accept, content_type) in [
        (Some("application/json"), "application/json"),
        (Some("*/*"), "application/json"),
        (None, "application/json"),
        (Some(GRAPHQL_RESPONSE), GRAPHQL_RESPONSE),
    ] {
        let (status, answered, body) = read(get(&app, &typename, accept, None).await).await;
        assert_eq!((status, &body), (200, &json!({ "data": { "__typename": "QueryRoot" } })), "{accept:?}");
        assert!(answered.starts_with(content_type), "{accept:?}: {answered}");
    }
    // A browser's `Accept` on a GET that carries a query still gets the page; a client that
    // names JSON and HTML equally gets data.
    assert!(header(&get(&app, &typename, Some(BROWSER), None).await, CONTENT_TYPE).starts_with("text/html"));
    let (status, answered, _) = read(get(&app, &typename, Some("application/json, text/html"), None).await).await;
    assert_eq!(status, 200);
    assert!(answered.starts_with("application/json"), "{answered}");
}

async fn request_errors_are_4xx_without_data_in_graphql_response_json(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = Some(app.service.as_str());
    let request_errors = [
        json!({ "query": "{" }),
        json!({ "query": "{ nothingHere }" }),
        json!({ "query": "query($id: ID!) { account(id: $id) { id } }", "variables": { "id": null } }),
        json!({ "query": "subscription { balanceChanged(accountId: \"x\") { account } }" }),
    ];
    for body in &request_errors {
        let (status, content_type, answer) = read(post(&app, body, Some(GRAPHQL_RESPONSE), token).await).await;
        assert_eq!((status, error_code(&answer)), (400, "BAD_USER_INPUT"), "{body}: {answer}");
        assert!(answer.get("data").is_none(), "{body}: {answer}");
        assert!(content_type.starts_with(GRAPHQL_RESPONSE), "{content_type}");
        // The legacy type: 200, the same errors.
        let (status, content_type, answer) = read(post(&app, body, Some("application/json"), token).await).await;
        assert_eq!((status, error_code(&answer)), (200, "BAD_USER_INPUT"), "{body}: {answer}");
        assert!(answer.get("data").is_none(), "{body}: {answer}");
        assert!(content_type.starts_with("application/json"), "{content_type}");
    }
    // An error raised while executing is not a request error: 200 and its `data`.
    let (status, _, answer) =
        read(post(&app, &json!({ "query": "{ account(id: \"nobody\") { id } }" }), Some(GRAPHQL_RESPONSE), token).await).await;
    assert_eq!((status, error_code(&answer)), (200, "NOT_FOUND"), "{answer}");
    assert_eq!(answer.get("data"), Some(&Value::Null), "{answer}");
    // A body that is not a request: 400 in both types.
    let malformed = app.client.post(format!("{}/graphql", app.address)).header(CONTENT_TYPE, "application/json").body("{\"query\": ");
    let (status, _, answer) = read(malformed.header(ACCEPT, GRAPHQL_RESPONSE).send().await.unwrap()).await;
    assert_eq!((status, error_code(&answer)), (400, "BAD_USER_INPUT"), "{answer}");
    let (status, _, answer) = read(post(&app, &json!({ "qeury": "{ __typename }" }), Some("application/json"), token).await).await;
    assert_eq!((status, error_code(&answer)), (400, "BAD_USER_INPUT"), "{answer}");
}

async fn unacceptable_types_are_406_and_415(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let typename = json!({ "query": "{ __typename }" });
    let (status, content_type, body) = read(post(&app, &typename, Some("application/xml"), None).await).await;
    assert_eq!((status, error_code(&body)), (406, "BAD_USER_INPUT"), "{body}");
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let (status, _, body) = read(get(&app, &[("query", "{ __typename }")], Some("image/png"), None).await).await;
    assert_eq!((status, error_code(&body)), (406, "BAD_USER_INPUT"), "{body}");

    for content_type in [Some("text/plain;charset=UTF-8"), Some("application/x-www-form-urlencoded"), None] {
        let mut request = app.client.post(format!("{}/graphql", app.address)).body(typename.to_string());
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let (status, _, body) = read(request.send().await.unwrap()).await;
        assert_eq!((status, error_code(&body)), (415, "BAD_USER_INPUT"), "{content_type:?}: {body}");
    }
}

async fn only_token_less_clean_gets_may_be_cached(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let typename = [("query", "{ __typename }")];
    let vary = |response: &reqwest::Response| {
        let vary = header(response, VARY).to_ascii_lowercase();
        assert!(vary.contains("authorization") && vary.contains("accept"), "Vary: {vary}");
    };

    let public = get(&app, &typename, None, None).await;
    assert_eq!((public.status().as_u16(), header(&public, CACHE_CONTROL)), (200, "public, max-age=60".to_string()));
    vary(&public);

    let with_token = get(&app, &typename, None, Some(&app.service)).await;
    assert_eq!((with_token.status().as_u16(), header(&with_token, CACHE_CONTROL)), (200, "private, no-store".to_string()));
    vary(&with_token);
    // A token that does not verify is still the caller's: never shared.
    let bad_token = get(&app, &typename, None, Some("not-a-token")).await;
    assert_eq!(header(&bad_token, CACHE_CONTROL), "private, no-store");

    // An error is never stored: here `me` without a token.
    let error = get(&app, &[("query", "{ me { id } }")], None, None).await;
    assert_eq!(header(&error, CACHE_CONTROL), "no-store");
    let (status, _, body) = read(error).await;
    assert_eq!((status, error_code(&body)), (200, "UNAUTHENTICATED"), "{body}");
    let refused = get(&app, &[("query", "mutation { __typename }")], None, None).await;
    assert_eq!((refused.status().as_u16(), header(&refused, CACHE_CONTROL)), (405, "no-store".to_string()));

    // POST answers are never public.
    let posted = post(&app, &json!({ "query": "{ __typename }" }), None, None).await;
    assert_eq!((posted.status().as_u16(), header(&posted, CACHE_CONTROL)), (200, "no-store".to_string()));
    vary(&posted);
    let posted = post(&app, &json!({ "query": "{ plans { code } }" }), None, Some(&app.service)).await;
    assert_eq!((posted.status().as_u16(), header(&posted, CACHE_CONTROL)), (200, "private, no-store".to_string()));
    vary(&posted);
}

on_both!(
    get_runs_queries_with_variables,
    get_refuses_mutations_with_405,
    accept_chooses_graphiql_or_data,
    request_errors_are_4xx_without_data_in_graphql_response_json,
    unacceptable_types_are_406_and_415,
    only_token_less_clean_gets_may_be_cached,
);
