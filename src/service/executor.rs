//! The one way a keyed operation that moves credits runs. A use case parses its request at the
//! edge into a `Command` (the account, the key, the hash of the fields that decide the outcome,
//! which account statuses may run it, and the fields themselves), then hands the executor its
//! body: the decision and the writes, given the locked account. The executor owns the rest, the
//! same for every operation:
//!
//! 1. a write transaction, retried whole on a transient conflict (`tx`);
//! 2. the account's lock, taken before the key is read, so concurrent duplicates serialize;
//! 3. the key: a replay returns the first outcome, the same key with another request is
//!    `IDEMPOTENCY_CONFLICT`;
//! 4. the account's status: a refusal is stored as the key's outcome like any other;
//! 5. the body's outcome remembered under the key, a business refusal included (its writes, such
//!    as a recorded coupon guess, commit with it), and committed with the body's writes.
//!
//! An `Err` from the body is not an outcome: nothing commits and the key stays free.
//!
//! `execute_many` is the same protocol for N commands of one operation in one transaction (a
//! batch of spends, `service::batch`): one statement locks all their accounts in id order (on
//! SQLite, whose write transaction holds the whole database, a spend's batch reads them in the
//! same call as the rest: `Named`), one reads all their keys, one remembers all their outcomes,
//! and the body decides every command that is its to decide at once. A key used twice in one batch is treated like a duplicate that
//! arrives later: the same request replays the first one's outcome, another is a conflict.

use crate::entity::{account, idempotency_key};
use crate::ledger::AccountStatus;
use crate::service::input::{ExternalId, IdempotencyKey};
use crate::service::keyed::{self, Keyed, KeyedRequest, Opened, Stored};
use crate::service::{Engine, Refusal, ServiceError, tx};
use crate::store;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// A keyed operation's request, past every input rule.
pub(crate) struct Command<F> {
    /// The name outcomes are kept under: one key space per operation and account.
    pub operation: &'static str,
    pub account: ExternalId,
    pub key: IdempotencyKey,
    /// The hash of the fields that decide the outcome (`store::idempotency::request_hash`).
    pub request_hash: String,
    pub permit: Permit,
    /// What the body needs of the request.
    pub fields: F,
}

/// Which account statuses may run an operation (`ledger::AccountStatus`).
#[derive(Debug, Clone)]
pub(crate) enum Permit {
    /// Purchases, grants and claims: anything but a suspended account.
    ReceiveCredits,
    /// A charge for this feature: active accounts, and inactive ones for storage.
    ChargeFor(String),
    /// Active accounts only.
    Active,
    /// Any status: settling what is already held.
    Any,
}

impl Permit {
    fn allows(&self, status: AccountStatus) -> bool {
        match self {
            Permit::ReceiveCredits => status.may_receive_credits(),
            Permit::ChargeFor(feature) => status.may_be_charged_for(feature),
            Permit::Active => status == AccountStatus::Active,
            Permit::Any => true,
        }
    }
}

/// What a body sees: the open transaction, the locked account, the command and the instant.
pub(crate) struct Run<'t, F> {
    pub txn: &'t DatabaseTransaction,
    pub ledger: &'t Engine,
    pub account: &'t account::Model,
    pub command: &'t Command<F>,
    pub now: DateTime<Utc>,
}

/// A body's outcome: done, or refused for a business reason (kept under the key), or failed
/// (nothing kept).
pub(crate) type Decision<T> = Result<Result<T, Refusal>, ServiceError>;

