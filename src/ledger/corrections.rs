//! Operators' corrections of a ledger (issue 25): voiding what remains of a lot, debiting an
//! account by hand, and moving a lot's expiry.
//!
//! A void takes a lot's remaining credits out of the account for good, in a VOID entry with the
//! operator's reason: a grant made by mistake, credits given to the wrong account, a fraud. What
//! was spent of the lot stays spent. Credits a reservation holds from the lot are not the lot's
//! to void while held: the void is refused until the hold is captured or released, so a later
//! release never brings voided credits back.

use crate::ledger::lot::{ConsumptionOrder, Insufficient, Purpose, Take, take};
use crate::ledger::{Credits, Lot, LotSource};
use chrono::{DateTime, Utc};

/// Why a lot cannot be voided now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum VoidRefusal {
    #[error("nothing remains of lot {lot_id} to void")]
    NothingRemains { lot_id: i64 },
    #[error("lot {lot_id} expired at {at}: what remained of it is written off as expired, not voided")]
    Expired { lot_id: i64, at: DateTime<Utc> },
    #[error("{held} credits of lot {lot_id} are held by a reservation: capture or release it first")]
    Held { lot_id: i64, held: Credits },
}

/// What voiding `lot` at `now` takes: all that remains of it, unless it expired, is empty, or
/// a reservation still holds credits drawn from it (`held_from_it`).
pub fn void(lot: &Lot, held_from_it: Credits, now: DateTime<Utc>) -> Result<Credits, VoidRefusal> {
    if let Some(at) = lot.expires_at.filter(|_| lot.is_expired(now)) {
        return Err(VoidRefusal::Expired { lot_id: lot.id, at });
    }
    if !held_from_it.is_zero() {
        return Err(VoidRefusal::Held { lot_id: lot.id, held: held_from_it });
    }
    if lot.remaining.is_zero() {
        return Err(VoidRefusal::NothingRemains { lot_id: lot.id });
    }
    Ok(lot.remaining)
}

/// A manual debit (an ADJUST entry): `amount` taken from the account's `lots` in the program's
/// order, or from the one lot `from` names, all or nothing, as a spend would take it but never
/// from the day's free credits (which are not the account's until a spend takes them). The lots
/// are left as the debit leaves them; a refusal says what was available and changes nothing.
pub fn adjust_down(
    lots: &mut [Lot],
    amount: Credits,
    from: Option<i64>,
    order: &ConsumptionOrder,
    now: DateTime<Utc>,
) -> Result<Vec<Take>, Insufficient> {
    match from {
        None => take(lots, amount, order, now, Purpose::Any),
        Some(id) => match lots.iter_mut().find(|l| l.id == id) {
            Some(lot) => take(std::slice::from_mut(lot), amount, order, now, Purpose::Any),
            None => Err(Insufficient::short(amount, Credits::ZERO)),
        },
    }
}

/// Why a lot's expiry cannot be moved now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ExpiryRefusal {
    #[error("lot {lot_id} expired at {at}: an expired lot is written off, never reopened")]
    Expired { lot_id: i64, at: DateTime<Utc> },
    #[error("nothing remains of lot {lot_id}, and none of it is held: there is no expiry to move")]
    NothingRemains { lot_id: i64 },
    #[error("lot {lot_id} already expires at {at}")]
    Unchanged { lot_id: i64, at: DateTime<Utc> },
    #[error("lot {lot_id} is the day's free credits, which end at the next daily reset by rule")]
    DailyFree { lot_id: i64 },
    #[error("lot {lot_id} starts at {starts_at}: a later expiry, or one not later than now to end it before it starts")]
    BeforeStart { lot_id: i64, starts_at: DateTime<Utc> },
}

/// A lot's expiry as an operator moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExpiryChange {
    /// The expiry before (none: the lot never expired).
    pub from: Option<DateTime<Utc>>,
    /// The expiry after: the instant asked for, or `now` when that was not later than now.
    pub to: DateTime<Utc>,
    /// The lot expires at once: its remaining credits are written off now, in an EXPIRE entry
    /// dated now (what a reservation holds from it expires when released, as any hold's part of
    /// an expired lot does).
    pub expires_now: bool,
}

