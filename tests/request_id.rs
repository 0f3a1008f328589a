//! A request id on every response (`x-request-id`: the client's when usable, else a fresh one)
//! and in every log line of that request (`credits::request_id`).

use crate::support::serve::{ServeProcess, credits_command};
use crate::support::{Backend, TestApp};
use serde_json::json;

fn id_of(response: &reqwest::Response) -> String {
    response.headers().get("x-request-id").expect("an x-request-id on the response").to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_has_an_id_and_a_clients_usable_id_is_kept() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let post = |id: Option<&str>| {
        let request =
            app.client.post(format!("{}/graphql", app.address)).bearer_auth(&app.service).json(&json!({ "query": "{ plans { code } }" }));
        match id {
            Some(id) => request.header("x-request-id", id),
            None => request,
        }
        .send()
    };
    let (first, second) = (id_of(&post(None).await.unwrap()), id_of(&post(None).await.unwrap()));
    assert!(uuid_like(&first) && uuid_like(&second), "{first} {second}");
    assert_ne!(first, second, "each request gets its own id");

    assert_eq!(id_of(&post(Some("checkout-7f3a.retry:2")).await.unwrap()), "checkout-7f3a.retry:2");
    for unusable in ["a b", &"x".repeat(129), "<script>alert(1)</script>"] {
        let replaced = id_of(&post(Some(unusable)).await.unwrap());
        assert!(uuid_like(&replaced), "{unusable:?} was kept as {replaced:?}");
    }

    // Not only GraphQL: health, a refusal by the body limit, an unknown path.
    let health = app.client.get(format!("{}/health", app.address)).send().await.unwrap();
    assert!(uuid_like(&id_of(&health)));
    let missing = app.client.get(format!("{}/nowhere", app.address)).header("x-request-id", "probe-1").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(id_of(&missing), "probe-1");
    let huge = format!("{{ plans {{ code }} }} # {}", "x".repeat(credits::http::MAX_BODY_BYTES));
    let too_large = reqwest::Client::new()
        .post(format!("{}/graphql", app.address))
        .header("x-request-id", "big-1")
        .json(&json!({ "query": huge }))
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    assert_eq!(id_of(&too_large), "big-1");
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// The log lines a request causes carry its id: the access line, and a line written by the
/// handler itself (a refused ad callback), in the real binary's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_lines_of_a_request_carry_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = credits_command();
    command
        .env("DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.path().join("credits.db").display()))
        .env("CREDITS_AUTH_SECRET", "a-secret-of-at-least-thirty-two-bytes!!")
        .env("CREDITS_AD_SECRET", "an-ad-network-secret-of-32-bytes-at-least")
        .env("RUST_LOG", "info,sqlx=warn");
    let server = ServeProcess::start(command, &["--no-workers"], dir.path(), "ids").await;
    let client = reqwest::Client::new();
    let refused = client
        .get(format!("{}/callbacks/ads?user_id=ana&reward_amount=10&transaction_id=t1&signature=forged", server.address))
        .header("x-request-id", "ad-callback-42")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let ok = client.get(format!("{}/health", server.address)).header("x-request-id", "health-43").send().await.unwrap();
    assert_eq!(ok.status(), 200);

    // The log is written as the request ends; wait for it, bounded.
    let mut log = String::new();
    for _ in 0..50 {
        log = server.log();
        if log.contains("health-43") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let line = |needle: &str| log.lines().find(|l| l.contains(needle)).map(str::to_string);
    let refusal = line("ad callback refused").unwrap_or_else(|| panic!("no refusal logged: {log}"));
    assert!(refusal.contains("request_id=ad-callback-42"), "{refusal}");
    let access = log.lines().filter(|l| l.contains("request_id=ad-callback-42") && l.contains("finished processing request")).count();
    assert_eq!(access, 1, "one access line for the request: {log}");
    assert!(log.lines().any(|l| l.contains("request_id=health-43") && l.contains("status=200")), "{log}");
    assert!(!log.contains("signature=forged"), "the query string stays out of the log: {log}");
}
