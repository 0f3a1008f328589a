//! The axum router: GraphQL at `/graphql` (GraphiQL on GET), `/health`, request limits.

use crate::ads::{AdError, AdVerifier};
use crate::auth::AuthKeys;
use crate::graphql::error::code;
use crate::graphql::{Authentication, CreditsSchema};
use crate::service::{Clock, Ledger, ServiceError};
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::http::GraphiQLSource;
use async_graphql::{BatchRequest, BatchResponse};
use async_graphql_axum::{GraphQLBatchRequest, GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sea_orm::DatabaseConnection;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

/// The largest request body accepted by default (`max_body_bytes`); a bigger one gets 413
/// before it is parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct HttpState {
    pub schema: CreditsSchema,
    pub auth: Arc<AuthKeys>,
    pub db: DatabaseConnection,
    pub ledger: Ledger,
    pub clock: Clock,
    /// Verifies ad networks' server-side callbacks; none when no secret is configured.
    pub ads: Option<Arc<dyn AdVerifier>>,
    pub security: crate::app::Security,
    /// This process's scheduled jobs and whether they keep up; none registered when the
    /// process runs no workers (`serve --no-workers`).
    pub jobs: workers::JobHealth,
}

/// How long `/health` waits for the database's answer: an unreachable server (whose pool would
/// wait its whole acquire timeout) is reported as 503 at once instead of hanging the probe.
pub const HEALTH_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(graphql_ws))
        .route("/health", get(health))
        .route("/callbacks/ads", get(ad_callback))
        .layer(RequestBodyLimitLayer::new(state.security.max_body_bytes))
        .layer(axum::middleware::map_response(too_large_with_a_code))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The body limit answers 413 in plain text; clients get it in GraphQL's shape, with a code,
/// like every other refusal.
async fn too_large_with_a_code(response: Response) -> Response {
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    let body =
        serde_json::json!({ "errors": [{ "message": "the request body is too large", "extensions": { "code": code::BAD_USER_INPUT } }] });
    (StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response()
}

/// Subscriptions over WebSocket (graphql-transport-ws, or the older graphql-ws). The token comes
/// in the `connection_init` payload (`{"Authorization": "Bearer ..."}`), since browsers cannot set
/// headers on a WebSocket, or else from the upgrade request's `Authorization` header.
async fn graphql_ws(State(state): State<HttpState>, headers: HeaderMap, protocol: GraphQLProtocol, upgrade: WebSocketUpgrade) -> Response {
    let from_header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (auth, schema) = (state.auth.clone(), state.schema.clone());
    upgrade.protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| {
        GraphQLWebSocket::new(socket, schema, protocol)
            .on_connection_init(move |payload| async move {
                let from_payload = ["Authorization", "authorization"]
                    .iter()
                    .find_map(|k| payload.get(*k).and_then(|v| v.as_str()))
                    .map(|v| if v.starts_with("Bearer ") { v.to_string() } else { format!("Bearer {v}") });
                let caller: Authentication = auth.authenticate(from_payload.or(from_header).as_deref());
                let mut data = async_graphql::Data::default();
                data.insert(caller);
                Ok(data)
            })
            .serve()
    })
}

async fn graphql(
    State(state): State<HttpState>,
    axum::extract::ConnectInfo(client): axum::extract::ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: Result<GraphQLBatchRequest, async_graphql_axum::rejection::GraphQLRejection>,
) -> Response {
    // A body that is not a GraphQL request (malformed JSON, a wrong content type) or a batch
    // larger than allowed gets an answer in GraphQL's shape, with a code, like every other refusal.
    let refuse = |message: String| {
        let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code::BAD_USER_INPUT } }] });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    };
    let batch = match request {
        Ok(request) => request.into_inner(),
        Err(rejection) => return refuse(format!("not a GraphQL request: {}", rejection.0)),
    };
    if let BatchRequest::Batch(requests) = &batch {
        let max = state.security.max_batch_size;
        if max <= 1 {
            return refuse("batches are not accepted: send one request per body".to_string());
        }
        if requests.is_empty() || requests.len() > max {
            return refuse(format!("a batch holds 1 to {max} requests, this one {}", requests.len()));
        }
    }
    let header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller: Authentication = state.auth.authenticate(header);
    let batch = batch.data(caller).data(crate::graphql::context::ClientIp(client.ip()));
    let mut response = match tokio::time::timeout(state.security.request_timeout, state.schema.execute_batch(batch)).await {
        Ok(response) => response,
        Err(_elapsed) => {
            // The execution is dropped, and with it any open transaction, which rolls back; a
            // spend still waiting for its batch is cancelled. One already inside a committing
            // batch completes, so the answer must not claim that nothing changed.
            tracing::warn!(timeout_ms = state.security.request_timeout.as_millis() as u64, "request timed out");
            let mut error = async_graphql::ServerError::new(
                "the request took too long and was stopped before its answer: a mutation may or may not have completed; \
                 retry it with the same idempotency key to get its outcome",
                None,
            );
            error.extensions.get_or_insert_with(Default::default).set("code", code::TIMEOUT);
            BatchResponse::Single(async_graphql::Response::from_errors(vec![error]))
        }
    };
    // Parse, validation and limit errors come from the library without a code: every error a
    // client sees carries one.
    let responses: Vec<&mut async_graphql::Response> = match &mut response {
        BatchResponse::Single(one) => vec![one],
        BatchResponse::Batch(many) => many.iter_mut().collect(),
    };
    for error in responses.into_iter().flat_map(|r| r.errors.iter_mut()) {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", code::BAD_USER_INPUT);
        }
    }
    GraphQLResponse::from(response).into_response()
}

