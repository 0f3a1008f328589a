//! Media types, as GraphQL over HTTP has them (<https://graphql.github.io/graphql-over-http/draft/>):
//! which of the two response types a client accepts, whether a browser would rather have the
//! GraphiQL page, and whether a POST body says it is JSON. Pure functions of header values.
//!
//! Weights are read as whole thousandths (`q=0.8` is 800): the grammar allows three decimals at
//! most, so integers hold every weight exactly and compare without rounding.

/// The response types a GraphQL request can be answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    /// `application/graphql-response+json`: a request error (the document does not parse or
    /// validate, the variables do not fit) is a 4xx without `data`, so the status tells.
    GraphqlResponseJson,
    /// `application/json`, the legacy type: 200 whenever a GraphQL response is sent, as the
    /// spec asks of it, since clients of the legacy type read only the body.
    Json,
}

impl ResponseType {
    /// The `Content-Type` of an answer in this type; JSON is always UTF-8, and the spec asks the
    /// server to say so.
    pub fn content_type(self) -> &'static str {
        match self {
            ResponseType::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
            ResponseType::Json => "application/json; charset=utf-8",
        }
    }
}

/// A weight and how precisely the range that gave it named the type: 2 for `type/subtype`, 1
/// for `type/*`, 0 for `*/*`. Compared in that order (a tuple), so on equal weights the type
/// named outright wins over one a wildcard covers.
type Preference = (u16, u8);

/// One media range of an `Accept` header.
struct Range<'a> {
    kind: &'a str,
    subtype: &'a str,
    weight: u16,
}

/// The ranges of an `Accept` header; a range that does not parse is skipped (as if absent),
/// like a weight that does not parse.
fn ranges(accept: &str) -> Vec<Range<'_>> {
    accept
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let (kind, subtype) = parts.next()?.trim().split_once('/')?;
            let (kind, subtype) = (kind.trim(), subtype.trim());
            if kind.is_empty() || subtype.is_empty() || (kind == "*" && subtype != "*") {
                return None;
            }
            let mut weight = 1000;
            for parameter in parts {
                if let Some((name, value)) = parameter.split_once('=')
                    && name.trim().eq_ignore_ascii_case("q")
                {
                    weight = parse_weight(value.trim())?;
                }
            }
            Some(Range { kind, subtype, weight })
        })
        .collect()
}

/// `0`, `1`, `0.8`, `0.125`, `1.000` as thousandths; anything else is not a weight.
fn parse_weight(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// How much the client wants `kind/subtype`: the weight of the most precise range that covers
/// it (RFC 9110, 12.5.1); none when no range does or that range says `q=0`.
fn preference(ranges: &[Range<'_>], kind: &str, subtype: &str) -> Option<Preference> {
    ranges
        .iter()
        .filter_map(|range| {
            let precision = match (range.kind, range.subtype) {
                ("*", "*") => 0,
                (k, "*") if k.eq_ignore_ascii_case(kind) => 1,
                (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => 2,
                _ => return None,
            };
            Some((range.weight, precision))
        })
        .max_by_key(|&(_, precision)| precision)
        .filter(|&(weight, _)| weight > 0)
}

/// The type to answer in, or none when the client accepts neither (406). No `Accept` header
/// (or an empty one) is `application/json`, as the spec says for legacy clients, and so are
/// wildcards (`*/*`, `application/*`): a client that does not name the new type may not know it.
/// A client naming both equally gets the new type.
pub fn response_type(accept: Option<&str>) -> Option<ResponseType> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(ResponseType::Json);
    };
    let ranges = ranges(accept);
    let graphql = preference(&ranges, "application", "graphql-response+json");
    let json = preference(&ranges, "application", "json");
    match (graphql, json) {
        (None, None) => None,
        (Some(_), None) => Some(ResponseType::GraphqlResponseJson),
        (None, Some(_)) => Some(ResponseType::Json),
        (Some(g), Some(j)) if g > j || (g == j && g.1 == 2) => Some(ResponseType::GraphqlResponseJson),
        (Some(_), Some(_)) => Some(ResponseType::Json),
    }
}

/// Whether a GET should get the GraphiQL page rather than run a query: the client names
/// `text/html` outright and prefers it to both GraphQL types (a browser's navigation sends
/// `text/html,...,*/*;q=0.8`). A wildcard alone (`*/*`, curl's and fetch's default) is a
/// request for data, not for a page.
pub fn prefers_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let ranges = ranges(accept);
    let Some(html) = preference(&ranges, "text", "html").filter(|&(_, precision)| precision == 2) else {
        return false;
    };
    let graphql = preference(&ranges, "application", "graphql-response+json");
    let json = preference(&ranges, "application", "json");
    graphql.max(json).is_none_or(|best| html > best)
}

