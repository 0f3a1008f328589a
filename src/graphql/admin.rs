//! The operator's reads (admin): finding accounts, listing coupons, and auditing one account.
//! The console uses them; any other tool may do the same.

use crate::graphql::accounts::Account;
use crate::graphql::amount::CreditAmount;
use crate::graphql::claims::Coupon;
use crate::graphql::context::{app, require_admin};
use crate::graphql::error::ApiResult;
use crate::graphql::paging::{Counted, Paged, connection};
use crate::graphql::types::credits;
use crate::ledger::Credits;
use crate::service::admin_log::AdminActionView;
use crate::service::paging::{self, List};
use async_graphql::{Context, ID, Object, SimpleObject};

/// One account's audit: whether its stored rows agree with its journal.
#[derive(SimpleObject)]
pub struct AccountAudit {
    /// The account audited.
    pub account_id: ID,
    /// No problem found: every lot's remaining is its journal lines, every entry the sum of its
    /// lines, the cached balance the journal's total and the lots' sum, and every open hold its
    /// hold entry.
    pub clean: bool,
    /// What disagrees, one line each (at most 50 of each kind, then a count of the rest).
    pub problems: Vec<String>,
    /// The account's lots, open and closed.
    pub lots: i64,
    /// The account's journal entries.
    pub entries: i64,
    /// Credits held by the account's open reservations.
    pub held: CreditAmount,
    /// Open lots past their expiry that the expiry job has not written off yet (accepted: reads
    /// leave them out already).
    pub lots_awaiting_expiry: i64,
    /// When the audit ran, by the service's clock.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// One operator action from the operators' log.
pub struct AdminAction(pub AdminActionView);

#[Object]
impl AdminAction {
    /// The entry's id in the log.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// When the action was done, by the service's clock.
    async fn at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.at
    }

    /// The operator: the admin token's subject ("admin" for a token that names none).
    async fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The mutation's name, as in this schema (`grantCredits`, `setAccountStatus`, ...).
    async fn action(&self) -> &str {
        &self.0.action
    }

    /// The account the action named (its `accountId` argument, or the input's); null if none.
    async fn account_id(&self) -> Option<ID> {
        self.0.account_id.clone().map(ID)
    }

    /// The mutation's arguments as sent, variables filled in: a JSON object.
    async fn arguments(&self) -> &str {
        &self.0.arguments
    }
}

#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// Accounts whose id starts with `search`, newest first (admin): an exact id finds that
    /// account (and any whose id continues it). Case-sensitive; `%` and `_` are plain characters.
    #[allow(clippy::too_many_arguments)]
    async fn accounts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "An account id or its beginning: 1 to 128 characters, no control characters or surrounding spaces.")]
        search: String,
        #[graphql(
            desc = "Page size from the start of the list, or from `after`: 1 to 100. Not with `last`. With neither `first` nor `last` a page holds 20: from the start, or back from `before` when `before` alone is given."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "An opaque cursor of this list (an edge's `cursor`; `pageInfo.endCursor` for the next page): the page starts after it. A cursor of another list, or a plain number (the old format), is BAD_USER_INPUT."
        )]
        after: Option<String>,
        #[graphql(
            desc = "Page size from the end of the list, or back from `before`: 1 to 100. The nodes still come in the list's order. Not with `first`."
        )]
        last: Option<i32>,
        #[graphql(
            desc = "An opaque cursor of this list (`pageInfo.startCursor` for the page before): the page ends before it. A cursor of another list, or a plain number (the old format), is BAD_USER_INPUT."
        )]
        before: Option<String>,
    ) -> ApiResult<Paged<Account>> {
        require_admin(ctx)?;
        let window = paging::window(List::Accounts, first, after.as_deref(), last, before.as_deref())?;
        let page = app(ctx).ledger.search_accounts(&search, &window).await?;
        connection(List::Accounts, page, Counted::Accounts { search }, |a| Ok((a.id, Account(a))))
    }

    /// Every coupon, newest first, with its redemptions so far and its cap (admin).
    async fn coupons(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size from the start of the list, or from `after`: 1 to 100. Not with `last`. With neither `first` nor `last` a page holds 20: from the start, or back from `before` when `before` alone is given."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "An opaque cursor of this list (an edge's `cursor`; `pageInfo.endCursor` for the next page): the page starts after it. A cursor of another list, or a plain number (the old format), is BAD_USER_INPUT."
        )]
        after: Option<String>,
        #[graphql(
            desc = "Page size from the end of the list, or back from `before`: 1 to 100. The nodes still come in the list's order. Not with `first`."
        )]
        last: Option<i32>,
        #[graphql(
            desc = "An opaque cursor of this list (`pageInfo.startCursor` for the page before): the page ends before it. A cursor of another list, or a plain number (the old format), is BAD_USER_INPUT."
        )]
        before: Option<String>,
    ) -> ApiResult<Paged<Coupon>> {
        require_admin(ctx)?;
        let window = paging::window(List::Coupons, first, after.as_deref(), last, before.as_deref())?;
        let page = app(ctx).ledger.coupons_page(&window).await?;
        connection(List::Coupons, page, Counted::Coupons, |c| Ok((c.id, Coupon(c))))
    }

    /// The operators' log, newest first (admin): every admin mutation that succeeded, with the
    /// operator who sent it, the account it named and its arguments.
    #[allow(clippy::too_many_arguments)]
    async fn admin_actions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this operator's actions (an admin token's subject, exactly). Everyone's when omitted.")] subject: Option<
            String,
        >,
        #[graphql(
            desc = "Page size from the start of the list, or from `after`: 1 to 100. Not with `last`. With neither `first` nor `last` a page holds 20: from the start, or back from `before` when `before` alone is given."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "An opaque cursor of this list (an edge's `cursor`; `pageInfo.endCursor` for the next page): the page starts after it. A cursor of another list, or a plain number (the old format), is BAD_USER_INPUT."
        )]
        after: Option<String>,
        #[graphql(
            desc = "Page size from the end of the list, or back from `before`: 1 to 100. The nodes still come in the list's order. Not with `first`."
        )]
        last: Option<i32>,
        #[graphql(
            desc = "An opaque cursor of this list (`pageInfo.startCursor` for the page before): the page ends before it. A cursor of another list, or a plain number (the old format), is BAD_USER_INPUT."
        )]
        before: Option<String>,
    ) -> ApiResult<Paged<AdminAction>> {
        require_admin(ctx)?;
        let window = paging::window(List::AdminActions, first, after.as_deref(), last, before.as_deref())?;
        let page = app(ctx).ledger.admin_actions_page(subject.as_deref(), &window).await?;
        connection(List::AdminActions, page, Counted::AdminActions { subject }, |action| Ok((action.id, AdminAction(action))))
    }

    /// Audits one account now (admin): its rows against its journal. It reads only that
    /// account's rows, so it answers at once; the whole database's audit is `startAudit`, run by
    /// a worker (or `credits audit`).
    async fn audit_account(&self, ctx: &Context<'_>, #[graphql(desc = "The account's id.")] id: ID) -> ApiResult<AccountAudit> {
        require_admin(ctx)?;
        let app = app(ctx);
        let now = app.clock.now();
        let (account, report) = app.ledger.audit_account(&id, now).await?;
        Ok(AccountAudit {
            account_id: ID(account.external_id),
            clean: report.is_clean(),
            problems: report.problems,
            lots: report.lots,
            entries: report.entries,
            held: credits(Credits::from_micros(i64::try_from(report.held_micros).unwrap_or(i64::MAX))),
            lots_awaiting_expiry: report.pending_expiry_lots,
            at: now,
        })
    }
}
