//! The request timeout, applied where the operation runs, so that it holds on every transport:
//! HTTP also bounds the whole request (parse and validation included) in `http.rs`, but an
//! operation sent over the WebSocket has no request around it.

use crate::graphql::error::{code, server_error};
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::{Response, ServerError};
use std::sync::Arc;
use std::time::Duration;

/// How long a test clock's advance may take (`advanceClock`): it runs every job at every
/// midnight it crosses, up to 400 days of them, and answers when that is done.
pub const ADVANCE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Marks a request that advances a test clock (`http.rs` attaches it on a test-clock
/// deployment only): it gets `ADVANCE_TIMEOUT` instead of the request timeout.
#[derive(Debug, Clone, Copy)]
pub struct Unhurried;

/// The timeout of a request: `ADVANCE_TIMEOUT` for one that advances a test clock.
pub fn timeout_for(configured: Duration, unhurried: bool) -> Duration {
    if unhurried { configured.max(ADVANCE_TIMEOUT) } else { configured }
}

/// What a client is told when its operation was stopped: the same over every transport.
pub fn timeout_error() -> ServerError {
    server_error(
        "the request took too long and was stopped before its answer: a mutation may or may not have completed; \
         retry it with the same idempotency key to get its outcome",
        code::TIMEOUT,
    )
}

/// Stops a query or mutation that runs longer than `timeout`. The execution is dropped, and with
/// it any open transaction, which rolls back; a spend still waiting for its batch is cancelled.
/// One already inside a committing batch completes, so the answer does not claim that nothing
/// changed. A subscription stays open as long as it likes; the library runs each of its events
/// through this hook too, so producing one event is bounded alike.
pub struct RequestTimeout {
    pub timeout: Duration,
}

impl ExtensionFactory for RequestTimeout {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestTimeout { timeout: self.timeout })
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for RequestTimeout {
    async fn execute(&self, ctx: &ExtensionContext<'_>, operation_name: Option<&str>, next: NextExecute<'_>) -> Response {
        let timeout = timeout_for(self.timeout, ctx.data_opt::<Unhurried>().is_some());
        match tokio::time::timeout(timeout, next.run(ctx, operation_name)).await {
            Ok(response) => response,
            Err(_elapsed) => {
                tracing::warn!(timeout_ms = timeout.as_millis() as u64, "operation timed out");
                Response::from_errors(vec![timeout_error()])
            }
        }
    }
}
