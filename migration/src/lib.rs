//! The schema of the credits ledger. It does not depend on the entity code: each migration
//! describes its tables with sea-query, so it stays valid however the entities evolve.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_ledger;
mod m20261123_000002_create_claims_and_coupons;
mod m20261123_000003_add_accounts_plan_since;
mod m20261123_000004_create_refunds_and_outbox;
mod m20261123_000005_create_ad_rewards;
mod m20261123_000006_create_referrals;
mod m20261123_000007_create_job_runs;
mod m20261129_000008_create_reservations;
mod m20261129_000009_create_metering;
mod m20261129_000010_add_outbox_delivery;
mod m20261129_000011_add_notice_state;
mod m20261129_000012_create_market;
mod m20261130_000013_leave_room_for_updates;
mod m20261202_000014_create_test_clock;
mod m20261202_000015_add_accounts_renews_at;
mod m20261203_000016_create_persisted_queries;
mod m20261203_000017_add_operator_records;
mod m20261203_000018_add_entry_detail;
mod m20261203_000019_add_metadata;
mod m20261203_000020_add_balance_after;
mod m20261203_000021_add_lot_priority;
mod m20261203_000022_add_lot_start_and_scope;
mod m20261203_000023_add_rollover_index;
mod m20261203_000024_add_purchase_end;
mod m20261203_000025_add_auto_topup;
mod m20261203_000027_create_spend_limits;
mod m20261204_000026_drop_auto_topup_pending_purchase;
mod m20261204_000029_add_stripe;
mod m20261204_000030_add_ad_reward_custom_data;
mod m20261204_000031_create_claim_rates;
mod m20261204_000032_add_outbox_lease;
mod m20261204_000033_partition_journal;
mod m20261205_000034_plan_grants_by_lot;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_ledger::Migration),
            Box::new(m20261123_000002_create_claims_and_coupons::Migration),
            Box::new(m20261123_000003_add_accounts_plan_since::Migration),
            Box::new(m20261123_000004_create_refunds_and_outbox::Migration),
            Box::new(m20261123_000005_create_ad_rewards::Migration),
            Box::new(m20261123_000006_create_referrals::Migration),
            Box::new(m20261123_000007_create_job_runs::Migration),
            Box::new(m20261129_000008_create_reservations::Migration),
            Box::new(m20261129_000009_create_metering::Migration),
            Box::new(m20261129_000010_add_outbox_delivery::Migration),
            Box::new(m20261129_000011_add_notice_state::Migration),
            Box::new(m20261129_000012_create_market::Migration),
            Box::new(m20261130_000013_leave_room_for_updates::Migration),
            Box::new(m20261202_000014_create_test_clock::Migration),
            Box::new(m20261202_000015_add_accounts_renews_at::Migration),
            Box::new(m20261203_000016_create_persisted_queries::Migration),
            Box::new(m20261203_000017_add_operator_records::Migration),
            Box::new(m20261203_000018_add_entry_detail::Migration),
            Box::new(m20261203_000019_add_metadata::Migration),
            Box::new(m20261203_000020_add_balance_after::Migration),
            Box::new(m20261203_000021_add_lot_priority::Migration),
            Box::new(m20261203_000022_add_lot_start_and_scope::Migration),
            Box::new(m20261203_000023_add_rollover_index::Migration),
            Box::new(m20261203_000024_add_purchase_end::Migration),
            Box::new(m20261203_000025_add_auto_topup::Migration),
            Box::new(m20261203_000027_create_spend_limits::Migration),
            Box::new(m20261204_000026_drop_auto_topup_pending_purchase::Migration),
            Box::new(m20261204_000029_add_stripe::Migration),
            Box::new(m20261204_000030_add_ad_reward_custom_data::Migration),
            Box::new(m20261204_000031_create_claim_rates::Migration),
            Box::new(m20261204_000032_add_outbox_lease::Migration),
            Box::new(m20261204_000033_partition_journal::Migration),
            Box::new(m20261205_000034_plan_grants_by_lot::Migration),
        ]
    }
}
