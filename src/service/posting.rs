//! Posting: the only way credits move. A posting changes lots, appends the journal entry that
//! says so, and moves the account's cached balance, all in the caller's transaction, so the
//! three can never disagree.
//!
//! The bulk forms (`credit_many`, `debit_many`) post many entries at once for the paths that
//! move credits in batches (spends, plan grants, write-offs): one statement per table, each
//! derived from the same list of entries.

use crate::entity::{journal_entry, lot};
use crate::ledger::amount::{MAX_BALANCE_CREDITS, MAX_BALANCE_MICROS};
use crate::ledger::{Credits, Lot, LotClass, LotSource};
use crate::service::{ServiceError, moved};
use crate::store::journal::{self, EntryKind};
use crate::store::{self, lots};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use std::collections::{BTreeMap, HashMap};

/// What the journal entry of a posting says besides its lines.
#[derive(Debug, Clone, Copy)]
pub struct EntryMeta<'a> {
    pub operation: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub feature: Option<&'a str>,
    pub model: Option<&'a str>,
    pub reason: Option<&'a str>,
    /// The admin subject of the operator who made the entry (`Caller::actor`).
    pub actor: Option<&'a str>,
    /// What the lines cannot say (JSON), kept on the entry: an expiry change's old and new expiry.
    pub detail: Option<&'a str>,
    /// The caller's metadata, as stored (`Metadata::as_json`).
    pub metadata: Option<&'a str>,
    pub effective_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

impl<'a> EntryMeta<'a> {
    /// An entry that takes effect when it is recorded.
    pub fn now(operation: &'a str, now: DateTime<Utc>) -> EntryMeta<'a> {
        EntryMeta {
            operation,
            idempotency_key: None,
            feature: None,
            model: None,
            reason: None,
            actor: None,
            detail: None,
            metadata: None,
            effective_at: now,
            recorded_at: now,
        }
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
    moved::note(EntryKind::Grant, new.class, new.source, amount.micros());
    let lot = lots::insert(conn, new).await?;
    let balance_after = store::accounts::add_to_balance(conn, account_id, amount.micros()).await?;
    let entry = append(conn, account_id, EntryKind::Grant, vec![(lot.id, amount.micros())], meta, balance_after).await?;
    refuse_over_limit(conn, &[account_id]).await?;
    Ok((lot, entry))
}

/// Credits an account with several new lots in one entry of `kind` (a gift received: one lot
/// per part of the gift), one line into each; unless the account's credits would then pass the
/// limit, like `credit`. Returns the lots in the order of `new` and the entry.
pub async fn credit_parts(
    conn: &impl ConnectionTrait,
    account_id: i64,
    kind: EntryKind,
    new: Vec<lots::NewLot<'_>>,
    meta: EntryMeta<'_>,
) -> Result<(Vec<lot::Model>, journal_entry::Model), ServiceError> {
    assert!(new.iter().all(|l| l.account_id == account_id), "one entry credits one account");
    let mut made = Vec::with_capacity(new.len());
    let mut total: i64 = 0;
    for lot in new {
        moved::note(kind, lot.class, lot.source, lot.amount.micros());
        total = total.checked_add(lot.amount.micros()).ok_or_else(|| anyhow::anyhow!("a gift's parts fit"))?;
        made.push(lots::insert(conn, lot).await?);
    }
    let balance_after = store::accounts::add_to_balance(conn, account_id, total).await?;
    let lines = made.iter().map(|l| (l.id, l.granted_micros)).collect();
    let entry = append(conn, account_id, kind, lines, meta, balance_after).await?;
    refuse_over_limit(conn, &[account_id]).await?;
    Ok((made, entry))
}

/// `credit` for many lots at once: the lots inserted in one statement, their entries appended in
/// one, the balances moved in one, and the limit checked in one (an account past it fails the
/// whole posting). Returns the lots in the order of `grants`. Each lot's (account, origin) must
/// be distinct among them (`lots::insert_many`).
pub async fn credit_many(
    conn: &impl ConnectionTrait,
    grants: Vec<(lots::NewLot<'_>, EntryMeta<'_>)>,
) -> Result<Vec<lot::Model>, ServiceError> {
    let (new, metas): (Vec<_>, Vec<_>) = grants.into_iter().unzip();
    for lot in &new {
        moved::note(EntryKind::Grant, lot.class, lot.source, lot.amount.micros());
    }
    let lots = lots::insert_many(conn, new).await?;
    let mut entries: Vec<_> = lots
        .iter()
        .zip(metas)
        .map(|(lot, meta)| new_entry(lot.account_id, EntryKind::Grant, vec![(lot.id, lot.granted_micros)], meta))
        .collect();
    let deltas = net_by_account(&entries);
    let balances = store::accounts::add_to_balances(conn, &deltas.iter().map(|(id, delta)| (*id, *delta)).collect::<Vec<_>>()).await?;
    running_balances(&mut entries, &deltas, &balances);
    journal::append_many(conn, &entries).await?;
    refuse_over_limit(conn, &deltas.into_keys().collect::<Vec<_>>()).await?;
    Ok(lots)
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
        moved::note(kind, lot.class, lot.source, amount.micros());
        total = total.checked_add(*amount).expect("sums fit");
    }
    let lines = takes.iter().map(|(lot, amount)| (lot.id, -amount.micros())).collect();
    let balance_after = store::accounts::add_to_balance(conn, account_id, -total.micros()).await?;
    append(conn, account_id, kind, lines, meta, balance_after).await
}

/// An entry that moves no credits but says something happened to a lot (an expiry change): no
/// lines, what happened in `meta.detail`.
pub async fn mark(
    conn: &impl ConnectionTrait,
    account_id: i64,
    kind: EntryKind,
    meta: EntryMeta<'_>,
) -> Result<journal_entry::Model, DbErr> {
    // Nothing moves, so the balance after is the balance: read where every posting reads it.
    let balance_after = store::accounts::add_to_balance(conn, account_id, 0).await?;
    append(conn, account_id, kind, Vec::new(), meta, balance_after).await
}

/// One entry of `debit_many`: what it takes from its account's lots.
pub struct Debit<'a> {
    pub account_id: i64,
    pub kind: EntryKind,
    /// (lot id, amount taken from it), each amount more than zero.
    pub takes: Vec<(i64, Credits)>,
    pub meta: EntryMeta<'a>,
}

