//! Group commit of spends (issue 9, docs/benchmarks.md).
//!
//! A spend alone is a dozen statements and a commit, most of it per-spend overhead: the lock,
//! the key lookup, the lots, the writes, the flush. Concurrent spends of one process therefore
//! queue here, and a few runners (`default_lanes`) each take what is waiting (up to
//! `MAX_BATCH`, never an account another runner's batch holds) into one transaction: the
//! accounts are locked in one statement (in id order, so two batches never wait on each other in
//! a cycle), keys and lots read in one statement, every spend decided in memory by the same rules
//! in arrival order (a later spend of an account sees the earlier one's takes), and the writes go
//! out in as few statements as the database allows. Under no load a batch is one spend and costs
//! what a spend alone did; under load a batch grows while the previous ones commit, so one flush
//! and one round trip per statement serve many spends.
//!
//! Each spend stays all or nothing and keyed: the outcome a spend gets is the one it would have
//! had alone in arrival order, stored under its key in the same commit as its postings. The key
//! protocol is the executor's (`Engine::execute_many`): a duplicate key inside a batch replays
//! the first one's outcome (or is a conflict), like a duplicate that arrives later. This module
//! holds only the spend decision and its postings (`spend_all`). A batch that fails as a whole (a
//! database error in any of its statements) is rolled back and its spends run again one by one,
//! each a batch of one, so one bad spend cannot fail its neighbours.

use crate::entity::account;
use crate::ledger::{self, Lot, Spent};
use crate::program::Program;
use crate::service::Refusal;
use crate::service::daily_free;
use crate::service::executor::{AccountLocks, Dated, Decisions, Fresh, Named, Prefetch, Prefetched, RunMany};
use crate::service::notices;
use crate::service::posting::{self, Debit};
use crate::service::reservations;
use crate::service::spend_limits::LimitBook;
use crate::service::spending::{ParsedSpend, SpendFields, SpendReceipt, SpendRequest};
use crate::service::{Engine, ServiceError};
use crate::store::spend_reads::AccountReads;
use crate::store::{self, journal::EntryKind, lots};
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::oneshot;
use tracing::Instrument;

/// Spends per transaction at most: bounds a transaction's statements and how long it holds its
/// locks.
pub const MAX_BATCH: usize = 64;

// A spend batch's entries and balances stay in the `VALUES` form on PostgreSQL, which measured
// faster than arrays at this size (`store::pg_array`).
const _: () = assert!(MAX_BATCH < crate::store::pg_array::FROM_ROWS);

/// Batches in flight per process at most (`spend_lanes`). A spend waits in one queue; while
/// fewer batches than this are at work, a new one starts at once with everything waiting whose
/// account is not in a batch at work, so a spend at low load never waits for another account's
/// batch (with lanes by account hash, two clients whose accounts shared a lane waited for each
/// other's commit; docs/benchmarks.md, change 20). Under load every runner is busy and the queue
/// grows, so the next batch takes many spends: one commit for all of them. An account is in one
/// batch at a time: all of its spends that wait go into the next batch that takes it, in arrival
/// order, and are committed together under one lock instead of queueing behind each other on the
/// account's row (the hot account). SQLite commits one writer at a time, so one batch in flight
/// loses nothing there. On PostgreSQL two: a second batch overlaps its statements with the first
/// one's, which one client's spends cannot fill, but every batch's `pg_notify` queues its commit
/// behind the others' (PostgreSQL holds the notify lock through the flush), so a third and fourth
/// batch mostly waited while holding their accounts, and split the queue into smaller batches
/// (at 8-32 clients two runners gave up to 16% more spends than four, at 4 clients 1-6% fewer;
/// docs/benchmarks.md, change 21).
pub fn default_lanes(backend: DbBackend) -> usize {
    match backend {
        DbBackend::Sqlite => 1,
        _ => 2,
    }
}

/// The spends waiting for a batch, and the batches at work.
pub struct SpendQueue {
    state: Mutex<Queue>,
    /// Batches in flight at most.
    lanes: usize,
    batches: AtomicU64,
    spends: AtomicU64,
    largest: AtomicU64,
    fallbacks: AtomicU64,
    skipped: AtomicU64,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    /// Runners at work (each runs one batch at a time), at most `lanes`.
    running: usize,
    /// The accounts of the batches at work: their spends wait for them to commit.
    in_flight: HashSet<String>,
}

