//! Accounts: the `Account` object with everything read through it, the caller's own account and
//! any account, and creating an account and changing its status, plan and switches.

use crate::auth::Caller;
use crate::graphql::amount::CreditAmount;
use crate::graphql::amount::DecimalValue;
use crate::graphql::context::{app, caller, require_account, require_service};
use crate::graphql::error::{ApiError, ApiResult};
use crate::graphql::paging::{Counted, Paged, connection};
use crate::graphql::types::*;
use crate::service::accounts::AccountView;
use crate::service::paging::{self, List};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// An account: one wallet holder, keyed by the product's own user id.
pub struct Account(pub AccountView);

/// An account: one wallet holder, keyed by the product's own user id. A user token reads its
/// own account only; service and admin tokens read any.
#[Object]
impl Account {
    /// The product's own id for this account.
    async fn id(&self) -> ID {
        ID(self.0.external_id.clone())
    }
    /// The code of the account's plan in this program (see `plans`).
    async fn plan(&self) -> &str {
        &self.0.plan
    }
    /// ACTIVE, INACTIVE (charged only for storage) or SUSPENDED (read only).
    async fn status(&self) -> AccountStatus {
        self.0.status.into()
    }
    /// Whether the product's backend marked the identity verified (`setIdentityVerified`):
    /// the market needs it to spend and to sell.
    async fn identity_verified(&self) -> bool {
        self.0.identity_verified
    }
    /// Whether the account receives credit mail: the low-credit warning and the
    /// expiring-credits notice (`setCreditMail`).
    async fn credit_mail_enabled(&self) -> bool {
        self.0.credit_mail_enabled
    }
    /// When the service created the account.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The code friends sign up with, where the program has referrals.
    async fn referral_code(&self) -> Option<&str> {
        self.0.referral_code.as_deref()
    }
    /// How many friends signed up with this account's code.
    async fn referral_count(&self, ctx: &Context<'_>) -> ApiResult<i64> {
        Ok(app(ctx).ledger.referral_count(self.0.id).await? as i64)
    }

    /// Credits spendable now, with a status bar per source. Expired lots never count, even
    /// before the worker has written them off.
    async fn balance(&self, ctx: &Context<'_>) -> ApiResult<Balance> {
        let app = app(ctx);
        let view = app.ledger.balance(&self.0, app.clock.now()).await?;
        Ok(Balance::of(view, self.0.external_id.clone()))
    }

