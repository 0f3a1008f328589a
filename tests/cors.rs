//! Browser apps on other origins: preflights answered for the configured origins only, with the
//! `Authorization` header and credentials allowed, and the marks on every answer, refusals
//! included (`credits::cors`).

use crate::support::serve::{ServeProcess, credits_command};
use crate::support::{Backend, TestApp, TestDb};
use credits::cors::CorsOrigins;
use reqwest::Method;
use serde_json::json;

const APP: &str = "https://app.example.com";

async fn app_allowing(origins: &[&str]) -> TestApp {
    let origins: Vec<String> = origins.iter().map(|s| s.to_string()).collect();
    let cors = CorsOrigins::parse(&origins, false).unwrap();
    let security = credits::app::Security { cors, ..Default::default() };
    TestApp::spawn_secured(TestDb::new(Backend::Sqlite).await, Backend::Sqlite, "arkain", security).await
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, format!("{}/graphql", app.address))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type")
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_origin_gets_its_preflight_and_its_answers_marked() {
    let app = app_allowing(&[APP, "http://localhost:5173"]).await;
    let response = preflight(&app, APP).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "access-control-allow-origin"), Some(APP));
    assert_eq!(header(&response, "access-control-allow-credentials"), Some("true"));
    let allowed = header(&response, "access-control-allow-headers").unwrap().to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");
    assert!(header(&response, "access-control-allow-methods").unwrap().contains("POST"));
    assert_eq!(header(&response, "access-control-max-age"), Some("7200"));
    assert!(header(&response, "x-request-id").is_some(), "a preflight has a request id too");

    let token = app.user("ana");
    app.create_account("ana").await;
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("origin", APP)
        .bearer_auth(&token)
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "access-control-allow-origin"), Some(APP));
    assert_eq!(header(&response, "access-control-allow-credentials"), Some("true"));
    let exposed = header(&response, "access-control-expose-headers").unwrap().to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "apps can read the request id: {exposed}");
    let vary: Vec<String> = response.headers().get_all("vary").iter().map(|v| v.to_str().unwrap().to_ascii_lowercase()).collect();
    assert!(vary.iter().any(|v| v.contains("origin")), "a shared cache keeps answers apart per origin: {vary:?}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["data"]["me"]["id"], "ana", "{body}");

    // The second configured origin, and an origin that is not configured.
    assert_eq!(header(&preflight(&app, "http://localhost:5173").await, "access-control-allow-origin"), Some("http://localhost:5173"));
    let stranger = preflight(&app, "https://evil.example.net").await;
    assert_eq!(header(&stranger, "access-control-allow-origin"), None, "an unlisted origin is not allowed");
    let lookalike = preflight(&app, "https://app.example.com.evil.example.net").await;
    assert_eq!(header(&lookalike, "access-control-allow-origin"), None);
}

/// A limit's refusal (413 here) still carries the marks, so the app reads the error instead of
/// seeing an opaque network failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_the_browser_app_readably() {
    let app = app_allowing(&[APP]).await;
    let huge = format!("{{ plans {{ code }} }} # {}", "x".repeat(credits::http::MAX_BODY_BYTES));
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", app.address))
        .header("origin", APP)
        .json(&json!({ "query": huge }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(header(&response, "access-control-allow-origin"), Some(APP));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
}

/// By default no origin is allowed: the preflight is not answered as allowed, so browsers
/// refuse cross-origin calls, and same-origin and server-to-server calls work as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_origin_is_allowed_by_default() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = preflight(&app, APP).await;
    assert_ne!(response.status(), 200);
    assert_eq!(header(&response, "access-control-allow-origin"), None);
    let r = app.gql(&app.service, "{ plans { code } }", json!({})).await;
    assert!(r["errors"].is_null(), "{r}");
}

/// `*` in development: any origin, without credentials (a bearer token is a header the app
/// sets, so it still works).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_allows_any_origin_without_credentials() {
    let app = app_allowing(&["*"]).await;
    let response = preflight(&app, "http://localhost:3000").await;
    assert_eq!(header(&response, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&response, "access-control-allow-credentials"), None);
    assert!(header(&response, "access-control-allow-headers").unwrap().to_ascii_lowercase().contains("authorization"));
}

