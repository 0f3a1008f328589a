//! Cross-origin requests from browser apps (`cors_origins`).
//!
//! None are allowed by default: a browser app on another origin must be named. Named origins may
//! send credentials (cookies, should an app's proxy use them) as well as the `Authorization`
//! header; `*` allows any origin without credentials (a bearer token in `Authorization` still
//! works, since it is a header the app sets, not a credential the browser adds) and is refused in
//! production mode, where any web page could then call the API with a token it holds.
//! Preflights are answered here, before any limit or route, and cached by browsers for
//! `PREFLIGHT_MAX_AGE`.

use axum::http::{HeaderName, HeaderValue, Method, header};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may reuse a preflight's answer (browsers cap it: Chromium at 2 hours).
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(2 * 60 * 60);

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorsOrigins {
    /// No cross-origin calls (the default): browsers refuse them.
    #[default]
    None,
    /// Any origin, without credentials (`*`); never in production mode.
    Any,
    /// These origins (`scheme://host[:port]`), with credentials.
    List(Vec<HeaderValue>),
}

impl CorsOrigins {
    /// Reads the configured list: empty, `["*"]`, or origins such as `https://app.example.com`.
    pub fn parse(origins: &[String], production: bool) -> Result<CorsOrigins, String> {
        if origins.is_empty() {
            return Ok(CorsOrigins::None);
        }
        if origins.iter().any(|o| o == "*") {
            if origins.len() > 1 {
                return Err("cors_origins: \"*\" stands alone, not beside other origins".into());
            }
            if production {
                return Err("cors_origins = \"*\" is refused in production mode: name the origins of your apps \
                            (CREDITS_CORS_ORIGINS=https://app.example.com,https://admin.example.com)"
                    .into());
            }
            return Ok(CorsOrigins::Any);
        }
        origins.iter().map(|o| parse_origin(o)).collect::<Result<Vec<_>, _>>().map(CorsOrigins::List)
    }

    /// The layer answering preflights and marking responses; none when no origin is allowed, so a
    /// browser's cross-origin call is refused by the browser as before.
    pub fn layer(&self) -> Option<CorsLayer> {
        let base = || {
            CorsLayer::new()
                .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::ACCEPT,
                    crate::request_id::HEADER,
                    idempotency_header(),
                ])
                .expose_headers([crate::request_id::HEADER, header::RETRY_AFTER])
                .max_age(PREFLIGHT_MAX_AGE)
        };
        match self {
            CorsOrigins::None => None,
            CorsOrigins::Any => Some(base().allow_origin(AllowOrigin::any())),
            CorsOrigins::List(origins) => Some(base().allow_origin(AllowOrigin::list(origins.clone())).allow_credentials(true)),
        }
    }
}

/// Not read by the server today (keys travel in the GraphQL input), but allowed so that a client
/// library sending it does not fail its preflight.
fn idempotency_header() -> HeaderName {
    HeaderName::from_static("idempotency-key")
}

/// An origin as browsers send it: `http` or `https`, a host, an optional port, and nothing else
/// (no path, no trailing slash), so that it compares equal to the `Origin` header.
fn parse_origin(origin: &str) -> Result<HeaderValue, String> {
    let bad = |why: &str| format!("cors_origins: {origin:?} is not an origin ({why}); write it as https://app.example.com[:port]");
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| bad("it starts with http:// or https://"))?;
    if rest.is_empty() || rest.contains('/') || rest.contains('?') || rest.contains('#') || rest.contains('@') || rest.contains('*') {
        return Err(bad("a scheme, a host and an optional port, with no path, not even a trailing /"));
    }
    if origin.chars().any(|c| c.is_ascii_uppercase() || c.is_whitespace() || !c.is_ascii()) {
        return Err(bad("lowercase ASCII as browsers send it, with no spaces"));
    }
    HeaderValue::from_str(origin).map_err(|_| bad("not a header value"))
}

#[cfg(test)]
mod tests {
    use super::CorsOrigins;

    fn list(origins: &[&str]) -> Vec<String> {
        origins.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn none_by_default_and_origins_as_browsers_send_them() {
        assert_eq!(CorsOrigins::parse(&[], true), Ok(CorsOrigins::None));
        let parsed = CorsOrigins::parse(&list(&["https://app.example.com", "http://localhost:5173"]), true).unwrap();
        assert!(matches!(parsed, CorsOrigins::List(ref l) if l.len() == 2));
        assert!(parsed.layer().is_some());
        assert!(CorsOrigins::None.layer().is_none());
    }

    #[test]
    fn a_wildcard_is_for_development_only_and_alone() {
        assert_eq!(CorsOrigins::parse(&list(&["*"]), false), Ok(CorsOrigins::Any));
        assert!(CorsOrigins::parse(&list(&["*"]), true).unwrap_err().contains("production"));
        assert!(CorsOrigins::parse(&list(&["*", "https://a.example"]), false).is_err());
    }

    #[test]
    fn what_is_not_an_origin_is_refused() {
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://x",
            "https://*.example.com",
            "https://App.example.com",
            "https://",
        ] {
            assert!(CorsOrigins::parse(&list(&[bad]), false).is_err(), "{bad} was accepted");
        }
    }
}