impl Engine {
    /// Runs `body` for `command` under the idempotency protocol (the module's comment).
    pub(crate) async fn execute<F, T, B>(&self, command: Command<F>, now: DateTime<Utc>, body: B) -> Result<T, ServiceError>
    where
        F: Sync,
        T: Serialize + DeserializeOwned + Send + Sync,
        B: for<'t> Fn(Run<'t, F>) -> BoxFuture<'t, Decision<T>> + Sync,
    {
        self.execute_also_locking(command, &[], now, body).await
    }

    /// `execute` for an operation that moves credits between the command's account and others
    /// (a market job pays its provider): all of them are locked first, in id order, so that two
    /// such operations in opposite directions never wait on each other in a cycle.
    pub(crate) async fn execute_also_locking<F, T, B>(
        &self,
        command: Command<F>,
        others: &[i64],
        now: DateTime<Utc>,
        body: B,
    ) -> Result<T, ServiceError>
    where
        F: Sync,
        T: Serialize + DeserializeOwned + Send + Sync,
        B: for<'t> Fn(Run<'t, F>) -> BoxFuture<'t, Decision<T>> + Sync,
    {
        let ttl = self.idempotency_ttl;
        let context = (self, command, body, others);
        let stored = tx::write_with(&self.writer, &context, |txn, (ledger, command, body, others)| {
            Box::pin(async move {
                if !others.is_empty() {
                    let own = store::accounts::by_external_id(txn, command.account.as_str())
                        .await?
                        .ok_or_else(|| ServiceError::NotFound(format!("no account {:?}", command.account.as_str())))?;
                    let mut ids: Vec<i64> = others.iter().copied().chain([own.id]).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    store::accounts::lock_many(txn, &ids).await?;
                }
                let request = KeyedRequest { operation: command.operation, key: command.key.as_str(), request_hash: &command.request_hash };
                let allowed = |status| command.permit.allows(status);
                let (locked, keyed) = match keyed::open(txn, command.account.as_str(), request, allowed, now, ttl).await? {
                    Opened::Done(stored) => return Ok(stored),
                    Opened::Fresh(locked, keyed) => (locked, keyed),
                };
                let outcome = match body(Run { txn, ledger, account: &locked, command, now }).await? {
                    Ok(value) => Stored::Done(value),
                    Err(refusal) => Stored::Refused(refusal),
                };
                keyed.remember(txn, &outcome, now, ttl).await?;
                Ok(outcome)
            })
        })
        .await?;
        stored.into_result()
    }
}

/// One command of a batch, with the instant it was made at (its outcome is kept from then).
pub(crate) type Dated<F> = (Command<F>, DateTime<Utc>);

/// A batch before anything is read: the accounts and keys its commands name. Its prefetch
/// locks the accounts (`Named::lock`) and reads the keys and what the operation's body will read
/// about the accounts (`Locked`); one statement saves a round trip per batch (a spend's,
/// `store::spend_reads`). On SQLite, where `BEGIN IMMEDIATE` already excludes every other
/// writer, reading the accounts is their lock, so a prefetch may read them in the same call as
/// the rest (`Named::read_under_the_database_lock`). An operation that reads nothing ahead uses
/// `keys_only`.
pub(crate) struct Named<'t> {
    pub txn: &'t DatabaseTransaction,
    pub ledger: &'t Engine,
    pub operation: &'static str,
    /// The external ids of the accounts the commands name, sorted, each once.
    pub externals: Vec<&'t str>,
    /// The (account's external id, key) pairs the commands use, sorted, each once.
    pub pairs: Vec<(&'t str, &'t str)>,
    pub locks: AccountLocks,
    pub latest: DateTime<Utc>,
}

impl<'t> Named<'t> {
    /// Locks the named accounts that exist in one statement, in id order (so two batches never
    /// wait on each other in a cycle).
    pub async fn lock(self) -> Result<Locked<'t>, ServiceError> {
        let locked = match self.locks {
            AccountLocks::Wait => store::accounts::lock_many_by_external_id(self.txn, &self.externals).await?,
            AccountLocks::SkipHeld => store::accounts::lock_free_by_external_id(self.txn, &self.externals).await?,
        };
        Ok(self.locked(locked))
    }

    /// Whether a plain read of the accounts locks them: SQLite's write transactions hold the
    /// whole database from their `BEGIN IMMEDIATE` (`service::tx`), and it has no row locks to
    /// skip.
    pub fn read_under_the_database_lock(&self) -> bool {
        self.txn.get_database_backend() == sea_orm::DbBackend::Sqlite && self.locks == AccountLocks::Wait
    }

    /// The batch once `accounts`, those of the named that exist, are locked: by `lock`, or read
    /// by the prefetch itself where `read_under_the_database_lock`.
    pub fn locked(self, accounts: Vec<account::Model>) -> Locked<'t> {
        let by_external: HashMap<&str, i64> = accounts.iter().map(|a| (a.external_id.as_str(), a.id)).collect();
        let mut keys: Vec<(i64, &str)> =
            self.pairs.iter().filter_map(|(account, key)| by_external.get(account).map(|id| (*id, *key))).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut account_ids: Vec<i64> = accounts.iter().map(|a| a.id).collect();
        account_ids.sort_unstable();
        let accounts = accounts.into_iter().map(|a| (a.id, a)).collect();
        Locked { txn: self.txn, operation: self.operation, accounts, account_ids, keys }
    }
}

