//! `balanceChanged` over a real graphql-transport-ws client: the balance now, then each change,
//! including changes made by another process (a separate `credits worker`), which an in-process
//! broadcast could not deliver.

use crate::on_both;
use crate::support::{Backend, SECRET, TestApp, gql_at};
use chrono::{Duration, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a test waits for a pushed message before it fails: a bound, not a sleep.
const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

async fn connect(http_address: &str, token: &str) -> Socket {
    let url = format!("{}/graphql/ws", http_address.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("the WebSocket connects");
    send(&mut socket, json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } })).await;
    assert_eq!(next(&mut socket).await["type"], json!("connection_ack"));
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::Text(message.to_string().into())).await.expect("the message is sent");
}

/// The next protocol message, skipping pings.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message =
            tokio::time::timeout(WAIT, socket.next()).await.expect("a message arrives in time").expect("the socket is open").unwrap();
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] != json!("ping") {
                return value;
            }
        }
    }
}

async fn subscribe(socket: &mut Socket, id: &str, account: Option<&str>) {
    let query = "subscription($a: ID) { balanceChanged(accountId: $a) { accountId balance { total held available } } }";
    send(socket, json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": { "a": account } } })).await;
}

/// The next balance pushed on subscription `id`: (account, total).
async fn next_balance(socket: &mut Socket, id: &str) -> (String, String) {
    let message = next(socket).await;
    assert_eq!((&message["type"], &message["id"]), (&json!("next"), &json!(id)), "{message}");
    let update = &message["payload"]["data"]["balanceChanged"];
    (update["accountId"].as_str().unwrap().to_string(), update["balance"]["total"].as_str().unwrap().to_string())
}

async fn a_subscriber_sees_its_balance_and_every_change(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    app.create_account("b").await;
    app.grant("a", "10", "PAID", None, "g").await;
    let mut socket = connect(&app.address, &app.user("a")).await;
    subscribe(&mut socket, "mine", None).await;
    assert_eq!(next_balance(&mut socket, "mine").await, ("a".into(), "10".into()), "the balance now first");

    // Another account's change is not pushed here; this account's spend is.
    app.grant("b", "5", "PAID", None, "gb").await;
    assert!(app.spend("a", "2.5", "s").await["errors"].is_null());
    assert_eq!(next_balance(&mut socket, "mine").await, ("a".into(), "7.5".into()));
    app.grant("a", "1", "PAID", None, "g2").await;
    assert_eq!(next_balance(&mut socket, "mine").await, ("a".into(), "8.5".into()));

    // A user may not watch another account.
    subscribe(&mut socket, "theirs", Some("b")).await;
    let refused = next(&mut socket).await;
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], json!("FORBIDDEN"), "{refused}");

    // No token: the subscription is refused with a code, the socket stays usable.
    let mut anonymous = connect(&app.address, "not-a-token").await;
    subscribe(&mut anonymous, "x", Some("a")).await;
    let refused = next(&mut anonymous).await;
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], json!("UNAUTHENTICATED"), "{refused}");
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn credits(args: &[&str], database_url: &str) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_credits"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("CREDITS_AUTH_SECRET", std::str::from_utf8(SECRET).unwrap())
        .env("CREDITS_PROGRAM", crate::support::LEDGER_PROGRAM)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the credits binary starts");
    Process(child)
}

/// `serve --no-workers` and a separate `credits worker` on one database: the worker's expiry of
/// a lot reaches the client subscribed on the server.
async fn a_change_made_by_a_worker_process_reaches_the_subscriber(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = credits(&["serve", "--no-workers", "--bind", &format!("127.0.0.1:{port}")], &app.db.url);
    let address = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut healthy = false;
    for _ in 0..300 {
        if client.get(format!("{address}/health")).send().await.is_ok_and(|r| r.status() == 200) {
            healthy = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(healthy, "the server process became healthy");

    // Real time here: the processes run on the wall clock.
    let created =
        gql_at(&client, &address, &app.service, "mutation { createAccount(input: {externalId: \"w\"}) { created } }", json!({})).await;
    assert!(created["errors"].is_null(), "{created}");
    let grant = "mutation($e: DateTime) { a: grantCredits(input: {accountId: \"w\", amount: \"3\", class: FREE, expiresAt: $e, idempotencyKey: \"soon\"}) { lotId }
                                         b: grantCredits(input: {accountId: \"w\", amount: \"4\", class: PAID, idempotencyKey: \"kept\"}) { lotId } }";
    let granted = gql_at(&client, &address, &app.admin, grant, json!({ "e": (Utc::now() + Duration::seconds(5)).to_rfc3339() })).await;
    assert!(granted["errors"].is_null(), "{granted}");

    let mut socket = connect(&address, &app.user("w")).await;
    subscribe(&mut socket, "w", None).await;
    assert_eq!(next_balance(&mut socket, "w").await, ("w".into(), "7".into()), "subscribed before the lot expires");
    let _worker = credits(&["worker"], &app.db.url);
    // The lot's expiry alone changes no journal: only the worker's write-off (the server process
    // runs no jobs) can make the server push.
    assert_eq!(next_balance(&mut socket, "w").await, ("w".into(), "4".into()));
    assert!(expired_in_journal(&app).await, "pushed because the worker wrote the expiry off");
}

async fn expired_in_journal(app: &TestApp) -> bool {
    use sea_orm::{ConnectionTrait, Statement};
    let db = &app.ledger.db;
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) FROM journal_entries WHERE kind = 'expire'"))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap() == 1
}

/// A document whose fragments each spread the next one twice costs 2^depth fields to expand: it
/// is refused before the library's validation expands it, with no token over HTTP, as a query or
/// a mutation, and over the WebSocket (issue 17). Its time is for the harness, not asserted here.
async fn a_fragment_fan_out_is_refused_before_it_is_expanded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    let fan_out = |operation: &str, root: &str| {
        let mut document = format!("{operation} {{ ...F0 }}");
        for level in 0..30 {
            document.push_str(&format!(" fragment F{level} on {root} {{ ...F{next} ...F{next} }}", next = level + 1));
        }
        document.push_str(&format!(" fragment F30 on {root} {{ __typename }}"));
        document
    };
    for (operation, root) in [("query", "QueryRoot"), ("mutation", "MutationRoot")] {
        let refused = gql_at(&app.client, &app.address, "no-token", &fan_out(operation, root), json!({})).await;
        assert_eq!(refused["errors"][0]["extensions"]["code"], json!("BAD_USER_INPUT"), "{refused}");
        assert!(refused["errors"][0]["message"].as_str().unwrap().contains("fragments are expanded"), "{refused}");
    }
    let mut socket = connect(&app.address, &app.user("a")).await;
    send(&mut socket, json!({ "id": "1", "type": "subscribe", "payload": { "query": fan_out("query", "QueryRoot") } })).await;
    let refused = next(&mut socket).await;
    // The library answers a refused operation with a `next` carrying the errors, then `complete`.
    assert_eq!(refused["type"], json!("next"), "{refused}");
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], json!("BAD_USER_INPUT"), "{refused}");
    // The server is not held up: an ordinary read answers.
    assert_eq!(app.balance("a").await, "0");
}

on_both!(
    a_subscriber_sees_its_balance_and_every_change,
    a_change_made_by_a_worker_process_reaches_the_subscriber,
    a_fragment_fan_out_is_refused_before_it_is_expanded
);