/// A lot as read under its account's lock: what `debit_many` takes from.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    pub remaining: Credits,
    pub class: LotClass,
    pub source: LotSource,
}

impl From<&Lot> for Held {
    fn from(lot: &Lot) -> Held {
        Held { remaining: lot.remaining, class: lot.class, source: lot.source }
    }
}

/// `debit` for many entries at once, one statement per table: each lot goes from what it held
/// when read under its account's lock (`read`, by lot id) down by everything `debits` take from
/// it, each debit appends its entry, and each account's cached balance goes down by its debits.
/// Returns the entries' ids in the order of `debits`.
pub async fn debit_many(conn: &impl ConnectionTrait, read: &HashMap<i64, Held>, debits: &[Debit<'_>]) -> Result<Vec<i64>, DbErr> {
    let (changes, mut entries) = debit_rows(read, debits);
    let deltas = net_by_account(&entries);
    let deltas: Vec<(i64, i64)> = deltas.iter().map(|(id, delta)| (*id, *delta)).collect();
    let balances = store::accounts::move_lots_and_balances(conn, &changes, &deltas).await?;
    let deltas: BTreeMap<i64, i64> = deltas.into_iter().collect();
    running_balances(&mut entries, &deltas, &balances);
    journal::append_many(conn, &entries).await
}

/// `debit_many`'s rows, numbered and with their balances after, for `store::keyed_debits` to
/// write with the batch's keys: each debit's entry takes the next of `ids` (taken from the
/// journal's sequence under the accounts' locks, ascending), and each account's balances run
/// from `locked`, its cached balance as locked (nothing else may have posted to it since).
/// None if there are more debits than ids.
pub fn numbered_debits<'a>(
    read: &HashMap<i64, Held>,
    debits: &[Debit<'a>],
    ids: &[i64],
    locked: impl Fn(i64) -> i64,
) -> Option<store::keyed_debits::Debits<'a>> {
    if debits.len() > ids.len() {
        return None;
    }
    let (lots, mut entries) = debit_rows(read, debits);
    let deltas = net_by_account(&entries);
    let balances: Vec<(i64, i64, i64)> = deltas.iter().map(|(id, delta)| (*id, locked(*id), locked(*id) + delta)).collect();
    let after: BTreeMap<i64, i64> = balances.iter().map(|(id, _, after)| (*id, *after)).collect();
    running_balances(&mut entries, &deltas, &after);
    Some(store::keyed_debits::Debits { lots, balances, entries: ids.iter().copied().zip(entries).collect() })
}

/// What `debits` do to the lots read under the lock ((lot id, remaining as read, remaining
/// after)), and their entries, balances after not yet set.
fn debit_rows<'a>(read: &HashMap<i64, Held>, debits: &[Debit<'a>]) -> (Vec<(i64, Credits, Credits)>, Vec<journal::NewEntry<'a>>) {
    let held = |lot_id: &i64| *read.get(lot_id).expect("a debited lot was read under its account's lock");
    let mut left: BTreeMap<i64, Credits> = BTreeMap::new();
    for debit in debits {
        for (lot_id, amount) in &debit.takes {
            let lot = held(lot_id);
            let remaining = left.entry(*lot_id).or_insert(lot.remaining);
            *remaining = remaining.checked_sub(*amount).expect("a posting never overdraws a lot");
            moved::note(debit.kind, lot.class, lot.source, amount.micros());
        }
    }
    let changes = left.iter().map(|(id, new)| (*id, held(id).remaining, *new)).collect();
    let entries = debits
        .iter()
        .map(|d| new_entry(d.account_id, d.kind, d.takes.iter().map(|(lot_id, amount)| (*lot_id, -amount.micros())).collect(), d.meta))
        .collect();
    (changes, entries)
}

