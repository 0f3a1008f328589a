//! Usage intake: storage and traffic samples accrue until the next settlement; an AI use is priced
//! and charged at once.

use super::settle::{SettleArgs, settle};
use super::{AiKind, MAX_STORAGE_GB, MAX_TRAFFIC_BYTES, Sample, SettlementView, UsageReceipt, metering, quota_gb};
use crate::entity::account;
use crate::ledger::Credits;
use crate::ledger::metering::{self as rules, Resource, Scope, Trigger, Unit, UsageLine};
use crate::ledger::pricing::{self, Metering, TokenUsage};
use crate::ledger::time::month_key;
use crate::program::Program;
use crate::service::batch::MAX_BATCH;
use crate::service::executor::{Command, Dated, Decisions, Permit, Run, RunMany};
use crate::service::input::{ExternalId, IdempotencyKey, label};
use crate::service::{Engine, ServiceError};
use crate::store::{self, idempotency::request_hash, metering as meters};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use sea_orm::DatabaseTransaction;
use std::collections::HashSet;

impl Engine {
    /// Records a usage sample: storage and traffic accrue until the next settlement; an AI use
    /// is priced and charged at once (free while the program's trial uses last).
    pub async fn record_usage(
        &self,
        account: &str,
        sample: Sample,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<UsageReceipt, ServiceError> {
        let request = UsageRequest { account: account.to_string(), sample, idempotency_key: idempotency_key.to_string() };
        let command = self.usage_command(request).await?;
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, ledger, account, command, now } = run;
                Ok(Ok(record_one(txn, ledger, account, command, now).await?))
            })
        })
        .await
    }

    /// Records several samples, in this order, in one transaction per `MAX_BATCH` (a backend
    /// flushing many containers' samples at once). Each is still keyed and all or nothing, and
    /// gets the outcome it would have had alone, one after the other: an input error refuses
    /// that sample only. A batch that fails as a whole (a sample whose container is unknown, an
    /// AI use the account cannot pay, a database error) is rolled back and its samples recorded
    /// one by one, so one bad sample cannot fail its neighbours.
    pub async fn record_usage_many(&self, requests: Vec<UsageRequest>, now: DateTime<Utc>) -> Vec<Result<UsageReceipt, ServiceError>> {
        let mut outcomes: Vec<Option<Result<UsageReceipt, ServiceError>>> = Vec::with_capacity(requests.len());
        let mut parsed = Vec::new();
        for request in requests {
            match self.usage_command(request).await {
                Ok(command) => {
                    parsed.push((outcomes.len(), (command, now)));
                    outcomes.push(None);
                }
                Err(err) => outcomes.push(Some(Err(err))),
            }
        }
        let mut parsed = parsed.into_iter().peekable();
        while parsed.peek().is_some() {
            let (indexes, commands): (Vec<usize>, Vec<Dated<Sample>>) = parsed.by_ref().take(MAX_BATCH).unzip();
            for (index, outcome) in indexes.into_iter().zip(self.record_batch(&commands).await) {
                outcomes[index] = Some(outcome);
            }
        }
        outcomes.into_iter().map(|o| o.expect("every sample has an outcome")).collect()
    }

    /// A sample request past every input rule, as a command.
    async fn usage_command(&self, request: UsageRequest) -> Result<Command<Sample>, ServiceError> {
        let account = ExternalId::parse(&request.account)?;
        self.require_identity_to_spend(&account, false).await?;
        let key = IdempotencyKey::parse(&request.idempotency_key)?;
        let sample = self.check_sample(request.sample)?;
        Ok(Command {
            operation: "record_usage",
            account,
            key,
            request_hash: request_hash(&sample),
            // Storage and traffic that happened are recorded whatever the account's status.
            permit: if matches!(sample, Sample::Ai { .. }) { Permit::Active } else { Permit::Any },
            fields: sample,
        })
    }

    async fn record_batch(&self, commands: &[Dated<Sample>]) -> Vec<Result<UsageReceipt, ServiceError>> {
        match self.execute_many(commands, usage_body).await {
            Ok(outcomes) => outcomes,
            Err(err) if commands.len() == 1 => vec![Err(err)],
            Err(ServiceError::DatabaseUnavailable { why, cause }) => {
                commands.iter().map(|_| Err(ServiceError::DatabaseUnavailable { why, cause: cause.clone() })).collect()
            }
            Err(_) => {
                let mut outcomes = Vec::with_capacity(commands.len());
                for command in commands {
                    // A batch of one: the outcome the sample would have had alone.
                    let alone = self.execute_many(std::slice::from_ref(command), usage_body).await;
                    outcomes.push(alone.and_then(|mut outcome| outcome.pop().expect("one outcome per sample")));
                }
                outcomes
            }
        }
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
                let feature = if kind == AiKind::Chat { pricing_rules.feature().to_string() } else { kind.to_string() };
                Ok((feature, Some(charge.model), charge.total))
            }
        }
    }
}

