//! Group commit of spends (issue 9, docs/benchmarks.md).
//!
//! A spend alone is a dozen statements and a commit, most of it per-spend overhead: the lock,
//! the key lookup, the lots, the writes, the flush. Concurrent spends of one process therefore
//! queue here, in one of a few lanes by account (`default_lanes`), and each lane's runner takes
//! what is waiting (up to `MAX_BATCH`) into one transaction: the accounts are locked in one statement (in id order, so two batches never
//! wait on each other in a cycle), keys and lots read in one statement each, every spend decided
//! in memory by the same rules in arrival order (a later spend of an account sees the earlier
//! one's takes), and the writes go out as one statement per table. Under no load a batch is one
//! spend and costs what a spend alone did; under load a batch grows while the previous one
//! commits, so one flush and one round trip per table serve many spends.
//!
//! Each spend stays all or nothing and keyed: the outcome a spend gets is the one it would have
//! had alone in arrival order, stored under its key in the same commit as its postings. A
//! duplicate key inside a batch replays the first one's outcome (or is a conflict), like a
//! duplicate that arrives later. A batch that fails as a whole (a database error in any of its
//! statements) is rolled back and its spends run again one by one, so one bad spend cannot fail
//! its neighbours.

use crate::entity::account;
use crate::ledger::{Credits, Lot, Take, balance, take};
use crate::program::Program;
use crate::service::accounts::status_of;
use crate::service::daily_free;
use crate::service::keyed::{Refusal, Stored};
use crate::service::notices;
use crate::service::posting;
use crate::service::reservations;
use crate::service::spending::{ParsedSpend, SPEND, SpendReceipt, SpendRequest};
use crate::service::{Ledger, ServiceError, tx};
use crate::store::{self, idempotency, journal, lots};
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use sea_orm::{DatabaseTransaction, DbBackend};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::oneshot;

/// Spends per transaction at most: bounds a transaction's statements and how long it holds its
/// locks.
pub const MAX_BATCH: usize = 64;

/// Lanes per process: a spend waits in the lane its account hashes to, and each lane has at
/// most one batch in flight. All of one account's spends thus meet in one lane and are committed
/// together under one lock instead of queueing behind each other on the account row (the hot
/// account); different accounts spread over the lanes, so batches overlap (one's commit flush
/// with another's statements). SQLite commits one writer at a time, so one lane loses nothing
/// there. Measured in docs/benchmarks.md.
pub fn default_lanes(backend: DbBackend) -> usize {
    match backend {
        DbBackend::Sqlite => 1,
        _ => 4,
    }
}

/// The spends waiting for a batch, by lane.
pub struct SpendQueue {
    lanes: Vec<Mutex<Lane>>,
    batches: AtomicU64,
    spends: AtomicU64,
    largest: AtomicU64,
    fallbacks: AtomicU64,
}

#[derive(Default)]
struct Lane {
    waiting: VecDeque<Waiting>,
    /// Whether a runner is at work on this lane.
    running: bool,
}

struct Waiting {
    spend: ParsedSpend,
    reply: oneshot::Sender<Result<SpendReceipt, ServiceError>>,
}

/// Counts since the process started: how well spends were grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    pub batches: u64,
    /// Spends taken into batches.
    pub spends: u64,
    pub largest: u64,
    /// Batches that failed as a whole and ran their spends one by one.
    pub fallbacks: u64,
}

