//! The settlement engine: the service loads what a settlement needs, `ledger::metering` decides
//! (what accrued, what it costs, what stops on overuse), and the service takes what the account
//! can pay and writes the plan.

use super::{LineView, SettlementView, metering, quota_gb};
use crate::entity::account;
use crate::ledger::metering::{self as rules, Collection, Meter, Scope, SettlementPlan, Trigger, collect};
use crate::ledger::time::month_key;
use crate::ledger::{Credits, Lot, Purpose, Take};
use crate::program::Program;
use crate::service::posting::{self, EntryMeta};
use crate::service::spending::{debits_of, take_in_order};
use crate::service::{Engine, ServiceError, tx};
use crate::store::{self, journal::EntryKind, metering as meters};
use chrono::{DateTime, Duration, Utc};
use sea_orm::DatabaseTransaction;

pub(super) struct SettleArgs<'a> {
    pub(super) trigger: Trigger,
    pub(super) scope: Scope,
    pub(super) until: DateTime<Utc>,
    pub(super) key: Option<&'a str>,
    pub(super) feature: &'a str,
    pub(super) model: Option<&'a str>,
    pub(super) why: String,
}

/// Settles under the account's lock: prices what the scope accrued up to `until`, takes it, and
/// stores the settlement and its lines; on overuse stops everything. None when nothing accrued.
pub(super) async fn settle(
    txn: &DatabaseTransaction,
    program: &Program,
    account: &account::Model,
    args: SettleArgs<'_>,
    now: DateTime<Utc>,
) -> Result<Option<SettlementView>, ServiceError> {
    let rates = metering(program)?;
    let containers = meters::metered_containers(txn, account.id).await?;
    let mut meter = meters::meter(txn, account.id, &month_key(now), now).await?;
    let SettleArgs { trigger, scope, until, key, feature, model, why } = args;
    let accrual = rules::accrue(rates, quota_gb(program, account), scope, containers, meter.storage, until)?;
    // A free total (nothing accrued, a trial use) takes nothing and reads no lots.
    let (collection, takes) = take_what_is_available(txn, program, account, accrual.total(), feature, now).await?;
    let plan = rules::plan(rates, accrual, collection, now)?;
    meter.storage = plan.storage;
    if plan.lines.is_empty() {
        save(txn, account.id, &plan, &meter).await?;
        return Ok(None);
    }
    let entry = match takes {
        Some((lots, takes)) => {
            let meta = EntryMeta {
                idempotency_key: key,
                feature: Some(feature),
                model,
                reason: Some(&why),
                ..EntryMeta::now("settle_usage", now)
            };
            let entry = posting::debit(txn, account.id, EntryKind::Spend, &debits_of(&lots, &takes), meta).await?;
            // Usage that already happened is charged, never refused by a spend limit; it is
            // counted, and may pass the cap (the limit's state then says `exceeded`).
            crate::service::spend_limits::count_metered(txn, account.id, feature, plan.charged, now).await?;
            Some(entry)
        }
        None => None,
    };
    // A monthly settlement belongs to the month it closes.
    let month = if trigger == Trigger::Monthly { month_key(until - Duration::microseconds(1)) } else { month_key(now) };
    let settlement = meters::insert_settlement(
        txn,
        meters::NewSettlement {
            account_id: account.id,
            trigger: trigger.into(),
            month: &month,
            total_micros: plan.total.micros(),
            charged_micros: plan.charged.micros(),
            uncollected_micros: plan.uncollected.micros(),
            entry_id: entry.as_ref().map(|e| e.id),
            idempotency_key: key,
            now,
        },
    )
    .await?;
    meters::insert_lines(txn, settlement.id, account.id, &plan.lines).await?;
    save(txn, account.id, &plan, &meter).await?;
    if !plan.stopped.is_empty() || !plan.uncollected.is_zero() {
        stop_all_for_overuse(txn, account, settlement.id, plan.uncollected, &plan.stopped, now).await?;
    }
    crate::service::notices::check_low_credits(txn, program, account, now).await?;
    let (total, charged) = (plan.total, plan.charged);
    tracing::info!(account.id = account.id, %trigger, total.credits = %total, charged.credits = %charged, "usage settled");
    Ok(Some(view(settlement.id, trigger, plan)))
}

