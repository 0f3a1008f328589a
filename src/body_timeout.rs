//! A deadline for the whole request body.
//!
//! A client that sends a body under the size limit a byte at a time would otherwise hold its
//! connection (and a task) for as long as it likes. tower-http's body timeout restarts at every
//! chunk, which a trickle defeats, so the body is read here, under one deadline counted from the
//! end of the headers, before any handler sees it. Bodies are small (`max_body_bytes`) and the
//! GraphQL handler reads them whole anyway.

use crate::graphql::error::code;
use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Reads the body within `deadline`, then passes the request on with the body in memory. Past the
/// deadline: 408 with `TIMEOUT`, and the connection is closed (the rest of the body would
/// otherwise be read as the next request).
pub async fn read_body_within(State(deadline): State<Duration>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    // The body limit layer around this one bounds the size; this bounds the time.
    let bytes = match tokio::time::timeout(deadline, axum::body::to_bytes(body, usize::MAX)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) if is_too_large(&e) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "could not read a request body");
            return refusal(StatusCode::BAD_REQUEST, "the request body could not be read", code::BAD_USER_INPUT);
        }
        Err(_elapsed) => {
            tracing::debug!(timeout_ms = deadline.as_millis() as u64, "a request body took too long");
            let message = format!("the request body did not arrive within {} s", deadline.as_secs_f64());
            return refusal(StatusCode::REQUEST_TIMEOUT, &message, code::TIMEOUT);
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

fn is_too_large(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

fn refusal(status: StatusCode, message: &str, code: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
