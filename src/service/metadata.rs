//! Metadata (issue 25): a caller's small object of string keys and string values, kept with
//! the journal entry an operation writes (and on its reservation, purchase or market job), shown
//! in history and filterable by one key and value. Stripe's rule is the model, made smaller: a
//! journal row should stay small, and a value that is a string only never passes through a float.
//!
//! The one stored and hashed form is canonical: keys sorted (a `BTreeMap`, whatever serde_json's
//! features are), compact JSON. So the same object in any key order is the same request, and
//! both databases hold the same bytes.

use crate::service::ServiceError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// At most this many keys.
pub const MAX_KEYS: usize = 16;
/// A key: 1 to 40 characters of `[A-Za-z0-9_.-]`.
pub const MAX_KEY_CHARS: usize = 40;
/// A value: a string of 1 to 500 characters, no control characters.
pub const MAX_VALUE_CHARS: usize = 500;
/// The whole object as stored (compact JSON, UTF-8): at most 4 KiB.
pub const MAX_JSON_BYTES: usize = 4096;

/// Why a metadata object is refused: always the caller's input (`BAD_USER_INPUT`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata has more than {MAX_KEYS} keys")]
    TooManyKeys,
    #[error("metadata key {0:?} must be 1 to {MAX_KEY_CHARS} characters of letters, digits and _ . -")]
    BadKey(String),
    #[error("metadata value of {0:?} must be a string")]
    NotAString(String),
    #[error("metadata value of {0:?} must be 1 to {MAX_VALUE_CHARS} characters without control characters")]
    BadValue(String),
    #[error("metadata is larger than {MAX_JSON_BYTES} bytes as JSON")]
    TooLarge,
    #[error("metadata must be a JSON object of string values")]
    NotAnObject,
}

impl From<MetadataError> for ServiceError {
    fn from(error: MetadataError) -> ServiceError {
        ServiceError::bad_input(error.to_string())
    }
}

/// A metadata object that passed every bound. Never empty: an empty object is no metadata.
/// Serializes as its object (what a request hash covers); `as_json` is the same, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "BTreeMap<String, String>", try_from = "BTreeMap<String, String>")]
pub struct Metadata {
    pairs: BTreeMap<String, String>,
    /// The canonical JSON of `pairs`, made once.
    json: String,
}

impl From<Metadata> for BTreeMap<String, String> {
    fn from(metadata: Metadata) -> Self {
        metadata.pairs
    }
}

impl TryFrom<BTreeMap<String, String>> for Metadata {
    type Error = MetadataError;

    fn try_from(pairs: BTreeMap<String, String>) -> Result<Metadata, MetadataError> {
        Metadata::parse(pairs)?.ok_or(MetadataError::NotAnObject)
    }
}

/// A metadata key, as the history filter takes it: the same grammar as the keys stored.
pub fn key(value: &str) -> Result<String, MetadataError> {
    let fits = !value.is_empty()
        && value.chars().count() <= MAX_KEY_CHARS
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if fits { Ok(value.to_string()) } else { Err(MetadataError::BadKey(truncated(value))) }
}

/// A metadata value: the same grammar as the values stored.
pub fn value(key: &str, value: &str) -> Result<String, MetadataError> {
    let fits = !value.is_empty() && value.chars().count() <= MAX_VALUE_CHARS && !value.chars().any(char::is_control);
    if fits { Ok(value.to_string()) } else { Err(MetadataError::BadValue(key.to_string())) }
}

/// A key shown back in an error message, cut so a huge key does not make a huge message.
fn truncated(key: &str) -> String {
    key.chars().take(MAX_KEY_CHARS + 1).collect()
}

