//! GraphiQL served from the binary, so it works with no network beyond this server: the page
//! (`web/graphiql/index.html`, at `GET /graphql` for browsers, `http::graphiql`) and its
//! assets (`GET /graphiql/...`) are embedded at build time. The vendored files under
//! `web/graphiql/vendor/` are the pinned npm packages' own prebuilt builds, recorded in
//! `web/graphiql/VENDORED.md` (package, version, licence, sha256) and rebuilt byte for byte by
//! `web/graphiql/build.sh`; building the server needs neither Node nor the network.
//!
//! Subscriptions go over `/graphql/ws` through the graphql-ws client that `graphiql.min.js`
//! bundles; the Headers tab's `Authorization` travels in `connection_init` (see
//! `web/graphiql/credits-graphiql.js`). In production mode the page and its assets are off.

use crate::http::HttpState;
pub use crate::web_asset::Caching;
use crate::web_asset::{WebFile, etag_of_digest};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// A file served under `/graphiql/`.
pub struct Asset {
    /// Its path under `/graphiql/`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub caching: Caching,
    pub bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! web_file {
    ($path:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/graphiql/", $path))
    };
}

/// Every file the page loads; nothing else under `/graphiql/` exists.
pub static ASSETS: &[Asset] = &[
    Asset {
        path: "vendor/react-18.3.1/react.production.min.js",
        content_type: JS,
        caching: Caching::Immutable,
        bytes: web_file!("vendor/react-18.3.1/react.production.min.js"),
    },
    Asset {
        path: "vendor/react-dom-18.3.1/react-dom.production.min.js",
        content_type: JS,
        caching: Caching::Immutable,
        bytes: web_file!("vendor/react-dom-18.3.1/react-dom.production.min.js"),
    },
    Asset {
        path: "vendor/graphiql-4.1.2/graphiql.min.js",
        content_type: JS,
        caching: Caching::Immutable,
        bytes: web_file!("vendor/graphiql-4.1.2/graphiql.min.js"),
    },
    Asset {
        path: "vendor/graphiql-4.1.2/graphiql.min.css",
        content_type: CSS,
        caching: Caching::Immutable,
        bytes: web_file!("vendor/graphiql-4.1.2/graphiql.min.css"),
    },
    Asset { path: "credits-graphiql.js", content_type: JS, caching: Caching::Revalidate, bytes: web_file!("credits-graphiql.js") },
    Asset { path: "credits-graphiql.css", content_type: CSS, caching: Caching::Revalidate, bytes: web_file!("credits-graphiql.css") },
];

/// The page; it loads only the assets above, from this server.
pub const PAGE: &str = include_str!("../web/graphiql/index.html");

/// What the page may load: only this server's scripts, styles and connections (WebSocket
/// included: CSP level 3 counts a same-host `ws:`/`wss:` URL as 'self'). Inline styles are
/// allowed because GraphiQL's editor positions its elements with `style` attributes; inline
/// scripts are not, and the fonts and icons GraphiQL's stylesheet carries are `data:` URLs.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     font-src 'self' data:; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The assets' ETags (a prefix of the sha256 of their bytes), in `ASSETS`' order, computed once.
static ETAGS: LazyLock<Vec<HeaderValue>> =
    LazyLock::new(|| ASSETS.iter().map(|asset| etag_of_digest(&Sha256::digest(asset.bytes))).collect());

/// The answer to any GraphiQL request in production mode, where the page and its assets are off.
pub fn off_in_production() -> Response {
    crate::web_asset::not_found("GraphiQL is off in production mode")
}

/// The page, with the policy that keeps it to this server, never stored by caches (it names
/// the assets, which change with the server).
pub fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /graphiql/{*path}`: one of `ASSETS`, or 404 in GraphQL's error shape.
pub async fn asset(State(state): State<HttpState>, Path(path): Path<String>, headers: HeaderMap) -> Response {
    if state.security.production {
        return off_in_production();
    }
    let Some(index) = ASSETS.iter().position(|asset| asset.path == path) else {
        return crate::web_asset::not_found("no such GraphiQL file");
    };
    let asset = &ASSETS[index];
    crate::web_asset::answer(
        &headers,
        WebFile {
            content_type: asset.content_type,
            caching: asset.caching,
            etag: ETAGS[index].clone(),
            bytes: asset.bytes.into(),
            extra: &[],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = include_str!("../web/graphiql/VENDORED.md");

    /// The rows of VENDORED.md's table: (path under web/graphiql/, sha256).
    fn recorded() -> Vec<(String, String)> {
        RECORD
            .lines()
            .filter(|line| line.starts_with("| `vendor/"))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                // | path | package | version | licence | sha256 |
                (cells[1].trim_matches('`').to_string(), cells[5].trim_matches('`').to_string())
            })
            .collect()
    }

    #[test]
    fn every_vendored_file_is_recorded_with_its_checksum() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/graphiql");
        let recorded = recorded();
        let mut on_disk = Vec::new();
        for package in std::fs::read_dir(dir.join("vendor")).unwrap() {
            let package = package.unwrap();
            for file in std::fs::read_dir(package.path()).unwrap() {
                let file = file.unwrap();
                on_disk.push(format!("vendor/{}/{}", package.file_name().to_string_lossy(), file.file_name().to_string_lossy()));
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = recorded.iter().map(|(path, _)| path.clone()).collect();
        listed.sort();
        assert_eq!(listed, on_disk, "VENDORED.md lists exactly the files in web/graphiql/vendor");
        for (path, sha256) in &recorded {
            let bytes = std::fs::read(dir.join(path)).unwrap();
            assert_eq!(&hex::encode(Sha256::digest(&bytes)), sha256, "{path}: the sha256 in VENDORED.md");
        }
    }

    #[test]
    fn the_page_loads_only_embedded_assets_from_this_server() {
        // Every `src="..."` and `href="..."` in the page, except the empty `data:` icon (which
        // keeps the browser from asking for /favicon.ico).
        let references: Vec<&str> = PAGE
            .split(" src=\"")
            .skip(1)
            .chain(PAGE.split(" href=\"").skip(1))
            .map(|rest| &rest[..rest.find('"').unwrap()])
            .filter(|reference| *reference != "data:,")
            .collect();
        assert_eq!(references.len(), 6, "{references:?}");
        for reference in references {
            let path = reference.strip_prefix("/graphiql/").unwrap_or_else(|| panic!("{reference} is not under /graphiql/"));
            assert!(ASSETS.iter().any(|asset| asset.path == path), "{reference} is not embedded");
        }
        // Each vendored asset is one recorded in VENDORED.md.
        for asset in ASSETS.iter().filter(|asset| asset.caching == Caching::Immutable) {
            assert!(recorded().iter().any(|(path, _)| path == asset.path), "{} is not in VENDORED.md", asset.path);
        }
    }
}
