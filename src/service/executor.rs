//! The one way a keyed operation that moves credits runs. A use case parses its request at the
//! edge into a `Command` (the account, the key, the hash of the fields that decide the outcome,
//! which account statuses may run it, and the fields themselves), then hands the executor its
//! body: the decision and the writes, given the locked account. The executor owns the rest, the
//! same for every operation:
//!
//! 1. a write transaction, retried whole on a transient conflict (`tx`);
//! 2. the account's lock, taken before the key is read, so concurrent duplicates serialize;
//! 3. the key: a replay returns the first outcome, the same key with another request is
//!    `IDEMPOTENCY_CONFLICT`;
//! 4. the account's status: a refusal is stored as the key's outcome like any other;
//! 5. the body's outcome remembered under the key, a business refusal included (its writes, such
//!    as a recorded coupon guess, commit with it), and committed with the body's writes.
//!
//! An `Err` from the body is not an outcome: nothing commits and the key stays free.

use crate::entity::account;
use crate::ledger::AccountStatus;
use crate::service::input::{ExternalId, IdempotencyKey};
use crate::service::keyed::{self, KeyedRequest, Opened, Refusal, Stored};
use crate::service::{Ledger, ServiceError, tx};
use crate::store;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::DatabaseTransaction;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A keyed operation's request, past every input rule.
pub(crate) struct Command<F> {
    /// The name outcomes are kept under: one key space per operation and account.
    pub operation: &'static str,
    pub account: ExternalId,
    pub key: IdempotencyKey,
    /// The hash of the fields that decide the outcome (`store::idempotency::request_hash`).
    pub request_hash: String,
    pub permit: Permit,
    /// What the body needs of the request.
    pub fields: F,
}

/// Which account statuses may run an operation (`ledger::AccountStatus`).
#[derive(Debug, Clone)]
pub(crate) enum Permit {
    /// Purchases, grants and claims: anything but a suspended account.
    ReceiveCredits,
    /// A charge for this feature: active accounts, and inactive ones for storage.
    ChargeFor(String),
    /// Active accounts only.
    Active,
    /// Any status: settling what is already held.
    Any,
}

impl Permit {
    fn allows(&self, status: AccountStatus) -> bool {
        match self {
            Permit::ReceiveCredits => status.may_receive_credits(),
            Permit::ChargeFor(feature) => status.may_be_charged_for(feature),
            Permit::Active => status == AccountStatus::Active,
            Permit::Any => true,
        }
    }
}

/// What a body sees: the open transaction, the locked account, the command and the instant.
pub(crate) struct Run<'t, F> {
    pub txn: &'t DatabaseTransaction,
    pub ledger: &'t Ledger,
    pub account: &'t account::Model,
    pub command: &'t Command<F>,
    pub now: DateTime<Utc>,
}

/// A body's outcome: done, or refused for a business reason (kept under the key), or failed
/// (nothing kept).
pub(crate) type Decision<T> = Result<Result<T, Refusal>, ServiceError>;

impl Ledger {
    /// Runs `body` for `command` under the idempotency protocol (the module's comment).
    pub(crate) async fn execute<F, T, B>(&self, command: Command<F>, now: DateTime<Utc>, body: B) -> Result<T, ServiceError>
    where
        F: Sync,
        T: Serialize + DeserializeOwned + Send + Sync,
        B: for<'t> Fn(Run<'t, F>) -> BoxFuture<'t, Decision<T>> + Sync,
    {
        self.execute_also_locking(command, &[], now, body).await
    }

    /// `execute` for an operation that moves credits between the command's account and others
    /// (a market job pays its provider): all of them are locked first, in id order, so that two
    /// such operations in opposite directions never wait on each other in a cycle.
    pub(crate) async fn execute_also_locking<F, T, B>(
        &self,
        command: Command<F>,
        others: &[i64],
        now: DateTime<Utc>,
        body: B,
    ) -> Result<T, ServiceError>
    where
        F: Sync,
        T: Serialize + DeserializeOwned + Send + Sync,
        B: for<'t> Fn(Run<'t, F>) -> BoxFuture<'t, Decision<T>> + Sync,
    {
        let ttl = self.idempotency_ttl;
        let context = (self, command, body, others);
        let stored = tx::write_with(&self.db, &context, |txn, (ledger, command, body, others)| {
            Box::pin(async move {
                if !others.is_empty() {
                    let own = store::accounts::by_external_id(txn, command.account.as_str())
                        .await?
                        .ok_or_else(|| ServiceError::NotFound(format!("no account {:?}", command.account.as_str())))?;
                    let mut ids: Vec<i64> = others.iter().copied().chain([own.id]).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    store::accounts::lock_many(txn, &ids).await?;
                }
                let request =
                    KeyedRequest { operation: command.operation, key: command.key.as_str(), request_hash: command.request_hash.clone() };
                let allowed = |status| command.permit.allows(status);
                let (locked, keyed) = match keyed::open(txn, command.account.as_str(), request, allowed, now, ttl).await? {
                    Opened::Done(stored) => return Ok(stored),
                    Opened::Fresh(locked, keyed) => (locked, keyed),
                };
                let outcome = match body(Run { txn, ledger, account: &locked, command, now }).await? {
                    Ok(value) => Stored::Done(value),
                    Err(refusal) => Stored::Refused(refusal),
                };
                keyed.remember(txn, &outcome, now, ttl).await?;
                Ok(outcome)
            })
        })
        .await?;
        stored.into_result()
    }
}
