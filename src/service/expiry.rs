//! Writing off expired lots. Reads already exclude them; this makes the journal say so, dated at
//! each lot's own expiry instant, under the same account locks as a spend.
//!
//! A month's end expires a lot on every account at one instant, so the write-off goes in
//! batches: a batch of due lots is split by account into parts, each part one transaction with
//! its accounts locked in one statement (in id order, like a batch of spends) and its writes made
//! one statement per table, several parts at once on PostgreSQL (docs/benchmarks.md). A part that
//! fails in the database is rolled back and its accounts are written off one by one, so one bad
//! account cannot hold up the rest.

use crate::entity::account;
use crate::ledger::Credits;
use crate::program::Program;
use crate::service::posting::{self, Debit, EntryMeta};
use crate::service::{Engine, ServiceError, notices, rollover, tx};
use crate::store::{self, journal::EntryKind, lots};
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream};
use sea_orm::DatabaseTransaction;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// The most lots one call looks at; the worker calls again until a batch comes back short.
pub const MAX_EXPIRY_BATCH: u64 = 20_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Lots ended: written off, carried over (a plan's rollover), or both.
    pub lots: u64,
    /// Credits written off.
    pub credits: Credits,
    /// Credits carried into rollover lots (`service::rollover`).
    pub carried: Credits,
    /// Transactions committed: one per part of a batch, plus one per account where a part failed
    /// and went account by account.
    pub transactions: u64,
}

impl ExpiryReport {
    fn add(&mut self, other: ExpiryReport) {
        self.lots += other.lots;
        self.credits = self.credits.checked_add(other.credits).expect("sums fit");
        self.carried = self.carried.checked_add(other.carried).expect("sums fit");
        self.transactions += other.transactions;
    }
}

/// Due lots, by account.
type Due = BTreeMap<i64, BTreeSet<i64>>;

impl Engine {
    /// Writes off up to `batch` due lots: split by account into parts of about `job_part` lots
    /// (an account's lots stay together), each its own transaction, `job_parallelism` of them at once
    /// (their accounts are disjoint, so they never wait on each other).
    pub async fn expire_due(&self, now: DateTime<Utc>, batch: u64) -> Result<ExpiryReport, ServiceError> {
        let due = lots::due_for_expiry(&self.db, now, batch.clamp(1, MAX_EXPIRY_BATCH)).await?;
        let mut by_account = Due::new();
        for lot in &due {
            by_account.entry(lot.account_id).or_default().insert(lot.id);
        }
        let mut parts: Vec<Due> = vec![Due::new()];
        let mut in_part = 0;
        for (account, lots) in by_account {
            if in_part + lots.len() > self.job_part.max(1) && in_part > 0 {
                parts.push(Due::new());
                in_part = 0;
            }
            in_part += lots.len();
            parts.last_mut().expect("one part at least").insert(account, lots);
        }
        parts.retain(|part| !part.is_empty());
        let mut report = ExpiryReport::default();
        let mut failed = None;
        let written: Vec<Result<ExpiryReport, ServiceError>> =
            stream::iter(parts.into_iter().map(|part| self.expire_part(Arc::new(part), now)))
                .buffer_unordered(self.job_parallelism.max(1))
                .collect()
                .await;
        for part in written {
            match part {
                Ok(done) => report.add(done),
                Err(err) => {
                    failed.get_or_insert(err);
                }
            }
        }
        if report.lots > 0 {
            tracing::info!(lots = report.lots, amount.credits = %report.credits, carried.credits = %report.carried, transactions = report.transactions, "expired lots written off");
        }
        // The rest were written off; the job reports the failure and comes back to it.
        match failed {
            Some(err) => Err(err),
            None => Ok(report),
        }
    }

