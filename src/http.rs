//! The axum router: GraphQL at `/graphql` (GraphiQL on GET) and `/graphql/ws` (`crate::ws`),
//! `/health`, request limits.

use crate::ads::{AdError, AdVerifier};
use crate::auth::AuthKeys;
use crate::graphql::error::code;
use crate::graphql::{Authentication, CreditsSchema};
use crate::service::{Clock, Engine, ServiceError};
use async_graphql::http::GraphiQLSource;
use async_graphql::{BatchRequest, BatchResponse};
use async_graphql_axum::{GraphQLBatchRequest, GraphQLResponse};
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
    pub ledger: Engine,
    pub clock: Clock,
    /// Verifies ad networks' server-side callbacks; none when no secret is configured.
    pub ads: Option<Arc<dyn AdVerifier>>,
    pub security: crate::app::Security,
    /// WebSocket connections open per client address.
    pub websockets: Arc<crate::ws::WebSocketCounts>,
    /// This process's scheduled jobs and whether they keep up; none registered when the
    /// process runs no workers (`serve --no-workers`).
    pub jobs: workers::JobHealth,
    /// The persisted documents the schema's extension runs (`graphql::persisted`), for a
    /// transport decision that needs the text behind a hash-only request: a GET must not run a
    /// mutation, and a hash-only GET carries no text to tell.
    pub persisted: Arc<crate::service::persisted::PersistedDocuments>,
}

/// How long `/health` waits for the database's answer: an unreachable server (whose pool would
/// wait its whole acquire timeout) is reported as 503 at once instead of hanging the probe.
pub const HEALTH_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(crate::ws::graphql_ws))
        .route("/health", get(health))
        .route("/callbacks/ads", get(ad_callback))
        // Inside the size limit, so a body read under the deadline is bounded in size too.
        .layer(axum::middleware::from_fn_with_state(state.security.body_timeout, crate::body_timeout::read_body_within))
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

async fn graphql(
    State(state): State<HttpState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
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
    // On a test clock, another process may have moved it: each request takes the stored instant.
    if let Err(e) = state.clock.refresh(&state.db).await {
        tracing::warn!(error = %e, "could not read the test clock; this request uses the last instant read");
    }
    let header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller: Authentication = state.auth.authenticate(header);
    let client = crate::client_address::client_address(peer, &headers, &state.security.trusted_proxies);
    let mut batch = batch.data(caller).data(crate::graphql::context::ClientIp(client));
    // An advance of a test clock answers when the work it runs is done, which may take minutes;
    // only a test-clock deployment lets a request mentioning it wait that long.
    let unhurried = state.clock.is_test() && advances_the_clock(&batch);
    if unhurried {
        batch = batch.data(crate::graphql::timeout::Unhurried);
    }
    let timeout = crate::graphql::timeout::timeout_for(state.security.request_timeout, unhurried);
    let response = match tokio::time::timeout(timeout, state.schema.execute_batch(batch)).await {
        Ok(response) => response,
        Err(_elapsed) => {
            // The execution is dropped, and with it any open transaction, which rolls back; a
            // spend still waiting for its batch is cancelled. One already inside a committing
            // batch completes, so the answer must not claim that nothing changed.
            tracing::warn!(timeout_ms = timeout.as_millis() as u64, "request timed out");
            BatchResponse::Single(async_graphql::Response::from_errors(vec![crate::graphql::timeout::timeout_error()]))
        }
    };
    // Every error carries a code: `graphql::error::ErrorCodes` stamps those the library leaves out.
    GraphQLResponse::from(response).into_response()
}

/// Whether a request's document mentions `advanceClock`.
fn advances_the_clock(batch: &BatchRequest) -> bool {
    batch.iter().any(|request| request.query.contains("advanceClock"))
}

/// The ad network's server-side verification callback. Networks retry until they get a 200, so
/// a repeated callback answers 200 too; a bad signature is 403 and never retried into success.
async fn ad_callback(State(state): State<HttpState>, RawQuery(query): RawQuery) -> impl IntoResponse {
    let reply = |status: StatusCode, message: &str| (status, Json(serde_json::json!({ "status": message })));
    let Some(verifier) = &state.ads else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "ad verification is not configured");
    };
    if let Err(e) = state.clock.refresh(&state.db).await {
        tracing::warn!(error = %e, "could not read the test clock; this callback uses the last instant read");
    }
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
    connections: crate::server::ConnectionSettings,
    schema: CreditsSchema,
    jobs: workers::JobHealth,
}

impl Application {
    pub async fn bind(addr: &str, state: HttpState) -> std::io::Result<Application> {
        let listener = TcpListener::bind(addr).await?;
        let security = &state.security;
        let descriptors = crate::connections::descriptor_limit();
        let max_connections = crate::connections::fit_to_descriptors(security.max_connections, descriptors);
        if max_connections < security.max_connections {
            tracing::warn!(
                connections.configured = security.max_connections,
                connections.max = max_connections,
                descriptors.limit = descriptors,
                "max_connections does not fit under the open-file limit (ulimit -n): lowered; raise the limit to allow more"
            );
        }
        let connections = crate::server::ConnectionSettings {
            header_timeout: security.header_timeout,
            max_connections,
            max_connections_per_ip: security.max_connections_per_ip,
            trusted_proxies: security.trusted_proxies.clone(),
        };
        let (schema, jobs) = (state.schema.clone(), state.jobs.clone());
        Ok(Application { listener, router: router(state), connections, schema, jobs })
    }

    /// The schema served, and through `Schema::data` what it carries (tests read the balance
    /// watchers' counts there).
    pub fn schema(&self) -> &CreditsSchema {
        &self.schema
    }

    /// This process's job health, which `/health` reports: hand it to `workers::run` when the
    /// process runs the jobs too.
    pub fn job_health(&self) -> workers::JobHealth {
        self.jobs.clone()
    }

    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The connection cap in force (the configured one, fitted to the descriptor limit).
    pub fn max_connections(&self) -> usize {
        self.connections.max_connections
    }

    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        crate::server::serve(self.listener, self.router, self.connections, shutdown).await
    }
}