/// Whether a POST body is declared as JSON: `application/json`, with a `charset` of UTF-8 if
/// one is given. The spec has the client send that type; a body without one, or of another
/// type (form posts and `text/plain`, which a browser sends cross-origin without asking first),
/// is refused with 415 rather than guessed at.
pub fn is_json_body(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else { return false };
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let value = value.trim().trim_matches('"');
            value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResponseType::{GraphqlResponseJson as Graphql, Json};

    #[test]
    fn the_response_type_follows_accept() {
        assert_eq!(response_type(None), Some(Json), "no Accept: the legacy type");
        assert_eq!(response_type(Some("")), Some(Json));
        assert_eq!(response_type(Some("*/*")), Some(Json));
        assert_eq!(response_type(Some("application/*")), Some(Json));
        assert_eq!(response_type(Some("application/json")), Some(Json));
        assert_eq!(response_type(Some("application/graphql-response+json")), Some(Graphql));
        assert_eq!(response_type(Some("application/graphql-response+json, application/json;q=0.9")), Some(Graphql));
        assert_eq!(response_type(Some("application/graphql-response+json;q=0.5, application/json")), Some(Json));
        assert_eq!(
            response_type(Some("application/json, application/graphql-response+json")),
            Some(Graphql),
            "named equally: the new type"
        );
        assert_eq!(response_type(Some("application/graphql-response+json, */*")), Some(Graphql));
        assert_eq!(response_type(Some("APPLICATION/JSON; charset=utf-8")), Some(Json));
        assert_eq!(response_type(Some("application/json;q=0.8, */*;q=0.1")), Some(Json));
    }

    #[test]
    fn nothing_acceptable_is_none() {
        assert_eq!(response_type(Some("text/html")), None);
        assert_eq!(response_type(Some("application/xml, image/png")), None);
        assert_eq!(response_type(Some("application/json;q=0")), None);
        assert_eq!(response_type(Some("*/*;q=0")), None);
        assert_eq!(response_type(Some("application/json;q=0, */*")), Some(Graphql), "json refused, the other type still covered by */*");
        assert_eq!(response_type(Some("garbage")), None);
    }

    #[test]
    fn weights_are_read_exactly_or_not_at_all() {
        assert_eq!(parse_weight("0.8"), Some(800));
        assert_eq!(parse_weight("0.125"), Some(125));
        assert_eq!(parse_weight("1"), Some(1000));
        assert_eq!(parse_weight("1.000"), Some(1000));
        assert_eq!(parse_weight("0"), Some(0));
        assert_eq!(parse_weight("1.5"), None);
        assert_eq!(parse_weight("0.1234"), None);
        assert_eq!(parse_weight("-1"), None);
        assert_eq!(parse_weight("abc"), None);
        // A range with a weight that does not parse is skipped, not taken at full weight.
        assert_eq!(response_type(Some("application/json;q=2")), None);
    }

    #[test]
    fn a_browser_gets_the_page_and_clients_get_data() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
        assert!(prefers_html(Some(browser)));
        assert!(prefers_html(Some("text/html")));
        assert!(prefers_html(Some("text/html, */*")), "named outright beats the wildcard at the same weight");
        assert!(!prefers_html(None));
        assert!(!prefers_html(Some("*/*")));
        assert!(!prefers_html(Some("text/*")), "a wildcard does not ask for the page");
        assert!(!prefers_html(Some("application/json")));
        assert!(!prefers_html(Some("application/json, text/html")), "equal weights: data");
        assert!(!prefers_html(Some("text/html;q=0.5, application/graphql-response+json")));
        assert!(!prefers_html(Some("text/html;q=0")));
    }

    #[test]
    fn a_post_body_must_say_it_is_json() {
        assert!(is_json_body(Some("application/json")));
        assert!(is_json_body(Some("application/json; charset=utf-8")));
        assert!(is_json_body(Some("Application/JSON;charset=\"UTF-8\"")));
        assert!(!is_json_body(None));
        assert!(!is_json_body(Some("text/plain;charset=UTF-8")), "what fetch sends for a string body");
        assert!(!is_json_body(Some("application/json; charset=latin1")));
        assert!(!is_json_body(Some("application/graphql-response+json")), "a response type, not a request type");
        assert!(!is_json_body(Some("application/x-www-form-urlencoded")));
        assert!(!is_json_body(Some("multipart/form-data; boundary=x")));
    }
}
