//! The operator's reads through the real API (admin only): the account search, the coupon list
//! and one account's audit, which must find a row that disagrees with the journal.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

const SEARCH: &str = "query($s: String!, $first: Int, $after: String) {
    accounts(search: $s, first: $first, after: $after) { totalCount nodes { id } pageInfo { hasNextPage endCursor } } }";

fn ids(answer: &Value) -> Vec<&str> {
    answer["data"]["accounts"]["nodes"].as_array().unwrap_or_else(|| panic!("{answer}")).iter().map(|n| n["id"].as_str().unwrap()).collect()
}

async fn an_operator_finds_accounts_by_id_or_its_beginning(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    for id in ["acme-1", "acme-2", "acme_x", "Acme-3", "bob", "100%"] {
        app.create_account(id).await;
    }
    let search = |s: &str| app.gql(&app.admin, SEARCH, json!({ "s": s }));
    let found = search("acme-").await;
    assert_eq!(ids(&found), ["acme-2", "acme-1"], "newest first: {found}");
    assert_eq!(found["data"]["accounts"]["totalCount"], json!(2));
    // Case-sensitive, and `_` and `%` are plain characters, on both databases.
    assert_eq!(ids(&search("acme").await), ["acme_x", "acme-2", "acme-1"]);
    assert_eq!(ids(&search("acme_").await), ["acme_x"]);
    assert_eq!(ids(&search("Acme").await), ["Acme-3"]);
    assert_eq!(ids(&search("100%").await), ["100%"]);
    assert_eq!(ids(&search("%").await), Vec::<&str>::new());
    assert_eq!(ids(&search("bob").await), ["bob"], "an exact id");
    assert_eq!(ids(&search("nobody").await), Vec::<&str>::new());

    // Paged with opaque cursors.
    let first = app.gql(&app.admin, SEARCH, json!({ "s": "acme", "first": 2 })).await;
    assert_eq!(ids(&first), ["acme_x", "acme-2"]);
    let after = first["data"]["accounts"]["pageInfo"]["endCursor"].clone();
    let rest = app.gql(&app.admin, SEARCH, json!({ "s": "acme", "first": 2, "after": after })).await;
    assert_eq!(ids(&rest), ["acme-1"]);
    assert_eq!(rest["data"]["accounts"]["pageInfo"]["hasNextPage"], json!(false));

    for bad in ["", " acme", &"a".repeat(129)] {
        assert_eq!(error_code(&search(bad).await), "BAD_USER_INPUT", "{bad:?}");
    }
    for token in [app.service.clone(), app.user("bob")] {
        assert_eq!(error_code(&app.gql(&token, SEARCH, json!({ "s": "bob" })).await), "FORBIDDEN");
    }
}

async fn an_operator_lists_coupons_with_their_redemptions(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("ann").await;
    let create = "mutation($c: String!, $max: Int) { createCoupon(input: {code: $c, credits: \"5\", maxRedemptions: $max}) { code } }";
    for (code, max) in [("FIRST", json!(2)), ("OPEN", Value::Null), ("LAST", json!(10))] {
        let created = app.gql(&app.admin, create, json!({ "c": code, "max": max })).await;
        assert!(created["errors"].is_null(), "{created}");
    }
    let redeem = app
        .gql(
            &app.user("ann"),
            "mutation { redeemCoupon(input: {accountId: \"ann\", code: \"first\", idempotencyKey: \"r1\"}) { amount } }",
            json!({}),
        )
        .await;
    assert!(redeem["errors"].is_null(), "{redeem}");
    let list = "query($first: Int) { coupons(first: $first) { totalCount nodes { code credits redemptions maxRedemptions remainingRedemptions } } }";
    let listed = app.gql(&app.admin, list, json!({})).await;
    assert_eq!(
        listed["data"]["coupons"],
        json!({
            "totalCount": 3,
            "nodes": [
                { "code": "LAST", "credits": "5", "redemptions": 0, "maxRedemptions": 10, "remainingRedemptions": 10 },
                { "code": "OPEN", "credits": "5", "redemptions": 0, "maxRedemptions": null, "remainingRedemptions": null },
                { "code": "FIRST", "credits": "5", "redemptions": 1, "maxRedemptions": 2, "remainingRedemptions": 1 },
            ],
        }),
        "{listed}"
    );
    assert_eq!(app.gql(&app.admin, list, json!({ "first": 1 })).await["data"]["coupons"]["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(error_code(&app.gql(&app.service, list, json!({})).await), "FORBIDDEN");
}

async fn an_account_audit_finds_a_row_that_disagrees(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("ann").await;
    app.create_account("bob").await;
    assert!(app.grant("ann", "40", "PAID", None, "g1").await["errors"].is_null());
    assert!(app.spend("ann", "15", "s1").await["errors"].is_null());
    let reserve =
        "mutation { reserveCredits(input: {accountId: \"ann\", amount: \"5\", feature: \"chat\", idempotencyKey: \"h1\"}) { amount } }";
    assert!(app.gql(&app.service, reserve, json!({})).await["errors"].is_null());
    let audit = "query($a: ID!) { auditAccount(id: $a) { accountId clean problems lots entries held lotsAwaitingExpiry } }";

    let clean = app.gql(&app.admin, audit, json!({ "a": "ann" })).await;
    let report = &clean["data"]["auditAccount"];
    assert_eq!(report["clean"], json!(true), "{clean}");
    assert_eq!(report["problems"], json!([]));
    assert_eq!(report["held"], json!("5"));
    assert_eq!(report["accountId"], json!("ann"));
    assert!(report["lots"].as_i64().unwrap() >= 1 && report["entries"].as_i64().unwrap() >= 3, "{report}");

    // A lot changed behind the journal's back: ann's audit says so, bob's stays clean.
    let db = &app.ledger.db;
    let account_id = app.ledger.account("ann").await.unwrap().id;
    let tamper = |delta: i64| {
        Statement::from_string(
            db.get_database_backend(),
            format!(
                "UPDATE lots SET remaining_micros = remaining_micros + {delta} WHERE id = (SELECT MAX(id) FROM lots WHERE account_id = {account_id} AND remaining_micros > 1)"
            ),
        )
    };
    db.execute_raw(tamper(-1)).await.unwrap();
    let broken = app.gql(&app.admin, audit, json!({ "a": "ann" })).await;
    let report = &broken["data"]["auditAccount"];
    assert_eq!(report["clean"], json!(false), "{broken}");
    let problems = report["problems"].to_string();
    assert!(problems.contains("lot remaining differs from its journal lines"), "{problems}");
    assert!(problems.contains("cached balance differs from the sum of lots"), "{problems}");
    assert_eq!(app.gql(&app.admin, audit, json!({ "a": "bob" })).await["data"]["auditAccount"]["clean"], json!(true));
    db.execute_raw(tamper(1)).await.unwrap();
    assert_eq!(app.gql(&app.admin, audit, json!({ "a": "ann" })).await["data"]["auditAccount"]["clean"], json!(true));

    assert_eq!(error_code(&app.gql(&app.admin, audit, json!({ "a": "nobody" })).await), "NOT_FOUND");
    assert_eq!(error_code(&app.gql(&app.service, audit, json!({ "a": "ann" })).await), "FORBIDDEN");
    assert_eq!(error_code(&app.gql(&app.user("ann"), audit, json!({ "a": "ann" })).await), "FORBIDDEN");
    app.assert_audit_clean().await;
}

on_both!(
    an_operator_finds_accounts_by_id_or_its_beginning,
    an_operator_lists_coupons_with_their_redemptions,
    an_account_audit_finds_a_row_that_disagrees
);
