//! Rules for the operations sent over one WebSocket connection. HTTP checks the token on every
//! request and answers one request at a time per connection; a WebSocket authenticates once, at
//! `connection_init`, and then carries any number of operations for as long as it stays open.
//! So each connection carries a [`Session`] (in its connection data), and [`SessionLimits`]
//! applies it to every operation the connection starts:
//!
//! - at most `max_open` operations open at once (subscriptions, and queries or mutations still
//!   running); the next is refused with `LIMIT_EXCEEDED` until one ends;
//! - nothing outlives the token: an operation started after it expired is refused, and a
//!   subscription ends at the instant it expires, with `UNAUTHENTICATED`. A query or mutation
//!   already running then is left to finish (the request timeout bounds it): cutting it short
//!   would leave its outcome unknown for no gain.

use crate::graphql::error::{code, server_error};
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextSubscribe};
use async_graphql::futures_util::stream::{self, BoxStream, StreamExt};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerResult, Variables};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One WebSocket connection's limits, attached at `connection_init`.
pub struct Session {
    open: Arc<AtomicUsize>,
    max_open: usize,
    /// When the connection's token expires (Unix seconds); none when it brought no valid token
    /// (its operations are refused by the resolvers anyway).
    expires_at: Option<i64>,
}

impl Session {
    pub fn new(max_open: usize, expires_at: Option<i64>) -> Session {
        Session { open: Arc::new(AtomicUsize::new(0)), max_open, expires_at }
    }

    /// A place for one more operation, given back when the slot is dropped.
    fn open(&self) -> Option<Slot> {
        self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| (open < self.max_open).then_some(open + 1)).ok()?;
        metrics::gauge!(crate::telemetry::WEBSOCKET_OPERATIONS_OPEN).increment(1.0);
        Some(Slot(self.open.clone()))
    }
}

struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::gauge!(crate::telemetry::WEBSOCKET_OPERATIONS_OPEN).decrement(1.0);
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Applies the connection's [`Session`] to each operation; a request without one (HTTP) passes.
pub struct SessionLimits;

impl ExtensionFactory for SessionLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SessionLimitsExtension { operation_name: Mutex::new(None), runs_to_end: Arc::new(AtomicBool::new(false)) })
    }
}

/// One per operation: the library creates the extensions anew for each request.
struct SessionLimitsExtension {
    operation_name: Mutex<Option<String>>,
    /// Set once the document is parsed and the operation is a query or a mutation. (The
    /// library's `execute` hook cannot tell: it also runs for each event of a subscription.)
    runs_to_end: Arc<AtomicBool>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for SessionLimitsExtension {
    async fn prepare_request(&self, ctx: &ExtensionContext<'_>, request: Request, next: NextPrepareRequest<'_>) -> ServerResult<Request> {
        *self.operation_name.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let name = self.operation_name.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let kind = match (&document.operations, name) {
            (DocumentOperations::Single(operation), _) => Some(operation.node.ty),
            (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name.as_str()).map(|operation| operation.node.ty),
            (DocumentOperations::Multiple(operations), None) => {
                operations.values().next().filter(|_| operations.len() == 1).map(|operation| operation.node.ty)
            }
        };
        if matches!(kind, Some(OperationType::Query | OperationType::Mutation)) {
            self.runs_to_end.store(true, Ordering::Release);
        }
        Ok(document)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let Some(session) = ctx.data_opt::<Session>() else {
            return next.run(ctx, stream);
        };
        let Some(slot) = session.open() else {
            tracing::info!(max = session.max_open, "WebSocket operation refused: too many open on the connection");
            let message = format!("at most {} operations may be open at once on one connection; complete one first", session.max_open);
            return stream::once(async move { Response::from_errors(vec![server_error(message, code::LIMIT_EXCEEDED)]) }).boxed();
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        if session.expires_at.is_some_and(|expires_at| expires_at.saturating_mul(1000) <= now_ms) {
            return stream::once(async move { Response::from_errors(vec![expired()]) }).boxed();
        }
        let stream = next.run(ctx, stream);
        let deadline = session.expires_at.map(|expires_at| {
            let left = expires_at.saturating_mul(1000).saturating_sub(now_ms);
            Box::pin(tokio::time::sleep(Duration::from_millis(u64::try_from(left).unwrap_or(0))))
        });
        // The slot lives as long as the stream: until the operation completes, the client
        // completes it, or the connection closes.
        let state = Guarded { stream, deadline, runs_to_end: self.runs_to_end.clone(), ended: false, _slot: slot };
        stream::unfold(state, |mut state| async move {
            if state.ended {
                return None;
            }
            loop {
                let Some(deadline) = state.deadline.as_mut() else {
                    return state.stream.next().await.map(|response| (response, state));
                };
                tokio::select! {
                    response = state.stream.next() => return response.map(|response| (response, state)),
                    () = deadline => {
                        if state.runs_to_end.load(Ordering::Acquire) {
                            // A query or mutation sent while the token was valid finishes.
                            state.deadline = None;
                            continue;
                        }
                        state.ended = true;
                        return Some((Response::from_errors(vec![expired()]), state));
                    }
                }
            }
        })
        .boxed()
    }
}

fn expired() -> async_graphql::ServerError {
    server_error("the token has expired: connect again with a fresh one", code::UNAUTHENTICATED)
}

struct Guarded<'s> {
    stream: BoxStream<'s, Response>,
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    runs_to_end: Arc<AtomicBool>,
    ended: bool,
    _slot: Slot,
}
