//! Pending purchases end (issue 26): a purchase that is never paid is cancelled
//! (`cancel_purchase`), failed (`fail_purchase`) or expired (the `ExpirePendingPurchases` job,
//! `expire_pending_purchases`), so abandoned checkouts do not pile up and whoever waits on a
//! purchase (the product, a later auto top-up) learns how it ended.
//!
//! The transitions are `ledger::purchase::transition`'s. Every end is one conditional update
//! (`store::purchases::end_pending`, `WHERE status = 'pending'`) and its event
//! (`purchase.cancelled`, `purchase.failed`, `purchase.expired`) in the outbox, in the same
//! transaction: of a cancellation, a failure, the job and a confirmation racing on one purchase,
//! exactly one moves it, and there is one event per end.
//!
//! A pending purchase's lifetime is exact like a lot's expiry: from `created_at` + the
//! program's `pending_lifetime` it is expired, whether or not the job has run. A cancellation
//! or failure that arrives after that instant ends it as expired (dated at the instant) and is
//! refused with `INVALID_STATE`, so the outcome does not depend on when the job ran.

use crate::entity::purchase;
use crate::ledger::money::PurchaseStatus;
use crate::ledger::purchase::{PurchaseEvent, failures_in_a_row, is_past_lifetime, pending_until, transition};
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey, foreign_id, reason};
use crate::service::purchases::PurchaseView;
use crate::service::{Engine, Refusal, ServiceError, tx};
use crate::store::purchases::End;
use crate::store::{self, idempotency::request_hash};
use chrono::{DateTime, Duration, Utc};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};

/// Pending purchases expired per transaction of the job.
pub const MAX_PURCHASE_EXPIRY_BATCH: u64 = 200;

/// How many of an account's latest purchases `failures_in_a_row` reads at most: a run of
/// failures longer than this counts as this long.
pub const MAX_FAILURES_COUNTED: u64 = 100;

/// What a cancellation's or failure's key stands for: the purchase, why, and the failed
/// payment's reference.
#[derive(Serialize)]
struct EndFields<'a> {
    purchase_id: i64,
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_reference: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EndReceipt {
    purchase_id: i64,
}

/// The reason an expiry is recorded with.
pub fn expiry_reason(lifetime: Duration) -> String {
    let hours = lifetime.num_hours();
    if hours % 24 == 0 { format!("not paid within {} day(s)", hours / 24) } else { format!("not paid within {hours} hour(s)") }
}

