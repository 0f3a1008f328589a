//! Every job's service side, one declaration each: a continuous job is a `Drain` (one batch,
//! repeated until a batch comes back short), a periodic one a `Sweep` over accounts (see
//! `sweep.rs`), and the two that fit neither implement `JobHandler` themselves. `handler` is the
//! one registration: its `match` is exhaustive, so a job added to the workers' table does not
//! compile until it has a handler here.

use super::{JobHandler, JobReport, PURGE_BATCH};
use crate::ledger::plans::PlanPeriod;
use crate::ledger::schedule::{Cadence, Slot};
use crate::service::notices::MAX_NOTICE_BATCH;
use crate::service::purchase_end::MAX_PURCHASE_EXPIRY_BATCH;
use crate::service::retention::PURGE_ROWS;
use crate::service::webhooks::{self, MAX_WEBHOOK_BATCH};
use crate::service::{Engine, ServiceError, expiry::MAX_EXPIRY_BATCH, referrals::MAX_RELEASE_BATCH, reservations::MAX_RESERVATION_BATCH};
use crate::store;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use std::future::Future;
use workers::Job;

/// The handler of `job`: the one place the service side of a job is registered.
pub(crate) fn handler(job: Job) -> &'static dyn JobHandler {
    match job {
        Job::ExpireLots => &Draining(ExpireLots),
        Job::ExpireReservations => &Draining(ExpireReservations),
        Job::ResetDailyCredits => &Sweeping(ResetDailyCredits),
        Job::SettleMonthlyUsage => &Sweeping(SettleMonthlyUsage),
        Job::GrantMonthlyPlanCredits => &Sweeping(GrantPlanCredits::<true>),
        Job::RenewDueSubscriptions => &Draining(RenewDueSubscriptions),
        Job::RenewSubscriptions => &Sweeping(GrantPlanCredits::<false>),
        Job::ReleaseReferralBonuses => &Draining(ReleaseReferralBonuses),
        Job::PurgeIdempotencyKeys => &Draining(PurgeIdempotencyKeys),
        Job::PurgeOperationalRows => &Draining(PurgeOperationalRows),
        Job::NotifyExpiringCredits => &Draining(NotifyExpiringCredits),
        Job::SnapshotMarketRates => &SnapshotMarketRates,
        Job::DeliverWebhooks => &DeliverWebhooks,
        Job::ExpirePendingPurchases => &Draining(ExpirePendingPurchases),
        Job::AuditLedger => &Draining(AuditLedger),
        Job::ChargeAutoTopUps => &Draining(ChargeAutoTopUps),
        Job::PrepareJournalMonths => &Draining(PrepareJournalMonths),
    }
}

/// A continuous job: naturally idempotent and keyed by nothing, it repeats `batch` until one
/// comes back shorter than `BATCH` (the queue is empty) or the budget is spent.
pub(crate) trait Drain: Sync {
    /// Items one batch takes at most.
    const BATCH: u64;
    /// One batch at `now`: how many items it handled.
    fn batch(&self, ledger: &Engine, now: DateTime<Utc>) -> impl Future<Output = Result<u64, ServiceError>> + Send;
}

/// A `Drain` as a job.
pub(crate) struct Draining<D>(pub D);

impl<D: Drain> JobHandler for Draining<D> {
    fn run<'a>(
        &'a self,
        _job: Job,
        ledger: &'a Engine,
        now: DateTime<Utc>,
        budget: &'a mut u32,
    ) -> BoxFuture<'a, Result<JobReport, ServiceError>> {
        Box::pin(ledger.drain(budget, move || self.0.batch(ledger, now), D::BATCH))
    }
}

/// A periodic job: for each due period of its cadence, a sweep over accounts in batches behind
/// a cursor kept in `job_runs` (`Engine::run_periodic`).
pub(crate) trait Sweep: Sync {
    const CADENCE: Cadence;
    /// Accounts per step of the cursor unless `sweep_batch` is configured.
    const STEP: u64 = super::ACCOUNT_BATCH;

