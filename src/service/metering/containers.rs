//! Container lifecycle: starting (which settles the storage used while stopped), stopping (which
//! settles the session), and the list of an account's containers.

use super::settle::{SettleArgs, settle};
use super::{ContainerReceipt, ContainerView, metering};
use crate::ledger::metering::{ContainerState, Scope, Trigger};
use crate::ledger::time::month_key;
use crate::service::Refusal;
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey, label};
use crate::service::{Engine, ServiceError};
use crate::store::{idempotency::request_hash, metering as meters};
use chrono::{DateTime, Utc};

impl Engine {
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
                if existing.as_ref().is_some_and(|c| c.state == ContainerState::Running) {
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
                        found.state = ContainerState::Running;
                        found.billed_until = now;
                        found.updated_at = now;
                        meters::save_container(txn, &found).await?;
                        found
                    }
                    None => {
                        meters::meter(txn, locked.id, &month_key(now), now).await?;
                        let new = meters::NewContainer { account_id: locked.id, external_id: id, tier, code_supporter, now };
                        meters::insert_container(txn, new).await?
                    }
                };
                // A running container raises the usage rate: an hour of it may be more than is left.
                crate::service::notices::check_low_credits(txn, program, locked, now).await?;
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
                if found.state != ContainerState::Running {
                    return Ok(Err(Refusal::InvalidState { what: format!("container {id} is not running") }));
                }
                let why = format!("stop of container {id}");
                let args = SettleArgs {
                    trigger: Trigger::Stop,
                    scope: Scope::Container(id.clone()),
                    until: now,
                    key: Some(key.as_str()),
                    feature: "container",
                    model: None,
                    why,
                };
                let settlement = settle(txn, program, locked, args, now).await?;
                let mut stopped = meters::container(txn, locked.id, id).await?.expect("settled above");
                if stopped.state == ContainerState::Running {
                    stopped.state = ContainerState::Stopped;
                    stopped.updated_at = now;
                    meters::save_container(txn, &stopped).await?;
                }
                tracing::info!(account.id = locked.id, container = %id, "container stopped");
                Ok(Ok(ContainerReceipt { container: ContainerView::from(&stopped), settlement }))
            })
        })
        .await
    }

    pub async fn containers(&self, account_id: i64) -> Result<Vec<ContainerView>, ServiceError> {
        Ok(meters::metered_containers(&self.db, account_id).await?.iter().map(ContainerView::from).collect())
    }
}
