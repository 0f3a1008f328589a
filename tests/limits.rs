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

on_both!(oversized_deep_and_malformed_requests_are_refused);
