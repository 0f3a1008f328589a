//! Metered usage (domain.md §4 "When metered usage is charged", arkain): containers run at a
//! tier with add-ons, the account stores data and moves traffic, and AI is used; each is priced
//! by `ledger::pricing` and settled by one deduction at the moments the spec names: a stop (the
//! session's time, add-on, storage and traffic), a start (the storage used while stopped), the
//! 1st of the month (everything, through the worker), a plan change (everything, at the old
//! plan's quota), and each AI use. Every settlement runs under the account's lock and moves the
//! meters it charged forward, so a stop racing the monthly settlement charges each second once.
//!
//! Overuse: a settlement that exceeds what the account can spend takes what there is, records
//! the rest as uncollected usage, stops every running container (charging their time too) and
//! writes a stop-all-containers command to the outbox in the same transaction; containers that
//! hold storage become inactive.

use crate::entity::{account, container, meter, usage_line};
use crate::ledger::metering::{Collection, Trigger, collect, day_segments, line_day, whole_seconds};
use crate::ledger::pricing::{self, Metering, StorageInterval, TokenUsage};
use crate::ledger::time::month_key;
use crate::ledger::{Credits, Lot, Take};
use crate::program::Program;
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey, label};
use crate::service::keyed::Refusal;
use crate::service::posting::{self, EntryMeta};
use crate::service::spending::{debits_of, take_in_order};
use crate::service::{Ledger, ServiceError, tx};
use crate::store::{self, idempotency::request_hash, journal::EntryKind, metering as meters};
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use sea_orm::{DatabaseTransaction, Set};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The add-on the API calls `codeSupporter`.
pub const CODE_SUPPORTER: &str = "code_supporter";
/// The most storage one container reports: 1 PB, far above any plan, far below overflow.
pub const MAX_STORAGE_GB: u64 = 1_000_000;
/// The most traffic one sample reports: 1 PB.
pub const MAX_TRAFFIC_BYTES: u64 = 1_000_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AiKind {
    AiSupporter,
    Chat,
    Snap,
}

