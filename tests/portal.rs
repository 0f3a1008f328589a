//! The customer portal (`/portal`, `src/portal.rs`, files in `web/portal/`): served from the
//! binary with a strict Content-Security-Policy and revalidated caching, on in production mode
//! too; its one GraphQL document runs under `persisted_only`; and in Chromium, with every host
//! but the server unreachable, a user checks in, is refused a second check-in with the server's
//! message, sees a backend spend arrive live, buys credits, and the page holds up on a phone and
//! under axe-core (`tests/browser/portal.mjs`).

use crate::on_both;
use crate::support::browser::BrowserScript;
use crate::support::ws;
use crate::support::{Backend, LEDGER_PROGRAM, TestApp, TestDb, error_code};
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY};
use serde_json::{Value, json};

pub(crate) const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                      font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const DOCUMENT: &str = include_str!("../web/portal/portal.graphql");

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.get(format!("{}{path}", app.address)).send().await.unwrap()
}

/// The paths the page loads (`src="..."`, `href="..."`), except the empty `data:` icon.
fn references(html: &str) -> Vec<String> {
    [" src=\"", " href=\""]
        .iter()
        .flat_map(|attribute| html.split(attribute).skip(1).map(|rest| rest[..rest.find('"').unwrap()].to_string()))
        .filter(|reference| reference != "data:,")
        .collect()
}

/// The page at `/{page}` and each of `files` (paths under `/`): from the server, with the
/// policy, `nosniff`, no Referer, and an ETag the browser revalidates with (`no-cache`, then
/// 304); the page's own references are `references`, relative so that a path prefix in front of
/// the server keeps working; and what is not one of its files is 404. Shared with the console
/// (`tests/console.rs`), which is served the same way.
pub(crate) async fn a_page_is_served(app: &TestApp, page: &str, references_expected: &[&str], files: &[&str]) {
    // `/{page}/` leads to `/{page}`, where the page's relative references resolve.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let slash = no_redirects.get(format!("{}/{page}/", app.address)).send().await.unwrap();
    assert_eq!(slash.status(), 308);
    assert_eq!(slash.headers()[reqwest::header::LOCATION], format!("../{page}"));
    let index = std::fs::read_to_string(format!("{}/web/{page}/index.html", env!("CARGO_MANIFEST_DIR"))).unwrap();
    for path in [format!("/{page}"), format!("/{page}/")] {
        let response = get(app, &path).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[CONTENT_SECURITY_POLICY], POLICY);
        assert_eq!(headers[REFERRER_POLICY], "no-referrer");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers[CACHE_CONTROL], "no-cache");
        let html = response.text().await.unwrap();
        assert_eq!(html, index);
        let again = app.client.get(format!("{}{path}", app.address)).header(IF_NONE_MATCH, headers[ETAG].clone()).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    let html = get(app, &format!("/{page}")).await.text().await.unwrap();
    let references = references(&html);
    assert_eq!(references, references_expected, "{references:?}");
    for path in files {
        let response = get(app, path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()[CONTENT_SECURITY_POLICY], POLICY, "{path}");
        let expected = match path.rsplit_once('.').unwrap().1 {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            _ => "text/plain; charset=utf-8",
        };
        assert_eq!(response.headers()[CONTENT_TYPE], expected, "{path}");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-cache", "{path}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff", "{path}");
        let etag = response.headers()[ETAG].clone();
        let file = std::fs::read(format!("{}/web/{}", env!("CARGO_MANIFEST_DIR"), &path[1..])).unwrap();
        assert_eq!(response.bytes().await.unwrap().as_ref(), file.as_slice(), "{path}");
        let again = app.client.get(format!("{}{path}", app.address)).header(IF_NONE_MATCH, etag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert!(again.bytes().await.unwrap().is_empty());
    }
    // (A client resolves `..` segments before sending, so a climb out of the page's folder can
    // only come percent-encoded: the server decodes it and refuses it.)
    for file in ["nothing.js", "..%2f..%2fCargo.toml", "js%2f..%2f..%2fsrc%2fmain.rs", ".hidden.js", "notes.md"] {
        let path = format!("/{page}/{file}");
        let response = get(app, &path).await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND", "{path}: {body}");
    }
}

