//! Metered resources: container tiers and add-ons per hour, storage over the quota per GB-hour,
//! traffic over the free allowance per GB.

use super::rounding::round_once;
use super::{MAX_PRICE_ENTRIES, PricingError, check_code, check_name, check_rate};
use crate::ledger::{AmountError, Credits};
use rust_decimal::Decimal;
use serde::Deserialize;

/// Time is charged per second of an hourly rate.
pub const SECONDS_PER_HOUR: u64 = 3600;
/// Storage and traffic count decimal gigabytes: 1 GB = 10^9 bytes.
pub const BYTES_PER_GB: u64 = 1_000_000_000;

/// A container performance tier, priced per hour and prorated per second.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerTier {
    pub code: String,
    pub name: String,
    pub credits_per_hour: Decimal,
    /// The plans that may run it; None: every plan.
    #[serde(default)]
    pub plans: Option<Vec<String>>,
}

impl ContainerTier {
    pub fn allows(&self, plan: &str) -> bool {
        self.plans.as_ref().is_none_or(|plans| plans.iter().any(|p| p == plan))
    }
}

/// An add-on billed per hour on top of a container's tier, free on some tiers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddOn {
    pub code: String,
    pub name: String,
    pub credits_per_hour: Decimal,
    #[serde(default)]
    pub free_on_tiers: Vec<String>,
}

/// Storage over the plan's free quota (plans' `storage_quota_gb`), over all containers together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageRate {
    pub credits_per_gb_hour: Decimal,
}

/// Traffic over a free monthly allowance, prorated per byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficRate {
    pub credits_per_gb: Decimal,
    pub free_bytes_per_month: u64,
}

/// Metered resource rates (arkain). Programs without metered resources have none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metering {
    tiers: Vec<ContainerTier>,
    add_ons: Vec<AddOn>,
    storage: StorageRate,
    traffic: TrafficRate,
}

impl Metering {
    /// Checks codes and rates; which plans exist is the program's to check.
    pub fn new(tiers: Vec<ContainerTier>, add_ons: Vec<AddOn>, storage: StorageRate, traffic: TrafficRate) -> Result<Metering, String> {
        if tiers.is_empty() || tiers.len() > MAX_PRICE_ENTRIES || add_ons.len() > MAX_PRICE_ENTRIES {
            return Err(format!("metering needs 1 to {MAX_PRICE_ENTRIES} tiers and at most {MAX_PRICE_ENTRIES} add-ons"));
        }
        for tier in &tiers {
            check_code("tier", &tier.code)?;
            check_name(&tier.code, &tier.name)?;
            check_rate(&tier.code, tier.credits_per_hour)?;
            if tiers.iter().filter(|t| t.code == tier.code).count() > 1 {
                return Err(format!("tier {} is listed twice", tier.code));
            }
            if tier.plans.as_ref().is_some_and(|plans| plans.is_empty()) {
                return Err(format!("tier {}: an empty plans list would make it unusable; omit it for every plan", tier.code));
            }
        }
        for add_on in &add_ons {
            check_code("add-on", &add_on.code)?;
            check_name(&add_on.code, &add_on.name)?;
            check_rate(&add_on.code, add_on.credits_per_hour)?;
            if add_ons.iter().filter(|a| a.code == add_on.code).count() > 1 {
                return Err(format!("add-on {} is listed twice", add_on.code));
            }
            if let Some(unknown) = add_on.free_on_tiers.iter().find(|t| !tiers.iter().any(|tier| tier.code == **t)) {
                return Err(format!("add-on {}: free_on_tiers names unknown tier {unknown:?}", add_on.code));
            }
        }
        check_rate("storage.credits_per_gb_hour", storage.credits_per_gb_hour)?;
        check_rate("traffic.credits_per_gb", traffic.credits_per_gb)?;
        Ok(Metering { tiers, add_ons, storage, traffic })
    }

