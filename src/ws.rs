//! The WebSocket transport (`/graphql/ws`: graphql-transport-ws, or the older graphql-ws).
//! Queries and mutations are allowed here as well as subscriptions, so every limit HTTP applies
//! holds here too:
//!
//! - message size: a message (or frame) over `max_body_bytes` is refused from its header, before
//!   its payload is buffered, and the connection is closed with 1009 (Message Too Big). Closing
//!   is the only clean answer: the rest of the frame is still on the wire.
//! - depth, complexity, aliases, fan-out, error codes and the request timeout: in the schema's
//!   extensions, which every transport goes through (`graphql::limits`, `graphql::error`,
//!   `graphql::timeout`).
//! - claim limits per address: the connection's data carries the client's address.
//! - what only a long-lived connection needs: operations open at once per connection and the
//!   token's expiry (`graphql::session`), subscriptions per account (`balance_watch`),
//!   connections per address and the `connection_init` timeout (here).

use crate::auth::AuthKeys;
use crate::graphql::error::code;
use crate::graphql::session::Session;
use crate::graphql::{Authentication, CreditsSchema};
use crate::http::HttpState;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocket as GraphQLConnection, WebSocketProtocols, WsMessage};
use axum::Json;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt, future};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tracing::Instrument;

/// graphql-transport-ws: "Connection initialisation timeout".
pub const CLOSE_INIT_TIMEOUT: u16 = 4408;
/// RFC 6455: a message too big to process.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// WebSocket connections open per client address, in this process.
pub struct WebSocketCounts {
    max_per_address: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl WebSocketCounts {
    pub fn new(max_per_address: usize) -> Arc<WebSocketCounts> {
        Arc::new(WebSocketCounts { max_per_address, open: Mutex::new(HashMap::new()) })
    }

    /// A place for one more connection from `address`, given back when dropped.
    fn open(self: &Arc<Self>, address: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(address).or_insert(0);
        if *count >= self.max_per_address {
            return None;
        }
        *count += 1;
        metrics::gauge!(crate::telemetry::WEBSOCKETS_OPEN).increment(1.0);
        Some(ConnectionSlot { counts: self.clone(), address })
    }
}

struct ConnectionSlot {
    counts: Arc<WebSocketCounts>,
    address: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        metrics::gauge!(crate::telemetry::WEBSOCKETS_OPEN).decrement(1.0);
        let mut open = self.counts.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

fn refuse(status: StatusCode, message: String, code: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, Json(body)).into_response()
}

/// The subprotocol the client asked for; without one the upgrade is refused.
fn protocol_of(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    let offered = headers.get(header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
    offered.split(',').find_map(|p| p.trim().parse().ok())
}

/// The token comes in the `connection_init` payload (`{"Authorization": "Bearer ..."}`), since
/// browsers cannot set headers on a WebSocket, or else from the upgrade request's
/// `Authorization` header.
/// Each WebSocket's read and write buffer, in bytes, before a message needs more.
const WEBSOCKET_BUFFER: usize = 4096;

pub async fn graphql_ws(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(protocol) = protocol_of(&headers) else {
        let message = "a WebSocket subprotocol is required: graphql-transport-ws or graphql-ws".to_string();
        return refuse(StatusCode::BAD_REQUEST, message, code::BAD_USER_INPUT);
    };
    // Counted and rate-limited under the client's address: behind a trusted proxy, the one it forwards.
    let address = crate::client_address::client_address(peer, &headers, &state.security.trusted_proxies);
    let Some(slot) = state.websockets.open(address) else {
        let max = state.security.max_websockets_per_address;
        tracing::info!(client.address = %address, max, "WebSocket refused: too many open from this address");
        let message = format!("at most {max} WebSocket connections may be open at once from one address");
        return refuse(StatusCode::TOO_MANY_REQUESTS, message, code::LIMIT_EXCEEDED);
    };
    let from_header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let connection = Connection {
        schema: state.schema.clone(),
        auth: state.auth.clone(),
        from_header,
        address,
        security: state.security.clone(),
        drain: state.drain.clone(),
    };
    // Both limits, so that neither one frame nor many fragments get past the body limit.
    let max = state.security.max_body_bytes;
    // The session runs in a task of its own: it keeps the upgrade request's span, so its log
    // lines carry that request's id.
    let span = tracing::Span::current();
    // Small buffers: a connection mostly idles with a subscription or two, and tungstenite's
    // defaults (128 KiB to read, 128 KiB to write) made 500 idle sockets 64 MB (docs/benchmarks.md,
    // "Idle subscribers"). Both grow for a larger message, up to the limits above.
    upgrade
        .read_buffer_size(WEBSOCKET_BUFFER)
        .write_buffer_size(WEBSOCKET_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            async move {
                connection.serve(socket, protocol).await;
                drop(slot);
            }
            .instrument(span)
        })
}

struct Connection {
    schema: CreditsSchema,
    auth: Arc<AuthKeys>,
    from_header: Option<String>,
    address: IpAddr,
    security: crate::app::Security,
    /// The server's shutdown: the session holds it until it has closed (`crate::drain`).
    drain: crate::drain::Drain,
}

impl Connection {
    async fn serve(self, socket: WebSocket, protocol: WebSocketProtocols) {
        let _hold = self.drain.hold();
        let stopped = self.drain.stopped();
        futures_util::pin_mut!(stopped);
        let (mut sink, stream) = socket.split();
        let too_big = Arc::new(AtomicBool::new(false));
        let input = {
            let too_big = too_big.clone();
            stream
                .take_while(move |message| {
                    if let Err(e) = message {
                        if is_too_big(e) {
                            too_big.store(true, Ordering::Release);
                        } else {
                            tracing::debug!(error = %e, "WebSocket read failed");
                        }
                    }
                    future::ready(message.is_ok())
                })
                .filter_map(|message| {
                    future::ready(match message {
                        Ok(message @ (Message::Text(_) | Message::Binary(_))) => Some(message.into_data()),
                        _ => None,
                    })
                })
        };
        let (address, init_timeout, max_bytes) = (self.address, self.security.websocket_init_timeout, self.security.max_body_bytes);
        let max_open = self.security.max_subscriptions_per_connection;
        let initialised = Arc::new(AtomicBool::new(false));
        let on_init = {
            let initialised = initialised.clone();
            let Connection { auth, from_header, .. } = self;
            move |payload: serde_json::Value| async move {
                initialised.store(true, Ordering::Release);
                let from_payload = ["Authorization", "authorization"]
                    .iter()
                    .find_map(|k| payload.get(*k).and_then(|v| v.as_str()))
                    .map(|v| if v.starts_with("Bearer ") { v.to_string() } else { format!("Bearer {v}") });
                let authenticated = auth.authenticate_until(from_payload.or(from_header).as_deref());
                let expires_at = authenticated.as_ref().ok().map(|(_, expires_at)| *expires_at);
                let caller: Authentication = authenticated.map(|(caller, _)| caller);
                let mut data = async_graphql::Data::default();
                data.insert(caller);
                if let Some(at) = expires_at {
                    data.insert(crate::graphql::context::TokenExpiry(at));
                }
                data.insert(crate::graphql::context::ClientIp(address));
                data.insert(Session::new(max_open, expires_at));
                Ok(data)
            }
        };
        let messages = GraphQLConnection::new(self.schema, input, protocol).on_connection_init(on_init);
        futures_util::pin_mut!(messages);
        let init_deadline = tokio::time::sleep(init_timeout);
        futures_util::pin_mut!(init_deadline);
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(WsMessage::Text(text)) => {
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            return;
                        }
                    }
                    Some(WsMessage::Close(code, reason)) => {
                        let _ = sink.send(close(code, &reason)).await;
                        return;
                    }
                    None => break,
                },
                () = &mut stopped => {
                    // Its subscriptions end here; the client reconnects (to another server).
                    tracing::debug!(client.address = %address, "WebSocket closed: the server is shutting down");
                    let _ = sink.send(close(crate::drain::CLOSE_GOING_AWAY, "the server is shutting down; reconnect")).await;
                    return;
                }
                () = &mut init_deadline, if !initialised.load(Ordering::Acquire) => {
                    tracing::info!(client.address = %address, "WebSocket closed: no connection_init in time");
                    let _ = sink.send(close(CLOSE_INIT_TIMEOUT, "Connection initialisation timeout")).await;
                    return;
                }
            }
        }
        if too_big.load(Ordering::Acquire) {
            tracing::info!(client.address = %address, max_bytes, "WebSocket closed: message too big");
            let reason = format!("a message may hold at most {max_bytes} bytes");
            let _ = sink.send(close(CLOSE_TOO_BIG, &reason)).await;
        }
    }
}

/// A close frame; its reason cut to the 123 bytes a control frame has room for (a longer one,
/// such as the library's message for an unparsable message, would fail to send at all).
fn close(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame { code, reason: reason[..end].into() }))
}

/// A frame or message over the configured size (the read stops at its header).
fn is_too_big(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}
