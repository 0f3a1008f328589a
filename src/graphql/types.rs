//! GraphQL output and enum types, built from domain and stored types. Entities never derive
//! GraphQL traits: the public contract must not move when a table does.

use crate::entity::{account, journal_line, lot, purchase};
use crate::graphql::amount::{CreditAmount, SignedCreditAmount};
use crate::graphql::context::{app, require_account};
use crate::graphql::error::ApiResult;
use crate::ledger::{self, Credits};
use crate::service::ServiceError;
use crate::service::reads::{BalanceView, HistoryItem, page_size, parse_cursor};
use crate::store::journal::{EntryKind as StoreKind, HistoryFilter as StoreFilter};
use async_graphql::connection::{Connection, Edge};
use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

pub fn credits(c: Credits) -> CreditAmount {
    CreditAmount(c)
}

/// A signed amount of micro-credits: a change to an account's credits.
pub fn signed(micros: i64) -> SignedCreditAmount {
    SignedCreditAmount::from_micros(micros)
}

/// A stored amount of micro-credits that the database's CHECK constraints keep non-negative.
fn stored(micros: i64, what: impl FnOnce() -> String) -> Result<CreditAmount, ServiceError> {
    if micros < 0 {
        return Err(corrupt(format!("{}: negative credits {micros}", what())));
    }
    Ok(CreditAmount(Credits::from_micros(micros)))
}

