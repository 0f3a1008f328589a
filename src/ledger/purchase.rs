//! How a purchase moves between its statuses (`money::PurchaseStatus`), and when a pending one
//! stops waiting: pure rules, so the use cases, the expiry job and the model agree.
//!
//! ```text
//! pending --pay--> paid --refund--> refunded
//!    |--cancel--> cancelled
//!    |--fail----> failed
//!    '--expire--> expired --pay (late)--> paid
//! ```
//!
//! Cancelled, failed and refunded are final. Expired is final for everything but a payment:
//! a confirmation carries a payment reference, which is proof that the money was taken, so
//! the credits are owed even though the checkout's time ran out (pitfalls.md: money must never
//! be taken without the books saying so). A cancelled or failed purchase refuses it: the
//! product said the payment would not happen, and the mismatch is for a person to look at.

use crate::ledger::Validity;
use crate::ledger::money::PurchaseStatus;
use chrono::{DateTime, Duration, Utc};

/// What happens to a purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurchaseEvent {
    /// The payment was confirmed (`confirmPurchase`).
    Pay,
    /// The product called it off (`cancelPurchase`).
    Cancel,
    /// The payment failed (`failPurchase`).
    Fail,
    /// Its pending lifetime ran out.
    Expire,
    /// Money paid back (`refundPurchase`).
    Refund,
}

/// A transition the rules do not allow: the purchase stays as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a purchase that is {from} cannot be {}", past_tense(*event))]
pub struct NotAllowed {
    pub from: PurchaseStatus,
    pub event: PurchaseEvent,
}

fn past_tense(event: PurchaseEvent) -> &'static str {
    match event {
        PurchaseEvent::Pay => "paid",
        PurchaseEvent::Cancel => "cancelled",
        PurchaseEvent::Fail => "failed",
        PurchaseEvent::Expire => "expired",
        PurchaseEvent::Refund => "refunded",
    }
}

/// Where `event` takes a purchase that is `from`, or why it cannot.
pub fn transition(from: PurchaseStatus, event: PurchaseEvent) -> Result<PurchaseStatus, NotAllowed> {
    use PurchaseEvent as E;
    use PurchaseStatus as S;
    match (from, event) {
        (S::Pending, E::Pay) | (S::Expired, E::Pay) => Ok(S::Paid),
        (S::Pending, E::Cancel) => Ok(S::Cancelled),
        (S::Pending, E::Fail) => Ok(S::Failed),
        (S::Pending, E::Expire) => Ok(S::Expired),
        (S::Paid, E::Refund) => Ok(S::Refunded),
        _ => Err(NotAllowed { from, event }),
    }
}

impl PurchaseStatus {
    /// Ended without a payment: cancelled, failed or expired.
    pub fn ended_unpaid(self) -> bool {
        matches!(self, PurchaseStatus::Cancelled | PurchaseStatus::Failed | PurchaseStatus::Expired)
    }
}

/// The lifetime of a pending purchase as the program gives it: hours or days, from 1 hour to
/// 30 days (a checkout left open longer is abandoned; one that never ends piles up).
pub fn pending_lifetime(validity: Validity) -> Result<Duration, String> {
    let lifetime = match validity {
        Validity::Hours(h) => Duration::hours(i64::from(h)),
        Validity::Days(d) => Duration::days(i64::from(d)),
        other => return Err(format!("pending_purchase_lifetime must be hours or days, not {other}")),
    };
    if lifetime < Duration::hours(1) || lifetime > Duration::days(30) {
        return Err("pending_purchase_lifetime must be 1 hour to 30 days".into());
    }
    Ok(lifetime)
}

/// The exclusive instant at which a purchase created at `created_at` stops waiting for its
/// payment: at it, it is expired whether or not the job has marked it yet.
pub fn pending_until(created_at: DateTime<Utc>, lifetime: Duration) -> DateTime<Utc> {
    crate::ledger::time::truncate(created_at) + lifetime
}

/// Whether a pending purchase created at `created_at` has outlived `lifetime` at `now`.
pub fn is_past_lifetime(created_at: DateTime<Utc>, lifetime: Duration, now: DateTime<Utc>) -> bool {
    now >= pending_until(created_at, lifetime)
}

