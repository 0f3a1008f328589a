//! GraphQL over HTTP at `/graphql` (<https://graphql.github.io/graphql-over-http/draft/>):
//! POST runs any operation but a subscription, GET runs queries (and serves GraphiQL to a
//! browser), both answering in `application/graphql-response+json` or `application/json` as
//! the client's `Accept` asks, with caching headers that keep a caller's answers private.
//!
//! What a request goes through, in order: the media types (406, 415), its parameters
//! (`params`, 400), the batch rule, then the caller's token and address, the test clock's
//! refresh and the timeout around the execution; the schema's extensions do the rest
//! (`graphql::transport` refuses a GET's mutation and says whether a request error stopped the
//! request before it ran). The body's size and its deadline are the router's (`http.rs`).

pub mod negotiation;
pub mod params;

use crate::graphql::error::code;
use crate::graphql::transport::OverHttp;
use crate::graphql::{Authentication, context::ClientIp, context::TokenExpiry, timeout};
use crate::http::HttpState;
use async_graphql::{BatchRequest, BatchResponse};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use negotiation::ResponseType;
use std::net::SocketAddr;

/// How long a shared cache may keep the answer to a GET query sent without a token. Such a query
/// can read only what needs no token: today `__typename` and introspection (every ledger read
/// needs a caller), so the schema, which changes only with a deploy; a minute bounds how long a
/// cache serves the old schema after one, and is worth having for tools that fetch it often.
/// Answers with errors, and every answer to a request with a token, are never stored.
pub const PUBLIC_CACHE_CONTROL: &str = "public, max-age=60";

/// `GET /graphql`: the GraphiQL page for a browser, else the query in the query string.
pub async fn get(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query_string): RawQuery,
) -> Response {
    let accept = header_text(&headers, header::ACCEPT);
    if negotiation::prefers_html(accept) {
        return crate::http::graphiql(State(state)).await;
    }
    let exchange = Exchange::new(&headers, true);
    let Some(media) = negotiation::response_type(accept) else { return exchange.not_acceptable() };
    let request = match params::from_query_string(query_string.as_deref().unwrap_or_default()) {
        Ok(request) => request,
        Err(message) => return exchange.refuse(media, StatusCode::BAD_REQUEST, format!("not a GraphQL request: {message}")),
    };
    execute(&state, peer, &headers, exchange, media, vec![request], false).await
}

/// `POST /graphql`: one request, or a batch (an array) if `max_batch_size` allows.
pub async fn post(State(state): State<HttpState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Bytes) -> Response {
    let exchange = Exchange::new(&headers, false);
    let Some(media) = negotiation::response_type(header_text(&headers, header::ACCEPT)) else { return exchange.not_acceptable() };
    if !negotiation::is_json_body(header_text(&headers, header::CONTENT_TYPE)) {
        let message = "a POST body must be a GraphQL request in JSON, sent as `Content-Type: application/json`";
        return exchange.refuse(media, StatusCode::UNSUPPORTED_MEDIA_TYPE, message.to_string());
    }
    let params::Body { requests, batched } = match params::from_json_body(&body) {
        Ok(body) => body,
        Err(message) => return exchange.refuse(media, StatusCode::BAD_REQUEST, format!("not a GraphQL request: {message}")),
    };
    if batched {
        let max = state.security.max_batch_size;
        if max <= 1 {
            return exchange.refuse(media, StatusCode::BAD_REQUEST, "batches are not accepted: send one request per body".to_string());
        }
        if requests.is_empty() || requests.len() > max {
            let message = format!("a batch holds 1 to {max} requests, this one {}", requests.len());
            return exchange.refuse(media, StatusCode::BAD_REQUEST, message);
        }
    }
    execute(&state, peer, &headers, exchange, media, requests, batched).await
}

/// What the answer to one HTTP request depends on besides its GraphQL response.
struct Exchange {
    /// A GET: its answer may be stored by a cache if it carries no token and no error.
    get: bool,
    /// The request carries `Authorization` (valid or not): its answer is the caller's alone.
    carries_token: bool,
}

impl Exchange {
    fn new(headers: &HeaderMap, get: bool) -> Exchange {
        Exchange { get, carries_token: headers.contains_key(header::AUTHORIZATION) }
    }

