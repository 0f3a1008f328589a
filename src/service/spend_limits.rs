//! Spend limits set by the account's user (issue 26): `setSpendLimits` replaces the set, reads
//! show each limit's current period, and every charge that can be refused (a spend, a hold, a
//! market job's hold) is checked and counted in its own transaction, under the account's lock.
//!
//! - The rule is `ledger::spend_limits`; the counters are `spend_usage` rows (one per account,
//!   scope and period), so a check reads one row per limit, never the journal.
//! - The limit is checked *before* the credits: it is the user's own rule, it needs no lots, and
//!   a refusal that says "your limit" is the more useful answer when both would refuse.
//! - What is counted: a spend's amount; a hold's amount when it is taken. Settling a hold gives
//!   back what it counted less what was captured, to the counters (the periods) the hold was
//!   counted in, wherever the settlement falls: a hold taken on Monday and released on Tuesday
//!   gives Monday's room back, and Tuesday's counter never saw it (`spend_limit_holds` remembers
//!   which counters each hold added to). A capture charges what is held, so it counts nothing new.
//! - Metered usage (settlements of containers, storage, traffic, AI) already happened: it is
//!   charged and counted, never refused, and the limit's state then says `exceeded`.
//! - Counting starts when a limit exists: a charge counts against the limits its account has at
//!   that moment, so a limit set mid-day counts from then (charges made earlier that day are not
//!   counted retroactively). Replacing the set keeps the counters: raising a cap keeps what was used.

use crate::entity::spend_limit;
use crate::ledger::Credits;
use crate::ledger::spend_limits::{Counter, EVERY_FEATURE, Limit, Limits, Period, Reached};
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey, label};
use crate::service::{Engine, Refusal, ServiceError, tx};
use crate::store::{self, idempotency::request_hash, spend_limits as stored};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The stored period of the maximum per single charge.
const PER_CHARGE: &str = "charge";

/// One limit as a caller gives it.
#[derive(Debug, Clone)]
pub struct LimitInput {
    /// None: every feature together.
    pub feature: Option<String>,
    pub period: Period,
    pub max: Credits,
}

#[derive(Debug, Clone)]
pub struct SetSpendLimitsRequest {
    pub account: String,
    /// The whole set: it replaces the account's limits; empty clears them.
    pub limits: Vec<LimitInput>,
    pub max_per_charge: Option<Credits>,
    /// Optional: replacing the set is idempotent by itself; with a key, a retry replays.
    pub idempotency_key: Option<String>,
}

/// A limit with its current period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitView {
    pub feature: Option<String>,
    pub period: Period,
    pub max: Credits,
    pub used: Credits,
    pub remaining: Credits,
    pub resets_at: DateTime<Utc>,
    pub exceeded: bool,
}

/// An account's spend limits as a read shows them at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendLimitsView {
    pub limits: Vec<LimitView>,
    pub max_per_charge: Option<Credits>,
}

