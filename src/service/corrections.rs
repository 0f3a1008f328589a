//! Operators' corrections (issue 25): `void_lot` takes what remains of a lot out of its account
//! for good, in a VOID entry; `adjust_credits` debits an account by hand, in an ADJUST entry;
//! `change_lot_expiry` moves a lot's expiry, in an EXPIRY_CHANGE entry (and an EXPIRE one when
//! moved to now); each with the operator's reason and name. The rules are in `ledger::corrections`; this is the
//! keyed, journaled, audited way they run.

use crate::ledger::corrections::{self, ExpiryChange};
use crate::ledger::{Credits, Lot};
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey, reason};
use crate::service::posting::{self, EntryMeta};
use crate::service::reservations::release_lapsed;
use crate::service::spending::check_amount;
use crate::service::{Engine, Refusal, ServiceError};
use crate::store::idempotency::request_hash;
use crate::store::journal::EntryKind;
use crate::store::{self, lots};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct VoidRequest {
    pub lot_id: i64,
    /// Why, in the operator's words: kept on the entry, shown in history. Required.
    pub reason: String,
    pub idempotency_key: String,
    /// The operator voiding (`Caller::actor`), kept on the entry; not part of the request hash.
    pub actor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct VoidFields {
    lot_id: i64,
    reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoidReceipt {
    pub lot_id: i64,
    /// The account's external id.
    pub account: String,
    pub voided: Credits,
    pub entry_id: i64,
}

#[derive(Debug, Clone)]
pub struct AdjustRequest {
    pub account: String,
    pub amount: Credits,
    /// The one lot to take from; none: the account's lots in the program's order.
    pub lot_id: Option<i64>,
    pub reason: String,
    pub idempotency_key: String,
    /// The operator (`Caller::actor`), kept on the entry; not part of the request hash.
    pub actor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct AdjustFields {
    amount: Credits,
    lot_id: Option<i64>,
    reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustReceipt {
    pub entry_id: i64,
    pub amount: Credits,
    /// (lot id, credits taken from it), in the order taken.
    pub takes: Vec<(i64, Credits)>,
}

#[derive(Debug, Clone)]
pub struct ExpiryRequest {
    pub lot_id: i64,
    /// The new expiry; an instant not later than now expires the lot at once, dated now.
    pub expires_at: DateTime<Utc>,
    pub reason: String,
    pub idempotency_key: String,
    /// The operator (`Caller::actor`), kept on the entries; not part of the request hash.
    pub actor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct ExpiryFields {
    lot_id: i64,
    expires_at: DateTime<Utc>,
    reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryReceipt {
    pub lot_id: i64,
    /// The account's external id.
    pub account: String,
    pub change: ExpiryChange,
    /// What the lot's expiry wrote off at once (zero unless moved to now).
    pub written_off: Credits,
    /// The EXPIRY_CHANGE entry.
    pub entry_id: i64,
    /// The EXPIRE entry that wrote the lot off, when it was moved to now and held credits.
    pub write_off_entry_id: Option<i64>,
}

/// An expiry change as its entry's detail keeps it (`JournalEntry.expiryChange`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryDetail {
    pub lot_id: i64,
    pub from: Option<DateTime<Utc>>,
    pub to: DateTime<Utc>,
}

impl ExpiryDetail {
    pub const KEY: &'static str = "expiry_change";

    /// The detail of an entry, if it is an expiry change's.
    pub fn of(detail: Option<&str>) -> Option<ExpiryDetail> {
        let value: serde_json::Value = serde_json::from_str(detail?).ok()?;
        serde_json::from_value(value.get(Self::KEY)?.clone()).ok()
    }

    fn to_json(&self) -> String {
        serde_json::json!({ Self::KEY: self }).to_string()
    }
}

/// A correction's reason: required, and a reason's bounds.
fn required_reason(value: &str, what: &str) -> Result<String, ServiceError> {
    let why = reason(value)?;
    if why.trim().is_empty() {
        return Err(ServiceError::bad_input(format!("reason is required: say why the credits are {what}")));
    }
    Ok(why)
}

impl Engine {
    /// Debits `amount` from an account by hand, once per key, in an ADJUST entry: from the lot
    /// named (which must be the account's) or from its lots in the program's order, never from
    /// the day's free credits; all or nothing (`INSUFFICIENT_CREDITS` says what was available).
    /// Any account status.
    pub async fn adjust_credits(&self, request: AdjustRequest, now: DateTime<Utc>) -> Result<AdjustReceipt, ServiceError> {
        let account = ExternalId::parse(&request.account)?;
        let key = IdempotencyKey::parse(&request.idempotency_key)?;
        let amount = check_amount(request.amount)?;
        let why = required_reason(&request.reason, "debited")?;
        if let Some(lot_id) = request.lot_id {
            let owner = match lots::by_ids(&self.db, &[lot_id]).await?.into_iter().next() {
                Some(lot) => store::accounts::by_id(&self.db, lot.account_id).await?.map(|a| a.external_id),
                None => None,
            };
            if owner.as_deref() != Some(account.as_str()) {
                return Err(ServiceError::NotFound(format!("no lot {lot_id} on account {}", account.as_str())));
            }
        }
        let fields = AdjustFields { amount, lot_id: request.lot_id, reason: why };
        let request_hash = request_hash(&fields);
        let command = Command { operation: "adjust", account, key, request_hash, permit: Permit::Any, fields: (fields, request.actor) };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, ledger, account, command, now, .. } = run;
                let (fields, actor) = &command.fields;
                // Lapsed holds are released first: a debit sees the credits a read shows.
                release_lapsed(txn, &[account.id], now).await?;
                let read: Vec<Lot> = lots::open_for_account(txn, account.id).await?.iter().map(lots::to_rule).collect::<Result<_, _>>()?;
                let mut left = read.clone();
                let takes = match corrections::adjust_down(&mut left, fields.amount, fields.lot_id, &ledger.program.consumption_order, now)
                {
                    Ok(takes) => takes,
                    Err(short) => return Ok(Err(Refusal::short(short, None))),
                };
                let debits: Vec<(&Lot, Credits)> =
                    takes.iter().map(|t| (read.iter().find(|l| l.id == t.lot_id).expect("a take from a lot read"), t.amount)).collect();
                let meta = EntryMeta {
                    idempotency_key: Some(command.key.as_str()),
                    reason: Some(&fields.reason),
                    actor: actor.as_deref(),
                    ..EntryMeta::now("adjust", now)
                };
                let entry = posting::debit(txn, account.id, EntryKind::Adjust, &debits, meta).await?;
                tracing::info!(account.id = account.id, amount.credits = %fields.amount, "credits debited by an operator");
                Ok(Ok(AdjustReceipt {
                    entry_id: entry.id,
                    amount: fields.amount,
                    takes: takes.iter().map(|t| (t.lot_id, t.amount)).collect(),
                }))
            })
        })
        .await
    }

    /// The account lot `lot_id` belongs to, which a correction of the lot runs under:
    /// `NOT_FOUND` when there is no such lot.
    async fn owner_of_lot(&self, lot_id: i64) -> Result<ExternalId, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("no lot {lot_id}"));
        let lot = lots::by_ids(&self.db, &[lot_id]).await?.into_iter().next().ok_or_else(not_found)?;
        let owner = store::accounts::by_id(&self.db, lot.account_id).await?.ok_or_else(not_found)?;
        ExternalId::parse(&owner.external_id)
    }

    /// Voids what remains of lot `lot_id`, once per key: refused (`INVALID_STATE`, kept under the
    /// key) when nothing remains, when the lot has expired (the write-off owns it), or while a
    /// reservation holds credits drawn from it. Any account status: a suspended account's
    /// credits are the ones most often voided.
    pub async fn void_lot(&self, request: VoidRequest, now: DateTime<Utc>) -> Result<VoidReceipt, ServiceError> {
        let key = IdempotencyKey::parse(&request.idempotency_key)?;
        let why = required_reason(&request.reason, "voided")?;
        let owner = self.owner_of_lot(request.lot_id).await?;
        let fields = VoidFields { lot_id: request.lot_id, reason: why };
        let request_hash = request_hash(&fields);
        let command =
            Command { operation: "void", account: owner, key, request_hash, permit: Permit::Any, fields: (fields, request.actor) };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, account, command, now, .. } = run;
                let (fields, actor) = &command.fields;
                let (lot, held) = lot_as_read(txn, account.id, fields.lot_id, now).await?;
                let voided = match corrections::void(&lot, held, now) {
                    Ok(voided) => voided,
                    Err(refusal) => return Ok(Err(Refusal::InvalidState { what: refusal.to_string() })),
                };
                let meta = EntryMeta {
                    idempotency_key: Some(command.key.as_str()),
                    reason: Some(&fields.reason),
                    actor: actor.as_deref(),
                    ..EntryMeta::now("void", now)
                };
                let entry = posting::debit(txn, account.id, EntryKind::Void, &[(&lot, voided)], meta).await?;
                tracing::info!(account.id = account.id, lot.id = lot.id, amount.credits = %voided, "lot voided");
                Ok(Ok(VoidReceipt { lot_id: lot.id, account: account.external_id.clone(), voided, entry_id: entry.id }))
            })
        })
        .await
    }

    /// Moves lot `lot_id`'s expiry, once per key: later or earlier; an instant not later than
    /// now expires the lot at once, dated now, and writes off what remains of it in an EXPIRE
    /// entry. Refused (`INVALID_STATE`, kept under the key) for a lot already expired (never
    /// reopened), one with nothing remaining nor held, the day's free credits, or an expiry it
    /// already has. Any account status.
    pub async fn change_lot_expiry(&self, request: ExpiryRequest, now: DateTime<Utc>) -> Result<ExpiryReceipt, ServiceError> {
        let key = IdempotencyKey::parse(&request.idempotency_key)?;
        let why = required_reason(&request.reason, "given a new expiry")?;
        let owner = self.owner_of_lot(request.lot_id).await?;
        let fields = ExpiryFields { lot_id: request.lot_id, expires_at: request.expires_at, reason: why };
        let request_hash = request_hash(&fields);
        let command =
            Command { operation: "change_expiry", account: owner, key, request_hash, permit: Permit::Any, fields: (fields, request.actor) };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, account, command, now, .. } = run;
                let (fields, actor) = &command.fields;
                let (lot, held) = lot_as_read(txn, account.id, fields.lot_id, now).await?;
                let change = match corrections::change_expiry(&lot, held, fields.expires_at, now) {
                    Ok(change) => change,
                    Err(refusal) => return Ok(Err(Refusal::InvalidState { what: refusal.to_string() })),
                };
                lots::set_expiry(txn, lot.id, change.to).await?;
                let detail = ExpiryDetail { lot_id: lot.id, from: change.from, to: change.to }.to_json();
                let meta = EntryMeta {
                    idempotency_key: Some(command.key.as_str()),
                    reason: Some(&fields.reason),
                    actor: actor.as_deref(),
                    detail: Some(&detail),
                    ..EntryMeta::now("change_expiry", now)
                };
                let entry = posting::mark(txn, account.id, EntryKind::ExpiryChange, meta).await?;
                let mut write_off = None;
                if change.expires_now && !lot.remaining.is_zero() {
                    // Written off here rather than by the job: the operator sees it done, and the
                    // entry carries their name and reason.
                    let meta = EntryMeta {
                        idempotency_key: Some(command.key.as_str()),
                        reason: Some(&fields.reason),
                        actor: actor.as_deref(),
                        ..EntryMeta::now("change_expiry", now)
                    };
                    write_off = Some(posting::debit(txn, account.id, EntryKind::Expire, &[(&lot, lot.remaining)], meta).await?.id);
                }
                let written_off = if write_off.is_some() { lot.remaining } else { Credits::ZERO };
                tracing::info!(account.id = account.id, lot.id = lot.id, expires_at = %change.to, "lot expiry moved");
                Ok(Ok(ExpiryReceipt {
                    lot_id: lot.id,
                    account: account.external_id.clone(),
                    change,
                    written_off,
                    entry_id: entry.id,
                    write_off_entry_id: write_off,
                }))
            })
        })
        .await
    }
}

/// Lot `lot_id` of the locked account as a read at `now` shows it, and what the account's open
/// reservations hold that they drew from it. Lapsed holds are released first, so a correction
/// sees what a read shows, refused or not.
async fn lot_as_read(
    txn: &sea_orm::DatabaseTransaction,
    account_id: i64,
    lot_id: i64,
    now: DateTime<Utc>,
) -> Result<(Lot, Credits), ServiceError> {
    release_lapsed(txn, &[account_id], now).await?;
    let model = lots::by_ids(txn, &[lot_id]).await?.into_iter().next().ok_or_else(|| anyhow::anyhow!("lot {lot_id} vanished"))?;
    let lot = lots::to_rule(&model)?;
    let holds = store::reservations::open(txn, account_id, now).await?;
    let lines = store::journal::lines_of(txn, &holds.iter().map(|h| h.hold_entry_id).collect::<Vec<_>>()).await?;
    let held = Credits::from_micros(lines.iter().filter(|l| l.lot_id == lot_id).map(|l| -l.delta_micros).sum());
    Ok((lot, held))
}
