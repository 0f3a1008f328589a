//! The axum router: GraphQL at `/graphql` (`crate::graphql_http`; GraphiQL for a browser's GET)
//! and `/graphql/ws` (`crate::ws`), GraphiQL's embedded assets at `/graphiql/...`
//! (`crate::graphiql`), the customer portal at `/portal` (`crate::portal`), the operator console
//! at `/console` (`crate::console`), `/metrics`, `/livez` and `/readyz` (`/health` its old
//! name), request limits.

use crate::ads::{AdError, AdVerifier};
use crate::auth::AuthKeys;
use crate::graphql::CreditsSchema;
use crate::graphql::error::code;
use crate::service::{Clock, Engine, ServiceError};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sea_orm::DatabaseConnection;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::LatencyUnit;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

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
    /// Set once `/readyz` found every migration applied (`migrations_pending`).
    pub migrations_current: Arc<std::sync::atomic::AtomicBool>,
    /// Told when the server shuts down; every connection and WebSocket holds it until it ends.
    pub drain: crate::drain::Drain,
}

/// How long `/health` waits for the database's answer: an unreachable server (whose pool would
/// wait its whole acquire timeout) is reported as 503 at once instead of hanging the probe.
pub const HEALTH_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The routes, inside their layers. Each `layer` wraps what is above it, so a request meets them
/// from the bottom up: its id first (so every response and log line has one), then CORS (so a
/// preflight is answered before any limit, and a refusal by a limit still reaches the browser app
/// readably), the span and access log, then the limits.
pub fn router(state: HttpState) -> Router {
    let cors = state.security.cors.layer();
    let router = Router::new()
        .route("/graphql", get(crate::graphql_http::get).post(crate::graphql_http::post))
        .route("/graphql/ws", get(crate::ws::graphql_ws))
        .route("/graphiql/{*path}", get(crate::graphiql::asset))
        .route("/portal", get(crate::portal::page))
        .route("/portal/", get(crate::portal::to_page))
        .route("/portal/{*path}", get(crate::portal::asset))
        .route("/console", get(crate::console::page))
        .route("/console/", get(crate::console::to_page))
        .route("/console/{*path}", get(crate::console::asset))
        .route("/metrics", get(metrics_with_token))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        // What `/readyz` answers: the name older deployments probe.
        .route("/health", get(readyz))
        .route("/callbacks/ads", get(ad_callback))
        .route("/webhooks/stripe", axum::routing::post(stripe_webhook))
        // Inside the size limit, so a body read under the deadline is bounded in size too.
        .layer(axum::middleware::from_fn_with_state(state.security.body_timeout, crate::body_timeout::read_body_within))
        .layer(RequestBodyLimitLayer::new(state.security.max_body_bytes))
        .layer(axum::middleware::map_response(too_large_with_a_code))
        .layer(TraceLayer::new_for_http().make_span_with(crate::request_id::span_for).on_response(crate::request_id::RecordStatus(
            DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Millis),
        )));
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(PropagateRequestIdLayer::new(crate::request_id::HEADER))
        .layer(SetRequestIdLayer::new(crate::request_id::HEADER, MakeRequestUuid))
        .layer(axum::middleware::map_request(crate::request_id::drop_unusable))
        .with_state(state)
}

