//! The compute market (domain.md §4 "Prices", archipelag): providers ask a price per workload, a
//! job goes to the cheapest available provider whose final price is at or under its budget.
//! Pure functions over offers and amounts; no database, no clock.
//!
//! # The one rounding
//!
//! Every amount here is computed exactly, in integers of micro-credits, and rounded once, half up,
//! to 0.000001 credit (domain.md §2), like [`Credits::charge`]:
//!
//! - a final price: `ask x hardware multiplier x surge`;
//! - a market rate's average: `sum of asks / number of providers`;
//! - a suggested bid: `average x 1.05`;
//! - a platform fee: `price x fee rate`; the provider gets the exact rest, so the two always add
//!   up to the price. Half a micro-credit of fee rounds up, to the platform: a price of 0.000001
//!   at a fee rate of 0.5 is a fee of 0.000001 and nothing for the provider.
//!
//! # Choosing a provider
//!
//! [`choose`] takes the offers for one workload and the job's budget (see [`resolve_budget`]):
//!
//! 1. no offer at all: [`NoMatch::NoProviders`];
//! 2. the cheapest available offer whose final price is at or under the budget wins, ties by
//!    provider id ascending;
//! 3. else, if some offer is within the budget but every such offer is busy: [`NoMatch::AllBusy`];
//! 4. else [`NoMatch::OverBudget`] with the cheapest available final price (the cheapest overall
//!    when every offer is busy).
//!
//! A final price over the largest amount one operation may move ([`MAX_OPERATION_CREDITS`]) is
//! never within a budget.
//!
//! [`MAX_OPERATION_CREDITS`]: crate::ledger::amount::MAX_OPERATION_CREDITS

use crate::ledger::amount::MAX_OPERATION_MICROS;
use crate::ledger::{AmountError, Credits};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A batch submission holds 1 to 100 inputs.
pub const MAX_BATCH: usize = 100;
/// A job's priority is 0 to 100.
pub const MAX_PRIORITY: u8 = 100;
/// The price factor when demand outruns capacity: 1.25. (`Decimal::new` is not `const`;
/// `from_parts(125, 0, 0, false, 2)` is the same value, checked by a test.)
pub const SURGE: Decimal = Decimal::from_parts(125, 0, 0, false, 2);
/// A suggested bid is the market rate x 1.05.
pub const SUGGESTED_BID_FACTOR: Decimal = Decimal::from_parts(105, 0, 0, false, 2);

// ---------------------------------------------------------------------------------------------
// Hardware
// ---------------------------------------------------------------------------------------------

/// A provider's hardware class, which scales its ask; stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum HardwareClass {
    Enterprise,
    HighEnd,
    MidRange,
    Entry,
    CpuOnly,
}

impl HardwareClass {
    pub const ALL: [HardwareClass; 5] =
        [HardwareClass::Enterprise, HardwareClass::HighEnd, HardwareClass::MidRange, HardwareClass::Entry, HardwareClass::CpuOnly];

    /// The multiplier in tenths: an exact integer to price with.
    fn tenths(self) -> u32 {
        match self {
            HardwareClass::Enterprise => 20,
            HardwareClass::HighEnd => 15,
            HardwareClass::MidRange => 12,
            HardwareClass::Entry => 10,
            HardwareClass::CpuOnly => 5,
        }
    }

    /// Enterprise 2.0, High-End 1.5, Mid-Range 1.2, Entry 1.0, CPU-only 0.5.
    pub fn multiplier(self) -> Decimal {
        Decimal::new(i64::from(self.tenths()), 1)
    }
}

// ---------------------------------------------------------------------------------------------
// Offers and prices
// ---------------------------------------------------------------------------------------------

/// A provider's offer for one workload at this moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub provider_id: i64,
    /// The provider's asking price for the workload (its own, or its default ask).
    pub ask: Credits,
    pub hardware: HardwareClass,
    /// How many jobs the provider runs at once.
    pub capacity: u32,
    /// How many it runs now.
    pub running: u32,
}

impl Offer {
    /// Whether the provider can take one more job now.
    pub fn available(&self) -> bool {
        self.running < self.capacity
    }

    /// Free slots: `capacity - running`, zero when over capacity.
    pub fn free_slots(&self) -> u32 {
        self.capacity.saturating_sub(self.running)
    }
}

/// The capacity available across offers: the sum of their free slots, what [`surge`] compares
/// queued jobs with.
pub fn available_capacity(offers: &[Offer]) -> u64 {
    offers.iter().map(|o| u64::from(o.free_slots())).sum()
}

/// The surge factor: [`SURGE`] (1.25) when queued jobs exceed twice the available capacity,
/// else 1. With no capacity at all, one queued job is a surge.
pub fn surge(queued: u64, available_capacity: u64) -> Decimal {
    if u128::from(queued) > 2 * u128::from(available_capacity) { SURGE } else { Decimal::ONE }
}

