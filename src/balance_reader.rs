//! The balance watchers' reads, grouped: the accounts whose balances are wanted at once are read
//! together, up to `MAX_BATCH` per read (`Engine::balances_of`).
//!
//! Each watcher (`crate::balance_watch`) used to read its account on its own: the account row,
//! its lots, its holds, its day's claim, about five statements per change, and 10,000
//! subscribers joining at once made 10,000 concurrent reads. Here a read waits in one queue; one
//! task at a time takes everything waiting and reads it in one go, the way spends are grouped
//! into one commit (`service::batch`). Each read first waits `LINGER` for others to join it:
//! without that, at 16 clients over 10,000 watched accounts a read found one or two accounts
//! waiting (docs/benchmarks.md, changes 11 and 13).
//!
//! A reading always starts after its request was queued, so a watcher woken by a change gets a
//! reading that covers that change.

use crate::service::accounts::AccountView;
use crate::service::reads::BalanceView;
use crate::service::{Clock, Engine};
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Accounts read together at most: bounds a read's statements and parameters.
pub const MAX_BATCH: usize = 500;

/// How long a read waits for more accounts before it starts (unless `MAX_BATCH` are waiting).
/// Without it, a read under steady load found one or two accounts waiting (each spend's change
/// arrives on its own), and a subscribed account's spend cost about four reading statements
/// on top of its own seven. A push is that much later; its target is a p99 under 100 ms
/// (docs/benchmarks.md, change 13).
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

/// An account read again (its plan decides its daily free credits), its balance, and the
/// instant of the reading.
pub type Reading = (AccountView, BalanceView, DateTime<Utc>);

#[derive(Clone)]
pub struct BalanceReader {
    inner: Arc<Inner>,
}

struct Inner {
    ledger: Engine,
    clock: Clock,
    state: Mutex<State>,
    /// Reads made (each of up to `MAX_BATCH` accounts): how well requests were grouped.
    batches: AtomicU64,
    /// How long a read waits for others to join it (`LINGER`).
    linger: std::time::Duration,
}

#[derive(Default)]
struct State {
    waiting: Vec<(i64, oneshot::Sender<Option<Reading>>)>,
    /// Whether a task is reading now.
    running: bool,
}

impl BalanceReader {
    pub fn new(ledger: Engine, clock: Clock) -> BalanceReader {
        BalanceReader::with_linger(ledger, clock, LINGER)
    }

    /// A reader whose reads wait `linger` for others to join them.
    pub fn with_linger(ledger: Engine, clock: Clock, linger: std::time::Duration) -> BalanceReader {
        let state = Mutex::new(State::default());
        BalanceReader { inner: Arc::new(Inner { ledger, clock, state, batches: AtomicU64::new(0), linger }) }
    }

    /// The account's balance, read after this call began; none if the read failed (logged
    /// once per batch) or the account is gone.
    pub async fn read(&self, account_id: i64) -> Option<Reading> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.state();
            state.waiting.push((account_id, reply));
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            tokio::spawn(self.clone().run());
        }
        answer.await.ok().flatten()
    }

    /// Reads made so far, each for every request waiting at its start.
    pub fn batches(&self) -> u64 {
        self.inner.batches.load(Ordering::Relaxed)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding it: the state is a list and a flag.
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads what is waiting, batch after batch, until nothing is (decided under the same lock
    /// as `read`'s check, so a request is never left without a reader).
    async fn run(self) {
        loop {
            if self.state().waiting.len() < MAX_BATCH {
                tokio::time::sleep(self.inner.linger).await;
            }
            let batch: Vec<(i64, oneshot::Sender<Option<Reading>>)> = {
                let mut state = self.state();
                // A watcher that has gone (its last subscriber left) needs no reading.
                state.waiting.retain(|(_, reply)| !reply.is_closed());
                if state.waiting.is_empty() {
                    state.running = false;
                    return;
                }
                let n = state.waiting.len().min(MAX_BATCH);
                state.waiting.drain(..n).collect()
            };
            self.inner.batches.fetch_add(1, Ordering::Relaxed);
            let mut ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
            ids.sort_unstable();
            ids.dedup();
            let readings = match self.read_many(&ids).await {
                Ok(readings) => readings,
                Err(e) => {
                    tracing::warn!(accounts = ids.len(), error = ?e, "balance reader: cannot read the balances");
                    Default::default()
                }
            };
            for (id, reply) in batch {
                // Several requests for one account (rare: one watcher per account) share it.
                let _ = reply.send(readings.get(&id).cloned());
            }
        }
    }

    async fn read_many(&self, ids: &[i64]) -> Result<std::collections::HashMap<i64, Reading>, crate::service::ServiceError> {
        let now = self.inner.clock.now();
        let accounts: Vec<AccountView> =
            crate::store::accounts::by_ids(&self.inner.ledger.db, ids).await?.into_iter().map(AccountView::of).collect::<Result<_, _>>()?;
        let mut views = self.inner.ledger.balances_of(&accounts, now).await?;
        Ok(accounts
            .into_iter()
            .filter_map(|account| {
                let view = views.remove(&account.id)?;
                Some((account.id, (account, view, now)))
            })
            .collect())
    }
}
