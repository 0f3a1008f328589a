//! A small OTLP/HTTP trace receiver on a real local socket, for the traces tests
//! (`tests/telemetry.rs`): it takes `POST /v1/traces` as a collector does (protobuf,
//! `application/x-protobuf`), decodes every span, and keeps them with their resource's
//! `service.name`. Anything else (another path, another content type, a body that does not
//! decode) is counted as refused and answered with an error, so a test sees a wrong exporter.

use axum::http::{HeaderMap, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One span as the receiver decoded it; ids in hex, attributes as text.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub attributes: BTreeMap<String, String>,
    /// The span's events (its log lines), each as its name and attributes.
    pub events: Vec<(String, BTreeMap<String, String>)>,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Clone, Default)]
struct State {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    /// Every request that reached the server, accepted or not.
    requests: Arc<Mutex<Vec<String>>>,
}

pub struct OtlpReceiver {
    /// The base URL to configure (`otlp_endpoint`); spans are expected at `/v1/traces` under it.
    pub endpoint: String,
    state: State,
    server: tokio::task::JoinHandle<()>,
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter().map(|kv| (kv.key.clone(), text(kv.value.as_ref()))).collect()
}

async fn traces(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    state.requests.lock().unwrap().push(format!("POST /v1/traces {kind}"));
    if kind != "application/x-protobuf" {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "protobuf only").into_response();
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, "not an ExportTraceServiceRequest").into_response();
    };
    let mut spans = state.spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                spans.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(span.trace_id),
                    span_id: hex::encode(span.span_id),
                    parent_span_id: hex::encode(span.parent_span_id),
                    attributes: attributes(&span.attributes),
                    events: span.events.iter().map(|e| (e.name.clone(), attributes(&e.attributes))).collect(),
                });
            }
        }
    }
    ([(header::CONTENT_TYPE, "application/x-protobuf")], ExportTraceServiceResponse::default().encode_to_vec()).into_response()
}

async fn anything_else(method: axum::http::Method, uri: axum::http::Uri, state: axum::extract::State<State>) -> StatusCode {
    state.requests.lock().unwrap().push(format!("{method} {uri}"));
    StatusCode::NOT_FOUND
}

impl OtlpReceiver {
    /// Listens on 127.0.0.1 at a free port.
    pub async fn start() -> OtlpReceiver {
        let state = State::default();
        let app = axum::Router::new().route("/v1/traces", axum::routing::post(traces)).fallback(anything_else).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a local port");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the receiver runs");
        });
        OtlpReceiver { endpoint, state, server }
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.state.spans.lock().unwrap().clone()
    }

    /// Every request received, as "METHOD path content-type".
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Whether `span` is `ancestor` or below it, following parent ids within one trace.
pub fn descends_from(spans: &[ReceivedSpan], span: &ReceivedSpan, ancestor: &ReceivedSpan) -> bool {
    let mut current = Some(span);
    // Bounded: a cycle in the ids (which no exporter should produce) must not hang the test.
    for _ in 0..64 {
        let Some(at) = current else { return false };
        if at.trace_id != ancestor.trace_id {
            return false;
        }
        if at.span_id == ancestor.span_id {
            return true;
        }
        current = spans.iter().find(|s| s.trace_id == at.trace_id && s.span_id == at.parent_span_id);
    }
    false
}
