//! Operators' corrections of a ledger (issue 25): voiding what remains of a lot.
//!
//! A void takes a lot's remaining credits out of the account for good, in a VOID entry with the
//! operator's reason: a grant made by mistake, credits given to the wrong account, a fraud. What
//! was spent of the lot stays spent. Credits a reservation holds from the lot are not the lot's
//! to void while held: the void is refused until the hold is captured or released, so a later
//! release never brings voided credits back.

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
