//! GraphiQL served from the binary: the page and every asset it names come from the server,
//! with their content types and caching; production mode serves none of them; and in a real
//! browser with the network cut off from everything but the server, the page runs a query and a
//! subscription (`tests/browser/graphiql.mjs`, through `support::browser`).

use crate::on_both;
use crate::support::browser::BrowserScript;
use crate::support::{Backend, LEDGER_PROGRAM, TestApp, TestDb};
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

/// The page as a browser asks for it.
async fn page(app: &TestApp) -> reqwest::Response {
    app.client.get(format!("{}/graphql", app.address)).header(ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8").send().await.unwrap()
}

/// The paths the page loads (`src="..."`, `href="..."`), except the empty `data:` icon.
fn references(html: &str) -> Vec<String> {
    [" src=\"", " href=\""]
        .iter()
        .flat_map(|attribute| html.split(attribute).skip(1).map(|rest| rest[..rest.find('"').unwrap()].to_string()))
        .filter(|reference| reference != "data:,")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_come_from_the_server() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = page(&app).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[CACHE_CONTROL], "no-cache");
    let policy = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        policy.contains("default-src 'none'") && policy.contains("script-src 'self'") && policy.contains("connect-src 'self'"),
        "{policy}"
    );
    let html = response.text().await.unwrap();
    let references = references(&html);
    assert_eq!(references.len(), 6, "three vendored scripts and a stylesheet, and the page's own script and stylesheet: {references:?}");
    for reference in &references {
        assert!(reference.starts_with("/graphiql/"), "{reference} is not on this server");
        let asset = app.client.get(format!("{}{reference}", app.address)).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{reference}");
        let content_type = asset.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
        let expected = if reference.ends_with(".js") { "text/javascript; charset=utf-8" } else { "text/css; charset=utf-8" };
        assert_eq!(content_type, expected, "{reference}");
        assert_eq!(asset.headers()["x-content-type-options"], "nosniff", "{reference}");
        let cache_control = asset.headers()[CACHE_CONTROL].to_str().unwrap().to_string();
        let etag = asset.headers()[ETAG].clone();
        // The served bytes are the repository's file, the vendored ones as VENDORED.md records.
        let file = std::fs::read(format!("{}/web/graphiql/{}", env!("CARGO_MANIFEST_DIR"), &reference["/graphiql/".len()..])).unwrap();
        assert_eq!(asset.bytes().await.unwrap().as_ref(), file.as_slice(), "{reference}");
        if reference.starts_with("/graphiql/vendor/") {
            // The path names the package's version: the bytes behind it never change.
            assert_eq!(cache_control, "public, max-age=31536000, immutable", "{reference}");
        } else {
            // The page's own files change with the server: asked again each time, 304 while unchanged.
            assert_eq!(cache_control, "no-cache", "{reference}");
            let again = app.client.get(format!("{}{reference}", app.address)).header(IF_NONE_MATCH, etag).send().await.unwrap();
            assert_eq!(again.status(), 304, "{reference}");
            assert!(again.bytes().await.unwrap().is_empty());
        }
    }
    let unknown = app.client.get(format!("{}/graphiql/vendor/graphiql-4.1.2/nothing.js", app.address)).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_mode_serves_neither_the_page_nor_its_assets() {
    let security = credits::app::Security { production: true, ..Default::default() };
    let app = TestApp::spawn_secured(TestDb::new(Backend::Sqlite).await, Backend::Sqlite, LEDGER_PROGRAM, security).await;
    let response = page(&app).await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND", "{body}");
    for path in ["/graphiql/vendor/graphiql-4.1.2/graphiql.min.js", "/graphiql/credits-graphiql.js"] {
        let asset = app.client.get(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(asset.status(), 404, "{path}");
    }
}

/// In Chromium, with every host but the server unreachable: the page loads only from the server,
/// runs a query over HTTP with the token typed in its Headers tab, and a subscription over
/// `/graphql/ws` whose `connection_init` carries that token (a user's subscription without an
/// `accountId` needs it), which receives a balance change made while it runs.
async fn graphiql_runs_a_query_and_a_subscription_offline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("browser-user").await;
    app.grant("browser-user", "10", "PAID", None, "g1").await;
    let token = app.user("browser-user");
    let screenshot = format!("{}/graphiql-{backend:?}.png", env!("CARGO_TARGET_TMPDIR"));
    let env =
        [("TOKEN", token.as_str()), ("ACCOUNT", "browser-user"), ("BALANCE", "10"), ("NEXT_BALANCE", "15"), ("SCREENSHOT", &screenshot)];
    let Some(mut script) = BrowserScript::start("graphiql.mjs", &app.address, &env).await else {
        return;
    };
    script.reached("subscribed").await;
    let granted = app.grant("browser-user", "5", "PAID", None, "g2").await;
    assert!(granted["errors"].is_null(), "{granted}");
    let seen = script.finish().await;
    eprintln!("GraphiQL screenshot: {screenshot}");

    assert_eq!(seen["query"]["data"]["me"]["id"], "browser-user", "{seen}");
    assert_eq!(seen["first"]["data"]["balanceChanged"]["accountId"], "browser-user", "{seen}");
    assert_eq!(seen["next"]["data"]["balanceChanged"]["balance"]["total"], "15", "{seen}");
    assert_eq!(seen["foreign"], serde_json::json!([]), "the page tried to reach another host: {seen}");
    assert_eq!(seen["problems"], serde_json::json!([]), "errors in the page (a policy violation, a failed load): {seen}");
    // It did load from the server, and subscribed over the server's WebSocket.
    let requests: Vec<&str> = seen["requests"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    let expected = format!("{}/graphiql/vendor/graphiql-4.1.2/graphiql.min.js", app.address);
    assert!(requests.contains(&expected.as_str()), "{requests:?}");
    let socket = format!("{}/graphql/ws", app.address.replace("http://", "ws://"));
    assert_eq!(seen["websockets"], serde_json::json!([socket]), "{seen}");
}

on_both!(graphiql_runs_a_query_and_a_subscription_offline);