/// One move of `carry_many`: credits out of a lot into a new lot of the same account.
pub struct Carry<'a> {
    /// The lot the credits leave, as read under its account's lock (`read` of `carry_many`).
    pub from: i64,
    /// The lot they go to: its amount is what moves.
    pub to: lots::NewLot<'a>,
    pub meta: EntryMeta<'a>,
}

/// Moves credits from lots into new lots of the same accounts (a plan's rollover), one entry of
/// `kind` each with a line out and a line in: nothing is minted or taken, so no balance moves,
/// yet each entry records the balance it leaves, like any other. Returns the new lots in the
/// order of `carries`; each new lot's (account, origin) must be distinct among them.
pub async fn carry_many(
    conn: &impl ConnectionTrait,
    kind: EntryKind,
    read: &HashMap<i64, Held>,
    carries: Vec<Carry<'_>>,
) -> Result<Vec<lot::Model>, DbErr> {
    if carries.is_empty() {
        return Ok(Vec::new());
    }
    let held = |lot_id: &i64| *read.get(lot_id).expect("a carried lot was read under its account's lock");
    let mut left: BTreeMap<i64, Credits> = BTreeMap::new();
    for carry in &carries {
        let from = held(&carry.from);
        let remaining = left.entry(carry.from).or_insert(from.remaining);
        *remaining = remaining.checked_sub(carry.to.amount).expect("a carry never overdraws a lot");
        moved::note(kind, from.class, from.source, carry.to.amount.micros());
        moved::note(kind, carry.to.class, carry.to.source, carry.to.amount.micros());
    }
    let changes: Vec<(i64, Credits, Credits)> = left.iter().map(|(id, new)| (*id, held(id).remaining, *new)).collect();
    lots::set_remaining_many(conn, &changes).await?;
    let (new, metas): (Vec<_>, Vec<_>) = carries.into_iter().map(|c| ((c.from, c.to), c.meta)).unzip();
    let (froms, new): (Vec<i64>, Vec<_>) = new.into_iter().unzip();
    let lots = lots::insert_many(conn, new).await?;
    let mut entries: Vec<_> = lots
        .iter()
        .zip(froms.iter().zip(metas))
        .map(|(to, (from, meta))| new_entry(to.account_id, kind, vec![(*from, -to.granted_micros), (to.id, to.granted_micros)], meta))
        .collect();
    // Every delta is zero: the update moves nothing and returns each account's balance.
    let deltas = net_by_account(&entries);
    let balances = store::accounts::add_to_balances(conn, &deltas.iter().map(|(id, delta)| (*id, *delta)).collect::<Vec<_>>()).await?;
    running_balances(&mut entries, &deltas, &balances);
    journal::append_many(conn, &entries).await?;
    Ok(lots)
}

/// Each account's net change over `entries`.
fn net_by_account(entries: &[journal::NewEntry<'_>]) -> BTreeMap<i64, i64> {
    let mut deltas: BTreeMap<i64, i64> = BTreeMap::new();
    for entry in entries {
        *deltas.entry(entry.account_id).or_default() += entry.amount_micros();
    }
    deltas
}

/// Gives each entry its account's balance right after it, when one statement posts several
/// entries of an account: the balance before them all is what the update left (`balances`)
/// less their net change (`deltas`), and each entry adds its own amount in the order given,
/// which is the order their ids are handed out in (`journal::append_many` checks it).
fn running_balances(entries: &mut [journal::NewEntry<'_>], deltas: &BTreeMap<i64, i64>, balances: &BTreeMap<i64, i64>) {
    let mut running: BTreeMap<i64, i64> =
        deltas.iter().map(|(id, delta)| (*id, balances.get(id).expect("every posted account was updated") - delta)).collect();
    for entry in entries {
        let balance = running.get_mut(&entry.account_id).expect("every posted account was updated");
        *balance += entry.amount_micros();
        entry.balance_after_micros = *balance;
    }
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
        moved::note(EntryKind::Release, lot.class, lot.source, amount.micros());
        total = total.checked_add(*amount).expect("sums fit");
    }
    let lines = returns.iter().map(|(lot, amount)| (lot.id, amount.micros())).collect();
    let balance_after = store::accounts::add_to_balance(conn, account_id, total.micros()).await?;
    append(conn, account_id, EntryKind::Release, lines, meta, balance_after).await
}

async fn append(
    conn: &impl ConnectionTrait,
    account_id: i64,
    kind: EntryKind,
    lines: Vec<(i64, i64)>,
    meta: EntryMeta<'_>,
    balance_after_micros: i64,
) -> Result<journal_entry::Model, DbErr> {
    journal::append(conn, journal::NewEntry { balance_after_micros, ..new_entry(account_id, kind, lines, meta) }).await
}

/// The journal entry a posting appends: its lines, and what `meta` says besides them; its
/// balance after is set once the account's balance has moved.
fn new_entry<'a>(account_id: i64, kind: EntryKind, lines: Vec<(i64, i64)>, meta: EntryMeta<'a>) -> journal::NewEntry<'a> {
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
        actor: meta.actor,
        detail: meta.detail,
        metadata: meta.metadata,
        lines,
        balance_after_micros: 0,
    }
}