/// A batch whose accounts are locked, for its prefetch to read the rest.
pub(crate) struct Locked<'t> {
    pub txn: &'t DatabaseTransaction,
    pub operation: &'static str,
    /// Every account the batch's commands name (those that exist), locked, by id.
    pub accounts: HashMap<i64, account::Model>,
    /// The locked accounts' ids, ascending.
    pub account_ids: Vec<i64>,
    /// The (account, key) pairs the batch's commands use, sorted, each once.
    pub keys: Vec<(i64, &'t str)>,
}

/// What a prefetch hands the executor: the locked accounts, by id; the stored records of the
/// batch's keys (those that exist); and the operation's own reads.
pub(crate) struct Prefetch<R> {
    pub accounts: HashMap<i64, account::Model>,
    pub records: Vec<idempotency_key::Model>,
    pub reads: R,
}

pub(crate) type Prefetched<R> = Result<Prefetch<R>, ServiceError>;

/// The prefetch of an operation that reads nothing ahead of its body: the lock, and the keys
/// (on SQLite, where reading the accounts locks them, both in one call).
pub(crate) fn keys_only(named: Named<'_>) -> BoxFuture<'_, Prefetched<()>> {
    Box::pin(async move {
        if named.read_under_the_database_lock() {
            let (accounts, records) =
                store::spend_reads::accounts_and_keys_sqlite(named.txn, &named.externals, &named.pairs, named.operation).await?;
            return Ok(Prefetch { accounts: named.locked(accounts).accounts, records, reads: () });
        }
        let locked = named.lock().await?;
        let records = store::idempotency::find_many(locked.txn, locked.operation, &locked.keys).await?;
        Ok(Prefetch { accounts: locked.accounts, records, reads: () })
    })
}

/// What a batch's body sees: the open transaction, every account of the batch locked, the
/// commands that are the body's to decide, the batch's latest instant, and what the prefetch
/// read.
pub(crate) struct RunMany<'t, F, R = ()> {
    pub txn: &'t DatabaseTransaction,
    pub ledger: &'t Engine,
    /// Every account the batch's commands name (those that exist), locked, by id.
    pub accounts: &'t HashMap<i64, account::Model>,
    /// The commands whose keys are fresh and whose accounts' status allows them, in arrival
    /// order: the body returns one outcome for each, in this order.
    pub fresh: Vec<Fresh<'t, F>>,
    pub latest: DateTime<Utc>,
    pub reads: R,
    /// A debit posting the body leaves for the executor to write in the same statement as the
    /// batch's key records (`store::keyed_debits`: two round trips fewer on PostgreSQL, four
    /// hand-overs on SQLite), once nothing else of the body is left to write after it.
    pub posting: &'t mut Option<store::keyed_debits::Prepared>,
}

/// A command of a batch for the body to decide, with its locked account and its instant.
pub(crate) struct Fresh<'t, F> {
    pub command: &'t Command<F>,
    pub account: &'t account::Model,
    pub now: DateTime<Utc>,
}

/// A batch body's outcome: one per fresh command, done or refused (both kept under the key); an
/// `Err` fails the whole batch (nothing commits).
pub(crate) type Decisions<T> = Result<Vec<Result<T, Refusal>>, ServiceError>;

/// Where one command of a batch stands before and after the body.
enum Slot<T> {
    /// Not an outcome, and nothing kept: an unknown account, or a key conflict.
    Failed(ServiceError),
    /// The key's stored outcome, replayed.
    Replayed(Stored<T>),
    /// The key was taken by an earlier command of this batch with the same request.
    SameAs(usize),
    /// This command takes its key on this account: its outcome (none until the body decides)
    /// is remembered.
    Keyed(i64, Option<Stored<T>>),
}

