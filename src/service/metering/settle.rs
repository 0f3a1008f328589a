//! The settlement engine: what accrued, what it costs, what the account can pay, and on overuse
//! what stops.

use super::{CODE_SUPPORTER, LineView, SettlementView, metering, quota_gb};
use crate::entity::{account, container, meter};
use crate::ledger::metering::{Collection, Trigger, collect, day_segments, line_day, whole_seconds};
use crate::ledger::pricing::{self, Metering, StorageInterval};
use crate::ledger::time::month_key;
use crate::ledger::{Credits, Lot, Take};
use crate::program::Program;
use crate::service::posting::{self, EntryMeta};
use crate::service::spending::{debits_of, take_in_order};
use crate::service::{Ledger, ServiceError, tx};
use crate::store::{self, journal::EntryKind, metering as meters};
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use sea_orm::DatabaseTransaction;
use std::str::FromStr;

/// A line being priced, before it is stored.
pub(super) struct Draft {
    pub(super) container_id: Option<i64>,
    pub(super) container: Option<String>,
    pub(super) resource: &'static str,
    pub(super) kind: Option<&'static str>,
    pub(super) model: Option<String>,
    pub(super) quantity: Decimal,
    pub(super) unit: &'static str,
    pub(super) started_at: DateTime<Utc>,
    pub(super) ended_at: DateTime<Utc>,
    pub(super) amount: Credits,
}

impl Draft {
    fn view(&self) -> LineView {
        LineView {
            container: self.container.clone(),
            resource: self.resource.to_string(),
            kind: self.kind.map(str::to_string),
            model: self.model.clone(),
            quantity: self.quantity,
            unit: self.unit.to_string(),
            started_at: self.started_at,
            ended_at: self.ended_at,
            amount: self.amount,
        }
    }
}

/// Running time of `container` up to `until`, one line per UTC day (and one per day for its
/// add-on), moving its `billed_until` by whole seconds.
fn time_lines(metering: &Metering, container: &mut container::Model, until: DateTime<Utc>) -> Result<Vec<Draft>, ServiceError> {
    if container.state != "running" {
        return Ok(Vec::new());
    }
    let end = container.billed_until + Duration::seconds(whole_seconds(container.billed_until, until) as i64);
    let mut lines = Vec::new();
    for (from, to) in day_segments(container.billed_until, end) {
        let seconds = whole_seconds(from, to);
        let line = |resource, amount| Draft {
            container_id: Some(container.id),
            container: Some(container.external_id.clone()),
            resource,
            kind: None,
            model: None,
            quantity: Decimal::from(seconds),
            unit: "second",
            started_at: from,
            ended_at: to,
            amount,
        };
        lines.push(line("container", pricing::container_charge(metering, &container.tier, seconds)?));
        if container.code_supporter {
            let amount = pricing::add_on_charge(metering, CODE_SUPPORTER, &container.tier, seconds)?;
            lines.push(line("addon", amount));
        }
    }
    container.billed_until = end;
    Ok(lines)
}

/// Accrues the account's storage over its plan's quota up to `until` at the current level.
pub(super) fn accrue_storage(
    quota_gb: Decimal,
    containers: &[container::Model],
    meter: &mut meter::Model,
    until: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let seconds = whole_seconds(meter.storage_accrued_until, until);
    if seconds == 0 {
        return Ok(());
    }
    let bytes: i64 = containers.iter().map(|c| c.storage_bytes).sum();
    let bytes = u64::try_from(bytes).map_err(|_| anyhow::anyhow!("negative storage on account {}", meter.account_id))?;
    let over = pricing::gb_seconds_over_quota(quota_gb, &[StorageInterval { bytes, seconds }])?;
    let accrued = Decimal::from_str(&meter.storage_excess_gb_seconds).map_err(|e| anyhow::anyhow!("meter {}: {e}", meter.account_id))?;
    meter.storage_excess_gb_seconds = (accrued + over).normalize().to_string();
    meter.storage_accrued_until += Duration::seconds(seconds as i64);
    Ok(())
}

/// The storage accrued so far as one line, and the meter emptied.
fn storage_line(metering: &Metering, meter: &mut meter::Model, until: DateTime<Utc>) -> Result<Option<Draft>, ServiceError> {
    let accrued = Decimal::from_str(&meter.storage_excess_gb_seconds).map_err(|e| anyhow::anyhow!("meter {}: {e}", meter.account_id))?;
    if accrued.is_zero() {
        return Ok(None);
    }
    meter.storage_excess_gb_seconds = "0".into();
    Ok(Some(Draft {
        container_id: None,
        container: None,
        resource: "storage",
        kind: None,
        model: None,
        quantity: accrued,
        unit: "gb_second",
        started_at: until,
        ended_at: until,
        amount: pricing::storage_charge(metering, accrued)?,
    }))
}

