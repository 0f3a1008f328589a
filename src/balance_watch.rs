//! One balance read per change per account, shared by all of that account's subscribers.
//!
//! Each `balanceChanged` subscription used to follow the feed and read the balance on its own:
//! 10,000 subscriptions to one account read it 10,000 times per change. Here the subscribers of
//! an account share one watcher, a task that follows the feed (`crate::feed`), reads the balance
//! once per change (or resync) and hands the reading to all of them. The watcher starts with
//! the account's first subscriber and ends with its last (subscribers are counted, and at most
//! `max_per_account` may watch one account at once).
//!
//! Watchers do not each follow the feed: with 10,000 watched accounts every change woke 10,000
//! tasks to find it was not theirs (about 2 ms of CPU a spend; docs/benchmarks.md, "Idle
//! subscribers"). One dispatcher per process follows the feed and wakes only the watcher of the
//! account that changed (all of them for a resync, or when it fell behind).
//!
//! Nor do watchers read on their own: a read waits in the `crate::balance_reader` queue, which
//! reads every account waiting at once (a few statements for up to 500 accounts), so 10,000
//! subscribers joining together make a few dozen reads, not 10,000 at once.
//!
//! The semantics are the subscription's as before: a subscriber's first value is read after it
//! joined (joins that arrive together share that read), then each change is pushed; a resync
//! or a lagging feed re-reads. Only-changes filtering stays with each subscriber, since each has
//! seen its own last value.

use crate::balance_reader::BalanceReader;
use crate::feed::{BalanceFeed, FeedEvent};
use crate::service::accounts::AccountView;
use crate::service::reads::BalanceView;
use crate::service::{Clock, Engine, ServiceError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, broadcast, watch};

/// How long a watcher waits before it reads again after a failed read.
const RETRY: Duration = Duration::from_secs(1);

/// New subscriptions' account lookups in flight at once (`BalanceWatches::account`).
const LOOKUPS: usize = 32;

/// The per-process registry of watched accounts.
#[derive(Clone)]
pub struct BalanceWatches {
    inner: Arc<Inner>,
}

struct Inner {
    ledger: Engine,
    /// Turns for `account`'s lookups.
    lookups: tokio::sync::Semaphore,
    reader: BalanceReader,
    feed: BalanceFeed,
    max_per_account: usize,
    accounts: Mutex<HashMap<i64, Watched>>,
    /// Balance reads made by all watchers: what sharing saves, visible to tests and operators.
    reads: Arc<AtomicU64>,
    /// Whether the dispatcher was started (with the first watcher: it needs the runtime).
    dispatching: AtomicBool,
    /// The feed has closed: watchers started from now on end after their first reading.
    feed_closed: AtomicBool,
}

struct Watched {
    subscribers: usize,
    shared: Arc<Shared>,
}

/// Between one account's watcher and its subscribers.
struct Shared {
    latest: watch::Sender<Reading>,
    /// Joins so far; a joining subscriber waits for a reading that covers its join.
    joins: AtomicU64,
    /// Wakes the watcher for a join.
    joined: Notify,
    /// Wakes the watcher for a change of its account (or a resync): one permit stands for any
    /// number of changes, since one reading after them covers them all.
    changed: Notify,
    /// The feed is gone: the watcher sends its last reading as ended.
    ended: AtomicBool,
}

#[derive(Clone, Default)]
struct Reading {
    /// The joins made before this read began.
    covers: u64,
    balance: Option<(BalanceView, DateTime<Utc>)>,
    /// The feed is gone: no more readings will come.
    ended: bool,
}

/// Refused: the account has as many subscribers as allowed.
#[derive(Debug, thiserror::Error)]
#[error("at most {max} subscriptions may watch one account at once")]
pub struct TooManyWatchers {
    pub max: usize,
}

