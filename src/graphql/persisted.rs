//! Persisted queries on every transport (HTTP POST and GET, the WebSocket): an extension, so it
//! sees each request's `extensions.persistedQuery` however the request arrived. The rules are
//! in `service::persisted`; this is Apollo's protocol around them:
//!
//! - `{version: 1, sha256Hash}` without a query: the stored document runs; an unknown hash is
//!   `PERSISTED_QUERY_NOT_FOUND` with the message `PersistedQueryNotFound`, on which Apollo
//!   clients resend the query with its hash.
//! - the query with its hash: the hash must be the query's (else `BAD_USER_INPUT`); once the
//!   document passes validation it is stored, so a document that cannot run is never learned.
//! - with `persisted_only` on, a document runs only if the operator or the server registered
//!   it, whether it comes as a hash or as text; anything else is `PERSISTED_QUERY_NOT_ALLOWED`
//!   (a hash-only request for an unknown hash stays `PERSISTED_QUERY_NOT_FOUND`, so that an
//!   Apollo client falls back to the text and then learns why).
//!
//! async-graphql's own `ApolloPersistedQueries` does not fit: its errors carry no code, it has
//! no allow-list, and it hands the library a parsed document, which would skip the checks that
//! `graphql::limits` makes on the text. Here the stored text becomes the request's query, so a
//! persisted document meets every limit a sent one does.

use crate::graphql::error::ApiError;
use crate::service::ServiceError;
use crate::service::persisted::{PersistedDocuments, hash_of, parse_hash};
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation};
use async_graphql::{Request, ServerError, ServerResult, ValidationResult};
use std::sync::{Arc, Mutex};

pub struct PersistedQueries {
    pub documents: Arc<PersistedDocuments>,
}

impl ExtensionFactory for PersistedQueries {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PersistedQueriesExtension { documents: self.documents.clone(), to_learn: Mutex::new(None) })
    }
}

/// One per request.
struct PersistedQueriesExtension {
    documents: Arc<PersistedDocuments>,
    /// The hash and text of a document sent with its hash, stored once it validates.
    to_learn: Mutex<Option<(String, String)>>,
}

/// `extensions.persistedQuery` as Apollo clients send it.
#[derive(serde::Deserialize)]
struct PersistedQuery {
    version: i32,
    #[serde(rename = "sha256Hash")]
    sha256_hash: String,
}

fn refuse(error: ApiError) -> ServerError {
    error.into_request_error()
}

fn bad_input(message: &str) -> ServerError {
    refuse(ServiceError::bad_input(message).into())
}

impl PersistedQueriesExtension {
    /// The request as it will run: its query the stored text if it came as a hash.
    async fn resolve(&self, mut request: Request) -> ServerResult<Request> {
        let Some(extension) = request.extensions.remove("persistedQuery") else {
            // A plain request: under `persisted_only`, its text must be registered.
            if self.documents.persisted_only() && !self.documents.allows(&hash_of(&request.query)).await.map_err(service)? {
                return Err(refuse(ApiError::PersistedQueryNotAllowed));
            }
            return Ok(request);
        };
        let persisted: PersistedQuery = async_graphql::from_value(extension)
            .map_err(|_| bad_input("extensions.persistedQuery must be {\"version\": 1, \"sha256Hash\": \"<64 hex digits>\"}"))?;
        if persisted.version != 1 {
            return Err(bad_input("only version 1 of persisted queries is supported"));
        }
        let hash = parse_hash(&persisted.sha256_hash).map_err(service)?;
        if request.query.is_empty() {
            let Some(document) = self.documents.runnable(&hash).await.map_err(service)? else {
                tracing::debug!(persisted.hash = %hash, "persisted query not found");
                return Err(refuse(ApiError::PersistedQueryNotFound));
            };
            request.query = document.to_string();
            return Ok(request);
        }
        if hash_of(&request.query) != hash {
            return Err(bad_input("persistedQuery.sha256Hash is not the SHA-256 of the query"));
        }
        if self.documents.persisted_only() {
            if !self.documents.allows(&hash).await.map_err(service)? {
                return Err(refuse(ApiError::PersistedQueryNotAllowed));
            }
        } else {
            *self.to_learn.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((hash, request.query.clone()));
        }
        Ok(request)
    }
}

fn service(error: ServiceError) -> ServerError {
    refuse(error.into())
}

#[async_graphql::async_trait::async_trait]
impl Extension for PersistedQueriesExtension {
    async fn prepare_request(&self, ctx: &ExtensionContext<'_>, request: Request, next: NextPrepareRequest<'_>) -> ServerResult<Request> {
        let request = self.resolve(request).await?;
        next.run(ctx, request).await
    }

    async fn validation(&self, ctx: &ExtensionContext<'_>, next: NextValidation<'_>) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let learn = self.to_learn.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some((hash, document)) = learn {
            // The operation still runs if the store fails: the client sent the whole text, and
            // its next hash-only request gets PERSISTED_QUERY_NOT_FOUND and resends it.
            if let Err(e) = self.documents.learn(&hash, &document).await {
                tracing::warn!(persisted.hash = %hash, error = ?e, "could not store a persisted query");
            }
        }
        Ok(result)
    }
}
