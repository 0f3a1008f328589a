//! Gifts between users (issue 26, `giftCredits`): paid credits move from one account to another,
//! keeping their expiry, within the program's per-day limits (`[gifts]`; off when absent).
//!
//! A gift is keyed on the sender's account and runs in the executor with both accounts locked in
//! id order (`execute_also_locking`, as a market job pays its provider), so two gifts in
//! opposite directions never wait on each other in a cycle. It posts a pair of entries that sum
//! to zero across the two accounts: GIFT_SENT on the sender (lines out of its paid lots) and
//! GIFT_RECEIVED on the recipient (lines into new GIFT lots, one per part, each with the expiry
//! of the lot it came from, `ledger::gift`). Each entry's detail names the other account, and
//! the received one the sent entry it pairs with, which the audit checks; each GIFT lot's origin
//! is the sent entry. A `gift.sent` event goes to the outbox in the same transaction.
//!
//! Refunds stay safe without a rule of their own: the credits gifted leave the sender's purchase
//! lot, so a refund of that purchase finds them used (its unused credits are what the lot still
//! holds), and a GIFT lot belongs to no purchase, so nothing refunds it.

use crate::ledger::gift::{self, GiftLimits};
use crate::ledger::time::{day_of, next_day_start};
use crate::ledger::{Credits, LotClass, LotSource, Priority, balance};
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey, reason};
use crate::service::posting::{self, EntryMeta};
use crate::service::spending::check_amount;
use crate::service::{Engine, Refusal, ServiceError};
use crate::store::journal::EntryKind;
use crate::store::{self, idempotency::request_hash, lots};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const OPERATION: &str = "gift";
/// The webhook topic of a gift made (docs/webhooks/gift.sent.schema.json), about the sender.
pub const GIFT_SENT_TOPIC: &str = "gift.sent";
/// The origin kind of a GIFT lot; its origin id is the GIFT_SENT entry.
pub const GIFT_ORIGIN: &str = "gift";

/// A gift as asked: from one account to another.
#[derive(Debug, Clone)]
pub struct GiftRequest {
    pub from: String,
    pub to: String,
    pub amount: Credits,
    /// Shown in both accounts' history (as the entries' reason).
    pub note: Option<String>,
    pub idempotency_key: String,
}

/// One lot the gift made on the recipient, and the sender's lot it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GiftLot {
    pub lot_id: i64,
    pub from_lot_id: i64,
    pub amount: Credits,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A gift made: the same on every replay of its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GiftReceipt {
    pub from: String,
    pub to: String,
    pub amount: Credits,
    pub sent_entry_id: i64,
    pub received_entry_id: i64,
    pub lots: Vec<GiftLot>,
    /// The sender's credits right after the gift (held credits not included).
    pub balance_after: Credits,
    pub effective_at: DateTime<Utc>,
}

/// What a gift entry's detail says (JSON in `journal_entries.detail`): the other account, and
/// for a GIFT_RECEIVED entry the GIFT_SENT entry it pairs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GiftDetail {
    pub counterparty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_entry: Option<i64>,
}

impl GiftDetail {
    /// Its key in the detail object, as an expiry change has its own (`ExpiryDetail::KEY`).
    pub const KEY: &'static str = "gift";

    /// The detail of an entry, if it is a gift's.
    pub fn of(detail: Option<&str>) -> Option<GiftDetail> {
        let value: serde_json::Value = serde_json::from_str(detail?).ok()?;
        serde_json::from_value(value.get(Self::KEY)?.clone()).ok()
    }

    /// The detail as an entry keeps it.
    fn stored(&self) -> String {
        serde_json::json!({ Self::KEY: self }).to_string()
    }
}

/// The fields the body needs; `to` is the recipient's ledger id, found before the transaction.
struct GiftFields {
    to_id: i64,
    to: ExternalId,
    amount: Credits,
    note: Option<String>,
    limits: GiftLimits,
}