impl BalanceWatches {
    pub fn new(ledger: Engine, clock: Clock, feed: BalanceFeed, max_per_account: usize) -> BalanceWatches {
        BalanceWatches {
            inner: Arc::new(Inner {
                reader: BalanceReader::new(ledger.clone(), clock),
                ledger,
                lookups: tokio::sync::Semaphore::new(LOOKUPS),
                feed,
                max_per_account,
                accounts: Mutex::new(HashMap::new()),
                reads: Arc::new(AtomicU64::new(0)),
                dispatching: AtomicBool::new(false),
                feed_closed: AtomicBool::new(false),
            }),
        }
    }

    /// Balance reads made so far by every watcher of this process.
    pub fn reads(&self) -> u64 {
        self.inner.reads.load(Ordering::Relaxed)
    }

    /// The account a new subscription names, looked up `LOOKUPS` at a time. A lookup in flight
    /// holds its query's future (about 15 KiB, boxed by the database layer) while it waits for a
    /// connection, and 10,000 subscriptions arriving together held 148 MB of them at once
    /// (heaptrack; docs/benchmarks.md, change 13): most of the server's peak. Waiting for a turn
    /// holds next to nothing.
    pub async fn account(&self, external_id: &str) -> Result<AccountView, ServiceError> {
        let _turn = self.inner.lookups.acquire().await.expect("the semaphore is never closed");
        self.inner.ledger.account(external_id).await
    }

    /// Subscribers watching `account_id` now.
    pub fn subscribers(&self, account_id: i64) -> usize {
        self.lock().get(&account_id).map_or(0, |watched| watched.subscribers)
    }

