//! What a Stripe event does to the ledger (issue 27; `crate::stripe` reads and verifies it).
//!
//! Every event is recorded once by its id (`stripe_events`), with its outcome; a redelivered
//! event finds its record and changes nothing. Each effect is also idempotent by itself, so an
//! event whose effect committed but whose record did not (a crash between the two) is
//! harmless when Stripe delivers it again:
//!
//! - a payment confirms its purchase with the PaymentIntent id as the payment reference
//!   (`confirm_purchase`, idempotent on the reference), whichever of
//!   `checkout.session.completed`, `checkout.session.async_payment_succeeded` and
//!   `payment_intent.succeeded` comes first; the amount and currency must be the purchase's;
//! - a failed payment fails a pending purchase (`fail_purchase`, keyed by the event id), except
//!   an attempt on our Checkout page, which stays open for another card;
//! - `charge.refunded`: the ledger records its own refunds before it asks Stripe for them, so
//!   what the charge says was refunded beyond the purchase's `refunded_minor` was refunded in
//!   Stripe's dashboard. That part is applied under the program's rules, in proportion to the
//!   money (`ledger::refund::external_refund_take`), keyed by the event id in one transaction
//!   with the event's record.
//!
//! Whatever the rules refuse although Stripe has moved the money (a payment for a cancelled
//! purchase, an amount that is not the price, a dashboard refund of spent credits) is recorded
//! as `needs_attention` and announced once to the operator as `purchase.needs_attention`.

use crate::ledger::money::PurchaseStatus;
use crate::ledger::refund::{RefundRefusal, external_refund_take};
use crate::ledger::{Credits, LotClass};
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey};
use crate::service::posting::{self, EntryMeta};
use crate::service::refunds::{Requester, lot_of, read_bonus, read_lots, refundable};
use crate::service::reservations::release_lapsed;
use crate::service::{Engine, Refusal, ServiceError, tx};
use crate::store::journal::EntryKind;
use crate::store::stripe_events::Received;
use crate::store::{self, idempotency::request_hash};
use crate::stripe::events::{ChargeRefund, Event, Failure, Meaning, Payment};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, IntoActiveModel, Set};
use serde::{Deserialize, Serialize};

/// What an event did, as `stripe_events.outcome` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It paid its purchase.
    Confirmed,
    /// Its purchase was already paid by this payment (another event about it came first).
    AlreadyApplied,
    /// It failed its pending purchase.
    Failed,
    /// A failed attempt that does not end the purchase, or one about a purchase already ended.
    Noted,
    /// A dashboard refund, applied to the purchase.
    RefundApplied,
    /// A refund the ledger already holds (ours, or one applied before).
    RefundKnown,
    /// Stripe moved money the rules cannot follow: an operator looks (`purchase.needs_attention`).
    NeedsAttention,
    /// Not about a purchase of ours, or a type the ledger does not act on.
    Ignored,
    /// Received before: nothing done again.
    Duplicate,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Confirmed => "confirmed",
            Outcome::AlreadyApplied => "already_applied",
            Outcome::Failed => "failed",
            Outcome::Noted => "noted",
            Outcome::RefundApplied => "refund_applied",
            Outcome::RefundKnown => "refund_known",
            Outcome::NeedsAttention => "needs_attention",
            Outcome::Ignored => "ignored",
            Outcome::Duplicate => "duplicate",
        }
    }
}

/// What a dashboard refund's key stands for.
#[derive(Serialize)]
struct RefundFields<'a> {
    event_id: &'a str,
    payment_intent: &'a str,
    amount_refunded: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RefundApplied {
    credits: Credits,
}

impl Engine {
    /// Applies one verified event; what it did. An `Err` is a failure of ours (the database):
    /// the endpoint answers 500 and Stripe delivers the event again later.
    pub async fn handle_stripe_event(&self, event: &Event, now: DateTime<Utc>) -> Result<Outcome, ServiceError> {
        if store::stripe_events::by_id(&self.db, &event.id).await?.is_some() {
            return Ok(Outcome::Duplicate);
        }
        let outcome = match event.meaning() {
            Meaning::Ignored(why) => self.record_stripe(event, None, Outcome::Ignored, Some(why), now).await?,
            Meaning::Paid(payment) => self.stripe_paid(event, &payment, now).await?,
            Meaning::Failed(failure) => self.stripe_failed(event, &failure, now).await?,
            Meaning::Refunded(refund) => self.stripe_refunded(event, &refund, now).await?,
        };
        tracing::info!(stripe.event = %event.id, stripe.type = %event.kind, stripe.outcome = outcome.as_str(), "stripe event");
        Ok(outcome)
    }