async fn the_portal_is_served(app: &TestApp) {
    a_page_is_served(
        app,
        "portal",
        &["portal/js/app.js", "portal/style.css", "portal/pages.css"],
        &[
            "/portal/js/app.js",
            "/portal/style.css",
            "/portal/pages.css",
            "/portal/js/pages/overview.js",
            "/portal/js/chart.js",
            "/portal/js/pages/settings.js",
            "/portal/js/errors.js",
            "/portal/portal.graphql",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_come_from_the_server() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    the_portal_is_served(&app).await;
}

/// Unlike GraphiQL, the portal is for the program's users: on in production mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_mode_serves_the_portal() {
    let security = credits::app::Security { production: true, ..Default::default() };
    let app = TestApp::spawn_secured(TestDb::new(Backend::Sqlite).await, Backend::Sqlite, LEDGER_PROGRAM, security).await;
    the_portal_is_served(&app).await;
}

/// Runs `operation` of a page's whole `document` (as the page sends it: the full text and an
/// operation name), as `token`; the whole answer.
pub(crate) async fn run_in_document(app: &TestApp, token: &str, document: &str, operation: &str, variables: Value) -> Value {
    app.client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(token)
        .json(&json!({ "query": document, "operationName": operation, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
}

/// A deployment that runs only registered documents still runs the portal's: the server
/// registers `portal.graphql` at start, and the page sends that whole text with an operation
/// name. Any other text is refused.
async fn persisted_only_runs_the_portals_operations(backend: Backend) {
    let security = credits::app::Security {
        persisted_only: true,
        claims_per_minute_per_account: 100_000,
        claims_per_minute_per_ip: 100_000,
        ..Default::default()
    };
    // The account is made through a second, open process on the same database: the test's
    // helper sends a document the strict one would refuse.
    let open = TestApp::spawn_with(backend, "arkain").await;
    open.create_account("strict-user").await;
    let app = TestApp::spawn_secured(open.db.shared(), backend, "arkain", security).await;
    let user = app.user("strict-user");
    let run = |operation: &'static str, variables: Value| run_in_document(&app, &user, DOCUMENT, operation, variables);
    let start = run("PortalStart", json!({})).await;
    assert_eq!(start["data"]["me"]["id"], "strict-user", "{start}");
    let overview = run("PortalOverview", json!({})).await;
    assert!(overview["data"]["me"]["balance"]["total"].is_string(), "{overview}");
    let checked_in = run("PortalCheckIn", json!({ "input": { "accountId": "strict-user", "idempotencyKey": "strict-1" } })).await;
    assert_eq!(checked_in["data"]["checkIn"]["amount"], "5", "{checked_in}");
    let buy = run("PortalBuy", json!({})).await;
    assert!(buy["data"]["creditPackages"].is_array(), "{buy}");
    let other = app.gql(&user, "query { me { id } }", json!({})).await;
    assert_eq!(error_code(&other), "PERSISTED_QUERY_NOT_ALLOWED", "{other}");

    // The live balance, over the WebSocket, from the same document.
    let mut socket = ws::connect(&app.address, &user).await;
    ws::send(
        &mut socket,
        json!({ "id": "live", "type": "subscribe", "payload": { "query": DOCUMENT, "operationName": "PortalBalanceChanged", "variables": {} } }),
    )
    .await;
    let first = ws::next_payload(&mut socket, "live").await;
    assert_eq!(first["data"]["balanceChanged"]["accountId"], "strict-user", "{first}");
    ws::subscribe(&mut socket, "other", "subscription { balanceChanged { accountId } }", json!({})).await;
    let refused = ws::next(&mut socket).await;
    assert_eq!(ws::code_of(&refused["payload"]), "PERSISTED_QUERY_NOT_ALLOWED", "{refused}");
}

on_both!(persisted_only_runs_the_portals_operations);

const MARKUP: &str = "<img src=x onerror=alert(1)> welcome gift";

/// The whole portal in Chromium (see the module's comment and `tests/browser/portal.mjs`).
async fn a_user_uses_the_portal_in_chromium(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("portal-user").await;
    let granted = app
        .gql(
            &app.admin,
            "mutation($r: String!) { grantCredits(input: {accountId: \"portal-user\", amount: \"20\", class: PROMOTIONAL,
               source: EVENT, validFor: \"30 days\", reason: $r, idempotencyKey: \"gift\"}) { lotId } }",
            json!({ "r": MARKUP }),
        )
        .await;
    assert!(granted["errors"].is_null(), "{granted}");
    // Credits only snap may use, and credits that start in two days: shown apart.
    let starts = (app.clock.now() + chrono::Duration::days(2)).to_rfc3339();
    let apart = app
        .gql(
            &app.admin,
            "mutation($s: DateTime!) {
               scoped: grantCredits(input: {accountId: \"portal-user\", amount: \"7\", class: PROMOTIONAL, features: [\"snap\"],
                 idempotencyKey: \"scoped\"}) { lotId }
               upcoming: grantCredits(input: {accountId: \"portal-user\", amount: \"40\", class: PROMOTIONAL, effectiveAt: $s,
                 idempotencyKey: \"upcoming\"}) { lotId } }",
            json!({ "s": starts }),
        )
        .await;
    assert!(apart["errors"].is_null(), "{apart}");
    let total_at_start = app.balance("portal-user").await;
    // The backend opens the portal for its user, and redirects the browser to the URL.
    let opened =
        app.gql(&app.service, "mutation { createPortalSession(accountId: \"portal-user\", ttl: 900) { token url } }", json!({})).await;
    let token = opened["data"]["createPortalSession"]["token"].as_str().unwrap_or_else(|| panic!("{opened}"));
    let url = opened["data"]["createPortalSession"]["url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("{}/portal#token={token}", app.address));
    // A token the server refuses, as it refuses an expired one (UNAUTHENTICATED): signed with
    // another secret, since an expired one would still pass within the clock leeway.
    let expired = credits::auth::AuthKeys::new(b"not-this-servers-secret-not-this-servers")
        .issue(credits::auth::Role::User, Some("portal-user"), std::time::Duration::from_secs(3600))
        .unwrap();
    let expired_url = format!("{}/portal#token={expired}", app.address);
    // Screenshots for docs/ from one run only (the SQLite one), when asked for.
    let screenshots = match (backend, std::env::var("PORTAL_SCREENSHOTS")) {
        (Backend::Sqlite, Ok(dir)) => dir,
        _ => String::new(),
    };
    let env = [
        ("URL", url.as_str()),
        ("EXPIRED_URL", expired_url.as_str()),
        ("REASON", MARKUP),
        ("SIMULATED", "1"),
        ("PORTAL_SCREENSHOTS", screenshots.as_str()),
    ];
    let Some(mut script) = BrowserScript::start("portal.mjs", &app.address, &env).await else {
        return;
    };
    script.reached("checked-in").await;
    let after_check_in = app.balance("portal-user").await;
    script.reached("ready-for-spend").await;
    let spent = app.spend("portal-user", "3", "backend-spend").await;
    assert!(spent["errors"].is_null(), "{spent}");
    let after_spend = app.balance("portal-user").await;
    let seen = script.finish().await;
    let after_buying = app.balance("portal-user").await;

    // The token left the address bar for this tab's storage at once.
    assert_eq!(seen["addressBar"], format!("{}/portal#/overview", app.address), "{seen}");
    assert_eq!(seen["stored"], true);
    assert_eq!(seen["totalAtStart"], total_at_start, "{seen}");
    assert_eq!(seen["scopedShown"], "7 credits only for snap", "{seen}");
    assert!(seen["upcomingShown"].as_str().unwrap().starts_with("40 credits coming "), "{seen}");
    // The reason is text: shown, and no element made of it.
    assert_eq!(seen["reasonShown"], true, "{seen}");
    assert_eq!(seen["images"], 0, "{seen}");
    // The check-in: its bar, and the new total.
    assert_eq!(seen["checkInBar"], "5 credits", "{seen}");
    assert_eq!(seen["totalAfterCheckIn"], after_check_in, "{seen}");
    // The second check-in: the server's own message, in place and announced.
    let user = app.user("portal-user");
    let again = app
        .gql(&user, "mutation { checkIn(input: {accountId: \"portal-user\", idempotencyKey: \"from-test\"}) { amount } }", json!({}))
        .await;
    assert_eq!(error_code(&again), "ALREADY_CLAIMED", "{again}");
    let message = again["errors"][0]["message"].as_str().unwrap();
    assert_eq!(seen["refusal"], message, "{seen}");
    assert!(seen["announced"].as_str().unwrap().contains(message), "{seen}");
    // The backend's spend, live, with no reload.
    assert_eq!(seen["totalAfterSpend"], after_spend, "{seen}");
    assert_eq!(seen["notReloaded"], true, "{seen}");
    assert!(seen["lastActivity"].as_str().unwrap().starts_with("Spent · chat-3"), "{seen}");
    // 75 credits at 2 cents (arkain): priced before paying.
    assert_eq!(seen["customPrice"], "Price: 1.50 USD", "{seen}");
    // A package bought with the simulated payment (development mode): paid, then refunded, and
    // the balance the overview shows afterwards is the server's.
    assert!(seen["checkoutNote"].as_str().unwrap().contains("simulated"), "{seen}");
    assert_eq!(seen["paid"], "Paid (simulated): 100 credits added.", "{seen}");
    assert_eq!(seen["purchases"][0], "Paid", "{seen}");
    // Then refunded from the page, inside arkain's 7 days.
    assert!(seen["refunded"].as_str().unwrap().contains("Refunded"), "{seen}");
    assert_eq!(seen["totalAfterBuying"], after_buying, "{seen}");
    // A phone: nothing wider than the screen.
    for (page, widths) in seen["phone"].as_object().unwrap() {
        assert!(widths["scrollWidth"].as_i64() <= widths["clientWidth"].as_i64(), "{page} scrolls sideways on a phone: {widths}");
    }
    assert_eq!(seen["expiredText"], "This link has expired", "{seen}");
    assert_eq!(seen["expiredLink"]["heading"], "This link has expired", "{seen}");
    assert_eq!(seen["expiredLink"]["stored"], Value::Null, "an expired token is forgotten: {seen}");
    assert_eq!(seen["expiredLink"]["addressBar"], format!("{}/portal#/overview", app.address), "{seen}");
    // Money and prices without floats (half away from zero, as the server's `price_of`).
    assert_eq!(
        seen["formats"],
        json!({
            "money": ["1.50 USD", "0.05 USD", "1,234,567.89 USD", "1,500 JPY", "-2.50 EUR"],
            "price": ["150", "2", "200", "0", "10"],
            "credits": ["1,234.5", "-3", "0.000001", "10"],
            "text": "<p>&lt;b&gt;bold&lt;/b&gt;</p>",
        }),
        "{seen}"
    );
    for (page, violations) in seen["axe"].as_object().unwrap() {
        assert_eq!(violations, &json!([]), "axe-core on {page}");
    }
    assert_eq!(seen["foreign"], json!([]), "the page tried to reach another host: {seen}");
    assert_eq!(seen["problems"], json!([]), "errors in the page (a policy violation, a failed load): {seen}");
    let socket = format!("{}/graphql/ws", app.address.replace("http://", "ws://"));
    assert!(seen["websockets"].as_array().unwrap().iter().all(|s| s == &json!(socket)), "{seen}");
}

on_both!(a_user_uses_the_portal_in_chromium);

/// Opens the portal for `account` through `createPortalSession`, as a backend does.
async fn portal_link(app: &TestApp, account: &str) -> String {
    let opened = app.gql(&app.service, "mutation($a: ID!) { createPortalSession(accountId: $a) { url } }", json!({ "a": account })).await;
    opened["data"]["createPortalSession"]["url"].as_str().unwrap_or_else(|| panic!("{opened}")).to_string()
}

fn assert_clean(seen: &Value) {
    assert_eq!(seen["axe"], json!([]), "axe-core: {seen}");
    assert_eq!(seen["foreign"], json!([]), "the page tried to reach another host: {seen}");
    assert_eq!(seen["problems"], json!([]), "errors in the page: {seen}");
}

/// carat: a Plus subscriber claims today's lucky credits from the page (a 24-hour lot, so it is
/// called out as expiring within the program's 3 days); ad rewards come from watching an ad in
/// the app, which the page says instead of offering a button.
async fn a_subscriber_claims_lucky_credits_in_the_portal(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    // Inside carat's lucky promotion (until 2026-04-30).
    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-04-01T12:00:00Z").unwrap().to_utc());
    let created = app
        .gql(&app.service, "mutation { createAccount(input: {externalId: \"lucky-user\", plan: \"plus\"}) { created } }", json!({}))
        .await;
    assert_eq!(created["data"]["createAccount"]["created"], true, "{created}");
    let url = portal_link(&app, "lucky-user").await;
    let Some(script) = BrowserScript::start("portal-claims.mjs", &app.address, &[("URL", url.as_str()), ("CLAIM_LUCKY", "1")]).await else {
        return;
    };
    let seen = script.finish().await;
    assert_clean(&seen);
    let before = &seen["before"];
    assert_eq!(before["luckyButton"], 1, "{seen}");
    assert!(before["lucky"][0].as_str().unwrap().contains("up to 700 credits"), "{seen}");
    assert!(before["ad"][0].as_str().unwrap().contains("Watch an ad in the app"), "{seen}");
    assert!(before["benefits"].as_array().unwrap().iter().any(|b| b.as_str().unwrap().starts_with("Plan credits: Plus")), "{seen}");
    let claimed = seen["claimed"].as_str().unwrap();
    let lucky = app.gql(&app.user("lucky-user"), "{ me { luckyCredits { claimed } } }", json!({})).await;
    let amount = lucky["data"]["me"]["luckyCredits"]["claimed"].as_str().unwrap_or_else(|| panic!("{lucky}"));
    assert_eq!(claimed, format!("Lucky you: {amount} credits added."), "{seen}");
    assert!(seen["after"]["lucky"][0].as_str().unwrap().contains(&format!("You got {amount} credits today")), "{seen}");
    assert!(seen["after"]["expiring"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().contains("(lucky credits) expire")), "{seen}");
}

/// archipelag: under its 10-credit threshold the low-credit banner shows; the market's page is
/// in the navigation.
async fn the_low_credit_banner_shows_in_the_portal(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    app.create_account("low-user").await;
    let verified =
        app.gql(&app.service, "mutation { setIdentityVerified(accountId: \"low-user\", verified: true) { id } }", json!({})).await;
    assert!(verified["errors"].is_null(), "{verified}");
    let balance = app.balance("low-user").await;
    let spend = format!("{}", balance.parse::<i64>().unwrap() - 4);
    let spent = app.spend("low-user", &spend, "down-to-four").await;
    assert!(spent["errors"].is_null(), "{spent}");
    let url = portal_link(&app, "low-user").await;
    let Some(script) = BrowserScript::start("portal-claims.mjs", &app.address, &[("URL", url.as_str())]).await else {
        return;
    };
    let seen = script.finish().await;
    assert_clean(&seen);
    let low = seen["before"]["low"][0].as_str().unwrap_or_else(|| panic!("no low-credit banner: {seen}"));
    assert!(low.contains("Your credits are running low") && low.contains("4 credits left"), "{seen}");
    assert!(seen["before"]["nav"].as_array().unwrap().contains(&json!("Market")), "{seen}");
}

/// arkain: the Statement page shows March's figures as the API computes them, its digest and
/// its JSON document (the "Download JSON" link), and printing hides the navigation.
async fn a_user_reads_a_statement_in_the_portal(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    app.clock.set(at("2026-03-02T10:00:00Z"));
    app.create_account("statement-user").await;
    let granted = app
        .gql(
            &app.admin,
            "mutation { grantCredits(input: {accountId: \"statement-user\", amount: \"20\", class: PROMOTIONAL, source: COUPON,
               expiresAt: \"2026-03-10T00:00:00Z\", idempotencyKey: \"coupon\"}) { lotId } }",
            json!({}),
        )
        .await;
    assert!(granted["errors"].is_null(), "{granted}");
    let spent = app.spend("statement-user", "5", "chat-1").await;
    assert!(spent["errors"].is_null(), "{spent}");
    app.clock.set(at("2026-04-05T10:00:00Z"));
    app.ledger.expire_due(app.clock.now(), 100).await.unwrap();
    let api =
        app.gql(&app.user("statement-user"), "{ me { statement(month: \"2026-03\") { digest json closing expired } } }", json!({})).await;
    let api = &api["data"]["me"]["statement"];
    let url = portal_link(&app, "statement-user").await;
    let screenshots = match (backend, std::env::var("PORTAL_SCREENSHOTS")) {
        (Backend::Sqlite, Ok(dir)) => dir,
        _ => String::new(),
    };
    let env = [("URL", url.as_str()), ("MONTH", "2026-03"), ("PORTAL_SCREENSHOTS", screenshots.as_str())];
    let Some(script) = BrowserScript::start("portal-statement.mjs", &app.address, &env).await else {
        return;
    };
    let seen = script.finish().await;
    assert_clean(&seen);
    // It opens on the month in progress, then shows the month picked.
    assert_eq!((seen["currentMonth"].clone(), seen["currentComplete"].clone()), (json!("2026-04"), json!("false")), "{seen}");
    assert_eq!(seen["complete"], "true", "{seen}");
    // The plan's 50 (valid to April 1) and the coupon's 20; 5 spent on chat, the coupon's 15 expired.
    assert_eq!((seen["opening"].as_str(), seen["closing"].as_str()), (Some("0"), Some("50")), "{seen}");
    assert_eq!((seen["expired"].as_str(), seen["refunded"].as_str()), (Some("15"), Some("0")), "{seen}");
    assert_eq!((api["closing"].as_str(), api["expired"].as_str()), (Some("50"), Some("15")), "{api}");
    assert_eq!(seen["sources"], json!([["COUPON", "20"], ["MONTHLY_PLAN", "50"]]), "{seen}");
    assert_eq!(seen["features"], json!([["chat", "5"]]), "{seen}");
    assert_eq!(seen["lots"].as_array().unwrap().len(), 2, "{seen}");
    assert_eq!(seen["digest"], api["digest"], "{seen}");
    assert_eq!(seen["downloaded"], api["json"], "the link saves the statement's document");
    assert_eq!(seen["downloadName"], "statement-statement-user-2026-03.json");
    assert_eq!(seen["printed"], json!({ "nav": false, "form": false, "download": false, "statement": true }), "{seen}");
}

on_both!(
    a_subscriber_claims_lucky_credits_in_the_portal,
    the_low_credit_banner_shows_in_the_portal,
    a_user_reads_a_statement_in_the_portal
);

/// The Buy page prices a custom amount before paying with its own copy of the ledger's rule
/// (`web/portal/js/dom.js` `priceMinor`, exact BigInt arithmetic, so it needs no request per
/// keystroke). This pins the copy to `ledger::money::price_of` over whole and fractional rates
/// and the rounding edges, so the two cannot drift apart.
#[test]
fn the_pages_price_rule_is_the_ledgers() {
    use credits::ledger::{Credits, money::price_of};
    use rust_decimal::Decimal;
    use std::str::FromStr;
    let rates = ["2", "0.2", "0.25", "0.5", "1.999", "0.000001", "37"];
    let amounts = ["1", "2", "3", "5", "7", "10", "12.5", "50", "75", "99.999999", "1234567", "2.5", "0.000001"];
    let mut cases = Vec::new();
    for rate in rates {
        for amount in amounts {
            let expected = price_of(Credits::parse_str(amount).unwrap(), Decimal::from_str(rate).unwrap()).unwrap();
            cases.push((amount, rate, expected));
        }
    }
    let module = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/portal/js/dom.js");
    let script = format!(
        "import({:?}).then((m) => console.log(JSON.stringify({}.map(([c, r]) => String(m.priceMinor(c, r))))))",
        module.display().to_string(),
        serde_json::to_string(&cases.iter().map(|(c, r, _)| [*c, *r]).collect::<Vec<_>>()).unwrap()
    );
    let output = match std::process::Command::new("node").args(["--input-type=module", "-e", &script]).output() {
        Ok(output) => output,
        Err(e) if std::env::var_os("CI").is_none() => return eprintln!("SKIPPED: no node ({e})"),
        Err(e) => panic!("CI is set, so node must run: {e}"),
    };
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let page: Vec<String> = serde_json::from_slice(&output.stdout).unwrap();
    for ((amount, rate, expected), shown) in cases.iter().zip(&page) {
        assert_eq!(shown, &expected.to_string(), "{amount} credits at {rate} minor units each");
    }
    assert_eq!(page.len(), rates.len() * amounts.len());
}
