//! Balances over time (issue 25): what a balance read at a past instant showed, answered from
//! the journal's recorded balances (`balance_after_micros`) without reading the account's history.
//!
//! The state at `at` is the account's journal in sequence order up to its newest entry recorded
//! at or before `at`. A read at `at` showed, of that state:
//! - available: the lots' credits as recorded (that entry's balance after), less lots whose
//!   expiry was at or before `at` (a read never counts them, written off or not), plus the parts
//!   of holds whose deadline had passed (a lapsed hold counts as available again, unless its lot
//!   expired too);
//! - held: the parts of holds made by `at`, not settled by then and before their deadline.
//!
//! The day's free credits a program offers before they are written (carat's virtual lot) are
//! not in it: they enter the journal when a spend first takes from them.

use crate::ledger::Credits;
use crate::service::accounts::AccountView;
use crate::service::{Engine, ServiceError};
use crate::store::balance_at::{self, HeldPart, Recorded};
use chrono::{DateTime, Utc};

/// What a balance read at `at` showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceAtView {
    pub at: DateTime<Utc>,
    /// What a spend could take at `at`.
    pub available: Credits,
    /// What open reservations held at `at`.
    pub held: Credits,
    /// The newest entry recorded at or before `at`, whose state this is; none before the first.
    pub entry_id: Option<i64>,
}

/// The rule, apart from the reads: the recorded balance, less what expired lots still held, with
/// the parts of the holds on the books split into held (before their deadline), available again
/// (lapsed, from a lot not expired at `at`) and neither (lapsed, from an expired lot).
pub fn balance_at(
    recorded: Option<Recorded>,
    expired_on_books: &[(i64, i64)],
    holds: &[HeldPart],
    at: DateTime<Utc>,
) -> Result<(i64, i64), ServiceError> {
    let mut available = recorded.map_or(0, |r| r.balance_after_micros);
    for (_, held_then) in expired_on_books {
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
        return Err(
            anyhow::anyhow!("balance at {at}: available {available}, held {held} micros: the journal disagrees with its lots").into()
        );
    }
    Ok((available, held))
}

impl Engine {
    /// What a balance read of `account` at `at` showed; none if the account did not exist yet.
    /// `at` later than `now` is refused: what a read will show is not recorded yet.
    pub async fn balance_at(
        &self,
        account: &AccountView,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<BalanceAtView>, ServiceError> {
        if at > now {
            return Err(ServiceError::bad_input("at is in the future: balanceAt answers for instants up to now"));
        }
        let at = crate::ledger::time::truncate(at);
        if at < account.created_at {
            return Ok(None);
        }
        let recorded = balance_at::last_recorded(&self.db, account.id, at).await?;
        let expired = match recorded {
            Some(entry) => balance_at::expired_on_books(&self.db, account.id, at, entry.entry_id).await?,
            None => Vec::new(),
        };
        let holds = balance_at::holds_on_books(&self.db, account.id, at).await?;
        let (available, held) = balance_at(recorded, &expired, &holds, at)?;
        Ok(Some(BalanceAtView {
            at,
            available: Credits::from_micros(available),
            held: Credits::from_micros(held),
            entry_id: recorded.map(|r| r.entry_id),
        }))
    }
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
        assert_eq!(balance_at(None, &[], &[], at).unwrap(), (0, 0));
        assert!(balance_at(recorded, &[(4, 101)], &[], at).is_err(), "a negative balance is a corrupt journal");
    }
}