/// A container's traffic past the month's free allowance, not yet charged, as one line.
fn traffic_line(metering: &Metering, container: &mut container::Model, until: DateTime<Utc>) -> Result<Option<Draft>, ServiceError> {
    if container.pending_traffic_bytes == 0 {
        return Ok(None);
    }
    let bytes =
        u64::try_from(container.pending_traffic_bytes).map_err(|_| anyhow::anyhow!("negative traffic on container {}", container.id))?;
    container.pending_traffic_bytes = 0;
    // The pending bytes are all past the free allowance: price them as such.
    let amount = pricing::traffic_charge(metering, metering.traffic().free_bytes_per_month, bytes)?;
    Ok(Some(Draft {
        container_id: Some(container.id),
        container: Some(container.external_id.clone()),
        resource: "traffic",
        kind: None,
        model: None,
        quantity: Decimal::from(bytes),
        unit: "byte",
        started_at: until,
        ended_at: until,
        amount,
    }))
}

/// What a settlement covers besides the account's storage.
pub(super) enum Scope<'a> {
    /// Every container: the month's end, a plan change.
    All,
    /// One container's session: a stop.
    Container(&'a str),
    /// Storage only: a start.
    StorageOnly,
    /// Lines priced by the caller (an AI use); storage is not touched.
    Lines(Vec<Draft>),
}

pub(super) struct SettleArgs<'a> {
    pub(super) trigger: Trigger,
    pub(super) scope: Scope<'a>,
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
    let metering = metering(program)?;
    let mut containers = meters::containers(txn, account.id).await?;
    let mut meter = meters::meter(txn, account.id, &month_key(now), now).await?;
    // The container a stop stops anyway: not one that overuse stops.
    let own = if let Scope::Container(id) = &args.scope { Some(id.to_string()) } else { None };
    let (mut lines, mut touched) = match args.scope {
        Scope::Lines(priced) => (priced, Vec::new()),
        scope => accrued_lines(metering, quota_gb(program, account), &scope, &mut containers, &mut meter, args.until)?,
    };
    if lines.is_empty() {
        save(txn, &containers, &touched, meter).await?;
        return Ok(None);
    }
    let (collection, takes) = take_what_is_available(txn, program, account, sum(&lines), now).await?;
    let mut uncollected = collection.uncollected;
    let mut stopped = Vec::new();
    if !uncollected.is_zero() {
        // Overuse: every other running container stops now; its time is usage too, and nothing
        // is left to pay for it.
        let extra = stop_the_others(metering, &mut containers, own.as_deref(), &mut stopped, &mut touched, now)?;
        uncollected = uncollected.checked_add(sum(&extra)).expect("sums fit");
        lines.extend(extra);
    }
    let total = sum(&lines);
    let entry = match takes {
        Some((rules, takes)) => {
            let meta = EntryMeta {
                idempotency_key: args.key,
                feature: Some(args.feature),
                model: args.model,
                reason: Some(&args.why),
                ..EntryMeta::now("settle_usage", now)
            };
            Some(posting::debit(txn, account.id, EntryKind::Spend, &debits_of(&rules, &takes), meta).await?)
        }
        None => None,
    };
    // A monthly settlement belongs to the month it closes.
    let month = if args.trigger == Trigger::Monthly { month_key(args.until - Duration::microseconds(1)) } else { month_key(now) };
    let settlement = meters::insert_settlement(
        txn,
        meters::NewSettlement {
            account_id: account.id,
            trigger: args.trigger.as_str(),
            month: &month,
            total_micros: total.micros(),
            charged_micros: collection.charged.micros(),
            uncollected_micros: uncollected.micros(),
            entry_id: entry.as_ref().map(|e| e.id),
            idempotency_key: args.key,
            now,
        },
    )
    .await?;
    meters::insert_lines(txn, settlement.id, account.id, &new_lines(&lines)).await?;
    save(txn, &containers, &touched, meter).await?;
    if !stopped.is_empty() || !uncollected.is_zero() {
        stop_all_for_overuse(txn, account, settlement.id, uncollected, &stopped, now).await?;
    }
    crate::service::notices::check_low_credits(txn, program, account.id, now).await?;
    tracing::info!(account.id = account.id, trigger = args.trigger.as_str(), total.credits = %total, charged.credits = %collection.charged, "usage settled");
    Ok(Some(SettlementView {
        id: settlement.id,
        trigger: args.trigger,
        total,
        charged: collection.charged,
        uncollected,
        lines: lines.iter().map(Draft::view).collect(),
        stopped_containers: stopped,
    }))
}