/// `ask x hardware multiplier x surge`, computed exactly and rounded once, half up, to the
/// micro-credit. A negative surge is [`AmountError::NotPositive`]; a price over the maximum
/// operation amount is [`AmountError::TooLarge`].
pub fn final_price(ask: Credits, hardware: HardwareClass, surge: Decimal) -> Result<Credits, AmountError> {
    if surge.is_sign_negative() && !surge.is_zero() {
        return Err(AmountError::NotPositive);
    }
    match exact_price_micros(ask, hardware, surge) {
        Some(micros) if micros <= MAX_OPERATION_MICROS as u128 => Ok(Credits::from_micros(micros as i64)),
        _ => Err(AmountError::TooLarge),
    }
}

/// The final price in micro-credits, uncapped; None for a negative surge or an overflow of u128.
fn exact_price_micros(ask: Credits, hardware: HardwareClass, surge: Decimal) -> Option<u128> {
    if surge.is_sign_negative() && !surge.is_zero() {
        return None;
    }
    // ask x tenths x surge / 10: the surge's decimal scale plus one place for the tenths.
    let value = u128::try_from(ask.micros()).ok()? * u128::from(hardware.tenths());
    mul_ratio_half_up(value, surge.mantissa().unsigned_abs(), surge.scale() + 1)
}

// ---------------------------------------------------------------------------------------------
// Budget
// ---------------------------------------------------------------------------------------------

/// Where a job's budget came from; stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum BudgetSource {
    /// The job's own `bid_price`.
    Bid,
    /// The consumer's saved bid preference for the workload.
    Preference,
    /// The workload's current average market rate.
    AverageRate,
    /// The workload's default price.
    DefaultPrice,
}

impl BudgetSource {
    pub const ALL: [BudgetSource; 4] = [BudgetSource::Bid, BudgetSource::Preference, BudgetSource::AverageRate, BudgetSource::DefaultPrice];
}

/// A job's budget: the first present of the job's bid, the consumer's saved preference, the
/// current average rate and the workload's default price, with where it came from. None when
/// none is known.
pub fn resolve_budget(
    bid: Option<Credits>,
    preference: Option<Credits>,
    average_rate: Option<Credits>,
    default_price: Option<Credits>,
) -> Option<(Credits, BudgetSource)> {
    bid.map(|b| (b, BudgetSource::Bid))
        .or(preference.map(|p| (p, BudgetSource::Preference)))
        .or(average_rate.map(|a| (a, BudgetSource::AverageRate)))
        .or(default_price.map(|d| (d, BudgetSource::DefaultPrice)))
}

// ---------------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------------

/// The provider a job clears with, at its final price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub provider_id: i64,
    pub price: Credits,
}

/// Why a job found no provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoMatch {
    /// No offer for the workload at all.
    NoProviders,
    /// Offers within the budget exist, but none of them has a free slot.
    AllBusy,
    /// Every offer costs more than the budget: `cheapest` is the lowest final price among the
    /// available offers, or among all offers when every one is busy (saturated at the largest
    /// representable amount if it does not fit).
    OverBudget { cheapest: Credits },
}

impl NoMatch {
    /// The code a job rejected for this reason carries.
    pub fn code(self) -> JobCode {
        match self {
            NoMatch::NoProviders => JobCode::NoProvider,
            NoMatch::AllBusy => JobCode::AllBusy,
            NoMatch::OverBudget { .. } => JobCode::BidTooLow,
        }
    }
}

/// The cheapest available offer whose final price (at `surge`) is at or under `budget`, ties by
/// provider id ascending. See the module documentation for the order of the refusals.
pub fn choose(offers: &[Offer], budget: Credits, surge: Decimal) -> Result<Match, NoMatch> {
    if offers.is_empty() {
        return Err(NoMatch::NoProviders);
    }
    // (offer, exact price) with None for a price that cannot be computed: above any budget.
    let priced: Vec<(&Offer, Option<u128>)> = offers.iter().map(|o| (o, exact_price_micros(o.ask, o.hardware, surge))).collect();
    let within =
        |price: Option<u128>| price.is_some_and(|p| p <= MAX_OPERATION_MICROS as u128 && p <= u128::try_from(budget.micros()).unwrap_or(0));
    let best = priced.iter().filter(|(o, p)| o.available() && within(*p)).filter_map(|(o, p)| p.map(|p| (p, o.provider_id))).min();
    if let Some((price, provider_id)) = best {
        return Ok(Match { provider_id, price: Credits::from_micros(price as i64) });
    }
    if priced.iter().any(|(_, p)| within(*p)) {
        return Err(NoMatch::AllBusy);
    }
    let cheapest =
        |available_only: bool| priced.iter().filter(|(o, _)| !available_only || o.available()).map(|(_, p)| p.unwrap_or(u128::MAX)).min();
    let cheapest = cheapest(true).or_else(|| cheapest(false)).unwrap_or(u128::MAX);
    Err(NoMatch::OverBudget { cheapest: Credits::from_micros(i64::try_from(cheapest).unwrap_or(i64::MAX)) })
}

