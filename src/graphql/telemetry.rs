//! Request metrics (`crate::telemetry`): each root field of a query or mutation is counted by its
//! schema name and outcome code, and timed. The name is the schema's, never the client's
//! operation name, so the series are bounded by the schema. A request refused before any field
//! ran (unparsable, invalid, over a limit) counts once under the field `(request)`.
//!
//! Each root field also runs in a `graphql.field` span (`crate::traces`), named the same way:
//! the field's schema name is an attribute, the span's name is fixed, and neither the client's
//! operation name nor its arguments or variables are recorded.

use crate::graphql::error::code;
use crate::telemetry::{GRAPHQL_DURATION, GRAPHQL_REQUESTS};
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest, NextResolve, ResolveInfo};
use async_graphql::{Response, ServerError, ServerResult, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Instrument;

pub struct RequestMetrics;

impl ExtensionFactory for RequestMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestMetricsExtension { resolved_a_root: AtomicBool::new(false) })
    }
}

struct RequestMetricsExtension {
    resolved_a_root: AtomicBool,
}

/// The code an error answers with: its own, or the one `ErrorCodes` will stamp on it.
fn code_of(error: &ServerError) -> String {
    match error.extensions.as_ref().and_then(|e| e.get("code")) {
        Some(Value::String(code)) => code.clone(),
        _ => code::BAD_USER_INPUT.to_string(),
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for RequestMetricsExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let response = next.run(ctx).await;
        if !self.resolved_a_root.load(Ordering::Acquire)
            && let Some(error) = response.errors.first()
        {
            metrics::counter!(GRAPHQL_REQUESTS, "field" => "(request)", "code" => code_of(error)).increment(1);
        }
        response
    }

    async fn resolve(&self, ctx: &ExtensionContext<'_>, info: ResolveInfo<'_>, next: NextResolve<'_>) -> ServerResult<Option<Value>> {
        // Every field of every request passes here: only root fields are measured.
        if info.path_node.parent.is_some() || info.is_for_introspection {
            return next.run(ctx, info).await;
        }
        self.resolved_a_root.store(true, Ordering::Release);
        let field = info.name.to_string();
        let span = tracing::info_span!(
            "graphql.field",
            graphql.field.name = %field,
            graphql.operation.type = operation_type(info.parent_type),
            graphql.outcome = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let resolved = next.run(ctx, info).instrument(span.clone()).await;
        let outcome = match &resolved {
            Ok(_) => "OK".to_string(),
            Err(error) => code_of(error),
        };
        span.record("graphql.outcome", outcome.as_str());
        if outcome == code::INTERNAL {
            span.record("otel.status_code", "ERROR");
        }
        metrics::histogram!(GRAPHQL_DURATION, "field" => field.clone()).record(started.elapsed().as_secs_f64());
        metrics::counter!(GRAPHQL_REQUESTS, "field" => field, "code" => outcome).increment(1);
        resolved
    }
}

/// The kind of operation a root field belongs to, from its parent type's name: a closed set.
fn operation_type(root: &str) -> &'static str {
    match root {
        "MutationRoot" => "mutation",
        "SubscriptionRoot" => "subscription",
        _ => "query",
    }
}