    /// Work that must come before the due periods; false when the budget ran out first.
    fn before_periods(
        &self,
        _ledger: &Engine,
        _budget: &mut u32,
        _now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, ServiceError>> + Send {
        async { Ok(true) }
    }

    /// The next accounts of the sweep of `slot` after `cursor` (an account id), at most `limit`.
    fn accounts_after(
        &self,
        ledger: &Engine,
        slot: &Slot,
        now: DateTime<Utc>,
        cursor: i64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<i64>, ServiceError>> + Send;

    /// The batch's accounts at once; false when this sweep has no batched form (each account
    /// then runs alone). An error also falls back to `run_one`, which names the failing account.
    fn run_batch(&self, _ledger: &Engine, _ids: &[i64], _now: DateTime<Utc>) -> impl Future<Output = Result<bool, ServiceError>> + Send {
        async { Ok(false) }
    }

    /// One account's share of the period, idempotent (a once-per-period claim).
    fn run_one(&self, ledger: &Engine, id: i64, slot: &Slot, now: DateTime<Utc>) -> impl Future<Output = Result<(), ServiceError>> + Send;
}

/// A `Sweep` as a job.
pub(crate) struct Sweeping<S>(pub S);

impl<S: Sweep> JobHandler for Sweeping<S> {
    fn cadence(&self) -> Option<Cadence> {
        Some(S::CADENCE)
    }

    fn run<'a>(
        &'a self,
        job: Job,
        ledger: &'a Engine,
        now: DateTime<Utc>,
        budget: &'a mut u32,
    ) -> BoxFuture<'a, Result<JobReport, ServiceError>> {
        Box::pin(ledger.run_periodic(job, &self.0, now, budget))
    }
}

pub(crate) struct ExpireLots;

impl Drain for ExpireLots {
    const BATCH: u64 = MAX_EXPIRY_BATCH;
    async fn batch(&self, ledger: &Engine, now: DateTime<Utc>) -> Result<u64, ServiceError> {
        Ok(ledger.expire_due(now, MAX_EXPIRY_BATCH).await?.lots)
    }
}

pub(crate) struct ExpireReservations;

impl Drain for ExpireReservations {
    const BATCH: u64 = MAX_RESERVATION_BATCH;
    async fn batch(&self, ledger: &Engine, now: DateTime<Utc>) -> Result<u64, ServiceError> {
        ledger.expire_reservations(now, MAX_RESERVATION_BATCH).await
    }
}

pub(crate) struct RenewDueSubscriptions;

impl Drain for RenewDueSubscriptions {
    const BATCH: u64 = super::ITEMS_PER_TRANSACTION as u64;
    async fn batch(&self, ledger: &Engine, now: DateTime<Utc>) -> Result<u64, ServiceError> {
        ledger.renew_due_subscriptions(now, Self::BATCH).await
    }
}

pub(crate) struct ReleaseReferralBonuses;

impl Drain for ReleaseReferralBonuses {
    const BATCH: u64 = MAX_RELEASE_BATCH;
    async fn batch(&self, ledger: &Engine, now: DateTime<Utc>) -> Result<u64, ServiceError> {
        ledger.release_referral_bonuses(now, MAX_RELEASE_BATCH).await
    }
}

pub(crate) struct PurgeIdempotencyKeys;

impl Drain for PurgeIdempotencyKeys {
    const BATCH: u64 = PURGE_BATCH;
    async fn batch(&self, ledger: &Engine, now: DateTime<Utc>) -> Result<u64, ServiceError> {
        Ok(store::idempotency::purge_expired(&ledger.db, now, PURGE_BATCH).await?)
    }
}

pub(crate) struct PurgeOperationalRows;

impl Drain for PurgeOperationalRows {
    const BATCH: u64 = PURGE_ROWS;
    /// A round deletes up to `BATCH` rows of each kind: while any kind is not drained, the
    /// total is at least `BATCH` and the drain goes on; once all are, one more round at most.
    async fn batch(&self, ledger: &Engine, now: DateTime<Utc>) -> Result<u64, ServiceError> {
        Ok(ledger.purge_operational_rows(now, PURGE_ROWS).await?.total())
    }
}