impl Engine {
    /// Gives `amount` of the sender's paid credits to another account (see the module's comment).
    pub async fn gift(&self, request: GiftRequest, now: DateTime<Utc>) -> Result<GiftReceipt, ServiceError> {
        let limits = self.program.gifts.ok_or_else(|| ServiceError::FeatureDisabled("this program has no gifts between users".into()))?;
        let from = ExternalId::parse(&request.from)?;
        let to = ExternalId::parse(&request.to)?;
        let key = IdempotencyKey::parse(&request.idempotency_key)?;
        let amount = check_amount(request.amount)?;
        let note = request.note.as_deref().map(reason).transpose()?;
        // Decided from the request alone: input errors, never stored.
        if from == to {
            return Err(ServiceError::bad_input("a gift goes to another account, not the sender's own"));
        }
        if !limits.within_max_per_gift(amount) {
            let max = limits.max_per_gift.expect("within when none");
            return Err(ServiceError::bad_input(format!("amount: one gift carries at most {max} credits")));
        }
        // Giving credits away is a way of spending them.
        self.require_identity_to_spend(&from, false).await?;
        // An unknown recipient is NOT_FOUND, not an outcome: the key stays free.
        let recipient = store::accounts::by_external_id(&self.db, to.as_str())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no account {:?}", to.as_str())))?;
        let command = Command {
            operation: OPERATION,
            account: from,
            key,
            request_hash: request_hash(&(to.as_str(), amount, &note)),
            // A sender gives only from an active account (an inactive one may be charged only
            // for storage, a suspended one only read); the recipient's status is checked below.
            permit: Permit::Active,
            fields: GiftFields { to_id: recipient.id, to, amount, note, limits },
        };
        self.execute_also_locking(command, &[recipient.id], now, |run| {
            Box::pin(async move {
                let Run { txn, ledger, account: sender, command, now } = run;
                let GiftFields { to_id, to, amount, note, limits } = &command.fields;
                let (to_id, amount) = (*to_id, *amount);
                let recipient = store::accounts::by_id(txn, to_id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("recipient {to_id} vanished under its lock"))?;
                let status = crate::service::accounts::status_of(&recipient)?;
                if !status.may_receive_credits() {
                    return Ok(Err(Refusal::AccountNotActive { status }));
                }
                let day_start = day_of(now).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
                let (sent_micros, count) = store::journal::gifts_sent_between(txn, sender.id, day_start, next_day_start(now)).await?;
                let sent_today = Credits::from_micros(sent_micros);
                if let Err(limit) = limits.check_day(sent_today, u32::try_from(count).unwrap_or(u32::MAX), amount, now) {
                    return Ok(Err(Refusal::LimitReached { what: limit.to_string() }));
                }
                // Lapsed holds first: a gift sees the credits a read shows.
                crate::service::reservations::release_lapsed(txn, &[sender.id], now).await?;
                let open = lots::open_for_account(txn, sender.id).await?;
                let rules: Vec<_> = open.iter().map(lots::to_rule).collect::<Result<_, _>>()?;
                let parts = match gift::choose(&rules, amount, &ledger.program.consumption_order, now) {
                    Ok(parts) => parts,
                    Err(short) => return Ok(Err(Refusal::GiftShort { requested: short.requested, giftable: short.available })),
                };
                let balance_after = balance(&rules, now).checked_sub(amount).expect("the gift's lots were counted in the balance");
                let key = command.key.as_str();
                let from_detail = GiftDetail { counterparty: to.as_str().to_string(), sent_entry: None }.stored();
                let default_reason = format!("gift to {}", to.as_str());
                let sent_meta = EntryMeta {
                    idempotency_key: Some(key),
                    reason: Some(note.as_deref().unwrap_or(&default_reason)),
                    detail: Some(&from_detail),
                    ..EntryMeta::now(OPERATION, now)
                };
                let takes: Vec<_> = parts
                    .iter()
                    .map(|p| (rules.iter().find(|l| l.id == p.from_lot).expect("parts come from these lots"), p.amount))
                    .collect();
                let sent = posting::debit(txn, sender.id, EntryKind::GiftSent, &takes, sent_meta).await?;
                let new_lots = parts
                    .iter()
                    .map(|p| lots::NewLot {
                        account_id: to_id,
                        class: LotClass::Paid,
                        source: LotSource::Gift,
                        amount: p.amount,
                        granted_at: now,
                        expires_at: p.expires_at,
                        origin_kind: Some(GIFT_ORIGIN),
                        origin_id: Some(sent.id.to_string()),
                        // The recipient's own order: a sender's priorities were the operator's
                        // word about the sender's credits.
                        priority: Priority::DEFAULT,
                        effective_at: None,
                        features: None,
                    })
                    .collect();
                let to_detail = GiftDetail { counterparty: sender.external_id.clone(), sent_entry: Some(sent.id) }.stored();
                let default_reason = format!("gift from {}", sender.external_id);
                let received_meta = EntryMeta {
                    idempotency_key: Some(key),
                    reason: Some(note.as_deref().unwrap_or(&default_reason)),
                    detail: Some(&to_detail),
                    ..EntryMeta::now(OPERATION, now)
                };
                let (made, received) = posting::credit_parts(txn, to_id, EntryKind::GiftReceived, new_lots, received_meta).await?;
                // The product hears of it (`gift.sent`) exactly when the gift commits.
                let event = serde_json::json!({
                    "fromAccountId": sender.external_id,
                    "toAccountId": to.as_str(),
                    "credits": amount.to_string(),
                    "sentSequence": sent.id,
                    "receivedSequence": received.id,
                    "effectiveAt": now.to_rfc3339(),
                });
                store::outbox::publish(txn, GIFT_SENT_TOPIC, Some(sender.id), &event, now).await?;
                tracing::info!(
                    account.id = sender.id,
                    recipient.id = to_id,
                    amount.credits = %amount,
                    entry.id = sent.id,
                    "credits gifted"
                );
                Ok(Ok(GiftReceipt {
                    from: sender.external_id.clone(),
                    to: to.as_str().to_string(),
                    amount,
                    sent_entry_id: sent.id,
                    received_entry_id: received.id,
                    lots: made
                        .iter()
                        .zip(&parts)
                        .map(|(lot, part)| GiftLot {
                            lot_id: lot.id,
                            from_lot_id: part.from_lot,
                            amount: part.amount,
                            expires_at: lot.expires_at,
                        })
                        .collect(),
                    balance_after,
                    effective_at: now,
                }))
            })
        })
        .await
    }
}
