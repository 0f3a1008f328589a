//! Plans: changing an account's plan, and granting a plan's credits once per period (monthly
//! plan credits on arkain, subscription renewals on carat). The workers call
//! `grant_plan_credits` on schedule; here it is a service function with an injected clock.

use crate::entity::account;
use crate::ledger::metering::Trigger;
use crate::ledger::plans::Period;
use crate::ledger::{AccountStatus, Credits};
use crate::program::Program;
use crate::service::input::{ExternalId, IdempotencyKey};
use crate::service::keyed::{self, KeyedRequest, Opened, Stored};
use crate::service::posting::{self, EntryMeta};
use crate::service::{Ledger, ServiceError, tx};
use crate::store::{self, idempotency::request_hash, lots};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use serde::{Deserialize, Serialize};

const KIND: &str = "plan_credits";

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

impl Ledger {
    /// Grants the account's current plan credits for the period containing `now`, once: a second
    /// call in the same period, from any process, grants nothing.
    pub async fn grant_plan_credits(&self, account: &str, now: DateTime<Utc>) -> Result<Option<PlanGrant>, ServiceError> {
        let account = self.account(account).await?;
        self.grant_plan_credits_by_id(account.id, now).await
    }

    /// `grant_plan_credits` for an account by its id: what the workers' sweeps call.
    pub async fn grant_plan_credits_by_id(&self, account_id: i64, now: DateTime<Utc>) -> Result<Option<PlanGrant>, ServiceError> {
        let program = self.program.clone();
        tx::write(&self.db, |txn| {
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
        let hash = request_hash(&plan);
        let (program, ttl, plan) = (self.program.clone(), self.idempotency_ttl, plan.to_string());
        let stored = tx::write(&self.db, |txn| {
            let (account, key, hash, program, plan) = (account.clone(), key.clone(), hash.clone(), program.clone(), plan.clone());
            Box::pin(async move {
                let request = KeyedRequest { operation: "change_plan", key: key.as_str(), request_hash: hash };
                let (locked, keyed) =
                    match keyed::open(txn, account.as_str(), request, AccountStatus::may_receive_credits, now, ttl).await? {
                        Opened::Done(stored) => return Ok(stored),
                        Opened::Fresh(locked, keyed) => (locked, keyed),
                    };
                let change = if locked.plan == plan {
                    PlanChange { plan, granted: None }
                } else {
                    // Everything accrued so far is charged at the old plan's quota, first.
                    let key = Some(key.as_str());
                    crate::service::metering::settle_all(txn, &program, &locked, Trigger::PlanChange, now, key, now).await?;
                    let moved = store::accounts::set_plan(txn, locked, &plan, now).await?;
                    tracing::info!(account.id = moved.id, account.plan = %plan, "plan changed");
                    PlanChange { granted: grant_period_credits(txn, &program, &moved, now).await?, plan }
                };
                let done = Stored::Done(change);
                keyed.remember(txn, &done, now, ttl).await?;
                Ok(done)
            })
        })
        .await?;
        stored.into_result()
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
    let Some(rule) = program.plan_credits else { return Ok(None) };
    let Some(plan) = program.plan(&account.plan) else {
        tracing::warn!(account.id = account.id, account.plan = %account.plan, "account on a plan the program no longer has");
        return Ok(None);
    };
    let Some(amount) = plan.monthly_credits else { return Ok(None) };
    let anchor = account.plan_since.unwrap_or(account.created_at);
    let Period { key, ends_at, .. } = rule.period.period_at(anchor, now);
    let period_key = format!("{}:{key}", plan.code);
    if store::claims::find(txn, account.id, KIND, &period_key).await?.is_some() {
        return Ok(None);
    }
    let lot = lots::NewLot {
        account_id: account.id,
        class: rule.class,
        source: rule.source,
        amount,
        granted_at: now,
        expires_at: Some(ends_at),
        origin_kind: Some("plan"),
        origin_id: Some(period_key.clone()),
    };
    let (lot, _) = posting::credit(txn, lot, EntryMeta { reason: Some(&plan.name), ..EntryMeta::now(KIND, now) }).await?;
    store::claims::insert(txn, account.id, KIND, &period_key, Some(lot.id), amount.micros(), now).await?;
    Ok(Some(PlanGrant { lot_id: lot.id, amount, period_key, expires_at: ends_at }))
}
