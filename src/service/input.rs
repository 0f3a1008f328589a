//! Parse, don't validate: inputs that reach the ledger are checked once, here.

use crate::service::ServiceError;

pub const MAX_KEY_CHARS: usize = 128;
pub const MAX_EXTERNAL_ID_CHARS: usize = 128;
pub const MAX_LABEL_CHARS: usize = crate::ledger::lot::MAX_NAME_CHARS;
pub const MAX_REASON_CHARS: usize = 500;

fn bounded(what: &str, value: &str, max: usize) -> Result<(), ServiceError> {
    if value.is_empty() {
        return Err(ServiceError::bad_input(format!("{what} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(ServiceError::bad_input(format!("{what} is longer than {max} characters")));
    }
    Ok(())
}

/// A caller's idempotency key: 1 to 128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(value: &str) -> Result<IdempotencyKey, ServiceError> {
        bounded("idempotencyKey", value, MAX_KEY_CHARS)?;
        if !value.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ServiceError::bad_input("idempotencyKey must be printable ASCII without spaces"));
        }
        Ok(IdempotencyKey(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The product's own id for an account: 1 to 128 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalId(String);

impl ExternalId {
    pub fn parse(value: &str) -> Result<ExternalId, ServiceError> {
        bounded("account id", value, MAX_EXTERNAL_ID_CHARS)?;
        if value.chars().any(char::is_control) || value.trim() != value {
            return Err(ServiceError::bad_input("account id must not contain control characters or surrounding spaces"));
        }
        Ok(ExternalId(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A feature, model or resource name: letters, digits and `._:/-`, up to 64 characters.
pub fn label(what: &str, value: &str) -> Result<String, ServiceError> {
    bounded(what, value, MAX_LABEL_CHARS)?;
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c)) {
        return Err(ServiceError::bad_input(format!("{what} may contain only letters, digits and . _ : / -")));
    }
    Ok(value.to_string())
}

/// Free text shown in histories: up to 500 characters, no control characters but newlines.
pub fn reason(value: &str) -> Result<String, ServiceError> {
    bounded("reason", value, MAX_REASON_CHARS)?;
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ServiceError::bad_input("reason must not contain control characters"));
    }
    Ok(value.to_string())
}

/// Another system's id we look up or keep (an ad network's transaction id, a payment
/// reference): 1 to 128 characters, no control characters or surrounding spaces.
pub fn foreign_id(what: &str, value: &str) -> Result<String, ServiceError> {
    bounded(what, value, MAX_EXTERNAL_ID_CHARS)?;
    if value.chars().any(char::is_control) || value.trim() != value {
        return Err(ServiceError::bad_input(format!("{what} must not contain control characters or surrounding spaces")));
    }
    Ok(value.to_string())
}

/// Text a caller sends that is stored as given (a job's input): up to `max` characters, no
/// control characters but newlines and tabs (PostgreSQL cannot store NUL; the rest are a
/// spoofing risk in whatever shows them).
pub fn text(what: &str, value: &str, max: usize) -> Result<String, ServiceError> {
    if value.chars().count() > max {
        return Err(ServiceError::bad_input(format!("{what} is longer than {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(ServiceError::bad_input(format!("{what} must not contain control characters")));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_ids_are_bounded() {
        assert!(IdempotencyKey::parse("order-42").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
        assert!(ExternalId::parse("user@example.com").is_ok());
        assert!(ExternalId::parse(" padded").is_err());
        assert!(ExternalId::parse("a\u{0}b").is_err());
        assert!(label("feature", "chat/gpt-5-mini").is_ok());
        assert!(label("feature", "drop table;").is_err());
        assert!(reason(&"r".repeat(501)).is_err());
        assert!(text("input", "two\nlines\tand 🙂", 20).is_ok());
        assert!(text("input", "nul\u{0}", 20).is_err());
        assert!(foreign_id("transactionId", "tx-1").is_ok());
        assert!(foreign_id("transactionId", "tx\u{0}").is_err());
        assert!(foreign_id("transactionId", "").is_err());
        assert!(text("input", &"i".repeat(21), 20).is_err());
    }
}
