//! What the HTTP transport needs from an execution, found where the library knows it: the
//! operation a request selects is only known once its document is parsed (for a persisted query,
//! once the document is found), and whether a request got as far as executing is only known to
//! the execution hooks.
//!
//! - A request error (the document did not parse or validate, the variables did not fit, the
//!   operation is not allowed here) never reaches `execute`. GraphQL over HTTP answers it with a
//!   4xx and no `data` for `application/graphql-response+json`; an execution that ended in
//!   errors keeps its `data` (even `null`) and its 200.
//! - GET runs queries only: a mutation named by a GET is refused before it runs (the transport
//!   answers 405), wherever its document came from.
//! - Subscriptions are served over the WebSocket only; over HTTP they are refused with a code
//!   instead of the library's uncoded execution error.
//!
//! Requests over the WebSocket carry no [`OverHttp`], and pass untouched.

use crate::graphql::error::{code, server_error};
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerResult, Variables};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Attached by the HTTP transport to each request it runs (one per request of a batch), and read
/// back once the request is answered.
#[derive(Debug, Default)]
pub struct OverHttp {
    /// A GET: queries only.
    read_only: bool,
    executed: AtomicBool,
    refused_mutation: AtomicBool,
}

impl OverHttp {
    pub fn new(read_only: bool) -> Arc<OverHttp> {
        Arc::new(OverHttp { read_only, ..OverHttp::default() })
    }

    /// Whether the request got as far as executing its operation: if not, and it has errors,
    /// they are request errors.
    pub fn executed(&self) -> bool {
        self.executed.load(Ordering::Acquire)
    }

    /// Whether it was a mutation sent with GET, refused before it ran.
    pub fn refused_mutation(&self) -> bool {
        self.refused_mutation.load(Ordering::Acquire)
    }
}

/// The operation a document runs for a request naming `operation_name`; none when the name
/// matches nothing or a name is needed and missing (the library refuses those).
pub fn selected_operation(document: &ExecutableDocument, operation_name: Option<&str>) -> Option<OperationType> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => Some(operation.node.ty),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name).map(|operation| operation.node.ty),
        (DocumentOperations::Multiple(operations), None) => {
            operations.values().next().filter(|_| operations.len() == 1).map(|operation| operation.node.ty)
        }
    }
}

/// Applies [`OverHttp`] to each request that carries one.
pub struct HttpRules;

impl ExtensionFactory for HttpRules {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(HttpRulesExtension { operation_name: Mutex::new(None) })
    }
}

/// One per request: the library creates the extensions anew for each.
struct HttpRulesExtension {
    operation_name: Mutex<Option<String>>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for HttpRulesExtension {
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
        // Parsed (and measured by the document limits) first: only a document that parses has
        // an operation to judge.
        let document = next.run(ctx, query, variables).await?;
        let Some(http) = ctx.data_opt::<Arc<OverHttp>>() else { return Ok(document) };
        let name = self.operation_name.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        match selected_operation(&document, name.as_deref()) {
            Some(OperationType::Subscription) => Err(server_error(
                "subscriptions are not served over HTTP: subscribe over the WebSocket at /graphql/ws (graphql-transport-ws)",
                code::BAD_USER_INPUT,
            )),
            Some(OperationType::Mutation) if http.read_only => {
                http.refused_mutation.store(true, Ordering::Release);
                Err(server_error("a mutation cannot be sent with GET: send it with POST", code::BAD_USER_INPUT))
            }
            _ => Ok(document),
        }
    }

    async fn execute(&self, ctx: &ExtensionContext<'_>, operation_name: Option<&str>, next: NextExecute<'_>) -> Response {
        if let Some(http) = ctx.data_opt::<Arc<OverHttp>>() {
            http.executed.store(true, Ordering::Release);
        }
        next.run(ctx, operation_name).await
    }
}
