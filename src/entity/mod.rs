//! sea-orm entities, one per table. Nothing here knows about GraphQL or the rules.

pub mod account;
pub mod ad_reward;
pub mod asking_price;
pub mod bid_preference;
pub mod claim;
pub mod container;
pub mod coupon;
pub mod coupon_failure;
pub mod coupon_redemption;
pub mod idempotency_key;
pub mod job_run;
pub mod journal_entry;
pub mod journal_line;
pub mod lot;
pub mod market_job;
pub mod market_rate_snapshot;
pub mod meter;
pub mod outbox;
pub mod persisted_query;
pub mod provider;
pub mod purchase;
pub mod referral;
pub mod reservation;
pub mod settlement;
pub mod test_clock;
pub mod usage_line;
