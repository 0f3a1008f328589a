//! The idempotency protocol shared by every keyed operation: the key is checked first (after the
//! account lock, so concurrent duplicates see each other), a different request under the same
//! key is a conflict, and the first outcome, success or business refusal, is what every replay
//! gets. Input errors are rejected before this point and never stored.

use crate::entity::{account, idempotency_key};
use crate::ledger::AccountStatus;
use crate::service::accounts::{lock_by_external_id, status_of};
use crate::service::{Refusal, ServiceError};
use crate::store::idempotency;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Stored<T> {
    Done(T),
    Refused(Refusal),
}

impl<T> Stored<T> {
    pub fn into_result(self) -> Result<T, ServiceError> {
        match self {
            Stored::Done(value) => Ok(value),
            Stored::Refused(refusal) => Err(refusal.into()),
        }
    }
}

/// The start of every keyed operation, in this order: lock the account (so concurrent
/// duplicates serialize), check the key, then check that the account's status allows the
/// operation. A status refusal becomes the key's outcome like any business refusal.
pub async fn open<'a, T: DeserializeOwned + Serialize>(
    txn: &DatabaseTransaction,
    external_id: &str,
    request: KeyedRequest<'a>,
    allowed: impl FnOnce(AccountStatus) -> bool,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> Result<Opened<'a, T>, ServiceError> {
    let locked = lock_by_external_id(txn, external_id).await?;
    let keyed = Keyed { account_id: locked.id, operation: request.operation, key: request.key, request_hash: request.request_hash };
    if let Some(stored) = keyed.replay(txn).await? {
        return Ok(Opened::Done(stored));
    }
    if let Err(refusal) = admits(&locked, allowed)? {
        return Ok(Opened::Done(keyed.refuse(txn, refusal, now, ttl).await?));
    }
    Ok(Opened::Fresh(locked, keyed))
}

/// Whether the locked account's status allows the operation, and the refusal to keep under the
/// key if not.
pub(crate) fn admits(locked: &account::Model, allowed: impl FnOnce(AccountStatus) -> bool) -> Result<Result<(), Refusal>, ServiceError> {
    let status = status_of(locked)?;
    Ok(if allowed(status) { Ok(()) } else { Err(Refusal::AccountNotActive { status }) })
}

/// The outcome a record keeps, as it was first given.
pub(crate) fn stored_outcome<T: DeserializeOwned>(record: &idempotency_key::Model) -> Result<Stored<T>, ServiceError> {
    serde_json::from_str(&record.outcome).map_err(|e| anyhow::anyhow!("stored outcome of key {}: {e}", record.id).into())
}

/// An operation's name, the caller's key, and the hash of the request's outcome-deciding fields.
pub struct KeyedRequest<'a> {
    pub operation: &'static str,
    pub key: &'a str,
    pub request_hash: &'a str,
}

pub enum Opened<'a, T> {
    /// The operation's outcome is already known: a replay or a refusal.
    Done(Stored<T>),
    /// Go ahead on this locked account, and remember the outcome under this key.
    Fresh(account::Model, Keyed<'a>),
}

pub struct Keyed<'a> {
    pub account_id: i64,
    pub operation: &'static str,
    pub key: &'a str,
    pub request_hash: &'a str,
}

impl<'a> Keyed<'a> {
    /// The stored outcome of this key, if it was used before with the same request.
    async fn replay<T: DeserializeOwned>(&self, conn: &impl ConnectionTrait) -> Result<Option<Stored<T>>, ServiceError> {
        match idempotency::find(conn, self.account_id, self.operation, self.key).await? {
            Some(record) => self.replay_of(&record).map(Some),
            None => Ok(None),
        }
    }

    /// What this key's stored record gives this request: its first outcome, or
    /// `IDEMPOTENCY_CONFLICT` if the key was first used with another request.
    fn replay_of<T: DeserializeOwned>(&self, record: &idempotency_key::Model) -> Result<Stored<T>, ServiceError> {
        self.check_same(&record.request_hash)?;
        stored_outcome(record)
    }

    /// `IDEMPOTENCY_CONFLICT` unless `first_hash`, the hash of the request that first used this
    /// key (stored, or earlier in the same batch), is this request's.
    pub(crate) fn check_same(&self, first_hash: &str) -> Result<(), ServiceError> {
        if first_hash == self.request_hash {
            return Ok(());
        }
        Err(ServiceError::IdempotencyConflict(format!(
            "idempotency key {:?} was already used for a different {} request",
            self.key, self.operation
        )))
    }

    /// Stores a business refusal as this key's outcome and returns it: every replay refuses alike.
    async fn refuse<T: Serialize>(
        &self,
        conn: &impl ConnectionTrait,
        refusal: Refusal,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Stored<T>, ServiceError> {
        let refused = Stored::Refused(refusal);
        self.remember(conn, &refused, now, ttl).await?;
        Ok(refused)
    }

    pub async fn remember<T: Serialize>(
        &self,
        conn: &impl ConnectionTrait,
        outcome: &Stored<T>,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<(), ServiceError> {
        idempotency::insert(conn, self.record(outcome, now, ttl)?).await?;
        Ok(())
    }

    /// The row that keeps `outcome` under this key until `now + ttl`: what `remember` inserts,
    /// and what a batch inserts for all its keys in one statement. Its serialized form is what
    /// replays read back, so it must not change.
    pub(crate) fn record<T: Serialize>(
        &self,
        outcome: &Stored<T>,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<idempotency::NewRecord<'a>, ServiceError> {
        Ok(idempotency::NewRecord {
            account_id: self.account_id,
            operation: self.operation,
            key: self.key,
            request_hash: self.request_hash,
            outcome: serde_json::to_string(outcome).map_err(anyhow::Error::new)?,
            now,
            expires_at: now + ttl,
        })
    }
}
