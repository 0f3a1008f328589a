//! Balances over time (issue 25): what a balance read at a past instant showed, from the
//! journal's recorded balances (`balance_after_micros`) and the few lots and holds that the
//! recorded balance counts differently from a read.
//!
//! The state at `at` is the account's journal in sequence order up to its newest entry recorded
//! at or before `at`. A read at `at` showed, of that state:
//! - available: the lots' credits as recorded (that entry's balance after), less the lots a read
//!   at `at` did not count: those whose expiry was at or before `at` (written off or not) and
//!   those whose start (`effectiveAt`) was after it; plus the parts of holds whose deadline had
//!   passed (a lapsed hold counts as available again, unless its lot expired too);
//! - held: the parts of holds made by `at`, not settled by then and before their deadline.
//!
//! The day's free credits a program offers before they are written (carat's virtual lot) are
//! not in it: they enter the journal when a spend first takes from them.

use chrono::{DateTime, Utc};

/// The newest entry recorded at or before an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub entry_id: i64,
    pub balance_after_micros: i64,
}

/// One held part of a reservation still on the books at the instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldPart {
    pub deadline: DateTime<Utc>,
    pub micros: i64,
    pub lot_expires_at: Option<DateTime<Utc>>,
}

/// The recorded state and the read disagree: a journal whose lots do not add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("balance at {at}: available {available}, held {held} micros: the journal disagrees with its lots")]
pub struct Disagrees {
    pub at: DateTime<Utc>,
    pub available: i64,
    pub held: i64,
}

/// (available, held) in micros at `at`: the recorded balance, less what the lots a read did not
/// count held then (`not_counted`: (lot id, micros), expired or upcoming at `at`), with the parts
/// of the holds on the books split into held (before their deadline), available again (lapsed,
/// from a lot not expired at `at`) and neither (lapsed, from an expired lot).
pub fn balance_at(
    recorded: Option<Recorded>,
    not_counted: &[(i64, i64)],
    holds: &[HeldPart],
    at: DateTime<Utc>,
) -> Result<(i64, i64), Disagrees> {
    let mut available = recorded.map_or(0, |r| r.balance_after_micros);
    for (_, held_then) in not_counted {
        available -= held_then;
    }
    let mut held = 0i64;
    for part in holds {
        if part.deadline > at {
            held += part.micros;
        } else if part.lot_expires_at.is_none_or(|expiry| expiry > at) {
            available += part.micros;
        }
    }
    if available < 0 || held < 0 {
        return Err(Disagrees { at, available, held });
    }
    Ok((available, held))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn expired_lots_leave_and_lapsed_holds_come_back_unless_their_lot_expired() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let recorded = Some(Recorded { entry_id: 9, balance_after_micros: 100 });
        let part = |deadline: DateTime<Utc>, micros, lot_expires_at| HeldPart { deadline, micros, lot_expires_at };
        let holds = [
            part(at + Duration::hours(1), 7, None),
            part(at, 5, None),
            part(at - Duration::hours(1), 3, Some(at)),
            part(at - Duration::hours(1), 2, Some(at + Duration::seconds(1))),
        ];
        // 100 recorded, 30 of it on a lot past expiry; 7 held; 5 + 2 lapsed back; 3 lapsed onto an expired lot.
        assert_eq!(balance_at(recorded, &[(4, 30)], &holds, at).unwrap(), (77, 7));
        // An upcoming lot of 20 leaves as an expired one does.
        assert_eq!(balance_at(recorded, &[(4, 30), (6, 20)], &holds, at).unwrap(), (57, 7));
        assert_eq!(balance_at(None, &[], &[], at).unwrap(), (0, 0));
        assert!(balance_at(recorded, &[(4, 101)], &[], at).is_err(), "a negative balance is a corrupt journal");
    }
}
