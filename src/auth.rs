//! Bearer tokens: HS256 JWTs carrying a role and, for users, the account they act on.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Service,
    Admin,
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "service" => Ok(Role::Service),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}: user, service or admin")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::User => "user",
            Role::Service => "service",
            Role::Admin => "admin",
        })
    }
}

/// Who is calling. A user acts on one account, the token's subject, and nothing else. An
/// admin token names the operator it was issued to (its subject), which is recorded with
/// everything that operator does; tokens issued before subjects existed name none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    User { account: String },
    Service,
    Admin { subject: Option<String> },
}

/// What an admin token that names nobody is recorded as.
pub const UNNAMED_ADMIN: &str = "admin";

impl Caller {
    /// Who an operator's action is recorded under: the admin token's subject; none for users and
    /// the service, whose actions their own records (the account, the idempotency key) explain.
    pub fn actor(&self) -> Option<&str> {
        match self {
            Caller::Admin { subject } => Some(subject.as_deref().unwrap_or(UNNAMED_ADMIN)),
            Caller::User { .. } | Caller::Service => None,
        }
    }

    pub fn role(&self) -> Role {
        match self {
            Caller::User { .. } => Role::User,
            Caller::Service => Role::Service,
            Caller::Admin { .. } => Role::Admin,
        }
    }
}

/// Who issues our tokens and whom they are for: a token minted for another system with the
/// same secret (or by a careless copy of it) is not one of ours.
pub const ISSUER: &str = "credits";
pub const AUDIENCE: &str = "credits-api";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid or expired token")]
    Invalid,
    /// A token that was valid when a WebSocket connection was opened has expired since.
    #[error("the token has expired")]
    Expired,
    #[error("a user token names its account")]
    UserWithoutAccount,
    #[error("an admin token names its operator (a subject of 1 to 128 characters, no control characters)")]
    AdminWithoutSubject,
    #[error("this console link is unknown, used or expired: make a new one with `credits console-link`")]
    UnknownLink,
}

/// An operator's name as admin tokens carry it: 1 to 128 characters, no control characters and
/// no surrounding spaces, since it is shown in history and logs as it is.
pub fn check_subject(subject: &str) -> Result<(), AuthError> {
    let fits = (1..=128).contains(&subject.chars().count()) && subject.trim() == subject && !subject.chars().any(char::is_control);
    if fits { Ok(()) } else { Err(AuthError::AdminWithoutSubject) }
}

/// Leeway on a token's `exp` and `nbf`, in seconds: the clocks of whoever issued it and ours.
const LEEWAY: u64 = 5;

/// Tokens remembered at most (`AuthKeys::verified`); past that the memory starts again, so it
/// stays bounded (a few megabytes) however many tokens are seen.
const REMEMBERED: usize = 10_000;

/// Signs with the current secret; accepts the current one and, while a rotation is under way,
/// the previous one, so tokens issued just before the switch keep working until they expire.
#[derive(Clone)]
pub struct AuthKeys {
    encoding: EncodingKey,
    decoding: Vec<DecodingKey>,
    /// Tokens already checked, by their whole text, with their caller and `exp`: a client sends
    /// the same token with every request until it expires, and checking it again (the HMAC and
    /// two JSON documents) was 4% of a spend's instructions in the server (docs/benchmarks.md,
    /// change 31). A remembered token is still refused once expired; nothing else about it can
    /// change (its `nbf` was passed when it was checked, and the keys are fixed for the life of
    /// this value). Shared by the clones.
    verified: Arc<Mutex<HashMap<String, (Caller, i64)>>>,
}

impl AuthKeys {
    pub fn new(secret: &[u8]) -> AuthKeys {
        AuthKeys { encoding: EncodingKey::from_secret(secret), decoding: vec![DecodingKey::from_secret(secret)], verified: Arc::default() }
    }

    /// Also accepts tokens signed with `previous` (a rotation: two accepted at once).
    pub fn with_previous(mut self, previous: &[u8]) -> AuthKeys {
        self.decoding.push(DecodingKey::from_secret(previous));
        // Another key set: what it accepts must not reach a clone of the value it came from
        // (which would then take tokens signed with `previous`).
        self.verified = Arc::default();
        self
    }

