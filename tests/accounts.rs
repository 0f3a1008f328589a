use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use serde_json::json;

const CREATE: &str = "mutation($id: ID!, $plan: String) { createAccount(input: {externalId: $id, plan: $plan}) { created account { id plan balance { total bars { source class remaining } } } } }";

async fn create_account_is_idempotent_on_the_external_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.gql(&app.service, CREATE, json!({ "id": "user-1", "plan": "membership" })).await;
    assert_eq!(first["data"]["createAccount"]["created"], json!(true), "{first}");
    assert_eq!(first["data"]["createAccount"]["account"]["plan"], json!("membership"));
    let again = app.gql(&app.service, CREATE, json!({ "id": "user-1", "plan": "membership" })).await;
    assert_eq!(again["data"]["createAccount"]["created"], json!(false), "{again}");
    let other_plan = app.gql(&app.service, CREATE, json!({ "id": "user-1", "plan": "free" })).await;
    assert_eq!(error_code(&other_plan), "IDEMPOTENCY_CONFLICT");
    let default_plan = app.gql(&app.service, CREATE, json!({ "id": "user-2" })).await;
    assert_eq!(default_plan["data"]["createAccount"]["account"]["plan"], json!("free"));
    let unknown_plan = app.gql(&app.service, CREATE, json!({ "id": "user-3", "plan": "gold" })).await;
    assert_eq!(error_code(&unknown_plan), "BAD_USER_INPUT");
    for bad in ["", " padded", &"x".repeat(129)] {
        let r = app.gql(&app.service, CREATE, json!({ "id": bad })).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{bad:?}");
    }
    let by_user = app.gql(&app.user("user-4"), CREATE, json!({ "id": "user-4" })).await;
    assert_eq!(error_code(&by_user), "FORBIDDEN");
    let missing = app.gql(&app.service, "{ account(id: \"user-3\") { id } }", json!({})).await;
    assert_eq!(error_code(&missing), "NOT_FOUND");
}

async fn sign_up_grant_is_made_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    // Ten concurrent creations of one account: one creates it and grants, the rest return it.
    let results = futures::future::join_all((0..10).map(|_| app.gql(&app.service, CREATE, json!({ "id": "islander" })))).await;
    let created = results.iter().filter(|r| r["data"]["createAccount"]["created"] == json!(true)).count();
    assert_eq!(created, 1, "{results:?}");
    assert!(results.iter().all(|r| r["errors"].is_null()), "{results:?}");
    assert_eq!(app.balance("islander").await, "10000");
    let bars = &results[0]["data"]["createAccount"]["account"]["balance"]["bars"];
    let me = app.gql(&app.user("islander"), "{ me { balance { bars { source class remaining } } } }", json!({})).await;
    assert_eq!(
        me["data"]["me"]["balance"]["bars"],
        json!([{ "source": "SIGN_UP", "class": "PROMOTIONAL", "remaining": "10000" }]),
        "{me} {bars}"
    );
    app.assert_audit_clean().await;
}

const SET_STATUS: &str = "mutation($id: ID!, $s: AccountStatus!) { setAccountStatus(input: {accountId: $id, status: $s}) { id status } }";

async fn account_status_limits_what_may_happen(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("sleepy").await;
    app.grant("sleepy", "10", "PAID", None, "g-1").await;
    let spend_for = |feature: &'static str, key: &'static str| {
        app.gql(
            &app.service,
            "mutation($f: String!, $k: String!) { spendCredits(input: {accountId: \"sleepy\", amount: \"1\", idempotencyKey: $k, feature: $f}) { sequence } }",
            json!({ "f": feature, "k": key }),
        )
    };

    let by_user = app.gql(&app.user("sleepy"), SET_STATUS, json!({ "id": "sleepy", "s": "SUSPENDED" })).await;
    assert_eq!(error_code(&by_user), "FORBIDDEN");
    let inactive = app.gql(&app.service, SET_STATUS, json!({ "id": "sleepy", "s": "INACTIVE" })).await;
    assert_eq!(inactive["data"]["setAccountStatus"]["status"], json!("INACTIVE"), "{inactive}");
    // Inactive: keeps its credits, charged only for storage, may still buy and be granted credits.
    assert_eq!(error_code(&spend_for("chat", "s-1").await), "ACCOUNT_NOT_ACTIVE");
    assert!(spend_for("storage", "s-2").await["errors"].is_null());
    assert!(app.grant("sleepy", "1", "PROMOTIONAL", None, "g-2").await["errors"].is_null());

    app.gql(&app.admin, SET_STATUS, json!({ "id": "sleepy", "s": "SUSPENDED" })).await;
    // Suspended: only reads.
    assert_eq!(error_code(&spend_for("storage", "s-3").await), "ACCOUNT_NOT_ACTIVE");
    assert_eq!(error_code(&app.grant("sleepy", "1", "PAID", None, "g-3").await), "ACCOUNT_NOT_ACTIVE");
    let purchase = app
        .gql(
            &app.user("sleepy"),
            "mutation { purchaseCredits(input: {accountId: \"sleepy\", credits: \"100\", idempotencyKey: \"p\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&purchase), "ACCOUNT_NOT_ACTIVE");
    assert_eq!(app.balance("sleepy").await, "10");

    // Back to active: new keys work; the refused key keeps its first outcome.
    app.gql(&app.service, SET_STATUS, json!({ "id": "sleepy", "s": "ACTIVE" })).await;
    assert_eq!(error_code(&spend_for("chat", "s-1").await), "ACCOUNT_NOT_ACTIVE");
    assert!(spend_for("chat", "s-4").await["errors"].is_null());
    assert_eq!(app.balance("sleepy").await, "9");
    app.assert_audit_clean().await;
}

on_both!(create_account_is_idempotent_on_the_external_id, sign_up_grant_is_made_once, account_status_limits_what_may_happen);