    /// What a balance read at `at` showed: available and held apart, from the journal as
    /// recorded up to `at` (see `BalanceAt`). Null when the account did not exist yet at `at`;
    /// an instant after now is BAD_USER_INPUT. Its cost does not grow with the account's
    /// history before `at`.
    async fn balance_at(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The instant, RFC 3339 (\"2026-03-01T12:00:00Z\"); at most now. Counted to the microsecond.")] at: DateTime<Utc>,
    ) -> ApiResult<Option<crate::graphql::balance_at::BalanceAt>> {
        let app = app(ctx);
        let view = app.ledger.balance_at(&self.0, at, app.clock.now()).await?;
        Ok(view.map(Into::into))
    }

    /// The account's statement for a UTC month: opening and closing balance, grants by source,
    /// spends by feature, expiries, refunds, every entry kind's movement and every lot's month,
    /// with a SHA-256 digest of the month's journal entries (docs/statements.md). The month in
    /// progress is as of now (`complete` false). A month before the account existed is a
    /// statement of nothing; a malformed month, or one that has not started, is BAD_USER_INPUT.
    async fn statement(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The month, \"YYYY-MM\" (UTC), e.g. \"2026-03\"; at most the current month.")] month: String,
    ) -> ApiResult<crate::graphql::statements::Statement> {
        let app = app(ctx);
        let view = app.ledger.statement(&self.0, &month, app.clock.now()).await?;
        Ok(crate::graphql::statements::Statement::try_from(view)?)
    }

    /// The promotions applied to the account now, in this order of kinds: PLAN_CREDITS,
    /// DAILY_FREE_CREDITS, LUCKY_CREDITS, FIRST_PURCHASE_BONUS, then REFERRAL_BONUS and COUPON
    /// entries newest first, at most 50 of each. Nothing is granted by reading them.
    async fn benefits(&self, ctx: &Context<'_>) -> ApiResult<Vec<crate::graphql::benefits::Benefit>> {
        let app = app(ctx);
        let benefits = app.ledger.benefits(&self.0, app.clock.now()).await?;
        Ok(benefits.into_iter().map(Into::into).collect())
    }

    /// The spend limits the account's user set (`setSpendLimits`), each with what its current
    /// period has used, what remains, when it resets and whether it was exceeded.
    async fn spend_limits(&self, ctx: &Context<'_>) -> ApiResult<crate::graphql::spend_limits::SpendLimits> {
        crate::graphql::spend_limits::of_account(ctx, self).await
    }

    /// Lots, newest first; open ones only unless `includeClosed`.
    async fn lots(
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
        #[graphql(desc = "Also list closed lots: nothing left in them (used up, written off at expiry, revoked).", default = false)]
        include_closed: bool,
    ) -> ApiResult<Paged<Lot>> {
        let window = paging::window(List::Lots, first, after.as_deref(), last, before.as_deref())?;
        let app = app(ctx);
        let page = app.ledger.lots_page(self.0.id, include_closed, &window).await?;
        let now = app.clock.now();
        connection(List::Lots, page, Counted::Lots { account_id: self.0.id, include_closed }, |row| Ok((row.lot.id, Lot::new(row, now))))
    }

    /// The journal, newest first by sequence.
    async fn history(
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
        #[graphql(desc = "Only entries of these kinds, with this feature, within this time; `totalCount` counts with it too.")]
        filter: Option<HistoryFilter>,
    ) -> ApiResult<Paged<JournalEntry>> {
        let window = paging::window(List::History, first, after.as_deref(), last, before.as_deref())?;
        let filter = filter.map(HistoryFilter::into_store).transpose()?.unwrap_or_default();
        let page = app(ctx).ledger.history_page(self.0.id, &filter, &window).await?;
        connection(List::History, page, Counted::History { account_id: self.0.id, filter }, |item| {
            Ok((item.entry.id, JournalEntry::try_from(item)?))
        })
    }

    /// Today's check-in: claimed or not, when the next opens, the current streak.
    async fn check_in_status(&self, ctx: &Context<'_>) -> ApiResult<CheckInStatus> {
        let app = app(ctx);
        let status = app.ledger.check_in_status(self.0.id, app.clock.now()).await?;
        Ok(CheckInStatus {
            enabled: status.enabled,
            claimed_today: status.claimed_today,
            next_available_at: status.next_available_at,
            streak: status.streak as i32,
            credits: status.credits.map(credits),
        })
    }

    /// Today's lucky credits: whether this account may claim, and what it claimed.
    async fn lucky_credits(&self, ctx: &Context<'_>) -> ApiResult<LuckyCredits> {
        let app = app(ctx);
        let status = app.ledger.lucky_status(&self.0, app.clock.now()).await?;
        Ok(LuckyCredits {
            eligible: status.eligible,
            reason: status.reason,
            claimed_today: status.claimed_today.is_some(),
            drop_waiting: status.drop_waiting,
            claimed: status.claimed_today.map(credits),
            max_credits: status.max_credits.map(credits),
            next_available_at: status.next_available_at,
            promotion_ends_at: status.promotion_ends_at,
        })
    }

    /// Whether the low-credit warning applies now and why: under an hour of the current usage
    /// (arkain) or under a threshold (archipelag). The notification itself goes once per
    /// purchase cycle (or crossing), and only with credit mail on.
    async fn low_credits(&self, ctx: &Context<'_>) -> ApiResult<LowCredits> {
        let status = app(ctx).ledger.low_credits(&self.0).await?;
        Ok(LowCredits {
            enabled: status.enabled,
            applies: status.applies,
            reason: status.reason,
            balance: credits(status.balance),
            rate_per_hour: status.rate_per_hour.map(DecimalValue),
            threshold: status.threshold.map(credits),
            notified_at: status.notified_at,
            credit_mail: status.credit_mail,
        })
    }

    /// The account's auto top-up (`setAutoTopUp`), or null if none was ever set.
    async fn auto_top_up(&self, ctx: &Context<'_>) -> ApiResult<Option<crate::graphql::auto_topup::AutoTopUp>> {
        let app = app(ctx);
        Ok(app.ledger.auto_topup(self.0.id, app.clock.now()).await?.map(crate::graphql::auto_topup::AutoTopUp))
    }

    /// Market jobs this account submitted, newest first.
    async fn jobs(
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
    ) -> ApiResult<Paged<crate::graphql::market::MarketJob>> {
        let window = paging::window(List::Jobs, first, after.as_deref(), last, before.as_deref())?;
        let page = app(ctx).ledger.jobs_page(self.0.id, &window).await?;
        connection(List::Jobs, page, Counted::Jobs { account_id: self.0.id }, |j| Ok((j.id, crate::graphql::market::MarketJob::from(j))))
    }

    /// Metered containers of this account.
    async fn containers(&self, ctx: &Context<'_>) -> ApiResult<Vec<crate::graphql::metering::Container>> {
        Ok(app(ctx).ledger.containers(self.0.id).await?.into_iter().map(Into::into).collect())
    }

    /// A month's usage page ("2026-11"; the current month when not given): what was used, what
    /// was deducted, per resource, per container per day, and the AI logs.
    async fn usage(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A UTC month as \"YYYY-MM\" (\"2026-11\"); the current month when not given.")] month: Option<String>,
    ) -> ApiResult<crate::graphql::metering::UsageReport> {
        let app = app(ctx);
        let month = month.unwrap_or_else(|| crate::ledger::time::month_key(app.clock.now()));
        Ok(crate::graphql::metering::UsageReport::new(self.0.id, app.ledger.usage_report(self.0.id, &month).await?))
    }

    /// Purchases, newest first: date, package, credits, amount. Only what was bought (paid,
    /// then perhaps refunded) unless `includePending` asks for purchases never paid too
    /// (pending, cancelled, failed, expired).
    async fn purchases(
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
        #[graphql(
            desc = "Also list purchases whose payment was never confirmed: PENDING, and those that ended unpaid (CANCELLED, FAILED, EXPIRED).",
            default = false
        )]
        include_pending: bool,
    ) -> ApiResult<Paged<Purchase>> {
        let window = paging::window(List::Purchases, first, after.as_deref(), last, before.as_deref())?;
        let page = app(ctx).ledger.purchases_page(self.0.id, include_pending, &window).await?;
        connection(List::Purchases, page, Counted::Purchases { account_id: self.0.id, include_pending }, |p| Ok((p.id, Purchase(p))))
    }
}