struct Waiting {
    spend: ParsedSpend,
    reply: oneshot::Sender<Result<SpendReceipt, ServiceError>>,
    /// The span the spend was submitted in (its request's): the batch's span goes under the
    /// first one's and links to the others', so each request's trace reaches its transaction.
    span: tracing::Span,
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
    /// Spends left out of their batch because another transaction held their account (or it
    /// does not exist): run after that batch, in a batch of their own, instead of holding it up.
    pub skipped: u64,
}

impl SpendQueue {
    pub fn new(lanes: usize) -> SpendQueue {
        assert!(lanes >= 1, "a queue without runners never answers");
        SpendQueue {
            state: Mutex::new(Queue::default()),
            lanes,
            batches: AtomicU64::new(0),
            spends: AtomicU64::new(0),
            largest: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> BatchStats {
        BatchStats {
            batches: self.batches.load(Ordering::Relaxed),
            spends: self.spends.load(Ordering::Relaxed),
            largest: self.largest.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }

    /// Spends queued and not yet taken into a batch.
    pub fn waiting(&self) -> usize {
        self.queue().waiting.len()
    }

    /// Batches in flight at most.
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Nothing panics while holding it: the state is a queue, a count and a set.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `spend` and waits for its outcome, starting a runner if fewer than `lanes` are at
    /// work. Runners are tasks of their own: a caller that goes away does not cancel the batch
    /// its spend is in (the outcome is stored under its key either way).
    pub(crate) async fn submit(&self, ledger: &Engine, spend: ParsedSpend) -> Result<SpendReceipt, ServiceError> {
        let (reply, answer) = oneshot::channel();
        let start_runner = {
            let mut queue = self.queue();
            // An account a batch at work holds is that batch's runner's to take next: another
            // runner would only find it held and stop (a hot account's every spend did).
            let start = queue.running < self.lanes && !queue.in_flight.contains(spend.account.as_str());
            queue.waiting.push_back(Waiting { spend, reply, span: tracing::Span::current() });
            queue.running += usize::from(start);
            start
        };
        if start_runner {
            tokio::spawn(ledger.clone().run_spends());
        }
        answer.await.unwrap_or_else(|_| Err(ServiceError::Internal(anyhow::anyhow!("the batch holding this spend failed unexpectedly"))))
    }

    /// A runner's next batch, once its last one (`done`: that batch's accounts) has committed or
    /// failed: up to `MAX_BATCH` waiting spends, in arrival order, of accounts no other batch
    /// at work holds. None if there are none: the runner stops (decided under the same lock as
    /// `submit`'s start, and a spend left waiting for an account at work is taken by that
    /// account's runner when it comes back here, so no spend is left without a runner).
    fn next_batch(&self, done: &[String]) -> Option<Vec<Waiting>> {
        let mut queue = self.queue();
        for account in done {
            queue.in_flight.remove(account);
        }
        // A spend whose caller has gone (its request timed out or was dropped while it waited)
        // is cancelled here, before any transaction: its answer said it may not have happened,
        // and a retry with its key runs it afresh. Once taken into a batch, it commits or not
        // with the batch, and its outcome is stored under its key either way.
        queue.waiting.retain(|w| !w.reply.is_closed());
        let Queue { waiting, in_flight, .. } = &mut *queue;
        let mut taken = Vec::new();
        // In place, in arrival order, stopping once the batch is full: the spends passed over
        // keep their places.
        let mut at = 0;
        while at < waiting.len() && taken.len() < MAX_BATCH {
            if in_flight.contains(waiting[at].spend.account.as_str()) {
                at += 1;
            } else {
                taken.push(waiting.remove(at).expect("in range"));
            }
        }
        for w in &taken {
            in_flight.insert(w.spend.account.as_str().to_string());
        }
        if taken.is_empty() {
            queue.running -= 1;
            return None;
        }
        Some(taken)
    }
}

impl Engine {
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
        let mut parsed = parsed.into_iter().peekable();
        while parsed.peek().is_some() {
            let (indexes, spends): (Vec<usize>, Vec<Dated<SpendFields>>) =
                parsed.by_ref().take(MAX_BATCH).map(|(index, spend)| (index, spend.into_command())).unzip();
            for (index, outcome) in indexes.into_iter().zip(self.spend_batch(spends).await) {
                outcomes[index] = Some(outcome);
            }
        }
        outcomes.into_iter().map(|o| o.expect("every spend has an outcome")).collect()
    }

    async fn run_spends(self) {
        let mut done: Vec<String> = Vec::new();
        while let Some(batch) = self.spends.next_batch(&done) {
            let span = batch_span(&batch);
            done = batch.iter().map(|w| w.spend.account.as_str().to_string()).collect();
            let (spends, replies): (Vec<Dated<SpendFields>>, Vec<_>) = batch.into_iter().map(|w| (w.spend.into_command(), w.reply)).unzip();
            match AssertUnwindSafe(self.spend_batch(spends).instrument(span)).catch_unwind().await {
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

    async fn spend_batch(&self, spends: Vec<Dated<SpendFields>>) -> Vec<Result<SpendReceipt, ServiceError>> {
        let counts = &self.spends;
        counts.batches.fetch_add(1, Ordering::Relaxed);
        counts.spends.fetch_add(spends.len() as u64, Ordering::Relaxed);
        counts.largest.fetch_max(spends.len() as u64, Ordering::Relaxed);
        metrics::histogram!(crate::telemetry::SPEND_BATCH_SIZE).record(spends.len() as f64);
        // A batch of several accounts on PostgreSQL does not wait for one that another
        // transaction holds (another process's batch, an operator's grant): it leaves that
        // account out, commits the rest, and then runs the spends it left out together, waiting
        // for their accounts. Waiting held every spend of the batch for that one lock. One
        // account's batch waits at once: leaving it out would only run it again to wait. SQLite
        // has one writer at a time, no row locks to meet.
        let several = spends.iter().any(|(command, _)| command.account.as_str() != spends[0].0.account.as_str());
        if several && self.db.get_database_backend() == DbBackend::Postgres {
            match self.execute_many_reading(&spends, AccountLocks::SkipHeld, spend_reads, spend_body).await {
                Ok(outcomes) => return self.run_skipped(spends, outcomes).await,
                Err(ServiceError::DatabaseUnavailable { why, cause }) => {
                    return spends.iter().map(|_| Err(ServiceError::DatabaseUnavailable { why, cause: cause.clone() })).collect();
                }
                // Nothing committed: run as any batch below, and one by one if it fails again.
                Err(_) => {}
            }
        }
        self.spend_waiting(&spends).await
    }

    /// A batch that waits for its accounts' locks; if it fails as a whole, its spends one by one.
    async fn spend_waiting(&self, spends: &[Dated<SpendFields>]) -> Vec<Result<SpendReceipt, ServiceError>> {
        match self.execute_many_reading(spends, AccountLocks::Wait, spend_reads, spend_body).await {
            Ok(outcomes) => outcomes,
            Err(err) if spends.len() == 1 => vec![Err(err)],
            // The database is down or full: one by one would meet the same, each after its own
            // wait for a connection, and hold the lane for minutes. Every spend gets the answer.
            Err(ServiceError::DatabaseUnavailable { why, cause }) => {
                spends.iter().map(|_| Err(ServiceError::DatabaseUnavailable { why, cause: cause.clone() })).collect()
            }
            Err(err) => {
                tracing::warn!(spends = spends.len(), error = %err, "a batch of spends failed; running its spends one by one");
                self.spends.fallbacks.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(crate::telemetry::SPEND_BATCH_FALLBACKS).increment(1);
                let mut outcomes = Vec::with_capacity(spends.len());
                for spend in spends {
                    // A batch of one: the outcome the spend would have had alone.
                    let alone = self.execute_many_reading(std::slice::from_ref(spend), AccountLocks::Wait, spend_reads, spend_body).await;
                    outcomes.push(alone.and_then(|mut outcome| outcome.pop().expect("one outcome per spend")));
                }
                outcomes
            }
        }
    }

    /// The outcomes of a batch that left out the accounts it found held, with the spends it
    /// left out run now as a batch that waits for them, in arrival order. An unknown account
    /// looks the same to the first batch (no row locked) and gets its answer in the second.
    async fn run_skipped(
        &self,
        spends: Vec<Dated<SpendFields>>,
        outcomes: Vec<Result<SpendReceipt, ServiceError>>,
    ) -> Vec<Result<SpendReceipt, ServiceError>> {
        let mut all = Vec::with_capacity(outcomes.len());
        let (mut again, mut places) = (Vec::new(), Vec::new());
        for (spend, outcome) in spends.into_iter().zip(outcomes) {
            match outcome {
                Err(ServiceError::NotFound(_)) => {
                    places.push(all.len());
                    all.push(None);
                    again.push(spend);
                }
                outcome => all.push(Some(outcome)),
            }
        }
        if !again.is_empty() {
            self.spends.skipped.fetch_add(again.len() as u64, Ordering::Relaxed);
            metrics::counter!(crate::telemetry::SPEND_BATCH_SKIPPED).increment(again.len() as u64);
            for (place, outcome) in places.into_iter().zip(self.spend_waiting(&again).await) {
                all[place] = Some(outcome);
            }
        }
        all.into_iter().map(|outcome| outcome.expect("every spend has an outcome")).collect()
    }
}

/// A batch's `spend.batch` span (`crate::traces`): the runner is a task of its own, so without
/// this a spend's transaction would be in no request's trace. It is a child of the first spend's
/// span and links to the others' (a span has one parent; a batch serves several requests).
fn batch_span(batch: &[Waiting]) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let parent = batch.first().map(|w| w.span.id()).unwrap_or_default();
    let span = tracing::info_span!(parent: parent, "spend.batch", spend.batch.size = batch.len());
    if !span.is_disabled() {
        for waiting in batch.iter().skip(1) {
            use opentelemetry::trace::TraceContextExt;
            span.add_link(waiting.span.context().span().span_context().clone());
        }
    }
    span
}

fn spend_body(run: RunMany<'_, SpendFields, AccountReads>) -> BoxFuture<'_, Decisions<SpendReceipt>> {
    Box::pin(spend_all(run))
}

/// A batch's keys and every locked account's lapsed holds, open lots and limits at once
/// (`store::spend_reads`): after the lock on PostgreSQL, one statement; on SQLite one call that
/// reads the accounts too.
fn spend_reads(named: Named<'_>) -> BoxFuture<'_, Prefetched<AccountReads>> {
    Box::pin(async move {
        let program = &named.ledger.program;
        // Containers only where the low-credit warning counts hours of usage: the check reads them.
        let with_containers = program.metering.is_some() && program.notices.low_credits.is_some();
        let (txn, operation, latest) = (named.txn, named.operation, named.latest);
        // The day's claims where a plan has daily free credits: whether each account's are
        // still to be offered (`Wallets::spend`), read here rather than one statement each.
        let day = daily_free::offered(program).then(|| crate::ledger::time::day_of(latest).to_string());
        let claim = day.as_deref().map(|day| (daily_free::KIND, day));
        // An entry id per key: each fresh spend posts at most one entry (`numbered_debits`).
        let (locked, mut reads) = if named.read_under_the_database_lock() {
            let ids = named.pairs.len();
            let (accounts, reads) =
                store::spend_reads::read_sqlite(txn, &named.externals, &named.pairs, latest, with_containers, operation, ids, claim)
                    .await?;
            (named.locked(accounts), reads)
        } else {
            let locked = named.lock().await?;
            let (ids, keys) = (locked.keys.len(), &locked.keys);
            let reads = store::spend_reads::read(txn, &locked.account_ids, latest, with_containers, operation, keys, ids, claim).await?;
            (locked, reads)
        };
        Ok(Prefetch { accounts: locked.accounts, records: std::mem::take(&mut reads.keys), reads })
    })
}

/// The body of a batch of spends: each fresh spend decided in arrival order against the lots as
/// the earlier ones left them (the day's free credits written if a spend takes them), then all
/// of them posted at once, one statement per table, and the low-credit rule checked once per
/// account charged.
async fn spend_all(run: RunMany<'_, SpendFields, AccountReads>) -> Decisions<SpendReceipt> {
    let RunMany { txn, ledger, accounts, fresh, latest, mut reads, posting } = run;
    let program = &ledger.program;
    let entry_ids = std::mem::take(&mut reads.entry_ids);
    let released = !reads.lapsed.is_empty();
    let moved = release_lapsed(txn, accounts, &reads.lapsed, latest).await?;
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    if !reads.lapsed.is_empty() {
        // The releases gave credits back to lots (reopening some): read them as they are now.
        let mut ids: Vec<i64> = accounts.keys().copied().collect();
        ids.sort_unstable();
        reads.lots = lots::open_for_accounts(txn, &ids).await?;
    }
    let claimed = reads.claimed.take();
    let mut wallets = Wallets::from_lots(reads.lots, claimed)?;
    let mut limits = LimitBook::from_rows(txn, reads.limits, fresh.iter().map(|s| &s.now)).await?;
    let mut decided = Vec::with_capacity(fresh.len());
    let mut debits = Vec::new();
    for spend in &fresh {
        let (account, fields) = (spend.account, &spend.command.fields);
        // The account's own spend limits first, against the counters as the batch's earlier
        // spends left them (`service::spend_limits` says why before the credits).
        let counters = match limits.check(account.id, &fields.feature, fields.amount, spend.now) {
            Ok(counters) => counters,
            Err(refusal) => {
                decided.push(Err(refusal));
                continue;
            }
        };
        let outcome = wallets.spend(txn, program, spend).await?;
        if let Ok(spent) = &outcome {
            limits.count(account.id, &counters, fields.amount);
            let takes = spent.takes.iter().map(|t| (t.lot_id, t.amount)).collect();
            let meta = fields.entry_meta(&spend.command.key, spend.now);
            debits.push(Debit { account_id: account.id, kind: EntryKind::Spend, takes, meta });
            tracing::info!(account.id = account.id, amount.credits = %fields.amount, feature = %fields.feature, "spent");
        }
        decided.push(outcome);
    }
    let numbered = if released || !wallets.credited.is_empty() {
        // The holds' releases or the day's lot posted entries after the ids were taken: the
        // debits' entries must come after theirs in the account's sequence.
        None
    } else {
        numbered_debits(txn.get_database_backend(), accounts, &wallets.read, &debits, &entry_ids)
    };
    let mut entry_ids = match numbered {
        Some((debits, ids)) => {
            *posting = Some(debits);
            ids.into_iter()
        }
        None => posting::debit_many(txn, &wallets.read, &debits).await?.into_iter(),
    };
    limits.write(txn).await?;
    let charged: Vec<(&Fresh<'_, SpendFields>, &Spent)> =
        fresh.iter().zip(&decided).filter_map(|(s, o)| Some((s, o.as_ref().ok()?))).collect();
    check_low_after_batch(txn, program, accounts, &moved, &wallets.credited, &charged, reads.containers).await?;
    let receipts = fresh.iter().zip(decided).map(|(spend, outcome)| {
        outcome.map(|spent| SpendReceipt {
            entry_id: entry_ids.next().expect("one entry per charge"),
            amount: spend.command.fields.amount,
            takes: spent.takes,
            available_after: spent.available_after,
            effective_at: spend.now,
        })
    });
    Ok(receipts.collect())
}

/// The batch's debits for the executor to write with its keys in one statement
/// (`store::keyed_debits`), and their entries' ids; none where they must be written on their own:
/// with nothing to debit, past one statement's parameters, or when an account charged has auto
/// top-up, which reads its lots after the debits.
fn numbered_debits(
    backend: DbBackend,
    accounts: &HashMap<i64, account::Model>,
    read: &HashMap<i64, posting::Held>,
    debits: &[Debit<'_>],
    ids: &[i64],
) -> Option<(store::keyed_debits::Prepared, Vec<i64>)> {
    let lines = debits.iter().map(|d| d.takes.len()).sum();
    if debits.is_empty()
        || !store::keyed_debits::fit(backend, debits.len(), lines, ids.len())
        || debits.iter().any(|d| accounts[&d.account_id].auto_topup_below_micros.is_some())
    {
        return None;
    }
    let numbered = posting::numbered_debits(read, debits, ids, |id| accounts[&id].balance_micros)?;
    let ids = numbered.entries.iter().map(|(id, _)| *id).collect();
    Some((store::keyed_debits::prepare(backend, &numbered), ids))
}

/// Holds past their deadline give their credits back before any spend is decided, as a read
/// would show them; the batch's latest instant decides which have lapsed. Their releases move the
/// cached balances the low-credit check starts from: the balances after them, if any moved.
async fn release_lapsed(
    txn: &DatabaseTransaction,
    accounts: &HashMap<i64, account::Model>,
    lapsed: &[crate::entity::reservation::Model],
    latest: DateTime<Utc>,
) -> Result<HashMap<i64, i64>, ServiceError> {
    if reservations::release(txn, lapsed, latest).await? == 0 {
        return Ok(HashMap::new());
    }
    let ids: Vec<i64> = accounts.keys().copied().collect();
    Ok(store::accounts::lock_many(txn, &ids).await?.into_iter().map(|a| (a.id, a.balance_micros)).collect())
}

/// The lots of a batch's accounts, as the batch's spends leave them.
struct Wallets {
    lots: HashMap<i64, Vec<Lot>>,
    /// Each lot's remaining credits as read under the lock (or as written, for the day's lot):
    /// what the posting moves them from.
    read: HashMap<i64, posting::Held>,
    /// Per account: the day's free credits written for its spends.
    credited: BTreeMap<i64, i64>,
    /// The accounts whose day's free credits were looked up.
    offered: HashSet<i64>,
    /// The day's claims of the batch's accounts, read with their lots (`spend_reads`).
    claimed: Option<store::spend_reads::Claimed>,
}

impl Wallets {
    /// The batch's accounts' open lots, as read under their locks.
    fn from_lots(open: Vec<crate::entity::lot::Model>, claimed: Option<store::spend_reads::Claimed>) -> Result<Wallets, ServiceError> {
        let mut wallets =
            Wallets { lots: HashMap::new(), read: HashMap::new(), credited: BTreeMap::new(), offered: HashSet::new(), claimed };
        for model in open {
            let lot = lots::to_rule(&model)?;
            wallets.read.insert(lot.id, posting::Held::from(&lot));
            wallets.lots.entry(model.account_id).or_default().push(lot);
        }
        Ok(wallets)
    }

    /// One spend decided (`ledger::spend`) against its account's lots as the earlier spends left
    /// them, the day's free credits last; if it takes from them, the day's lot is written.
    async fn spend(
        &mut self,
        txn: &DatabaseTransaction,
        program: &Program,
        spend: &Fresh<'_, SpendFields>,
    ) -> Result<Result<Spent, Refusal>, ServiceError> {
        let (account, amount, now) = (spend.account, spend.command.fields.amount, spend.now);
        let lots = self.lots.entry(account.id).or_default();
        if self.offered.insert(account.id) {
            // The day's free credits, the last tier, as a virtual lot until a spend takes them:
            // from the claims read ahead when they are of this spend's day (a batch may straddle
            // midnight), else looked up.
            let of_today =
                |c: &&store::spend_reads::Claimed| c.kind == daily_free::KIND && c.period == crate::ledger::time::day_of(now).to_string();
            // Only a program with daily free credits reads claims ahead: no day to format else.
            let read = self.claimed.as_ref().filter(of_today);
            lots.extend(match read {
                Some(claimed) => daily_free::virtual_lot_of(program, &account.plan, now, claimed.accounts.contains(&account.id)),
                None => daily_free::virtual_lot(txn, program, account.id, &account.plan, now).await?,
            });
        }
        let mut spent = match ledger::spend(lots, amount, &program.consumption_order, now, &spend.command.fields.feature) {
            Ok(spent) => spent,
            Err(short) => return Ok(Err(Refusal::short(short, Some(&spend.command.fields.feature)))),
        };
        if let Some(written) = daily_free::write_if_taken(txn, account.id, lots, &mut spent.takes, now).await? {
            let lot = lots.iter().find(|l| l.id == written).expect("the day's lot was just written");
            let granted = lot.granted;
            self.read.insert(written, posting::Held { remaining: granted, ..posting::Held::from(lot) });
            *self.credited.entry(account.id).or_default() += granted.micros();
        }
        Ok(Ok(spent))
    }
}

/// The low-credit check and auto top-up once per account the batch charged, on its balance
/// after the batch: a balance only falls during a batch of spends, so the last one is the one a
/// warning or a top-up is about. Dated at the account's last charge.
async fn check_low_after_batch(
    txn: &DatabaseTransaction,
    program: &Program,
    accounts: &HashMap<i64, account::Model>,
    moved: &HashMap<i64, i64>,
    credited: &BTreeMap<i64, i64>,
    charged: &[(&Fresh<'_, SpendFields>, &Spent)],
    containers: Option<Vec<crate::entity::container::Model>>,
) -> Result<(), ServiceError> {
    // Without the warning and without auto top-up on any charged account there is nothing to do.
    let auto_topup = charged.iter().any(|(spend, _)| spend.account.auto_topup_below_micros.is_some());
    if charged.is_empty() || (program.notices.low_credits.is_none() && !auto_topup) {
        return Ok(());
    }
    // Per account: what the batch spent, and when it last did.
    let mut spent: BTreeMap<i64, (i64, DateTime<Utc>)> = BTreeMap::new();
    for (spend, _) in charged {
        let (total, last) = spent.entry(spend.account.id).or_insert((0, spend.now));
        *total -= spend.command.fields.amount.micros();
        *last = spend.now;
    }
    let mut after = Vec::with_capacity(spent.len());
    for (id, (total, now)) in spent {
        let account = &accounts[&id];
        let before = moved.get(&id).copied().unwrap_or(account.balance_micros);
        let balance_micros = before + credited.get(&id).copied().unwrap_or(0) + total;
        after.push((account::Model { balance_micros, ..account.clone() }, now));
    }
    notices::check_low_credits_with(txn, program, &after, containers).await
}