    pub fn tiers(&self) -> &[ContainerTier] {
        &self.tiers
    }

    pub fn add_ons(&self) -> &[AddOn] {
        &self.add_ons
    }

    pub fn storage(&self) -> StorageRate {
        self.storage
    }

    pub fn traffic(&self) -> TrafficRate {
        self.traffic
    }

    pub fn tier(&self, code: &str) -> Result<&ContainerTier, PricingError> {
        self.tiers.iter().find(|t| t.code == code).ok_or_else(|| PricingError::UnknownTier(code.to_string()))
    }

    pub fn add_on(&self, code: &str) -> Result<&AddOn, PricingError> {
        self.add_ons.iter().find(|a| a.code == code).ok_or_else(|| PricingError::UnknownAddOn(code.to_string()))
    }

    /// The tier, if `plan` may start a container on it (XLarge and GPU are for Membership only).
    /// Charging time already used does not check the plan: that usage happened.
    pub fn tier_for_plan(&self, code: &str, plan: &str) -> Result<&ContainerTier, PricingError> {
        let tier = self.tier(code)?;
        if !tier.allows(plan) {
            return Err(PricingError::TierNotOnPlan { tier: code.to_string(), plan: plan.to_string() });
        }
        Ok(tier)
    }
}

/// Container time: `credits per hour x seconds / 3600`, rounded once.
pub fn container_charge(metering: &Metering, tier: &str, seconds: u64) -> Result<Credits, PricingError> {
    let tier = metering.tier(tier)?;
    round_once([[tier.credits_per_hour, seconds.into()]], SECONDS_PER_HOUR)
}

/// An add-on's time on a container of `tier`: zero on tiers that include it (Code Supporter on GPU).
pub fn add_on_charge(metering: &Metering, add_on: &str, tier: &str, seconds: u64) -> Result<Credits, PricingError> {
    let add_on = metering.add_on(add_on)?;
    let tier = metering.tier(tier)?;
    if add_on.free_on_tiers.contains(&tier.code) {
        return Ok(Credits::ZERO);
    }
    round_once([[add_on.credits_per_hour, seconds.into()]], SECONDS_PER_HOUR)
}

/// The account's stored bytes (all containers together), unchanged for `seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageInterval {
    pub bytes: u64,
    pub seconds: u64,
}

/// GB-seconds over the quota: the quota applies at every instant, so each interval counts only
/// what it stored above the quota. Exact (a GB-second is 10^9 byte-seconds).
pub fn gb_seconds_over_quota(quota_gb: Decimal, intervals: &[StorageInterval]) -> Result<Decimal, PricingError> {
    let quota_bytes = gb_to_bytes(quota_gb).ok_or(PricingError::InvalidQuantity("storage quota"))?;
    let mut byte_seconds: u128 = 0;
    for interval in intervals {
        let over = u128::from(interval.bytes.saturating_sub(quota_bytes));
        byte_seconds = over.checked_mul(interval.seconds.into()).and_then(|b| byte_seconds.checked_add(b)).ok_or(AmountError::TooLarge)?;
    }
    let byte_seconds = i128::try_from(byte_seconds).map_err(|_| AmountError::TooLarge)?;
    Ok(Decimal::try_from_i128_with_scale(byte_seconds, 9).map_err(|_| AmountError::TooLarge)?.normalize())
}

/// Storage over the quota: `credits per GB-hour x GB-seconds / 3600`, rounded once.
pub fn storage_charge(metering: &Metering, gb_seconds_over_quota: Decimal) -> Result<Credits, PricingError> {
    if gb_seconds_over_quota < Decimal::ZERO {
        return Err(PricingError::InvalidQuantity("GB-seconds"));
    }
    round_once([[metering.storage.credits_per_gb_hour, gb_seconds_over_quota]], SECONDS_PER_HOUR)
}

