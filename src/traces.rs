//! Traces over OTLP/HTTP (issue 24), off unless an endpoint is configured (`otlp_endpoint`, or
//! the standard `OTEL_EXPORTER_OTLP_ENDPOINT`).
//!
//! The spans are `tracing` spans, written where the work happens; this module only turns them
//! into OpenTelemetry spans (`tracing-opentelemetry`) and sends them in batches, as protobuf over
//! HTTP, to `{endpoint}/v1/traces` (a collector's OTLP/HTTP receiver). HTTP rather than gRPC
//! keeps tonic's transport and h2 out of the build; the HTTP client is the reqwest the service
//! already has.
//!
//! The spans, their names and attribute keys are a closed set (docs/operations.md, "Traces"):
//! - `http.request` (`crate::request_id::span_for`): one per HTTP request, with `request_id`,
//!   so a trace and the request's log lines join on it;
//! - `graphql.field` (`crate::graphql::telemetry`): one per root field resolved;
//! - `db.transaction` (`crate::service::tx`): one per write transaction, with its attempts;
//! - `job.run` (`Engine::run_job_bounded`): one per job run, with its items and outcome.
//!
//! A span's name is never something a client chose (an operation name): that would grow the
//! collector's index without bound. Spans carry no variables, tokens or secrets.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::Duration;
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;

/// The `service.name` of the spans unless `OTEL_SERVICE_NAME` says otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "credits";

/// Where OTLP/HTTP receivers take traces, under the endpoint (the OTLP specification's path).
pub const TRACES_PATH: &str = "/v1/traces";

/// How long one export may take before it is abandoned: a collector that hangs must not hold
/// the shutdown of the service for long.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a shutdown waits for the last spans to be sent.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    #[error("otlp_endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("cannot build the OTLP/HTTP span exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("the last spans could not be sent: {0}")]
    Shutdown(#[from] opentelemetry_sdk::error::OTelSdkError),
}

/// Where traces go: `{base}/v1/traces`, with `base` an `http://` or `https://` URL with a host
/// and nothing after its path (`http://127.0.0.1:4318`, `https://otel.internal/otlp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracesEndpoint {
    traces_url: url::Url,
}

impl TracesEndpoint {
    /// Checks an OTLP/HTTP base URL, as `otlp_endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT`) gives it.
    pub fn parse(base: &str) -> Result<TracesEndpoint, TracesError> {
        let refuse = |reason: &str| TracesError::Endpoint { endpoint: base.to_string(), reason: reason.to_string() };
        let parsed = url::Url::parse(base.trim()).map_err(|e| refuse(&format!("not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(refuse("an http:// or https:// URL, such as http://127.0.0.1:4318"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(refuse("a URL with a host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(refuse("the base URL, without a query or fragment: traces go to its /v1/traces"));
        }
        let path = parsed.path().trim_end_matches('/');
        let mut traces_url = parsed.clone();
        traces_url.set_path(&format!("{path}{TRACES_PATH}"));
        Ok(TracesEndpoint { traces_url })
    }

    /// The URL spans are POSTed to.
    pub fn traces_url(&self) -> &url::Url {
        &self.traces_url
    }

    /// The URL for a log line: without a user or password, should the URL hold one.
    pub fn shown(&self) -> String {
        let mut shown = self.traces_url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        shown.to_string()
    }
}

/// The exporting side of tracing in this process: flushed and stopped by `shutdown`.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// A batch exporter to `endpoint` and the layer that feeds it; nothing is sent until a span
    /// ends. Call outside an async context (reqwest's blocking client runs its own runtime).
    pub fn start<S>(
        endpoint: &TracesEndpoint,
    ) -> Result<(Traces, tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>), TracesError>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.traces_url().as_str())
            .with_timeout(EXPORT_TIMEOUT)
            .build()?;
        let service_name = std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(service_name)
            .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        // The batch processor sends from a thread of its own: a request never waits on the
        // collector, and a full queue drops spans rather than memory growing.
        let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
        let tracer = provider.tracer("credits");
        // No source locations: an event from a dependency would send this host's registry path.
        let layer = tracing_opentelemetry::layer().with_tracer(tracer).with_threads(false).with_location(false);
        Ok((Traces { provider }, layer))
    }

    /// Sends the spans still queued and stops the exporter; call once, on the way out, outside
    /// an async context.
    pub fn shutdown(self) -> Result<(), TracesError> {
        self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::TracesEndpoint;

    #[test]
    fn the_traces_path_goes_under_the_base() {
        let url = |base: &str| TracesEndpoint::parse(base).unwrap().traces_url().to_string();
        assert_eq!(url("http://127.0.0.1:4318"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(url("http://127.0.0.1:4318/"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(url("https://otel.internal/otlp/"), "https://otel.internal/otlp/v1/traces");
    }

    #[test]
    fn malformed_endpoints_are_refused() {
        for bad in ["", "127.0.0.1:4318", "localhost", "grpc://collector:4317", "http://", "http://h:4318/?x=1", "file:///tmp/x"] {
            assert!(TracesEndpoint::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_password_is_not_shown() {
        let endpoint = TracesEndpoint::parse("https://user:hunter2@otel.internal").unwrap();
        assert!(!endpoint.shown().contains("hunter2"), "{}", endpoint.shown());
    }
}