impl Engine {
    /// Calls off a pending purchase (service): its checkout will not be paid. Keyed like every
    /// mutation; a purchase that is not pending is refused with `INVALID_STATE`, kept under the
    /// key.
    pub async fn cancel_purchase(
        &self,
        purchase_id: i64,
        why: Option<&str>,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<PurchaseView, ServiceError> {
        let key = IdempotencyKey::parse(idempotency_key)?;
        let why = why.map(reason).transpose()?;
        self.end_by_caller(purchase_id, PurchaseEvent::Cancel, key, why, None, now).await
    }

    /// Records that a pending purchase's payment failed (service), with why and, if the payment
    /// system gave one, the attempt's reference. Keyed; refused like `cancel_purchase`.
    pub async fn fail_purchase(
        &self,
        purchase_id: i64,
        why: &str,
        payment_reference: Option<&str>,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<PurchaseView, ServiceError> {
        let key = IdempotencyKey::parse(idempotency_key)?;
        let why = reason(why)?;
        if why.trim().is_empty() {
            return Err(ServiceError::bad_input("reason must say why the payment failed"));
        }
        let reference = payment_reference.map(|r| foreign_id("paymentReference", r)).transpose()?;
        self.end_by_caller(purchase_id, PurchaseEvent::Fail, key, Some(why), reference, now).await
    }

    async fn end_by_caller(
        &self,
        purchase_id: i64,
        event: PurchaseEvent,
        key: IdempotencyKey,
        why: Option<String>,
        reference: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<PurchaseView, ServiceError> {
        let account = ExternalId::parse(&self.purchase_owner(purchase_id).await?)?;
        let (operation, status) = match event {
            PurchaseEvent::Cancel => ("cancel_purchase", PurchaseStatus::Cancelled),
            PurchaseEvent::Fail => ("fail_purchase", PurchaseStatus::Failed),
            other => unreachable!("callers cancel or fail, not {other:?}"),
        };
        let command = Command {
            operation,
            account,
            key,
            request_hash: request_hash(&EndFields { purchase_id, reason: why.as_deref(), payment_reference: reference.as_deref() }),
            // Calling off a checkout moves no credits: any account status may.
            permit: Permit::Any,
            fields: (why, reference),
        };
        let lifetime = self.program.pending_lifetime;
        let program = self.program.clone();
        let receipt = self
            .execute(command, now, |run| {
                let program = program.clone();
                Box::pin(async move {
                    let Run { txn, account, command, now, .. } = run;
                    let (why, reference) = &command.fields;
                    let found = store::purchases::by_id(txn, purchase_id).await?;
                    let found = found.ok_or_else(|| anyhow::anyhow!("purchase {purchase_id} vanished"))?;
                    let current = store::purchases::status_of(&found)?;
                    if let Err(refused) = transition(current, event) {
                        return Ok(Err(Refusal::InvalidState { what: format!("purchase {purchase_id}: {refused}") }));
                    }
                    // Its lifetime ran out: it is expired now, whether or not the job has run.
                    if is_past_lifetime(found.created_at, lifetime, now) {
                        let until = pending_until(found.created_at, lifetime);
                        expire_one(txn, &found, &command.account, lifetime, now).await?;
                        return Ok(Err(Refusal::InvalidState {
                            what: format!("purchase {purchase_id}: it expired unpaid at {}", until.to_rfc3339()),
                        }));
                    }
                    let end = End { status, at: now, reason: why.as_deref(), failure_reference: reference.as_deref() };
                    let Some(ended) = store::purchases::end_pending(txn, purchase_id, end).await? else {
                        // Under the account's lock only the expiry job can have moved it.
                        let now_status = match store::purchases::by_id(txn, purchase_id).await? {
                            Some(row) => store::purchases::status_of(&row)?.to_string(),
                            None => "gone".to_string(),
                        };
                        return Ok(Err(Refusal::InvalidState { what: format!("purchase {purchase_id} is already {now_status}") }));
                    };
                    publish_end(txn, &ended, &command.account, now).await?;
                    if status == PurchaseStatus::Failed {
                        crate::service::auto_topup::on_failed(txn, &program, &ended, &command.account, now).await?;
                    }
                    tracing::info!(account.id = account.id, purchase.id = purchase_id, purchase.status = %status, "purchase ended");
                    Ok(Ok(EndReceipt { purchase_id }))
                })
            })
            .await?;
        self.purchase_by_id(receipt.purchase_id).await
    }

    /// One batch of the `ExpirePendingPurchases` job: the oldest pending purchases whose
    /// lifetime ran out by `now`, at most `limit`, expired in one transaction, each dated at its
    /// own expiry instant and announced (`purchase.expired`). How many it expired: one that a
    /// caller or another worker ended first is skipped (the update is conditional).
    pub async fn expire_pending_purchases(&self, now: DateTime<Utc>, limit: u64) -> Result<u64, ServiceError> {
        let lifetime = self.program.pending_lifetime;
        let cutoff = now - lifetime;
        let due = store::purchases::pending_created_before(&self.db, cutoff, limit).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let owners = store::accounts::by_ids(&self.db, &due.iter().map(|p| p.account_id).collect::<Vec<_>>()).await?;
        let mut batch = Vec::with_capacity(due.len());
        for pending in due {
            let owner = owners.iter().find(|a| a.id == pending.account_id);
            let owner = owner.ok_or_else(|| anyhow::anyhow!("purchase {}: no account", pending.id))?;
            batch.push((ExternalId::parse(&owner.external_id)?, pending));
        }
        let expired = tx::write_with(&self.writer, &batch, |txn, batch| {
            Box::pin(async move {
                let mut expired = 0u64;
                for (account, pending) in batch {
                    if expire_one(txn, pending, account, lifetime, now).await? {
                        expired += 1;
                    }
                }
                Ok(expired)
            })
        })
        .await?;
        if expired > 0 {
            tracing::info!(purchases.expired = expired, "pending purchases expired");
        }
        // A short count ends the drain: either nothing more is due, or another worker (or a
        // caller) is ending the same purchases, and the next tick picks up what is left.
        Ok(expired)
    }

    /// How many payments of the account failed in a row: back to its latest paid purchase,
    /// cancelled and expired ones skipped (`ledger::purchase::failures_in_a_row`), counting at
    /// most its `MAX_FAILURES_COUNTED` latest purchases.
    pub async fn purchase_failures_in_a_row(&self, account_id: i64) -> Result<u32, ServiceError> {
        let statuses = store::purchases::latest_statuses(&self.db, account_id, MAX_FAILURES_COUNTED).await?;
        Ok(failures_in_a_row(statuses))
    }
}

/// Expires `pending` if it still is, dated at its expiry instant, with its event (recorded at
/// `now`, when the change commits). False when something else ended it first.
pub(crate) async fn expire_one(
    txn: &impl ConnectionTrait,
    pending: &purchase::Model,
    account: &ExternalId,
    lifetime: Duration,
    now: DateTime<Utc>,
) -> Result<bool, ServiceError> {
    let at = pending_until(pending.created_at, lifetime);
    let why = expiry_reason(lifetime);
    let end = End { status: PurchaseStatus::Expired, at, reason: Some(&why), failure_reference: None };
    let Some(expired) = store::purchases::end_pending(txn, pending.id, end).await? else {
        return Ok(false);
    };
    publish_end(txn, &expired, account, now).await?;
    Ok(true)
}

/// The end's event for the product, in the transaction that ended the purchase:
/// `purchase.cancelled`, `purchase.failed` or `purchase.expired` (docs/webhooks).
async fn publish_end(
    txn: &impl ConnectionTrait,
    ended: &purchase::Model,
    account: &ExternalId,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let status = store::purchases::status_of(ended)?;
    let topic = match status {
        PurchaseStatus::Cancelled => "purchase.cancelled",
        PurchaseStatus::Failed => "purchase.failed",
        PurchaseStatus::Expired => "purchase.expired",
        other => return Err(anyhow::anyhow!("purchase {}: {other} is not an end", ended.id).into()),
    };
    let mut event = serde_json::json!({
        "purchaseId": ended.id,
        "accountId": account.as_str(),
        "amountMinor": ended.price_minor,
        "currency": ended.currency,
        "reason": ended.end_reason,
        "endedAt": ended.ended_at.map(|at| at.to_rfc3339()),
    });
    if status == PurchaseStatus::Failed {
        event["paymentReference"] = serde_json::json!(ended.failure_reference);
    }
    store::outbox::publish(txn, topic, Some(ended.account_id), &event, now).await?;
    Ok(())
}