/// Pending purchases past their lifetime: one conditional update each (`WHERE status =
/// 'pending'`), so several workers, a caller's cancellation and a confirmation can race on one.
pub(crate) struct ExpirePendingPurchases;

impl Drain for ExpirePendingPurchases {
    const BATCH: u64 = MAX_PURCHASE_EXPIRY_BATCH;
    async fn batch(&self, ledger: &Engine, now: DateTime<Utc>) -> Result<u64, ServiceError> {
        ledger.expire_pending_purchases(now, MAX_PURCHASE_EXPIRY_BATCH).await
    }
}

/// The journal's partitions for this month and the next ones (`service::journal_months`): one
/// batch creates every missing month (a handful at most), so it never comes back full.
pub(crate) struct PrepareJournalMonths;

impl Drain for PrepareJournalMonths {
    const BATCH: u64 = u64::MAX;
    async fn batch(&self, ledger: &Engine, now: DateTime<Utc>) -> Result<u64, ServiceError> {
        Ok(ledger.prepare_journal_months(now).await?)
    }
}

/// Pending auto top-ups charged through Stripe (`service::stripe_topups`).
pub(crate) struct ChargeAutoTopUps;

impl Drain for ChargeAutoTopUps {
    const BATCH: u64 = crate::service::stripe_topups::MAX_TOPUP_CHARGE_BATCH;
    async fn batch(&self, ledger: &Engine, now: DateTime<Utc>) -> Result<u64, ServiceError> {
        ledger.charge_auto_topups(now, Self::BATCH).await
    }
}

pub(crate) struct AuditLedger;

impl Drain for AuditLedger {
    /// One requested audit per batch: a batch that ran one asks for another, an idle one ends.
    const BATCH: u64 = 1;
    async fn batch(&self, ledger: &Engine, now: DateTime<Utc>) -> Result<u64, ServiceError> {
        ledger.run_requested_audit(now).await
    }
}

pub(crate) struct NotifyExpiringCredits;

impl Drain for NotifyExpiringCredits {
    const BATCH: u64 = MAX_NOTICE_BATCH;
    async fn batch(&self, ledger: &Engine, now: DateTime<Utc>) -> Result<u64, ServiceError> {
        ledger.notify_expiring(now, MAX_NOTICE_BATCH).await
    }
}

/// Keyed by workload and 5-minute mark in its own table: nothing to key by period here.
pub(crate) struct SnapshotMarketRates;

impl JobHandler for SnapshotMarketRates {
    fn run<'a>(
        &'a self,
        _job: Job,
        ledger: &'a Engine,
        now: DateTime<Utc>,
        _budget: &'a mut u32,
    ) -> BoxFuture<'a, Result<JobReport, ServiceError>> {
        Box::pin(async move {
            let written = ledger.snapshot_market_rates(now).await?;
            Ok(JobReport { items: written, complete: true, ..JobReport::default() })
        })
    }
}

/// Webhook batches until the queue is drained. Without a configured receiver, nothing: events
/// wait in the outbox. Each batch starts at `now` advanced by the real time spent, since HTTP
/// round trips take real time and the leases must not start out stale.
pub(crate) struct DeliverWebhooks;

impl JobHandler for DeliverWebhooks {
    fn run<'a>(
        &'a self,
        _job: Job,
        ledger: &'a Engine,
        now: DateTime<Utc>,
        budget: &'a mut u32,
    ) -> BoxFuture<'a, Result<JobReport, ServiceError>> {
        Box::pin(async move {
            let Some(sender) = ledger.webhooks.clone() else {
                return Ok(JobReport { complete: true, ..JobReport::default() });
            };
            let started = std::time::Instant::now();
            let batch = || {
                let sender = sender.clone();
                async move {
                    let at = webhooks::run_instant(now, started);
                    Ok(ledger.deliver_webhooks(&sender, at, MAX_WEBHOOK_BATCH).await?.examined())
                }
            };
            ledger.drain(budget, batch, MAX_WEBHOOK_BATCH).await
        })
    }
}

