//! Reservations (domain.md §4, *beyond*): a hold takes credits from lots in the program's order
//! at once; settling it charges a part and gives the rest back to the lots it came from. These
//! are the rules of which part is which, with no database in them.

use crate::ledger::Credits;
use chrono::{DateTime, Duration, Utc};

/// How long a hold lasts when the caller does not say.
pub const DEFAULT_HOLD: Duration = Duration::hours(1);
/// The longest hold: credits held longer than a week are better bought back by a new hold.
pub const MAX_HOLD: Duration = Duration::days(7);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReservationStatus {
    Held,
    Captured,
    Released,
    Expired,
}

impl ReservationStatus {
    pub const ALL: [ReservationStatus; 4] =
        [ReservationStatus::Held, ReservationStatus::Captured, ReservationStatus::Released, ReservationStatus::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Held => "held",
            ReservationStatus::Captured => "captured",
            ReservationStatus::Released => "released",
            ReservationStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<ReservationStatus> {
        ReservationStatus::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

/// The deadline of a hold made at `now` for `hold_for` (the default when none), or why not.
pub fn deadline(now: DateTime<Utc>, hold_for: Option<Duration>) -> Result<DateTime<Utc>, String> {
    let hold_for = hold_for.unwrap_or(DEFAULT_HOLD);
    if hold_for <= Duration::zero() || hold_for > MAX_HOLD {
        return Err(format!("a hold lasts from 1 second to {} days", MAX_HOLD.num_days()));
    }
    Ok(now + hold_for)
}

/// Parts of a hold: (lot id, amount), in the order they were taken.
pub type Parts = Vec<(i64, Credits)>;

/// Splits a hold's parts, in the order they were taken, into what a capture of `captured`
/// charges and what goes back. The charge comes from the first parts taken: those are the lots
/// the program would have spent first, so a capture spends exactly what a spend of that amount
/// at the hold's time would have spent.
pub fn split(parts: &[(i64, Credits)], captured: Credits) -> (Parts, Parts) {
    let held = parts.iter().fold(Credits::ZERO, |sum, (_, amount)| sum.checked_add(*amount).expect("a hold's parts fit"));
    assert!(captured <= held, "a capture never exceeds the hold");
    let (mut charged, mut returned) = (Vec::new(), Vec::new());
    let mut left = captured;
    for &(lot, amount) in parts {
        let take = amount.min(left);
        left = left.checked_sub(take).expect("take <= left");
        if !take.is_zero() {
            charged.push((lot, take));
        }
        let back = amount.checked_sub(take).expect("take <= amount");
        if !back.is_zero() {
            returned.push((lot, back));
        }
    }
    assert!(left.is_zero());
    (charged, returned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(micros: i64) -> Credits {
        Credits::from_micros(micros)
    }

    #[test]
    fn a_capture_charges_the_first_parts_and_returns_the_rest() {
        let parts = [(1, c(300)), (2, c(500)), (3, c(200))];
        assert_eq!(split(&parts, c(600)), (vec![(1, c(300)), (2, c(300))], vec![(2, c(200)), (3, c(200))]));
        assert_eq!(split(&parts, Credits::ZERO), (vec![], parts.to_vec()));
        assert_eq!(split(&parts, c(1000)), (parts.to_vec(), vec![]));
    }

    #[test]
    fn holds_are_bounded() {
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 29, 12, 0, 0).unwrap();
        assert_eq!(deadline(now, None), Ok(now + Duration::hours(1)));
        assert_eq!(deadline(now, Some(Duration::days(7))), Ok(now + Duration::days(7)));
        assert!(deadline(now, Some(Duration::days(7) + Duration::seconds(1))).is_err());
        assert!(deadline(now, Some(Duration::zero())).is_err());
    }

    proptest! {
        #[test]
        fn a_split_conserves_every_part(amounts in proptest::collection::vec(1i64..1_000_000, 1..8), fraction in 0u32..=100) {
            let parts: Vec<_> = amounts.iter().enumerate().map(|(i, a)| (i as i64, c(*a))).collect();
            let held: i64 = amounts.iter().sum();
            let captured = c(held * i64::from(fraction) / 100);
            let (charged, returned) = split(&parts, captured);
            let sum = |v: &[(i64, Credits)]| v.iter().map(|(_, a)| a.micros()).sum::<i64>();
            prop_assert_eq!(sum(&charged), captured.micros());
            prop_assert_eq!(sum(&charged) + sum(&returned), held);
            for (lot, amount) in &parts {
                let of = |v: &[(i64, Credits)]| v.iter().filter(|(l, _)| l == lot).map(|(_, a)| a.micros()).sum::<i64>();
                prop_assert_eq!(of(&charged) + of(&returned), amount.micros());
            }
        }
    }
}