fn sum(lines: &[Draft]) -> Credits {
    lines.iter().fold(Credits::ZERO, |s, l| s.checked_add(l.amount).expect("a settlement's lines fit"))
}

async fn save(
    txn: &DatabaseTransaction,
    containers: &[container::Model],
    touched: &[i64],
    meter: meter::Model,
) -> Result<(), ServiceError> {
    for container in containers.iter().filter(|c| touched.contains(&c.id)) {
        meters::save_container(txn, container.clone()).await?;
    }
    meters::save_meter(txn, meter).await?;
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
    let why = format!("{} settlement of metered usage", trigger.as_str().replace('_', " "));
    let args = SettleArgs { trigger, scope: Scope::All, until, key, feature: "metered_usage", model: None, why };
    settle(txn, program, account, args, now).await
}

impl Ledger {
    /// The monthly settlement of one account (the worker's sweep): everything accrued up to the
    /// month's start. Idempotent: what it charged moved the meters past that instant.
    pub(crate) async fn settle_month_by_id(
        &self,
        account_id: i64,
        month_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let program = self.program.clone();
        tx::write(&self.db, |txn| {
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

/// The time lines of every running container but `own` (the one a stop stops anyway), each
/// noted as `stopped` and `touched`.
fn stop_the_others(
    metering: &Metering,
    containers: &mut [container::Model],
    own: Option<&str>,
    stopped: &mut Vec<String>,
    touched: &mut Vec<i64>,
    now: DateTime<Utc>,
) -> Result<Vec<Draft>, ServiceError> {
    let mut lines = Vec::new();
    for container in containers.iter_mut() {
        if container.state == "running" && own != Some(container.external_id.as_str()) {
            lines.extend(time_lines(metering, container, now)?);
            stopped.push(container.external_id.clone());
            touched.push(container.id);
        }
    }
    Ok(lines)
}

/// The lines of the containers in `scope` (their time and traffic, which they are `touched` by)
/// and the account's storage over `quota_gb`, accrued up to `until`.
fn accrued_lines(
    metering: &Metering,
    quota_gb: Decimal,
    scope: &Scope<'_>,
    containers: &mut [container::Model],
    meter: &mut meter::Model,
    until: DateTime<Utc>,
) -> Result<(Vec<Draft>, Vec<i64>), ServiceError> {
    accrue_storage(quota_gb, containers, meter, until)?;
    let (mut lines, mut touched) = (Vec::new(), Vec::new());
    for container in containers.iter_mut() {
        let in_scope = match scope {
            Scope::All => true,
            Scope::Container(id) => container.external_id == *id,
            _ => false,
        };
        if in_scope {
            lines.extend(time_lines(metering, container, until)?);
            lines.extend(traffic_line(metering, container, until)?);
            touched.push(container.id);
        }
    }
    lines.extend(storage_line(metering, meter, until)?);
    Ok((lines, touched))
}

/// What a settlement of `total` collects: all of it, or what the account has (the rest is
/// uncollected), with the takes that pay it; a free total takes nothing.
async fn take_what_is_available(
    txn: &DatabaseTransaction,
    program: &Program,
    account: &account::Model,
    total: Credits,
    now: DateTime<Utc>,
) -> Result<(Collection, Option<(Vec<Lot>, Vec<Take>)>), ServiceError> {
    if total.is_zero() {
        // A free use (a trial) is recorded, and nothing is taken.
        return Ok((Collection { charged: Credits::ZERO, uncollected: Credits::ZERO }, None));
    }
    match take_in_order(txn, program, account, total, now).await? {
        Ok(found) => Ok((Collection { charged: total, uncollected: Credits::ZERO }, Some(found))),
        Err(short) => {
            let collection = collect(total, short.available);
            let takes = if collection.charged.is_zero() {
                None
            } else {
                Some(take_in_order(txn, program, account, collection.charged, now).await?.expect("what is available can be taken"))
            };
            Ok((collection, takes))
        }
    }
}

/// A settlement's lines as the store takes them.
fn new_lines(lines: &[Draft]) -> Vec<meters::NewLine<'_>> {
    lines
        .iter()
        .map(|l| meters::NewLine {
            container_id: l.container_id,
            resource: l.resource,
            kind: l.kind,
            model: l.model.as_deref(),
            quantity: l.quantity,
            unit: l.unit,
            started_at: l.started_at,
            ended_at: l.ended_at,
            day: line_day(l.started_at, l.ended_at),
            amount_micros: l.amount.micros(),
        })
        .collect()
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