/// One sample of `record_usage_many`.
#[derive(Debug, Clone)]
pub struct UsageRequest {
    pub account: String,
    pub sample: Sample,
    pub idempotency_key: String,
}

fn usage_body(run: RunMany<'_, Sample>) -> BoxFuture<'_, Decisions<UsageReceipt>> {
    Box::pin(async move {
        let RunMany { txn, ledger, fresh, .. } = run;
        let mut seen = HashSet::new();
        let mut decided = Vec::with_capacity(fresh.len());
        for item in &fresh {
            // A later sample of an account must see what the earlier ones wrote to its row (a
            // settlement moves the cached balance): it is read again, under the lock it holds.
            let account = if seen.insert(item.account.id) {
                item.account.clone()
            } else {
                store::accounts::lock_many(txn, &[item.account.id]).await?.pop().expect("the account is locked by this batch")
            };
            decided.push(Ok(record_one(txn, ledger, &account, item.command, item.now).await?));
        }
        Ok(decided)
    })
}

/// One sample recorded against its locked account: the body of `record_usage` and of each
/// sample of a batch.
async fn record_one(
    txn: &DatabaseTransaction,
    ledger: &Engine,
    account: &account::Model,
    command: &Command<Sample>,
    now: DateTime<Utc>,
) -> Result<UsageReceipt, ServiceError> {
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
    Ok(UsageReceipt { settlement })
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
    let containers = meters::metered_containers(txn, locked.id).await?;
    let mut meter = meters::meter(txn, locked.id, &month, now).await?;
    meter.storage = rules::accrue_storage(quota_gb(program, locked), &containers, meter.storage, now)?;
    meters::save_meter(txn, locked.id, &meter).await?;
    found.storage_bytes = pricing::gb_to_bytes(gb).expect("checked");
    found.updated_at = now;
    meters::save_container(txn, &found).await?;
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
    let billable = meter.add_traffic(&month, bytes, metering.traffic().free_bytes_per_month);
    // The month's bytes are stored as a signed 64-bit count.
    if i64::try_from(meter.traffic_month_bytes).is_err() {
        return Err(ServiceError::bad_input("traffic this month is out of range"));
    }
    meters::save_meter(txn, locked.id, &meter).await?;
    found.pending_traffic_bytes += billable;
    found.updated_at = now;
    meters::save_container(txn, &found).await?;
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
    ledger: &Engine,
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
    let free = program.free_trial.as_ref().is_some_and(|t| t.is_free(&feature, meter.ai_trial_uses));
    let amount = if free {
        meter.ai_trial_uses += 1;
        meters::save_meter(txn, locked.id, &meter).await?;
        Credits::ZERO
    } else {
        amount
    };
    let quantity = tokens.map_or(Decimal::ONE, |t| Decimal::from(t.input + t.output + t.cache_write + t.cache_read));
    let line = UsageLine {
        container_id,
        container: container.clone(),
        resource: Resource::Ai,
        kind: Some(kind),
        model: priced_model.clone(),
        quantity,
        unit: if tokens.is_some() { Unit::Token } else { Unit::Use },
        started_at: now,
        ended_at: now,
        amount,
    };
    let why = if free {
        format!("{kind} (free trial use {} of {})", meter.ai_trial_uses, program.free_trial.as_ref().map_or(0, |t| t.uses))
    } else {
        kind.to_string()
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