/// Traffic of `bytes` after `bytes_earlier_this_month`: only the bytes past the month's free
/// allowance are charged, per byte, so a sample crossing the line pays for its part above it.
pub fn traffic_charge(metering: &Metering, bytes_earlier_this_month: u64, bytes: u64) -> Result<Credits, PricingError> {
    let free = u128::from(metering.traffic.free_bytes_per_month);
    let before = u128::from(bytes_earlier_this_month);
    let after = before + u128::from(bytes);
    let charged = after.saturating_sub(free) - before.saturating_sub(free);
    let charged = u64::try_from(charged).expect("never more than `bytes`");
    round_once([[metering.traffic.credits_per_gb, charged.into()]], BYTES_PER_GB)
}

/// Whole bytes in `gb` decimal gigabytes; None when negative, finer than a byte or too large.
pub fn gb_to_bytes(gb: Decimal) -> Option<u64> {
    let gb = gb.normalize();
    if gb < Decimal::ZERO || gb.scale() > 9 {
        return None;
    }
    let bytes = gb.mantissa().checked_mul(10i128.pow(9 - gb.scale()))?;
    u64::try_from(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::pricing::test_support::{arkain_metering, credits, dec};
    use proptest::prelude::*;

    #[test]
    fn container_time_is_prorated_per_second() {
        let metering = arkain_metering();
        assert_eq!(container_charge(&metering, "micro", 90 * 60).unwrap(), credits("2.94"));
        // 6.80 / 3600 = 0.0018888.. -> 0.001889.
        assert_eq!(container_charge(&metering, "small", 1).unwrap(), credits("0.001889"));
        assert_eq!(container_charge(&metering, "small", 3600).unwrap(), credits("6.8"));
        assert_eq!(container_charge(&metering, "micro", 0).unwrap(), Credits::ZERO);
        assert_eq!(container_charge(&metering, "huge", 1), Err(PricingError::UnknownTier("huge".into())));
    }

    #[test]
    fn code_supporter_costs_extra_except_on_gpu() {
        let metering = arkain_metering();
        assert_eq!(add_on_charge(&metering, "code_supporter", "micro", 90 * 60).unwrap(), credits("2.94"));
        assert_eq!(add_on_charge(&metering, "code_supporter", "gpu_basic", 3600).unwrap(), Credits::ZERO);
        assert_eq!(add_on_charge(&metering, "copilot", "micro", 1), Err(PricingError::UnknownAddOn("copilot".into())));
    }

    #[test]
    fn membership_only_tiers() {
        let metering = arkain_metering();
        assert!(metering.tier_for_plan("gpu_basic", "membership").is_ok());
        assert!(metering.tier_for_plan("micro", "free").is_ok());
        assert_eq!(
            metering.tier_for_plan("gpu_basic", "free"),
            Err(PricingError::TierNotOnPlan { tier: "gpu_basic".into(), plan: "free".into() })
        );
    }

    #[test]
    fn a_month_of_one_gb_over_the_quota_is_12_96() {
        let metering = arkain_metering();
        let thirty_days = 30 * 24 * 3600;
        let gb = |n: u64| n * BYTES_PER_GB;
        // Free plan, 5 GB free: 6 GB stored for 30 days is 720 GB-hours over; x 0.018 = 12.96.
        let over = gb_seconds_over_quota(dec("5"), &[StorageInterval { bytes: gb(6), seconds: thirty_days }]).unwrap();
        assert_eq!(over, Decimal::from(thirty_days));
        assert_eq!(storage_charge(&metering, over).unwrap(), credits("12.96"));
        // The quota applies at every instant: 20 days at 4 GB do not offset 10 days at 8 GB.
        let day = 24 * 3600;
        let intervals = [StorageInterval { bytes: gb(4), seconds: 20 * day }, StorageInterval { bytes: gb(8), seconds: 10 * day }];
        let over = gb_seconds_over_quota(dec("5"), &intervals).unwrap();
        assert_eq!(storage_charge(&metering, over).unwrap(), credits("12.96"), "3 GB over for 10 days is 720 GB-hours");
        // 1.5 GB over for 2.25 hours: 3.375 GB-hours x 0.018 = 0.06075.
        let over = gb_seconds_over_quota(dec("15"), &[StorageInterval { bytes: 16_500_000_000, seconds: 8100 }]).unwrap();
        assert_eq!(storage_charge(&metering, over).unwrap(), credits("0.06075"));
        // One byte over for one second: 0.018 / 3600 / 10^9, rounds to nothing.
        let over = gb_seconds_over_quota(dec("5"), &[StorageInterval { bytes: gb(5) + 1, seconds: 1 }]).unwrap();
        assert_eq!(over, dec("0.000000001"));
        assert_eq!(storage_charge(&metering, over).unwrap(), Credits::ZERO);
        assert_eq!(storage_charge(&metering, dec("-1")), Err(PricingError::InvalidQuantity("GB-seconds")));
        assert_eq!(gb_seconds_over_quota(dec("0.0000000001"), &[]), Err(PricingError::InvalidQuantity("storage quota")));
    }

    #[test]
    fn traffic_is_charged_per_byte_past_the_free_10_gb() {
        let metering = arkain_metering();
        let gb = |n: u64| n * BYTES_PER_GB;
        assert_eq!(traffic_charge(&metering, 0, gb(10)).unwrap(), Credits::ZERO, "within the allowance");
        // 9.5 GB used earlier, 1 GB now: half a GB is over the line, 0.5 x 8 = 4.
        assert_eq!(traffic_charge(&metering, 9_500_000_000, gb(1)).unwrap(), Credits::from_whole(4));
        assert_eq!(traffic_charge(&metering, gb(12), gb(1)).unwrap(), Credits::from_whole(8), "wholly over");
        // 123,456 bytes: 8 x 0.000123456 = 0.000987648 -> 0.000988.
        assert_eq!(traffic_charge(&metering, gb(10), 123_456).unwrap(), credits("0.000988"));
        assert_eq!(traffic_charge(&metering, u64::MAX, u64::MAX), Err(PricingError::Amount(AmountError::TooLarge)));
    }

    #[test]
    fn gigabytes_convert_to_whole_bytes() {
        assert_eq!(gb_to_bytes(dec("15")), Some(15_000_000_000));
        assert_eq!(gb_to_bytes(dec("0.5")), Some(500_000_000));
        assert_eq!(gb_to_bytes(dec("0.0000000001")), None);
        assert_eq!(gb_to_bytes(dec("-1")), None);
    }

    #[test]
    fn metering_validation() {
        let m = arkain_metering();
        let (storage, traffic) = (m.storage(), m.traffic());
        let mut add_on = m.add_ons()[0].clone();
        add_on.free_on_tiers = vec!["tpu".into()];
        assert!(Metering::new(m.tiers().to_vec(), vec![add_on], storage, traffic).is_err(), "free on an unknown tier");
        assert!(Metering::new(vec![], vec![], storage, traffic).is_err());
        assert!(Metering::new([m.tiers(), m.tiers()].concat(), vec![], storage, traffic).is_err(), "tiers listed twice");
        let free = TrafficRate { credits_per_gb: Decimal::ZERO, ..traffic };
        assert!(Metering::new(m.tiers().to_vec(), vec![], storage, free).is_err(), "rates are positive");
    }

    proptest! {
        /// Prorating per second never drifts more than one rounding from the hourly rate.
        #[test]
        fn whole_hours_cost_the_hourly_rate(hours in 0u64..10_000) {
            let metering = arkain_metering();
            let expected = Credits::charge(dec("6.80"), Decimal::from(hours)).unwrap();
            prop_assert_eq!(container_charge(&metering, "small", hours * 3600).unwrap(), expected);
        }
    }
}