impl Engine {
    /// Runs N commands of one operation under the idempotency protocol in one transaction (the
    /// module's comment). The outer error fails the batch as a whole (a database error: nothing
    /// committed, every key stays free); the inner results are each command's own outcome.
    pub(crate) async fn execute_many<F, T, B>(&self, commands: &[Dated<F>], body: B) -> Result<Vec<Result<T, ServiceError>>, ServiceError>
    where
        F: Sync,
        T: Serialize + DeserializeOwned + Clone + Send + Sync,
        B: for<'t> Fn(RunMany<'t, F>) -> BoxFuture<'t, Decisions<T>> + Sync,
    {
        self.execute_many_reading(commands, AccountLocks::Wait, keys_only, body).await
    }

    /// `execute_many` whose lock and key lookup are `prefetch`'s, which may read the body's rows
    /// with them (`Named`). Its reads come after the lock, so they see what the transactions the
    /// lock waited for committed, keys included.
    pub(crate) async fn execute_many_reading<F, T, R, P, B>(
        &self,
        commands: &[Dated<F>],
        locks: AccountLocks,
        prefetch: P,
        body: B,
    ) -> Result<Vec<Result<T, ServiceError>>, ServiceError>
    where
        F: Sync,
        T: Serialize + DeserializeOwned + Clone + Send + Sync,
        R: Send,
        P: for<'t> Fn(Named<'t>) -> BoxFuture<'t, Prefetched<R>> + Sync,
        B: for<'t> Fn(RunMany<'t, F, R>) -> BoxFuture<'t, Decisions<T>> + Sync,
    {
        let Some(operation) = commands.first().map(|(command, _)| command.operation) else { return Ok(Vec::new()) };
        assert!(commands.iter().all(|(c, _)| c.operation == operation), "a batch holds one operation");
        let latest = commands.iter().map(|(_, now)| *now).max().expect("a batch is never empty here");
        let stored = tx::write_with(&self.writer, &(self, commands, prefetch, body), |txn, (ledger, commands, prefetch, body)| {
            Box::pin(async move {
                let (externals, pairs) = named(commands);
                let named = Named { txn, ledger, operation, externals, pairs, locks, latest };
                let Prefetch { accounts, records, reads } = prefetch(named).await?;
                let mut slots = sort_keys(commands, &accounts, records)?;
                let fresh: Vec<Fresh<'_, F>> = slots
                    .iter()
                    .zip(commands.iter())
                    .filter_map(|(slot, (command, now))| match slot {
                        Slot::Keyed(account_id, None) => Some(Fresh { command, account: &accounts[account_id], now: *now }),
                        _ => None,
                    })
                    .collect();
                let count = fresh.len();
                let mut posting = None;
                let decided = body(RunMany { txn, ledger, accounts: &accounts, fresh, latest, reads, posting: &mut posting }).await?;
                assert_eq!(decided.len(), count, "a batch body decides every fresh command");
                let mut decided = decided.into_iter();
                for slot in slots.iter_mut() {
                    if let Slot::Keyed(_, outcome @ None) = slot {
                        *outcome = Some(decided.next().expect("counted above").map_or_else(Stored::Refused, Stored::Done));
                    }
                }
                remember_many(txn, commands, &slots, ledger.idempotency_ttl, posting).await?;
                Ok(resolve(slots))
            })
        })
        .await?;
        Ok(stored.into_iter().map(|outcome| outcome.and_then(Stored::into_result)).collect())
    }
}

/// How a batch locks its accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountLocks {
    /// Waits for each account another transaction holds.
    Wait,
    /// Leaves out an account another transaction holds (PostgreSQL's `SKIP LOCKED`): its
    /// commands fail as an unknown account's do (`ServiceError::NotFound`), and it is the
    /// caller's to run them again with `Wait`. The rest of the batch does not wait for it.
    SkipHeld,
}

/// The external ids a batch's commands name, and the (external id, key) pairs they use: each
/// sorted, each once.
fn named<F>(commands: &[Dated<F>]) -> (Vec<&str>, Vec<(&str, &str)>) {
    let mut externals: Vec<&str> = commands.iter().map(|(c, _)| c.account.as_str()).collect();
    externals.sort_unstable();
    externals.dedup();
    let mut pairs: Vec<(&str, &str)> = commands.iter().map(|(c, _)| (c.account.as_str(), c.key.as_str())).collect();
    pairs.sort_unstable();
    pairs.dedup();
    (externals, pairs)
}