impl SpendQueue {
    pub fn new(lanes: usize) -> SpendQueue {
        assert!(lanes >= 1, "a queue without lanes never answers");
        SpendQueue {
            lanes: (0..lanes).map(|_| Mutex::new(Lane::default())).collect(),
            batches: AtomicU64::new(0),
            spends: AtomicU64::new(0),
            largest: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> BatchStats {
        BatchStats {
            batches: self.batches.load(Ordering::Relaxed),
            spends: self.spends.load(Ordering::Relaxed),
            largest: self.largest.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
        }
    }

    /// Spends queued and not yet taken into a batch.
    pub fn waiting(&self) -> usize {
        (0..self.lanes.len()).map(|lane| self.lane(lane).waiting.len()).sum()
    }

    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    fn lane(&self, lane: usize) -> std::sync::MutexGuard<'_, Lane> {
        // Nothing panics while holding it: the state is a queue and a flag.
        self.lanes[lane].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lane_of(&self, account: &str) -> usize {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        (BuildHasherDefault::<DefaultHasher>::default().hash_one(account) % self.lanes.len() as u64) as usize
    }

    /// Queues `spend` in its account's lane and waits for its outcome, starting the lane's
    /// runner if none is at work. Runners are tasks of their own: a caller that goes away does
    /// not cancel the batch its spend is in (the outcome is stored under its key either way).
    pub(crate) async fn submit(&self, ledger: &Ledger, spend: ParsedSpend) -> Result<SpendReceipt, ServiceError> {
        let (reply, answer) = oneshot::channel();
        let lane = self.lane_of(spend.account.as_str());
        let start_runner = {
            let mut state = self.lane(lane);
            state.waiting.push_back(Waiting { spend, reply });
            !std::mem::replace(&mut state.running, true)
        };
        if start_runner {
            tokio::spawn(ledger.clone().run_spends(lane));
        }
        answer.await.unwrap_or_else(|_| Err(ServiceError::Internal(anyhow::anyhow!("the batch holding this spend failed unexpectedly"))))
    }

    /// The lane's next batch, or none: then its runner has stopped (decided under the same lock
    /// as `submit`'s check, so a spend is never left waiting with no runner).
    fn next_batch(&self, lane: usize) -> Option<Vec<Waiting>> {
        let mut state = self.lane(lane);
        if state.waiting.is_empty() {
            state.running = false;
            return None;
        }
        // A spend whose caller has gone (its request timed out or was dropped while it waited)
        // is cancelled here, before any transaction: its answer said it may not have happened,
        // and a retry with its key runs it afresh. Once taken into a batch, it commits or not
        // with the batch, and its outcome is stored under its key either way.
        state.waiting.retain(|w| !w.reply.is_closed());
        if state.waiting.is_empty() {
            state.running = false;
            return None;
        }
        let n = state.waiting.len().min(MAX_BATCH);
        Some(state.waiting.drain(..n).collect())
    }
}

/// A spend as the batch decided it, before its journal entry has an id.
enum Decided {
    /// The outcome is known: a replay of a stored key, or a business refusal to store.
    Stored(Stored<SpendReceipt>),
    /// Spent: the index of its entry among the batch's new entries.
    Spent {
        entry: usize,
        takes: Vec<Take>,
        available_after: Credits,
    },
    /// A second request with a key that an earlier spend of this batch used, with the same request.
    SameAs(usize),
    Failed(ServiceError),
}

/// What a key already stands for, in the database or earlier in this batch.
enum Seen {
    Stored { hash: String, outcome: String },
    InBatch { hash: String, index: usize },
}

impl Ledger {
    /// Charges several spends together, in this order, in one transaction per `MAX_BATCH`
    /// (for a caller that holds many at once, such as a backend reporting a period's usage). Each
    /// spend is still all or nothing and keyed: the results are what each would have got alone,
    /// one after the other; an input error refuses that spend only.
    pub async fn spend_many(&self, requests: Vec<SpendRequest>, now: DateTime<Utc>) -> Vec<Result<SpendReceipt, ServiceError>> {
        let mut outcomes: Vec<Option<Result<SpendReceipt, ServiceError>>> = Vec::with_capacity(requests.len());
        let mut parsed = Vec::new();
        for request in requests {
            let parsed_spend = match self.parse_spend(request, now) {
                Ok(spend) => self.require_identity_to_spend(&spend.account, false).await.map(|()| spend),
                Err(err) => Err(err),
            };
            match parsed_spend {
                Ok(spend) => {
                    parsed.push((outcomes.len(), spend));
                    outcomes.push(None);
                }
                Err(err) => outcomes.push(Some(Err(err))),
            }
        }
        for chunk in parsed.chunks(MAX_BATCH) {
            let spends: Vec<ParsedSpend> = chunk.iter().map(|(_, spend)| spend.clone()).collect();
            for ((index, _), outcome) in chunk.iter().zip(self.spend_batch(Arc::new(spends)).await) {
                outcomes[*index] = Some(outcome);
            }
        }
        outcomes.into_iter().map(|o| o.expect("every spend has an outcome")).collect()
    }

    async fn run_spends(self, lane: usize) {
        while let Some(batch) = self.spends.next_batch(lane) {
            let (spends, replies): (Vec<ParsedSpend>, Vec<_>) = batch.into_iter().map(|w| (w.spend, w.reply)).unzip();
            match AssertUnwindSafe(self.spend_batch(Arc::new(spends))).catch_unwind().await {
                Ok(outcomes) => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        // The caller may have gone away; its outcome is stored under its key.
                        let _ = reply.send(outcome);
                    }
                }
                // The transaction was dropped, so rolled back; dropping the replies tells each
                // caller. The runner goes on with the next batch.
                Err(_) => tracing::error!("a batch of spends panicked"),
            }
        }
    }

