//! Notices that reach people (domain.md §6): the low-credit warning and the expiring-credits
//! notice, written to the outbox in the transaction of the change that caused them (the
//! webhook worker delivers them). The warning goes once per purchase cycle on arkain's
//! hours-of-usage rule (only a purchase re-arms it) and once per crossing on a threshold rule; an
//! account that turned credit mail off gets none, while `lowCredits` still says whether it applies.

use crate::entity::{account, container, lot};
use crate::ledger::notices::{self, LowCreditRule};
use crate::ledger::pricing;
use crate::ledger::{Credits, LotSource};
use crate::program::Program;
use crate::service::accounts::AccountView;
use crate::service::{Engine, ServiceError, tx};
use crate::store;
use crate::store::accounts::Flag;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use std::collections::BTreeMap;

/// Lots looked at per expiry-notice batch.
pub const MAX_NOTICE_BATCH: u64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowCredits {
    /// Whether the program warns of low credits at all.
    pub enabled: bool,
    pub applies: bool,
    pub reason: Option<String>,
    pub balance: Credits,
    /// What the account's running usage costs an hour now (metered programs).
    pub rate_per_hour: Option<Decimal>,
    pub threshold: Option<Credits>,
    /// When the current cycle's warning went out.
    pub notified_at: Option<DateTime<Utc>>,
    pub credit_mail: bool,
}

/// What the account's running usage costs an hour: its running containers' tiers and add-ons,
/// and its storage over its plan's quota.
pub(crate) async fn usage_rate(
    conn: &impl ConnectionTrait,
    program: &Program,
    account_id: i64,
    plan: &str,
) -> Result<Decimal, ServiceError> {
    if program.metering.is_none() {
        return Ok(Decimal::ZERO);
    }
    let containers = store::metering::containers(conn, account_id).await?;
    usage_rate_of(program, plan, &containers)
}

/// `usage_rate` over the account's containers, already read.
fn usage_rate_of(program: &Program, plan: &str, containers: &[container::Model]) -> Result<Decimal, ServiceError> {
    let Some(metering) = program.metering.as_ref() else { return Ok(Decimal::ZERO) };
    // An hour of each, priced by the same rules a settlement uses (the add-on free on GPU, the
    // quota over all containers), so the warning and the charge never disagree.
    let hour = pricing::SECONDS_PER_HOUR;
    let mut rate = Credits::ZERO;
    let running: &str = crate::ledger::metering::ContainerState::Running.into();
    for container in containers.iter().filter(|c| c.state == running) {
        rate = rate.checked_add(pricing::container_charge(metering, &container.tier, hour)?).expect("rates fit");
        if container.code_supporter {
            let add_on = pricing::add_on_charge(metering, crate::service::metering::CODE_SUPPORTER, &container.tier, hour)?;
            rate = rate.checked_add(add_on).expect("rates fit");
        }
    }
    let stored = u64::try_from(containers.iter().map(|c| c.storage_bytes).sum::<i64>()).unwrap_or(0);
    let quota = program.plan(plan).and_then(|p| p.storage_quota_gb).unwrap_or(Decimal::ZERO);
    let over = pricing::gb_seconds_over_quota(quota, &[pricing::StorageInterval { bytes: stored, seconds: hour }])?;
    rate = rate.checked_add(pricing::storage_charge(metering, over)?).expect("rates fit");
    Ok(rate.to_decimal())
}

/// Called by every use case that lowers a balance or raises a usage rate, in its transaction,
/// after its postings, with the account's row as it locked it: asks for an auto top-up if one is
/// due (`service::auto_topup`), sends the warning if it is due, and re-arms a threshold rule that
/// recovered. With neither the warning nor auto top-up on, it reads nothing: the locked row says
/// whether auto top-up is on (no posting changes that), and only then is the balance after the
/// postings read.
pub(crate) async fn check_low_credits(
    txn: &DatabaseTransaction,
    program: &Program,
    locked: &account::Model,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    if program.notices.low_credits.is_none() && locked.auto_topup_below_micros.is_none() {
        return Ok(());
    }
    let Some(account) = store::accounts::by_id(txn, locked.id).await? else { return Ok(()) };
    crate::service::auto_topup::after_lowering(txn, program, &[(&account, now)]).await?;
    if program.notices.low_credits.is_none() {
        return Ok(());
    }
    let rate = usage_rate(txn, program, account.id, &account.plan).await?;
    apply(txn, low_credit_actions(program, [(&account, rate, now)])).await
}

