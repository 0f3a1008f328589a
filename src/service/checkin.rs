//! The daily check-in: once per UTC day, a promotional lot with the program's validity.

use crate::ledger::claims::streak;
use crate::ledger::time::{day_of, next_day_start};
use crate::ledger::{Credits, LotClass, LotSource};
use crate::service::Refusal;
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey};
use crate::service::posting::{self, EntryMeta};
use crate::service::{Engine, ServiceError};
use crate::store::{self, idempotency::request_hash, lots};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

const KIND: &str = "check_in";
/// How far back a streak is counted: a year and a bit, so a status read stays bounded.
const MAX_STREAK_DAYS: u64 = 400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInReceipt {
    pub day: NaiveDate,
    pub lot_id: i64,
    pub entry_id: i64,
    pub amount: Credits,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInStatus {
    pub enabled: bool,
    pub claimed_today: bool,
    /// When the next check-in can be made: now, or the next UTC midnight.
    pub next_available_at: DateTime<Utc>,
    pub streak: u32,
    pub credits: Option<Credits>,
}

impl Engine {
    pub async fn check_in(&self, account: &str, idempotency_key: &str, now: DateTime<Utc>) -> Result<CheckInReceipt, ServiceError> {
        let rule =
            self.program.check_in.clone().ok_or_else(|| ServiceError::FeatureDisabled("this program has no daily check-in".into()))?;
        let account = ExternalId::parse(account)?;
        let key = IdempotencyKey::parse(idempotency_key)?;
        // The key alone decides a replay: the same key replays its first day's outcome.
        let command =
            Command { operation: KIND, account, key, request_hash: request_hash(&KIND), permit: Permit::ReceiveCredits, fields: rule };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, account, command, now, .. } = run;
                let rule = &command.fields;
                let day = day_of(now);
                if store::claims::find(txn, account.id, KIND, &day.to_string()).await?.is_some() {
                    return Ok(Err(Refusal::AlreadyClaimed { what: format!("already checked in on {day}") }));
                }
                let lot = lots::NewLot {
                    account_id: account.id,
                    class: LotClass::Promotional,
                    source: LotSource::CheckIn,
                    amount: rule.credits,
                    granted_at: now,
                    expires_at: rule.validity.expires_at(now),
                    origin_kind: Some(KIND),
                    origin_id: Some(day.to_string()),
                    priority: crate::ledger::Priority::DEFAULT,
                    effective_at: None,
                    features: None,
                };
                let meta =
                    EntryMeta { idempotency_key: Some(command.key.as_str()), reason: Some("daily check-in"), ..EntryMeta::now(KIND, now) };
                let (lot, entry) = posting::credit(txn, lot, meta).await?;
                store::claims::insert(txn, account.id, KIND, &day.to_string(), Some(lot.id), rule.credits.micros(), now).await?;
                Ok(Ok(CheckInReceipt { day, lot_id: lot.id, entry_id: entry.id, amount: rule.credits, expires_at: lot.expires_at }))
            })
        })
        .await
    }

    pub async fn check_in_status(&self, account_id: i64, now: DateTime<Utc>) -> Result<CheckInStatus, ServiceError> {
        let periods = store::claims::recent_periods(&self.db, account_id, KIND, MAX_STREAK_DAYS).await?;
        let days: Vec<NaiveDate> = periods.iter().filter_map(|p| p.parse().ok()).collect();
        let today = day_of(now);
        let claimed_today = days.first() == Some(&today);
        Ok(CheckInStatus {
            enabled: self.program.check_in.is_some(),
            claimed_today,
            next_available_at: if claimed_today { next_day_start(now) } else { now },
            streak: streak(&days, today),
            credits: self.program.check_in.as_ref().map(|c| c.credits),
        })
    }
}
