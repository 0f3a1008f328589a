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

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "web/portal/"]
struct PortalFiles;

/// The GraphQL document holding every operation the portal sends.
pub const DOCUMENT: &str = include_str!("../web/portal/portal.graphql");

fn file(path: &str, request: &HeaderMap) -> Response {
    crate::web_asset::embedded_page_file::<PortalFiles>(path, request, "portal")
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
    use crate::web_asset::content_type;

    #[test]
    fn every_portal_file_is_served_with_a_known_type() {
        for path in PortalFiles::iter() {
            assert!(content_type(&path).is_some(), "web/portal/{path} has a kind the server does not serve");
        }
        assert!(PortalFiles::get("index.html").is_some());
    }

    #[test]
    fn no_inline_script_or_style_and_no_inner_html() {
        assert_eq!(crate::web_asset::markup_offence::<PortalFiles>("web/portal"), None);
    }
}
