use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use credits::auth::{AuthKeys, Role};
use serde_json::json;
use std::time::Duration;

async fn every_request_is_authorized_by_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("alice").await;
    app.create_account("bob").await;
    let alice = app.user("alice");

    let me = app.gql(&alice, "{ me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"]["id"], json!("alice"));
    let own = app.gql(&alice, "{ account(id: \"alice\") { id } }", json!({})).await;
    assert_eq!(own["data"]["account"]["id"], json!("alice"));
    for query in ["{ account(id: \"bob\") { id } }", "{ account(id: \"nobody\") { id } }"] {
        let r = app.gql(&alice, query, json!({})).await;
        assert_eq!(error_code(&r), "FORBIDDEN", "a user never reads another account, nor learns whether it exists");
    }
    let purchase_for_bob = app
        .gql(&alice, "mutation { purchaseCredits(input: {accountId: \"bob\", credits: \"100\", idempotencyKey: \"x\"}) { id } }", json!({}))
        .await;
    assert_eq!(error_code(&purchase_for_bob), "FORBIDDEN");
    let me_as_service = app.gql(&app.service, "{ me { id } }", json!({})).await;
    assert_eq!(error_code(&me_as_service), "FORBIDDEN");

    let forged = AuthKeys::new(b"not-the-secret-not-the-secret-not!").issue(Role::Admin, Some("ops"), Duration::from_secs(60)).unwrap();
    let now = chrono::Utc::now().timestamp();
    let not_yet = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "role": "admin", "iss": "credits", "aud": "credits-api", "iat": now, "nbf": now + 600, "exp": now + 1200 }),
        &jsonwebtoken::EncodingKey::from_secret(crate::support::SECRET),
    )
    .unwrap();
    for token in ["", "garbage", forged.as_str(), not_yet.as_str()] {
        let r = app.gql(token, "{ me { id } }", json!({})).await;
        assert_eq!(error_code(&r), "UNAUTHENTICATED", "{token:?}");
    }
    let anonymous = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": "{ creditPackages { code } }" }))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
}

on_both!(every_request_is_authorized_by_role);