impl Account {
    /// Loads an account the caller may see.
    pub async fn load(ctx: &Context<'_>, external_id: &str) -> ApiResult<Account> {
        require_account(ctx, external_id)?;
        Ok(Account(app(ctx).ledger.account(external_id).await?))
    }
}

/// A new account (service).
#[derive(InputObject)]
pub struct CreateAccountInput {
    /// The product's own user id: 1 to 128 characters.
    pub external_id: ID,
    /// A plan code of the program; the program's default when omitted.
    pub plan: Option<String>,
    /// A friend's referral code, where the program has referrals.
    pub referral_code: Option<String>,
}

/// What `createAccount` did.
#[derive(SimpleObject)]
pub struct CreateAccountPayload {
    /// The account: new, or the one that already had this external id.
    pub account: Account,
    /// False when the account already existed: the call is idempotent on the external id.
    pub created: bool,
    /// Whether a given referral code counted (false once the referrer has reached the cap).
    pub referral_accepted: Option<bool>,
}

/// A move to another plan (service).
#[derive(InputObject)]
pub struct ChangePlanInput {
    /// The account's external id.
    pub account_id: ID,
    /// The new plan's code (see `plans`); an unknown code is BAD_USER_INPUT.
    pub plan: String,
    /// 1 to 128 printable ASCII characters; the same key with the same request replays the
    /// first outcome, with another request it is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
}

