//! The parameters of a GraphQL request over HTTP (`query`, `operationName`, `variables`,
//! `extensions`), from a JSON body or a GET's query string, read strictly: each has the type the
//! spec gives it or is refused (400), instead of being dropped or defaulted. (The library's own
//! readers take `variables: "text"` as no variables and ignore a GET's `operationName`.)

use async_graphql::{Request, Variables};
use serde_json::{Map, Value};

/// The parameters of one request, as sent.
#[derive(Default)]
struct Params {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<Map<String, Value>>,
    extensions: Option<Map<String, Value>>,
}

/// A JSON body: one request (an object), or a batch (an array of them, perhaps of one).
pub struct Body {
    pub requests: Vec<Request>,
    pub batched: bool,
}

/// `Err` says what is wrong, for the client.
pub fn from_json_body(body: &[u8]) -> Result<Body, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("the body is empty: send the request as a JSON object".to_string());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    match value {
        Value::Object(object) => Ok(Body { requests: vec![request(from_object(object)?)?], batched: false }),
        Value::Array(items) => {
            let requests = items.into_iter().enumerate().map(|(index, item)| match item {
                Value::Object(object) => from_object(object).and_then(request).map_err(|e| format!("request {index} of the batch: {e}")),
                _ => Err(format!("request {index} of the batch is not a JSON object")),
            });
            Ok(Body { requests: requests.collect::<Result<_, _>>()?, batched: true })
        }
        _ => Err("the body is not a GraphQL request: send a JSON object (or, for a batch, an array of them)".to_string()),
    }
}

/// A GET's query string: `query` and `operationName` as text, `variables` and `extensions` as
/// JSON objects written out as text (URL-encoded).
pub fn from_query_string(query_string: &str) -> Result<Request, String> {
    let mut params = Params::default();
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in form_urlencoded::parse(query_string.as_bytes()) {
        let known = matches!(name.as_ref(), "query" | "operationName" | "variables" | "extensions");
        if !known {
            // Other parameters (a cache buster, a client's marker) are not the request's.
            continue;
        }
        if seen.iter().any(|s| *s == name) {
            return Err(format!("`{name}` is given more than once"));
        }
        seen.push(name.to_string());
        let value = value.into_owned();
        match name.as_ref() {
            "query" => params.query = Some(value),
            "operationName" => params.operation_name = Some(value),
            "variables" => params.variables = json_object("variables", &value)?,
            _ => params.extensions = json_object("extensions", &value)?,
        }
    }
    request(params)
}

/// A JSON object written as text; `null` is the same as leaving the parameter out.
fn json_object(name: &str, text: &str) -> Result<Option<Map<String, Value>>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(Some(object)),
        Ok(Value::Null) => Ok(None),
        Ok(_) => Err(format!("`{name}` must be a JSON object")),
        Err(e) => Err(format!("`{name}` is not JSON: {e}")),
    }
}

/// The parameters of a JSON request object; `null` is the same as leaving one out, unknown
/// members are ignored.
fn from_object(mut object: Map<String, Value>) -> Result<Params, String> {
    let mut text = |name: &str| match object.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(format!("`{name}` must be a string")),
    };
    let (query, operation_name) = (text("query")?, text("operationName")?);
    let mut map = |name: &str| match object.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(format!("`{name}` must be an object")),
    };
    let (variables, extensions) = (map("variables")?, map("extensions")?);
    Ok(Params { query, operation_name, variables, extensions })
}

