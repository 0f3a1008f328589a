//! The portal's way in and its buying flow through the real API: `createPortalSession` (a user
//! token in the URL's fragment, bounded lifetime, service only), `simulatePayment` (development
//! only, once per purchase however often it is pressed), `Purchase.checkoutUrl` and the program
//! fields the portal reads, with the settings that drive them (`public_url`, `checkout_url`).

use crate::on_both;
use crate::support::serve::{ServeProcess, credits_command};
use crate::support::{Backend, TestApp, error_code, gql_at};
use credits::auth::{AuthKeys, Role};
use serde_json::{Value, json};

const OPEN: &str = "mutation($a: ID!, $t: Int) { createPortalSession(accountId: $a, ttl: $t) { token url expiresAt } }";
const BUY: &str = "mutation($a: ID!, $k: String!) { purchaseCredits(input: {accountId: $a, credits: \"100\", idempotencyKey: $k}) { id status checkoutUrl } }";
const PAY: &str = "mutation($p: ID!) { simulatePayment(purchaseId: $p) { id status paymentReference lotId checkoutUrl } }";

fn seconds_until(expires_at: &Value) -> i64 {
    let at = chrono::DateTime::parse_from_rfc3339(expires_at.as_str().unwrap()).unwrap();
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds()
}

async fn a_portal_session_is_a_user_token_in_the_fragment(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("ann").await;
    app.create_account("bob").await;

    let opened = app.gql(&app.service, OPEN, json!({ "a": "ann" })).await;
    let session = &opened["data"]["createPortalSession"];
    let token = session["token"].as_str().unwrap_or_else(|| panic!("{opened}"));
    // Without public_url, development mode links to the address the server bound.
    assert_eq!(session["url"], json!(format!("{}/portal#token={token}", app.address)));
    assert!((3590..=3600).contains(&seconds_until(&session["expiresAt"])), "an hour by default: {session}");

    // The token is the account's user: its own account, and no other.
    let me = app.gql(token, "{ me { id } }", json!({})).await;
    assert_eq!(me["data"]["me"]["id"], json!("ann"), "{me}");
    let other = app.gql(token, "query($a: ID!) { account(id: $a) { id } }", json!({ "a": "bob" })).await;
    assert_eq!(error_code(&other), "FORBIDDEN");
    // A user cannot open sessions, for itself or anyone.
    assert_eq!(error_code(&app.gql(token, OPEN, json!({ "a": "ann" })).await), "FORBIDDEN");
    assert_eq!(error_code(&app.gql("", OPEN, json!({ "a": "ann" })).await), "UNAUTHENTICATED");

    let short = app.gql(&app.admin, OPEN, json!({ "a": "bob", "t": 120 })).await;
    assert!((110..=120).contains(&seconds_until(&short["data"]["createPortalSession"]["expiresAt"])), "{short}");
    let day = app.gql(&app.service, OPEN, json!({ "a": "bob", "t": 86_400 })).await;
    assert!(day["errors"].is_null(), "{day}");
    for ttl in [59, 86_401, 0, -5] {
        let refused = app.gql(&app.service, OPEN, json!({ "a": "bob", "t": ttl })).await;
        assert_eq!(error_code(&refused), "BAD_USER_INPUT", "ttl {ttl}: {refused}");
    }
    assert_eq!(error_code(&app.gql(&app.service, OPEN, json!({ "a": "nobody" })).await), "NOT_FOUND");
}

async fn a_simulated_payment_pays_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("ann").await;
    app.create_account("bob").await;
    let ann = app.user("ann");
    let before = app.balance("ann").await;

    let program = app.gql(&ann, "{ program { checkout } }", json!({})).await;
    assert_eq!(program["data"]["program"]["checkout"], json!("SIMULATED"), "development mode without a checkout page");
    let bought = app.gql(&ann, BUY, json!({ "a": "ann", "k": "buy-1" })).await;
    let purchase = bought["data"]["purchaseCredits"].clone();
    assert_eq!(purchase["status"], json!("PENDING"), "{bought}");
    assert_eq!(purchase["checkoutUrl"], Value::Null, "no checkout page configured");
    let id = purchase["id"].as_str().unwrap().to_string();

    // Another user cannot pay it (nor learn whether it exists).
    assert_eq!(error_code(&app.gql(&app.user("bob"), PAY, json!({ "p": id })).await), "FORBIDDEN");
    assert_eq!(error_code(&app.gql(&ann, PAY, json!({ "p": "999999" })).await), "FORBIDDEN");
    assert_eq!(error_code(&app.gql(&app.service, PAY, json!({ "p": "999999" })).await), "NOT_FOUND");

    // Pressed in eight tabs at once: paid once.
    let presses = (0..8).map(|_| app.gql(&ann, PAY, json!({ "p": id })));
    let answers = futures::future::join_all(presses).await;
    for answer in &answers {
        let paid = &answer["data"]["simulatePayment"];
        assert_eq!(paid["status"], json!("PAID"), "{answer}");
        assert_eq!(paid["paymentReference"], json!(format!("simulated-{id}")));
        assert_eq!(paid["lotId"], answers[0]["data"]["simulatePayment"]["lotId"], "one lot");
    }
    // arkain: 100 bought and the first purchase's 30% bonus.
    let after = app.balance("ann").await;
    assert_eq!(after.parse::<i64>().unwrap() - before.parse::<i64>().unwrap(), 130, "{before} -> {after}");
    let again = app.gql(&app.service, PAY, json!({ "p": id })).await;
    assert_eq!(again["data"]["simulatePayment"]["status"], json!("PAID"), "on the user's behalf, again: {again}");
    assert_eq!(app.balance("ann").await, after);
    app.assert_audit_clean().await;
}

