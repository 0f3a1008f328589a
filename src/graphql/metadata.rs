//! The `Metadata` scalar and the history's filter on it. The bounds are the service's
//! (`service::metadata`); this module only speaks GraphQL. Like the amounts' scalars, a value is
//! checked in `is_valid` (a bad literal or variable refuses the whole request before anything
//! runs) and again in `parse` (which says what is wrong), both as `BAD_USER_INPUT`.

use crate::graphql::error::code;
use crate::service::metadata::{MAX_JSON_BYTES, MAX_KEY_CHARS, MAX_KEYS, MAX_VALUE_CHARS, Metadata as Parsed, MetadataError};
use async_graphql::{InputObject, InputValueError, InputValueResult, Name, Scalar, ScalarType, Value};

/// A metadata object as the API speaks it, checked: none for `{}`, which is no metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata(pub Option<Parsed>);

impl Metadata {
    /// An output value (`Option<Metadata>` fields: null when there is none).
    pub fn of(parsed: Option<Parsed>) -> Option<Metadata> {
        parsed.map(|p| Metadata(Some(p)))
    }
}

fn pairs(value: &Value) -> Result<Option<Parsed>, MetadataError> {
    let Value::Object(object) = value else { return Err(MetadataError::NotAnObject) };
    if object.len() > MAX_KEYS {
        return Err(MetadataError::TooManyKeys);
    }
    let pairs = object
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.to_string(), s.clone())),
            _ => Err(MetadataError::NotAString(k.chars().take(MAX_KEY_CHARS + 1).collect())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Parsed::parse(pairs)
}

/// An optional metadata argument: absent, null and `{}` are all no metadata.
pub fn into_parsed(value: Option<Metadata>) -> Option<Parsed> {
    value.and_then(|m| m.0)
}

// The description is the format's documentation: keep it in step with `service::metadata`.
/// Metadata: a JSON object of at most 16 keys, each 1 to 40 characters of letters, digits and
/// `_ . -`, whose values are strings of 1 to 500 characters without control characters (no
/// numbers, booleans, nulls, lists or nested objects); at most 4096 bytes as compact JSON. Key
/// order does not matter: it is stored and returned with keys sorted. `{}` is the same as no
/// metadata. It is part of the request an idempotency key stands for. A refused value is
/// BAD_USER_INPUT and changes nothing.
#[Scalar(name = "Metadata")]
impl ScalarType for Metadata {
    fn parse(value: Value) -> InputValueResult<Self> {
        pairs(&value).map(Metadata).map_err(|e| InputValueError::custom(e).with_extension("code", code::BAD_USER_INPUT))
    }

    fn is_valid(value: &Value) -> bool {
        pairs(value).is_ok()
    }

    fn to_value(&self) -> Value {
        let pairs = self.0.iter().flat_map(Parsed::pairs);
        Value::Object(pairs.map(|(k, v)| (Name::new(k), Value::String(v.to_string()))).collect())
    }
}

const _: () = assert!(MAX_KEYS == 16 && MAX_KEY_CHARS == 40 && MAX_VALUE_CHARS == 500 && MAX_JSON_BYTES == 4096);

/// Entries whose metadata has this key with exactly this value.
#[derive(InputObject, Debug, Clone)]
pub struct MetadataFilter {
    /// The key: 1 to 40 characters of letters, digits and `_ . -`.
    pub key: String,
    /// The value, compared exactly (case and all): 1 to 500 characters.
    pub value: String,
}
