//! Daily free credits (carat): each UTC day, an account whose plan has them and that has no paid
//! or promotional credits left has the day's free credits, which end at the next midnight.
//!
//! They cost nothing for accounts that never show up: a read shows them as a virtual lot, and
//! only a spend writes the day's lot (with a once-per-day claim) when it needs it.

use crate::entity::account;
use crate::ledger::time::{day_of, next_day_start};
use crate::ledger::{Credits, Lot, LotClass, LotSource};
use crate::program::Program;
use crate::service::ServiceError;
use crate::service::posting::{self, EntryMeta};
use crate::store::{self, lots};
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

pub const KIND: &str = "daily_free";
/// The id a virtual lot carries in reads; stored lots start at 1.
pub const VIRTUAL_LOT_ID: i64 = 0;

/// The day's amount, if the account's plan has daily free credits and nothing else is left.
fn due(program: &Program, account: &account::Model, lots: &[Lot], now: DateTime<Utc>) -> Option<Credits> {
    let amount = program.plan(&account.plan)?.daily_free_credits?;
    let others_left = lots.iter().any(|l| l.class != LotClass::Free && l.is_spendable(now));
    (!others_left).then_some(amount)
}

async fn claimed_today(conn: &impl ConnectionTrait, account_id: i64, now: DateTime<Utc>) -> Result<bool, ServiceError> {
    Ok(store::claims::find(conn, account_id, KIND, &day_of(now).to_string()).await?.is_some())
}

fn lot_of_the_day(id: i64, amount: Credits, now: DateTime<Utc>) -> Lot {
    Lot {
        id,
        class: LotClass::Free,
        source: LotSource::DailyFree,
        granted: amount,
        remaining: amount,
        granted_at: now,
        expires_at: Some(next_day_start(now)),
    }
}

/// For reads: today's lot as a virtual one, when it is due and not written yet.
pub async fn virtual_lot(
    conn: &impl ConnectionTrait,
    program: &Program,
    account: &account::Model,
    lots: &[Lot],
    now: DateTime<Utc>,
) -> Result<Option<Lot>, ServiceError> {
    let Some(amount) = due(program, account, lots, now) else { return Ok(None) };
    if claimed_today(conn, account.id, now).await? {
        return Ok(None);
    }
    Ok(Some(lot_of_the_day(VIRTUAL_LOT_ID, amount, now)))
}

/// For spends, under the account lock: writes today's lot when it is due and not written yet,
/// and adds it to `lots`.
pub async fn materialize(
    conn: &impl ConnectionTrait,
    program: &Program,
    account: &account::Model,
    lots: &mut Vec<Lot>,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let Some(amount) = due(program, account, lots, now) else { return Ok(()) };
    if claimed_today(conn, account.id, now).await? {
        return Ok(());
    }
    let day = day_of(now).to_string();
    let new = lots::NewLot {
        account_id: account.id,
        class: LotClass::Free,
        source: LotSource::DailyFree,
        amount,
        granted_at: now,
        expires_at: Some(next_day_start(now)),
        origin_kind: Some(KIND),
        origin_id: Some(day.clone()),
    };
    let (lot, _) = posting::credit(conn, new, EntryMeta { reason: Some("daily free credits"), ..EntryMeta::now(KIND, now) }).await?;
    store::claims::insert(conn, account.id, KIND, &day, Some(lot.id), amount.micros(), now).await?;
    lots.push(lot_of_the_day(lot.id, amount, now));
    Ok(())
}
