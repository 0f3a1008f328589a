//! Refunds (domain.md §5): money back for the unused part of a purchase, under the program's
//! terms. The refunded credits leave through the journal (a refund entry on the purchase's lot,
//! revoke entries on the promotional lots tied to it), and the payment system hears of it
//! through the outbox, in the same transaction.

use crate::entity::{journal_line, purchase, reservation};
use crate::ledger::money::PurchaseStatus;
use crate::ledger::refund::{RefundRefusal, refund_minor, take_back_spent_bonus};
use crate::ledger::reservation::ReservationStatus;
use crate::ledger::{Credits, Lot, Purpose, Take, allocate, balance};
use crate::program::{Program, Refunds};
use crate::service::Refusal;
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey, reason};
use crate::service::posting::{self, EntryMeta};
use crate::service::purchases::BONUS_ORIGIN;
use crate::service::purchases::PurchaseView;
use crate::service::reservations::release_lapsed;
use crate::service::{Engine, ServiceError};
use crate::store::journal::EntryKind;
use crate::store::{self, idempotency::request_hash, lots, reservations};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, DatabaseTransaction, IntoActiveModel, Set};
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

impl Engine {
    /// The external id of the account a purchase belongs to.
    pub async fn purchase_owner(&self, purchase_id: i64) -> Result<String, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("no purchase {purchase_id}"));
        let purchase = store::purchases::by_id(&self.db, purchase_id).await?.ok_or_else(not_found)?;
        let account = store::accounts::by_id(&self.db, purchase.account_id).await?.ok_or_else(not_found)?;
        Ok(account.external_id)
    }

    pub async fn purchase_by_id(&self, purchase_id: i64) -> Result<PurchaseView, ServiceError> {
        let found = store::purchases::by_id(&self.db, purchase_id).await?;
        PurchaseView::of(found.ok_or_else(|| ServiceError::NotFound(format!("no purchase {purchase_id}")))?)
    }

    /// `actor`: the operator refunding (`Caller::actor`), kept on the entries; not part of the
    /// request's hash.
    pub async fn refund_purchase(
        &self,
        requester: Requester,
        actor: Option<&str>,
        purchase_id: i64,
        idempotency_key: &str,
        why: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<RefundReceipt, ServiceError> {
        let key = IdempotencyKey::parse(idempotency_key)?;
        let why = why.map(reason).transpose()?;
        let account = ExternalId::parse(&self.purchase_owner(purchase_id).await?)?;
        let command = Command {
            operation: "refund",
            account,
            key,
            request_hash: request_hash(&(purchase_id, &why)),
            // Money back is never blocked by the account's status.
            permit: Permit::Any,
            fields: (why, actor.map(str::to_string)),
        };
        let terms = self.program.refunds;
        let receipt = self
            .execute(command, now, |run| {
                Box::pin(async move {
                    let Run { txn, ledger, account: locked, command, now } = run;
                    let (program, key, account) = (&ledger.program, &command.key, &command.account);
                    let (why, actor) = &command.fields;
                    let purchase = store::purchases::by_id(txn, purchase_id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("purchase {purchase_id} vanished"))?;
                    let lot_id = match refundable(&purchase, &terms, requester, now) {
                        Ok(lot_id) => lot_id,
                        Err(refusal) => return Ok(Err(Refusal::Refund(refusal))),
                    };
                    // Lapsed holds are released first: a refund sees the credits a read shows.
                    release_lapsed(txn, &[locked.id], now).await?;
                    let rules = read_lots(txn, locked.id, &[]).await?;
                    let unused = rules.iter().find(|l| l.id == lot_id && !l.is_expired(now)).map_or(Credits::ZERO, |l| l.remaining);
                    // The promotional credits granted with this purchase are taken back whole
                    // (domain.md §5): what remains of them, what holds hold of them, and what was
                    // spent of them, out of the unused credits first.
                    let Bonus { ids: bonus_ids, granted: bonus_granted, spent: spent_bonus } =
                        read_bonus(txn, locked.id, purchase.id).await?;
                    let holds = reservations::open(txn, locked.id, now).await?;
                    let hold_lines = store::journal::lines_of(txn, &holds.iter().map(|h| h.hold_entry_id).collect::<Vec<_>>()).await?;
                    let held = Credits::from_micros(holds.iter().map(|h| h.amount_micros).sum());
                    let total = balance(&rules, now).checked_add(held).ok_or_else(|| anyhow::anyhow!("an account's credits fit"))?;
                    if total < bonus_granted {
                        return Ok(Err(Refusal::Refund(RefundRefusal::PromotionalCreditsSpent)));
                    }
                    let taken = take_back_spent_bonus(unused, spent_bonus);
                    let bought = Credits::from_micros(purchase.credits_micros);
                    let refunded_minor = match refund_minor(terms.policy, purchase.price_minor, bought, taken.unused_after) {
                        Ok(minor) => minor,
                        Err(refusal) => return Ok(Err(Refusal::Refund(refusal))),
                    };
                    let from_others = match from_other_credits(&rules, lot_id, &bonus_ids, taken.from_others, program, now) {
                        Ok(takes) => takes,
                        Err(refusal) => return Ok(Err(Refusal::Refund(refusal))),
                    };
                    let reason = why.as_deref().or(Some("refund"));
                    let meta =
                        EntryMeta { idempotency_key: Some(key.as_str()), reason, actor: actor.as_deref(), ..EntryMeta::now("refund", now) };
                    let revoke_reason = format!("promotional credits of refunded purchase {purchase_id}");
                    let revoke_meta = EntryMeta { reason: Some(&revoke_reason), ..meta };
                    shrink_holds_of(txn, locked.id, &holds, &hold_lines, &bonus_ids, meta, &revoke_reason, now).await?;
                    let rules = read_lots(txn, locked.id, &[]).await?;
                    if !taken.unused_after.is_zero() {
                        posting::debit(txn, locked.id, EntryKind::Refund, &[(lot_of(&rules, lot_id), taken.unused_after)], meta).await?;
                    }
                    let revoked = revoke(txn, locked.id, lot_id, &bonus_ids, taken.from_unused, &from_others, revoke_meta, now).await?;
                    let refunded = mark_refunded(txn, purchase, account, locked.id, refunded_minor, now).await?;
                    Ok(Ok(RefundReceipt {
                        purchase_id: refunded.id,
                        refunded_minor,
                        currency: refunded.currency,
                        credits: taken.unused_after,
                        revoked,
                    }))
                })
            })
            .await?;
        self.refund_at_stripe(&receipt).await?;
        Ok(receipt)
    }

    /// A purchase paid through Stripe gets its money back through Stripe: asked after the
    /// ledger's refund committed, under an idempotency key of the purchase's (one refund per
    /// purchase goes through the API), and recorded (`stripe_refund_id`) so that its
    /// `charge.refunded` is known as ours. When Stripe cannot be reached the ledger's refund
    /// stands and the call answers `UNAVAILABLE`: the same call with the same key replays the
    /// refund and asks Stripe again.
    async fn refund_at_stripe(&self, receipt: &RefundReceipt) -> Result<(), ServiceError> {
        let Some(stripe) = &self.stripe.client else {
            return Ok(());
        };
        let purchase = store::purchases::by_id(&self.db, receipt.purchase_id).await?;
        let purchase = purchase.ok_or_else(|| anyhow::anyhow!("purchase {} vanished", receipt.purchase_id))?;
        let Some(payment_intent) = purchase.payment_reference.as_deref().filter(|r| r.starts_with("pi_")) else {
            // Not paid through Stripe (the product confirmed it with its own reference).
            return Ok(());
        };
        if purchase.stripe_refund_id.is_some() || receipt.refunded_minor == 0 {
            return Ok(());
        }
        let key = format!("credits-refund-{}", purchase.id);
        let refund = stripe.create_refund(payment_intent, receipt.refunded_minor, purchase.id, &key).await.map_err(|e| {
            tracing::warn!(purchase.id = purchase.id, error = %e, "the refund was not sent to Stripe");
            ServiceError::Unavailable(format!(
                "purchase {} is refunded in the ledger, but Stripe could not be asked for the money back ({e}); call again with the same idempotencyKey",
                purchase.id
            ))
        })?;
        store::purchases::set_stripe_refund(&self.db, purchase.id, &refund.id).await?;
        tracing::info!(purchase.id = purchase.id, stripe.refund = %refund.id, stripe.status = %refund.status, "refund sent to Stripe");
        Ok(())
    }
}