impl Metadata {
    /// The object from its pairs; `None` for no pairs, so `{}` asks for what no metadata asks for.
    pub fn parse<I>(pairs: I) -> Result<Option<Metadata>, MetadataError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            let v = value(&k, &v)?;
            map.insert(key(&k)?, v);
            if map.len() > MAX_KEYS {
                return Err(MetadataError::TooManyKeys);
            }
        }
        if map.is_empty() {
            return Ok(None);
        }
        let json = serde_json::to_string(&map).expect("a map of strings serializes");
        if json.len() > MAX_JSON_BYTES {
            return Err(MetadataError::TooLarge);
        }
        Ok(Some(Metadata { pairs: map, json }))
    }

    /// A JSON object of string values, checked as `parse` does.
    pub fn from_json(value: &serde_json::Value) -> Result<Option<Metadata>, MetadataError> {
        let object = value.as_object().ok_or(MetadataError::NotAnObject)?;
        if object.len() > MAX_KEYS {
            return Err(MetadataError::TooManyKeys);
        }
        let pairs = object
            .iter()
            .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())).ok_or_else(|| MetadataError::NotAString(truncated(k))))
            .collect::<Result<Vec<_>, _>>()?;
        Metadata::parse(pairs)
    }

    /// The stored form read back: a row that does not parse is corrupt, not the caller's fault.
    pub fn from_stored(text: &str) -> Result<Metadata, ServiceError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| anyhow::anyhow!("stored metadata is not JSON: {e}"))?;
        Metadata::from_json(&value)
            .map_err(|e| anyhow::anyhow!("stored metadata breaks its bounds: {e}"))?
            .ok_or_else(|| anyhow::anyhow!("stored metadata is empty").into())
    }

    /// The canonical JSON: keys sorted, compact. What is stored and what the filter reads.
    pub fn as_json(&self) -> &str {
        &self.json
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A history filter on metadata: entries whose metadata has `key` equal to `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataMatch {
    pub key: String,
    pub value: String,
}

impl MetadataMatch {
    pub fn parse(key_text: &str, value_text: &str) -> Result<MetadataMatch, ServiceError> {
        let key = key(key_text)?;
        let value = value(&key, value_text)?;
        Ok(MetadataMatch { key, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bounds_are_enforced() {
        let ok = Metadata::from_json(&json!({ "order_id": "42", "a.b-c": "x" })).unwrap().unwrap();
        assert_eq!(ok.as_json(), r#"{"a.b-c":"x","order_id":"42"}"#);
        assert_eq!(Metadata::from_json(&json!({})).unwrap(), None, "{{}} is no metadata");
        assert_eq!(Metadata::from_json(&json!([])), Err(MetadataError::NotAnObject));
        assert!(matches!(Metadata::from_json(&json!({ "n": 1 })), Err(MetadataError::NotAString(_))));
        assert!(matches!(Metadata::from_json(&json!({ "n": 1.5 })), Err(MetadataError::NotAString(_))));
        assert!(matches!(Metadata::from_json(&json!({ "n": null })), Err(MetadataError::NotAString(_))));
        assert!(matches!(Metadata::from_json(&json!({ "n": { "x": "y" } })), Err(MetadataError::NotAString(_))));
        assert!(matches!(Metadata::from_json(&json!({ "": "v" })), Err(MetadataError::BadKey(_))));
        assert!(matches!(Metadata::from_json(&json!({ "has space": "v" })), Err(MetadataError::BadKey(_))));
        assert!(matches!(Metadata::from_json(&json!({ "k\"": "v" })), Err(MetadataError::BadKey(_))));
        assert!(matches!(Metadata::from_json(&json!({ "k".repeat(41): "v" })), Err(MetadataError::BadKey(_))));
        assert!(Metadata::from_json(&json!({ "k".repeat(40): "v" })).unwrap().is_some());
        assert!(matches!(Metadata::from_json(&json!({ "k": "" })), Err(MetadataError::BadValue(_))));
        assert!(matches!(Metadata::from_json(&json!({ "k": "a\u{0}b" })), Err(MetadataError::BadValue(_))));
        assert!(matches!(Metadata::from_json(&json!({ "k": "v".repeat(501) })), Err(MetadataError::BadValue(_))));
        assert!(Metadata::from_json(&json!({ "k": "v".repeat(500) })).unwrap().is_some());
        let sixteen: serde_json::Map<_, _> = (0..16).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(Metadata::from_json(&sixteen.into()).unwrap().is_some());
        let seventeen: serde_json::Map<_, _> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(Metadata::from_json(&seventeen.into()), Err(MetadataError::TooManyKeys));
        // 16 values of 500 characters are within every per-key bound but not the total.
        let big: serde_json::Map<_, _> = (0..16).map(|i| (format!("k{i}"), json!("v".repeat(500)))).collect();
        assert_eq!(Metadata::from_json(&big.into()), Err(MetadataError::TooLarge));
    }

    #[test]
    fn key_order_does_not_change_the_form() {
        let a = Metadata::parse([("b".to_string(), "2".to_string()), ("a".to_string(), "1".to_string())]).unwrap();
        let b = Metadata::parse([("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.unwrap().as_json(), r#"{"a":"1","b":"2"}"#);
    }

    #[test]
    fn it_serializes_as_its_object() {
        let m = Metadata::from_json(&json!({ "b": "2", "a": "1" })).unwrap().unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"a":"1","b":"2"}"#);
        assert_eq!(serde_json::from_str::<Metadata>(r#"{"b":"2","a":"1"}"#).unwrap(), m);
        assert!(serde_json::from_str::<Metadata>(r#"{"a b":"1"}"#).is_err());
    }

    #[test]
    fn the_stored_form_reads_back() {
        let m = Metadata::from_json(&json!({ "q": "say \"hi\"\n" })).err();
        assert!(m.is_some(), "a newline is a control character");
        let m = Metadata::from_json(&json!({ "q": "say \"hi\" 🙂" })).unwrap().unwrap();
        assert_eq!(Metadata::from_stored(m.as_json()).unwrap(), m);
        assert!(Metadata::from_stored("{").is_err());
        assert!(Metadata::from_stored("{}").is_err());
    }
}