macro_rules! mirror_enum {
    ($(#[$meta:meta])* $name:ident <=> $domain:path { $($(#[$variant_meta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
        pub enum $name { $($(#[$variant_meta])* $variant),+ }

        impl From<$domain> for $name {
            fn from(value: $domain) -> Self {
                use $domain as D;
                match value { $(D::$variant => $name::$variant),+ }
            }
        }

        impl From<$name> for $domain {
            fn from(value: $name) -> Self {
                use $domain as D;
                match value { $($name::$variant => D::$variant),+ }
            }
        }
    };
}
pub(crate) use mirror_enum;

mirror_enum!(
    /// What a lot is worth to its holder: decides refunds and the order of consumption.
    LotClass <=> ledger::LotClass { Paid, Promotional, Free }
);
mirror_enum!(
    /// Where a lot came from.
    LotSource <=> ledger::LotSource {
        Purchase, Subscription, MonthlyPlan, CheckIn, Referral, SignUp, Coupon, Feedback, Event,
        FirstPurchaseBonus, DailyFree, AdReward, Lucky, ProviderEarnings, Adjustment,
    }
);
mirror_enum!(
    /// Active accounts do everything; inactive ones can be charged only for storage; suspended
    /// ones can only be read.
    AccountStatus <=> ledger::AccountStatus { Active, Inactive, Suspended }
);
mirror_enum!(
    /// What a journal entry records.
    EntryKind <=> StoreKind { Grant, Spend, Expire, Refund, Revoke, Adjust, Transfer, Hold, Release }
);
mirror_enum!(
    /// Where a reservation stands: held until captured, released, or past its deadline.
    ReservationStatus <=> crate::ledger::reservation::ReservationStatus { Held, Captured, Released, Expired }
);

/// An account: one wallet holder, keyed by the product's own user id.
pub struct Account(pub account::Model);

#[Object]
impl Account {
    /// The product's own id for this account.
    async fn id(&self) -> ID {
        ID(self.0.external_id.clone())
    }
    async fn plan(&self) -> &str {
        &self.0.plan
    }
    async fn status(&self) -> ApiResult<AccountStatus> {
        Ok(crate::service::accounts::status_of(&self.0)?.into())
    }
    async fn identity_verified(&self) -> bool {
        self.0.identity_verified
    }
    async fn credit_mail_enabled(&self) -> bool {
        self.0.credit_mail_enabled
    }
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
        Ok(Balance::from(view))
    }

    /// Lots, newest first; open ones only unless `includeClosed`.
    async fn lots(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(default = false)] include_closed: bool,
    ) -> ApiResult<Connection<String, Lot>> {
        let (limit, after) = (page_size(first)?, parse_cursor(after.as_deref())?);
        let app = app(ctx);
        let (rows, more) = app.ledger.lots_page(self.0.id, include_closed, after, limit).await?;
        let now = app.clock.now();
        let mut connection = Connection::new(after.is_some(), more);
        for row in rows {
            connection.edges.push(Edge::new(row.id.to_string(), Lot::new(row, now)?));
        }
        Ok(connection)
    }

    /// The journal, newest first by sequence.
    async fn history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<HistoryFilter>,
    ) -> ApiResult<Connection<String, JournalEntry>> {
        let (limit, after) = (page_size(first)?, parse_cursor(after.as_deref())?);
        let filter = filter.map(HistoryFilter::into_store).transpose()?.unwrap_or_default();
        let (items, more) = app(ctx).ledger.history_page(self.0.id, &filter, after, limit).await?;
        let mut connection = Connection::new(after.is_some(), more);
        for item in items {
            connection.edges.push(Edge::new(item.entry.id.to_string(), JournalEntry::try_from(item)?));
        }
        Ok(connection)
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
            rate_per_hour: status.rate_per_hour,
            threshold: status.threshold.map(credits),
            notified_at: status.notified_at,
            credit_mail: status.credit_mail,
        })
    }

    /// Market jobs this account submitted, newest first.
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Connection<String, crate::graphql::market::MarketJob>> {
        let (limit, after) = (page_size(first)?, parse_cursor(after.as_deref())?);
        let (jobs, more) = app(ctx).ledger.jobs_page(self.0.id, after, limit).await?;
        let mut connection = Connection::new(after.is_some(), more);
        connection.edges.extend(jobs.into_iter().map(|j| Edge::new(j.id.to_string(), crate::graphql::market::MarketJob::from(j))));
        Ok(connection)
    }

    /// Metered containers of this account.
    async fn containers(&self, ctx: &Context<'_>) -> ApiResult<Vec<crate::graphql::metering::Container>> {
        Ok(app(ctx).ledger.containers(self.0.id).await?.into_iter().map(Into::into).collect())
    }

    /// A month's usage page ("2026-11"; the current month when not given): what was used, what
    /// was deducted, per resource, per container per day, and the AI logs.
    async fn usage(&self, ctx: &Context<'_>, month: Option<String>) -> ApiResult<crate::graphql::metering::UsageReport> {
        let app = app(ctx);
        let month = month.unwrap_or_else(|| crate::ledger::time::month_key(app.clock.now()));
        Ok(crate::graphql::metering::UsageReport::new(self.0.id, app.ledger.usage_report(self.0.id, &month).await?))
    }

    /// Purchases, newest first: date, package, credits, amount. Only what was bought (paid,
    /// then perhaps refunded) unless `includePending` asks for purchases never paid too.
    async fn purchases(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100; 20 when omitted.")] first: Option<i32>,
        #[graphql(desc = "The cursor of the last purchase of the previous page.")] after: Option<String>,
        #[graphql(desc = "Also list purchases whose payment was never confirmed (status PENDING).", default = false)] include_pending: bool,
    ) -> ApiResult<Connection<String, Purchase>> {
        let (limit, after) = (page_size(first)?, parse_cursor(after.as_deref())?);
        let (rows, more) = app(ctx).ledger.purchases_page(self.0.id, include_pending, after, limit).await?;
        let mut connection = Connection::new(after.is_some(), more);
        connection.edges.extend(rows.into_iter().map(|p| Edge::new(p.id.to_string(), Purchase(p))));
        Ok(connection)
    }
}

impl Account {
    /// Loads an account the caller may see.
    pub async fn load(ctx: &Context<'_>, external_id: &str) -> ApiResult<Account> {
        require_account(ctx, external_id)?;
        Ok(Account(app(ctx).ledger.account(external_id).await?))
    }
}

