use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::Duration;
use serde_json::{Value, json};

const HISTORY: &str = "query($first: Int, $after: String, $filter: HistoryFilter) {
    me { history(first: $first, after: $after, filter: $filter) { edges { cursor node { sequence kind amount feature } } pageInfo { hasNextPage } } } }";

async fn history_is_newest_first_filterable_and_paged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("reader").await;
    let user = app.user("reader");
    let start = app.clock.now();
    app.grant("reader", "100", "PAID", None, "g").await;
    for i in 0..7 {
        app.clock.set(start + Duration::minutes(i + 1));
        let feature = if i % 2 == 0 { "chat" } else { "image" };
        let r = app
            .gql(
                &app.service,
                "mutation($k: String!, $f: String!) { spendCredits(input: {accountId: \"reader\", amount: \"1\", idempotencyKey: $k, feature: $f}) { sequence } }",
                json!({ "k": format!("s-{i}"), "f": feature }),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
    }

    // Pages of 3 walk all 8 entries newest first, with no gap or repeat.
    let mut seen: Vec<i64> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app.gql(&user, HISTORY, json!({ "first": 3, "after": after })).await;
        let history = &page["data"]["me"]["history"];
        let edges = history["edges"].as_array().unwrap_or_else(|| panic!("{page}"));
        seen.extend(edges.iter().map(|e| e["node"]["sequence"].as_str().unwrap().parse::<i64>().unwrap()));
        if history["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = edges.last().map(|e| e["cursor"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 8);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "strictly newest first: {seen:?}");

    let kinds = |r: &Value| {
        r["data"]["me"]["history"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["kind"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let grants = app.gql(&user, HISTORY, json!({ "filter": { "kinds": ["GRANT"] } })).await;
    assert_eq!(kinds(&grants), vec!["GRANT"]);
    let chats = app.gql(&user, HISTORY, json!({ "filter": { "feature": "chat" } })).await;
    assert_eq!(kinds(&chats).len(), 4);
    let window = app
        .gql(&user, HISTORY, json!({ "filter": { "from": (start + Duration::minutes(2)).to_rfc3339(), "until": (start + Duration::minutes(4)).to_rfc3339() } }))
        .await;
    assert_eq!(kinds(&window), vec!["SPEND", "SPEND"], "{window}");

    for bad in [
        json!({ "first": 101 }),
        json!({ "first": 0 }),
        json!({ "after": "not-a-cursor" }),
        json!({ "filter": { "from": start.to_rfc3339(), "until": start.to_rfc3339() } }),
    ] {
        let r = app.gql(&user, HISTORY, bad.clone()).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{bad}");
    }
}

on_both!(history_is_newest_first_filterable_and_paged);