/// The purchase's paid lot, if it may be refunded now by `requester`; else why not.
pub(crate) fn refundable(
    purchase: &purchase::Model,
    terms: &Refunds,
    requester: Requester,
    now: DateTime<Utc>,
) -> Result<i64, RefundRefusal> {
    let status = store::purchases::status_of(purchase).ok();
    let (Some(paid_at), Some(lot_id), Some(PurchaseStatus::Paid)) = (purchase.paid_at, purchase.lot_id, status) else {
        return Err(RefundRefusal::NotPaid);
    };
    let window = match requester {
        Requester::User => terms.window,
        Requester::Operator => terms.operator_window,
    };
    if window.expires_at(paid_at).is_some_and(|closes| now >= closes) {
        return Err(RefundRefusal::WindowClosed);
    }
    Ok(lot_id)
}

/// A purchase's first-purchase bonus: its lots, what they granted, and what was spent of them.
pub(crate) struct Bonus {
    pub ids: Vec<i64>,
    pub granted: Credits,
    pub spent: Credits,
}

pub(crate) async fn read_bonus(txn: &DatabaseTransaction, account_id: i64, purchase_id: i64) -> Result<Bonus, ServiceError> {
    let lots = lots::by_origin(txn, account_id, BONUS_ORIGIN, &purchase_id.to_string()).await?;
    let ids: Vec<i64> = lots.iter().map(|l| l.id).collect();
    let granted = Credits::from_micros(lots.iter().map(|l| l.granted_micros).sum());
    let spent = Credits::from_micros(store::journal::taken_from_lots(txn, &ids, &[EntryKind::Spend, EntryKind::Transfer]).await?);
    Ok(Bonus { ids, granted, spent })
}