/// The ad network's server-side verification callback. Networks retry until they get a 200, so
/// a repeated callback answers 200 too; a bad signature is 403 and never retried into success.
async fn ad_callback(State(state): State<HttpState>, RawQuery(query): RawQuery) -> impl IntoResponse {
    let reply = |status: StatusCode, message: &str| (status, Json(serde_json::json!({ "status": message })));
    let Some(verifier) = &state.ads else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "ad verification is not configured");
    };
    let reward = match verifier.verify(query.as_deref().unwrap_or_default()) {
        Ok(reward) => reward,
        Err(e @ (AdError::Unsigned | AdError::BadSignature)) => {
            tracing::warn!(error = %e, "ad callback refused");
            return reply(StatusCode::FORBIDDEN, "invalid signature");
        }
        Err(e) => return reply(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match state.ledger.record_verified_ad(&reward, state.clock.now()).await {
        Ok(true) => reply(StatusCode::OK, "recorded"),
        Ok(false) => reply(StatusCode::OK, "duplicate"),
        Err(ServiceError::BadInput(message)) => reply(StatusCode::BAD_REQUEST, &message),
        Err(ServiceError::NotFound(_)) => reply(StatusCode::NOT_FOUND, "unknown account"),
        Err(e) => {
            tracing::error!(error = ?e, "ad callback failed");
            reply(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

async fn graphiql(State(state): State<HttpState>) -> Response {
    if state.security.production {
        let body = serde_json::json!({ "errors": [{ "message": "GraphiQL is off in production mode", "extensions": { "code": code::NOT_FOUND } }] });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    Html(GraphiQLSource::build().endpoint("/graphql").subscription_endpoint("/graphql/ws").finish()).into_response()
}

/// 200 when the database answers within `HEALTH_DB_TIMEOUT`, else 503. The body also lists this
/// process's jobs that are behind (`workers::JobHealth`): they do not change the status, since a
/// job outage is not a reason to stop sending this process requests (a later `/readyz` may say
/// otherwise), and another process's jobs never show here.
async fn health(State(state): State<HttpState>) -> impl IntoResponse {
    let database = match tokio::time::timeout(HEALTH_DB_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "health check: database unreachable");
            Some("database unreachable")
        }
        Err(_elapsed) => {
            tracing::error!(timeout_ms = HEALTH_DB_TIMEOUT.as_millis() as u64, "health check: the database did not answer in time");
            Some("database unreachable")
        }
    };
    let behind: Vec<serde_json::Value> = state
        .jobs
        .behind()
        .into_iter()
        .map(|b| {
            serde_json::json!({
                "job": b.job.name(),
                "reason": b.reason.as_str(),
                "consecutiveFailures": b.consecutive_failures,
                "lastError": b.last_error.map(workers::FailureKind::as_str),
                "lastSuccessAt": b.last_success_at.map(|at| at.to_rfc3339()),
                "secondsSinceSuccess": b.seconds_since_success,
            })
        })
        .collect();
    let jobs = serde_json::json!({ "inProcess": state.jobs.jobs().len(), "behind": behind });
    match database {
        None => (StatusCode::OK, Json(serde_json::json!({ "status": "ok", "jobs": jobs }))),
        Some(status) => (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": status, "jobs": jobs }))),
    }
}

/// A bound server: tests bind port 0 and read the address back.
pub struct Application {
    listener: TcpListener,
    router: Router,
    jobs: workers::JobHealth,
}

impl Application {
    pub async fn bind(addr: &str, state: HttpState) -> std::io::Result<Application> {
        let listener = TcpListener::bind(addr).await?;
        let jobs = state.jobs.clone();
        Ok(Application { listener, router: router(state), jobs })
    }

    /// This process's job health, which `/health` reports: hand it to `workers::run` when the
    /// process runs the jobs too.
    pub fn job_health(&self) -> workers::JobHealth {
        self.jobs.clone()
    }

    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        use axum::serve::ListenerExt;
        // Responses larger than a TCP segment (a page of history, a subscription's frames) would
        // otherwise send their tail only after the client's delayed ACK (the same 40 ms stall
        // as the database connections had: docs/benchmarks.md, change 5).
        let listener = self.listener.tap_io(|stream| {
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(error = %err, "could not set TCP_NODELAY on a connection");
            }
        });
        axum::serve(listener, self.router.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(shutdown).await
    }
}
