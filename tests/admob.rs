//! AdMob's rewarded-ad callbacks through the real endpoint: keys served by a local key server
//! (standing in for gstatic.com) whose fetches are counted, or read from a key file; callbacks
//! signed with keys made for the test, as AdMob signs them.

use crate::on_both;
use crate::support::serve::{ServeProcess, credits_command};
use crate::support::{Backend, SECRET, TestApp, TestDb, error_code, gql_at};
use axum::extract::State;
use axum::routing::get;
use credits::ads::admob::{AdMobVerifier, DEFAULT_REFRESH_INTERVAL, KeyCache, TestSigner, VerifierKeys};
use credits::ads::key_sources::{FileKeySource, UrlKeySource};
use credits::auth::{AuthKeys, Role};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLAIM: &str = "mutation($a: ID!, $t: String, $k: String!) { claimAdReward(input: {accountId: $a, transactionId: $t, idempotencyKey: $k}) { amount } }";

/// A key server: serves whatever document it holds now, and counts the GETs.
struct KeyServer {
    url: String,
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    _server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Served {
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

async fn serve_keys(State(served): State<Served>) -> String {
    served.fetches.fetch_add(1, Ordering::SeqCst);
    served.document.lock().unwrap().clone()
}

impl KeyServer {
    async fn start(document: String) -> KeyServer {
        let served = Served { document: Arc::new(Mutex::new(document)), fetches: Arc::new(AtomicUsize::new(0)) };
        let router = axum::Router::new().route("/admob/reward/verifier-keys.json", get(serve_keys)).with_state(served.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/admob/reward/verifier-keys.json", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        KeyServer { url, document: served.document, fetches: served.fetches, _server: server }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn publish(&self, signers: &[&TestSigner]) {
        *self.document.lock().unwrap() = TestSigner::keys_document(signers);
    }
}

/// A monotonic clock the test moves, for the refresh interval.
#[derive(Clone)]
struct Ticker(Arc<Mutex<Instant>>);

impl Ticker {
    fn new() -> Ticker {
        Ticker(Arc::new(Mutex::new(Instant::now())))
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }

    fn clock(&self) -> Arc<dyn Fn() -> Instant + Send + Sync> {
        let at = self.0.clone();
        Arc::new(move || *at.lock().unwrap())
    }
}

/// What AdMob sends, before `&signature=..&key_id=..`: its parameters in alphabetical order,
/// with a custom data string and a reward item that need percent-encoding.
fn admob_query(user: &str, transaction: &str, completed_ms: i64) -> String {
    format!(
        "ad_network=5450213213286189855&ad_unit=2747237135&custom_data=%7B%22placement%22%3A%22out-of-credits%22%7D\
         &reward_amount=1&reward_item=Bonus%20credits&timestamp={completed_ms}&transaction_id={transaction}&user_id={user}"
    )
}

async fn callback(client: &reqwest::Client, address: &str, query: &str) -> u16 {
    client.get(format!("{address}/callbacks/ads?{query}")).send().await.unwrap().status().as_u16()
}

/// Spends whatever the account holds (carat's day of free credits), so it may earn ad rewards.
async fn spend_all(app: &TestApp, account: &str, key: &str) {
    let balance = app.balance(account).await;
    if balance != "0" {
        let r = app.spend(account, &balance, key).await;
        assert!(r["errors"].is_null(), "{r}");
    }
}

async fn stored_networks(app: &TestApp) -> Vec<String> {
    use sea_orm::EntityTrait;
    let rows = credits::entity::ad_reward::Entity::find().all(&app.ledger.db).await.unwrap();
    rows.into_iter().map(|row| row.network).collect()
}

async fn admob_callbacks_reward_through_the_endpoint_with_fetched_keys(backend: Backend) {
    let google = TestSigner::random(3_335_741_209);
    let keys = KeyServer::start(TestSigner::keys_document(&[&google])).await;
    let ticker = Ticker::new();
    let source = UrlKeySource::new(url::Url::parse(&keys.url).unwrap()).unwrap();
    let verifier = AdMobVerifier::with_clock(KeyCache::new(Box::new(source), DEFAULT_REFRESH_INTERVAL), ticker.clock());
    let app = TestApp::spawn_with_ad_verifier(backend, "carat", Arc::new(verifier)).await;
    app.ledger.seed_draws(5);
    app.create_account("watcher").await;
    spend_all(&app, "watcher", "s-0").await;
    let now_ms = app.clock.now().timestamp_millis();
    let client = &app.client;
    assert_eq!(keys.fetches(), 0, "nothing fetched before the first callback");

    // Unsigned or malformed callbacks never reach the keys.
    assert_eq!(callback(client, &app.address, &admob_query("watcher", "tx-0", now_ms)).await, 403);
    assert_eq!(callback(client, &app.address, "").await, 403);
    assert_eq!(keys.fetches(), 0);

    // A real-shaped callback: the keys are fetched once, the view recorded, and the app's
    // claim redeems it for the program's reward (not the ad unit's `reward_amount`).
    let signed = google.sign(&admob_query("watcher", "tx-1", now_ms));
    assert_eq!(callback(client, &app.address, &signed).await, 200);
    assert_eq!(callback(client, &app.address, &signed).await, 200, "AdMob's retry is harmless");
    assert_eq!(keys.fetches(), 1);
    assert_eq!(stored_networks(&app).await, vec!["admob".to_string()]);
    let claimed = app.gql(&app.user("watcher"), CLAIM, json!({ "a": "watcher", "t": "tx-1", "k": "c-1" })).await;
    let amount = claimed["data"]["claimAdReward"]["amount"].as_str().unwrap_or_else(|| panic!("{claimed}")).to_string();
    assert!(["10", "20", "50", "100"].contains(&amount.as_str()), "carat's distribution: {amount}");
    spend_all(&app, "watcher", "s-1").await;
    let again = app.gql(&app.user("watcher"), CLAIM, json!({ "a": "watcher", "t": "tx-1", "k": "c-2" })).await;
    assert_eq!(error_code(&again), "ALREADY_CLAIMED");

    // Tampered, reordered, re-signed by someone else: refused, and nothing is fetched for them.
    let impostor = TestSigner::random(google.key_id);
    for (what, forged) in [
        ("another account", signed.replace("user_id=watcher", "user_id=thief")),
        ("another transaction", signed.replace("tx-1", "tx-9")),
        ("signed by another key under Google's id", impostor.sign(&admob_query("watcher", "tx-9", now_ms))),
        ("parameters reordered", {
            let (content, tail) = signed.split_once("&signature=").unwrap();
            let mut parameters: Vec<&str> = content.split('&').collect();
            parameters.rotate_left(1);
            format!("{}&signature={tail}", parameters.join("&"))
        }),
    ] {
        assert_eq!(callback(client, &app.address, &forged).await, 403, "{what}");
    }
    assert_eq!(keys.fetches(), 1);

    // Forged key ids, many of them, right after a fetch: refused without fetching again.
    for forged in 0..20 {
        let query = signed.replace(&format!("&key_id={}", google.key_id), &format!("&key_id={forged}"));
        assert_eq!(callback(client, &app.address, &query).await, 403);
    }
    assert_eq!(keys.fetches(), 1, "forged ids make no fetch within the refresh interval");

    // Google rotates in a new key. Within the interval it is not looked for yet; once the
    // interval has passed, the first callback signed with it fetches the keys, exactly once.
    let rotated = TestSigner::random(1_916_455_855);
    keys.publish(&[&google, &rotated]);
    spend_all(&app, "watcher", "s-2").await;
    let new_key = rotated.sign(&admob_query("watcher", "tx-2", now_ms));
    assert_eq!(callback(client, &app.address, &new_key).await, 403, "not fetched within the interval");
    assert_eq!(keys.fetches(), 1);
    ticker.advance(DEFAULT_REFRESH_INTERVAL);
    assert_eq!(callback(client, &app.address, &new_key).await, 200);
    assert_eq!(keys.fetches(), 2);
    for forged in 100..120 {
        let query = new_key.replace(&format!("&key_id={}", rotated.key_id), &format!("&key_id={forged}"));
        assert_eq!(callback(client, &app.address, &query).await, 403);
    }
    assert_eq!(keys.fetches(), 2, "one refresh per interval");
    let claimed = app.gql(&app.user("watcher"), CLAIM, json!({ "a": "watcher", "t": "tx-2", "k": "c-3" })).await;
    assert!(claimed["errors"].is_null(), "{claimed}");

    // AdMob tells only the server the transaction id: the app gives each ad view an id of its
    // own as `custom_data` and claims with that.
    spend_all(&app, "watcher", "s-custom").await;
    let own_id =
        admob_query("watcher", "tx-5", now_ms).replace("custom_data=%7B%22placement%22%3A%22out-of-credits%22%7D", "custom_data=view-7f3a");
    assert_eq!(callback(client, &app.address, &google.sign(&own_id)).await, 200);
    let claimed = app.gql(&app.user("watcher"), CLAIM, json!({ "a": "watcher", "t": "view-7f3a", "k": "c-4" })).await;
    assert!(claimed["errors"].is_null(), "{claimed}");
    spend_all(&app, "watcher", "s-custom-2").await;
    let again = app.gql(&app.user("watcher"), CLAIM, json!({ "a": "watcher", "t": "tx-5", "k": "c-5" })).await;
    assert_eq!(error_code(&again), "ALREADY_CLAIMED", "one view, one reward, by either id: {again}");
    // Another account, eligible for an ad reward, does not find this view by its id.
    app.create_account("thief").await;
    spend_all(&app, "thief", "s-thief").await;
    let elsewhere = app.gql(&app.user("thief"), CLAIM, json!({ "a": "thief", "t": "view-7f3a", "k": "c-6" })).await;
    assert_eq!(error_code(&elsewhere), "NOT_FOUND", "another account's view is not found: {elsewhere}");
    assert!(elsewhere["errors"][0]["message"].as_str().unwrap().contains("no verified ad"), "{elsewhere}");

    // The existing rules hold for AdMob's callbacks: timestamps in milliseconds, fresh only;
    // a known account; a user id required.
    let two_hours_ms = 2 * 3600 * 1000;
    assert_eq!(callback(client, &app.address, &google.sign(&admob_query("watcher", "tx-old", now_ms - two_hours_ms))).await, 400);
    assert_eq!(callback(client, &app.address, &google.sign(&admob_query("nobody", "tx-3", now_ms))).await, 404);
    let anonymous = google.sign(&format!("ad_network=1&ad_unit=2&reward_amount=1&reward_item=x&timestamp={now_ms}&transaction_id=tx-4"));
    assert_eq!(callback(client, &app.address, &anonymous).await, 400);
    assert_eq!(keys.fetches(), 2);
    app.assert_audit_clean().await;
}

/// The key server is down: callbacks answer 503 (AdMob may retry), and are not fetched for
/// again within the interval.
async fn unreachable_keys_answer_503_and_are_not_hammered(backend: Backend) {
    let google = TestSigner::random(1);
    let keys = KeyServer::start("<html>not a key document</html>".to_string()).await;
    let ticker = Ticker::new();
    let source = UrlKeySource::new(url::Url::parse(&keys.url).unwrap()).unwrap();
    let verifier = AdMobVerifier::with_clock(KeyCache::new(Box::new(source), DEFAULT_REFRESH_INTERVAL), ticker.clock());
    let app = TestApp::spawn_with_ad_verifier(backend, "carat", Arc::new(verifier)).await;
    app.create_account("watcher").await;
    let signed = google.sign(&admob_query("watcher", "tx-1", app.clock.now().timestamp_millis()));
    for _ in 0..5 {
        assert_eq!(callback(&app.client, &app.address, &signed).await, 503);
    }
    assert_eq!(keys.fetches(), 1);
    keys.publish(&[&google]);
    ticker.advance(DEFAULT_REFRESH_INTERVAL);
    assert_eq!(callback(&app.client, &app.address, &signed).await, 200, "the retry after the keys are back");
    assert_eq!(keys.fetches(), 2);
    app.assert_audit_clean().await;
}

on_both!(admob_callbacks_reward_through_the_endpoint_with_fetched_keys, unreachable_keys_answer_503_and_are_not_hammered);

/// Offline: the keys in a file, read at start and again (once per interval) for a key id it
/// lacks, so a rotation is a new file, not a restart.
async fn admob_keys_from_a_file(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admob-keys.json");
    let first = TestSigner::random(11);
    std::fs::write(&path, TestSigner::keys_document(&[&first])).unwrap();
    let source = FileKeySource::new(path.clone());
    let keys = VerifierKeys::parse(&source.read_now().unwrap()).unwrap();
    let ticker = Ticker::new();
    let cache = KeyCache::preloaded(Box::new(source), DEFAULT_REFRESH_INTERVAL, keys, ticker.clock()());
    let app = TestApp::spawn_with_ad_verifier(backend, "carat", Arc::new(AdMobVerifier::with_clock(cache, ticker.clock()))).await;
    app.create_account("watcher").await;
    spend_all(&app, "watcher", "s-0").await;
    let now_ms = app.clock.now().timestamp_millis();
    assert_eq!(callback(&app.client, &app.address, &first.sign(&admob_query("watcher", "tx-1", now_ms))).await, 200);

    let second = TestSigner::random(12);
    std::fs::write(&path, TestSigner::keys_document(&[&first, &second])).unwrap();
    let rotated = second.sign(&admob_query("watcher", "tx-2", now_ms));
    assert_eq!(callback(&app.client, &app.address, &rotated).await, 403, "the file was read at start, within the interval");
    ticker.advance(DEFAULT_REFRESH_INTERVAL);
    assert_eq!(callback(&app.client, &app.address, &rotated).await, 200, "read again for the unknown key");
    let claimed = app.gql(&app.user("watcher"), CLAIM, json!({ "a": "watcher", "t": "tx-1", "k": "c-1" })).await;
    assert!(claimed["errors"].is_null(), "{claimed}");
    app.assert_audit_clean().await;
}

on_both!(admob_keys_from_a_file);

/// The real binary, configured as an operator would: `ad_verifier = "admob"` and a key file in
/// the config file; the same settings from the environment; a missing key file stops the start.
async fn the_binary_verifies_admob_callbacks_with_a_configured_key_file(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let google = TestSigner::random(42);
    let key_file = dir.path().join("admob-keys.json");
    std::fs::write(&key_file, TestSigner::keys_document(&[&google])).unwrap();
    let config = dir.path().join("credits.toml");
    std::fs::write(
        &config,
        format!("ad_verifier = \"admob\"\nadmob_keys_file = {:?}\nadmob_keys_refresh_seconds = 600\n", key_file.display().to_string()),
    )
    .unwrap();
    let mut command = credits_command();
    command
        .env("DATABASE_URL", &db.url)
        .env("CREDITS_AUTH_SECRET", std::str::from_utf8(SECRET).unwrap())
        .env("CREDITS_PROGRAM", "carat")
        .env("CREDITS_CONFIG", &config)
        .env("RUST_LOG", "info");
    let serve = ServeProcess::start(command, &[], dir.path(), "serve").await;
    assert!(serve.log().contains("with the keys in this file"), "{}", serve.log());
    let client = reqwest::Client::new();
    let service = AuthKeys::new(SECRET).issue(Role::Service, None, Duration::from_secs(600)).unwrap();
    let created: Value =
        gql_at(&client, &serve.address, &service, "mutation { createAccount(input: {externalId: \"watcher\"}) { created } }", json!({}))
            .await;
    assert_eq!(created["data"]["createAccount"]["created"], json!(true), "{created}");
    let now_ms = chrono::Utc::now().timestamp_millis();
    let signed = google.sign(&admob_query("watcher", "tx-1", now_ms));
    assert_eq!(callback(&client, &serve.address, &signed).await, 200);
    assert_eq!(callback(&client, &serve.address, &signed.replace("tx-1", "tx-2")).await, 403);
    drop(serve);

    // The same settings from the environment, with the key file gone: the start fails, naming it.
    std::fs::remove_file(&key_file).unwrap();
    let failed = credits_command()
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", &db.url)
        .env("CREDITS_AUTH_SECRET", std::str::from_utf8(SECRET).unwrap())
        .env("CREDITS_PROGRAM", "carat")
        .env("CREDITS_AD_VERIFIER", "admob")
        .env("CREDITS_ADMOB_KEYS_FILE", &key_file)
        .env("CREDITS_ADMOB_KEYS_REFRESH_SECONDS", "600")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("admob_keys_file") && stderr.contains("admob-keys.json"), "{stderr}");
}

on_both!(the_binary_verifies_admob_callbacks_with_a_configured_key_file);

/// `config check` reads the AdMob settings alike from the file and from the environment, and
/// names a bad one.
#[test]
fn admob_settings_read_alike_from_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let check = |command: &mut std::process::Command| {
        let output = command
            .args(["config", "check"])
            .env_remove("DATABASE_URL")
            .env_remove("CREDITS_AUTH_SECRET")
            .env("CREDITS_DATA_DIR", dir.path())
            .current_dir(dir.path())
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
    };
    let config = dir.path().join("admob.toml");
    std::fs::write(
        &config,
        "ad_verifier = \"admob\"\nadmob_keys_url = \"https://keys.example.com/admob.json\"\nadmob_keys_refresh_seconds = 5\n",
    )
    .unwrap();
    let from_file = check(credits_command().env("CREDITS_CONFIG", &config));
    let from_env = check(
        credits_command()
            .env("CREDITS_AD_VERIFIER", "admob")
            .env("CREDITS_ADMOB_KEYS_URL", "https://keys.example.com/admob.json")
            .env("CREDITS_ADMOB_KEYS_REFRESH_SECONDS", "5"),
    );
    assert_eq!((&from_file.0, &from_file.1), (&from_env.0, &from_env.1), "the same resolved configuration");
    assert!(from_env.2.contains("admob_keys_refresh_seconds"), "{}", from_env.2);
    let (code, stdout, stderr) = from_file;
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("ad_verifier = \"admob\"") && stdout.contains("admob_keys_url = \"https://keys.example.com/admob.json\""),
        "{stdout}"
    );
    assert!(stderr.lines().any(|l| l.starts_with("problem:") && l.contains("admob_keys_refresh_seconds")), "{stderr}");

    let good = check(credits_command().env("CREDITS_AD_VERIFIER", "admob").env("CREDITS_ADMOB_KEYS_REFRESH_SECONDS", "600"));
    assert_eq!(good.0, Some(0), "{}", good.2);
    assert!(good.1.contains("gstatic.com/admob/reward/verifier-keys.json"), "Google's keys by default: {}", good.1);
}