impl AiKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AiKind::AiSupporter => "ai_supporter",
            AiKind::Chat => "chat",
            AiKind::Snap => "snap",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Sample {
    /// The container's storage now, in GB (decimal, 1 GB = 10^9 bytes).
    Storage { container: String, gb: Decimal },
    /// Bytes the container moved since the last sample.
    Traffic { container: String, bytes: u64 },
    /// One AI use: tokens for AI Supporter and Chat, none for Snap (priced per use).
    Ai {
        kind: AiKind,
        container: Option<String>,
        model: Option<String>,
        #[serde(skip)]
        tokens: Option<TokenUsage>,
        tokens_key: Option<[u64; 4]>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineView {
    pub container: Option<String>,
    pub resource: String,
    pub kind: Option<String>,
    pub model: Option<String>,
    pub quantity: Decimal,
    pub unit: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub amount: Credits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementView {
    pub id: i64,
    pub trigger: Trigger,
    pub total: Credits,
    pub charged: Credits,
    pub uncollected: Credits,
    pub lines: Vec<LineView>,
    /// Running containers this settlement stopped for overuse.
    pub stopped_containers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerView {
    pub id: String,
    pub tier: String,
    pub code_supporter: bool,
    pub state: String,
    pub storage_gb: Decimal,
    pub updated_at: DateTime<Utc>,
}

impl From<&container::Model> for ContainerView {
    fn from(c: &container::Model) -> Self {
        ContainerView {
            id: c.external_id.clone(),
            tier: c.tier.clone(),
            code_supporter: c.code_supporter,
            state: c.state.clone(),
            storage_gb: Decimal::new(c.storage_bytes, 9).normalize(),
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerReceipt {
    pub container: ContainerView,
    pub settlement: Option<SettlementView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReceipt {
    pub settlement: Option<SettlementView>,
}

/// A line being priced, before it is stored.
struct Draft {
    container_id: Option<i64>,
    container: Option<String>,
    resource: &'static str,
    kind: Option<&'static str>,
    model: Option<String>,
    quantity: Decimal,
    unit: &'static str,
    started_at: DateTime<Utc>,
    ended_at: DateTime<Utc>,
    amount: Credits,
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

fn metering(program: &Program) -> Result<&Metering, ServiceError> {
    program.metering.as_ref().ok_or_else(|| ServiceError::FeatureDisabled("this program meters no containers".into()))
}

fn quota_gb(program: &Program, account: &account::Model) -> Decimal {
    program.plan(&account.plan).and_then(|p| p.storage_quota_gb).unwrap_or(Decimal::ZERO)
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
fn accrue_storage(
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
enum Scope<'a> {
    /// Every container: the month's end, a plan change.
    All,
    /// One container's session: a stop.
    Container(&'a str),
    /// Storage only: a start.
    StorageOnly,
    /// Lines priced by the caller (an AI use); storage is not touched.
    Lines(Vec<Draft>),
}

struct SettleArgs<'a> {
    trigger: Trigger,
    scope: Scope<'a>,
    until: DateTime<Utc>,
    key: Option<&'a str>,
    feature: &'a str,
    model: Option<&'a str>,
    why: String,
}

/// Settles under the account's lock: prices what the scope accrued up to `until`, takes it, and
/// stores the settlement and its lines; on overuse stops everything. None when nothing accrued.
async fn settle(
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
    meters::insert_lines(txn, usage_rows(settlement.id, account.id, &lines)).await?;
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
    /// Starts (or restarts) a container at a tier; a restart first charges the storage used
    /// while it was stopped.
    pub async fn start_container(
        &self,
        account: &str,
        container: &str,
        tier: &str,
        code_supporter: bool,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<ContainerReceipt, ServiceError> {
        let metering = metering(&self.program)?;
        let account = ExternalId::parse(account)?;
        self.require_identity_to_spend(&account, false).await?;
        let id = label("containerId", container)?;
        let key = IdempotencyKey::parse(idempotency_key)?;
        metering.tier(tier)?;
        let command = Command {
            operation: "start_container",
            account,
            key,
            request_hash: request_hash(&(&id, tier, code_supporter)),
            permit: Permit::Active,
            fields: (id, tier.to_string(), code_supporter),
        };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, ledger, account: locked, command, now } = run;
                let (id, tier, code_supporter) = &command.fields;
                let (program, key, code_supporter) = (&ledger.program, &command.key, *code_supporter);
                let metering = program.metering.as_ref().expect("checked above");
                if let Err(e) = metering.tier_for_plan(tier, &locked.plan) {
                    return Ok(Err(Refusal::NotEligible { why: e.to_string() }));
                }
                let existing = meters::container(txn, locked.id, id).await?;
                if existing.as_ref().is_some_and(|c| c.state == "running") {
                    return Ok(Err(Refusal::InvalidState { what: format!("container {id} is already running") }));
                }
                let why = format!("storage while container {id} was stopped");
                let args = SettleArgs {
                    trigger: Trigger::Start,
                    scope: Scope::StorageOnly,
                    until: now,
                    key: Some(key.as_str()),
                    feature: "storage",
                    model: None,
                    why,
                };
                let settlement = settle(txn, program, locked, args, now).await?;
                let started = match meters::container(txn, locked.id, id).await? {
                    Some(mut found) => {
                        found.tier = tier.clone();
                        found.code_supporter = code_supporter;
                        found.state = "running".into();
                        found.billed_until = now;
                        found.updated_at = now;
                        meters::save_container(txn, found).await?
                    }
                    None => {
                        meters::meter(txn, locked.id, &month_key(now), now).await?;
                        let new = meters::NewContainer { account_id: locked.id, external_id: id, tier, code_supporter, now };
                        meters::insert_container(txn, new).await?
                    }
                };
                // A running container raises the usage rate: an hour of it may be more than is left.
                crate::service::notices::check_low_credits(txn, program, locked.id, now).await?;
                tracing::info!(account.id = locked.id, container = %id, tier = %tier, "container started");
                Ok(Ok(ContainerReceipt { container: ContainerView::from(&started), settlement }))
            })
        })
        .await
    }

    /// Stops a running container and charges its session in one deduction: its time at its tier,
    /// its add-on hours, its traffic, and the account's storage so far.
    pub async fn stop_container(
        &self,
        account: &str,
        container: &str,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<ContainerReceipt, ServiceError> {
        metering(&self.program)?;
        let account = ExternalId::parse(account)?;
        self.require_identity_to_spend(&account, false).await?;
        let id = label("containerId", container)?;
        let key = IdempotencyKey::parse(idempotency_key)?;
        let command = Command {
            operation: "stop_container",
            account,
            key,
            request_hash: request_hash(&id),
            // Usage that happened is charged whatever the account's status.
            permit: Permit::Any,
            fields: id,
        };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, ledger, account: locked, command, now } = run;
                let (program, key, id) = (&ledger.program, &command.key, &command.fields);
                let Some(found) = meters::container(txn, locked.id, id).await? else {
                    return Err(ServiceError::NotFound(format!("no container {id} on this account")));
                };
                if found.state != "running" {
                    return Ok(Err(Refusal::InvalidState { what: format!("container {id} is not running") }));
                }
                let why = format!("stop of container {id}");
                let args = SettleArgs {
                    trigger: Trigger::Stop,
                    scope: Scope::Container(id),
                    until: now,
                    key: Some(key.as_str()),
                    feature: "container",
                    model: None,
                    why,
                };
                let settlement = settle(txn, program, locked, args, now).await?;
                let mut stopped = meters::container(txn, locked.id, id).await?.expect("settled above");
                if stopped.state == "running" {
                    stopped.state = "stopped".into();
                    stopped.updated_at = now;
                    stopped = meters::save_container(txn, stopped).await?;
                }
                tracing::info!(account.id = locked.id, container = %id, "container stopped");
                Ok(Ok(ContainerReceipt { container: ContainerView::from(&stopped), settlement }))
            })
        })
        .await
    }

    /// Records a usage sample: storage and traffic accrue until the next settlement; an AI use
    /// is priced and charged at once (free while the program's trial uses last).
    pub async fn record_usage(
        &self,
        account: &str,
        sample: Sample,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<UsageReceipt, ServiceError> {
        let account = ExternalId::parse(account)?;
        self.require_identity_to_spend(&account, false).await?;
        let key = IdempotencyKey::parse(idempotency_key)?;
        let sample = self.check_sample(sample)?;
        let command = Command {
            operation: "record_usage",
            account,
            key,
            request_hash: request_hash(&sample),
            // Storage and traffic that happened are recorded whatever the account's status.
            permit: if matches!(sample, Sample::Ai { .. }) { Permit::Active } else { Permit::Any },
            fields: sample,
        };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, ledger, account, command, now } = run;
                let settlement = match command.fields.clone() {
                    Sample::Storage { container, gb } => {
                        record_storage(txn, &ledger.program, account, &container, gb, now).await?;
                        None
                    }
                    Sample::Traffic { container, bytes } => {
                        record_traffic(txn, metering(&ledger.program)?, account, &container, bytes, now).await?;
                        None
                    }
                    Sample::Ai { kind, container, model, tokens, .. } => {
                        let ai = AiUse { kind, container, model, tokens };
                        charge_ai(txn, ledger, account, ai, &command.key, now).await?
                    }
                };
                Ok(Ok(UsageReceipt { settlement }))
            })
        })
        .await
    }

    /// Validates a sample before anything is opened: input errors are never stored.
    fn check_sample(&self, sample: Sample) -> Result<Sample, ServiceError> {
        metering(&self.program)?;
        match sample {
            Sample::Storage { container, gb } => {
                let bytes =
                    pricing::gb_to_bytes(gb).ok_or_else(|| ServiceError::bad_input("gb must be >= 0 with at most 9 decimal places"))?;
                if bytes > MAX_STORAGE_GB * pricing::BYTES_PER_GB {
                    return Err(ServiceError::bad_input(format!("gb must be at most {MAX_STORAGE_GB}")));
                }
                Ok(Sample::Storage { container: label("containerId", &container)?, gb: gb.normalize() })
            }
            Sample::Traffic { container, bytes } => {
                if bytes == 0 || bytes > MAX_TRAFFIC_BYTES {
                    return Err(ServiceError::bad_input(format!("bytes must be 1 to {MAX_TRAFFIC_BYTES}")));
                }
                Ok(Sample::Traffic { container: label("containerId", &container)?, bytes })
            }
            Sample::Ai { kind, container, model, tokens, .. } => {
                let container = container.as_deref().map(|c| label("containerId", c)).transpose()?;
                let model = model.as_deref().map(|m| label("model", m)).transpose()?;
                self.price_ai(kind, model.as_deref(), tokens)?;
                let tokens_key = tokens.map(|t| [t.input, t.output, t.cache_write, t.cache_read]);
                Ok(Sample::Ai { kind, container, model, tokens, tokens_key })
            }
        }
    }

    /// An AI use's feature, model and price: Snap per use from the catalog, Chat and AI
    /// Supporter by model and tokens.
    fn price_ai(
        &self,
        kind: AiKind,
        model: Option<&str>,
        tokens: Option<TokenUsage>,
    ) -> Result<(String, Option<String>, Credits), ServiceError> {
        match kind {
            AiKind::Snap => {
                if tokens.is_some() || model.is_some() {
                    return Err(ServiceError::bad_input("snap is priced per use: give neither model nor tokens"));
                }
                let quote = pricing::quote(&self.program.catalog, "snap", None, &Default::default())?;
                Ok(("snap".into(), None, quote.total))
            }
            AiKind::Chat | AiKind::AiSupporter => {
                let pricing_rules = self
                    .program
                    .token_pricing
                    .as_ref()
                    .ok_or_else(|| ServiceError::FeatureDisabled("this program prices no AI tokens".into()))?;
                let tokens = tokens.ok_or_else(|| ServiceError::bad_input("give the tokens the use took"))?;
                if tokens == TokenUsage::default() {
                    return Err(ServiceError::bad_input("a use takes at least one token"));
                }
                let charge = pricing::price_question(pricing_rules, model, &tokens)?;
                let feature = if kind == AiKind::Chat { pricing_rules.feature().to_string() } else { kind.as_str().to_string() };
                Ok((feature, Some(charge.model), charge.total))
            }
        }
    }

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

    pub async fn containers(&self, account_id: i64) -> Result<Vec<ContainerView>, ServiceError> {
        Ok(meters::containers(&self.db, account_id).await?.iter().map(ContainerView::from).collect())
    }
}

