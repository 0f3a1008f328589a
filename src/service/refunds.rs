//! Refunds (domain.md §5): money back for the unused part of a purchase, under the program's
//! terms. The refunded credits leave through the journal (a refund entry on the purchase's lot,
//! revoke entries on the promotional lots tied to it), and the payment system hears of it
//! through the outbox, in the same transaction.

use crate::ledger::refund::{RefundRefusal, refund_minor};
use crate::ledger::{Credits, balance};
use crate::service::input::{IdempotencyKey, reason};
use crate::service::keyed::{self, KeyedRequest, Opened, Refusal, Stored};
use crate::service::posting::{self, EntryMeta};
use crate::service::purchases::BONUS_ORIGIN;
use crate::service::{Ledger, ServiceError, tx};
use crate::store::journal::EntryKind;
use crate::store::{self, idempotency::request_hash, lots};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
use serde::{Deserialize, Serialize};

/// Who asks: a user within the program's window, or an operator within the longer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    User,
    Operator,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundReceipt {
    pub purchase_id: i64,
    pub refunded_minor: i64,
    pub currency: String,
    /// The purchase's unused credits taken back.
    pub credits: Credits,
    /// Promotional credits tied to the purchase, revoked.
    pub revoked: Credits,
}

impl Ledger {
    /// The external id of the account a purchase belongs to.
    pub async fn purchase_owner(&self, purchase_id: i64) -> Result<String, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("no purchase {purchase_id}"));
        let purchase = store::purchases::by_id(&self.db, purchase_id).await?.ok_or_else(not_found)?;
        let account = store::accounts::by_id(&self.db, purchase.account_id).await?.ok_or_else(not_found)?;
        Ok(account.external_id)
    }

    pub async fn purchase_by_id(&self, purchase_id: i64) -> Result<crate::entity::purchase::Model, ServiceError> {
        store::purchases::by_id(&self.db, purchase_id).await?.ok_or_else(|| ServiceError::NotFound(format!("no purchase {purchase_id}")))
    }

    pub async fn refund_purchase(
        &self,
        requester: Requester,
        purchase_id: i64,
        idempotency_key: &str,
        why: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<RefundReceipt, ServiceError> {
        let key = IdempotencyKey::parse(idempotency_key)?;
        let why = why.map(reason).transpose()?;
        let account = self.purchase_owner(purchase_id).await?;
        let hash = request_hash(&(purchase_id, &why));
        let (terms, ttl) = (self.program.refunds, self.idempotency_ttl);
        let stored = tx::write(&self.db, |txn| {
            let (account, key, hash, why) = (account.clone(), key.clone(), hash.clone(), why.clone());
            Box::pin(async move {
                // Money back is never blocked by the account's status.
                let request = KeyedRequest { operation: "refund", key: key.as_str(), request_hash: hash };
                let (locked, keyed) = match keyed::open(txn, account.as_str(), request, |_| true, now, ttl).await? {
                    Opened::Done(stored) => return Ok(stored),
                    Opened::Fresh(locked, keyed) => (locked, keyed),
                };
                let purchase =
                    store::purchases::by_id(txn, purchase_id).await?.ok_or_else(|| anyhow::anyhow!("purchase {purchase_id} vanished"))?;
                let (Some(paid_at), Some(lot_id), "paid") = (purchase.paid_at, purchase.lot_id, purchase.status.as_str()) else {
                    return keyed.refuse(txn, Refusal::Refund(RefundRefusal::NotPaid), now, ttl).await;
                };
                let window = match requester {
                    Requester::User => terms.window,
                    Requester::Operator => terms.operator_window,
                };
                if window.expires_at(paid_at).is_some_and(|closes| now >= closes) {
                    return keyed.refuse(txn, Refusal::Refund(RefundRefusal::WindowClosed), now, ttl).await;
                }
                let open = lots::open_for_account(txn, locked.id).await?;
                let rules: Vec<_> = open.iter().map(lots::to_rule).collect::<Result<_, _>>()?;
                let paid_lot = rules.iter().find(|l| l.id == lot_id && !l.is_expired(now));
                let unused = paid_lot.map_or(Credits::ZERO, |l| l.remaining);
                let bought = Credits::from_micros(purchase.credits_micros);
                let refunded_minor = match refund_minor(terms.policy, purchase.price_minor, bought, unused) {
                    Ok(minor) => minor,
                    Err(refusal) => return keyed.refuse(txn, Refusal::Refund(refusal), now, ttl).await,
                };
                // Promotional credits granted with this purchase are forfeited; the terms refuse
                // the refund if the account no longer holds that many credits.
                let bonus_lots = lots::by_origin(txn, locked.id, BONUS_ORIGIN, &purchase.id.to_string()).await?;
                let bonus_granted: Credits = bonus_lots.iter().map(|l| Credits::from_micros(l.granted_micros)).sum();
                if balance(&rules, now) < bonus_granted {
                    return keyed.refuse(txn, Refusal::Refund(RefundRefusal::PromotionalCreditsSpent), now, ttl).await;
                }
                let meta = EntryMeta {
                    idempotency_key: Some(key.as_str()),
                    reason: why.as_deref().or(Some("refund")),
                    ..EntryMeta::now("refund", now)
                };
                if let Some(lot) = paid_lot {
                    posting::debit(txn, locked.id, EntryKind::Refund, &[(lot, unused)], meta).await?;
                }
                let revocable: Vec<_> = rules
                    .iter()
                    .filter(|l| bonus_lots.iter().any(|b| b.id == l.id) && l.is_spendable(now))
                    .map(|l| (l, l.remaining))
                    .collect();
                let revoked: Credits = revocable.iter().map(|(_, amount)| *amount).sum();
                if !revocable.is_empty() {
                    let meta = EntryMeta { reason: Some("promotional credits of a refunded purchase"), ..meta };
                    posting::debit(txn, locked.id, EntryKind::Revoke, &revocable, meta).await?;
                }
                let currency = purchase.currency.clone();
                let mut refunded = purchase.into_active_model();
                refunded.status = Set("refunded".to_string());
                refunded.refunded_minor = Set(Some(refunded_minor));
                refunded.refunded_at = Set(Some(now));
                let refunded = refunded.update(txn).await?;
                let event = serde_json::json!({
                    "purchaseId": refunded.id,
                    "accountId": account.as_str(),
                    "paymentReference": refunded.payment_reference,
                    "amountMinor": refunded_minor,
                    "currency": currency,
                });
                store::outbox::publish(txn, "purchase.refunded", Some(locked.id), &event, now).await?;
                tracing::info!(account.id = locked.id, purchase.id = refunded.id, amount.minor = refunded_minor, "purchase refunded");
                let done = Stored::Done(RefundReceipt { purchase_id: refunded.id, refunded_minor, currency, credits: unused, revoked });
                keyed.remember(txn, &done, now, ttl).await?;
                Ok(done)
            })
        })
        .await?;
        stored.into_result()
    }
}