/// The setting as operators write it: production refuses `*` at start, and says what to write;
/// a malformed origin is refused in any mode; a list in the environment is honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setting_is_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("credits.db").display());
    let start = |mode: &str, origins: &str| {
        credits_command()
            .current_dir(dir.path())
            .env("DATABASE_URL", &url)
            .env("CREDITS_AUTH_SECRET", "a-secret-of-at-least-thirty-two-bytes!!")
            .env("CREDITS_MODE", mode)
            .env("CREDITS_CORS_ORIGINS", origins)
            .args(["serve", "--bind", "127.0.0.1:0", "--no-workers"])
            .output()
            .unwrap()
    };
    let wildcard = start("production", "*");
    assert!(!wildcard.status.success());
    let stderr = String::from_utf8_lossy(&wildcard.stderr);
    assert!(stderr.contains("refused in production mode") && stderr.contains("CREDITS_CORS_ORIGINS"), "{stderr}");
    let path = start("development", "https://app.example.com/");
    assert!(!path.status.success());
    assert!(String::from_utf8_lossy(&path.stderr).contains("not an origin"), "{}", String::from_utf8_lossy(&path.stderr));

    // The environment's form, commas and spaces, in a running server; and the file's, a list.
    let mut command = credits_command();
    command
        .env("DATABASE_URL", &url)
        .env("CREDITS_AUTH_SECRET", "a-secret-of-at-least-thirty-two-bytes!!")
        .env("CREDITS_CORS_ORIGINS", "https://a.example.com, http://localhost:5173");
    let server = ServeProcess::start(command, &["--no-workers"], dir.path(), "cors").await;
    let response = reqwest::Client::new()
        .request(Method::OPTIONS, format!("{}/graphql", server.address))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&response, "access-control-allow-origin"), Some("http://localhost:5173"));
    let file = dir.path().join("credits.toml");
    std::fs::write(&file, "cors_origins = [\"https://a.example.com\", \"http://localhost:5173\"]\n").unwrap();
    let config = credits::config::Config::load(Some(&file)).unwrap();
    assert_eq!(config.cors_origins, vec!["https://a.example.com".to_string(), "http://localhost:5173".to_string()]);
}

/// A real browser app on another origin (a page Chromium loads from its own port) calls the API
/// with a user token: the browser's preflight is answered, the answer is readable, and the
/// request id is exposed to the app; a server that does not name the origin is refused by the
/// browser itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_app_on_another_origin_calls_the_api() {
    let app_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let origin = format!("http://127.0.0.1:{app_port}");
    let app = app_allowing(&[&origin]).await;
    app.create_account("ana").await;
    app.grant("ana", "12", "PROMOTIONAL", None, "g-1").await;
    let closed = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user("ana");
    let env = [("DENIED_API", closed.address.as_str()), ("TOKEN", token.as_str()), ("APP_PORT", &app_port.to_string())];
    let Some(script) = crate::support::browser::BrowserScript::start("cors.mjs", &app.address, &env).await else {
        return;
    };
    let seen = script.finish().await;
    assert_eq!(seen["allowed"]["status"], 200, "{seen}");
    assert_eq!(seen["allowed"]["body"]["data"]["me"]["id"], "ana", "{seen}");
    // The same reading as the product's backend gets (the 12 granted plus arkain's daily free credits).
    let direct = app.gql(&app.service, "{ account(id: \"ana\") { balance { available } } }", json!({})).await;
    assert_eq!(seen["allowed"]["body"]["data"]["me"]["balance"], direct["data"]["account"]["balance"], "{seen}");
    assert!(seen["allowed"]["requestId"].as_str().is_some_and(|id| id.len() == 36), "x-request-id readable by the app: {seen}");
    assert!(seen["denied"]["refused"].as_str().is_some_and(|e| e.contains("TypeError")), "the browser refuses the other server: {seen}");
}