/// A month's usage page (domain.md §7): what was used, what was deducted, and the difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    pub month: String,
    /// What the month's usage came to.
    pub total: Credits,
    /// What was actually taken from the account.
    pub deducted: Credits,
    /// Usage that could not be charged (overuse).
    pub uncollected: Credits,
    /// Usage per resource: container, addon, storage, traffic, ai.
    pub by_resource: Vec<(String, Credits)>,
}

/// "2026-11", checked.
pub fn parse_month(month: &str) -> Result<String, ServiceError> {
    chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| month.len() == 7)
        .map(|_| month.to_string())
        .ok_or_else(|| ServiceError::bad_input(format!("month {month:?} is not YYYY-MM")))
}

fn line_view(line: &usage_line::Model, containers: &[container::Model]) -> Result<LineView, ServiceError> {
    Ok(LineView {
        container: line.container_id.and_then(|id| containers.iter().find(|c| c.id == id)).map(|c| c.external_id.clone()),
        resource: line.resource.clone(),
        kind: line.kind.clone(),
        model: line.model.clone(),
        quantity: Decimal::from_str(&line.quantity).map_err(|e| anyhow::anyhow!("usage line {}: {e}", line.id))?,
        unit: line.unit.clone(),
        started_at: line.started_at,
        ended_at: line.ended_at,
        amount: Credits::from_micros(line.amount_micros),
    })
}

