//! Daily lucky credits (carat): paid subscribers claim, once per UTC day, a random amount up to
//! their plan's maximum, valid 24 hours from claiming, only within the promotion's dates. The
//! journal entry records what was drawn and from which distribution.

use crate::ledger::time::{day_of, next_day_start};
use crate::ledger::{Credits, LotClass, LotSource};
use crate::program::{Lucky, Program};
use crate::service::Refusal;
use crate::service::accounts::AccountView;
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey};
use crate::service::posting::{self, EntryMeta};
use crate::service::{Engine, ServiceError};
use crate::store::{self, idempotency::request_hash, lots};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

const KIND: &str = "lucky";
/// The day's drop for an account, drawn by the daily reset and claimed from the banner. It is
/// not credits until claimed: an unclaimed drop lapses at the next reset with nothing to write
/// off in the journal.
const DROP: &str = "lucky_drop";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuckyStatus {
    pub eligible: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    pub claimed_today: Option<Credits>,
    /// Today's drop is drawn and not yet claimed.
    pub drop_waiting: bool,
    pub max_credits: Option<Credits>,
    pub next_available_at: Option<DateTime<Utc>>,
    pub promotion_ends_at: Option<DateTime<Utc>>,
}

/// A random amount granted as a lot (lucky credits, ad rewards).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RandomGrant {
    pub day: NaiveDate,
    pub amount: Credits,
    pub lot_id: i64,
    pub entry_id: i64,
    pub expires_at: Option<DateTime<Utc>>,
    pub distribution: String,
}

/// The promotion and the plan's maximum, or why this account cannot claim now.
fn eligibility<'p>(program: &'p Program, plan: &str, now: DateTime<Utc>) -> Result<(&'p Lucky, Credits), String> {
    let lucky = program.lucky.as_ref().ok_or("this program has no lucky credits")?;
    if lucky.starts_at.is_some_and(|start| now < start) {
        return Err("the lucky-credit promotion has not started".into());
    }
    if now >= lucky.ends_at {
        return Err("the lucky-credit promotion has ended".into());
    }
    match program.plan(plan) {
        Some(plan) if plan.paid => plan.lucky_max_credits.map(|max| (lucky, max)).ok_or_else(|| "this plan has no lucky credits".into()),
        _ => Err("lucky credits are for paid subscribers".into()),
    }
}

impl Engine {
    /// The plans whose subscribers get a lucky drop on `day`: none outside the promotion.
    pub(crate) fn lucky_plans(&self, day: NaiveDate) -> Vec<String> {
        let Some(lucky) = &self.program.lucky else { return Vec::new() };
        let starts = day.and_time(chrono::NaiveTime::MIN).and_utc();
        if lucky.starts_at.is_some_and(|start| next_day_start(starts) <= start) || starts >= lucky.ends_at {
            return Vec::new();
        }
        self.program.plans.iter().filter(|p| p.paid && p.lucky_max_credits.is_some()).map(|p| p.code.clone()).collect()
    }

    /// Draws an account's lucky drop for `day`, once: a second call, from a retry or a racing
    /// worker, finds the first draw and keeps it. True if this call drew it.
    pub(crate) async fn drop_lucky_by_id(&self, account_id: i64, day: NaiveDate, now: DateTime<Utc>) -> Result<bool, ServiceError> {
        let Some(account) = store::accounts::by_id(&self.db, account_id).await? else { return Ok(false) };
        let at = now.max(day.and_time(chrono::NaiveTime::MIN).and_utc());
        let Ok((lucky, max)) = eligibility(&self.program, &account.plan, at) else { return Ok(false) };
        if !crate::service::accounts::status_of(&account)?.may_receive_credits() {
            return Ok(false);
        }
        let amount = self.draw(&lucky.distribution, Some(whole_cap(max)));
        Ok(store::claims::insert_if_absent(&self.db, account.id, DROP, &day.to_string(), amount.micros(), now).await?)
    }

