//! Credits scoped to features (issue 25) through the API on both databases: a grant names the
//! features its lot may pay for; a spend or reservation for another feature never takes from it,
//! and its refusal says what that feature could take; balances show the scoped part apart;
//! bad scopes are refused and change nothing; concurrent uses of two features never take more
//! than each may.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use serde_json::{Value, json};

const GRANT: &str = "mutation($amt: CreditAmount!, $c: LotClass!, $f: [String!], $k: String!) {
    grantCredits(input: {accountId: \"a\", amount: $amt, class: $c, features: $f, idempotencyKey: $k}) { lotId } }";

const SPEND: &str = "mutation($amt: CreditAmount!, $f: String!, $k: String!) {
    spendCredits(input: {accountId: \"a\", amount: $amt, feature: $f, idempotencyKey: $k}) { takes { lotId amount } availableAfter } }";

const RESERVE: &str = "mutation($amt: CreditAmount!, $f: String!, $k: String!) {
    reserveCredits(input: {accountId: \"a\", amount: $amt, feature: $f, idempotencyKey: $k}) { reservationId takes { lotId amount } } }";

const BALANCE: &str = "query { account(id: \"a\") { balance { total available
    scoped { features available } ai: availableFor(feature: \"ai\") storage: availableFor(feature: \"storage\") }
    lots(first: 20) { nodes { id features spendable } } } }";

async fn grant(app: &TestApp, amount: &str, class: &str, features: Option<&[&str]>, key: &str) -> Value {
    app.gql(&app.admin, GRANT, json!({ "amt": amount, "c": class, "f": features, "k": key })).await
}

async fn lot_of(app: &TestApp, amount: &str, class: &str, features: Option<&[&str]>, key: &str) -> String {
    let r = grant(app, amount, class, features, key).await;
    r["data"]["grantCredits"]["lotId"].as_str().unwrap_or_else(|| panic!("{r}")).to_string()
}

async fn spend(app: &TestApp, amount: &str, feature: &str, key: &str) -> Value {
    app.gql(&app.service, SPEND, json!({ "amt": amount, "f": feature, "k": key })).await
}

fn lot_ids(r: &Value, path: &str) -> Vec<String> {
    let takes = r["data"][path]["takes"].as_array().unwrap_or_else(|| panic!("{r}"));
    takes.iter().map(|t| t["lotId"].as_str().unwrap().to_string()).collect()
}

async fn a_use_takes_only_the_credits_scoped_to_its_feature(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    // The fixture's order: free and promotional first, then paid.
    let general = lot_of(&app, "10", "PAID", None, "g-1").await;
    let ai = lot_of(&app, "30", "PROMOTIONAL", Some(&["ai", "chat"]), "g-2").await;

    let b = app.gql(&app.service, BALANCE, json!({})).await;
    let balance = &b["data"]["account"]["balance"];
    assert_eq!((&balance["total"], &balance["available"]), (&json!("40"), &json!("40")), "{b}");
    assert_eq!(balance["scoped"], json!([{ "features": ["ai", "chat"], "available": "30" }]), "{b}");
    assert_eq!((&balance["ai"], &balance["storage"]), (&json!("40"), &json!("10")), "{b}");
    let lots = b["data"]["account"]["lots"]["nodes"].as_array().unwrap();
    let scope_of = |id: &str| lots.iter().find(|l| l["id"] == json!(id)).unwrap()["features"].clone();
    assert_eq!((scope_of(&general), scope_of(&ai)), (json!(null), json!(["ai", "chat"])));

    // A storage spend over what storage may take: refused with what it could take, and the
    // feature named; nothing changes.
    let short = spend(&app, "11", "storage", "s-1").await;
    assert_eq!(error_code(&short), "INSUFFICIENT_CREDITS", "{short}");
    let ext = &short["errors"][0]["extensions"];
    assert_eq!((&ext["available"], &ext["feature"], &ext["requested"]), (&json!("10"), &json!("storage"), &json!("11")), "{short}");
    assert!(short["errors"][0]["message"].as_str().unwrap().contains("for feature \"storage\""), "{short}");
    assert_eq!(app.balance("a").await, "40");

    // An ai spend takes the scoped (promotional) lot first, in the program's order.
    let took = spend(&app, "35", "ai", "s-2").await;
    assert_eq!(lot_ids(&took, "spendCredits"), vec![ai.clone(), general.clone()], "{took}");
    assert_eq!(took["data"]["spendCredits"]["availableAfter"], json!("5"), "{took}");
    // A reservation for storage takes only the general lot.
    let grant_more = lot_of(&app, "20", "FREE", Some(&["ai"]), "g-3").await;
    let held = app.gql(&app.service, RESERVE, json!({ "amt": "5", "f": "storage", "k": "r-1" })).await;
    assert_eq!(lot_ids(&held, "reserveCredits"), vec![general.clone()], "{held}");
    let refused = app.gql(&app.service, RESERVE, json!({ "amt": "1", "f": "storage", "k": "r-2" })).await;
    assert_eq!(error_code(&refused), "INSUFFICIENT_CREDITS", "{refused}");
    assert_eq!(refused["errors"][0]["extensions"]["available"], json!("0"), "{refused}");
    let ai_hold = app.gql(&app.service, RESERVE, json!({ "amt": "20", "f": "ai", "k": "r-3" })).await;
    assert_eq!(lot_ids(&ai_hold, "reserveCredits"), vec![grant_more], "{ai_hold}");

    // A refusal with nothing scoped elsewhere reads as it always did: no feature named.
    let plain = spend(&app, "1", "ai", "s-3").await;
    assert_eq!(error_code(&plain), "INSUFFICIENT_CREDITS", "{plain}");
    assert!(plain["errors"][0]["extensions"]["feature"].is_null(), "{plain}");
    assert_eq!(plain["errors"][0]["message"], json!("insufficient credits: 1 requested, 0 available"), "{plain}");
    app.assert_audit_clean().await;
}

async fn bad_scopes_are_refused_and_one_scope_is_one_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    let many: Vec<String> = (0..17).map(|i| format!("f{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    for bad in [&[][..], &["has space"][..], &[""][..], &many[..]] {
        let r = grant(&app, "5", "PROMOTIONAL", Some(bad), "g-bad").await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{bad:?}: {r}");
        assert!(r["errors"][0]["message"].as_str().unwrap().contains("feature"), "{r}");
    }
    assert_eq!(app.balance("a").await, "0");
    // The same scope in another order, or repeated, is the same request: a replay.
    let first = grant(&app, "5", "PROMOTIONAL", Some(&["b", "a"]), "g-1").await;
    assert_eq!(grant(&app, "5", "PROMOTIONAL", Some(&["a", "b", "a"]), "g-1").await, first);
    assert_eq!(error_code(&grant(&app, "5", "PROMOTIONAL", Some(&["a"]), "g-1").await), "IDEMPOTENCY_CONFLICT");
    assert_eq!(error_code(&grant(&app, "5", "PROMOTIONAL", None, "g-1").await), "IDEMPOTENCY_CONFLICT");
    assert_eq!(app.balance("a").await, "5");
    app.assert_audit_clean().await;
}

/// Concurrent spends of two features against one general and one scoped lot: whatever the
/// interleaving, storage never takes more than the general lot had, the two together never more
/// than both, and each refusal says what was left for its feature.
async fn concurrent_uses_of_two_features_never_take_more_than_each_may(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    lot_of(&app, "10", "PAID", None, "g-1").await;
    lot_of(&app, "10", "PROMOTIONAL", Some(&["ai"]), "g-2").await;
    let calls = (0..16).map(|i| {
        let feature = if i % 2 == 0 { "ai" } else { "storage" };
        let app = &app;
        async move { (feature, spend(app, "3", feature, &format!("c-{i}")).await) }
    });
    let results = futures::future::join_all(calls).await;
    let (mut ai, mut storage) = (0, 0);
    for (feature, r) in &results {
        if r["errors"].is_null() {
            *(if *feature == "ai" { &mut ai } else { &mut storage }) += 3;
        } else {
            assert_eq!(error_code(r), "INSUFFICIENT_CREDITS", "{r}");
        }
    }
    assert!(storage <= 10 && ai + storage <= 20, "ai {ai}, storage {storage}");
    // Six spends of 3 fit in 20 whatever the order: at most one credit per lot is stranded.
    assert!(ai + storage >= 18, "ai {ai}, storage {storage}: {results:?}");
    let left = credits::ledger::Credits::parse_str(&app.balance("a").await).unwrap();
    assert_eq!(left, credits::ledger::Credits::from_whole(20 - ai - storage));
    app.assert_audit_clean().await;
}

/// Over the WebSocket: a scoped, future grant and a refused use read as over HTTP (the
/// refusal's `feature` extension too), and one key is one request across transports.
async fn scoped_and_future_grants_work_over_the_websocket(backend: Backend) {
    use crate::support::ws::{connect, execute};
    let app = TestApp::spawn(backend).await;
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-10T10:00:00Z").unwrap().to_utc();
    app.clock.set(t0);
    app.create_account("a").await;
    lot_of(&app, "4", "PAID", None, "g-1").await;
    let mut socket = connect(&app.address, &app.admin).await;
    let future = "mutation($s: DateTime!) { grantCredits(input: {accountId: \"a\", amount: \"9\", class: PROMOTIONAL,
        features: [\"ai\"], effectiveAt: $s, idempotencyKey: \"ws-g\"}) { lotId } }";
    let start = (t0 + chrono::Duration::hours(1)).to_rfc3339();
    let granted = execute(&mut socket, "grant", future, json!({ "s": start })).await;
    assert!(granted["data"]["grantCredits"]["lotId"].is_string(), "{granted}");
    let read = execute(&mut socket, "read", BALANCE, json!({})).await;
    let balance = &read["data"]["account"]["balance"];
    assert_eq!((&balance["available"], &balance["scoped"]), (&json!("4"), &json!([])), "upcoming credits are not scoped yet: {read}");
    app.clock.set(t0 + chrono::Duration::hours(1));
    let short = execute(&mut socket, "spend", SPEND, json!({ "amt": "5", "f": "storage", "k": "ws-s" })).await;
    assert_eq!(error_code(&short), "INSUFFICIENT_CREDITS", "{short}");
    assert_eq!(short["errors"][0]["extensions"]["feature"], json!("storage"), "{short}");
    assert_eq!(spend(&app, "5", "storage", "ws-s").await["errors"], short["errors"], "the key's outcome, over HTTP too");
    let took = execute(&mut socket, "spend", SPEND, json!({ "amt": "12", "f": "ai", "k": "ws-a" })).await;
    assert_eq!(took["data"]["spendCredits"]["availableAfter"], json!("1"), "{took}");
    app.assert_audit_clean().await;
}

on_both!(
    scoped_and_future_grants_work_over_the_websocket,
    a_use_takes_only_the_credits_scoped_to_its_feature,
    bad_scopes_are_refused_and_one_scope_is_one_request,
    concurrent_uses_of_two_features_never_take_more_than_each_may
);