impl Ledger {
    pub async fn usage_report(&self, account_id: i64, month: &str) -> Result<UsageReport, ServiceError> {
        let month = parse_month(month)?;
        let settlements = meters::settlements_in(&self.db, account_id, &month).await?;
        let micros = |f: fn(&crate::entity::settlement::Model) -> i64| Credits::from_micros(settlements.iter().map(f).sum());
        let ids: Vec<i64> = settlements.iter().map(|s| s.id).collect();
        let mut by_resource: Vec<(String, Credits)> =
            ["container", "addon", "storage", "traffic", "ai"].iter().map(|r| (r.to_string(), Credits::ZERO)).collect();
        for line in meters::lines_of(&self.db, &ids).await? {
            if let Some((_, sum)) = by_resource.iter_mut().find(|(r, _)| *r == line.resource) {
                *sum = sum.checked_add(Credits::from_micros(line.amount_micros)).expect("a month's usage fits");
            }
        }
        Ok(UsageReport {
            month,
            total: micros(|s| s.total_micros),
            deducted: micros(|s| s.charged_micros),
            uncollected: micros(|s| s.uncollected_micros),
            by_resource,
        })
    }

    /// Every container line of one UTC day: the per-container logs of the usage page.
    pub async fn container_day(&self, account_id: i64, day: chrono::NaiveDate) -> Result<Vec<LineView>, ServiceError> {
        let containers = meters::containers(&self.db, account_id).await?;
        meters::lines_on_day(&self.db, account_id, &day.to_string()).await?.iter().map(|l| line_view(l, &containers)).collect()
    }