    pub async fn lucky_status(&self, account: &AccountView, now: DateTime<Utc>) -> Result<LuckyStatus, ServiceError> {
        let claim = store::claims::find(&self.db, account.id, KIND, &day_of(now).to_string()).await?;
        let claimed_today = claim.map(|c| Credits::from_micros(c.amount_micros));
        let dropped = store::claims::find(&self.db, account.id, DROP, &day_of(now).to_string()).await?.is_some();
        let (eligible, reason, max_credits) = match eligibility(&self.program, &account.plan, now) {
            Ok((_, max)) => (true, None, Some(max)),
            Err(why) => (false, Some(why), None),
        };
        Ok(LuckyStatus {
            eligible,
            reason,
            drop_waiting: eligible && dropped && claimed_today.is_none(),
            next_available_at: eligible.then(|| if claimed_today.is_some() { next_day_start(now) } else { now }),
            claimed_today,
            max_credits,
            promotion_ends_at: self.program.lucky.as_ref().map(|l| l.ends_at),
        })
    }

    pub async fn claim_lucky(&self, account: &str, idempotency_key: &str, now: DateTime<Utc>) -> Result<RandomGrant, ServiceError> {
        if self.program.lucky.is_none() {
            return Err(ServiceError::FeatureDisabled("this program has no lucky credits".into()));
        }
        let account = ExternalId::parse(account)?;
        let key = IdempotencyKey::parse(idempotency_key)?;
        let command = Command {
            operation: "claim_lucky",
            account,
            key,
            request_hash: request_hash(&KIND),
            permit: Permit::ReceiveCredits,
            fields: (),
        };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, ledger, account, command, now } = run;
                let (lucky, max) = match eligibility(&ledger.program, &account.plan, now) {
                    Ok(found) => found,
                    Err(why) => return Ok(Err(Refusal::NotEligible { why })),
                };
                let day = day_of(now);
                if store::claims::find(txn, account.id, KIND, &day.to_string()).await?.is_some() {
                    return Ok(Err(Refusal::AlreadyClaimed { what: format!("lucky credits already claimed on {day}") }));
                }
                let distribution = lucky.distribution.to_string();
                // The reset's drop if there is one (capped again: the plan may have changed since);
                // a subscriber who became eligible after the reset draws now.
                let (amount, why) = match store::claims::find(txn, account.id, DROP, &day.to_string()).await? {
                    Some(drop) => {
                        let amount = Credits::from_micros(drop.amount_micros).min(max);
                        (amount, format!("lucky drop of {amount} for {day} from {distribution}, capped at {max}"))
                    }
                    None => {
                        let amount = ledger.draw(&lucky.distribution, Some(whole_cap(max)));
                        (amount, format!("lucky draw of {amount} from {distribution}, capped at {max}"))
                    }
                };
                assert!(amount <= max, "a lucky grant never exceeds the plan's maximum");
                let lot = lots::NewLot {
                    account_id: account.id,
                    class: LotClass::Promotional,
                    source: LotSource::Lucky,
                    amount,
                    granted_at: now,
                    expires_at: lucky.validity.expires_at(now),
                    origin_kind: Some(KIND),
                    origin_id: Some(day.to_string()),
                    priority: crate::ledger::Priority::DEFAULT,
                    effective_at: None,
                    features: None,
                };
                let meta =
                    EntryMeta { idempotency_key: Some(command.key.as_str()), reason: Some(&why), ..EntryMeta::now("claim_lucky", now) };
                let (lot, entry) = posting::credit(txn, lot, meta).await?;
                store::claims::insert(txn, account.id, KIND, &day.to_string(), Some(lot.id), amount.micros(), now).await?;
                Ok(Ok(RandomGrant { day, amount, lot_id: lot.id, entry_id: entry.id, expires_at: lot.expires_at, distribution }))
            })
        })
        .await
    }
}

/// A plan's maximum in whole credits, the unit draws are made in.
fn whole_cap(max: Credits) -> u32 {
    u32::try_from(max.micros() / crate::ledger::amount::MICROS_PER_CREDIT).unwrap_or(u32::MAX)
}
