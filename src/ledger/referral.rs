//! Referrals (arkain): where a referral's purchase bonus stands. The bonus is held from the
//! friend's first qualifying purchase until the program's hold has passed, then granted to both
//! sides, or cancelled if that purchase was refunded meanwhile.

/// Where a referral's purchase bonus stands; stored as its snake_case name (`none` before the
/// hold starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum BonusStatus {
    /// No qualifying first purchase yet: the hold has not started.
    #[strum(serialize = "none")]
    NotStarted,
    /// Held from the first qualifying purchase until the hold passes.
    Held,
    /// Granted to both sides once the hold passed with the purchase still paid.
    Granted,
    /// The purchase was refunded (or is gone) before the hold passed: nothing is granted.
    Cancelled,
}

impl BonusStatus {
    pub const ALL: [BonusStatus; 4] = [BonusStatus::NotStarted, BonusStatus::Held, BonusStatus::Granted, BonusStatus::Cancelled];
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts rows already hold: a change here would orphan them.
    #[test]
    fn statuses_are_stored_as_the_same_text() {
        let texts: Vec<&str> = BonusStatus::ALL.into_iter().map(<&str>::from).collect();
        assert_eq!(texts, ["none", "held", "granted", "cancelled"]);
        for status in BonusStatus::ALL {
            assert_eq!(status.to_string().parse::<BonusStatus>(), Ok(status));
        }
        assert!("released".parse::<BonusStatus>().is_err());
    }
}
