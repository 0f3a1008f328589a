//! Ad-rewarded random credits (carat): a free-plan account that has used up the day's free
//! credits and has nothing else earns a random amount by watching an ad (or tapping a button,
//! where the program says so), up to a daily cap.
//!
//! In ad mode the network's server-side callback is verified first (`record_verified_ad`, from
//! the HTTP endpoint); the app's claim then redeems that verified reward, once.

use crate::ads::{NETWORKS, VerifiedReward};
use crate::entity::account;
use crate::ledger::time::day_of;
use crate::ledger::{LotClass, LotSource, balance};
use crate::program::{AdMode, Program};
use crate::service::Refusal;
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey};
use crate::service::lucky::RandomGrant;
use crate::service::posting::{self, EntryMeta};
use crate::service::{Engine, ServiceError, daily_free};
use crate::store::{self, idempotency::request_hash, is_unique_violation, lots};
use chrono::{DateTime, Duration, Utc};
use sea_orm::DatabaseTransaction;

const KIND: &str = "ad_reward";
/// How old a callback may be when it arrives, and how far ahead of our clock.
pub const CALLBACK_MAX_AGE_MINUTES: i64 = 60;
pub const CALLBACK_MAX_SKEW_MINUTES: i64 = 5;

impl Engine {
    /// Records a verified ad view; a repeated callback for the same transaction is a no-op.
    /// Returns whether it was new.
    pub async fn record_verified_ad(&self, reward: &VerifiedReward, now: DateTime<Utc>) -> Result<bool, ServiceError> {
        let account = ExternalId::parse(&reward.account)?;
        crate::service::input::foreign_id("transaction_id", &reward.transaction_id)?;
        let completed = DateTime::from_timestamp(reward.timestamp, 0).ok_or_else(|| ServiceError::bad_input("timestamp out of range"))?;
        if completed < now - Duration::minutes(CALLBACK_MAX_AGE_MINUTES) || completed > now + Duration::minutes(CALLBACK_MAX_SKEW_MINUTES) {
            return Err(ServiceError::bad_input("the callback is stale or from the future"));
        }
        self.account(account.as_str()).await?;
        match store::ad_rewards::insert(
            &self.db,
            reward.network,
            &reward.transaction_id,
            reward.custom_data.as_deref(),
            account.as_str(),
            now,
        )
        .await
        {
            Ok(()) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn claim_ad_reward(
        &self,
        account: &str,
        transaction_id: Option<&str>,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<RandomGrant, ServiceError> {
        let rule = self.program.ad_rewards.clone().ok_or_else(|| ServiceError::FeatureDisabled("this program has no ad rewards".into()))?;
        let account = ExternalId::parse(account)?;
        let key = IdempotencyKey::parse(idempotency_key)?;
        let transaction_id = match (rule.mode, transaction_id) {
            (AdMode::Ad, Some(id)) => Some(crate::service::input::foreign_id("transactionId", id)?),
            (AdMode::Ad, None) => {
                return Err(ServiceError::bad_input("transactionId: the verified ad's transaction id, 1 to 128 characters"));
            }
            (AdMode::Button, None) => None,
            (AdMode::Button, Some(_)) => return Err(ServiceError::bad_input("this program rewards a button, not an ad: no transactionId")),
        };
        let request_hash = request_hash(&transaction_id);
        let command = Command {
            operation: "claim_ad_reward",
            account,
            key,
            request_hash,
            permit: Permit::ReceiveCredits,
            fields: (rule, transaction_id),
        };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, ledger, account, command, now } = run;
                let (rule, transaction_id) = &command.fields;
                if let Some(why) = not_eligible(txn, &ledger.program, account, now).await? {
                    return Ok(Err(Refusal::NotEligible { why }));
                }
                let day = day_of(now);
                let claimed_today = store::claims::count_with_prefix(txn, account.id, KIND, &format!("{day}#")).await?;
                if claimed_today >= u64::from(rule.daily_cap) {
                    return Ok(Err(Refusal::LimitReached { what: format!("today's {} ad rewards are claimed", rule.daily_cap) }));
                }
                if let Some(transaction_id) = transaction_id {
                    // Not found is not the key's outcome: the network's callback may still be on
                    // its way, and the app retries with the same key.
                    let not_found = || ServiceError::NotFound(format!("no verified ad {transaction_id:?} for this account yet"));
                    // Whichever network verified it (a deployment that changed networks may hold
                    // rewards of both); one still unclaimed first.
                    let verified = store::ad_rewards::find_for_account(txn, &NETWORKS, transaction_id, command.account.as_str()).await?;
                    let verified = verified.ok_or_else(not_found)?;
                    if !store::ad_rewards::mark_claimed(txn, verified.id, now).await? {
                        return Ok(Err(Refusal::AlreadyClaimed { what: format!("ad {transaction_id:?} was already rewarded") }));
                    }
                }
                let amount = ledger.draw(&rule.distribution, None);
                let distribution = rule.distribution.to_string();
                let why = format!("ad reward of {amount} from {distribution}");
                let lot = lots::NewLot {
                    account_id: account.id,
                    class: LotClass::Promotional,
                    source: LotSource::AdReward,
                    amount,
                    granted_at: now,
                    expires_at: rule.validity.expires_at(now),
                    origin_kind: Some(KIND),
                    origin_id: transaction_id.clone().or_else(|| Some(day.to_string())),
                    priority: crate::ledger::Priority::DEFAULT,
                    effective_at: None,
                    features: None,
                };
                let meta =
                    EntryMeta { idempotency_key: Some(command.key.as_str()), reason: Some(&why), ..EntryMeta::now("claim_ad_reward", now) };
                let (lot, entry) = posting::credit(txn, lot, meta).await?;
                let period = format!("{day}#{}", claimed_today + 1);
                store::claims::insert(txn, account.id, KIND, &period, Some(lot.id), amount.micros(), now).await?;
                Ok(Ok(RandomGrant { day, amount, lot_id: lot.id, entry_id: entry.id, expires_at: lot.expires_at, distribution }))
            })
        })
        .await
    }
}

/// Why `account` may not earn an ad reward now, if it may not: only a free-plan account that has
/// used up the day's free credits and has nothing else left may.
async fn not_eligible(
    txn: &DatabaseTransaction,
    program: &Program,
    account: &account::Model,
    now: DateTime<Utc>,
) -> Result<Option<String>, ServiceError> {
    if program.plan(&account.plan).is_none_or(|p| p.paid) {
        return Ok(Some("ad rewards are for free-plan accounts".into()));
    }
    let open = lots::open_for_account(txn, account.id).await?;
    let rules: Vec<_> = open.iter().map(lots::to_rule).collect::<Result<_, _>>()?;
    let virtual_free = daily_free::virtual_lot(txn, program, account.id, &account.plan, now).await?;
    if !balance(&rules, now).is_zero() || virtual_free.is_some() {
        return Ok(Some("the day's free credits and all other credits must be used up first".into()));
    }
    Ok(None)
}
