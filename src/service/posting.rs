//! Posting: the only way credits move. A posting changes lots, appends the journal entry that
//! says so, and moves the account's cached balance, all in the caller's transaction, so the
//! three can never disagree.

use crate::entity::{journal_entry, lot};
use crate::ledger::amount::{MAX_BALANCE_CREDITS, MAX_BALANCE_MICROS};
use crate::ledger::{Credits, Lot};
use crate::service::ServiceError;
use crate::store::journal::{self, EntryKind};
use crate::store::{self, lots};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

/// What the journal entry of a posting says besides its lines.
#[derive(Debug, Clone, Copy)]
pub struct EntryMeta<'a> {
    pub operation: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub feature: Option<&'a str>,
    pub model: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub effective_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

impl<'a> EntryMeta<'a> {
    /// An entry that takes effect when it is recorded.
    pub fn now(operation: &'a str, now: DateTime<Utc>) -> EntryMeta<'a> {
        EntryMeta { operation, idempotency_key: None, feature: None, model: None, reason: None, effective_at: now, recorded_at: now }
    }
}

/// Grants a new lot, unless the account's credits would then pass the limit: the caller's
/// transaction is then rolled back by the error, so nothing changes.
pub async fn credit(
    conn: &impl ConnectionTrait,
    new: lots::NewLot<'_>,
    meta: EntryMeta<'_>,
) -> Result<(lot::Model, journal_entry::Model), ServiceError> {
    let (account_id, amount) = (new.account_id, new.amount);
    let lot = lots::insert(conn, new).await?;
    let entry = append(conn, account_id, EntryKind::Grant, vec![(lot.id, amount.micros())], meta).await?;
    store::accounts::add_to_balance(conn, account_id, amount.micros()).await?;
    refuse_over_limit(conn, &[account_id]).await?;
    Ok((lot, entry))
}

/// `BALANCE_LIMIT_EXCEEDED` if a posting just took one of these accounts past the most an account
/// may hold (`MAX_BALANCE_CREDITS`, held credits included).
pub async fn refuse_over_limit(conn: &impl ConnectionTrait, account_ids: &[i64]) -> Result<(), ServiceError> {
    let over = store::accounts::over_limit(conn, account_ids, MAX_BALANCE_MICROS).await?;
    if over.is_empty() {
        return Ok(());
    }
    Err(ServiceError::BalanceLimitExceeded(format!(
        "an account holds at most {MAX_BALANCE_CREDITS} credits, held credits included: this would pass it"
    )))
}

/// Takes `amount` from each given lot, as read under the account lock.
pub async fn debit(
    conn: &impl ConnectionTrait,
    account_id: i64,
    kind: EntryKind,
    takes: &[(&Lot, Credits)],
    meta: EntryMeta<'_>,
) -> Result<journal_entry::Model, DbErr> {
    let mut total = Credits::ZERO;
    for (lot, amount) in takes {
        let left = lot.remaining.checked_sub(*amount).expect("a posting never overdraws a lot");
        lots::set_remaining(conn, lot.id, lot.remaining, left).await?;
        total = total.checked_add(*amount).expect("sums fit");
    }
    let lines = takes.iter().map(|(lot, amount)| (lot.id, -amount.micros())).collect();
    let entry = append(conn, account_id, kind, lines, meta).await?;
    store::accounts::add_to_balance(conn, account_id, -total.micros()).await?;
    Ok(entry)
}

/// Gives credits back to lots they were taken from (a reservation's release). A lot that was
/// used up is reopened by it; the caller writes off at once what lands on a lot past expiry.
pub async fn restore(
    conn: &impl ConnectionTrait,
    account_id: i64,
    returns: &[(&Lot, Credits)],
    meta: EntryMeta<'_>,
) -> Result<journal_entry::Model, DbErr> {
    let mut total = Credits::ZERO;
    for (lot, amount) in returns {
        let back = lot.remaining.checked_add(*amount).expect("sums fit");
        assert!(back <= lot.granted, "a lot never gets back more than was taken from it");
        lots::set_remaining(conn, lot.id, lot.remaining, back).await?;
        total = total.checked_add(*amount).expect("sums fit");
    }
    let lines = returns.iter().map(|(lot, amount)| (lot.id, amount.micros())).collect();
    let entry = append(conn, account_id, EntryKind::Release, lines, meta).await?;
    store::accounts::add_to_balance(conn, account_id, total.micros()).await?;
    Ok(entry)
}

async fn append(
    conn: &impl ConnectionTrait,
    account_id: i64,
    kind: EntryKind,
    lines: Vec<(i64, i64)>,
    meta: EntryMeta<'_>,
) -> Result<journal_entry::Model, DbErr> {
    journal::append(conn, new_entry(account_id, kind, lines, meta)).await
}

/// The journal entry a posting appends: its lines, and what `meta` says besides them.
pub(crate) fn new_entry<'a>(account_id: i64, kind: EntryKind, lines: Vec<(i64, i64)>, meta: EntryMeta<'a>) -> journal::NewEntry<'a> {
    journal::NewEntry {
        account_id,
        kind,
        effective_at: meta.effective_at,
        created_at: meta.recorded_at,
        operation: meta.operation,
        idempotency_key: meta.idempotency_key,
        feature: meta.feature,
        model: meta.model,
        reason: meta.reason,
        lines,
    }
}
