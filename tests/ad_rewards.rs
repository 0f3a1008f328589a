use crate::on_both;
use crate::support::{AD_SECRET, Backend, TestApp, error_code};
use chrono::{DateTime, Duration, Utc};
use credits::ads::HmacSha256Verifier;
use serde_json::{Value, json};

const CLAIM: &str = "mutation($a: ID!, $t: String, $k: String!) { claimAdReward(input: {accountId: $a, transactionId: $t, idempotencyKey: $k}) { amount expiresAt distribution } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// Calls our callback endpoint as the ad network would.
async fn callback(app: &TestApp, query: &str) -> u16 {
    app.client.get(format!("{}/callbacks/ads?{query}", app.address)).send().await.unwrap().status().as_u16()
}

fn signed(account: &str, transaction: &str, completed: DateTime<Utc>) -> String {
    HmacSha256Verifier::new(AD_SECRET)
        .sign(&format!("ad_unit=rewarded&user_id={account}&transaction_id={transaction}&timestamp={}", completed.timestamp()))
}

async fn claim(app: &TestApp, account: &str, transaction: Option<&str>, key: &str) -> Value {
    app.gql(&app.user(account), CLAIM, json!({ "a": account, "t": transaction, "k": key })).await
}

/// Spends whatever the account holds, so it is out of credits again.
async fn spend_all(app: &TestApp, account: &str, key: &str) {
    let balance = app.balance(account).await;
    if balance != "0" {
        let r = app.spend(account, &balance, key).await;
        assert!(r["errors"].is_null(), "{r}");
    }
}

async fn verified_ads_reward_free_users_who_ran_out_up_to_a_daily_cap(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    app.ledger.seed_draws(3);
    let now = at("2026-07-01T10:00:00Z");
    app.clock.set(now);
    app.create_account("watcher").await;

    // The network's callback: signed, fresh, for a known account; repeats are harmless.
    assert_eq!(callback(&app, "user_id=watcher&transaction_id=tx-0&timestamp=1").await, 403);
    assert_eq!(callback(&app, &signed("watcher", "tx-1", now)).await, 200);
    assert_eq!(callback(&app, &signed("watcher", "tx-1", now)).await, 200, "a retried callback");
    assert_eq!(callback(&app, &signed("watcher", "tx-old", now - Duration::hours(2))).await, 400);
    assert_eq!(callback(&app, &signed("nobody", "tx-9", now)).await, 404);

    // Not while the day's free credits last.
    assert_eq!(error_code(&claim(&app, "watcher", Some("tx-1"), "c-0").await), "NOT_ELIGIBLE");
    spend_all(&app, "watcher", "s-0").await;
    let first = claim(&app, "watcher", Some("tx-1"), "c-1").await;
    let reward = &first["data"]["claimAdReward"];
    assert!(["10", "20", "50", "100"].contains(&reward["amount"].as_str().unwrap_or_else(|| panic!("{first}"))));
    assert_eq!(reward["expiresAt"], json!("2026-07-04T10:00:00+00:00"), "valid 3 days");
    assert_eq!(claim(&app, "watcher", Some("tx-1"), "c-1").await["data"], first["data"], "a replay");
    // Credits left: not eligible; used up: the same ad cannot pay twice.
    assert_eq!(error_code(&claim(&app, "watcher", Some("tx-1"), "c-2").await), "NOT_ELIGIBLE");
    spend_all(&app, "watcher", "s-1").await;
    assert_eq!(error_code(&claim(&app, "watcher", Some("tx-1"), "c-3").await), "ALREADY_CLAIMED");

    // A claim that races ahead of its callback is not found, and its key is not spent.
    assert_eq!(error_code(&claim(&app, "watcher", Some("tx-2"), "c-4").await), "NOT_FOUND");
    assert_eq!(callback(&app, &signed("watcher", "tx-2", now)).await, 200);
    assert!(claim(&app, "watcher", Some("tx-2"), "c-4").await["errors"].is_null());

    // Five a day.
    for n in 3..=5 {
        spend_all(&app, "watcher", &format!("s-{n}")).await;
        assert_eq!(callback(&app, &signed("watcher", &format!("tx-{n}"), now)).await, 200);
        let r = claim(&app, "watcher", Some(&format!("tx-{n}")), &format!("c-{n}0")).await;
        assert!(r["errors"].is_null(), "{r}");
    }
    spend_all(&app, "watcher", "s-6").await;
    assert_eq!(callback(&app, &signed("watcher", "tx-6", now)).await, 200);
    assert_eq!(error_code(&claim(&app, "watcher", Some("tx-6"), "c-60").await), "DAILY_LIMIT_REACHED");

    // Ads are for the free plan; and the ad's transaction id is required.
    let plus =
        app.gql(&app.service, "mutation { createAccount(input: {externalId: \"payer\", plan: \"plus\"}) { created } }", json!({})).await;
    assert!(plus["errors"].is_null());
    assert_eq!(error_code(&claim(&app, "payer", Some("tx-p"), "c-p").await), "NOT_ELIGIBLE");
    assert_eq!(error_code(&claim(&app, "watcher", None, "c-none").await), "BAD_USER_INPUT");
    app.assert_audit_clean().await;
}

/// "Tap a button" instead of an ad: no callback, no transaction id.
async fn button_mode_rewards_without_an_ad(backend: Backend) {
    let carat = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/presets/carat.toml")).unwrap();
    let buttons = carat.replace("mode = \"ad\"", "mode = \"button\"");
    assert_ne!(buttons, carat);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("buttons.toml");
    std::fs::write(&path, buttons).unwrap();
    let app = TestApp::spawn_with(backend, path.to_str().unwrap()).await;
    app.create_account("tapper").await;
    spend_all(&app, "tapper", "s-0").await;
    assert_eq!(error_code(&claim(&app, "tapper", Some("tx-1"), "c-0").await), "BAD_USER_INPUT", "no ad to name");
    let tapped = claim(&app, "tapper", None, "c-1").await;
    assert!(tapped["errors"].is_null(), "{tapped}");
    assert_eq!(error_code(&claim(&app, "tapper", None, "c-2").await), "NOT_ELIGIBLE", "credits left now");
    app.assert_audit_clean().await;
}

on_both!(verified_ads_reward_free_users_who_ran_out_up_to_a_daily_cap, button_mode_rewards_without_an_ad);

/// Ten concurrent claims of one verified ad: one reward.
async fn concurrent_claims_of_one_ad_reward_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    let now = at("2026-07-02T10:00:00Z");
    app.clock.set(now);
    app.create_account("racer").await;
    spend_all(&app, "racer", "s-0").await;
    assert_eq!(callback(&app, &signed("racer", "tx-race", now)).await, 200);
    let keys: Vec<String> = (0..10).map(|i| format!("k-{i}")).collect();
    let results = futures::future::join_all(keys.iter().map(|k| claim(&app, "racer", Some("tx-race"), k))).await;
    let rewarded = results.iter().filter(|r| r["errors"].is_null()).count();
    assert_eq!(rewarded, 1, "{results:?}");
    assert!(results.iter().filter(|r| !r["errors"].is_null()).all(|r| ["ALREADY_CLAIMED", "NOT_ELIGIBLE"].contains(&error_code(r))));
    app.assert_audit_clean().await;
}

on_both!(concurrent_claims_of_one_ad_reward_once);