/// The hashed form of a set (in the rule's one order, so the same set hashes alike).
#[derive(Debug, Clone, Serialize)]
struct SetFields {
    limits: Vec<(Option<String>, &'static str, Credits)>,
    max_per_charge: Option<Credits>,
}

/// The stored limits read back into the rule; a row the rule refuses is corrupt.
pub(crate) fn rules_of(rows: &[spend_limit::Model]) -> Result<Limits, ServiceError> {
    let mut limits = Vec::new();
    let mut max_per_charge = None;
    for row in rows {
        let max = Credits::from_micros(row.max_micros);
        if row.period == PER_CHARGE {
            max_per_charge = Some(max);
            continue;
        }
        let period =
            Period::parse(&row.period).ok_or_else(|| anyhow::anyhow!("spend limit {}: unknown period {:?}", row.id, row.period))?;
        let feature = (row.scope != EVERY_FEATURE).then(|| row.scope.clone());
        limits.push(Limit { feature, period, max });
    }
    Ok(Limits::new(limits, max_per_charge).map_err(|e| anyhow::anyhow!("stored spend limits: {e}"))?)
}

/// The refusal of a charge a limit does not let through.
pub(crate) fn refusal(reached: Reached) -> Refusal {
    Refusal::SpendLimitReached {
        feature: reached.feature,
        period: match reached.period {
            Some(Period::Day) => "DAY",
            Some(Period::Month) => "MONTH",
            None => "CHARGE",
        }
        .to_string(),
        limit: reached.limit,
        used: reached.used,
        requested: reached.requested,
        resets_at: reached.resets_at,
    }
}

fn period_keys<'a>(instants: impl IntoIterator<Item = &'a DateTime<Utc>>) -> Vec<String> {
    let mut keys: Vec<String> = instants.into_iter().flat_map(|at| [Period::Day.key(*at), Period::Month.key(*at)]).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The limits and counters of a batch's accounts, read once and moved in memory as the batch's
/// charges are decided in order; `write` then moves the stored counters in one statement.
#[derive(Default)]
pub(crate) struct LimitBook {
    limits: HashMap<i64, Limits>,
    used: HashMap<(i64, Counter), Credits>,
    /// What this batch added, per counter.
    added: BTreeMap<(i64, Counter), i64>,
}

impl LimitBook {
    /// The limits of `account_ids` and their counters for the periods of `instants`: two
    /// statements, and none for the counters when no account has a limit.
    pub(crate) async fn read<'a>(
        conn: &impl ConnectionTrait,
        account_ids: &[i64],
        instants: impl IntoIterator<Item = &'a DateTime<Utc>>,
    ) -> Result<LimitBook, ServiceError> {
        LimitBook::from_rows(conn, stored::for_accounts(conn, account_ids).await?, instants).await
    }

    /// `read` with the limits already read (`store::spend_reads`): a statement for the counters
    /// only when some account has a limit.
    pub(crate) async fn from_rows<'a>(
        conn: &impl ConnectionTrait,
        limits: Vec<spend_limit::Model>,
        instants: impl IntoIterator<Item = &'a DateTime<Utc>>,
    ) -> Result<LimitBook, ServiceError> {
        let mut rows: BTreeMap<i64, Vec<spend_limit::Model>> = BTreeMap::new();
        for row in limits {
            rows.entry(row.account_id).or_default().push(row);
        }
        let mut book = LimitBook::default();
        for (account_id, rows) in rows {
            book.limits.insert(account_id, rules_of(&rows)?);
        }
        if book.limits.is_empty() {
            return Ok(book);
        }
        let limited: Vec<i64> = book.limits.keys().copied().collect();
        for row in stored::usage(conn, &limited, &period_keys(instants)).await? {
            let counter = Counter { scope: row.scope, period_key: row.period_key };
            book.used.insert((row.account_id, counter), Credits::from_micros(row.used_micros));
        }
        Ok(book)
    }

    /// Whether a charge fits the account's limits as the earlier charges of this book left
    /// them: the counters to `count` if it is made.
    pub(crate) fn check(&self, account_id: i64, feature: &str, amount: Credits, now: DateTime<Utc>) -> Result<Vec<Counter>, Refusal> {
        let Some(limits) = self.limits.get(&account_id) else { return Ok(Vec::new()) };
        limits.check(feature, amount, now, |c| self.used_of(account_id, c)).map_err(refusal)
    }

    /// The counters any charge for `feature` adds to (metered usage: never refused).
    pub(crate) fn counters(&self, account_id: i64, feature: &str, now: DateTime<Utc>) -> Vec<Counter> {
        self.limits.get(&account_id).map(|l| l.counters(feature, now)).unwrap_or_default()
    }

    fn used_of(&self, account_id: i64, counter: &Counter) -> Credits {
        self.used.get(&(account_id, counter.clone())).copied().unwrap_or(Credits::ZERO)
    }

    /// Counts a charge that was made.
    pub(crate) fn count(&mut self, account_id: i64, counters: &[Counter], amount: Credits) {
        for counter in counters {
            let used = self.used.entry((account_id, counter.clone())).or_insert(Credits::ZERO);
            // Counters are bounded by what an account can be charged; saturate rather than fail.
            *used = used.checked_add(amount).unwrap_or(*used);
            *self.added.entry((account_id, counter.clone())).or_default() += amount.micros();
        }
    }

    /// Moves the stored counters by what was counted: one statement.
    pub(crate) async fn write(&self, conn: &impl ConnectionTrait) -> Result<(), ServiceError> {
        let deltas: Vec<(i64, &str, &str, i64)> =
            self.added.iter().map(|((account_id, c), delta)| (*account_id, c.scope.as_str(), c.period_key.as_str(), *delta)).collect();
        Ok(stored::add_usage(conn, &deltas).await?)
    }
}

/// Checks a hold of `amount` for `feature` against a locked account's limits: the counters it
/// adds to, or the refusal.
pub(crate) async fn check_hold(
    txn: &DatabaseTransaction,
    account_id: i64,
    feature: &str,
    amount: Credits,
    now: DateTime<Utc>,
) -> Result<Result<Vec<Counter>, Refusal>, ServiceError> {
    let book = LimitBook::read(txn, &[account_id], [&now]).await?;
    Ok(book.check(account_id, feature, amount, now))
}

/// Counts a hold that was taken, and remembers which counters it added to so that settling it
/// gives the room back there.
pub(crate) async fn count_hold(
    txn: &DatabaseTransaction,
    account_id: i64,
    reservation_id: i64,
    counters: &[Counter],
    amount: Credits,
) -> Result<(), ServiceError> {
    if counters.is_empty() {
        return Ok(());
    }
    let deltas: Vec<(i64, &str, &str, i64)> =
        counters.iter().map(|c| (account_id, c.scope.as_str(), c.period_key.as_str(), amount.micros())).collect();
    stored::add_usage(txn, &deltas).await?;
    let keys: Vec<(&str, &str)> = counters.iter().map(|c| (c.scope.as_str(), c.period_key.as_str())).collect();
    stored::insert_hold(txn, reservation_id, account_id, &keys, amount.micros()).await?;
    Ok(())
}

