use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::Duration;
use serde_json::json;

async fn spends_follow_the_program_order_and_replay_their_first_result(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("dev").await;
    let now = app.clock.now();
    let paid = app.grant("dev", "100", "PAID", None, "g-paid").await;
    let promo_late = app.grant("dev", "5", "PROMOTIONAL", Some(now + Duration::days(30)), "g-promo").await;
    let free_soon = app.grant("dev", "50", "FREE", Some(now + Duration::days(1)), "g-free").await;
    let lot = |r: &serde_json::Value| r["data"]["grantCredits"]["lotId"].as_str().unwrap().to_string();

    // arkain: free and promotional first, soonest expiry first; purchased credits last.
    let spent = app.spend("dev", "60.000001", "s-1").await;
    assert_eq!(
        spent["data"]["spendCredits"]["takes"],
        json!([
            { "lotId": lot(&free_soon), "amount": "50" },
            { "lotId": lot(&promo_late), "amount": "5" },
            { "lotId": lot(&paid), "amount": "5.000001" },
        ]),
        "{spent}"
    );
    assert_eq!(spent["data"]["spendCredits"]["availableAfter"], json!("94.999999"));

    let replay = app.spend("dev", "60.000001", "s-1").await;
    assert_eq!(replay["data"], spent["data"], "a replay returns the first result");
    assert_eq!(app.balance("dev").await, "94.999999", "and charges nothing");
    let conflict = app.spend("dev", "1", "s-1").await;
    assert_eq!(error_code(&conflict), "IDEMPOTENCY_CONFLICT");

    // Too few credits: refused, nothing changes, and the refusal is the key's outcome.
    let short = app.spend("dev", "95", "s-2").await;
    assert_eq!(error_code(&short), "INSUFFICIENT_CREDITS");
    assert_eq!(short["errors"][0]["extensions"]["available"], json!("94.999999"));
    assert_eq!(app.balance("dev").await, "94.999999");
    app.grant("dev", "10", "PAID", None, "g-more").await;
    let retried = app.spend("dev", "95", "s-2").await;
    assert_eq!(error_code(&retried), "INSUFFICIENT_CREDITS", "a key replays its refusal; a new try takes a new key");
    let fresh = app.spend("dev", "95", "s-3").await;
    assert!(fresh["errors"].is_null(), "{fresh}");
    assert_eq!(app.balance("dev").await, "9.999999");

    // A grant replays too, and creates one lot.
    let again = app.grant("dev", "100", "PAID", None, "g-paid").await;
    assert_eq!(again["data"], paid["data"]);
    app.assert_audit_clean().await;
}