/// The request to run. A request needs its `query`, except one that names a persisted document
/// instead (`extensions.persistedQuery`, which the schema's persisted-query handling reads).
fn request(params: Params) -> Result<Request, String> {
    let persisted = params.extensions.as_ref().is_some_and(|e| e.contains_key("persistedQuery"));
    let query = match params.query {
        Some(query) => query,
        None if persisted => String::new(),
        None => return Err("the request has no `query`".to_string()),
    };
    let mut request = Request::new(query);
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    if let Some(variables) = params.variables {
        request = request.variables(Variables::from_json(Value::Object(variables)));
    }
    if let Some(extensions) = params.extensions {
        for (name, value) in extensions {
            let value = async_graphql::Value::from_json(value).map_err(|e| format!("`extensions.{name}`: {e}"))?;
            request.extensions.0.insert(name, value);
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(body: &str) -> Result<Request, String> {
        let mut body = from_json_body(body.as_bytes())?;
        assert!(!body.batched && body.requests.len() == 1, "one request");
        Ok(body.requests.remove(0))
    }

    #[test]
    fn a_json_request_is_read_with_its_parameters() {
        let request = single(
            r#"{"query": "query Q($n: String!) { a }", "operationName": "Q", "variables": {"n": "x"}, "extensions": {"k": 1}, "other": 2}"#,
        )
        .unwrap();
        assert_eq!(request.query, "query Q($n: String!) { a }");
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert_eq!(request.variables.get("n"), Some(&async_graphql::Value::from("x")));
        assert_eq!(request.extensions.0.get("k"), Some(&async_graphql::Value::from(1)));
        let nulls = single(r#"{"query": "{ a }", "operationName": null, "variables": null, "extensions": null}"#).unwrap();
        assert_eq!((nulls.operation_name, nulls.variables.is_empty(), nulls.extensions.0.is_empty()), (None, true, true));
    }

    #[test]
    fn parameters_of_the_wrong_type_are_refused() {
        for bad in [
            r#"{"query": {"obj": "ect"}}"#,
            r#"{"query": 0}"#,
            r#"{"query": false}"#,
            r#"{"query": ["array"]}"#,
            r#"{"query": "{ a }", "operationName": 0}"#,
            r#"{"query": "{ a }", "variables": "string"}"#,
            r#"{"query": "{ a }", "variables": ["array"]}"#,
            r#"{"query": "{ a }", "extensions": false}"#,
            r#"{"qeury": "{ a }"}"#,
            r#"{}"#,
            r#""{ a }""#,
            r#"{ "not a JSON"#,
            "",
            "[1]",
        ] {
            assert!(from_json_body(bad.as_bytes()).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_persisted_query_needs_no_text() {
        let request = single(r#"{"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "abc"}}}"#).unwrap();
        assert_eq!(request.query, "");
        assert!(request.extensions.0.contains_key("persistedQuery"));
    }

    #[test]
    fn a_batch_is_a_list_of_requests() {
        let body = from_json_body(br#"[{"query": "{ a }"}, {"query": "{ b }"}]"#).unwrap();
        assert!(body.batched);
        assert_eq!(body.requests.iter().map(|r| r.query.as_str()).collect::<Vec<_>>(), ["{ a }", "{ b }"]);
        assert!(from_json_body(br#"[{"query": "{ a }"}]"#).unwrap().batched, "an array of one is still a batch");
        assert!(from_json_body(br#"[{"query": "{ a }"}, {"query": 1}]"#).is_err());
    }

    #[test]
    fn a_query_string_carries_json_as_text() {
        let request = from_query_string(
            "query=query+Q(%24n%3A+String!)+%7B+a+%7D&operationName=Q&variables=%7B%22n%22%3A%22x%22%7D&extensions=%7B%7D&_=1",
        )
        .unwrap();
        assert_eq!(request.query, "query Q($n: String!) { a }");
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert_eq!(request.variables.get("n"), Some(&async_graphql::Value::from("x")));
        assert!(from_query_string("").is_err(), "no query");
        assert!(from_query_string("query=%7Ba%7D&variables=1").is_err());
        assert!(from_query_string("query=%7Ba%7D&variables=%7B").is_err());
        assert!(from_query_string("query=%7Ba%7D&query=%7Bb%7D").is_err(), "two queries");
        assert!(from_query_string("query=%7Ba%7D&variables=null").is_ok());
    }
}
