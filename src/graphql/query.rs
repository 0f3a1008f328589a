//! The query root: one object per domain, merged (`MergedObject`), each in its domain's module.

use crate::graphql::accounts::AccountsQuery;
use crate::graphql::admin::AdminQuery;
use crate::graphql::audits::AuditsQuery;
use crate::graphql::console::ConsoleQuery;
use crate::graphql::market_root::MarketQuery;
use crate::graphql::operations::OperationsQuery;
use crate::graphql::prices::PricesQuery;
use crate::graphql::program::ProgramQuery;
use crate::graphql::purchases::PurchasesQuery;
use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    AccountsQuery,
    PurchasesQuery,
    PricesQuery,
    MarketQuery,
    ProgramQuery,
    AdminQuery,
    OperationsQuery,
    AuditsQuery,
    ConsoleQuery,
);
