//! Refund rules (domain.md §5): how much money comes back for a purchase, or why none does.

use crate::ledger::Credits;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundPolicy {
    /// arkain: the unused part, pro rata: ceil(billed / bought x unused), in minor units.
    ProRata,
    /// carat: the whole amount, only if nothing of the purchase was used.
    UnusedOnly,
    /// archipelag: never.
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, serde::Serialize, Deserialize)]
pub enum RefundRefusal {
    #[error("purchases are not refundable")]
    NotRefundable,
    #[error("the refund window has closed")]
    WindowClosed,
    #[error("part of this purchase was used; only an unused purchase is refunded")]
    PartlyUsed,
    #[error("nothing of this purchase is left to refund")]
    NothingLeft,
    #[error("the balance is below the promotional credits granted with this purchase")]
    PromotionalCreditsSpent,
    #[error("the purchase is not paid, or already refunded")]
    NotPaid,
    /// A refund made at the payment provider (`external_refund_take`) stands for more credits
    /// than the purchase has left unused.
    #[error("the money refunded stands for more credits than are left unused of this purchase")]
    ExceedsUnused,
}

/// The money refunded for `unused` of `bought` credits billed `billed_minor`.
pub fn refund_minor(policy: RefundPolicy, billed_minor: i64, bought: Credits, unused: Credits) -> Result<i64, RefundRefusal> {
    assert!(unused <= bought, "a purchase never has more unused credits than it bought");
    assert!(!bought.is_zero() && billed_minor > 0);
    match policy {
        RefundPolicy::Never => Err(RefundRefusal::NotRefundable),
        _ if unused.is_zero() => Err(RefundRefusal::NothingLeft),
        RefundPolicy::UnusedOnly if unused != bought => Err(RefundRefusal::PartlyUsed),
        RefundPolicy::UnusedOnly => Ok(billed_minor),
        RefundPolicy::ProRata => {
            // Exact integer arithmetic, rounded up to the whole minor unit.
            let numerator = i128::from(billed_minor) * i128::from(unused.micros());
            let denominator = i128::from(bought.micros());
            let refund = (numerator + denominator - 1) / denominator;
            Ok(i64::try_from(refund).expect("a refund never exceeds what was billed"))
        }
    }
}

/// The credits a refund made at the payment provider takes back (Stripe's dashboard,
/// `service::stripe`): in proportion to the money, `refunded_total_minor` of `billed_minor`
/// refunded so far (`refunded_before_minor` of it already applied), rounded up to the
/// micro-credit, so that the parts of several partial refunds add up to exactly what the whole
/// stands for. The program's rules still hold: a program that never refunds, or refunds only an
/// unused purchase, refuses what it would refuse a user, and no refund takes more than the
/// purchase has left unused (`unused`).
pub fn external_refund_take(
    policy: RefundPolicy,
    bought: Credits,
    billed_minor: i64,
    refunded_before_minor: i64,
    refunded_total_minor: i64,
    unused: Credits,
) -> Result<Credits, RefundRefusal> {
    assert!(!bought.is_zero() && billed_minor > 0);
    assert!(0 <= refunded_before_minor && refunded_before_minor < refunded_total_minor);
    let stands_for = |minor: i64| {
        let minor = i128::from(minor.min(billed_minor));
        let numerator = i128::from(bought.micros()) * minor;
        let denominator = i128::from(billed_minor);
        Credits::from_micros(i64::try_from((numerator + denominator - 1) / denominator).expect("at most what was bought"))
    };
    match policy {
        RefundPolicy::Never => return Err(RefundRefusal::NotRefundable),
        RefundPolicy::UnusedOnly if refunded_before_minor == 0 && unused != bought => return Err(RefundRefusal::PartlyUsed),
        _ => {}
    }
    let take = stands_for(refunded_total_minor).checked_sub(stands_for(refunded_before_minor)).expect("more money stands for more credits");
    if take > unused {
        return Err(RefundRefusal::ExceedsUnused);
    }
    Ok(take)
}

/// How a refund takes back the promotional credits of its purchase that were already spent
/// (domain.md §5): out of the purchase's unused credits first, before the refund is computed,
/// then out of the account's other credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpentBonus {
    /// The purchase's unused credits left to refund.
    pub unused_after: Credits,
    /// Taken from the purchase's unused credits to make up for the spent bonus.
    pub from_unused: Credits,
    /// Still to take from the account's other credits, in the program's order.
    pub from_others: Credits,
}