/// What `changePlan` did.
#[derive(SimpleObject)]
pub struct ChangePlanPayload {
    /// The account, on its new plan.
    pub account: Account,
    /// The new plan's credits for the current period, if they were granted now.
    pub granted_lot_id: Option<ID>,
    /// The credits of that grant; null when none were granted now.
    pub granted: Option<CreditAmount>,
}

/// An account's new status (service, admin).
#[derive(InputObject)]
pub struct SetAccountStatusInput {
    /// The account's external id.
    pub account_id: ID,
    /// The status to set.
    pub status: AccountStatus,
}

#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The caller's own account (user tokens).
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<Account> {
        match caller(ctx)? {
            Caller::User { account } => Account::load(ctx, account).await,
            _ => Err(ApiError::Forbidden("me is for user tokens; service and admin use account(id)".into())),
        }
    }
    /// Any account (service, admin), or the caller's own (user).
    async fn account(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's external id (the product's own user id).")] id: ID,
    ) -> ApiResult<Account> {
        Account::load(ctx, &id).await
    }
}

#[derive(Default)]
pub struct AccountsMutation;

#[Object]
impl AccountsMutation {
    /// Creates an account, or returns the existing one with the same external id (service).
    async fn create_account(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The external id, and optionally a plan and a referral code.")] input: CreateAccountInput,
    ) -> ApiResult<CreateAccountPayload> {
        require_service(ctx)?;
        let app = app(ctx);
        let (account, created, referral_accepted) = app
            .ledger
            .create_referred_account(&input.external_id, input.plan.as_deref(), input.referral_code.as_deref(), app.clock.now())
            .await?;
        Ok(CreateAccountPayload { account: Account(account), created, referral_accepted })
    }

    /// Moves an account to another plan (service, after payment; a user never changes its own
    /// plan). Accrued usage is settled first; the new plan's credits for the current period are
    /// granted unless this account already had them.
    async fn change_plan(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account, the new plan and an idempotency key.")] input: ChangePlanInput,
    ) -> ApiResult<ChangePlanPayload> {
        require_service(ctx)?;
        let app = app(ctx);
        let change = app.ledger.change_plan(&input.account_id, &input.plan, &input.idempotency_key, app.clock.now()).await?;
        let account = app.ledger.account(&input.account_id).await?;
        Ok(ChangePlanPayload {
            account: Account(account),
            granted_lot_id: change.granted.as_ref().map(|g| ID(g.lot_id.to_string())),
            granted: change.granted.map(|g| credits(g.amount)),
        })
    }

    /// Turns the account's credit mail on or off: the low-credit warning and the expiring-credits
    /// notice (user, or on behalf).
    async fn set_credit_mail(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's external id; a user token may name only its own.")] account_id: ID,
        #[graphql(desc = "True to receive credit mail, false to stop it.")] enabled: bool,
    ) -> ApiResult<Account> {
        require_account(ctx, &account_id)?;
        Ok(Account(app(ctx).ledger.set_credit_mail(&account_id, enabled).await?))
    }

    /// Marks an account's identity verified, or not (service, admin): the market needs it.
    async fn set_identity_verified(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's external id.")] account_id: ID,
        #[graphql(desc = "True once the product has verified the identity; false withdraws it.")] verified: bool,
    ) -> ApiResult<Account> {
        require_service(ctx)?;
        Ok(Account(app(ctx).ledger.set_identity_verified(&account_id, verified).await?))
    }

    /// Moves an account between ACTIVE, INACTIVE and SUSPENDED (service, admin).
    async fn set_account_status(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account and its new status.")] input: SetAccountStatusInput,
    ) -> ApiResult<Account> {
        require_service(ctx)?;
        Ok(Account(app(ctx).ledger.set_status(&input.account_id, input.status.into()).await?))
    }
}
