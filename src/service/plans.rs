//! Plans: changing an account's plan, and granting a plan's credits once per period (monthly
//! plan credits on arkain, subscription renewals on carat). The workers call
//! `grant_plan_credits` on schedule; here it is a service function with an injected clock.

use crate::entity::account;
use crate::ledger::Credits;
use crate::ledger::metering::Trigger;
use crate::ledger::plans::{Period, PlanPeriod};
use crate::program::{Plan, Program};
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey};
use crate::service::posting::{self, EntryMeta};
use crate::service::{Engine, ServiceError, tx};
use crate::store::{self, idempotency::request_hash, lots};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use serde::{Deserialize, Serialize};

/// A plan grant's journal entry's `operation` (its kind is `grant`). Before migration 000034 it
/// was also the kind of the grant's claim; the plan lot is its own claim now
/// (`lots::PLAN_ORIGIN`).
const KIND: &str = "plan_credits";
pub(crate) use crate::store::lots::PLAN_ORIGIN;

/// A plan's credits granted for one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanGrant {
    pub lot_id: i64,
    pub amount: Credits,
    pub period_key: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChange {
    pub plan: String,
    pub granted: Option<PlanGrant>,
}

impl Engine {
    /// Grants the account's current plan credits for the period containing `now`, once: a second
    /// call in the same period, from any process, grants nothing.
    pub async fn grant_plan_credits(&self, account: &str, now: DateTime<Utc>) -> Result<Option<PlanGrant>, ServiceError> {
        let account = self.account(account).await?;
        self.grant_plan_credits_by_id(account.id, now).await
    }

    /// `grant_plan_credits` for an account by its id: what the workers' sweeps call.
    pub async fn grant_plan_credits_by_id(&self, account_id: i64, now: DateTime<Utc>) -> Result<Option<PlanGrant>, ServiceError> {
        let program = self.program.clone();
        tx::write(&self.writer, |txn| {
            let program = program.clone();
            Box::pin(async move {
                let Some(locked) = store::accounts::lock(txn, account_id).await? else { return Ok(None) };
                if !crate::service::accounts::status_of(&locked)?.may_receive_credits() {
                    return Ok(None);
                }
                grant_period_credits(txn, &program, &locked, now).await
            })
        })
        .await
    }

    /// `grant_plan_credits_by_id` for a sweep's batch of accounts, in one transaction; how many
    /// were granted.
    pub async fn grant_plan_credits_many(&self, account_ids: &[i64], now: DateTime<Utc>) -> Result<u64, ServiceError> {
        let program = self.program.clone();
        let ids = std::sync::Arc::new(account_ids.to_vec());
        tx::write(&self.writer, |txn| {
            let (program, ids) = (program.clone(), ids.clone());
            Box::pin(async move { grant_period_credits_many(txn, &program, &ids, now).await })
        })
        .await
    }

    /// Renews the subscriptions whose next month has started by `now` (`renews_at`), at most
    /// `batch` accounts in one transaction, so a renewal comes at its own instant rather than at
    /// the next daily sweep; how many accounts it took. Accounts passed over (no longer on a
    /// plan with credits, not receiving credits) stop waiting; the daily sweep picks them up
    /// again when they are due credits. A batch the database refuses (an account at its balance
    /// limit) goes account by account, and an account refused alone is left to the daily sweep,
    /// which names it in its run.
    pub async fn renew_due_subscriptions(&self, now: DateTime<Utc>, batch: u64) -> Result<u64, ServiceError> {
        let ids = store::accounts::due_renewals(&self.db, now, batch).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.renew_accounts(&ids, now).await {
            tracing::warn!(accounts = ids.len(), error = %e, "a batch of renewals failed; renewing one by one");
            for id in &ids {
                if let Err(e) = self.renew_accounts(&[*id], now).await {
                    tracing::warn!(account.id = id, error = %e, "renewal refused; the daily sweep retries it");
                    store::accounts::clear_due_renewals(&self.db, &[*id], now).await?;
                }
            }
        }
        Ok(ids.len() as u64)
    }

