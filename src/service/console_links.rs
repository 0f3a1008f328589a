//! One-time links into the console (`credits console-link`): a random code that the console
//! page exchanges, once, for a short-lived admin token naming the operator. The link can sit in
//! a terminal's scrollback or a chat without becoming a standing credential: it works once and
//! for minutes; the session it opens lasts an hour and lives only in the browser tab.
//!
//! Only the code's SHA-256 is stored, so a copy of the database opens no console.

use crate::service::{Engine, ServiceError};
use crate::store;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

/// How long a link works by default, and at most.
pub const DEFAULT_LINK_TTL: Duration = Duration::minutes(10);
pub const MAX_LINK_TTL: Duration = Duration::hours(24);
/// How long the admin token a link opens is valid: one working session.
pub const SESSION_TTL: Duration = Duration::hours(1);

/// 32 random bytes, base64url: 43 characters.
const CODE_BYTES: usize = 32;

fn hash_of(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

impl Engine {
    /// A new link's code for the operator `subject`, valid for `ttl` from `now`.
    pub async fn create_console_link(&self, subject: &str, ttl: Duration, now: DateTime<Utc>) -> Result<String, ServiceError> {
        crate::auth::check_subject(subject).map_err(|e| ServiceError::bad_input(e.to_string()))?;
        if ttl <= Duration::zero() || ttl > MAX_LINK_TTL {
            return Err(ServiceError::bad_input("a console link lives more than 0 s and at most 24 h"));
        }
        let code = URL_SAFE_NO_PAD.encode(rand::random::<[u8; CODE_BYTES]>());
        let now = crate::ledger::time::truncate(now);
        store::console_links::insert(&self.db, &hash_of(&code), subject, now, now + ttl).await?;
        Ok(code)
    }

    /// The operator a link's `code` signs in, marking it used; none if the code is unknown,
    /// already used or expired (the three look alike to the caller, on purpose).
    pub async fn redeem_console_link(&self, code: &str, now: DateTime<Utc>) -> Result<Option<String>, ServiceError> {
        if code.is_empty() || code.len() > 128 {
            return Ok(None);
        }
        let link = store::console_links::redeem(&self.db, &hash_of(code), crate::ledger::time::truncate(now)).await?;
        Ok(link.map(|link| link.subject))
    }
}