/// The plans with plan credits of `wanted`'s kind of period, if the program grants those.
fn plans_granting(ledger: &Engine, wanted: PlanPeriod) -> Vec<String> {
    match ledger.program.plan_credits {
        Some(rule) if rule.period == wanted => {
            ledger.program.plans.iter().filter(|p| p.monthly_credits.is_some()).map(|p| p.code.clone()).collect()
        }
        _ => Vec::new(),
    }
}

/// The plan-credit sweeps: calendar-month plans on the 1st (`GrantMonthlyPlanCredits`, `MONTHLY`)
/// and subscriptions whose month from the plan's start came round, daily (`RenewSubscriptions`).
pub(crate) struct GrantPlanCredits<const MONTHLY: bool>;

impl<const MONTHLY: bool> Sweep for GrantPlanCredits<MONTHLY> {
    const CADENCE: Cadence = if MONTHLY { Cadence::Monthly } else { Cadence::Daily };
    const STEP: u64 = super::GRANT_BATCH;

    async fn accounts_after(
        &self,
        ledger: &Engine,
        _slot: &Slot,
        _now: DateTime<Utc>,
        cursor: i64,
        limit: u64,
    ) -> Result<Vec<i64>, ServiceError> {
        let period = if MONTHLY { PlanPeriod::CalendarMonth } else { PlanPeriod::FromRecharge };
        let plans = plans_granting(ledger, period);
        Ok(store::accounts::ids_on_plans_after(&ledger.db, &plans, cursor, limit).await?)
    }

    async fn run_batch(&self, ledger: &Engine, ids: &[i64], now: DateTime<Utc>) -> Result<bool, ServiceError> {
        ledger.grant_in_parallel(ids, now).await.map(|_| true)
    }

    async fn run_one(&self, ledger: &Engine, id: i64, _slot: &Slot, now: DateTime<Utc>) -> Result<(), ServiceError> {
        ledger.grant_plan_credits_by_id(id, now).await.map(drop)
    }
}

pub(crate) struct ResetDailyCredits;

impl Sweep for ResetDailyCredits {
    const CADENCE: Cadence = Cadence::Daily;

    /// Yesterday's daily free and lucky lots ended at today's start: write them off (dated at
    /// their expiry) before the day's drop, as the continuous job would. Once covers every
    /// caught-up day.
    async fn before_periods(&self, ledger: &Engine, budget: &mut u32, now: DateTime<Utc>) -> Result<bool, ServiceError> {
        Ok(ledger.drain(budget, || ExpireLots.batch(ledger, now), ExpireLots::BATCH).await?.complete)
    }

    /// The subscribers with a lucky drop that day. A day caught up late draws no drop: it could
    /// no longer be claimed.
    async fn accounts_after(
        &self,
        ledger: &Engine,
        slot: &Slot,
        now: DateTime<Utc>,
        cursor: i64,
        limit: u64,
    ) -> Result<Vec<i64>, ServiceError> {
        let plans = if slot.starts_at.date_naive() == now.date_naive() { ledger.lucky_plans(now.date_naive()) } else { Vec::new() };
        Ok(store::accounts::ids_on_plans_after(&ledger.db, &plans, cursor, limit).await?)
    }

    async fn run_one(&self, ledger: &Engine, id: i64, slot: &Slot, now: DateTime<Utc>) -> Result<(), ServiceError> {
        ledger.drop_lucky_by_id(id, slot.starts_at.date_naive(), now).await.map(drop)
    }
}

pub(crate) struct SettleMonthlyUsage;

impl Sweep for SettleMonthlyUsage {
    const CADENCE: Cadence = Cadence::Monthly;

    async fn accounts_after(
        &self,
        ledger: &Engine,
        _slot: &Slot,
        _now: DateTime<Utc>,
        cursor: i64,
        limit: u64,
    ) -> Result<Vec<i64>, ServiceError> {
        Ok(store::metering::metered_accounts_after(&ledger.db, cursor, limit).await?)
    }

    async fn run_one(&self, ledger: &Engine, id: i64, slot: &Slot, now: DateTime<Utc>) -> Result<(), ServiceError> {
        ledger.settle_month_by_id(id, slot.starts_at, now).await
    }
}