    async fn renew_accounts(&self, ids: &[i64], now: DateTime<Utc>) -> Result<u64, ServiceError> {
        let (program, ids) = (self.program.clone(), std::sync::Arc::new(ids.to_vec()));
        tx::write(&self.writer, |txn| {
            let (program, ids) = (program.clone(), ids.clone());
            Box::pin(async move {
                let granted = grant_period_credits_many(txn, &program, &ids, now).await?;
                store::accounts::clear_due_renewals(txn, &ids, now).await?;
                Ok(granted)
            })
        })
        .await
    }

    /// Moves an account to another plan (service, after payment). What the account has accrued
    /// so far is settled first, in the same transaction; then the new plan's credits for the
    /// current period are granted, unless this account already had that plan's credits for it.
    pub async fn change_plan(
        &self,
        account: &str,
        plan: &str,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<PlanChange, ServiceError> {
        let account = ExternalId::parse(account)?;
        let key = IdempotencyKey::parse(idempotency_key)?;
        if self.program.plan(plan).is_none() {
            return Err(ServiceError::bad_input(format!("unknown plan {plan:?}")));
        }
        let command = Command {
            operation: "change_plan",
            account,
            key,
            request_hash: request_hash(&plan),
            permit: Permit::ReceiveCredits,
            fields: plan.to_string(),
        };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, ledger, account, command, now } = run;
                let plan = &command.fields;
                if account.plan == *plan {
                    return Ok(Ok(PlanChange { plan: plan.clone(), granted: None }));
                }
                // Everything accrued so far is charged at the old plan's quota, first.
                let key = Some(command.key.as_str());
                crate::service::metering::settle_all(txn, &ledger.program, account, Trigger::PlanChange, now, key, now).await?;
                let moved = store::accounts::set_plan(txn, account.clone(), plan, now).await?;
                tracing::info!(account.id = moved.id, account.plan = %plan, "plan changed");
                Ok(Ok(PlanChange { granted: grant_period_credits(txn, &ledger.program, &moved, now).await?, plan: plan.clone() }))
            })
        })
        .await
    }
}

/// The plan credits `account` is due for the period containing `now`, if its plan has any: what
/// a grant would write, before the once-per-period claim is checked. No database.
struct DueGrant<'p> {
    period_key: String,
    amount: Credits,
    ends_at: DateTime<Utc>,
    plan_name: &'p str,
    /// When the grant is dated: `now`, or the instant a renewal fell due when that is the one
    /// this account was waiting for (`renews_at`), however late the job that grants it runs.
    granted_at: DateTime<Utc>,
    /// A subscription month (`from_recharge`): the account then waits for `ends_at` to renew.
    renews: bool,
}

/// The plan credits of the period containing `now` for `account`, if its plan grants credits:
/// the plan, its amount per period and the period. What a grant is due for, and what the
/// account's benefits show (`service::benefits`). No database.
pub(crate) fn current_period<'p>(
    program: &'p Program,
    account: &account::Model,
    now: DateTime<Utc>,
) -> Option<(&'p Plan, Credits, Period)> {
    let rule = program.plan_credits?;
    let Some(plan) = program.plan(&account.plan) else {
        tracing::warn!(account.id = account.id, account.plan = %account.plan, "account on a plan the program no longer has");
        return None;
    };
    let amount = plan.monthly_credits?;
    Some((plan, amount, rule.period.period_at(anchor_of(account), now)))
}

/// The instant an account's plan periods count from: when it moved to its plan, or was created.
pub(crate) fn anchor_of(account: &account::Model) -> DateTime<Utc> {
    account.plan_since.unwrap_or(account.created_at)
}

fn due_grant<'p>(program: &'p Program, account: &account::Model, now: DateTime<Utc>) -> Option<DueGrant<'p>> {
    let rule = program.plan_credits?;
    let (plan, amount, Period { key, starts_at, ends_at }) = current_period(program, account, now)?;
    let granted_at = match account.renews_at {
        Some(due) if due == starts_at && due <= now => due,
        _ => now,
    };
    let renews = rule.period == PlanPeriod::FromRecharge;
    Some(DueGrant {
        period_key: crate::ledger::plans::grant_key(&plan.code, &key),
        amount,
        ends_at,
        plan_name: &plan.name,
        granted_at,
        renews,
    })
}

