//! Rollover of plan credits at a period's end (`ledger::rollover`), made by the write-off of the
//! period's plan lot (`service::expiry`), in its transaction and under its account locks.
//!
//! Why there and not in the next period's grant: a plan lot ends at its period's end, and the
//! continuous `ExpireLots` job (every 10 s) would usually write it off before the monthly grant's
//! tick or a renewal came round; what it wrote off could then no longer carry. Deciding at the
//! write-off means every path that ends a plan lot (the job, the daily reset's catch-up, a test
//! clock's advance) carries it the same way, whichever worker gets there first. It happens once:
//! a lot is written off once (re-read under its account's lock, closed by it), and the carry is
//! claimed per account and plan period in `claims` (`CLAIM`, keyed by the grant key, the same
//! key the plan grant's claim has), whose unique key two racing workers meet at.

use crate::entity::{account, lot};
use crate::ledger::plans::split_grant_key;
use crate::ledger::rollover::{self, PlanLot};
use crate::ledger::{Credits, Lot, LotSource};
use crate::program::Program;
use crate::service::ServiceError;
use crate::service::plans::{PLAN_ORIGIN, anchor_of};
use crate::service::posting::{self, EntryMeta, Held};
use crate::store::{self, journal::EntryKind, lots};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The claim of a period's rollover, per account and grant key.
pub const CLAIM: &str = "plan_rollover";
/// A rollover lot's `origin_kind`; its `origin_id` is the grant key of the lot it came from.
pub const ORIGIN: &str = "rollover";

/// What of a lot that is ending carries over, by the program's rule for its plan; none for a lot
/// that is not a plan lot, or whose plan has no rollover. No database.
fn carry_of(program: &Program, account: &account::Model, model: &lot::Model, lot: &Lot) -> Option<(String, rollover::Carry)> {
    if model.origin_kind.as_deref() != Some(PLAN_ORIGIN) {
        return None;
    }
    let schedule = program.plan_credits?.period;
    let key = model.origin_id.as_deref()?;
    let (plan, period_key) = split_grant_key(key)?;
    let rule = program.plan(plan)?.rollover?;
    let at = PlanLot { plan, period_key, account_plan: &account.plan, anchor: anchor_of(account), schedule };
    rollover::carry(rule, lot, &at).map(|carry| (key.to_string(), carry))
}

/// Carries over what the rules say of `ending` (lots past their expiry, each read under its
/// account's lock into `read`), before the write-off takes the rest: a ROLLOVER entry and a new
/// lot for each, dated at the old lot's expiry, and the period's claim. `read` is left with what
/// each lot holds after. Returns the credits carried.
pub(crate) async fn carry_over(
    txn: &DatabaseTransaction,
    program: &Program,
    accounts: &BTreeMap<i64, account::Model>,
    ending: &[(lot::Model, Lot)],
    read: &mut HashMap<i64, Held>,
    now: DateTime<Utc>,
) -> Result<Credits, ServiceError> {
    let mut due: Vec<(&lot::Model, &Lot, String, rollover::Carry)> = ending
        .iter()
        .filter_map(|(model, lot)| {
            let account = accounts.get(&model.account_id)?;
            carry_of(program, account, model, lot).map(|(key, carry)| (model, lot, key, carry))
        })
        .collect();
    if due.is_empty() {
        return Ok(Credits::ZERO);
    }
    // A period carried already (its claim is there) carries nothing more: the rest expires.
    let pairs: Vec<(i64, &str)> = due.iter().map(|(model, _, key, _)| (model.account_id, key.as_str())).collect();
    let claimed: HashSet<(i64, String)> =
        store::claims::find_many(txn, CLAIM, &pairs).await?.into_iter().map(|c| (c.account_id, c.period)).collect();
    due.retain(|(model, _, key, _)| !claimed.contains(&(model.account_id, key.clone())));
    let carries = due
        .iter()
        .map(|(model, lot, key, carry)| posting::Carry {
            from: lot.id,
            to: lots::NewLot {
                account_id: model.account_id,
                class: lot.class,
                source: LotSource::Rollover,
                amount: carry.amount,
                granted_at: now,
                expires_at: Some(carry.expires_at),
                origin_kind: Some(ORIGIN),
                origin_id: Some(key.clone()),
                priority: lot.priority,
                // Carried credits keep the lot's scope; they are spendable at once.
                effective_at: None,
                features: lot.features.clone(),
            },
            meta: EntryMeta {
                reason: Some("rolled over"),
                // At the period's end, like the EXPIRE of what does not carry.
                effective_at: lot.expires_at.unwrap_or(now),
                ..EntryMeta::now("rollover", now)
            },
        })
        .collect();
    let new_lots = posting::carry_many(txn, EntryKind::Rollover, read, carries).await?;
    let mut carried = Credits::ZERO;
    let mut claims = Vec::with_capacity(due.len());
    for ((model, lot, key, carry), new_lot) in due.into_iter().zip(&new_lots) {
        let held = read.get_mut(&lot.id).expect("a carried lot was read");
        held.remaining = held.remaining.checked_sub(carry.amount).expect("a carry never overdraws a lot");
        carried = carried.checked_add(carry.amount).expect("sums fit");
        tracing::info!(account.id = model.account_id, lot.id = lot.id, amount.credits = %carry.amount, period = %key, "plan credits rolled over");
        claims.push(store::claims::NewClaim {
            account_id: model.account_id,
            kind: CLAIM,
            period: key,
            lot_id: Some(new_lot.id),
            amount_micros: carry.amount.micros(),
            now,
        });
    }
    store::claims::insert_many(txn, claims).await?;
    Ok(carried)
}