/// Moves `lot`'s expiry to `to` at `now`: later or earlier; an instant not later than now
/// expires the lot at once, dated now, never in the past, so no read already made changes. A
/// lot already expired is never reopened (its write-off owns it, done or due), and a lot with
/// nothing remaining nor held has no expiry left to move.
pub fn change_expiry(lot: &Lot, held_from_it: Credits, to: DateTime<Utc>, now: DateTime<Utc>) -> Result<ExpiryChange, ExpiryRefusal> {
    if let Some(at) = lot.expires_at.filter(|_| lot.is_expired(now)) {
        return Err(ExpiryRefusal::Expired { lot_id: lot.id, at });
    }
    if lot.source == LotSource::DailyFree {
        return Err(ExpiryRefusal::DailyFree { lot_id: lot.id });
    }
    if lot.remaining.is_zero() && held_from_it.is_zero() {
        return Err(ExpiryRefusal::NothingRemains { lot_id: lot.id });
    }
    let to = to.max(now);
    // An upcoming lot may end before it starts (at once), never between now and its start: a
    // lot that expires before it may be spent is no grant at all.
    if let Some(starts_at) = lot.effective_at.filter(|at| to > now && to <= *at) {
        return Err(ExpiryRefusal::BeforeStart { lot_id: lot.id, starts_at });
    }
    if lot.expires_at == Some(to) {
        return Err(ExpiryRefusal::Unchanged { lot_id: lot.id, at: to });
    }
    Ok(ExpiryChange { from: lot.expires_at, to, expires_now: to == now })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{LotClass, LotSource};
    use chrono::Duration;

    fn lot(remaining: i64, expires_in: Option<i64>) -> Lot {
        let now = t0();
        Lot {
            id: 7,
            class: LotClass::Promotional,
            source: LotSource::Event,
            granted: Credits::from_whole(10),
            remaining: Credits::from_whole(remaining),
            granted_at: now - Duration::hours(1),
            expires_at: expires_in.map(|m| now + Duration::minutes(m)),
            priority: crate::ledger::Priority::DEFAULT,
            effective_at: None,
            features: None,
        }
    }

    fn t0() -> DateTime<Utc> {
        "2026-12-03T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_debit_takes_in_the_programs_order_or_from_the_named_lot() {
        let order = ConsumptionOrder::new(vec![vec![LotClass::Free, LotClass::Promotional], vec![LotClass::Paid]]).unwrap();
        let mut paid = lot(10, None);
        paid.id = 8;
        paid.class = LotClass::Paid;
        let mut lots = vec![paid, lot(4, Some(60))];
        let takes = adjust_down(&mut lots, Credits::from_whole(6), None, &order, t0()).unwrap();
        assert_eq!(takes, vec![Take { lot_id: 7, amount: Credits::from_whole(4) }, Take { lot_id: 8, amount: Credits::from_whole(2) }]);
        let takes = adjust_down(&mut lots, Credits::from_whole(3), Some(8), &order, t0()).unwrap();
        assert_eq!(takes, vec![Take { lot_id: 8, amount: Credits::from_whole(3) }]);
        assert_eq!(lots[0].remaining, Credits::from_whole(5));
        // More than the named lot holds, an unknown lot, an expired one: refused, nothing taken.
        let short = adjust_down(&mut lots, Credits::from_whole(6), Some(8), &order, t0());
        assert_eq!(short, Err(Insufficient::short(Credits::from_whole(6), Credits::from_whole(5))));
        assert_eq!(adjust_down(&mut lots, Credits::from_whole(1), Some(99), &order, t0()).unwrap_err().available, Credits::ZERO);
        let mut expired = vec![lot(4, Some(0))];
        assert_eq!(adjust_down(&mut expired, Credits::from_whole(1), Some(7), &order, t0()).unwrap_err().available, Credits::ZERO);
        assert_eq!(lots[0].remaining, Credits::from_whole(5));
    }

    #[test]
    fn a_void_takes_all_that_remains() {
        assert_eq!(void(&lot(4, Some(60)), Credits::ZERO, t0()), Ok(Credits::from_whole(4)));
        assert_eq!(void(&lot(4, None), Credits::ZERO, t0()), Ok(Credits::from_whole(4)));
    }

    #[test]
    fn an_empty_expired_or_held_lot_is_refused() {
        assert_eq!(void(&lot(0, None), Credits::ZERO, t0()), Err(VoidRefusal::NothingRemains { lot_id: 7 }));
        // At its expiry instant a lot is expired: the write-off owns it.
        assert_eq!(void(&lot(4, Some(0)), Credits::ZERO, t0()), Err(VoidRefusal::Expired { lot_id: 7, at: t0() }));
        let held = Credits::from_whole(2);
        assert_eq!(void(&lot(4, None), held, t0()), Err(VoidRefusal::Held { lot_id: 7, held }));
        // Held credits are refused even when nothing else remains: the release would bring them back.
        assert_eq!(void(&lot(0, None), held, t0()), Err(VoidRefusal::Held { lot_id: 7, held }));
    }

    #[test]
    fn an_expiry_moves_later_or_earlier() {
        let moved = change_expiry(&lot(4, Some(60)), Credits::ZERO, t0() + Duration::days(30), t0()).unwrap();
        assert_eq!(moved, ExpiryChange { from: Some(t0() + Duration::minutes(60)), to: t0() + Duration::days(30), expires_now: false });
        let moved = change_expiry(&lot(4, None), Credits::ZERO, t0() + Duration::minutes(5), t0()).unwrap();
        assert_eq!(moved, ExpiryChange { from: None, to: t0() + Duration::minutes(5), expires_now: false });
        // Empty but held from: a release brings credits back, so their expiry still matters.
        assert!(change_expiry(&lot(0, Some(60)), Credits::from_whole(1), t0() + Duration::days(1), t0()).is_ok());
    }

    #[test]
    fn an_expiry_moved_into_the_past_expires_the_lot_now() {
        for to in [t0() - Duration::days(3), t0()] {
            let moved = change_expiry(&lot(4, Some(60)), Credits::ZERO, to, t0()).unwrap();
            assert_eq!(moved, ExpiryChange { from: Some(t0() + Duration::minutes(60)), to: t0(), expires_now: true });
        }
    }

    #[test]
    fn an_expired_empty_unchanged_or_daily_lot_is_refused() {
        let later = t0() + Duration::days(1);
        // At its expiry instant a lot is expired: it is never reopened, written off yet or not.
        assert_eq!(change_expiry(&lot(4, Some(0)), Credits::ZERO, later, t0()), Err(ExpiryRefusal::Expired { lot_id: 7, at: t0() }));
        assert_eq!(change_expiry(&lot(0, Some(60)), Credits::ZERO, later, t0()), Err(ExpiryRefusal::NothingRemains { lot_id: 7 }));
        let same = t0() + Duration::minutes(60);
        assert_eq!(change_expiry(&lot(4, Some(60)), Credits::ZERO, same, t0()), Err(ExpiryRefusal::Unchanged { lot_id: 7, at: same }));
        let daily = Lot::of_the_day(9, Credits::from_whole(3), t0());
        assert_eq!(change_expiry(&daily, Credits::ZERO, later, t0()), Err(ExpiryRefusal::DailyFree { lot_id: 9 }));
    }
}
