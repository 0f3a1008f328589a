//! A grant's priority (issue 25) through the API on both databases: within a tier of the
//! program's order, a lower priority is spent first, before soonest expiry; the tiers still come
//! first; out-of-range priorities are refused and change nothing; lots show theirs.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use serde_json::{Value, json};

const GRANT: &str = "mutation($a: ID!, $amt: CreditAmount!, $c: LotClass!, $e: DateTime, $p: Int, $k: String!) {
    grantCredits(input: {accountId: $a, amount: $amt, class: $c, expiresAt: $e, priority: $p, idempotencyKey: $k}) { lotId } }";

async fn grant(app: &TestApp, class: &str, expires_at: Option<&str>, priority: Option<i64>, key: &str) -> Value {
    app.gql(&app.admin, GRANT, json!({ "a": "a", "amt": "10", "c": class, "e": expires_at, "p": priority, "k": key })).await
}

async fn lot_of(app: &TestApp, class: &str, expires_at: Option<&str>, priority: Option<i64>, key: &str) -> String {
    let r = grant(app, class, expires_at, priority, key).await;
    r["data"]["grantCredits"]["lotId"].as_str().unwrap_or_else(|| panic!("{r}")).to_string()
}

async fn a_lower_priority_is_spent_first_within_its_tier(backend: Backend) {
    // arkain's order: free, then promotional, then paid.
    let app = TestApp::spawn_with(backend, "arkain").await;
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-10T10:00:00Z").unwrap().to_utc();
    app.clock.set(base);
    app.create_account("a").await;
    let soon = (base + chrono::Duration::days(1)).to_rfc3339();
    let later = (base + chrono::Duration::days(30)).to_rfc3339();
    let soonest = lot_of(&app, "PROMOTIONAL", Some(&soon), None, "g-1").await;
    let preferred = lot_of(&app, "PROMOTIONAL", Some(&later), Some(10), "g-2").await;
    let paid_first = lot_of(&app, "PAID", Some(&soon), Some(0), "g-3").await;

    let lots = app.gql(&app.service, "query { account(id: \"a\") { lots(first: 50) { nodes { id priority } } } }", json!({})).await;
    let priority_of = |id: &str| {
        let nodes = lots["data"]["account"]["lots"]["nodes"].as_array().unwrap_or_else(|| panic!("{lots}"));
        nodes.iter().find(|n| n["id"] == json!(id)).unwrap()["priority"].clone()
    };
    assert_eq!((priority_of(&soonest), priority_of(&preferred), priority_of(&paid_first)), (json!(50), json!(10), json!(0)));

    // Priority 10 first, though it expires last of its tier; then the sooner-expiring priority
    // 50, then the account's monthly free credits (arkain grants them on creation; the same
    // tier, priority 50, expiring at the month's end); the paid lot, priority 0 but in the
    // last tier, last.
    let total = credits::ledger::Credits::parse_str(&app.balance("a").await).unwrap();
    let amount = total.checked_sub(credits::ledger::Credits::from_whole(5)).unwrap();
    let spent = app
        .gql(
            &app.service,
            "mutation($amt: CreditAmount!) { spendCredits(input: {accountId: \"a\", amount: $amt, feature: \"chat\", idempotencyKey: \"s-1\"}) { takes { lotId amount } } }",
            json!({ "amt": amount.to_string() }),
        )
        .await;
    let takes = spent["data"]["spendCredits"]["takes"].as_array().unwrap_or_else(|| panic!("{spent}"));
    let order: Vec<&str> = takes.iter().map(|t| t["lotId"].as_str().unwrap()).collect();
    assert_eq!(order.len(), 4, "{spent}");
    assert_eq!([order[0], order[1], order[3]], [preferred.as_str(), soonest.as_str(), paid_first.as_str()], "{spent}");
    assert_eq!(takes[3]["amount"], json!("5"), "{spent}");
    app.assert_audit_clean().await;
}

async fn a_priority_out_of_range_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    let before = app.balance("a").await;
    for bad in [-1, 101, 1_000_000] {
        let r = grant(&app, "PROMOTIONAL", None, Some(bad), &format!("g-{bad}")).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{r}");
        assert!(r["errors"][0]["message"].as_str().unwrap().contains("priority"), "{r}");
    }
    assert_eq!(app.balance("a").await, before);
    // The same key with a priority and without one are two requests.
    assert!(grant(&app, "PROMOTIONAL", None, Some(50), "g-same").await["errors"].is_null());
    assert_eq!(error_code(&grant(&app, "PROMOTIONAL", None, None, "g-same").await), "IDEMPOTENCY_CONFLICT");
    app.assert_audit_clean().await;
}

on_both!(a_lower_priority_is_spent_first_within_its_tier, a_priority_out_of_range_is_refused_and_changes_nothing);
