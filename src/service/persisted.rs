//! Persisted queries: GraphQL documents stored under the SHA-256 of their text, so a client can
//! send the hash instead of the text (Apollo's automatic persisted queries, APQ), and so a
//! production deployment can run only the documents its operator allowed (`persisted_only`).
//!
//! A document has an origin: learned from a client through APQ, registered by the operator
//! (`credits persisted add`), or registered by the server's own pages at start. With
//! `persisted_only` off, any stored document runs by its hash and APQ learns new ones. With it
//! on, only the operator's and the server's documents run, by hash or as full text, and APQ
//! learns nothing: an APQ-learned row is then as good as absent.
//!
//! The rows live in the database, so every process of a fleet runs a hash any of them learned.
//! Each process keeps the documents it has found in memory (they never change: the key is the
//! hash of the text); a miss always asks the database, since another process may have learned
//! the hash since.

use crate::service::ServiceError;
use crate::store::persisted_queries as store;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Documents kept in memory per process; past it the cache starts over (a miss costs one
/// primary-key read).
pub const MAX_CACHED: usize = 10_000;

/// The largest document registered (bytes): far above any real operation, far below what
/// would make the table a file store.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Where a stored document came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Sent by a client with its hash (APQ).
    Apq,
    /// Registered by the operator (`credits persisted add`).
    Operator,
    /// Registered at start by the server's own pages (GraphiQL, the portal, the console).
    Server,
}

impl Origin {
    pub const ALL: [Origin; 3] = [Origin::Apq, Origin::Operator, Origin::Server];

    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Apq => "apq",
            Origin::Operator => "operator",
            Origin::Server => "server",
        }
    }

    fn parse(text: &str) -> Option<Origin> {
        Origin::ALL.into_iter().find(|o| o.as_str() == text)
    }

    /// Whether `persisted_only` runs a document of this origin: the allow-list is what the
    /// operator and the server itself registered, never what clients taught it.
    pub fn allowed_when_persisted_only(self) -> bool {
        !matches!(self, Origin::Apq)
    }
}

/// The key of a document: lowercase hex SHA-256 of its exact text, as Apollo clients compute it.
pub fn hash_of(document: &str) -> String {
    hex::encode(Sha256::digest(document.as_bytes()))
}

/// A hash as a client sends it: 64 hex digits, in either case; lowercased.
pub fn parse_hash(text: &str) -> Result<String, ServiceError> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(ServiceError::bad_input("persistedQuery.sha256Hash must be 64 hexadecimal digits"))
    }
}

/// A stored document, as `credits persisted list` shows it.
#[derive(Debug, Clone)]
pub struct Persisted {
    pub hash: String,
    pub document: String,
    pub origin: Origin,
    pub created_at: DateTime<Utc>,
}

/// The persisted documents as one process sees them: the database, a cache in front, and the mode.
pub struct PersistedDocuments {
    db: DatabaseConnection,
    persisted_only: bool,
    cache: Mutex<HashMap<String, (Arc<str>, Origin)>>,
}

impl PersistedDocuments {
    pub fn new(db: DatabaseConnection, persisted_only: bool) -> Arc<PersistedDocuments> {
        Arc::new(PersistedDocuments { db, persisted_only, cache: Mutex::new(HashMap::new()) })
    }

    pub fn persisted_only(&self) -> bool {
        self.persisted_only
    }

    /// The document a hash-only request runs; none when the hash is unknown, or known only
    /// through APQ while `persisted_only` is on.
    pub async fn runnable(&self, hash: &str) -> Result<Option<Arc<str>>, ServiceError> {
        Ok(self.find(hash).await?.map(|(document, _)| document))
    }

    /// Whether a request carrying the full text of the document with this hash may run: always
    /// with `persisted_only` off, else only if the operator or the server registered it.
    pub async fn allows(&self, hash: &str) -> Result<bool, ServiceError> {
        if !self.persisted_only {
            return Ok(true);
        }
        Ok(self.find(hash).await?.is_some())
    }

    /// Stores a document a client sent with its hash (already checked to match), so later
    /// requests may send the hash alone. Nothing is learned with `persisted_only` on.
    pub async fn learn(&self, hash: &str, document: &str) -> Result<(), ServiceError> {
        if self.persisted_only || self.cached(hash).is_some() {
            return Ok(());
        }
        if store::insert_if_absent(&self.db, hash, document, Origin::Apq.as_str(), Utc::now()).await? {
            tracing::debug!(persisted.hash = hash, "persisted query learned");
        }
        self.remember(hash, document.into(), Origin::Apq);
        Ok(())
    }