/// What the portal reads to choose what to show, per preset.
async fn the_program_says_what_the_portal_shows(backend: Backend) {
    for (preset, expected) in [
        (
            "arkain",
            json!({ "adRewardMode": null, "refundWindow": "7 days", "expiringWithin": "3 days", "metering": true, "market": false, "referrals": true }),
        ),
        (
            "carat",
            json!({ "adRewardMode": "AD", "refundWindow": "7 days", "expiringWithin": "3 days", "metering": false, "market": false, "referrals": false }),
        ),
        (
            "archipelag",
            json!({ "adRewardMode": null, "refundWindow": null, "expiringWithin": null, "metering": false, "market": true, "referrals": false }),
        ),
    ] {
        let app = TestApp::spawn_with(backend, preset).await;
        let answer =
            app.gql(&app.service, "{ program { adRewardMode refundWindow expiringWithin metering market referrals } }", json!({})).await;
        assert_eq!(answer["data"]["program"], expected, "{preset}: {answer}");
    }
}

on_both!(a_portal_session_is_a_user_token_in_the_fragment, a_simulated_payment_pays_once);
on_both!(the_program_says_what_the_portal_shows);

const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes!!";

/// The binary reads `public_url` and `checkout_url`: a portal link under the public address, a
/// pending purchase's checkout page filled in, no simulated payment beside a real checkout,
/// and production without a public URL gives no link rather than a wrong one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_make_the_links() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("credits.db").display());
    let keys = AuthKeys::new(SECRET.as_bytes());
    let service = keys.issue(Role::Service, None, std::time::Duration::from_secs(600)).unwrap();
    let client = reqwest::Client::new();

    let mut command = credits_command();
    command
        .env("DATABASE_URL", &url)
        .env("CREDITS_AUTH_SECRET", SECRET)
        .env("CREDITS_PUBLIC_URL", "https://credits.example.com/billing")
        .env("CREDITS_CHECKOUT_URL", "https://pay.example.com/checkout?purchase={purchase_id}&amount={amount_minor}&currency={currency}");
    let server = ServeProcess::start(command, &["--no-workers"], dir.path(), "links").await;
    let gql = |query: &'static str, variables: Value| gql_at(&client, &server.address, &service, query, variables);
    gql("mutation { createAccount(input: {externalId: \"ann\"}) { created } }", json!({})).await;
    let opened = gql(OPEN, json!({ "a": "ann" })).await;
    let link = opened["data"]["createPortalSession"]["url"].as_str().unwrap_or_else(|| panic!("{opened}"));
    assert!(link.starts_with("https://credits.example.com/billing/portal#token=ey"), "{link}");
    assert_eq!(gql("{ program { checkout } }", json!({})).await["data"]["program"]["checkout"], json!("EXTERNAL"));
    let bought = gql(BUY, json!({ "a": "ann", "k": "b1" })).await;
    let purchase = &bought["data"]["purchaseCredits"];
    let id = purchase["id"].as_str().unwrap_or_else(|| panic!("{bought}"));
    // arkain: 100 credits at 2 cents.
    assert_eq!(purchase["checkoutUrl"], json!(format!("https://pay.example.com/checkout?purchase={id}&amount=200&currency=USD")));
    let refused = gql(PAY, json!({ "p": id })).await;
    assert_eq!(error_code(&refused), "FEATURE_DISABLED", "{refused}");
    let still = gql("{ account(id: \"ann\") { purchases(includePending: true) { nodes { status } } } }", json!({})).await;
    assert_eq!(still["data"]["account"]["purchases"]["nodes"], json!([{ "status": "PENDING" }]), "the refusal changed nothing");
    drop(server);

    // Production with neither setting: the product's app takes payments, and no link is made
    // from an address users may not reach.
    let mut command = credits_command();
    command.env("DATABASE_URL", &url).env("CREDITS_AUTH_SECRET", SECRET).env("CREDITS_MODE", "production");
    let server = ServeProcess::start(command, &["--no-workers"], dir.path(), "production").await;
    let gql = |query: &'static str, variables: Value| gql_at(&client, &server.address, &service, query, variables);
    assert_eq!(gql("{ program { checkout } }", json!({})).await["data"]["program"]["checkout"], json!("NONE"));
    assert_eq!(error_code(&gql(OPEN, json!({ "a": "ann" })).await), "FEATURE_DISABLED");
    let bought = gql(BUY, json!({ "a": "ann", "k": "b2" })).await;
    let id = bought["data"]["purchaseCredits"]["id"].as_str().unwrap_or_else(|| panic!("{bought}")).to_string();
    assert_eq!(error_code(&gql(PAY, json!({ "p": id })).await), "FEATURE_DISABLED");
    drop(server);

    // A checkout page that cannot name the purchase is refused at start.
    let output = credits_command()
        .current_dir(dir.path())
        .env("DATABASE_URL", &url)
        .env("CREDITS_AUTH_SECRET", SECRET)
        .env("CREDITS_CHECKOUT_URL", "https://pay.example.com/checkout")
        .args(["serve", "--bind", "127.0.0.1:0", "--no-workers"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("{purchase_id}"), "{}", String::from_utf8_lossy(&output.stderr));
}