pub fn take_back_spent_bonus(unused: Credits, spent_bonus: Credits) -> SpentBonus {
    let from_unused = unused.min(spent_bonus);
    SpentBonus {
        unused_after: unused.checked_sub(from_unused).expect("min"),
        from_unused,
        from_others: spent_bonus.checked_sub(from_unused).expect("min"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_provider_refund_takes_credits_in_proportion_and_partial_ones_add_up() {
        use super::*;
        let bought = Credits::from_micros(100_000_000); // 100 credits for 999 cents
        let take = |before, total, unused| external_refund_take(RefundPolicy::ProRata, bought, 999, before, total, unused);
        assert_eq!(take(0, 999, bought), Ok(bought));
        // 333 + 333 + 333 cents: each part rounded up, the parts add up to the whole.
        let parts = [take(0, 333, bought).unwrap(), take(333, 666, bought).unwrap(), take(666, 999, bought).unwrap()];
        assert_eq!(parts.iter().map(|c| c.micros()).sum::<i64>(), bought.micros());
        assert_eq!(parts[0], Credits::from_micros(33_333_334));
        // More refunded than billed counts as the whole.
        assert_eq!(take(0, 5_000, bought), Ok(bought));
        assert_eq!(take(0, 999, Credits::from_micros(99_000_000)), Err(RefundRefusal::ExceedsUnused));
        assert_eq!(external_refund_take(RefundPolicy::Never, bought, 999, 0, 999, bought), Err(RefundRefusal::NotRefundable));
        let partly = Credits::from_micros(50_000_000);
        assert_eq!(external_refund_take(RefundPolicy::UnusedOnly, bought, 999, 0, 100, partly), Err(RefundRefusal::PartlyUsed));
        assert_eq!(external_refund_take(RefundPolicy::UnusedOnly, bought, 999, 0, 999, bought), Ok(bought));
    }

    use super::*;
    use proptest::prelude::*;

    fn c(n: i64) -> Credits {
        Credits::from_whole(n)
    }

    #[test]
    fn arkain_refunds_the_unused_part_rounded_up() {
        // 100 credits for $2.00, 33 left: 200 x 33 / 100 = 66 cents exactly.
        assert_eq!(refund_minor(RefundPolicy::ProRata, 200, c(100), c(33)), Ok(66));
        // 75 credits for $1.50, 1 left: 2 cents exactly; 0.5 left: 1 cent exactly.
        assert_eq!(refund_minor(RefundPolicy::ProRata, 150, c(75), c(1)), Ok(2));
        // 3 credits for 10 cents, 1 left: 3.33... rounds up to 4.
        assert_eq!(refund_minor(RefundPolicy::ProRata, 10, c(3), c(1)), Ok(4));
        assert_eq!(refund_minor(RefundPolicy::ProRata, 10, c(3), Credits::from_micros(1)), Ok(1));
        assert_eq!(refund_minor(RefundPolicy::ProRata, 10, c(3), c(3)), Ok(10));
        assert_eq!(refund_minor(RefundPolicy::ProRata, 10, c(3), Credits::ZERO), Err(RefundRefusal::NothingLeft));
    }

    #[test]
    fn carat_refunds_only_untouched_purchases_and_archipelag_never() {
        assert_eq!(refund_minor(RefundPolicy::UnusedOnly, 999, c(5000), c(5000)), Ok(999));
        assert_eq!(refund_minor(RefundPolicy::UnusedOnly, 999, c(5000), c(4999)), Err(RefundRefusal::PartlyUsed));
        assert_eq!(refund_minor(RefundPolicy::Never, 500, c(500), c(500)), Err(RefundRefusal::NotRefundable));
    }

    #[test]
    fn a_spent_bonus_comes_out_of_the_unused_credits_before_the_refund_is_computed() {
        // domain.md §5: buy 100 for $2.00 with a 30 bonus, spend 40 (30 bonus, 10 bought).
        let taken = take_back_spent_bonus(c(90), c(30));
        assert_eq!(taken, SpentBonus { unused_after: c(60), from_unused: c(30), from_others: Credits::ZERO });
        assert_eq!(refund_minor(RefundPolicy::ProRata, 200, c(100), taken.unused_after), Ok(120));
        // Spend 120 (30 bonus, 90 bought): 10 unused cover 10 of the bonus, 20 come from elsewhere.
        let taken = take_back_spent_bonus(c(10), c(30));
        assert_eq!(taken, SpentBonus { unused_after: Credits::ZERO, from_unused: c(10), from_others: c(20) });
    }

    proptest! {
        #[test]
        fn a_pro_rata_refund_never_exceeds_the_bill_nor_falls_short_of_the_exact_share(
            billed in 1i64..10_000_000, bought in 1i64..1_000_000_000_000, unused_per_million in 0i64..=1_000_000
        ) {
            let bought = Credits::from_micros(bought);
            let unused = Credits::from_micros((i128::from(bought.micros()) * i128::from(unused_per_million) / 1_000_000) as i64);
            prop_assume!(!unused.is_zero());
            let refund = refund_minor(RefundPolicy::ProRata, billed, bought, unused).unwrap();
            prop_assert!(refund <= billed);
            // refund - 1 < exact share <= refund
            let exact_times_bought = i128::from(billed) * i128::from(unused.micros());
            prop_assert!(i128::from(refund) * i128::from(bought.micros()) >= exact_times_bought);
            prop_assert!(i128::from(refund - 1) * i128::from(bought.micros()) < exact_times_bought);
        }
    }
}
