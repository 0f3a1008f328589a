//! A request id on every response (`x-request-id`) and in every log line of that request.
//!
//! A client's or proxy's own id is kept, so one id follows a request across systems; one that is
//! unusable in a log line (too long, or holding characters other than the URL-safe ones) is
//! replaced by a fresh UUID rather than refused, since the request itself may be fine. The layers
//! are tower-http's (`SetRequestIdLayer`, `PropagateRequestIdLayer`); this module adds that check
//! and the span every log line of the request is written in.

use axum::extract::Request;
use axum::http::HeaderName;
use tracing::Span;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longer ids are replaced: a log line is no place for a client's essay.
pub const MAX_LEN: usize = 128;

/// Whether a client's id may be kept: 1 to `MAX_LEN` characters, URL-safe ones only, so it can
/// neither forge a log line nor carry markup into a page that shows logs.
pub fn usable(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:~+=/".contains(b))
}

/// Drops an unusable `x-request-id`, so that `SetRequestIdLayer` makes a fresh one.
pub async fn drop_unusable(mut request: Request) -> Request {
    if request.headers().get(&HEADER).is_some_and(|id| !usable(id.as_bytes())) {
        tracing::debug!("replacing an unusable x-request-id");
        request.headers_mut().remove(&HEADER);
    }
    request
}

/// The span a request's log lines are written in, and its trace's root (`crate::traces`): its
/// method, its route (the router's pattern, e.g. `/portal/{*path}`, so traces group by it), its
/// path (never the query string, which on a GET query may hold variables), its id, and once
/// answered its status (`record_status`).
pub fn span_for<B>(request: &axum::http::Request<B>) -> Span {
    let id = request.headers().get(&HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let route = request.extensions().get::<axum::extract::MatchedPath>().map_or("", |p| p.as_str());
    tracing::info_span!(
        "http.request",
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = route,
        url.path = %request.uri().path(),
        request_id = %id,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// Records a response's status on its request's span, then writes the access log line as
/// before. A 5xx marks the span (and so the trace) as failed; a 4xx is the client's doing.
#[derive(Clone)]
pub struct RecordStatus(pub tower_http::trace::DefaultOnResponse);

impl<B> tower_http::trace::OnResponse<B> for RecordStatus {
    fn on_response(self, response: &axum::http::Response<B>, latency: std::time::Duration, span: &Span) {
        span.record("http.response.status_code", response.status().as_u16());
        if response.status().is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        self.0.on_response(response, latency, span);
    }
}

#[cfg(test)]
mod tests {
    use super::usable;

    #[test]
    fn ids_that_are_safe_in_a_log_line_are_kept() {
        assert!(usable(b"3f1c2b9e-8a57-4e0f-9d6b-2a1e5c7b9d10"));
        assert!(usable(b"Root=1-67891233-abcdef012345678912345678"));
        assert!(usable(&[b'a'; 128]));
    }

    #[test]
    fn empty_long_or_strange_ids_are_replaced() {
        assert!(!usable(b""));
        assert!(!usable(&[b'a'; 129]));
        assert!(!usable(b"abc\ndef"));
        assert!(!usable(b"a b"));
        assert!(!usable(b"<script>"));
        assert!(!usable("é".as_bytes()));
    }
}