    /// One part of a batch in one transaction; if the database refuses it, account by account,
    /// so one bad account cannot hold up the rest. The first failure is returned after.
    async fn expire_part(&self, part: Arc<Due>, now: DateTime<Utc>) -> Result<ExpiryReport, ServiceError> {
        match self.write_off(part.clone(), now).await {
            Ok(report) => Ok(report),
            Err(err) if part.len() == 1 => Err(err),
            Err(err) => {
                tracing::warn!(accounts = part.len(), error = %err, "a batch of write-offs failed; writing off account by account");
                let mut report = ExpiryReport::default();
                let mut failed = None;
                for (account_id, lot_ids) in part.iter() {
                    let alone: Due = [(*account_id, lot_ids.clone())].into();
                    match self.write_off(Arc::new(alone), now).await {
                        Ok(done) => report.add(done),
                        Err(err) => {
                            tracing::error!(account.id = account_id, error = %err, "could not write off expired lots");
                            failed.get_or_insert(err);
                        }
                    }
                }
                match failed {
                    Some(err) => Err(err),
                    None => Ok(report),
                }
            }
        }
    }
}

impl Engine {
    async fn write_off(&self, due: Arc<Due>, now: DateTime<Utc>) -> Result<ExpiryReport, ServiceError> {
        let program = self.program.clone();
        tx::write(&self.writer, |txn| {
            let (due, program) = (due.clone(), program.clone());
            Box::pin(async move { write_off(txn, &program, &due, now).await })
        })
        .await
    }
}

/// One transaction's write-off: each account's due lots, re-read under its lock (a spend or
/// another worker may have used up or written off some since they were chosen); a plan lot's
/// unused credits carried over first where its plan rolls them (`service::rollover`), then each
/// lot's remaining credits in a journal entry of its own dated at its expiry.
async fn write_off(txn: &DatabaseTransaction, program: &Program, due: &Due, now: DateTime<Utc>) -> Result<ExpiryReport, ServiceError> {
    let account_ids: Vec<i64> = due.keys().copied().collect();
    let accounts: BTreeMap<i64, account::Model> =
        store::accounts::lock_many(txn, &account_ids).await?.into_iter().map(|a| (a.id, a)).collect();
    let lot_ids: Vec<i64> = due.values().flatten().copied().collect();
    let mut read = HashMap::new();
    let mut ending = Vec::new();
    for model in lots::by_ids(txn, &lot_ids).await? {
        let lot = lots::to_rule(&model)?;
        if !lot.is_expired(now) || !model.open || lot.remaining.is_zero() {
            continue;
        }
        read.insert(lot.id, posting::Held::from(&lot));
        ending.push((model, lot));
    }
    let carried = rollover::carry_over(txn, program, &accounts, &ending, &mut read, now).await?;
    let mut debits = Vec::new();
    let mut lost: BTreeMap<i64, i64> = BTreeMap::new();
    let mut report = ExpiryReport { transactions: 1, carried, lots: ending.len() as u64, ..ExpiryReport::default() };
    for (model, lot) in &ending {
        let rest = read[&lot.id].remaining;
        if rest.is_zero() {
            continue;
        }
        let expires_at = lot.expires_at.expect("an expired lot has an expiry");
        let meta = EntryMeta { reason: Some("expired"), effective_at: expires_at, ..EntryMeta::now("expire", now) };
        debits.push(Debit { account_id: model.account_id, kind: EntryKind::Expire, takes: vec![(lot.id, rest)], meta });
        *lost.entry(model.account_id).or_default() -= rest.micros();
        report.credits = report.credits.checked_add(rest).expect("sums fit");
    }
    posting::debit_many(txn, &read, &debits).await?;
    let after: Vec<(account::Model, DateTime<Utc>)> = accounts
        .into_values()
        .filter_map(|a| lost.get(&a.id).map(|delta| (account::Model { balance_micros: a.balance_micros + delta, ..a }, now)))
        .collect();
    notices::check_low_credits_many(txn, program, &after).await?;
    Ok(report)
}