/// Each command's standing before the body runs, in arrival order, given the stored records of
/// the batch's keys: a key seen earlier in the batch counts as used; a status refusal is the
/// key's outcome.
fn sort_keys<F, T: DeserializeOwned>(
    commands: &[Dated<F>],
    accounts: &HashMap<i64, account::Model>,
    records: Vec<idempotency_key::Model>,
) -> Result<Vec<Slot<T>>, ServiceError> {
    let by_external: HashMap<&str, &account::Model> = accounts.values().map(|a| (a.external_id.as_str(), a)).collect();
    let records: HashMap<(i64, String), _> = records.into_iter().map(|r| ((r.account_id, r.key.clone()), r)).collect();
    // The first command of this batch to take each key: its index and request.
    let mut taken: HashMap<(i64, &str), (usize, &str)> = HashMap::new();
    let mut slots = Vec::with_capacity(commands.len());
    for (index, (command, _)) in commands.iter().enumerate() {
        let Some(account) = by_external.get(command.account.as_str()) else {
            slots.push(Slot::Failed(ServiceError::NotFound(format!("no account {:?}", command.account.as_str()))));
            continue;
        };
        let keyed = keyed_of(command, account.id);
        let slot = if let Some(record) = records.get(&(account.id, command.key.as_str().to_string())) {
            match keyed.check_same(&record.request_hash) {
                Ok(()) => Slot::Replayed(keyed::stored_outcome(record)?),
                Err(conflict) => Slot::Failed(conflict),
            }
        } else if let Some((first, hash)) = taken.get(&(account.id, command.key.as_str())) {
            keyed.check_same(hash).map_or_else(Slot::Failed, |()| Slot::SameAs(*first))
        } else {
            taken.insert((account.id, command.key.as_str()), (index, &command.request_hash));
            match keyed::admits(account, |status| command.permit.allows(status))? {
                Ok(()) => Slot::Keyed(account.id, None),
                Err(refusal) => Slot::Keyed(account.id, Some(Stored::Refused(refusal))),
            }
        };
        slots.push(slot);
    }
    Ok(slots)
}

fn keyed_of<F>(command: &Command<F>, account_id: i64) -> Keyed<'_> {
    Keyed { account_id, operation: command.operation, key: command.key.as_str(), request_hash: &command.request_hash }
}

/// Every outcome the batch's commands keep under their keys, in one statement, with the body's
/// `posting` if it left one.
async fn remember_many<F, T: Serialize>(
    txn: &DatabaseTransaction,
    commands: &[Dated<F>],
    slots: &[Slot<T>],
    ttl: chrono::Duration,
    posting: Option<store::keyed_debits::Prepared>,
) -> Result<(), ServiceError> {
    let mut records = Vec::new();
    for ((command, now), slot) in commands.iter().zip(slots) {
        if let Slot::Keyed(account_id, outcome) = slot {
            let outcome = outcome.as_ref().expect("the body decided every keyed command");
            records.push(keyed_of(command, *account_id).record(outcome, *now, ttl)?);
        }
    }
    match posting {
        Some(posting) => store::keyed_debits::write(txn, posting, &records).await?,
        None => store::idempotency::insert_many(txn, records).await?,
    }
    Ok(())
}

/// Each command's outcome: a later duplicate gets its first's.
fn resolve<T: Clone>(slots: Vec<Slot<T>>) -> Vec<Result<Stored<T>, ServiceError>> {
    let mut outcomes: Vec<Result<Stored<T>, ServiceError>> = Vec::with_capacity(slots.len());
    for slot in slots {
        let outcome = match slot {
            Slot::Failed(err) => Err(err),
            Slot::Replayed(stored) => Ok(stored),
            Slot::Keyed(_, outcome) => Ok(outcome.expect("the body decided every keyed command")),
            Slot::SameAs(first) => match &outcomes[first] {
                Ok(stored) => Ok(stored.clone()),
                Err(_) => unreachable!("a key is taken only by a command that has an outcome"),
            },
        };
        outcomes.push(outcome);
    }
    outcomes
}