async fn bad_input_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("dev").await;
    app.grant("dev", "10", "PAID", None, "g").await;
    for amount in ["0", "-1", "0.0000001", "1000000000.000001", "1e30", "abc", "NaN"] {
        let r = app.spend("dev", amount, "k-bad").await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{amount}: {r}");
    }
    for key in ["", "has space", &"k".repeat(129)] {
        let r = app.spend("dev", "1", key).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{key:?}");
    }
    let bad_feature = app
        .gql(
            &app.service,
            "mutation { spendCredits(input: {accountId: \"dev\", amount: \"1\", idempotencyKey: \"k-f\", feature: \"\"}) { sequence } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&bad_feature), "BAD_USER_INPUT");
    assert_eq!(app.balance("dev").await, "10");
    // Input errors are not stored: the same key still works for a valid request.
    let ok = app.spend("dev", "1", "k-bad").await;
    assert!(ok["errors"].is_null(), "{ok}");

    let unknown = app.spend("nobody", "1", "k-1").await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
    let by_user = app
        .gql(&app.user("dev"), "mutation { spendCredits(input: {accountId: \"dev\", amount: \"1\", idempotencyKey: \"k-u\", feature: \"chat\"}) { sequence } }", json!({}))
        .await;
    assert_eq!(error_code(&by_user), "FORBIDDEN");
    let grant_by_service = app
        .gql(
            &app.service,
            "mutation { grantCredits(input: {accountId: \"dev\", amount: \"1\", class: PAID, idempotencyKey: \"k\"}) { lotId } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&grant_by_service), "FORBIDDEN");
    let past = app.grant("dev", "1", "PROMOTIONAL", Some(app.clock.now() - Duration::seconds(1)), "g-past").await;
    assert_eq!(error_code(&past), "BAD_USER_INPUT");
    let bad_validity = app
        .gql(&app.admin, "mutation { grantCredits(input: {accountId: \"dev\", amount: \"1\", class: FREE, validFor: \"1 fortnight\", idempotencyKey: \"g-v\"}) { lotId } }", json!({}))
        .await;
    assert_eq!(error_code(&bad_validity), "BAD_USER_INPUT");
    assert_eq!(app.balance("dev").await, "9");
    app.assert_audit_clean().await;
}

/// domain.md, "Amounts and limits": an amount is a JSON string of plain digits (`0`, `12`,
/// `12.5`, `0.000001`) with at most 6 places, no sign, exponent, underscore or leading zeros. A
/// JSON number, or any other text, is BAD_USER_INPUT whether it comes as a variable or is written
/// in the document, and it changes nothing: no credits move, no journal entry, no stored key.
async fn an_amount_is_a_string_of_plain_digits_else_bad_user_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("dev").await;
    app.grant("dev", "100", "PAID", None, "g").await;
    let entries = || async {
        let r = app.gql(&app.service, "{ account(id: \"dev\") { history(first: 100) { edges { node { sequence } } } } }", json!({})).await;
        r["data"]["account"]["history"]["edges"].as_array().unwrap_or_else(|| panic!("{r}")).len()
    };
    let before = entries().await;
    let refused = [
        json!(5),
        json!(1.5),
        json!(0.5),
        json!("01"),
        json!("00.5"),
        json!("1."),
        json!(".5"),
        json!("1_000"),
        json!("+5"),
        json!("1e3"),
        json!("-1"),
        json!(" 1"),
        json!("1.0000000"),
        json!("0.00000099999999999999999999999999"),
        json!("1.000000000000000000000000000001"),
        json!("1000000001"),
        json!("1000000000.000001"),
    ];
    for (i, amount) in refused.iter().enumerate() {
        let key = format!("bad-{i}");
        let as_variable = app.spend("dev", "1", &key).await;
        assert!(as_variable["errors"].is_null(), "the request is valid with a good amount: {as_variable}");
        let as_variable = app
            .gql(
                &app.service,
                "mutation($amt: CreditAmount!, $k: String!) { spendCredits(input: {accountId: \"dev\", amount: $amt, idempotencyKey: $k, feature: \"chat\"}) { sequence } }",
                json!({ "amt": amount, "k": format!("{key}-v") }),
            )
            .await;
        assert_eq!(error_code(&as_variable), "BAD_USER_INPUT", "{amount} as a variable: {as_variable}");
        assert!(as_variable["data"].is_null(), "the whole request is refused before it runs: {as_variable}");
        let literal = format!(
            "mutation {{ spendCredits(input: {{accountId: \"dev\", amount: {amount}, idempotencyKey: \"{key}-l\", feature: \"chat\"}}) {{ sequence }} }}"
        );
        let in_document = app.gql(&app.service, &literal, json!({})).await;
        assert_eq!(error_code(&in_document), "BAD_USER_INPUT", "{amount} in the document: {in_document}");
        let grant = app
            .gql(
                &app.admin,
                "mutation($amt: CreditAmount!, $k: String!) { grantCredits(input: {accountId: \"dev\", amount: $amt, class: PAID, idempotencyKey: $k}) { lotId } }",
                json!({ "amt": amount, "k": format!("{key}-g") }),
            )
            .await;
        assert_eq!(error_code(&grant), "BAD_USER_INPUT", "{amount} granted: {grant}");
    }
    assert_eq!(entries().await, before + refused.len(), "only the good spends left journal entries");
    assert_eq!(app.balance("dev").await, (100 - refused.len()).to_string(), "1 credit a good spend, nothing else");
    // Refused input stores nothing: its key is free for a good request.
    for (i, good) in ["0.5", "1.50", "12", "0.000001", "0"].into_iter().enumerate() {
        let r = app
            .gql(
                &app.service,
                "mutation($amt: CreditAmount!, $k: String!) { spendCredits(input: {accountId: \"dev\", amount: $amt, idempotencyKey: $k, feature: \"chat\"}) { amount } }",
                json!({ "amt": good, "k": format!("bad-{i}-v") }),
            )
            .await;
        if good == "0" {
            assert_eq!(error_code(&r), "BAD_USER_INPUT", "the grammar allows 0, a spend does not: {r}");
        } else {
            assert!(r["errors"].is_null(), "{good}: {r}");
            let shown = r["data"]["spendCredits"]["amount"].as_str().unwrap();
            assert_eq!(shown.parse::<rust_decimal::Decimal>().unwrap(), good.parse::<rust_decimal::Decimal>().unwrap(), "{r}");
        }
    }
    assert_eq!(app.balance("dev").await, "68.999999", "83 - 0.5 - 1.5 - 12 - 0.000001");
    app.assert_audit_clean().await;
}

on_both!(
    spends_follow_the_program_order_and_replay_their_first_result,
    bad_input_is_refused_and_changes_nothing,
    an_amount_is_a_string_of_plain_digits_else_bad_user_input
);