impl DueGrant<'_> {
    fn lot(&self, program: &Program, account_id: i64) -> lots::NewLot<'static> {
        let rule = program.plan_credits.expect("a due grant has a rule");
        lots::NewLot {
            account_id,
            class: rule.class,
            source: rule.source,
            amount: self.amount,
            granted_at: self.granted_at,
            expires_at: Some(self.ends_at),
            origin_kind: Some(PLAN_ORIGIN),
            origin_id: Some(self.period_key.clone()),
            priority: crate::ledger::Priority::DEFAULT,
            effective_at: None,
            features: None,
        }
    }

    fn meta(&self, now: DateTime<Utc>) -> EntryMeta<'_> {
        EntryMeta { reason: Some(self.plan_name), effective_at: self.granted_at, ..EntryMeta::now(KIND, now) }
    }

    /// The account's next renewal, where it is a subscription and not pointed at it yet.
    fn next_renewal(&self, account: &account::Model) -> Option<DateTime<Utc>> {
        (self.renews && account.renews_at != Some(self.ends_at)).then_some(self.ends_at)
    }

    /// Points the account at its next renewal (`next_renewal`).
    async fn wait_for_renewal(&self, txn: &DatabaseTransaction, account: &account::Model) -> Result<(), ServiceError> {
        if let Some(at) = self.next_renewal(account) {
            store::accounts::set_renews_at(txn, account.id, Some(at)).await?;
        }
        Ok(())
    }
}

/// Grants `account`'s plan credits for the period containing `now` unless already claimed.
/// Runs under the caller's account lock.
pub(crate) async fn grant_period_credits(
    txn: &DatabaseTransaction,
    program: &Program,
    account: &account::Model,
    now: DateTime<Utc>,
) -> Result<Option<PlanGrant>, ServiceError> {
    let Some(due) = due_grant(program, account, now) else { return Ok(None) };
    due.wait_for_renewal(txn, account).await?;
    if !lots::plan_grants_held(txn, &[(account.id, &due.period_key)]).await?.is_empty() {
        return Ok(None);
    }
    let (lot, _) = posting::credit(txn, due.lot(program, account.id), due.meta(now)).await?;
    Ok(Some(PlanGrant { lot_id: lot.id, amount: due.amount, period_key: due.period_key, expires_at: due.ends_at }))
}

/// `grant_period_credits` for many accounts in one transaction (a sweep's batch at the start of
/// a month): the accounts locked in one statement in id order, the plan lots they already have
/// for the period read in one, and the lots, journal entries and balances written in one
/// statement per table. Accounts that may not receive credits, or already have this period's,
/// are passed over. How many were granted.
pub(crate) async fn grant_period_credits_many(
    txn: &DatabaseTransaction,
    program: &Program,
    account_ids: &[i64],
    now: DateTime<Utc>,
) -> Result<u64, ServiceError> {
    let (mut due, mut renewals) = (Vec::new(), Vec::new());
    for account in store::accounts::lock_many(txn, account_ids).await? {
        if !crate::service::accounts::status_of(&account)?.may_receive_credits() {
            continue;
        }
        if let Some(grant) = due_grant(program, &account, now) {
            renewals.extend(grant.next_renewal(&account).map(|at| (account.id, at)));
            due.push((account.id, grant));
        }
    }
    // One statement for the part, where each subscription was a round trip of its own.
    store::accounts::set_renews_at_many(txn, &renewals).await?;
    let pairs: Vec<(i64, &str)> = due.iter().map(|(id, grant)| (*id, grant.period_key.as_str())).collect();
    let held: std::collections::HashSet<(i64, String)> = lots::plan_grants_held(txn, &pairs).await?.into_iter().collect();
    due.retain(|(id, grant)| !held.contains(&(*id, grant.period_key.clone())));
    let grants = due.iter().map(|(id, grant)| (grant.lot(program, *id), grant.meta(now))).collect();
    // An account at its limit fails the part, which then runs account by account: that one is
    // refused and named in the job's run, the others are granted.
    posting::credit_many(txn, grants).await?;
    Ok(due.len() as u64)
}
