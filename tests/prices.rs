//! Prices before use and charges by price reference (domain.md §4 "Prices").

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use serde_json::{Value, json};

const QUOTE: &str =
    "query($f: String!, $o: PriceOptionsInput) { priceQuote(feature: $f, options: $o) { feature model total lines { label factor } } }";
const SPEND: &str = "mutation($a: ID!, $f: String!, $p: PriceOptionsInput, $amt: CreditAmount, $k: String!) {
    spendCredits(input: {accountId: $a, feature: $f, price: $p, amount: $amt, idempotencyKey: $k}) { sequence amount availableAfter } }";

async fn quote(app: &TestApp, feature: &str, options: Value) -> Value {
    app.gql(&app.service, QUOTE, json!({ "f": feature, "o": options })).await
}

async fn a_quote_prices_a_use_and_a_spend_charges_it_by_reference(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    let video = quote(&app, "video", json!(null)).await;
    assert_eq!(
        video["data"]["priceQuote"],
        json!({ "feature": "video", "model": "ltx", "total": "33", "lines": [
            { "label": "Carat Video (LTX)", "factor": "33" },
            { "label": "count 1", "factor": "1" },
            { "label": "length 5 s (default 5 s)", "factor": "1" },
            { "label": "resolution 720p", "factor": "1" },
        ] }),
        "carat's published price at default options"
    );
    let scaled = quote(&app, "video", json!({ "count": 2, "lengthSeconds": 10, "resolution": "1080p" })).await;
    assert_eq!(scaled["data"]["priceQuote"]["total"], json!("198"), "33 x 2 x 2 x 1.5");
    for (feature, options) in [
        ("video", json!({ "lengthSeconds": 16 })),
        ("video", json!({ "count": 0 })),
        ("video", json!({ "resolution": "8k" })),
        ("video", json!({ "model": "nope" })),
        ("teleport", json!(null)),
        ("chat", json!({ "lengthSeconds": 5 })),
    ] {
        assert_eq!(error_code(&quote(&app, feature, options.clone()).await), "BAD_USER_INPUT", "{feature} {options}");
    }

    let r = app.gql(&app.service, "mutation { createAccount(input: {externalId: \"u\", plan: \"plus\"}) { created } }", json!({})).await;
    assert!(r["errors"].is_null(), "{r}");
    let spend = |options: Value, amount: Value, key: &'static str| {
        let app = &app;
        async move { app.gql(&app.service, SPEND, json!({ "a": "u", "f": "video", "p": options, "amt": amount, "k": key })).await }
    };
    let charged = spend(json!({ "lengthSeconds": 10 }), json!(null), "v-1").await;
    assert_eq!(charged["data"]["spendCredits"]["amount"], json!("66"), "{charged}");
    assert_eq!(charged["data"]["spendCredits"]["availableAfter"], json!("9934"));
    assert_eq!(spend(json!({ "lengthSeconds": 10 }), json!(null), "v-1").await["data"], charged["data"], "a replay");
    assert_eq!(error_code(&spend(json!({ "lengthSeconds": 12 }), json!(null), "v-1").await), "IDEMPOTENCY_CONFLICT");
    assert_eq!(error_code(&spend(json!({ "lengthSeconds": 10 }), json!("66"), "v-2").await), "BAD_USER_INPUT", "amount or price");
    assert_eq!(error_code(&spend(json!(null), json!(null), "v-3").await), "BAD_USER_INPUT");
    let history = app.gql(&app.user("u"), "{ me { history(first: 1) { edges { node { feature model amount } } } } }", json!({})).await;
    assert_eq!(history["data"]["me"]["history"]["edges"][0]["node"], json!({ "feature": "video", "model": "ltx", "amount": "-66" }));
    app.assert_audit_clean().await;
}

/// Token-priced AI: exact to the micro-credit, rounded once (domain.md §2).
async fn token_priced_models_quote_exactly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let nano = quote(&app, "side-chat", json!({ "model": "gpt-5-nano", "tokens": { "cacheRead": 1000000 } })).await;
    assert_eq!(nano["data"]["priceQuote"]["total"], json!("0.4"), "a million tokens at 0.0000004: {nano}");
    let mixed =
        quote(&app, "side-chat", json!({ "model": "gpt-5-nano", "tokens": { "input": 1234, "output": 567, "cacheRead": 2 } })).await;
    // 1234 x 0.000004 + 567 x 0.000032 + 2 x 0.0000004 = 0.0230808 -> 0.023081 (half up, once)
    assert_eq!(mixed["data"]["priceQuote"]["total"], json!("0.023081"), "{mixed}");
    let sonnet = quote(&app, "side-chat", json!({ "tokens": { "input": 1000, "output": 500 } })).await;
    assert_eq!(sonnet["data"]["priceQuote"]["model"], json!("claude-sonnet-4.6"), "the default model");
    assert_eq!(sonnet["data"]["priceQuote"]["total"], json!("0.84"), "0.24 + 0.6");
    assert_eq!(
        error_code(&quote(&app, "side-chat", json!({ "model": "gpt-5-nano", "tokens": { "cacheWrite": 5 } })).await),
        "BAD_USER_INPUT"
    );
    assert_eq!(error_code(&quote(&app, "side-chat", json!(null)).await), "BAD_USER_INPUT", "tokens are needed");
    assert_eq!(error_code(&quote(&app, "snap", json!({ "tokens": { "input": 5 } })).await), "BAD_USER_INPUT");
    assert_eq!(quote(&app, "snap", json!(null)).await["data"]["priceQuote"]["total"], json!("5"));
}

on_both!(a_quote_prices_a_use_and_a_spend_charges_it_by_reference, token_priced_models_quote_exactly);
