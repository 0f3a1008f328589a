//! Operators' corrections of a ledger (issue 25): voiding what remains of a lot, and debiting
//! an account by hand.
//!
//! A void takes a lot's remaining credits out of the account for good, in a VOID entry with the
//! operator's reason: a grant made by mistake, credits given to the wrong account, a fraud. What
//! was spent of the lot stays spent. Credits a reservation holds from the lot are not the lot's
//! to void while held: the void is refused until the hold is captured or released, so a later
//! release never brings voided credits back.

use crate::ledger::lot::{ConsumptionOrder, Insufficient, Take, take};
use crate::ledger::{Credits, Lot};
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
        None => take(lots, amount, order, now),
        Some(id) => match lots.iter_mut().find(|l| l.id == id) {
            Some(lot) => take(std::slice::from_mut(lot), amount, order, now),
            None => Err(Insufficient { requested: amount, available: Credits::ZERO }),
        },
    }
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
        assert_eq!(short, Err(Insufficient { requested: Credits::from_whole(6), available: Credits::from_whole(5) }));
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
}