/// An account's credits now. `total = available + held`; the bars split both by source.
#[derive(SimpleObject)]
pub struct Balance {
    /// The account's credits now: what it may spend plus what open reservations hold.
    /// Expired lots never count, nor does a hold past its deadline (its credits are available
    /// again).
    pub total: CreditAmount,
    /// Credits held by open reservations: taken from the lots until captured, released or past
    /// their deadline.
    pub held: CreditAmount,
    /// `total - held`: what a spend or a new reservation may take now, the day's free credits
    /// included (they are the last tier of every spend).
    pub available: CreditAmount,
    /// One bar per source, largest first. Their `remaining` add up to `available`, their `held`
    /// to `held`.
    pub bars: Vec<BalanceBar>,
}

/// The credits of one source (a status bar).
#[derive(SimpleObject)]
pub struct BalanceBar {
    /// Where these credits came from.
    pub source: LotSource,
    /// What they are worth to the user (paid, promotional, free).
    pub class: LotClass,
    /// What a spend may take from this source now.
    pub remaining: CreditAmount,
    /// What open reservations hold of this source.
    pub held: CreditAmount,
    /// True for the day's free credits while other credits are left: they count in `available`
    /// but are used only once every other credit is.
    pub waiting: bool,
    /// Remaining per expiry date, soonest first; a null `expiresAt` never expires.
    pub expiries: Vec<Expiry>,
}

/// Credits of a bar that expire at one instant.
#[derive(SimpleObject)]
pub struct Expiry {
    /// The exclusive instant they stop counting; null never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// How many credits expire then.
    pub remaining: CreditAmount,
}

impl From<BalanceView> for Balance {
    fn from(view: BalanceView) -> Self {
        let mut sorted = view.bars;
        sorted.sort_by_key(|bar| std::cmp::Reverse(bar.remaining.checked_add(bar.held)));
        let bars: Vec<BalanceBar> = sorted
            .into_iter()
            .map(|bar| BalanceBar {
                source: bar.source.into(),
                class: bar.class.into(),
                remaining: credits(bar.remaining),
                held: credits(bar.held),
                waiting: bar.waiting,
                expiries: bar
                    .expiries
                    .into_iter()
                    .map(|(expires_at, remaining)| Expiry { expires_at, remaining: credits(remaining) })
                    .collect(),
            })
            .collect();
        let total = view.available.checked_add(view.held).expect("an account's credits fit");
        Balance { total: credits(total), held: credits(view.held), available: credits(view.available), bars }
    }
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Lot {
    pub id: ID,
    pub class: LotClass,
    pub source: LotSource,
    pub granted: CreditAmount,
    pub remaining: CreditAmount,
    pub granted_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Past its expiry instant; its credits no longer count.
    pub expired: bool,
    /// What the lot came from ("purchase", "grant", "account") and its id there.
    pub origin_kind: Option<String>,
    pub origin_id: Option<String>,
}

#[ComplexObject]
impl Lot {
    /// Credits of this lot spendable now.
    async fn spendable(&self) -> CreditAmount {
        if self.expired { CreditAmount(Credits::ZERO) } else { self.remaining }
    }
}

/// A stored value the code does not know: the database was changed behind the service's back.
fn corrupt(what: String) -> ServiceError {
    ServiceError::Internal(anyhow::anyhow!(what))
}

impl Lot {
    pub fn new(model: lot::Model, now: DateTime<Utc>) -> Result<Lot, ServiceError> {
        let expired = model.expires_at.is_some_and(|at| at <= now);
        Ok(Lot {
            id: ID(model.id.to_string()),
            class: model.class.parse::<ledger::LotClass>().map_err(corrupt)?.into(),
            source: model.source.parse::<ledger::LotSource>().map_err(corrupt)?.into(),
            granted: stored(model.granted_micros, || format!("lot {}", model.id))?,
            remaining: stored(model.remaining_micros, || format!("lot {}", model.id))?,
            granted_at: model.granted_at,
            expires_at: model.expires_at,
            expired,
            origin_kind: model.origin_kind,
            origin_id: model.origin_id,
        })
    }
}

#[derive(SimpleObject)]
pub struct JournalEntry {
    /// The journal's sequence number: strictly increasing, the order of "newest first".
    pub sequence: ID,
    pub kind: EntryKind,
    /// The net change to the account's credits (negative for a spend or expiry).
    pub amount: SignedCreditAmount,
    /// When the change took effect (an expiry is dated at the lot's expiry instant).
    pub effective_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub operation: String,
    pub idempotency_key: Option<String>,
    pub feature: Option<String>,
    pub model: Option<String>,
    pub reason: Option<String>,
    pub lines: Vec<JournalLine>,
}

#[derive(SimpleObject)]
pub struct JournalLine {
    pub lot_id: ID,
    /// The change to this lot (negative when credits left it).
    pub amount: SignedCreditAmount,
}

impl From<&journal_line::Model> for JournalLine {
    fn from(line: &journal_line::Model) -> Self {
        JournalLine { lot_id: ID(line.lot_id.to_string()), amount: signed(line.delta_micros) }
    }
}

impl TryFrom<HistoryItem> for JournalEntry {
    type Error = ServiceError;