    /// Joins the watcher of `account`, starting it if this is its first subscriber.
    pub fn watch(&self, account: &AccountView) -> Result<BalanceWatch, TooManyWatchers> {
        let mut accounts = self.lock();
        let (shared, first) = match accounts.entry(account.id) {
            Entry::Occupied(mut watched) => {
                let watched = watched.get_mut();
                if watched.subscribers >= self.inner.max_per_account {
                    return Err(TooManyWatchers { max: self.inner.max_per_account });
                }
                watched.subscribers += 1;
                (watched.shared.clone(), false)
            }
            Entry::Vacant(vacant) => {
                if self.inner.max_per_account == 0 {
                    return Err(TooManyWatchers { max: 0 });
                }
                let shared = Arc::new(Shared {
                    latest: watch::channel(Reading::default()).0,
                    joins: AtomicU64::new(0),
                    joined: Notify::new(),
                    changed: Notify::new(),
                    ended: AtomicBool::new(self.inner.feed_closed.load(Ordering::Acquire)),
                });
                (vacant.insert(Watched { subscribers: 1, shared: shared.clone() }).shared.clone(), true)
            }
        };
        // The receiver first, then the join: the reading that covers the join reaches it.
        let receiver = shared.latest.subscribe();
        let joined = shared.joins.fetch_add(1, Ordering::AcqRel) + 1;
        shared.joined.notify_one();
        if !self.inner.dispatching.swap(true, Ordering::AcqRel) {
            // Under the registry's lock, before this first watcher reads: no change after its
            // first read is missed.
            tokio::spawn(dispatch(Arc::downgrade(&self.inner), self.inner.feed.subscribe()));
        }
        if first {
            // Started only once this receiver exists: the watcher ends when it sees no receiver,
            // and on a multi-threaded runtime it may run before this function returns (it once
            // did, saw none, and left every subscriber of the account without a value). It is
            // in the registry already, so the dispatcher wakes it for any change committed
            // after its first read began.
            tokio::spawn(follow(self.inner.reader.clone(), account.clone(), shared.clone(), self.inner.reads.clone()));
        }
        drop(accounts);
        Ok(BalanceWatch { watches: self.clone(), account_id: account.id, external_id: account.external_id.clone(), receiver, joined })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Watched>> {
        self.inner.accounts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One subscriber's place at its account's watcher; leaving is dropping it.
pub struct BalanceWatch {
    watches: BalanceWatches,
    account_id: i64,
    external_id: String,
    receiver: watch::Receiver<Reading>,
    joined: u64,
}

impl BalanceWatch {
    pub fn external_id(&self) -> &str {
        &self.external_id
    }

    /// The next balance read for this subscriber (the first one after it joined, then one per
    /// change); none once the feed is gone.
    pub async fn next(&mut self) -> Option<(BalanceView, DateTime<Utc>)> {
        loop {
            self.receiver.changed().await.ok()?;
            let reading = self.receiver.borrow_and_update().clone();
            if reading.ended {
                return None;
            }
            // A read that began before this subscriber joined does not count as its first.
            if reading.covers >= self.joined
                && let Some(balance) = reading.balance
            {
                return Some(balance);
            }
        }
    }
}

impl Drop for BalanceWatch {
    fn drop(&mut self) {
        let mut accounts = self.watches.lock();
        if let Some(watched) = accounts.get_mut(&self.account_id) {
            watched.subscribers -= 1;
            if watched.subscribers == 0 {
                // The watcher ends once the last receiver is gone (this one, just after).
                accounts.remove(&self.account_id);
            }
        }
    }
}

/// The process's one follower of the feed: wakes the watcher of each account that changed, and
/// every watcher for a resync or when it fell behind. Ends with the registry, or with the feed
/// (then every watcher, and every one started later, ends after its reading).
async fn dispatch(registry: std::sync::Weak<Inner>, mut events: broadcast::Receiver<FeedEvent>) {
    loop {
        let event = events.recv().await;
        let Some(inner) = registry.upgrade() else { return };
        let accounts = inner.accounts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match event {
            Ok(FeedEvent::Changed(id)) => {
                if let Some(watched) = accounts.get(&id) {
                    watched.shared.changed.notify_one();
                }
            }
            Ok(FeedEvent::Resync) | Err(RecvError::Lagged(_)) => {
                for watched in accounts.values() {
                    watched.shared.changed.notify_one();
                }
            }
            Err(RecvError::Closed) => {
                inner.feed_closed.store(true, Ordering::Release);
                for watched in accounts.values() {
                    watched.shared.ended.store(true, Ordering::Release);
                    watched.shared.changed.notify_one();
                }
                return;
            }
        }
    }
}

/// The watcher of one account: reads its balance when a subscriber joins, on each change of it,
/// and on a resync; ends when no subscriber is left.
async fn follow(reader: BalanceReader, account: AccountView, shared: Arc<Shared>, reads: Arc<AtomicU64>) {
    let mut covered = 0u64;
    let mut retry = false;
    loop {
        let waiting = shared.joins.load(Ordering::Acquire) > covered;
        if !waiting && !retry {
            if shared.ended.load(Ordering::Acquire) {
                shared.latest.send_modify(|reading| reading.ended = true);
                return;
            }
            tokio::select! {
                () = shared.latest.closed() => return,
                () = shared.joined.notified() => continue,
                () = shared.changed.notified() => {
                    if shared.ended.load(Ordering::Acquire) {
                        shared.latest.send_modify(|reading| reading.ended = true);
                        return;
                    }
                }
            }
        }
        let covers = shared.joins.load(Ordering::Acquire);
        reads.fetch_add(1, Ordering::Relaxed);
        // The account itself is read again too: its plan (and so its daily free credits) may
        // have changed since the first subscriber came. The read is grouped with the other
        // watchers' (`crate::balance_reader`); it begins after this point, so it covers the
        // change that woke this watcher.
        match reader.read(account.id).await {
            Some((_, view, now)) => {
                covered = covers;
                retry = false;
                shared.latest.send_replace(Reading { covers, balance: Some((view, now)), ended: false });
            }
            None => {
                // The reader logged why, once for its batch.
                retry = true;
                tokio::select! {
                    () = shared.latest.closed() => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
}