    async fn spend_batch(&self, spends: Arc<Vec<ParsedSpend>>) -> Vec<Result<SpendReceipt, ServiceError>> {
        let counts = &self.spends;
        counts.batches.fetch_add(1, Ordering::Relaxed);
        counts.spends.fetch_add(spends.len() as u64, Ordering::Relaxed);
        counts.largest.fetch_max(spends.len() as u64, Ordering::Relaxed);
        let (ttl, program) = (self.idempotency_ttl, self.program.clone());
        let written = tx::write(&self.db, |txn| {
            let (spends, program) = (spends.clone(), program.clone());
            Box::pin(async move { write_batch(txn, &program, ttl, &spends).await })
        })
        .await;
        match written {
            Ok(outcomes) => outcomes.into_iter().map(|outcome| outcome.and_then(Stored::into_result)).collect(),
            Err(err) if spends.len() == 1 => vec![Err(err)],
            Err(err) => {
                tracing::warn!(spends = spends.len(), error = %err, "a batch of spends failed; running its spends one by one");
                self.spends.fallbacks.fetch_add(1, Ordering::Relaxed);
                let mut outcomes = Vec::with_capacity(spends.len());
                for spend in spends.iter() {
                    outcomes.push(self.spend_alone(spend).await);
                }
                outcomes
            }
        }
    }
}