/// The low-credit check for many accounts at once (a batch of spends, a batch of write-offs):
/// `accounts` as they stand after the batch's postings, each with the instant of its last one.
/// Their containers are read in one statement and the warnings written in one per table.
pub(crate) async fn check_low_credits_many(
    txn: &DatabaseTransaction,
    program: &Program,
    accounts: &[(account::Model, DateTime<Utc>)],
) -> Result<(), ServiceError> {
    check_low_credits_with(txn, program, accounts, None).await
}

/// `check_low_credits_many` with the accounts' containers already read (`store::spend_reads`),
/// or none to read them here.
pub(crate) async fn check_low_credits_with(
    txn: &DatabaseTransaction,
    program: &Program,
    accounts: &[(account::Model, DateTime<Utc>)],
    read: Option<Vec<container::Model>>,
) -> Result<(), ServiceError> {
    let lowered: Vec<(&account::Model, DateTime<Utc>)> = accounts.iter().map(|(a, at)| (a, *at)).collect();
    crate::service::auto_topup::after_lowering(txn, program, &lowered).await?;
    if program.notices.low_credits.is_none() || accounts.is_empty() {
        return Ok(());
    }
    let mut containers: std::collections::HashMap<i64, Vec<container::Model>> = std::collections::HashMap::new();
    if program.metering.is_some() {
        let ids: Vec<i64> = accounts.iter().map(|(a, _)| a.id).collect();
        let all = match read {
            Some(read) => read,
            None => store::metering::containers_of_accounts(txn, &ids).await?,
        };
        for container in all.into_iter().filter(|c| ids.contains(&c.account_id)) {
            containers.entry(container.account_id).or_default().push(container);
        }
    }
    let mut rated = Vec::with_capacity(accounts.len());
    for (account, now) in accounts {
        rated.push((account, usage_rate_of(program, &account.plan, containers.get(&account.id).map_or(&[], Vec::as_slice))?, *now));
    }
    apply(txn, low_credit_actions(program, rated)).await
}

/// What the low-credit rule asks for, per account.
#[derive(Debug, Default)]
struct LowCreditActions {
    /// (account id, the warning's payload, when)
    warn: Vec<(i64, serde_json::Value, DateTime<Utc>)>,
    /// Threshold rules that recovered: the next crossing is worth a warning again.
    rearm: Vec<i64>,
}

/// The rule's decision for each (account after the change, its usage rate, the change's
/// instant); no database.
fn low_credit_actions<'a>(
    program: &Program,
    accounts: impl IntoIterator<Item = (&'a account::Model, Decimal, DateTime<Utc>)>,
) -> LowCreditActions {
    let mut actions = LowCreditActions::default();
    let Some(rule) = program.notices.low_credits else { return actions };
    for (account, rate, now) in accounts {
        let balance = Credits::from_micros(account.balance_micros.max(0));
        match notices::low_credits(rule, balance, rate) {
            Some(reason) if account.low_credits_notified_at.is_none() && account.credit_mail_enabled => {
                let event = serde_json::json!({
                    "account": account.external_id,
                    "balance": balance.to_string(),
                    "ratePerHour": (!rate.is_zero()).then(|| rate.to_string()),
                    "reason": reason,
                });
                tracing::info!(account.id = account.id, balance.credits = %balance, "low-credit warning sent");
                actions.warn.push((account.id, event, now));
            }
            None if account.low_credits_notified_at.is_some() && notices::rearms_when_recovered(rule) => actions.rearm.push(account.id),
            _ => {}
        }
    }
    actions
}

async fn apply(txn: &DatabaseTransaction, actions: LowCreditActions) -> Result<(), ServiceError> {
    store::outbox::publish_many(txn, "credits.low", &actions.warn).await?;
    let mut by_instant: BTreeMap<DateTime<Utc>, Vec<i64>> = BTreeMap::new();
    for (id, _, now) in &actions.warn {
        by_instant.entry(*now).or_default().push(*id);
    }
    for (now, warned) in by_instant {
        set_notified_many(txn, &warned, Some(now)).await?;
    }
    set_notified_many(txn, &actions.rearm, None).await
}

/// A purchase starts a new cycle: the next low balance is worth a warning again.
pub(crate) async fn rearm_low_credits(conn: &impl ConnectionTrait, account_id: i64) -> Result<(), ServiceError> {
    set_notified(conn, account_id, None).await
}