/// What the purchase's unused credits cannot make up of the spent bonus comes from the account's
/// other spendable credits (not the paid lot, not the bonus), in the program's order; held credits
/// cannot pay it.
fn from_other_credits(
    rules: &[Lot],
    paid_lot: i64,
    bonus_ids: &[i64],
    amount: Credits,
    program: &Program,
    now: DateTime<Utc>,
) -> Result<Vec<Take>, RefundRefusal> {
    if amount.is_zero() {
        return Ok(Vec::new());
    }
    let others: Vec<Lot> = rules.iter().filter(|l| l.id != paid_lot && !bonus_ids.contains(&l.id)).cloned().collect();
    allocate(&others, amount, &program.consumption_order, now, Purpose::Any).map_err(|_| RefundRefusal::PromotionalCreditsSpent)
}

/// Holds holding bonus credits shrink by them: each such hold gives all its parts back, then
/// holds again what was not bonus (a new hold entry), so a hold and its entry keep agreeing; the
/// bonus parts are revoked with the rest afterwards.
#[allow(clippy::too_many_arguments)]
async fn shrink_holds_of(
    txn: &DatabaseTransaction,
    account_id: i64,
    holds: &[reservation::Model],
    hold_lines: &[journal_line::Model],
    bonus_ids: &[i64],
    meta: EntryMeta<'_>,
    revoke_reason: &str,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    for hold in holds {
        let parts: Vec<(i64, Credits)> = hold_lines
            .iter()
            .filter(|l| l.entry_id == hold.hold_entry_id)
            .map(|l| (l.lot_id, Credits::from_micros(-l.delta_micros)))
            .collect();
        if !parts.iter().any(|(lot, _)| bonus_ids.contains(lot)) {
            continue;
        }
        let ids: Vec<i64> = parts.iter().map(|(lot, _)| *lot).collect();
        let before = read_lots(txn, account_id, &ids).await?;
        let returns: Vec<(&Lot, Credits)> = parts.iter().map(|(id, a)| (lot_of(&before, *id), *a)).collect();
        let why = format!("reservation {} shrinks: {revoke_reason}", hold.id);
        posting::restore(txn, account_id, &returns, EntryMeta { reason: Some(&why), ..meta }).await?;
        let kept: Vec<(i64, Credits)> = parts.iter().filter(|(lot, _)| !bonus_ids.contains(lot)).copied().collect();
        let kept_micros: i64 = kept.iter().map(|(_, a)| a.micros()).sum();
        if kept.is_empty() {
            // Nothing but bonus was held: the hold ends, released to be revoked.
            reservations::settle(txn, hold.id, ReservationStatus::Released, None, now).await?;
            continue;
        }
        let after = read_lots(txn, account_id, &ids).await?;
        let holds_again: Vec<(&Lot, Credits)> = kept.iter().map(|(id, a)| (lot_of(&after, *id), *a)).collect();
        let hold_meta = EntryMeta { reason: Some(&why), ..EntryMeta::now("reserve", now) };
        let entry = posting::debit(txn, account_id, EntryKind::Hold, &holds_again, hold_meta).await?;
        reservations::shrink(txn, hold.id, entry.id, kept_micros).await?;
    }
    Ok(())
}

