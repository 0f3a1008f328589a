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
use async_graphql::connection::{Edge, EmptyFields, PageInfo};
use async_graphql::{Context, Object, OutputType, TypeName};
use std::borrow::Cow;

/// A connection of `N` with `totalCount`: the `{N}Connection` type, with async-graphql's
/// `{N}Edge` and `PageInfo`. It is ours rather than async-graphql's `Connection` only so the type
/// has a description (that one takes none); names, fields and their order are the same.
pub struct Paged<N: OutputType> {
    edges: Vec<Edge<String, N, EmptyFields>>,
    has_previous_page: bool,
    has_next_page: bool,
    total_count: TotalCount,
}

impl<N: OutputType> TypeName for Paged<N> {
    fn type_name() -> Cow<'static, str> {
        // async-graphql's `DefaultConnectionName`: the node's name and "Connection".
        format!("{}Connection", N::type_name()).into()
    }
}

/// One page of a list (a cursor connection): its edges (a cursor and a node each), the nodes
/// alone, `pageInfo` to move to the next or previous page, and `totalCount`. The field that
/// returns it takes `first`/`after` or `last`/`before`; a page holds at most 100 items.
#[Object(name_type)]
impl<N: OutputType> Paged<N> {
    /// Information to aid in pagination.
    async fn page_info(&self) -> PageInfo {
        PageInfo {
            has_previous_page: self.has_previous_page,
            has_next_page: self.has_next_page,
            start_cursor: self.edges.first().map(|edge| edge.cursor.clone()),
            end_cursor: self.edges.last().map(|edge| edge.cursor.clone()),
        }
    }

    /// A list of edges.
    async fn edges(&self) -> &[Edge<String, N, EmptyFields>] {
        &self.edges
    }

    /// A list of nodes.
    async fn nodes(&self) -> Vec<&N> {
        self.edges.iter().map(|edge| &edge.node).collect()
    }

    #[graphql(flatten)]
    async fn total_count(&self) -> &TotalCount {
        &self.total_count
    }
}

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
/// node. `pageInfo`'s start and end cursors are the first and last edges'.
pub fn connection<T, N: OutputType>(
    list: List,
    page: Page<T>,
    counted: Counted,
    mut edge: impl FnMut(T) -> ApiResult<(i64, N)>,
) -> ApiResult<Paged<N>> {
    let mut edges = Vec::with_capacity(page.items.len());
    for item in page.items {
        let (id, node) = edge(item)?;
        edges.push(Edge::new(cursor(list, id), node));
    }
    Ok(Paged { edges, has_previous_page: page.has_previous, has_next_page: page.has_next, total_count: TotalCount(counted) })
}
