//! The API's connections: a service page becomes edges with opaque cursors, a complete
//! `pageInfo`, and a `totalCount` counted only when the client selects it.
//!
//! The paging arguments (`first`, `after`, `last`, `before`) are declared on each connection's
//! field, with the same descriptions, since async-graphql takes a description only as a literal;
//! `service::paging::window` reads them, the same way for every list.

use crate::graphql::context::app;
use crate::graphql::error::ApiResult;
use crate::service::paging::{List, Page, cursor};
use crate::store::journal::HistoryFilter;
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Object, OutputType};

/// A connection of `N` with `totalCount`.
pub type Paged<N> = Connection<String, N, TotalCount>;

/// What a connection's `totalCount` counts: the list, with the arguments its pages were read
/// with (the filters, not the page's window).
pub enum Counted {
    Lots {
        account_id: i64,
        include_closed: bool,
    },
    History {
        account_id: i64,
        filter: HistoryFilter,
    },
    Purchases {
        account_id: i64,
        include_pending: bool,
    },
    Jobs {
        account_id: i64,
    },
    AiLogs {
        account_id: i64,
        month: String,
    },
    Accounts {
        search: String,
    },
    Coupons,
    /// The outbox, all events or those of one status (admin).
    Outbox {
        status: Option<crate::service::operations::OutboxStatus>,
    },
    /// The operators' log, everyone's or one operator's (admin).
    AdminActions {
        subject: Option<String>,
    },
}

/// The connection's own field beyond edges and `pageInfo`. The count is run by its resolver, so
/// a client that does not select it does not pay for it.
pub struct TotalCount(Counted);

#[Object]
impl TotalCount {
    /// How many items the whole list holds with the same arguments (`includeClosed`,
    /// `includePending`, `filter`, the month), whatever page this is. Counted when selected, by
    /// one COUNT: cheap on `lots`, `purchases`, `jobs` and a month's `aiLogs` (one account's rows,
    /// on an index) and on `coupons`; `accounts(search:)` reads every account's id. On `history` it reads every journal entry of the account that the filter
    /// keeps, so its cost grows with the account's journal: ask for it once (on the first page,
    /// say), not on every page.
    async fn total_count(&self, ctx: &Context<'_>) -> ApiResult<i64> {
        let ledger = &app(ctx).ledger;
        let count = match &self.0 {
            Counted::Lots { account_id, include_closed } => ledger.lots_count(*account_id, *include_closed).await?,
            Counted::History { account_id, filter } => ledger.history_count(*account_id, filter).await?,
            Counted::Purchases { account_id, include_pending } => ledger.purchases_count(*account_id, *include_pending).await?,
            Counted::Jobs { account_id } => ledger.jobs_count(*account_id).await?,
            Counted::AiLogs { account_id, month } => ledger.ai_logs_count(*account_id, month).await?,
            Counted::Accounts { search } => ledger.search_accounts_count(search).await?,
            Counted::Coupons => ledger.coupons_count().await?,
            Counted::Outbox { status } => ledger.outbox_count(*status).await?,
            Counted::AdminActions { subject } => ledger.admin_actions_count(subject.as_deref()).await?,
        };
        // A COUNT is never negative, and a list never holds 2^63 rows.
        Ok(i64::try_from(count).unwrap_or(i64::MAX))
    }
}

/// The connection of one page of `list`: each item becomes its row id (for the cursor) and its
/// node. `pageInfo`'s start and end cursors are the first and last edges' (async-graphql).
pub fn connection<T, N: OutputType>(
    list: List,
    page: Page<T>,
    counted: Counted,
    mut edge: impl FnMut(T) -> ApiResult<(i64, N)>,
) -> ApiResult<Paged<N>> {
    let mut connection = Connection::with_additional_fields(page.has_previous, page.has_next, TotalCount(counted));
    for item in page.items {
        let (id, node) = edge(item)?;
        connection.edges.push(Edge::new(cursor(list, id), node));
    }
    Ok(connection)
}