/// Revokes the bonus whole: what the purchase's unused credits make up of the spent bonus, what
/// the account's other credits make up of the rest, and what remains of the bonus lots; how much.
#[allow(clippy::too_many_arguments)]
async fn revoke(
    txn: &DatabaseTransaction,
    account_id: i64,
    paid_lot: i64,
    bonus_ids: &[i64],
    from_unused: Credits,
    from_others: &[Take],
    meta: EntryMeta<'_>,
    now: DateTime<Utc>,
) -> Result<Credits, ServiceError> {
    let rules = read_lots(txn, account_id, &[]).await?;
    let mut revocable: Vec<(&Lot, Credits)> = Vec::new();
    if !from_unused.is_zero() {
        revocable.push((lot_of(&rules, paid_lot), from_unused));
    }
    revocable.extend(from_others.iter().map(|t| (lot_of(&rules, t.lot_id), t.amount)));
    revocable.extend(rules.iter().filter(|l| bonus_ids.contains(&l.id) && l.is_spendable(now)).map(|l| (l, l.remaining)));
    // The held bonus parts went back to their lots above, so this is all of it.
    let revoked = revocable
        .iter()
        .map(|(_, amount)| *amount)
        .try_fold(Credits::ZERO, Credits::checked_add)
        .ok_or_else(|| anyhow::anyhow!("sums fit"))?;
    if !revocable.is_empty() {
        posting::debit(txn, account_id, EntryKind::Revoke, &revocable, meta).await?;
    }
    Ok(revoked)
}

/// Marks the purchase refunded and tells the product (`purchase.refunded`, in the outbox).
async fn mark_refunded(
    txn: &DatabaseTransaction,
    purchase: purchase::Model,
    account: &ExternalId,
    account_id: i64,
    refunded_minor: i64,
    now: DateTime<Utc>,
) -> Result<purchase::Model, ServiceError> {
    let mut refunded = purchase.into_active_model();
    refunded.status = Set(PurchaseStatus::Refunded.to_string());
    refunded.refunded_minor = Set(Some(refunded_minor));
    refunded.refunded_at = Set(Some(now));
    let refunded = refunded.update(txn).await?;
    let event = serde_json::json!({
        "purchaseId": refunded.id,
        "accountId": account.as_str(),
        "paymentReference": refunded.payment_reference,
        "amountMinor": refunded_minor,
        "currency": refunded.currency,
    });
    store::outbox::publish(txn, "purchase.refunded", Some(account_id), &event, now).await?;
    tracing::info!(account.id = account_id, purchase.id = refunded.id, amount.minor = refunded_minor, "purchase refunded");
    Ok(refunded)
}

/// The account's open lots as rules, plus these lots whatever their state (a hold's lots that
/// it emptied), read afresh after a posting moved them.
pub(crate) async fn read_lots(txn: &DatabaseTransaction, account_id: i64, also: &[i64]) -> Result<Vec<Lot>, ServiceError> {
    let mut models = lots::open_for_account(txn, account_id).await?;
    let missing: Vec<i64> = also.iter().copied().filter(|id| !models.iter().any(|m| m.id == *id)).collect();
    if !missing.is_empty() {
        models.extend(lots::by_ids(txn, &missing).await?);
    }
    Ok(models.iter().map(lots::to_rule).collect::<Result<_, _>>()?)
}

pub(crate) fn lot_of(lots: &[Lot], id: i64) -> &Lot {
    lots.iter().find(|l| l.id == id).expect("the lot was read under the account lock")
}