    /// A token for `role`; `subject` is the account a user token acts on, or the operator an
    /// admin token is issued to (both required).
    pub fn issue(&self, role: Role, subject: Option<&str>, ttl: std::time::Duration) -> Result<String, AuthError> {
        match (role, subject) {
            (Role::User, None) => return Err(AuthError::UserWithoutAccount),
            (Role::Admin, None) => return Err(AuthError::AdminWithoutSubject),
            (Role::Admin, Some(name)) => check_subject(name)?,
            _ => {}
        }
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            role,
            sub: subject.map(str::to_string),
            iss: ISSUER.to_string(),
            aud: AUDIENCE.to_string(),
            iat: now,
            exp: now.saturating_add(ttl),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|_| AuthError::Invalid)
    }

    /// The caller named by an `Authorization: Bearer ...` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        self.authenticate_until(header).map(|(caller, _)| caller)
    }

    /// The caller and the instant its token expires (`exp`, Unix seconds): a WebSocket keeps
    /// the caller for as long as it is open, so it must know when to stop trusting it.
    pub fn authenticate_until(&self, header: Option<&str>) -> Result<(Caller, i64), AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header.strip_prefix("Bearer ").ok_or(AuthError::Invalid)?.trim();
        let remembered = self.remembered().get(token).cloned();
        if let Some((caller, exp)) = remembered {
            // The library's own test: expired once `exp` is more than the leeway ago.
            let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
            return if exp >= now.saturating_sub(LEEWAY as i64) { Ok((caller, exp)) } else { Err(AuthError::Invalid) };
        }
        let (caller, exp) = self.verify(token)?;
        let mut remembered = self.remembered();
        if remembered.len() >= REMEMBERED {
            remembered.clear();
        }
        remembered.insert(token.to_string(), (caller.clone(), exp));
        Ok((caller, exp))
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Caller, i64)>> {
        // Nothing panics while holding it: a map's get, insert and clear.
        self.verified.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks `token`'s signature and claims.
    fn verify(&self, token: &str) -> Result<(Caller, i64), AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY;
        // A token issued to start later (`nbf`) is not valid yet; the library skips this unless asked.
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = self.decoding.iter().find_map(|key| decode::<Claims>(token, key, &validation).ok()).ok_or(AuthError::Invalid)?.claims;
        let caller = match (claims.role, claims.sub) {
            (Role::User, Some(account)) => Caller::User { account },
            (Role::User, None) => return Err(AuthError::UserWithoutAccount),
            (Role::Service, _) => Caller::Service,
            (Role::Admin, subject) => Caller::Admin { subject },
        };
        Ok((caller, claims.exp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tokens_round_trip_and_foreign_ones_fail() {
        let keys = AuthKeys::new(b"0123456789abcdef0123456789abcdef");
        let token = keys.issue(Role::User, Some("alice"), Duration::from_secs(60)).unwrap();
        assert_eq!(keys.authenticate(Some(&format!("Bearer {token}"))), Ok(Caller::User { account: "alice".into() }));
        let other = AuthKeys::new(b"another-secret-another-secret-xx");
        assert_eq!(other.authenticate(Some(&format!("Bearer {token}"))), Err(AuthError::Invalid));
        assert_eq!(keys.authenticate(None), Err(AuthError::Missing));
        assert_eq!(keys.authenticate(Some(&token)), Err(AuthError::Invalid));
        assert!(keys.issue(Role::User, None, Duration::from_secs(60)).is_err());
        let (_, expires) = keys.authenticate_until(Some(&format!("Bearer {token}"))).unwrap();
        assert!((expires - chrono::Utc::now().timestamp() - 60).abs() <= 1, "exp is the token's: {expires}");
    }

    #[test]
    fn expired_tokens_fail() {
        let keys = AuthKeys::new(b"0123456789abcdef0123456789abcdef");
        let now = chrono::Utc::now().timestamp();
        let claims =
            |iss: &str, aud: &str, exp: i64| Claims { role: Role::Admin, sub: None, iss: iss.into(), aud: aud.into(), iat: now - 120, exp };
        let sign = |c: Claims| format!("Bearer {}", encode(&Header::new(Algorithm::HS256), &c, &keys.encoding).unwrap());
        assert_eq!(keys.authenticate(Some(&sign(claims(ISSUER, AUDIENCE, now - 60)))), Err(AuthError::Invalid), "expired");
        assert_eq!(keys.authenticate(Some(&sign(claims(ISSUER, AUDIENCE, now + 60)))), Ok(Caller::Admin { subject: None }));
        assert_eq!(keys.authenticate(Some(&sign(claims("someone-else", AUDIENCE, now + 60)))), Err(AuthError::Invalid), "issuer");
        assert_eq!(keys.authenticate(Some(&sign(claims(ISSUER, "another-api", now + 60)))), Err(AuthError::Invalid), "audience");
        // A token with none of them, as another system with the same secret might mint.
        #[derive(Serialize)]
        struct Bare {
            role: Role,
            exp: i64,
        }
        let bare = encode(&Header::new(Algorithm::HS256), &Bare { role: Role::Admin, exp: now + 60 }, &keys.encoding).unwrap();
        assert_eq!(keys.authenticate(Some(&format!("Bearer {bare}"))), Err(AuthError::Invalid));
        // alg=none and another algorithm are refused whatever they claim.
        let none = format!("{}.{}.", "eyJhbGciOiJub25lIn0", "eyJyb2xlIjoiYWRtaW4iLCJleHAiOjk5OTk5OTk5OTl9");
        assert_eq!(keys.authenticate(Some(&format!("Bearer {none}"))), Err(AuthError::Invalid));
    }

    #[test]
    fn a_checked_token_is_remembered_until_it_expires_and_only_its_exact_text() {
        let keys = AuthKeys::new(b"0123456789abcdef0123456789abcdef");
        let token = keys.issue(Role::User, Some("alice"), Duration::from_secs(60)).unwrap();
        let alice = Ok(Caller::User { account: "alice".into() });
        assert_eq!(keys.authenticate(Some(&format!("Bearer {token}"))), alice);
        assert_eq!(keys.remembered().len(), 1, "checked once, remembered");
        // The clones share the memory; a token one character off is checked, and refused.
        let clone = keys.clone();
        assert_eq!(clone.authenticate(Some(&format!("Bearer {token}"))), alice);
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(clone.authenticate(Some(&format!("Bearer {tampered}"))), Err(AuthError::Invalid));
        assert_eq!(keys.remembered().len(), 1, "a refused token is not remembered");
        // What is remembered is what answers (a text no key signed stands for the memory here),
        // and an `exp` past the leeway is refused from memory as the library refuses it.
        let now = chrono::Utc::now().timestamp();
        keys.remembered().insert("remembered".into(), (Caller::Service, now - 2));
        assert_eq!(keys.authenticate(Some("Bearer remembered")), Ok(Caller::Service), "within the leeway");
        keys.remembered().insert("remembered".into(), (Caller::Service, now - LEEWAY as i64 - 2));
        assert_eq!(keys.authenticate(Some("Bearer remembered")), Err(AuthError::Invalid), "expired");
        // Bounded: past `REMEMBERED` tokens the memory starts again.
        let held = keys.remembered().len();
        for n in held..REMEMBERED {
            keys.remembered().insert(format!("filler-{n}"), (Caller::Service, now + 60));
        }
        let bob = keys.issue(Role::User, Some("bob"), Duration::from_secs(60)).unwrap();
        assert_eq!(keys.authenticate(Some(&format!("Bearer {bob}"))), Ok(Caller::User { account: "bob".into() }));
        assert_eq!(keys.remembered().len(), 1, "full: forgotten, then bob's remembered");
    }

    #[test]
    fn a_rotation_accepts_the_previous_secret_until_it_is_dropped() {
        let old = AuthKeys::new(b"old-secret-old-secret-old-secret");
        let token = old.issue(Role::Service, None, Duration::from_secs(60)).unwrap();
        let rotated = AuthKeys::new(b"new-secret-new-secret-new-secret").with_previous(b"old-secret-old-secret-old-secret");
        assert_eq!(rotated.authenticate(Some(&format!("Bearer {token}"))), Ok(Caller::Service));
        let fresh = rotated.issue(Role::Service, None, Duration::from_secs(60)).unwrap();
        assert_eq!(old.authenticate(Some(&format!("Bearer {fresh}"))), Err(AuthError::Invalid), "new tokens use the new secret");
        let done = AuthKeys::new(b"new-secret-new-secret-new-secret");
        assert_eq!(done.authenticate(Some(&format!("Bearer {token}"))), Err(AuthError::Invalid));
        // A rotation made from a clone does not teach the value it came from.
        let base = AuthKeys::new(b"new-secret-new-secret-new-secret");
        let widened = base.clone().with_previous(b"old-secret-old-secret-old-secret");
        assert_eq!(widened.authenticate(Some(&format!("Bearer {token}"))), Ok(Caller::Service));
        assert_eq!(base.authenticate(Some(&format!("Bearer {token}"))), Err(AuthError::Invalid));
    }
}