    /// AI uses of a month, newest first, with their line ids for paging.
    pub async fn ai_logs(
        &self,
        account_id: i64,
        month: &str,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<(i64, LineView)>, ServiceError> {
        let month = parse_month(month)?;
        let containers = meters::containers(&self.db, account_id).await?;
        meters::ai_lines(&self.db, account_id, &month, before, limit)
            .await?
            .iter()
            .map(|l| Ok((l.id, line_view(l, &containers)?)))
            .collect()
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

/// A settlement's lines as rows.
fn usage_rows(settlement_id: i64, account_id: i64, lines: &[Draft]) -> Vec<usage_line::ActiveModel> {
    lines
        .iter()
        .map(|l| usage_line::ActiveModel {
            settlement_id: Set(settlement_id),
            account_id: Set(account_id),
            container_id: Set(l.container_id),
            resource: Set(l.resource.to_string()),
            kind: Set(l.kind.map(str::to_string)),
            model: Set(l.model.clone()),
            quantity: Set(l.quantity.to_string()),
            unit: Set(l.unit.to_string()),
            started_at: Set(l.started_at),
            ended_at: Set(l.ended_at),
            day: Set(line_day(l.started_at, l.ended_at).to_string()),
            amount_micros: Set(l.amount.micros()),
            ..Default::default()
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

/// A storage sample: the old level counts up to now, the new one from now.
async fn record_storage(
    txn: &DatabaseTransaction,
    program: &Program,
    locked: &account::Model,
    container: &str,
    gb: Decimal,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let month = month_key(now);
    let Some(mut found) = meters::container(txn, locked.id, container).await? else {
        return Err(ServiceError::NotFound(format!("no container {container} on this account")));
    };
    let containers = meters::containers(txn, locked.id).await?;
    let mut meter = meters::meter(txn, locked.id, &month, now).await?;
    accrue_storage(quota_gb(program, locked), &containers, &mut meter, now)?;
    meters::save_meter(txn, meter).await?;
    found.storage_bytes = i64::try_from(pricing::gb_to_bytes(gb).expect("checked")).expect("bounded");
    found.updated_at = now;
    meters::save_container(txn, found).await?;
    Ok(())
}

/// A traffic sample: what passes the month's free bytes waits for the container's next settlement.
async fn record_traffic(
    txn: &DatabaseTransaction,
    metering: &Metering,
    locked: &account::Model,
    container: &str,
    bytes: u64,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let month = month_key(now);
    let Some(mut found) = meters::container(txn, locked.id, container).await? else {
        return Err(ServiceError::NotFound(format!("no container {container} on this account")));
    };
    let mut meter = meters::meter(txn, locked.id, &month, now).await?;
    if meter.traffic_month != month {
        meter.traffic_month = month.clone();
        meter.traffic_month_bytes = 0;
    }
    let free = metering.traffic().free_bytes_per_month;
    let before = u64::try_from(meter.traffic_month_bytes).unwrap_or(0);
    let after = before.saturating_add(bytes);
    let billable = after.saturating_sub(free) - before.saturating_sub(free);
    meter.traffic_month_bytes = i64::try_from(after).map_err(|_| ServiceError::bad_input("traffic this month is out of range"))?;
    meters::save_meter(txn, meter).await?;
    found.pending_traffic_bytes += i64::try_from(billable).expect("bounded by the sample");
    found.updated_at = now;
    meters::save_container(txn, found).await?;
    Ok(())
}

/// One AI use, as `Sample::Ai` carries it.
struct AiUse {
    kind: AiKind,
    container: Option<String>,
    model: Option<String>,
    tokens: Option<TokenUsage>,
}

/// An AI use is priced and charged at once, free while the program's trial uses last.
async fn charge_ai(
    txn: &DatabaseTransaction,
    ledger: &Ledger,
    locked: &account::Model,
    ai: AiUse,
    key: &IdempotencyKey,
    now: DateTime<Utc>,
) -> Result<Option<SettlementView>, ServiceError> {
    let AiUse { kind, container, model, tokens } = ai;
    let program = &ledger.program;
    let month = month_key(now);
    let container_id = match &container {
        Some(id) => Some(
            meters::container(txn, locked.id, id)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no container {id} on this account")))?
                .id,
        ),
        None => None,
    };
    let (feature, priced_model, amount) = ledger.price_ai(kind, model.as_deref(), tokens)?;
    let mut meter = meters::meter(txn, locked.id, &month, now).await?;
    let free = program.free_trial.as_ref().is_some_and(|t| t.is_free(&feature, u32::try_from(meter.ai_trial_uses).unwrap_or(u32::MAX)));
    let amount = if free {
        meter.ai_trial_uses += 1;
        meters::save_meter(txn, meter.clone()).await?;
        Credits::ZERO
    } else {
        amount
    };
    let quantity = tokens.map_or(Decimal::ONE, |t| Decimal::from(t.input + t.output + t.cache_write + t.cache_read));
    let line = Draft {
        container_id,
        container: container.clone(),
        resource: "ai",
        kind: Some(kind.as_str()),
        model: priced_model.clone(),
        quantity,
        unit: if tokens.is_some() { "token" } else { "use" },
        started_at: now,
        ended_at: now,
        amount,
    };
    let why = if free {
        format!("{} (free trial use {} of {})", kind.as_str(), meter.ai_trial_uses, program.free_trial.as_ref().map_or(0, |t| t.uses))
    } else {
        kind.as_str().to_string()
    };
    let args = SettleArgs {
        trigger: Trigger::Ai,
        scope: Scope::Lines(vec![line]),
        until: now,
        key: Some(key.as_str()),
        feature: &feature,
        model: priced_model.as_deref(),
        why,
    };
    settle(txn, program, locked, args, now).await
}
