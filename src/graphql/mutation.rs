//! The mutation root: one object per domain, merged (`MergedObject`), each in its domain's module.

use crate::graphql::accounts::AccountsMutation;
use crate::graphql::audits::AuditsMutation;
use crate::graphql::auto_topup::AutoTopUpMutation;
use crate::graphql::bulk::BulkMutation;
use crate::graphql::claims::ClaimsMutation;
use crate::graphql::clock::ClockMutation;
use crate::graphql::console::ConsoleMutation;
use crate::graphql::corrections::CorrectionsMutation;
use crate::graphql::gifts::GiftsMutation;
use crate::graphql::market_root::MarketMutation;
use crate::graphql::metering_root::MeteringMutation;
use crate::graphql::operations::OperationsMutation;
use crate::graphql::portal::PortalMutation;
use crate::graphql::purchases::PurchasesMutation;
use crate::graphql::reservations::ReservationsMutation;
use crate::graphql::spend_limits::SpendLimitsMutation;
use crate::graphql::spending::SpendingMutation;
use async_graphql::MergedObject;

/// What can be done: accounts, purchases, spending and reservations, claims, the market,
/// metering, and the operator's actions. Each field says which roles may call it; every
/// credit-moving mutation takes an idempotency key, and an error changes nothing.
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    AccountsMutation,
    PurchasesMutation,
    AutoTopUpMutation,
    SpendingMutation,
    BulkMutation,
    ReservationsMutation,
    ClaimsMutation,
    MarketMutation,
    MeteringMutation,
    ClockMutation,
    PortalMutation,
    OperationsMutation,
    AuditsMutation,
    ConsoleMutation,
    CorrectionsMutation,
    SpendLimitsMutation,
    GiftsMutation,
);