/// The batch's transaction. The outer error is a database failure (the batch is retried or run
/// one by one); the inner results are each spend's own outcome.
async fn write_batch(
    txn: &DatabaseTransaction,
    program: &Program,
    ttl: chrono::Duration,
    spends: &[ParsedSpend],
) -> Result<Vec<Result<Stored<SpendReceipt>, ServiceError>>, ServiceError> {
    let mut externals: Vec<&str> = spends.iter().map(|s| s.account.as_str()).collect();
    externals.sort_unstable();
    externals.dedup();
    let mut accounts: HashMap<String, account::Model> =
        store::accounts::lock_many_by_external_id(txn, &externals).await?.into_iter().map(|a| (a.external_id.clone(), a)).collect();
    let account_ids: Vec<i64> = accounts.values().map(|a| a.id).collect();
    // Holds past their deadline give their credits back before any spend is decided, as a read
    // would show them; the batch's latest instant decides which have lapsed.
    let latest = spends.iter().map(|s| s.now).max().expect("a batch is never empty");
    if reservations::release_lapsed(txn, &account_ids, latest).await? > 0 {
        // Their releases moved the cached balances the low-credit check starts from.
        accounts =
            store::accounts::lock_many_by_external_id(txn, &externals).await?.into_iter().map(|a| (a.external_id.clone(), a)).collect();
    }
    let mut pairs: Vec<(i64, &str)> =
        spends.iter().filter_map(|s| accounts.get(s.account.as_str()).map(|a| (a.id, s.key.as_str()))).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut seen: HashMap<(i64, String), Seen> = idempotency::find_many(txn, SPEND, &pairs)
        .await?
        .into_iter()
        .map(|r| ((r.account_id, r.key), Seen::Stored { hash: r.request_hash, outcome: r.outcome }))
        .collect();
    let mut wallets: HashMap<i64, Vec<Lot>> = HashMap::new();
    let mut read: HashMap<i64, Credits> = HashMap::new();
    for model in lots::open_for_accounts(txn, &account_ids).await? {
        let lot = lots::to_rule(&model)?;
        read.insert(lot.id, lot.remaining);
        wallets.entry(model.account_id).or_default().push(lot);
    }

    // Each spend in arrival order, against the lots as the earlier ones left them.
    let mut decided = Vec::with_capacity(spends.len());
    // The spends whose key is new: their outcomes are stored.
    let mut keyed_here = Vec::new();
    let mut entries = Vec::new();
    // Per account: the change the batch's spends and daily lots make to the cached balance.
    let mut spent: BTreeMap<i64, i64> = BTreeMap::new();
    let mut credited: BTreeMap<i64, i64> = BTreeMap::new();
    // The accounts whose day's free credits were looked up.
    let mut day_offered: HashSet<i64> = HashSet::new();
    for (index, spend) in spends.iter().enumerate() {
        let Some(account) = accounts.get(spend.account.as_str()) else {
            decided.push(Decided::Failed(ServiceError::NotFound(format!("no account {:?}", spend.account.as_str()))));
            continue;
        };
        let key = (account.id, spend.key.as_str().to_string());
        match seen.get(&key) {
            Some(Seen::Stored { hash, .. } | Seen::InBatch { hash, .. }) if *hash != spend.hash => {
                decided.push(Decided::Failed(ServiceError::IdempotencyConflict(format!(
                    "idempotency key {:?} was already used for a different {SPEND} request",
                    spend.key.as_str()
                ))));
                continue;
            }
            Some(Seen::Stored { outcome, .. }) => {
                let stored = serde_json::from_str(outcome).map_err(|e| anyhow::anyhow!("stored outcome of spend key {:?}: {e}", key.1))?;
                decided.push(Decided::Stored(stored));
                continue;
            }
            Some(Seen::InBatch { index: first, .. }) => {
                decided.push(Decided::SameAs(*first));
                continue;
            }
            None => {}
        }
        seen.insert(key, Seen::InBatch { hash: spend.hash.clone(), index });
        keyed_here.push(index);
        let status = status_of(account)?;
        if !status.may_be_charged_for(&spend.fields.feature) {
            decided.push(Decided::Stored(Stored::Refused(Refusal::AccountNotActive { status: status.to_string() })));
            continue;
        }
        let (now, amount) = (spend.now, spend.fields.amount);
        let lots = wallets.entry(account.id).or_default();
        if day_offered.insert(account.id) {
            // The day's free credits, the last tier, as a virtual lot until a spend takes them.
            lots.extend(daily_free::virtual_lot(txn, program, account, now).await?);
        }
        let available_before = balance(lots, now);
        match take(lots, amount, &program.consumption_order, now) {
            Err(short) => {
                let refusal = Refusal::InsufficientCredits { requested: short.requested, available: short.available };
                decided.push(Decided::Stored(Stored::Refused(refusal)));
            }
            Ok(mut takes) => {
                if let Some(written) = daily_free::write_if_taken(txn, account.id, lots, &mut takes, now).await? {
                    let granted = lots.iter().find(|l| l.id == written).expect("the day's lot was just written").granted;
                    read.insert(written, granted);
                    *credited.entry(account.id).or_default() += granted.micros();
                }
                *spent.entry(account.id).or_default() -= amount.micros();
                let lines = takes.iter().map(|t| (t.lot_id, -t.amount.micros())).collect();
                let meta = spend.fields.entry_meta(&spend.key, now);
                entries.push(posting::new_entry(account.id, journal::EntryKind::Spend, lines, meta));
                let available_after = available_before.checked_sub(amount).expect("take checked the balance");
                decided.push(Decided::Spent { entry: entries.len() - 1, takes, available_after });
                tracing::info!(account.id = account.id, amount.credits = %amount, feature = %spend.fields.feature, "spent");
            }
        }
    }

    // The writes, one statement per table.
    let mut changed: Vec<(i64, Credits, Credits)> = wallets
        .values()
        .flatten()
        .filter(|lot| lot.id != daily_free::VIRTUAL_LOT_ID && read[&lot.id] != lot.remaining)
        .map(|lot| (lot.id, read[&lot.id], lot.remaining))
        .collect();
    changed.sort_unstable_by_key(|(id, _, _)| *id);
    lots::set_remaining_many(txn, &changed).await?;
    let entry_ids = journal::append_many(txn, &entries).await?;
    let deltas: Vec<(i64, i64)> = spent.iter().map(|(id, delta)| (*id, *delta)).collect();
    store::accounts::add_to_balances(txn, &deltas).await?;
    check_low_after_batch(txn, program, &accounts, &spent, &credited, spends).await?;

    let outcomes: Vec<Result<Stored<SpendReceipt>, ServiceError>> = resolve(decided, &entry_ids, spends);
    let mut records = Vec::with_capacity(keyed_here.len());
    for index in keyed_here {
        let spend = &spends[index];
        let outcome = outcomes[index].as_ref().expect("a spend that used its key has an outcome");
        records.push(idempotency::NewRecord {
            account_id: accounts[spend.account.as_str()].id,
            operation: SPEND,
            key: spend.key.as_str(),
            request_hash: &spend.hash,
            outcome: serde_json::to_string(outcome).map_err(anyhow::Error::new)?,
            now: spend.now,
            expires_at: spend.now + ttl,
        });
    }
    idempotency::insert_many(txn, records).await?;
    Ok(outcomes)
}