/// One job of a submission, placed: the surge it was priced at, and its match or why none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub surge: Decimal,
    pub result: Result<Match, NoMatch>,
}

/// Where one job of a submission goes. `offers` are every provider's for the workload,
/// `consumer_id` the account submitting (it never buys from itself), `budget` the job's (see
/// [`resolve_budget`]) and `queued` how many jobs of the submission are not matched yet, the
/// demand that sets the [`surge`] against the other providers' [`available_capacity`]:
///
/// 1. no budget: [`NoMatch::NoProviders`]; a budget is missing only when nobody asks a price
///    for the workload and it has no default price;
/// 2. other providers, but none with a free slot: [`NoMatch::AllBusy`], whatever the prices
///    (where [`choose`] would call busy offers over the budget [`NoMatch::OverBudget`]);
/// 3. else [`choose`] among the other providers at the surge.
pub fn place(offers: &[Offer], consumer_id: i64, budget: Option<Credits>, queued: u64) -> Placement {
    let candidates: Vec<Offer> = offers.iter().filter(|o| o.provider_id != consumer_id).cloned().collect();
    let available = available_capacity(&candidates);
    let surge = surge(queued, available);
    let result = match budget {
        None => Err(NoMatch::NoProviders),
        Some(_) if available == 0 && !candidates.is_empty() => Err(NoMatch::AllBusy),
        Some(budget) => choose(&candidates, budget, surge),
    };
    Placement { surge, result }
}

// ---------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------

/// Where a market job stands; stored (and kept in replayed outcomes) as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JobStatus {
    /// Matched with a provider, its price held from the consumer.
    Running,
    /// Finished: its price went to the provider, less the platform's fee.
    Completed,
    /// Failed, or passed its deadline: its price went back to the consumer.
    Failed,
    /// Never started: see its [`JobCode`].
    Rejected,
}

/// Why a job was rejected or failed; stored (and kept in replayed outcomes) as its
/// SCREAMING_SNAKE_CASE name, the code clients have always seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum JobCode {
    /// No provider asks a price for the workload (see [`NoMatch::NoProviders`]).
    NoProvider,
    /// Providers within the budget exist, but none has a free slot.
    AllBusy,
    /// Every available provider's final price is over the job's budget.
    BidTooLow,
    /// The consumer could not cover the matched price.
    InsufficientCredits,
    /// The provider reported the job failed.
    Failed,
    /// The job outlived its deadline.
    Deadline,
    /// The job's price would pass a spend limit the consumer set (`setSpendLimits`).
    SpendLimitReached,
}

// ---------------------------------------------------------------------------------------------
// Market rate
// ---------------------------------------------------------------------------------------------

/// A workload's market rate from its providers' asks (asks, not final prices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// The exact mean of the asks, rounded once, half up.
    pub average: Credits,
    pub min: Credits,
    pub max: Credits,
    pub providers: u32,
}

/// The market rate of one ask per provider; None without providers.
pub fn rate(asks: &[Credits]) -> Option<Rate> {
    let min = *asks.iter().min()?;
    let max = *asks.iter().max()?;
    let n = asks.len() as u128;
    let sum: u128 = asks.iter().map(|a| a.micros().unsigned_abs() as u128).sum();
    // sum / n, half up: floor((2 x sum + n) / (2 x n)). The mean lies within [min, max].
    let average = (2 * sum + n) / (2 * n);
    Some(Rate { average: Credits::from_micros(average as i64), min, max, providers: u32::try_from(asks.len()).unwrap_or(u32::MAX) })
}

/// The bid to suggest: the average rate x [`SUGGESTED_BID_FACTOR`] (1.05), rounded once, half up
/// (saturated at the largest representable amount).
pub fn suggested_bid(rate: &Rate) -> Credits {
    let factor = SUGGESTED_BID_FACTOR;
    let micros = mul_ratio_half_up(rate.average.micros().unsigned_abs() as u128, factor.mantissa().unsigned_abs(), factor.scale());
    Credits::from_micros(micros.and_then(|m| i64::try_from(m).ok()).unwrap_or(i64::MAX))
}

// ---------------------------------------------------------------------------------------------
// Fees
// ---------------------------------------------------------------------------------------------