    fn try_from(item: HistoryItem) -> Result<Self, ServiceError> {
        let e = item.entry;
        Ok(JournalEntry {
            sequence: ID(e.id.to_string()),
            kind: StoreKind::parse(&e.kind).ok_or_else(|| corrupt(format!("journal entry {}: kind {:?}", e.id, e.kind)))?.into(),
            amount: signed(e.amount_micros),
            effective_at: e.effective_at,
            recorded_at: e.created_at,
            operation: e.operation,
            idempotency_key: e.idempotency_key,
            feature: e.feature,
            model: e.model,
            reason: e.reason,
            lines: item.lines.iter().map(JournalLine::from).collect(),
        })
    }
}

/// Filters on the journal; all given conditions must hold.
#[derive(InputObject, Default)]
pub struct HistoryFilter {
    /// Only these kinds of entries.
    pub kinds: Option<Vec<EntryKind>>,
    pub feature: Option<String>,
    /// Effective at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Effective strictly before this instant.
    pub until: Option<DateTime<Utc>>,
}

impl HistoryFilter {
    fn into_store(self) -> Result<StoreFilter, ServiceError> {
        if let (Some(from), Some(until)) = (self.from, self.until)
            && from >= until
        {
            return Err(crate::service::ServiceError::bad_input("from must be before until"));
        }
        let feature = self.feature.as_deref().map(|f| crate::service::input::label("feature", f)).transpose()?;
        let kinds = self.kinds.unwrap_or_default();
        if kinds.len() > StoreKind::ALL.len() {
            return Err(crate::service::ServiceError::bad_input("too many kinds"));
        }
        Ok(StoreFilter { kinds: kinds.into_iter().map(Into::into).collect(), feature, from: self.from, until: self.until })
    }
}

#[derive(SimpleObject)]
pub struct Money {
    /// An integer amount of the currency's minor unit (cents for USD).
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: String,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PurchaseStatus {
    Pending,
    Paid,
    Refunded,
}

pub struct Purchase(pub purchase::Model);

#[Object]
impl Purchase {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn package_code(&self) -> Option<&str> {
        self.0.package_code.as_deref()
    }
    /// The package's name, or null for a custom amount.
    async fn package(&self) -> Option<&str> {
        self.0.package_name.as_deref()
    }
    /// The credits bought.
    async fn credits(&self) -> ApiResult<CreditAmount> {
        Ok(stored(self.0.credits_micros, || format!("purchase {}", self.0.id))?)
    }
    async fn amount(&self) -> Money {
        Money { amount_minor: self.0.price_minor, currency: self.0.currency.clone() }
    }
    /// PENDING until the payment is confirmed, then PAID; REFUNDED after a refund.
    async fn status(&self) -> ApiResult<PurchaseStatus> {
        match self.0.status.as_str() {
            "pending" => Ok(PurchaseStatus::Pending),
            "paid" => Ok(PurchaseStatus::Paid),
            "refunded" => Ok(PurchaseStatus::Refunded),
            other => Err(corrupt(format!("purchase {}: status {other:?}", self.0.id)).into()),
        }
    }
    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.0.paid_at
    }
    async fn payment_reference(&self) -> Option<&str> {
        self.0.payment_reference.as_deref()
    }
    /// What was paid back, once refunded.
    async fn refunded_amount(&self) -> Option<Money> {
        self.0.refunded_minor.map(|amount_minor| Money { amount_minor, currency: self.0.currency.clone() })
    }
    async fn refunded_at(&self) -> Option<DateTime<Utc>> {
        self.0.refunded_at
    }
    /// The paid lot, once confirmed.
    async fn lot_id(&self) -> Option<ID> {
        self.0.lot_id.map(|id| ID(id.to_string()))
    }
}

#[derive(SimpleObject)]
pub struct CreditPackage {
    pub code: String,
    pub name: String,
    pub credits: CreditAmount,
    pub price: Money,
}

/// A plan with its monthly credits and limits.
#[derive(SimpleObject)]
pub struct Plan {
    pub code: String,
    pub name: String,
    /// Credits granted each period (a calendar month, or a month from the plan's start).
    pub monthly_credits: Option<CreditAmount>,
    /// The plan's price per month, where published.
    pub price: Option<Money>,
    /// A paid subscription.
    pub paid: bool,
    /// Free storage before storage is charged, in GB.
    pub storage_quota_gb: Option<Decimal>,
    /// The most lucky credits one daily draw can give.
    pub lucky_max_credits: Option<CreditAmount>,
}

impl Plan {
    pub fn new(plan: &crate::program::Plan, currency: &str) -> Plan {
        Plan {
            code: plan.code.clone(),
            name: plan.name.clone(),
            monthly_credits: plan.monthly_credits.map(credits),
            price: plan.price_minor.map(|amount_minor| Money { amount_minor, currency: currency.to_string() }),
            paid: plan.paid,
            storage_quota_gb: plan.storage_quota_gb,
            lucky_max_credits: plan.lucky_max_credits.map(credits),
        }
    }
}

/// The program this deployment runs.
#[derive(SimpleObject)]
pub struct ProgramInfo {
    pub name: String,
    pub currency: String,
    /// Minor units per credit; may be fractional.
    pub credit_price_minor: Decimal,
    pub minimum_purchase: CreditAmount,
    /// "never", "end of month", or a count and unit such as "1 month" or "30 days".
    pub purchased_validity: String,
    /// Tiers of lot classes, consumed in order; soonest expiry first within a tier.
    pub consumption_order: Vec<Vec<LotClass>>,
    pub plans: Vec<Plan>,
}

#[derive(SimpleObject)]
pub struct CheckInStatus {
    /// Whether this program has a daily check-in.
    pub enabled: bool,
    pub claimed_today: bool,
    /// Now if today is not claimed yet, else the next 00:00 UTC.
    pub next_available_at: DateTime<Utc>,
    /// Consecutive UTC days checked in, up to today (or yesterday, while today is still open).
    pub streak: i32,
    /// What one check-in grants.
    pub credits: Option<CreditAmount>,
}

pub struct Coupon(pub crate::entity::coupon::Model);

#[Object]
impl Coupon {
    async fn code(&self) -> &str {
        &self.0.code
    }
    /// The credits one redemption grants.
    async fn credits(&self) -> ApiResult<CreditAmount> {
        Ok(stored(self.0.credits_micros, || format!("coupon {}", self.0.id))?)
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// How long the granted credits last from redemption, such as "30 days" or "1 month".
    async fn valid_for(&self) -> ApiResult<Option<String>> {
        // Stored in the canonical form ("1 months"); shown as people write it.
        let stored = self.0.valid_for.as_deref().map(str::parse::<ledger::Validity>).transpose();
        let validity = stored.map_err(|e| corrupt(format!("coupon {}: valid_for: {e}", self.0.id)))?;
        Ok(validity.map(|v| v.to_string()))
    }
    async fn starts_at(&self) -> Option<DateTime<Utc>> {
        self.0.starts_at
    }
    async fn ends_at(&self) -> Option<DateTime<Utc>> {
        self.0.ends_at
    }
    async fn max_redemptions(&self) -> Option<i64> {
        self.0.max_redemptions
    }
    async fn redemptions(&self) -> i64 {
        self.0.redemptions
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(SimpleObject)]
pub struct LuckyCredits {
    /// A paid subscriber, within the promotion's dates.
    pub eligible: bool,
    /// Why not, when not eligible.
    pub reason: Option<String>,
    pub claimed_today: bool,
    /// The daily reset drew today's drop for this account and it waits to be claimed (the
    /// banner); the amount stays a surprise until the claim.
    pub drop_waiting: bool,
    /// What today's claim drew.
    pub claimed: Option<CreditAmount>,
    /// The plan's maximum for one day's draw.
    pub max_credits: Option<CreditAmount>,
    /// Now, or the next 00:00 UTC once today's claim is made; null when not eligible.
    pub next_available_at: Option<DateTime<Utc>>,
    pub promotion_ends_at: Option<DateTime<Utc>>,
}

/// A use of a priced feature: its model and options (the defaults when not given), or for a
/// token-priced feature, the tokens one question used.
#[derive(InputObject, Default)]
pub struct PriceOptionsInput {
    pub model: Option<String>,
    pub count: Option<u32>,
    pub length_seconds: Option<u32>,
    pub resolution: Option<String>,
    pub tokens: Option<TokenUsageInput>,
}

#[derive(InputObject, Clone, Copy)]
pub struct TokenUsageInput {
    #[graphql(default)]
    pub input: u32,
    #[graphql(default)]
    pub output: u32,
    #[graphql(default)]
    pub cache_write: u32,
    #[graphql(default)]
    pub cache_read: u32,
}

impl From<TokenUsageInput> for crate::ledger::pricing::TokenUsage {
    fn from(t: TokenUsageInput) -> Self {
        crate::ledger::pricing::TokenUsage {
            input: t.input.into(),
            output: t.output.into(),
            cache_write: t.cache_write.into(),
            cache_read: t.cache_read.into(),
        }
    }
}

impl PriceOptionsInput {
    pub fn into_ref(self, feature: &str) -> crate::service::prices::PriceRef {
        crate::service::prices::PriceRef {
            feature: feature.to_string(),
            model: self.model,
            count: self.count,
            length_seconds: self.length_seconds,
            resolution: self.resolution,
            tokens: self.tokens.map(Into::into),
        }
    }
}

/// A price before use, with its breakdown: the base price, then each option's factor (or, for
/// tokens, each kind's count). The total is computed exactly and rounded once, half up.
#[derive(SimpleObject)]
pub struct PriceQuote {
    pub feature: String,
    pub model: Option<String>,
    pub total: CreditAmount,
    pub lines: Vec<PriceQuoteLine>,
}

#[derive(SimpleObject)]
pub struct PriceQuoteLine {
    pub label: String,
    pub factor: Decimal,
}

impl From<crate::ledger::pricing::Quote> for PriceQuote {
    fn from(q: crate::ledger::pricing::Quote) -> Self {
        PriceQuote {
            feature: q.feature,
            model: q.model,
            total: credits(q.total),
            lines: q.lines.into_iter().map(|l| PriceQuoteLine { label: l.label, factor: l.factor }).collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct LowCredits {
    /// Whether this program warns of low credits at all.
    pub enabled: bool,
    pub applies: bool,
    pub reason: Option<String>,
    pub balance: CreditAmount,
    /// What the account's running usage costs an hour now (metered programs).
    pub rate_per_hour: Option<Decimal>,
    /// The balance under which the nudge applies (threshold programs).
    pub threshold: Option<CreditAmount>,
    /// When this cycle's warning went out; null once a purchase (or, for a threshold, a
    /// recovery) re-armed it.
    pub notified_at: Option<DateTime<Utc>>,
    /// Whether the account receives credit mail.
    pub credit_mail: bool,
}