/// Whether the database lacks a migration this binary knows (a server started against a
/// database another deployment has not migrated yet, or a failed `credits migrate`). Once
/// current, it stays current (nothing un-migrates a database), so the answer is kept and later
/// probes skip the query.
async fn migrations_pending(state: &HttpState) -> Option<&'static str> {
    use migration::MigratorTrait;
    if state.migrations_current.load(std::sync::atomic::Ordering::Acquire) {
        return None;
    }
    match tokio::time::timeout(HEALTH_DB_TIMEOUT, migration::Migrator::get_pending_migrations(&state.db)).await {
        Ok(Ok(pending)) if pending.is_empty() => {
            state.migrations_current.store(true, std::sync::atomic::Ordering::Release);
            None
        }
        Ok(Ok(pending)) => {
            tracing::error!(pending = pending.len(), "readiness: the database lacks migrations; run `credits migrate`");
            Some("migrations pending")
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "readiness: could not read the applied migrations");
            Some("database unreachable")
        }
        Err(_elapsed) => Some("database unreachable"),
    }
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
    // Verified before any database work: a verifier that fetches its keys never does so inside
    // a transaction.
    let reward = match verifier.verify(query.as_deref().unwrap_or_default()).await {
        Ok(reward) => reward,
        Err(e @ (AdError::Unsigned | AdError::BadSignature | AdError::UnknownKey(_))) => {
            tracing::warn!(error = %e, "ad callback refused");
            return reply(StatusCode::FORBIDDEN, "invalid signature");
        }
        Err(e @ AdError::KeysUnavailable) => {
            // The network retries; nothing can be verified until its keys are fetched.
            tracing::error!(error = %e, "ad callback not verified");
            return reply(StatusCode::SERVICE_UNAVAILABLE, "the verifier keys are unavailable");
        }
        Err(e @ (AdError::Missing(_) | AdError::Malformed(_))) => return reply(StatusCode::BAD_REQUEST, &e.to_string()),
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

/// Stripe's webhook: the signature checked over the raw body before anything else, then the
/// event applied (`service::stripe`). 400 for a bad signature or a body that is not an event
/// (Stripe shows it in the dashboard and changes nothing here); 200 for every verified event,
/// ignored ones and repeats included, so Stripe stops sending it; 500 when our database failed,
/// so Stripe sends it again later.
async fn stripe_webhook(State(state): State<HttpState>, headers: axum::http::HeaderMap, body: axum::body::Bytes) -> impl IntoResponse {
    let reply = |status: StatusCode, message: &str| (status, Json(serde_json::json!({ "status": message })));
    let stripe = &state.ledger.stripe;
    if stripe.webhook_secrets.is_empty() {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "Stripe webhooks are not configured");
    }
    let header = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    // Stripe signs with the wall clock, whatever clock the ledger runs on.
    let tolerance = i64::try_from(stripe.tolerance.as_secs()).unwrap_or(i64::MAX);
    if let Err(e) = crate::stripe::signature::verify(header, &body, &stripe.webhook_secrets, tolerance, chrono::Utc::now().timestamp()) {
        tracing::warn!(error = %e, "stripe webhook refused");
        return reply(StatusCode::BAD_REQUEST, &e.to_string());
    }
    let event = match crate::stripe::events::Event::parse(&body) {
        Ok(event) => event,
        Err(e) => return reply(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if let Err(e) = state.clock.refresh(&state.db).await {
        tracing::warn!(error = %e, "could not read the test clock; this event uses the last instant read");
    }
    match state.ledger.handle_stripe_event(&event, state.clock.now()).await {
        Ok(outcome) => reply(StatusCode::OK, outcome.as_str()),
        Err(e) => {
            tracing::error!(error = ?e, stripe.event = %event.id, "stripe event failed; Stripe will send it again");
            reply(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// The GraphiQL page, for a GET whose `Accept` prefers HTML (`graphql_http::get` decides),
/// served from the binary with its assets (`crate::graphiql`): it works with no network beyond
/// this server. Off in production mode.
pub(crate) async fn graphiql(State(state): State<HttpState>) -> Response {
    if state.security.production {
        return crate::graphiql::off_in_production();
    }
    crate::graphiql::page()
}

/// The process is up and serving: 200, touching nothing else. A liveness probe that checked
/// the database would have an orchestrator restart every server during a database outage, which
/// helps nothing (they recover by themselves once it is back).
async fn livez() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Whether this process should get requests: 200 when the database answers within
/// `HEALTH_DB_TIMEOUT` and has every migration this binary knows, else 503 with the reason.
/// The body also lists this process's own scheduled jobs that are behind
/// (`workers::JobHealth`); they do not change the status, since a job outage is not a reason to
/// stop sending this process requests, and another process's jobs never show here (job lag
/// everywhere is a metric with an alert rule: docs/operations.md).
async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
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
    let database = match database {
        None => migrations_pending(&state).await,
        unreachable => unreachable,
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
    /// `/metrics` on its own listener (`metrics_bind`), if one is set and could be bound.
    metrics: Option<TcpListener>,
    ledger: crate::service::Engine,
    router: Router,
    connections: crate::server::ConnectionSettings,
    schema: CreditsSchema,
    jobs: workers::JobHealth,
    drain: crate::drain::Drain,
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
            drain_timeout: security.shutdown_timeout,
        };
        let metrics = bind_metrics(security.metrics_bind.as_deref()).await;
        let (schema, jobs, ledger, drain) = (state.schema.clone(), state.jobs.clone(), state.ledger.clone(), state.drain.clone());
        Ok(Application { listener, metrics, ledger, router: router(state), connections, schema, jobs, drain })
    }

    /// Where `/metrics` is served on its own listener, if it is.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
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
        let metrics = self.metrics.map(|listener| serve_metrics(listener, self.ledger.clone()));
        let served = crate::server::serve(self.listener, self.router, self.connections, self.drain, shutdown).await;
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        served
    }
}

/// Binds the metrics listener at `address`, if one is set. Not fatal when it cannot be bound:
/// two servers on one host with the default address would otherwise not both start; the second
/// serves no metrics, and says so.
async fn bind_metrics(address: Option<&str>) -> Option<TcpListener> {
    let address = address?;
    crate::telemetry::handle();
    match TcpListener::bind(address).await {
        Ok(listener) => {
            tracing::info!(address = %listener.local_addr().ok()?, "metrics at /metrics");
            Some(listener)
        }
        Err(e) => {
            tracing::error!(address, error = %e, "metrics_bind could not be bound: this process serves no /metrics listener (set metrics_bind per process)");
            None
        }
    }
}

fn serve_metrics(listener: TcpListener, ledger: crate::service::Engine) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let router = Router::new().route("/metrics", get(metrics_on_own_listener)).with_state(ledger);
    tokio::spawn(async move { axum::serve(listener, router).await })
}

/// For a process without the API (`credits worker`): its metrics listener, serving until the
/// handle is aborted.
pub async fn metrics_listener(
    address: Option<&str>,
    ledger: &crate::service::Engine,
) -> Option<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = bind_metrics(address).await?;
    Some(serve_metrics(listener, ledger.clone()))
}

/// The metrics listener's one route: it is bound to loopback (or wherever the operator put it),
/// so it asks for no token.
async fn metrics_on_own_listener(State(ledger): State<crate::service::Engine>) -> Response {
    metrics_text(&ledger).await
}

async fn metrics_text(ledger: &crate::service::Engine) -> Response {
    let body = crate::telemetry::scrape(ledger).await;
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// `/metrics` on the main listener, when `metrics_token` is set: only with that bearer token
/// (compared as SHA-256 digests, so the comparison's time says nothing of the token); else 401.
async fn metrics_with_token(State(state): State<HttpState>, headers: axum::http::HeaderMap) -> Response {
    use sha2::{Digest, Sha256};
    let Some(expected) = state.security.metrics_token.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if Sha256::digest(token.trim().as_bytes()) == Sha256::digest(expected.as_bytes()) => metrics_text(&state.ledger).await,
        _ => (StatusCode::UNAUTHORIZED, [(axum::http::header::WWW_AUTHENTICATE, "Bearer")], "metrics need the metrics token\n")
            .into_response(),
    }
}