    async fn record_stripe(
        &self,
        event: &Event,
        purchase_id: Option<i64>,
        outcome: Outcome,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, ServiceError> {
        let received = Received { event_id: &event.id, event_type: &event.kind, purchase_id, outcome: outcome.as_str(), detail };
        Ok(if store::stripe_events::record(&self.db, received, now).await? { outcome } else { Outcome::Duplicate })
    }

    /// Records the event as needing an operator and announces it, once: both in one
    /// transaction, and only by the call that recorded the event.
    async fn needs_attention(
        &self,
        event: &Event,
        purchase_id: Option<i64>,
        why: String,
        now: DateTime<Utc>,
    ) -> Result<Outcome, ServiceError> {
        let (event, why) = (event.clone(), why.clone());
        tx::write(&self.writer, |txn| {
            let (event, why) = (event.clone(), why.clone());
            Box::pin(async move { attention_in(txn, &event, purchase_id, &why, now).await })
        })
        .await
    }

    async fn stripe_paid(&self, event: &Event, payment: &Payment, now: DateTime<Utc>) -> Result<Outcome, ServiceError> {
        let id = payment.purchase_id;
        let Some(purchase) = store::purchases::by_id(&self.db, id).await? else {
            let why = format!("Stripe took a payment ({}) for purchase {id}, which does not exist", payment.payment_intent);
            return self.needs_attention(event, None, why, now).await;
        };
        if purchase.payment_reference.as_deref() == Some(payment.payment_intent.as_str()) {
            return self.record_stripe(event, Some(id), Outcome::AlreadyApplied, None, now).await;
        }
        if let Some(currency) = &payment.currency
            && !currency.eq_ignore_ascii_case(&purchase.currency)
        {
            let why = format!("paid in {currency}, but purchase {id} is priced in {}", purchase.currency);
            return self.needs_attention(event, Some(id), why, now).await;
        }
        match self.confirm(id, &payment.payment_intent, payment.amount_minor, now).await {
            Ok((_, true)) => self.record_stripe(event, Some(id), Outcome::Confirmed, None, now).await,
            Ok((_, false)) => self.record_stripe(event, Some(id), Outcome::AlreadyApplied, None, now).await,
            Err(
                refused @ (ServiceError::BadInput(_)
                | ServiceError::IdempotencyConflict(_)
                | ServiceError::Refused(_)
                | ServiceError::NotFound(_)),
            ) => {
                let why = format!("Stripe took payment {} for purchase {id}, which the ledger refused: {refused}", payment.payment_intent);
                self.needs_attention(event, Some(id), why, now).await
            }
            Err(other) => Err(other),
        }
    }

    async fn stripe_failed(&self, event: &Event, failure: &Failure, now: DateTime<Utc>) -> Result<Outcome, ServiceError> {
        let id = failure.purchase_id;
        if failure.checkout_may_retry {
            let detail = "an attempt on the Checkout page failed; the page stays open for another try";
            return self.record_stripe(event, Some(id), Outcome::Noted, Some(detail), now).await;
        }
        let Some(purchase) = store::purchases::by_id(&self.db, id).await? else {
            return self.record_stripe(event, None, Outcome::Ignored, Some("no such purchase"), now).await;
        };
        if store::purchases::status_of(&purchase)? != PurchaseStatus::Pending {
            return self.record_stripe(event, Some(id), Outcome::Noted, Some("the purchase is no longer pending"), now).await;
        }
        let key = format!("stripe-{}", event.id);
        match self.fail_purchase(id, &failure.reason, failure.payment_intent.as_deref(), &key, now).await {
            Ok(_) => self.record_stripe(event, Some(id), Outcome::Failed, None, now).await,
            // It ended (paid, expired) between the read and the call.
            Err(ServiceError::Refused(refusal)) => {
                self.record_stripe(event, Some(id), Outcome::Noted, Some(&refusal.to_string()), now).await
            }
            Err(other) => Err(other),
        }
    }

    async fn stripe_refunded(&self, event: &Event, refund: &ChargeRefund, now: DateTime<Utc>) -> Result<Outcome, ServiceError> {
        let Some(purchase) = store::purchases::by_payment_reference(&self.db, &refund.payment_intent).await? else {
            return self.record_stripe(event, None, Outcome::Ignored, Some("no purchase was paid by this PaymentIntent"), now).await;
        };
        let id = purchase.id;
        let ours = purchase.stripe_refund_id.as_ref().is_some_and(|ours| refund.refund_ids.contains(ours));
        if ours || refund.amount_refunded <= purchase.refunded_minor.unwrap_or(0) {
            return self.record_stripe(event, Some(id), Outcome::RefundKnown, None, now).await;
        }
        if let Some(currency) = &refund.currency
            && !currency.eq_ignore_ascii_case(&purchase.currency)
        {
            let why = format!("refunded in {currency}, but purchase {id} is priced in {}", purchase.currency);
            return self.needs_attention(event, Some(id), why, now).await;
        }
        let account = store::accounts::by_id(&self.db, purchase.account_id).await?;
        let account = account.ok_or_else(|| anyhow::anyhow!("purchase {id}: no account"))?;
        let command = Command {
            operation: "stripe_refund",
            account: ExternalId::parse(&account.external_id)?,
            key: IdempotencyKey::parse(&format!("stripe-{}", event.id))?,
            request_hash: request_hash(&RefundFields {
                event_id: &event.id,
                payment_intent: &refund.payment_intent,
                amount_refunded: refund.amount_refunded,
            }),
            // Stripe gave the money back whatever the account's status.
            permit: Permit::Any,
            fields: (event.clone(), refund.amount_refunded),
        };
        let terms = self.program.refunds;
        let applied = self
            .execute(command, now, |run| {
                Box::pin(async move {
                    let Run { txn, account: locked, command, now, .. } = run;
                    let (event, amount_refunded) = &command.fields;
                    let purchase = store::purchases::by_id(txn, id).await?.ok_or_else(|| anyhow::anyhow!("purchase {id} vanished"))?;
                    let before = purchase.refunded_minor.unwrap_or(0);
                    if *amount_refunded <= before {
                        // Applied by a concurrent delivery between the read and the lock.
                        store::stripe_events::record(txn, received(event, Some(id), Outcome::RefundKnown, None), now).await?;
                        return Ok(Ok(RefundApplied { credits: Credits::ZERO }));
                    }
                    let refuse = |refusal: RefundRefusal| async move {
                        let why = format!("a refund made in Stripe's dashboard cannot be applied to purchase {id}: {refusal}");
                        attention_in(txn, event, Some(id), &why, now).await?;
                        Ok::<_, ServiceError>(Err(Refusal::Refund(refusal)))
                    };
                    // The window is the operator's: a refund made in the dashboard is an operator's act.
                    let lot_id = match (store::purchases::status_of(&purchase)?, purchase.lot_id) {
                        (PurchaseStatus::Paid, _) => match refundable(&purchase, &terms, Requester::Operator, now) {
                            Ok(lot_id) => lot_id,
                            Err(refusal) => return refuse(refusal).await,
                        },
                        (PurchaseStatus::Refunded, Some(lot_id)) => lot_id,
                        _ => return refuse(RefundRefusal::NotPaid).await,
                    };
                    release_lapsed(txn, &[locked.id], now).await?;
                    let lots = read_lots(txn, locked.id, &[lot_id]).await?;
                    let paid_lot = lot_of(&lots, lot_id);
                    let unused = if paid_lot.is_expired(now) { Credits::ZERO } else { paid_lot.remaining };
                    let bought = Credits::from_micros(purchase.credits_micros);
                    let take = match external_refund_take(terms.policy, bought, purchase.price_minor, before, *amount_refunded, unused) {
                        Ok(take) => take,
                        Err(refusal) => return refuse(refusal).await,
                    };
                    // The bonus granted with the purchase goes back whole with its first refund;
                    // only if it is all there (a user's refund makes up a spent bonus out of the
                    // unused credits; the dashboard's amount leaves no room for that).
                    let bonus = read_bonus(txn, locked.id, id).await?;
                    let bonus_lots: Vec<_> =
                        lots.iter().filter(|l| bonus.ids.contains(&l.id) && l.is_spendable(now) && !l.remaining.is_zero()).collect();
                    let bonus_left = Credits::from_micros(bonus_lots.iter().map(|l| l.remaining.micros()).sum());
                    if before == 0 && bonus_left != bonus.granted {
                        return refuse(RefundRefusal::PromotionalCreditsSpent).await;
                    }
                    let reason = format!(
                        "refunded in Stripe's dashboard ({} {} of {})",
                        amount_refunded - before,
                        purchase.currency,
                        purchase.price_minor
                    );
                    let meta =
                        EntryMeta { idempotency_key: Some(command.key.as_str()), reason: Some(&reason), ..EntryMeta::now("refund", now) };
                    if !take.is_zero() {
                        posting::debit(txn, locked.id, EntryKind::Refund, &[(paid_lot, take)], meta).await?;
                    }
                    if before == 0 && !bonus_lots.is_empty() {
                        debug_assert!(bonus_lots.iter().all(|l| l.class == LotClass::Promotional));
                        let revoke_reason = format!("promotional credits of refunded purchase {id}");
                        let revocable: Vec<_> = bonus_lots.iter().map(|l| (*l, l.remaining)).collect();
                        posting::debit(txn, locked.id, EntryKind::Revoke, &revocable, EntryMeta { reason: Some(&revoke_reason), ..meta })
                            .await?;
                    }
                    let mut refunded = purchase.into_active_model();
                    refunded.status = Set(PurchaseStatus::Refunded.to_string());
                    refunded.refunded_minor = Set(Some(*amount_refunded));
                    refunded.refunded_at = Set(Some(now));
                    let refunded = refunded.update(txn).await?;
                    let payload = serde_json::json!({
                        "purchaseId": refunded.id,
                        "accountId": command.account.as_str(),
                        "paymentReference": refunded.payment_reference,
                        "amountMinor": amount_refunded - before,
                        "currency": refunded.currency,
                        "source": "stripe_dashboard",
                    });
                    store::outbox::publish(txn, "purchase.refunded", Some(locked.id), &payload, now).await?;
                    store::stripe_events::record(txn, received(event, Some(id), Outcome::RefundApplied, None), now).await?;
                    tracing::info!(account.id = locked.id, purchase.id = id, amount.credits = %take, "dashboard refund applied");
                    Ok(Ok(RefundApplied { credits: take }))
                })
            })
            .await;
        match applied {
            Ok(_) => Ok(Outcome::RefundApplied),
            Err(ServiceError::Refused(_)) => Ok(Outcome::NeedsAttention),
            Err(other) => Err(other),
        }
    }
}

fn received<'a>(event: &'a Event, purchase_id: Option<i64>, outcome: Outcome, detail: Option<&'a str>) -> Received<'a> {
    Received { event_id: &event.id, event_type: &event.kind, purchase_id, outcome: outcome.as_str(), detail }
}

/// In `txn`: records the event as needing attention and, if this recorded it, announces it
/// (`purchase.needs_attention`, to the purchase's account where there is one).
async fn attention_in(
    txn: &impl ConnectionTrait,
    event: &Event,
    purchase_id: Option<i64>,
    why: &str,
    now: DateTime<Utc>,
) -> Result<Outcome, ServiceError> {
    if !store::stripe_events::record(txn, received(event, purchase_id, Outcome::NeedsAttention, Some(why)), now).await? {
        return Ok(Outcome::Duplicate);
    }
    let purchase = match purchase_id {
        Some(id) => store::purchases::by_id(txn, id).await?,
        None => None,
    };
    let account = match &purchase {
        Some(p) => store::accounts::by_id(txn, p.account_id).await?,
        None => None,
    };
    let payload = serde_json::json!({
        "purchaseId": purchase_id,
        "accountId": account.as_ref().map(|a| a.external_id.clone()),
        "stripeEventId": event.id,
        "stripeEventType": event.kind,
        "reason": why,
    });
    store::outbox::publish(txn, "purchase.needs_attention", account.as_ref().map(|a| a.id), &payload, now).await?;
    tracing::warn!(stripe.event = %event.id, purchase.id = ?purchase_id, reason = why, "stripe event needs an operator");
    Ok(Outcome::NeedsAttention)
}
