//! The answer to a GET for one of the server's own web files (GraphiQL's at `/graphiql/...`,
//! the portal's at `/portal/...`, the console's at `/console/...`): its content type, caching,
//! an ETag made from its bytes so a browser revalidates with `If-None-Match` and gets 304 while
//! its copy is current, and `nosniff`. Shared so that every page answers the same way; the
//! portal and the console also share the strict Content-Security-Policy and the rules for which
//! embedded file a path may name (`embedded_page_file`).

use crate::graphql::error::code;
use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;

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

/// Only this server's scripts, styles, images and connections (the WebSocket included: CSP
/// level 3 counts a same-host `ws:`/`wss:` URL as 'self'); no inline script or style, no
/// `<base>`, no form posts, and no framing by another site (clickjacking a refund button).
/// The portal's and the console's pages are both served with it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Sent with every portal and console file: the policy, and no `Referer` to anything the page
/// links to.
pub static PAGE_HEADERS: &[(HeaderName, &str)] =
    &[(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY), (header::REFERRER_POLICY, "no-referrer")];

/// The content type of a page's file by its extension; a file of any other kind is not served,
/// so nothing reaches a browser with a guessed type.
pub fn content_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "graphql" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => return None,
    })
}

/// A path under a page's prefix that names a file inside its folder: relative, no `..`, no
/// backslash, no hidden files.
pub fn is_plain(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && path.split('/').all(|part| !part.is_empty() && !part.starts_with('.'))
}

/// One file of an embedded page (the portal's `web/portal/`, the console's `web/console/`):
/// served with the page's policy and revalidated caching, or 404 in GraphQL's error shape when
/// the path is not plain, of an unknown kind, or not in the folder. `what` names the page in
/// the 404's message.
pub fn embedded_page_file<Files: rust_embed::RustEmbed>(path: &str, request: &HeaderMap, what: &str) -> Response {
    let (Some(content_type), true) = (content_type(path), is_plain(path)) else {
        return not_found(&format!("no such {what} file"));
    };
    let Some(file) = Files::get(path) else {
        return not_found(&format!("no such {what} file"));
    };
    let bytes: Cow<'static, [u8]> = file.data;
    answer(
        request,
        WebFile {
            content_type,
            caching: Caching::Revalidate,
            etag: etag_of_digest(&file.metadata.sha256_hash()),
            bytes: bytes.into_owned().into(),
            extra: PAGE_HEADERS,
        },
    )
}

/// The scripts of an embedded page hold no way to turn text into markup, and its `index.html`
/// no inline script or style: what the policy forbids, checked before a browser would refuse
/// it. Returns the first offence found, for a unit test to show.
pub fn markup_offence<Files: rust_embed::RustEmbed>(folder: &str) -> Option<String> {
    let index = String::from_utf8(Files::get("index.html")?.data.into_owned()).ok()?;
    if index.contains("style=\"") || index.contains("<style") {
        return Some(format!("an inline style in {folder}/index.html"));
    }
    for (at, _) in index.match_indices("<script") {
        let tag = &index[at..at + index[at..].find('>').unwrap_or(index.len() - at)];
        if !tag.contains(" src=\"") {
            return Some(format!("an inline script in {folder}/index.html: {tag}"));
        }
    }
    for path in Files::iter().filter(|path| path.ends_with(".js")) {
        let text = String::from_utf8(Files::get(&path)?.data.into_owned()).ok()?;
        for forbidden in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
            if text.contains(forbidden) {
                return Some(format!("{folder}/{path} uses {forbidden}"));
            }
        }
    }
    None
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
    fn only_plain_paths_of_known_kinds_are_served() {
        for path in ["index.html", "js/app.js", "js/pages/overview.js", "style.css", "portal.graphql"] {
            assert!(is_plain(path) && content_type(path).is_some(), "{path}");
        }
        for path in ["../Cargo.toml", "js/../../src/main.rs", "/etc/passwd", ".hidden.js", "js//app.js", "a\\b.js", ""] {
            assert!(!is_plain(path), "{path}");
        }
        assert_eq!(content_type("notes.md"), None);
        assert_eq!(content_type("noextension"), None);
    }

    #[test]
    fn the_etag_is_the_first_half_of_the_digest_in_hex() {
        assert_eq!(etag_of_digest(&[0xab; 32]), HeaderValue::from_static("\"abababababababababababababababab\""));
    }
}