/// Each spend's outcome, with the ids its entry got.
fn resolve(decided: Vec<Decided>, entry_ids: &[i64], spends: &[ParsedSpend]) -> Vec<Result<Stored<SpendReceipt>, ServiceError>> {
    let mut outcomes: Vec<Result<Stored<SpendReceipt>, ServiceError>> = Vec::with_capacity(decided.len());
    for (index, decided) in decided.into_iter().enumerate() {
        let outcome = match decided {
            Decided::Stored(stored) => Ok(stored),
            Decided::Spent { entry, takes, available_after } => Ok(Stored::Done(SpendReceipt {
                entry_id: entry_ids[entry],
                amount: spends[index].fields.amount,
                takes,
                available_after,
                effective_at: spends[index].now,
            })),
            Decided::SameAs(first) => match &outcomes[first] {
                Ok(stored) => Ok(stored.clone()),
                Err(_) => unreachable!("a key is taken only by a spend that has an outcome"),
            },
            Decided::Failed(err) => Err(err),
        };
        outcomes.push(outcome);
    }
    outcomes
}

/// The low-credit check once per account the batch charged, on its balance after the batch: a
/// balance only falls during a batch of spends, so the last one is the one a warning is about.
/// Dated at the account's last spend.
async fn check_low_after_batch(
    txn: &DatabaseTransaction,
    program: &Program,
    accounts: &HashMap<String, account::Model>,
    spent: &BTreeMap<i64, i64>,
    credited: &BTreeMap<i64, i64>,
    spends: &[ParsedSpend],
) -> Result<(), ServiceError> {
    if program.notices.low_credits.is_none() || spent.is_empty() {
        return Ok(());
    }
    let by_id: HashMap<i64, &account::Model> = accounts.values().map(|a| (a.id, a)).collect();
    let mut after = Vec::with_capacity(spent.len());
    for account in spent.keys().map(|id| by_id[id]) {
        let now = spends.iter().rev().find(|s| s.account.as_str() == account.external_id).expect("a charged account has spends").now;
        let balance_micros = account.balance_micros + credited.get(&account.id).copied().unwrap_or(0) + spent[&account.id];
        after.push((account::Model { balance_micros, ..account.clone() }, now));
    }
    notices::check_low_credits_many(txn, program, &after).await
}
