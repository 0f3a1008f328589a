//! A webhook endpoint on a real local socket, for the tests of delivery (`tests/webhooks.rs`),
//! redelivery through the API (`tests/operations.rs`) and the console (`tests/console.rs`):
//! records every request, and answers the first `fail_first` of them with 500, the rest with
//! 200 (`heal` makes it answer 200 from now on).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use credits::service::webhooks::WebhookSender;
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub event_id: String,
    pub signature: String,
    pub body: Vec<u8>,
    /// Every header, names in lower case.
    pub headers: std::collections::BTreeMap<String, String>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Clone, Default)]
struct ReceiverState {
    requests: Arc<Mutex<Vec<Received>>>,
    /// Requests still to be answered with a 500.
    failures_left: Arc<AtomicU32>,
}

pub struct Receiver {
    pub url: String,
    state: ReceiverState,
    server: tokio::task::JoinHandle<()>,
}

async fn receive(State(state): State<ReceiverState>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    state.requests.lock().unwrap().push(Received {
        event_id: header("credits-event-id"),
        signature: header("credits-signature"),
        body: body.to_vec(),
        headers: headers.iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string())).collect(),
    });
    let failing = state.failures_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if failing { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
}

impl Receiver {
    /// Listens on 127.0.0.1 at a free port; `u32::MAX` fails until healed.
    pub async fn start(fail_first: u32) -> Receiver {
        let state = ReceiverState::default();
        state.failures_left.store(fail_first, Ordering::SeqCst);
        let app = axum::Router::new().route("/hooks", axum::routing::post(receive)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a local port");
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the receiver runs");
        });
        Receiver { url, state, server }
    }

    /// A sender that signs with `secret` and posts to this receiver.
    pub fn sender(&self, secret: &[u8]) -> Arc<WebhookSender> {
        Arc::new(WebhookSender::new(&self.url, secret).expect("a valid sender"))
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The `Credits-Event-Id` of every request so far, in order.
    pub fn event_ids(&self) -> Vec<String> {
        self.received().into_iter().map(|r| r.event_id).collect()
    }

    /// Every request from now on is acknowledged (200).
    pub fn heal(&self) {
        self.state.failures_left.store(0, Ordering::SeqCst);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