/// How many payments of an account failed in a row: its purchases newest first, counted back
/// to the latest one that was paid (refunded ones were paid). Cancelled, expired and pending
/// purchases neither count nor break the run: only a payment that went through does.
pub fn failures_in_a_row(newest_first: impl IntoIterator<Item = PurchaseStatus>) -> u32 {
    let mut failures = 0;
    for status in newest_first {
        match status {
            PurchaseStatus::Paid | PurchaseStatus::Refunded => break,
            PurchaseStatus::Failed => failures += 1,
            PurchaseStatus::Pending | PurchaseStatus::Cancelled | PurchaseStatus::Expired => {}
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use PurchaseEvent as E;
    use PurchaseStatus as S;

    const STATUSES: [S; 6] = [S::Pending, S::Paid, S::Refunded, S::Cancelled, S::Failed, S::Expired];
    const EVENTS: [E; 5] = [E::Pay, E::Cancel, E::Fail, E::Expire, E::Refund];

    #[test]
    fn a_pending_purchase_ends_one_way_each() {
        assert_eq!(transition(S::Pending, E::Pay), Ok(S::Paid));
        assert_eq!(transition(S::Pending, E::Cancel), Ok(S::Cancelled));
        assert_eq!(transition(S::Pending, E::Fail), Ok(S::Failed));
        assert_eq!(transition(S::Pending, E::Expire), Ok(S::Expired));
        assert_eq!(transition(S::Pending, E::Refund), Err(NotAllowed { from: S::Pending, event: E::Refund }));
    }

    #[test]
    fn nothing_leaves_an_end_but_a_refund_of_a_paid_one_and_a_late_payment() {
        let mut allowed = Vec::new();
        for from in STATUSES.into_iter().filter(|s| *s != S::Pending) {
            for event in EVENTS {
                if let Ok(to) = transition(from, event) {
                    allowed.push((from, event, to));
                }
            }
        }
        assert_eq!(allowed, vec![(S::Paid, E::Refund, S::Refunded), (S::Expired, E::Pay, S::Paid)]);
        for from in [S::Cancelled, S::Failed, S::Refunded] {
            for event in EVENTS {
                assert!(transition(from, event).is_err(), "{from} stays {from} on {event:?}");
            }
        }
    }

    #[test]
    fn refusals_say_what_was_refused() {
        let refused = transition(S::Cancelled, E::Pay).unwrap_err();
        assert_eq!(refused.to_string(), "a purchase that is cancelled cannot be paid");
        assert_eq!(transition(S::Paid, E::Cancel).unwrap_err().to_string(), "a purchase that is paid cannot be cancelled");
    }

    #[test]
    fn only_cancelled_failed_and_expired_ended_unpaid() {
        let unpaid: Vec<S> = STATUSES.into_iter().filter(|s| s.ended_unpaid()).collect();
        assert_eq!(unpaid, vec![S::Cancelled, S::Failed, S::Expired]);
    }

    #[test]
    fn statuses_are_stored_by_their_snake_case_names() {
        let names: Vec<String> = STATUSES.iter().map(|s| s.to_string()).collect();
        assert_eq!(names, ["pending", "paid", "refunded", "cancelled", "failed", "expired"]);
        for status in STATUSES {
            assert_eq!(status.to_string().parse::<S>(), Ok(status));
        }
    }

    #[test]
    fn the_lifetime_is_hours_or_days_within_bounds() {
        assert_eq!(pending_lifetime(Validity::Hours(24)), Ok(Duration::hours(24)));
        assert_eq!(pending_lifetime(Validity::Days(30)), Ok(Duration::days(30)));
        assert_eq!(pending_lifetime(Validity::Hours(1)), Ok(Duration::hours(1)));
        for refused in [Validity::Hours(0), Validity::Days(31), Validity::Never, Validity::Months(1), Validity::EndOfMonth] {
            assert!(pending_lifetime(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_purchase_expires_exactly_at_its_lifetime() {
        let created = DateTime::parse_from_rfc3339("2026-01-31T10:00:00.1234567Z").unwrap().to_utc();
        let until = pending_until(created, Duration::hours(24));
        assert_eq!(until, DateTime::parse_from_rfc3339("2026-02-01T10:00:00.123456Z").unwrap().to_utc(), "to the microsecond");
        assert!(!is_past_lifetime(created, Duration::hours(24), until - Duration::microseconds(1)));
        assert!(is_past_lifetime(created, Duration::hours(24), until));
    }

    #[test]
    fn failures_count_back_to_the_last_payment() {
        assert_eq!(failures_in_a_row([]), 0);
        assert_eq!(failures_in_a_row([S::Failed, S::Failed, S::Paid, S::Failed]), 2);
        assert_eq!(failures_in_a_row([S::Failed, S::Cancelled, S::Expired, S::Pending, S::Failed, S::Refunded, S::Failed]), 2);
        assert_eq!(failures_in_a_row([S::Paid, S::Failed, S::Failed, S::Failed]), 0);
        assert_eq!(failures_in_a_row([S::Failed; 3]), 3);
    }
}
