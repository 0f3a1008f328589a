//! The answer to a GET for one of the server's own web files (GraphiQL's at `/graphiql/...`,
//! the portal's at `/portal/...`): its content type, caching, an ETag made from its bytes so a
//! browser revalidates with `If-None-Match` and gets 304 while its copy is current, and
//! `nosniff`. Shared so that both pages answer the same way.

use crate::graphql::error::code;
use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// How long a browser may keep a file without asking again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// A vendored file: its path names the package's version, so the bytes behind a path never
    /// change and a browser keeps them for a year without asking.
    Immutable,
    /// One of this repository's own files, which change with the server: the browser asks each
    /// time and gets 304 while its copy's ETag still matches.
    Revalidate,
}

impl Caching {
    pub fn header_value(self) -> &'static str {
        match self {
            Caching::Immutable => "public, max-age=31536000, immutable",
            Caching::Revalidate => "no-cache",
        }
    }
}

/// The ETag of a file whose sha256 is `digest`: its first 128 bits in hex, quoted.
pub fn etag_of_digest(digest: &[u8]) -> HeaderValue {
    let hex = hex::encode(&digest[..digest.len().min(16)]);
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex digits make a valid header value")
}

/// Whether the request's `If-None-Match` names `etag` (or `*`): the browser's copy is current.
pub fn is_fresh(request: &HeaderMap, etag: &HeaderValue) -> bool {
    request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == "*" || tag.trim() == etag))
}

/// One file to answer with.
pub struct WebFile {
    pub content_type: &'static str,
    pub caching: Caching,
    pub etag: HeaderValue,
    pub bytes: Body,
    /// Headers the file carries besides the common ones (a page's Content-Security-Policy).
    pub extra: &'static [(HeaderName, &'static str)],
}

/// 304 with no body when the browser's copy is current, else the file; both with the caching,
/// the ETag and `nosniff`.
pub fn answer(request: &HeaderMap, file: WebFile) -> Response {
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static(file.caching.header_value())),
        (header::ETAG, file.etag.clone()),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    let mut response = if is_fresh(request, &file.etag) {
        (StatusCode::NOT_MODIFIED, common).into_response()
    } else {
        (common, [(header::CONTENT_TYPE, file.content_type)], file.bytes).into_response()
    };
    for (name, value) in file.extra {
        response.headers_mut().insert(name.clone(), HeaderValue::from_static(value));
    }
    response
}

/// 404 in GraphQL's error shape, like every other refusal of this server.
pub fn not_found(message: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code::NOT_FOUND } }] });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_are_read_tag_by_tag() {
        let etag = HeaderValue::from_static("\"abc\"");
        let mut headers = HeaderMap::new();
        assert!(!is_fresh(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"x\", \"abc\""));
        assert!(is_fresh(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"abcd\""));
        assert!(!is_fresh(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(is_fresh(&headers, &etag));
    }

    #[test]
    fn the_etag_is_the_first_half_of_the_digest_in_hex() {
        assert_eq!(etag_of_digest(&[0xab; 32]), HeaderValue::from_static("\"abababababababababababababababab\""));
    }
}