    /// A refusal before anything ran, in GraphQL's error shape with a code, like every other.
    fn refuse(&self, media: ResponseType, status: StatusCode, message: String) -> Response {
        tracing::debug!(status = status.as_u16(), reason = %message, "GraphQL request refused");
        let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code::BAD_USER_INPUT } }] });
        self.answer(media, status, &body, false)
    }

    /// 406: the client accepts neither GraphQL type, so it is told in `application/json`, the
    /// one every GraphQL client reads.
    fn not_acceptable(&self) -> Response {
        let message = "the client accepts neither application/graphql-response+json nor application/json (see Accept)".to_string();
        self.refuse(ResponseType::Json, StatusCode::NOT_ACCEPTABLE, message)
    }

    /// The response, with its type and caching headers. Every answer varies with `Accept` (its
    /// type and status) and `Authorization` (what the caller may read); only a token-less GET
    /// answered without an error is `public`.
    fn answer(&self, media: ResponseType, status: StatusCode, body: &serde_json::Value, clean: bool) -> Response {
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media.content_type()));
        headers.append(header::VARY, HeaderValue::from_static("Accept, Authorization"));
        let cache_control = if self.carries_token {
            HeaderValue::from_static("private, no-store")
        } else if self.get && clean && status == StatusCode::OK {
            HeaderValue::from_static(PUBLIC_CACHE_CONTROL)
        } else {
            HeaderValue::from_static("no-store")
        };
        headers.insert(header::CACHE_CONTROL, cache_control);
        response
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Runs the requests as the caller, within the request timeout, and answers.
async fn execute(
    state: &HttpState,
    peer: SocketAddr,
    headers: &HeaderMap,
    exchange: Exchange,
    media: ResponseType,
    requests: Vec<async_graphql::Request>,
    batched: bool,
) -> Response {
    // On a test clock, another process may have moved it: each request takes the stored instant.
    if let Err(e) = state.clock.refresh(&state.db).await {
        tracing::warn!(error = %e, "could not read the test clock; this request uses the last instant read");
    }
    let authenticated = state.auth.authenticate_until(header_text(headers, header::AUTHORIZATION));
    let expiry = authenticated.as_ref().ok().map(|(_, expires_at)| TokenExpiry(*expires_at));
    let caller: Authentication = authenticated.map(|(caller, _)| caller);
    let client = crate::client_address::client_address(peer, headers, &state.security.trusted_proxies);
    // An advance of a test clock answers when the work it runs is done, which may take minutes;
    // only a test-clock deployment lets a request mentioning it wait that long.
    let unhurried = state.clock.is_test() && requests.iter().any(|request| request.query.contains("advanceClock"));
    let mut http = Vec::with_capacity(requests.len());
    let mut requests: Vec<async_graphql::Request> = requests
        .into_iter()
        .map(|request| {
            // Each request of a batch has its own: one's request error is not another's.
            let over_http = OverHttp::new(exchange.get);
            http.push(over_http.clone());
            let mut request = request.data(caller.clone()).data(ClientIp(client)).data(over_http);
            if let Some(expiry) = expiry {
                request = request.data(expiry);
            }
            if unhurried { request.data(timeout::Unhurried) } else { request }
        })
        .collect();
    let batch = match requests.pop() {
        Some(request) if !batched && requests.is_empty() => BatchRequest::Single(request),
        last => BatchRequest::Batch(requests.into_iter().chain(last).collect()),
    };
    let limit = timeout::timeout_for(state.security.request_timeout, unhurried);
    let (response, timed_out) = match tokio::time::timeout(limit, state.schema.execute_batch(batch)).await {
        Ok(response) => (response, false),
        Err(_elapsed) => {
            // The execution is dropped, and with it any open transaction, which rolls back; a
            // spend still waiting for its batch is cancelled. One already inside a committing
            // batch completes, so the answer must not claim that nothing changed (nor is it a
            // request error: it keeps its `data: null` and its 200).
            tracing::warn!(timeout_ms = limit.as_millis() as u64, "request timed out");
            let response = async_graphql::Response::from_errors(vec![timeout::timeout_error()]);
            (BatchResponse::Single(response), true)
        }
    };
    // Every error carries a code: `graphql::error::ErrorCodes` stamps those the library leaves out.
    match response {
        BatchResponse::Single(response) => {
            // One request, or a batch stopped by the timeout as a whole.
            let (executed, refused_mutation) = http.first().map_or((false, false), |h| (h.executed(), h.refused_mutation()));
            let request_error = !timed_out && !executed && !response.errors.is_empty();
            let status = if refused_mutation {
                StatusCode::METHOD_NOT_ALLOWED
            } else if request_error && media == ResponseType::GraphqlResponseJson {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            let clean = response.errors.is_empty();
            let extra_headers = response.http_headers.clone();
            let mut answer = exchange.answer(media, status, &body_of(response, request_error), clean);
            answer.headers_mut().extend(extra_headers);
            if status == StatusCode::METHOD_NOT_ALLOWED {
                answer.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            answer
        }
        // A batch is outside the spec: 200, each answer shaped as a single one would be.
        BatchResponse::Batch(responses) => {
            let bodies = responses
                .into_iter()
                .zip(&http)
                .map(|(response, http)| {
                    let request_error = !http.executed() && !response.errors.is_empty();
                    body_of(response, request_error)
                })
                .collect();
            exchange.answer(media, StatusCode::OK, &serde_json::Value::Array(bodies), false)
        }
    }
}

/// A response as JSON. A request error has no `data` entry at all (the GraphQL spec: an error
/// raised before execution begins leaves it out), where the library writes `data: null`.
fn body_of(response: async_graphql::Response, request_error: bool) -> serde_json::Value {
    let mut body = serde_json::to_value(&response).unwrap_or_else(|e| {
        tracing::error!(error = %e, "a GraphQL response could not be written as JSON");
        serde_json::json!({ "errors": [{ "message": "internal error", "extensions": { "code": code::INTERNAL } }] })
    });
    if request_error && let Some(object) = body.as_object_mut() {
        object.remove("data");
    }
    body
}