async fn set_notified(conn: &impl ConnectionTrait, account_id: i64, at: Option<DateTime<Utc>>) -> Result<(), ServiceError> {
    set_notified_many(conn, &[account_id], at).await
}

async fn set_notified_many(conn: &impl ConnectionTrait, account_ids: &[i64], at: Option<DateTime<Utc>>) -> Result<(), ServiceError> {
    Ok(store::accounts::set_low_credits_notified(conn, account_ids, at).await?)
}

impl Engine {
    pub async fn low_credits(&self, account: &AccountView) -> Result<LowCredits, ServiceError> {
        let (rule, balance) = (self.program.notices.low_credits, account.balance);
        let rate = usage_rate(&self.db, &self.program, account.id, &account.plan).await?;
        let reason = rule.and_then(|rule| notices::low_credits(rule, balance, rate));
        Ok(LowCredits {
            enabled: rule.is_some(),
            applies: reason.is_some(),
            reason,
            balance,
            rate_per_hour: self.program.metering.as_ref().map(|_| rate),
            threshold: match rule {
                Some(LowCreditRule::Below(threshold)) => Some(threshold),
                _ => None,
            },
            notified_at: account.low_credits_notified_at,
            credit_mail: account.credit_mail_enabled,
        })
    }

    /// Turns the account's credit mail (the low-credit and expiry notices) on or off.
    pub async fn set_credit_mail(&self, account: &str, enabled: bool) -> Result<AccountView, ServiceError> {
        let account = crate::service::input::ExternalId::parse(account)?;
        tx::write(&self.writer, |txn| {
            let account = account.clone();
            Box::pin(async move {
                let locked = crate::service::accounts::lock_by_external_id(txn, account.as_str()).await?;
                store::accounts::set_flag(txn, locked.id, Flag::CreditMail, enabled).await?;
                AccountView::of(account::Model { credit_mail_enabled: enabled, ..locked })
            })
        })
        .await
    }

    /// One batch of the expiring-credits notices: lots that expire within the program's window
    /// and were not announced yet, one notice per account listing them. Each lot is announced
    /// once (marked in the notice's transaction); how many lots the batch looked at.
    pub async fn notify_expiring(&self, now: DateTime<Utc>, batch: u64) -> Result<u64, ServiceError> {
        let Some(window) = self.program.notices.expiring_within else { return Ok(0) };
        let due = store::lots::expiring_unannounced(&self.db, now, now + window, batch.clamp(1, MAX_NOTICE_BATCH)).await?;
        let seen = due.len() as u64;
        let mut by_account: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for lot in &due {
            by_account.entry(lot.account_id).or_default().push(lot.id);
        }
        for (account_id, ids) in by_account {
            tx::write(&self.writer, |txn| {
                let ids = ids.clone();
                Box::pin(async move {
                    let Some(account) = store::accounts::lock(txn, account_id).await? else { return Ok::<_, ServiceError>(()) };
                    // Re-read under the lock: a spend may have used some up since.
                    let lots = store::lots::unannounced_among(txn, &ids).await?;
                    let worthy: Vec<&lot::Model> = lots
                        .iter()
                        .filter(|l| l.open && l.remaining_micros > 0)
                        .filter(|l| l.source.parse::<LotSource>().is_ok_and(notices::notice_worthy))
                        .collect();
                    if account.credit_mail_enabled && !worthy.is_empty() {
                        let total = Credits::from_micros(worthy.iter().map(|l| l.remaining_micros).sum());
                        let event = serde_json::json!({
                            "account": account.external_id,
                            "credits": total.to_string(),
                            "earliestExpiry": worthy[0].expires_at,
                            "lots": worthy.iter().map(|l| serde_json::json!({
                                "lotId": l.id.to_string(),
                                "source": l.source,
                                "remaining": Credits::from_micros(l.remaining_micros).to_string(),
                                "expiresAt": l.expires_at,
                            })).collect::<Vec<_>>(),
                        });
                        store::outbox::publish(txn, "credits.expiring", Some(account.id), &event, now).await?;
                    }
                    let announced: Vec<i64> = lots.iter().map(|l| l.id).collect();
                    store::lots::mark_expiry_announced(txn, &announced).await?;
                    Ok(())
                })
            })
            .await?;
        }
        Ok(seen)
    }
}
