//! The operator console (`GET /console`): a page for the program's operators, on the portal's
//! foundations (`crate::portal`): files under `web/console/` that `rust-embed` puts in the binary
//! in release builds and reads from disk in debug builds, served with the same strict
//! Content-Security-Policy (`web_asset::CONTENT_SECURITY_POLICY`), so every request the page
//! makes goes to this server only. Its scripts reuse the portal's modules (`web/portal/js/api.js`,
//! `dom.js`, `pager.js`) and styles by relative path, one copy of each.
//!
//! The operator signs in with a one-time code in the URL's fragment (`credits console-link`) or
//! a pasted admin token; the page keeps the admin token in `sessionStorage` only. The
//! operations it sends are all in `web/console/console.graphql`, which the server registers at
//! start (`app::SERVER_DOCUMENTS`), so a `persisted_only` deployment still runs them.

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "web/console/"]
struct ConsoleFiles;

/// The GraphQL document holding every operation the console sends.
pub const DOCUMENT: &str = include_str!("../web/console/console.graphql");

fn file(path: &str, request: &HeaderMap) -> Response {
    crate::web_asset::embedded_page_file::<ConsoleFiles>(path, request, "console")
}

/// `GET /console`: the page.
pub async fn page(headers: HeaderMap) -> Response {
    file("index.html", &headers)
}

/// `GET /console/`: to `/console`, where the page's relative references resolve (relative, so
/// the console works under a reverse proxy's path prefix, like the portal).
pub async fn to_page() -> Response {
    (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, "../console")]).into_response()
}

/// `GET /console/{*path}`: one of the console's files, or 404 in GraphQL's error shape.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    file(&path, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web_asset::content_type;

    #[test]
    fn every_console_file_is_served_with_a_known_type() {
        for path in ConsoleFiles::iter() {
            assert!(content_type(&path).is_some(), "web/console/{path} has a kind the server does not serve");
        }
        assert!(ConsoleFiles::get("index.html").is_some());
    }

    #[test]
    fn no_inline_script_or_style_and_no_inner_html() {
        assert_eq!(crate::web_asset::markup_offence::<ConsoleFiles>("web/console"), None);
    }
}
