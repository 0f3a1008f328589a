//! The customer portal (`GET /portal`): a page for an account's user, served from files under
//! `web/portal/` (plain ES modules and a stylesheet, no build step) that `rust-embed` puts in the
//! binary in release builds and reads from disk in debug builds, so editing a script needs no
//! rebuild while developing. The user arrives with a short-lived token in the URL's fragment
//! (`createPortalSession`); every request the page makes goes to this server only, which the
//! Content-Security-Policy below enforces.
//!
//! Unlike GraphiQL the portal stays on in production mode: it is for the program's users. The
//! operations it sends are all in `web/portal/portal.graphql`, which the server registers at
//! start (`app::SERVER_DOCUMENTS`), so a `persisted_only` deployment still runs them.

use crate::web_asset::{Caching, WebFile, etag_of_digest};
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "web/portal/"]
struct PortalFiles;

/// The GraphQL document holding every operation the portal sends.
pub const DOCUMENT: &str = include_str!("../web/portal/portal.graphql");

/// Only this server's scripts, styles, images and connections (the WebSocket included: CSP
/// level 3 counts a same-host `ws:`/`wss:` URL as 'self'); no inline script or style, no
/// `<base>`, no form posts, and no framing by another site (clickjacking a refund button).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Sent with every portal file: the policy, and no `Referer` to anything the page links to.
static PAGE_HEADERS: &[(HeaderName, &str)] =
    &[(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY), (header::REFERRER_POLICY, "no-referrer")];

/// The content type of a portal file by its extension; a file of any other kind is not served,
/// so nothing reaches a browser with a guessed type.
fn content_type(path: &str) -> Option<&'static str> {
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

/// A path under `/portal/` that names a file inside `web/portal/`: relative, no `..`, no
/// backslash, no hidden files.
fn is_plain(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && path.split('/').all(|part| !part.is_empty() && !part.starts_with('.'))
}

fn file(path: &str, request: &HeaderMap) -> Response {
    let (Some(content_type), true) = (content_type(path), is_plain(path)) else {
        return crate::web_asset::not_found("no such portal file");
    };
    let Some(file) = PortalFiles::get(path) else {
        return crate::web_asset::not_found("no such portal file");
    };
    crate::web_asset::answer(
        request,
        WebFile {
            content_type,
            caching: Caching::Revalidate,
            etag: etag_of_digest(&file.metadata.sha256_hash()),
            bytes: file.data.into_owned().into(),
            extra: PAGE_HEADERS,
        },
    )
}

/// `GET /portal`: the page.
pub async fn page(headers: HeaderMap) -> Response {
    file("index.html", &headers)
}

/// `GET /portal/`: to `/portal`, where the page's relative references resolve (they are
/// relative so that the portal also works under a reverse proxy's path prefix). The location is
/// relative too, for the same reason.
pub async fn to_page() -> Response {
    (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, "../portal")]).into_response()
}

/// `GET /portal/{*path}`: one of the portal's files, or 404 in GraphQL's error shape.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    file(&path, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn every_portal_file_is_served_with_a_known_type() {
        for path in PortalFiles::iter() {
            assert!(content_type(&path).is_some(), "web/portal/{path} has a kind the server does not serve");
        }
        assert!(PortalFiles::get("index.html").is_some());
    }

    #[test]
    fn no_inline_script_or_style_and_no_inner_html() {
        let index = String::from_utf8(PortalFiles::get("index.html").unwrap().data.into_owned()).unwrap();
        assert!(!index.contains("style=\""), "inline style in index.html");
        assert!(!index.contains("<style"), "a style element in index.html");
        for (at, _) in index.match_indices("<script") {
            let tag = &index[at..at + index[at..].find('>').unwrap()];
            assert!(tag.contains(" src=\""), "an inline script in index.html: {tag}");
        }
        for path in PortalFiles::iter().filter(|path| path.ends_with(".js")) {
            let text = String::from_utf8(PortalFiles::get(&path).unwrap().data.into_owned()).unwrap();
            for forbidden in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
                assert!(!text.contains(forbidden), "web/portal/{path} uses {forbidden}");
            }
        }
    }
}
