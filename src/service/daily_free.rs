//! Daily free credits (carat): each UTC day, an account whose plan has them has the day's free
//! credits, which end at the next midnight. They are the last tier of every spend: used only once
//! every other credit is, so a spend short of its other credits takes the rest from them.
//!
//! They cost nothing for accounts that never show up: a read shows them as a virtual lot, and
//! only a spend that takes from them writes the day's lot (with a once-per-day claim).

use crate::ledger::time::day_of;
use crate::ledger::{Credits, Lot, LotClass, LotSource, Take};
use crate::program::Program;
use crate::service::ServiceError;
use crate::service::posting::{self, EntryMeta};
use crate::store::{self, lots};
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use std::collections::{HashMap, HashSet};

pub const KIND: &str = "daily_free";
/// The id a virtual lot carries in reads; stored lots start at 1.
pub const VIRTUAL_LOT_ID: i64 = 0;

/// The day's amount, if the account's plan has daily free credits.
fn daily_amount(program: &Program, plan: &str) -> Option<Credits> {
    program.plan(plan)?.daily_free_credits
}

/// Whether any plan of the program has daily free credits: only then does a spend batch read the
/// day's claims ahead (`store::spend_reads`).
pub fn offered(program: &Program) -> bool {
    program.plans.iter().any(|plan| plan.daily_free_credits.is_some())
}

/// `virtual_lot` for an account whose day's claim was read ahead (`claimed`: whether it exists).
pub fn virtual_lot_of(program: &Program, plan: &str, now: DateTime<Utc>, claimed: bool) -> Option<Lot> {
    let amount = daily_amount(program, plan)?;
    (!claimed).then(|| Lot::of_the_day(VIRTUAL_LOT_ID, amount, now))
}

async fn claimed_today(conn: &impl ConnectionTrait, account_id: i64, now: DateTime<Utc>) -> Result<bool, ServiceError> {
    Ok(store::claims::find(conn, account_id, KIND, &day_of(now).to_string()).await?.is_some())
}

/// Today's free credits as a virtual lot (id `VIRTUAL_LOT_ID`) when the plan has them and they
/// are not written yet: the last tier of every spend (`ConsumptionOrder::compare`), so counted in
/// what an account may spend now, and written only when a spend takes from them.
pub async fn virtual_lot(
    conn: &impl ConnectionTrait,
    program: &Program,
    account_id: i64,
    plan: &str,
    now: DateTime<Utc>,
) -> Result<Option<Lot>, ServiceError> {
    if daily_amount(program, plan).is_none() {
        return Ok(None);
    }
    Ok(virtual_lot_of(program, plan, now, claimed_today(conn, account_id, now).await?))
}

/// `virtual_lot` for many accounts (id and plan) in one read of their claims: the accounts whose
/// plan has daily free credits not yet written today, with the day's virtual lot.
pub async fn virtual_lots(
    conn: &impl ConnectionTrait,
    program: &Program,
    accounts: &[(i64, &str)],
    now: DateTime<Utc>,
) -> Result<HashMap<i64, Lot>, ServiceError> {
    let today = day_of(now).to_string();
    let due: Vec<(i64, Credits)> = accounts.iter().filter_map(|(id, plan)| Some((*id, daily_amount(program, plan)?))).collect();
    if due.is_empty() {
        return Ok(HashMap::new());
    }
    let pairs: Vec<(i64, &str)> = due.iter().map(|(id, _)| (*id, today.as_str())).collect();
    let claimed: HashSet<i64> = store::claims::find_many(conn, KIND, &pairs).await?.into_iter().map(|c| c.account_id).collect();
    Ok(due
        .into_iter()
        .filter(|(id, _)| !claimed.contains(id))
        .map(|(id, amount)| (id, Lot::of_the_day(VIRTUAL_LOT_ID, amount, now)))
        .collect())
}

/// Whether the day's free credits are still waiting: other credits are left, which every spend
/// uses first (the status bar shows them as waiting, domain.md §4).
pub fn waiting(lots: &[Lot], now: DateTime<Utc>) -> bool {
    lots.iter().any(|l| l.source != LotSource::DailyFree && l.is_spendable(now))
}

/// For spends, under the account lock, after the takes are decided: if they take from the
/// virtual lot of the day, writes it (with its once-per-day claim) and points the lot and the
/// takes at the stored lot. Returns the stored lot's id, if it wrote one.
pub async fn write_if_taken(
    conn: &impl ConnectionTrait,
    account_id: i64,
    lots: &mut [Lot],
    takes: &mut [Take],
    now: DateTime<Utc>,
) -> Result<Option<i64>, ServiceError> {
    if !takes.iter().any(|t| t.lot_id == VIRTUAL_LOT_ID) {
        return Ok(None);
    }
    let lot = lots.iter_mut().find(|l| l.id == VIRTUAL_LOT_ID).ok_or_else(|| anyhow::anyhow!("a take from a lot that is not there"))?;
    let day = day_of(now).to_string();
    let new = lots::NewLot {
        account_id,
        class: LotClass::Free,
        source: LotSource::DailyFree,
        amount: lot.granted,
        granted_at: lot.granted_at,
        expires_at: lot.expires_at,
        origin_kind: Some(KIND),
        origin_id: Some(day.clone()),
        priority: crate::ledger::Priority::DEFAULT,
        effective_at: None,
        features: None,
    };
    let (stored, _) = posting::credit(conn, new, EntryMeta { reason: Some("daily free credits"), ..EntryMeta::now(KIND, now) }).await?;
    store::claims::insert(conn, account_id, KIND, &day, Some(stored.id), lot.granted.micros(), now).await?;
    lot.id = stored.id;
    for take in takes.iter_mut().filter(|t| t.lot_id == VIRTUAL_LOT_ID) {
        take.lot_id = stored.id;
    }
    Ok(Some(stored.id))
}