/// A settled hold gives back what it counted less what was captured, to the counters it was
/// counted in (once: the record is removed).
pub(crate) async fn give_back(txn: &DatabaseTransaction, reservation_id: i64, captured: Credits) -> Result<(), ServiceError> {
    let counted = stored::take_hold(txn, reservation_id).await?;
    let deltas: Vec<(i64, &str, &str, i64)> = counted
        .iter()
        .map(|row| (row.account_id, row.scope.as_str(), row.period_key.as_str(), -(row.amount_micros - captured.micros()).max(0)))
        .filter(|(.., delta)| *delta != 0)
        .collect();
    Ok(stored::add_usage(txn, &deltas).await?)
}

/// Counts metered usage that was charged: never refused, it may pass a cap (the limit's state
/// then says `exceeded`).
pub(crate) async fn count_metered(
    txn: &DatabaseTransaction,
    account_id: i64,
    feature: &str,
    charged: Credits,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    if charged.is_zero() {
        return Ok(());
    }
    let mut book = LimitBook::read(txn, &[account_id], [&now]).await?;
    let counters = book.counters(account_id, feature, now);
    book.count(account_id, &counters, charged);
    book.write(txn).await
}

impl Engine {
    /// Replaces an account's spend limits (the whole set; an empty one clears them).
    pub async fn set_spend_limits(&self, request: SetSpendLimitsRequest, now: DateTime<Utc>) -> Result<SpendLimitsView, ServiceError> {
        let account = ExternalId::parse(&request.account)?;
        let key = request.idempotency_key.as_deref().map(IdempotencyKey::parse).transpose()?;
        let mut limits = Vec::with_capacity(request.limits.len());
        for input in request.limits {
            let feature = input.feature.as_deref().map(|f| label("feature", f)).transpose()?;
            limits.push(Limit { feature, period: input.period, max: input.max });
        }
        let limits = Limits::new(limits, request.max_per_charge).map_err(|e| ServiceError::bad_input(format!("limits: {e}")))?;
        let fields = SetFields {
            limits: limits.limits().iter().map(|l| (l.feature.clone(), l.period.as_str(), l.max)).collect(),
            max_per_charge: limits.max_per_charge(),
        };
        let account_id = match key {
            Some(key) => {
                let command = Command {
                    operation: "set_spend_limits",
                    account,
                    key,
                    request_hash: request_hash(&fields),
                    // A suspended account can only be read.
                    permit: Permit::ReceiveCredits,
                    fields: limits,
                };
                self.execute(command, now, |run| {
                    Box::pin(async move {
                        let Run { txn, account, command, now, .. } = run;
                        replace(txn, account.id, &command.fields, now).await?;
                        Ok(Ok(account.id))
                    })
                })
                .await?
            }
            None => {
                tx::write(&self.writer, |txn| {
                    let (account, limits) = (account.clone(), limits.clone());
                    Box::pin(async move {
                        let locked = crate::service::accounts::lock_by_external_id(txn, account.as_str()).await?;
                        let status = crate::service::accounts::status_of(&locked)?;
                        if !status.may_receive_credits() {
                            return Err(Refusal::AccountNotActive { status }.into());
                        }
                        replace(txn, locked.id, &limits, now).await?;
                        Ok::<_, ServiceError>(locked.id)
                    })
                })
                .await?
            }
        };
        self.spend_limits(account_id, now).await
    }

    /// An account's spend limits, each with its current period at `now`.
    pub async fn spend_limits(&self, account_id: i64, now: DateTime<Utc>) -> Result<SpendLimitsView, ServiceError> {
        let book = LimitBook::read(&self.db, &[account_id], [&now]).await?;
        let Some(limits) = book.limits.get(&account_id) else { return Ok(SpendLimitsView { limits: Vec::new(), max_per_charge: None }) };
        let views = limits
            .limits()
            .iter()
            .map(|limit| {
                let state = limit.state(book.used_of(account_id, &limit.counter(now)), now);
                LimitView {
                    feature: limit.feature.clone(),
                    period: limit.period,
                    max: limit.max,
                    used: state.used,
                    remaining: state.remaining,
                    resets_at: state.resets_at,
                    exceeded: state.exceeded,
                }
            })
            .collect();
        Ok(SpendLimitsView { limits: views, max_per_charge: limits.max_per_charge() })
    }
}

async fn replace(txn: &DatabaseTransaction, account_id: i64, limits: &Limits, now: DateTime<Utc>) -> Result<(), ServiceError> {
    let mut rows: Vec<stored::NewLimit<'_>> = limits
        .limits()
        .iter()
        .map(|l| stored::NewLimit { scope: l.scope(), period: l.period.as_str(), max_micros: l.max.micros() })
        .collect();
    if let Some(max) = limits.max_per_charge() {
        rows.push(stored::NewLimit { scope: EVERY_FEATURE, period: PER_CHARGE, max_micros: max.micros() });
    }
    store::spend_limits::replace(txn, account_id, &rows, now).await?;
    tracing::info!(account.id = account_id, limits = limits.limits().len(), "spend limits set");
    Ok(())
}
