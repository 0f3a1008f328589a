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
