//! A graphql-transport-ws client over a real WebSocket, for the tests that use `/graphql/ws`.

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a test waits for a message before it fails: a bound, not a sleep.
pub const WAIT: Duration = Duration::from_secs(60);

pub fn url(http_address: &str) -> String {
    format!("{}/graphql/ws", http_address.replace("http://", "ws://"))
}

/// The upgrade alone (no `connection_init`); Err is the refusal of the upgrade.
pub async fn open(http_address: &str) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut request = url(http_address).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    // No Nagle: a small message would otherwise wait for the server's delayed ACK (40 ms).
    tokio_tungstenite::connect_async_with_config(request, None, true).await.map(|(socket, _)| socket)
}

/// Connected and acknowledged, with `token` in the `connection_init` payload.
pub async fn connect(http_address: &str, token: &str) -> Socket {
    connect_as(http_address, Some(token)).await
}

/// Connected and acknowledged, with `token` in the `connection_init` payload if there is one.
pub async fn connect_as(http_address: &str, token: Option<&str>) -> Socket {
    let mut socket = open(http_address).await.expect("the WebSocket connects");
    let payload = match token {
        Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
        None => json!({}),
    };
    send(&mut socket, json!({ "type": "connection_init", "payload": payload })).await;
    let ack = next(&mut socket).await;
    assert_eq!(ack["type"], json!("connection_ack"), "{ack}");
    socket
}

pub async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::Text(message.to_string().into())).await.expect("the message is sent");
}

/// The next protocol message, skipping pings; a panic if the socket closes first.
pub async fn next(socket: &mut Socket) -> Value {
    loop {
        let message =
            tokio::time::timeout(WAIT, socket.next()).await.expect("a message arrives in time").expect("the socket is open").unwrap();
        match message {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["type"] != json!("ping") {
                    return value;
                }
            }
            Message::Close(frame) => panic!("the socket was closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Waits for the server to close the socket: the close frame's code and reason, or None when
/// the connection ended without one.
pub async fn closed(socket: &mut Socket) -> Option<(u16, String)> {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await.expect("the server closes in time") {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| (u16::from(f.code), f.reason.to_string())),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

/// Starts operation `id`.
pub async fn subscribe(socket: &mut Socket, id: &str, query: &str, variables: Value) {
    send(socket, json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } })).await;
}

/// A query or mutation over the socket: its one `next` payload (the response), after checking
/// that `complete` follows.
pub async fn execute(socket: &mut Socket, id: &str, query: &str, variables: Value) -> Value {
    subscribe(socket, id, query, variables).await;
    let answer = next(socket).await;
    assert_eq!((&answer["type"], &answer["id"]), (&json!("next"), &json!(id)), "{answer}");
    let complete = next(socket).await;
    assert_eq!((&complete["type"], &complete["id"]), (&json!("complete"), &json!(id)), "{complete}");
    answer["payload"].clone()
}

/// Several operations sent at once on one socket, so they run concurrently: their responses,
/// in the order of `requests`, each checked to be followed by its `complete`.
pub async fn execute_all(socket: &mut Socket, requests: &[(String, &str, &Value)]) -> Vec<Value> {
    for (id, query, variables) in requests {
        subscribe(socket, id, query, (*variables).clone()).await;
    }
    let mut answers: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
    let mut completed = 0;
    while completed < requests.len() {
        let message = next(socket).await;
        let id = message["id"].as_str().unwrap_or_else(|| panic!("{message}")).to_string();
        match message["type"].as_str() {
            Some("next") => assert!(answers.insert(id, message["payload"].clone()).is_none(), "one answer per query"),
            Some("complete") => {
                assert!(answers.contains_key(&id), "complete after the answer: {message}");
                completed += 1;
            }
            _ => panic!("unexpected: {message}"),
        }
    }
    requests.iter().map(|(id, _, _)| answers.remove(id).unwrap()).collect()
}

/// The `next` payload of operation `id`, skipping nothing: the next message must be it.
pub async fn next_payload(socket: &mut Socket, id: &str) -> Value {
    let message = next(socket).await;
    assert_eq!((&message["type"], &message["id"]), (&json!("next"), &json!(id)), "{message}");
    message["payload"].clone()
}

/// The code of the first error of a payload or response.
pub fn code_of(payload: &Value) -> &str {
    payload["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("expected an error with a code: {payload}"))
}