    /// A usable document under the mode: from the cache, else from the database.
    async fn find(&self, hash: &str) -> Result<Option<(Arc<str>, Origin)>, ServiceError> {
        let usable = |origin: Origin| !self.persisted_only || origin.allowed_when_persisted_only();
        // A cached APQ row under `persisted_only` is not usable, but the operator may have
        // registered the same text since: ask the database.
        if let Some((document, origin)) = self.cached(hash)
            && usable(origin)
        {
            return Ok(Some((document, origin)));
        }
        let Some(row) = store::find(&self.db, hash).await? else { return Ok(None) };
        let origin = Origin::parse(&row.origin)
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("persisted query {hash} has an unknown origin {:?}", row.origin)))?;
        let document: Arc<str> = row.document.into();
        self.remember(hash, document.clone(), origin);
        Ok(usable(origin).then_some((document, origin)))
    }

    fn cached(&self, hash: &str) -> Option<(Arc<str>, Origin)> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(hash).cloned()
    }

    fn remember(&self, hash: &str, document: Arc<str>, origin: Origin) {
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= MAX_CACHED && !cache.contains_key(hash) {
            cache.clear();
        }
        cache.insert(hash.to_string(), (document, origin));
    }
}

/// Registers a document as the operator's or the server's and returns its hash. The text is
/// stored exactly as given (its hash is of those bytes); it must parse as GraphQL, with one
/// operation or several. A document already learned through APQ takes the new origin;
/// registering the same text again changes nothing.
pub async fn register(conn: &impl ConnectionTrait, document: &str, origin: Origin) -> Result<String, ServiceError> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(ServiceError::bad_input(format!("a document may hold at most {MAX_DOCUMENT_BYTES} bytes")));
    }
    let parsed =
        async_graphql::parser::parse_query(document).map_err(|e| ServiceError::bad_input(format!("not a GraphQL document: {e}")))?;
    if parsed.operations.iter().next().is_none() {
        return Err(ServiceError::bad_input("the document has no operation"));
    }
    let hash = hash_of(document);
    if !store::insert_if_absent(conn, &hash, document, origin.as_str(), Utc::now()).await? && origin != Origin::Apq {
        store::change_origin(conn, &hash, Origin::Apq.as_str(), origin.as_str()).await?;
    }
    Ok(hash)
}

/// Registers the documents of the server's own pages, at start, so `persisted_only` never
/// breaks them. A page (the portal, the console) adds its documents to the list `app::build`
/// passes here.
pub async fn register_server_documents(conn: &impl ConnectionTrait, documents: &[&str]) -> Result<Vec<String>, ServiceError> {
    let mut hashes = Vec::with_capacity(documents.len());
    for document in documents {
        hashes.push(register(conn, document, Origin::Server).await?);
    }
    Ok(hashes)
}

/// Every stored document, oldest first; APQ-learned ones only if `with_apq`.
pub async fn list(conn: &impl ConnectionTrait, with_apq: bool) -> Result<Vec<Persisted>, ServiceError> {
    let origins: Vec<&str> = Origin::ALL.into_iter().filter(|o| with_apq || *o != Origin::Apq).map(Origin::as_str).collect();
    store::list(conn, &origins)
        .await?
        .into_iter()
        .map(|row| {
            let origin = Origin::parse(&row.origin)
                .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("persisted query {} has an unknown origin", row.hash)))?;
            Ok(Persisted { hash: row.hash, document: row.document, origin, created_at: row.created_at })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_apollos() {
        // Apollo's own example: sha256("{__typename}").
        assert_eq!(hash_of("{__typename}"), "ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38");
    }

    #[test]
    fn hashes_are_64_hex_digits() {
        let upper = "ECF4EDB46DB40B5132295C0291D62FB65D6759A9EEDFA4D5D612DD5EC54A6B38";
        assert_eq!(parse_hash(upper).unwrap(), upper.to_ascii_lowercase());
        assert!(parse_hash("abc").is_err());
        assert!(parse_hash(&"g".repeat(64)).is_err());
    }

    #[test]
    fn only_apq_documents_are_left_out_of_the_allow_list() {
        assert!(!Origin::Apq.allowed_when_persisted_only());
        assert!(Origin::Operator.allowed_when_persisted_only());
        assert!(Origin::Server.allowed_when_persisted_only());
        for origin in Origin::ALL {
            assert_eq!(Origin::parse(origin.as_str()), Some(origin));
        }
    }
}
