//! The idempotency protocol shared by every keyed operation: the key is checked first (after the
//! account lock, so concurrent duplicates see each other), a different request under the same
//! key is a conflict, and the first outcome, success or business refusal, is what every replay
//! gets. Input errors are rejected before this point and never stored.

use crate::ledger::{AccountStatus, Credits};
use crate::service::ServiceError;
use crate::store::idempotency;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Stored<T> {
    Done(T),
    Refused(Refusal),
}

/// Business refusals that are part of an operation's outcome and so are replayed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Refusal {
    InsufficientCredits { requested: Credits, available: Credits },
    AccountNotActive { status: String },
}

impl From<Refusal> for ServiceError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::InsufficientCredits { requested, available } => ServiceError::InsufficientCredits { requested, available },
            Refusal::AccountNotActive { status } => {
                let status = status.parse().unwrap_or(AccountStatus::Suspended);
                ServiceError::AccountNotActive {
                    status,
                    message: refused_because(status).to_string(),
                }
            }
        }
    }
}

/// Why an account's status refuses an operation.
pub fn refused_because(status: AccountStatus) -> &'static str {
    match status {
        AccountStatus::Active => "active accounts are not refused",
        AccountStatus::Inactive => "an inactive account can be charged only for storage",
        AccountStatus::Suspended => "a suspended account can only be read",
    }
}

impl<T> Stored<T> {
    pub fn into_result(self) -> Result<T, ServiceError> {
        match self {
            Stored::Done(value) => Ok(value),
            Stored::Refused(refusal) => Err(refusal.into()),
        }
    }
}

pub struct Keyed<'a> {
    pub account_id: i64,
    pub operation: &'static str,
    pub key: &'a str,
    pub request_hash: String,
}

impl Keyed<'_> {
    /// The stored outcome of this key, if it was used before with the same request.
    pub async fn replay<T: DeserializeOwned>(&self, conn: &impl ConnectionTrait) -> Result<Option<Stored<T>>, ServiceError> {
        let Some(record) = idempotency::find(conn, self.account_id, self.operation, self.key).await? else {
            return Ok(None);
        };
        if record.request_hash != self.request_hash {
            return Err(ServiceError::IdempotencyConflict(format!(
                "idempotency key {:?} was already used for a different {} request",
                self.key, self.operation
            )));
        }
        let stored = serde_json::from_str(&record.outcome).map_err(|e| anyhow::anyhow!("stored outcome of key {}: {e}", record.id))?;
        Ok(Some(stored))
    }

    pub async fn remember<T: Serialize>(
        &self,
        conn: &impl ConnectionTrait,
        outcome: &Stored<T>,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<(), ServiceError> {
        let outcome = serde_json::to_string(outcome).map_err(anyhow::Error::new)?;
        idempotency::insert(
            conn,
            idempotency::NewRecord {
                account_id: self.account_id,
                operation: self.operation,
                key: self.key,
                request_hash: &self.request_hash,
                outcome,
                now,
                expires_at: now + ttl,
            },
        )
        .await?;
        Ok(())
    }
}