/// Splits a job's price into (provider's earnings, platform fee). The fee is `price x fee_rate`
/// rounded once, half up, to the micro-credit; the provider gets `price - fee`, so the two always
/// sum to the price exactly. `fee_rate` belongs in [0, 1): a rate at or under 0 takes no fee, a
/// rate at or over 1 takes the whole price.
pub fn split_fee(price: Credits, fee_rate: Decimal) -> (Credits, Credits) {
    let micros = price.micros();
    let fee = if fee_rate <= Decimal::ZERO {
        0
    } else if fee_rate >= Decimal::ONE {
        micros
    } else {
        // fee_rate < 1, so the exact fee is under the price and rounds to at most the price.
        let fee = mul_ratio_half_up(micros.unsigned_abs() as u128, fee_rate.mantissa().unsigned_abs(), fee_rate.scale());
        fee.and_then(|f| i64::try_from(f).ok()).unwrap_or(micros).min(micros)
    };
    (Credits::from_micros(micros - fee), Credits::from_micros(fee))
}

// ---------------------------------------------------------------------------------------------
// Exact arithmetic
// ---------------------------------------------------------------------------------------------

const SPLIT_DIGITS: u32 = 14;

/// `value x numer / 10^scale`, exactly, rounded once half up to an integer; None on overflow.
///
/// Exact for `value < 2^70` (an i64 amount times a small integer) and `scale <= 29` (a Decimal's
/// scale plus one): the fraction `numer mod 10^scale` is split at 10^14 so that no partial product
/// leaves u128, where a Decimal product could round past its 28 digits.
fn mul_ratio_half_up(value: u128, numer: u128, scale: u32) -> Option<u128> {
    assert!(value < 1 << 70 && scale <= 29, "mul_ratio_half_up out of its exact range");
    let d = 10u128.pow(scale);
    let (whole, frac) = (numer / d, numer % d);
    let integer = value.checked_mul(whole)?;
    // frac = hi x d2 + lo with hi < d1 and lo < d2, d = d1 x d2.
    let d1 = 10u128.pow(scale.min(SPLIT_DIGITS));
    let d2 = d / d1;
    let (hi, lo) = (frac / d2, frac % d2);
    // value x frac = (value x hi) x d2 + value x lo = (q1 x d1 + r1) x d2 + value x lo
    //              = q1 x d + (r1 x d2 + value x lo).
    let a = value * hi;
    let (q1, r1) = (a / d1, a % d1);
    let rest = r1 * d2 + value * lo;
    let (q2, r2) = (rest / d, rest % d);
    let round_up = u128::from(2 * r2 >= d);
    integer.checked_add(q1 + q2 + round_up)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn credits(s: &str) -> Credits {
        if s == "0" { Credits::ZERO } else { Credits::parse_positive(dec(s)).unwrap() }
    }

    fn offer(provider_id: i64, ask: &str, hardware: HardwareClass, capacity: u32, running: u32) -> Offer {
        Offer { provider_id, ask: credits(ask), hardware, capacity, running }
    }

    #[test]
    fn constants() {
        assert_eq!(SURGE, Decimal::new(125, 2));
        assert_eq!(SUGGESTED_BID_FACTOR, Decimal::new(105, 2));
        assert_eq!((MAX_BATCH, MAX_PRIORITY), (100, 100));
    }

    #[test]
    fn hardware_multipliers() {
        let multipliers: Vec<Decimal> = HardwareClass::ALL.iter().map(|h| h.multiplier()).collect();
        assert_eq!(multipliers, [dec("2.0"), dec("1.5"), dec("1.2"), dec("1.0"), dec("0.5")]);
        for h in HardwareClass::ALL {
            assert_eq!(HardwareClass::from_str(&h.to_string()), Ok(h));
            assert_eq!(serde_json::to_string(&h).unwrap(), format!("\"{h}\""));
        }
        let names: Vec<&str> = HardwareClass::ALL.iter().map(|h| <&str>::from(*h)).collect();
        assert_eq!(names, ["enterprise", "high_end", "mid_range", "entry", "cpu_only"]);
        assert!(HardwareClass::from_str("High-End").is_err());
        assert!(HardwareClass::from_str("").is_err());
    }

    #[test]
    fn final_price_is_ask_x_multiplier_x_surge_rounded_once() {
        assert_eq!(final_price(credits("2"), HardwareClass::HighEnd, SURGE).unwrap(), credits("3.75"));
        assert_eq!(final_price(credits("2"), HardwareClass::HighEnd, Decimal::ONE).unwrap(), credits("3"));
        // 0.000003 x 1.2 = 0.0000036 -> 0.000004, one rounding.
        assert_eq!(final_price(credits("0.000003"), HardwareClass::MidRange, Decimal::ONE).unwrap(), credits("0.000004"));
        // 0.000001 x 1.2 x 1.25 = 0.0000015 -> 0.000002; rounding after the multiplier would give
        // 0.000001 x 1.25 = 0.00000125 -> 0.000001.
        assert_eq!(final_price(credits("0.000001"), HardwareClass::MidRange, SURGE).unwrap(), credits("0.000002"));
        // Half a micro-credit rounds up.
        assert_eq!(final_price(credits("0.000001"), HardwareClass::CpuOnly, Decimal::ONE).unwrap(), credits("0.000001"));
        assert_eq!(final_price(credits("3"), HardwareClass::CpuOnly, Decimal::ONE).unwrap(), credits("1.5"));
        assert_eq!(final_price(credits("5"), HardwareClass::Enterprise, SURGE).unwrap(), credits("12.5"));
        assert_eq!(final_price(credits("7"), HardwareClass::Entry, Decimal::ONE).unwrap(), credits("7"));
        assert_eq!(final_price(Credits::ZERO, HardwareClass::Enterprise, SURGE).unwrap(), Credits::ZERO);
        assert_eq!(final_price(credits("1"), HardwareClass::Entry, dec("-1")), Err(AmountError::NotPositive));
        assert_eq!(final_price(credits("1000000000"), HardwareClass::Enterprise, Decimal::ONE), Err(AmountError::TooLarge));
        assert_eq!(final_price(credits("1000000000"), HardwareClass::CpuOnly, dec("2")).unwrap(), credits("1000000000"));
        // A surge with all 28 places is still priced exactly: 1.2 x 0.99...9 (28 nines) x 1 credit
        // = 1.1999...988 -> 1.2.
        let long = dec("0.9999999999999999999999999999");
        assert_eq!(final_price(credits("1"), HardwareClass::MidRange, long).unwrap(), credits("1.2"));
    }

    #[test]
    fn surge_starts_past_twice_the_available_capacity() {
        assert_eq!(surge(0, 0), Decimal::ONE);
        assert_eq!(surge(1, 0), SURGE, "no capacity: one queued job is a surge");
        assert_eq!(surge(10, 5), Decimal::ONE, "twice the capacity is not a surge");
        assert_eq!(surge(11, 5), SURGE);
        assert_eq!(surge(u64::MAX, u64::MAX / 2), SURGE);
        assert_eq!(surge(u64::MAX, u64::MAX), Decimal::ONE);
        let offers = [
            offer(1, "1", HardwareClass::Entry, 4, 1),
            offer(2, "1", HardwareClass::Entry, 2, 2),
            offer(3, "1", HardwareClass::Entry, 1, 3),
        ];
        assert!(offers[0].available() && !offers[1].available() && !offers[2].available());
        assert_eq!(available_capacity(&offers), 3, "over-capacity providers count as zero");
        assert_eq!(surge(6, available_capacity(&offers)), Decimal::ONE);
        assert_eq!(surge(7, available_capacity(&offers)), SURGE);
    }

    #[test]
    fn budget_resolution_order_over_every_combination() {
        let values = [credits("1"), credits("2"), credits("3"), credits("4")];
        for mask in 0u8..16 {
            let pick = |i: usize| (mask & (1 << i) != 0).then_some(values[i]);
            let expected = (0..4).find(|i| mask & (1 << i) != 0).map(|i| (values[i], BudgetSource::ALL[i]));
            assert_eq!(resolve_budget(pick(0), pick(1), pick(2), pick(3)), expected, "mask {mask:04b}");
        }
        assert_eq!(resolve_budget(None, None, None, None), None);
        assert_eq!(resolve_budget(Some(Credits::ZERO), Some(credits("5")), None, None), Some((Credits::ZERO, BudgetSource::Bid)));
        for source in BudgetSource::ALL {
            assert_eq!(BudgetSource::from_str(&source.to_string()), Ok(source));
            assert!(["bid", "preference", "average_rate", "default_price"].contains(&<&str>::from(source)));
            assert_eq!(serde_json::to_string(&source).unwrap(), format!("\"{source}\""));
        }
    }

    #[test]
    fn the_cheapest_final_price_wins_not_the_cheapest_ask() {
        let offers = [
            offer(1, "2", HardwareClass::Enterprise, 1, 0), // 4
            offer(2, "3", HardwareClass::CpuOnly, 1, 0),    // 1.5
            offer(3, "1.5", HardwareClass::Entry, 1, 0),    // 1.5
            offer(4, "1", HardwareClass::HighEnd, 1, 0),    // 1.5
        ];
        // Three offers at 1.5: the lowest provider id wins, whatever the order given.
        assert_eq!(choose(&offers, credits("5"), Decimal::ONE), Ok(Match { provider_id: 2, price: credits("1.5") }));
        let reversed: Vec<Offer> = offers.iter().rev().cloned().collect();
        assert_eq!(choose(&reversed, credits("5"), Decimal::ONE), Ok(Match { provider_id: 2, price: credits("1.5") }));
        // At the budget exactly is within it.
        assert_eq!(choose(&offers, credits("1.5"), Decimal::ONE), Ok(Match { provider_id: 2, price: credits("1.5") }));
        // Surge raises every price: 1.875 is over 1.8.
        assert_eq!(choose(&offers, credits("1.875"), SURGE), Ok(Match { provider_id: 2, price: credits("1.875") }));
        assert_eq!(choose(&offers, credits("1.8"), SURGE), Err(NoMatch::OverBudget { cheapest: credits("1.875") }));
    }

    #[test]
    fn busy_providers_are_skipped() {
        let offers = [
            offer(1, "1", HardwareClass::Entry, 2, 2),
            offer(2, "2", HardwareClass::Entry, 2, 1),
            offer(3, "1", HardwareClass::Entry, 0, 0),
        ];
        assert_eq!(choose(&offers, credits("5"), Decimal::ONE), Ok(Match { provider_id: 2, price: credits("2") }));
        // Within 1.5 only busy offers: all busy, though an available one exists over the budget.
        assert_eq!(choose(&offers, credits("1.5"), Decimal::ONE), Err(NoMatch::AllBusy));
    }

    #[test]
    fn no_providers_all_busy_and_over_budget() {
        assert_eq!(choose(&[], credits("100"), Decimal::ONE), Err(NoMatch::NoProviders));
        let busy = [offer(1, "1", HardwareClass::Entry, 1, 1), offer(2, "3", HardwareClass::Entry, 1, 1)];
        assert_eq!(choose(&busy, credits("1"), Decimal::ONE), Err(NoMatch::AllBusy));
        // All busy and all over the budget: over budget, cheapest overall.
        assert_eq!(choose(&busy, credits("0.5"), Decimal::ONE), Err(NoMatch::OverBudget { cheapest: credits("1") }));
        // Available offers over the budget: the cheapest available price, not the busy one's.
        let mixed = [
            offer(1, "1", HardwareClass::Entry, 1, 1),
            offer(2, "3", HardwareClass::Entry, 1, 0),
            offer(3, "4", HardwareClass::Entry, 1, 0),
        ];
        assert_eq!(choose(&mixed, credits("0.5"), Decimal::ONE), Err(NoMatch::OverBudget { cheapest: credits("3") }));
        assert_eq!(choose(&mixed, Credits::ZERO, Decimal::ONE), Err(NoMatch::OverBudget { cheapest: credits("3") }));
        // A free offer matches a zero budget.
        let free = [offer(7, "0", HardwareClass::Entry, 1, 0)];
        assert_eq!(choose(&free, Credits::ZERO, SURGE), Ok(Match { provider_id: 7, price: Credits::ZERO }));
        assert_eq!(NoMatch::AllBusy.code(), JobCode::AllBusy);
    }

    #[test]
    fn job_statuses_and_codes_keep_their_stored_names() {
        let statuses = [JobStatus::Running, JobStatus::Completed, JobStatus::Failed, JobStatus::Rejected];
        let names: Vec<&str> = statuses.iter().map(|s| <&str>::from(*s)).collect();
        assert_eq!(names, ["running", "completed", "failed", "rejected"]);
        let codes = [
            JobCode::NoProvider,
            JobCode::AllBusy,
            JobCode::BidTooLow,
            JobCode::InsufficientCredits,
            JobCode::Failed,
            JobCode::Deadline,
            JobCode::SpendLimitReached,
        ];
        let names: Vec<&str> = codes.iter().map(|c| <&str>::from(*c)).collect();
        assert_eq!(names, ["NO_PROVIDER", "ALL_BUSY", "BID_TOO_LOW", "INSUFFICIENT_CREDITS", "FAILED", "DEADLINE", "SPEND_LIMIT_REACHED"]);
        for status in statuses {
            assert_eq!(JobStatus::from_str(&status.to_string()), Ok(status));
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{status}\""));
        }
        for code in codes {
            assert_eq!(JobCode::from_str(&code.to_string()), Ok(code));
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{code}\""));
        }
        assert!(JobStatus::from_str("RUNNING").is_err() && JobCode::from_str("all_busy").is_err());
        let rejections = [NoMatch::NoProviders, NoMatch::AllBusy, NoMatch::OverBudget { cheapest: Credits::ZERO }];
        assert_eq!(rejections.map(NoMatch::code), [JobCode::NoProvider, JobCode::AllBusy, JobCode::BidTooLow]);
    }

    #[test]
    fn a_placement_skips_the_consumer_and_calls_a_market_without_free_slots_busy() {
        let offers = [offer(1, "0.5", HardwareClass::Entry, 1, 0), offer(2, "2", HardwareClass::Entry, 1, 0)];
        // Account 1 submits: its own cheaper offer is not a candidate.
        assert_eq!(
            place(&offers, 1, Some(credits("5")), 1),
            Placement { surge: Decimal::ONE, result: Ok(Match { provider_id: 2, price: credits("2") }) }
        );
        // The demand is measured against the others' free slots: 3 queued > 2 x 1.
        assert_eq!(place(&offers, 1, Some(credits("5")), 3).surge, SURGE);
        assert_eq!(place(&offers, 1, Some(credits("5")), 3).result, Ok(Match { provider_id: 2, price: credits("2.5") }));
        // No free slot anywhere: busy, though every busy offer is over the budget (choose says
        // over budget there).
        let busy = [offer(2, "3", HardwareClass::Entry, 1, 1), offer(3, "4", HardwareClass::Entry, 2, 2)];
        assert_eq!(choose(&busy, credits("1"), SURGE), Err(NoMatch::OverBudget { cheapest: credits("3.75") }));
        assert_eq!(place(&busy, 1, Some(credits("1")), 1).result, Err(NoMatch::AllBusy));
        // Only the consumer's own offer: no providers.
        assert_eq!(place(&offers[..1], 1, Some(credits("5")), 1).result, Err(NoMatch::NoProviders));
        // No budget: no providers.
        assert_eq!(place(&[], 1, None, 1), Placement { surge: SURGE, result: Err(NoMatch::NoProviders) });
        assert_eq!(place(&offers, 7, None, 1).result, Err(NoMatch::NoProviders));
    }

    #[test]
    fn a_price_past_the_operation_maximum_never_matches() {
        let huge = [offer(1, "1000000000", HardwareClass::Enterprise, 1, 0)];
        let budget = Credits::from_micros(i64::MAX);
        assert_eq!(choose(&huge, budget, Decimal::ONE), Err(NoMatch::OverBudget { cheapest: Credits::from_whole(2_000_000_000) }));
        let unpriceable =
            [Offer { provider_id: 1, ask: Credits::from_micros(i64::MAX), hardware: HardwareClass::Enterprise, capacity: 1, running: 0 }];
        assert_eq!(choose(&unpriceable, budget, Decimal::MAX), Err(NoMatch::OverBudget { cheapest: Credits::from_micros(i64::MAX) }));
        assert_eq!(choose(&huge, budget, dec("-1")), Err(NoMatch::OverBudget { cheapest: Credits::from_micros(i64::MAX) }));
    }

    #[test]
    fn rate_average_is_rounded_once_half_up() {
        assert_eq!(rate(&[]), None);
        let r = rate(&[credits("1"), credits("2"), credits("2")]).unwrap();
        assert_eq!(r, Rate { average: credits("1.666667"), min: credits("1"), max: credits("2"), providers: 3 });
        // 0.000001 and 0.000002: 1.5 micro rounds up to 0.000002.
        assert_eq!(rate(&[credits("0.000001"), credits("0.000002")]).unwrap().average, credits("0.000002"));
        // 1 micro over 3: 0.333 micro rounds down.
        assert_eq!(rate(&[credits("0.000001"), Credits::ZERO, Credits::ZERO]).unwrap().average, Credits::ZERO);
        let max = Credits::from_micros(i64::MAX);
        assert_eq!(rate(&[max, max]).unwrap().average, max, "the sum does not overflow");
    }

    #[test]
    fn suggested_bid_is_the_rate_x_1_05() {
        let rate_of = |average: &str| Rate { average: credits(average), min: credits(average), max: credits(average), providers: 1 };
        assert_eq!(suggested_bid(&rate_of("2")), credits("2.1"));
        assert_eq!(suggested_bid(&rate_of("1.666667")), credits("1.75"), "1.75000035 -> 1.75");
        // 0.00001 x 1.05 = 0.0000105 -> 0.000011, half up.
        assert_eq!(suggested_bid(&rate_of("0.00001")), credits("0.000011"));
        assert_eq!(suggested_bid(&rate_of("0")), Credits::ZERO);
        let max = Rate { average: Credits::from_micros(i64::MAX), ..rate_of("1") };
        assert_eq!(suggested_bid(&max), Credits::from_micros(i64::MAX), "saturates");
    }

    #[test]
    fn the_fee_rounds_half_up_and_the_provider_gets_the_rest() {
        // Half a micro-credit of fee rounds up to the platform: the provider gets nothing.
        assert_eq!(split_fee(credits("0.000001"), dec("0.5")), (Credits::ZERO, credits("0.000001")));
        assert_eq!(split_fee(credits("0.000001"), dec("0.49")), (credits("0.000001"), Credits::ZERO));
        assert_eq!(split_fee(credits("10"), dec("0.2")), (credits("8"), credits("2")));
        // 3.75 x 0.15 = 0.5625.
        assert_eq!(split_fee(credits("3.75"), dec("0.15")), (credits("3.1875"), credits("0.5625")));
        // 1.666667 x 0.3 = 0.5000001 -> 0.5.
        assert_eq!(split_fee(credits("1.666667"), dec("0.3")), (credits("1.166667"), credits("0.5")));
        assert_eq!(split_fee(credits("7"), Decimal::ZERO), (credits("7"), Credits::ZERO), "no fee: all to the provider");
        assert_eq!(split_fee(Credits::ZERO, dec("0.5")), (Credits::ZERO, Credits::ZERO));
        assert_eq!(split_fee(credits("7"), dec("-0.1")), (credits("7"), Credits::ZERO));
        assert_eq!(split_fee(credits("7"), dec("1.5")), (Credits::ZERO, credits("7")));
        // A rate with 28 places is exact: 0.5 - 10^-28 of 1 micro is under half: no fee.
        assert_eq!(split_fee(credits("0.000001"), dec("0.4999999999999999999999999999")), (credits("0.000001"), Credits::ZERO));
        let max = Credits::from_micros(i64::MAX);
        let (provider, fee) = split_fee(max, dec("0.9999999999999999999999999999"));
        assert_eq!((provider.micros(), fee), (0, max), "i64::MAX x (1 - 10^-28) rounds to i64::MAX");
    }

    #[test]
    fn exact_ratio_agrees_with_decimal_when_decimal_is_exact() {
        assert_eq!(mul_ratio_half_up(3, 5, 1), Some(2), "1.5 -> 2");
        assert_eq!(mul_ratio_half_up(1, 4, 1), Some(0));
        assert_eq!(mul_ratio_half_up(0, 123, 29), Some(0));
        assert_eq!(mul_ratio_half_up(10, 105, 2), Some(11), "10.5 -> 11");
        assert_eq!(mul_ratio_half_up(1 << 69, u128::MAX, 0), None);
    }

    fn any_hardware() -> impl Strategy<Value = HardwareClass> {
        prop::sample::select(HardwareClass::ALL.to_vec())
    }

    fn any_offer() -> impl Strategy<Value = Offer> {
        (1i64..20, 0i64..5_000_000, any_hardware(), 0u32..4, 0u32..4).prop_map(|(provider_id, ask, hardware, capacity, running)| Offer {
            provider_id,
            ask: Credits::from_micros(ask),
            hardware,
            capacity,
            running,
        })
    }

    proptest! {
        #[test]
        fn choose_never_exceeds_the_budget_nor_picks_a_busy_provider(
            offers in prop::collection::vec(any_offer(), 0..12),
            budget in 0i64..10_000_000,
            surged in any::<bool>(),
        ) {
            let surge = if surged { SURGE } else { Decimal::ONE };
            let budget = Credits::from_micros(budget);
            let price = |o: &Offer| final_price(o.ask, o.hardware, surge).unwrap();
            match choose(&offers, budget, surge) {
                Ok(m) => {
                    prop_assert!(m.price <= budget);
                    let chosen: Vec<&Offer> = offers.iter().filter(|o| o.provider_id == m.provider_id && o.available() && price(o) == m.price).collect();
                    prop_assert!(!chosen.is_empty(), "the match is an available offer at its final price");
                    for o in offers.iter().filter(|o| o.available() && price(o) <= budget) {
                        prop_assert!((m.price, m.provider_id) <= (price(o), o.provider_id), "nothing cheaper was available");
                    }
                }
                Err(NoMatch::NoProviders) => prop_assert!(offers.is_empty()),
                Err(NoMatch::AllBusy) => {
                    prop_assert!(offers.iter().any(|o| price(o) <= budget));
                    prop_assert!(offers.iter().all(|o| !(o.available() && price(o) <= budget)));
                }
                Err(NoMatch::OverBudget { cheapest }) => {
                    prop_assert!(offers.iter().all(|o| price(o) > budget));
                    let pool: Vec<&Offer> = if offers.iter().any(Offer::available) { offers.iter().filter(|o| o.available()).collect() } else { offers.iter().collect() };
                    prop_assert_eq!(Some(cheapest), pool.into_iter().map(price).min());
                }
            }
        }

        #[test]
        fn split_fee_always_sums_to_the_price(price in 0i64..=i64::MAX, rate_units in 0i64..=i64::MAX, rate_scale in 0u32..=28) {
            let price = Credits::from_micros(price);
            let (provider, fee) = split_fee(price, Decimal::new(rate_units, rate_scale));
            prop_assert_eq!(provider.checked_add(fee), Some(price));
        }

        /// Where a Decimal product is exact, the fee is the one half-up rounding of `price x rate`.
        #[test]
        fn the_fee_is_one_rounding(price in 0i64..1 << 40, rate_units in 0i64..1_000_000_000_000, rate_scale in 1u32..=12) {
            let price = Credits::from_micros(price);
            let fee_rate = Decimal::new(rate_units % 10i64.pow(rate_scale), rate_scale);
            let expected = (Decimal::from(price.micros()) * fee_rate).round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
            let (provider, fee) = split_fee(price, fee_rate);
            prop_assert_eq!(Decimal::from(fee.micros()), expected);
            prop_assert_eq!(provider.micros() + fee.micros(), price.micros());
        }

        #[test]
        fn final_price_agrees_with_credits_charge(ask in 0i64..1_000_000_000_000, hardware in any_hardware(), surged in any::<bool>()) {
            let surge = if surged { SURGE } else { Decimal::ONE };
            let ask = Credits::from_micros(ask);
            prop_assert_eq!(final_price(ask, hardware, surge), Credits::charge(ask.to_decimal(), hardware.multiplier() * surge));
        }
    }
}
