//! The rules of credits, with no database or transport: amounts, money, lots, the order of
//! consumption, validity, expiry and prices. Everything here is unit- and property-tested.

pub mod account;
pub mod amount;
pub mod auto_topup;
pub mod backoff;
pub mod balance_at;
pub mod claims;
pub mod corrections;
pub mod draw;
pub mod gift;
pub mod lot;
pub mod market;
pub mod metering;
pub mod money;
pub mod notices;
pub mod plans;
pub mod pricing;
pub mod purchase;
pub mod referral;
pub mod refund;
pub mod reservation;
pub mod retention;
pub mod rollover;
pub mod runway;
pub mod schedule;
pub mod spend_limits;
pub mod statement;
pub mod test_clock;
pub mod time;
pub mod wallet;

pub use account::AccountStatus;
pub use amount::{AmountError, Credits};
pub use lot::{
    ConsumptionOrder, Features, Insufficient, Lot, LotClass, LotSource, Priority, Purpose, Spent, Take, allocate, available_for, balance,
    spend, take,
};
pub use pricing::PricingError;
pub use time::Validity;