fn view(id: i64, trigger: Trigger, plan: SettlementPlan) -> SettlementView {
    SettlementView {
        id,
        trigger,
        total: plan.total,
        charged: plan.charged,
        uncollected: plan.uncollected,
        lines: plan.lines.iter().map(LineView::from).collect(),
        stopped_containers: plan.stopped,
    }
}

/// The containers the plan changed, and the account's meter.
async fn save(txn: &DatabaseTransaction, account_id: i64, plan: &SettlementPlan, meter: &Meter) -> Result<(), ServiceError> {
    for container in &plan.containers {
        meters::save_container(txn, container).await?;
    }
    meters::save_meter(txn, account_id, meter).await?;
    Ok(())
}

/// Settles everything the account accrued up to `now`, at its current plan (a plan change calls
/// this before it moves the account, in its own transaction).
pub(crate) async fn settle_all(
    txn: &DatabaseTransaction,
    program: &Program,
    account: &account::Model,
    trigger: Trigger,
    until: DateTime<Utc>,
    key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<SettlementView>, ServiceError> {
    if program.metering.is_none() {
        return Ok(None);
    }
    let why = format!("{} settlement of metered usage", trigger.to_string().replace('_', " "));
    let args = SettleArgs { trigger, scope: Scope::All, until, key, feature: "metered_usage", model: None, why };
    settle(txn, program, account, args, now).await
}

impl Engine {
    /// The monthly settlement of one account (the worker's sweep): everything accrued up to the
    /// month's start. Idempotent: what it charged moved the meters past that instant.
    pub(crate) async fn settle_month_by_id(
        &self,
        account_id: i64,
        month_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let program = self.program.clone();
        tx::write(&self.writer, |txn| {
            let program = program.clone();
            Box::pin(async move {
                let Some(locked) = store::accounts::lock(txn, account_id).await? else { return Ok(()) };
                settle_all(txn, &program, &locked, Trigger::Monthly, month_start, None, now).await?;
                Ok::<_, ServiceError>(())
            })
        })
        .await
    }
}

/// What a settlement of `total` collects: all of it, or what the account has (the rest is
/// uncollected), with the takes that pay it; a free total takes nothing.
async fn take_what_is_available(
    txn: &DatabaseTransaction,
    program: &Program,
    account: &account::Model,
    total: Credits,
    feature: &str,
    now: DateTime<Utc>,
) -> Result<(Collection, Option<(Vec<Lot>, Vec<Take>)>), ServiceError> {
    if total.is_zero() {
        // A free use (a trial) is recorded, and nothing is taken.
        return Ok((Collection { charged: Credits::ZERO, uncollected: Credits::ZERO }, None));
    }
    match take_in_order(txn, program, account, total, now, Purpose::Feature(feature)).await? {
        Ok(found) => Ok((Collection { charged: total, uncollected: Credits::ZERO }, Some(found))),
        Err(short) => {
            let collection = collect(total, short.available);
            let takes = if collection.charged.is_zero() {
                None
            } else {
                Some(
                    take_in_order(txn, program, account, collection.charged, now, Purpose::Feature(feature))
                        .await?
                        .expect("what is available can be taken"),
                )
            };
            Ok((collection, takes))
        }
    }
}

/// Overuse: every running container of the account stops, and the product is told to stop them.
async fn stop_all_for_overuse(
    txn: &DatabaseTransaction,
    account: &account::Model,
    settlement_id: i64,
    uncollected: Credits,
    stopped: &[String],
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    meters::stop_all(txn, account.id, now).await?;
    let command = serde_json::json!({
        "command": "stop_all_containers",
        "account": account.external_id,
        "settlement": settlement_id,
        "uncollected": uncollected.to_string(),
        "containers": stopped,
    });
    store::outbox::publish(txn, "containers.stop_all", Some(account.id), &command, now).await?;
    tracing::warn!(account.id = account.id, uncollected.credits = %uncollected, "overuse: containers stopped");
    Ok(())
}
