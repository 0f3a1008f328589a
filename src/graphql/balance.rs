//! Balances and lots: what an account holds, by class and by expiry, and the low-credit signal.

use crate::graphql::amount::CreditAmount;
use crate::graphql::amount::DecimalValue;
use crate::graphql::context::app;
use crate::graphql::error::ApiResult;
use crate::graphql::runway::Runway;
use crate::graphql::types::*;
use crate::ledger::Credits;
use crate::service::reads::{BalanceView, LotView};
use async_graphql::{ComplexObject, Context, ID, SimpleObject};
use chrono::{DateTime, Utc};

/// An account's credits now. `total = available + held`; the bars split both by source.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Balance {
    /// The account's credits now: what it may spend plus what open reservations hold.
    /// Expired lots never count, nor does a hold past its deadline (its credits are available
    /// again).
    pub total: CreditAmount,
    /// Credits held by open reservations: taken from the lots until captured, released or past
    /// their deadline.
    pub held: CreditAmount,
    /// `total - held`: what a spend or a new reservation may take now, the day's free credits
    /// included (they are the last tier of every spend), and credits scoped to features
    /// included: `scoped` says which part is, `availableFor` what one feature may take.
    pub available: CreditAmount,
    /// One bar per source, largest first. Their `remaining` add up to `available`, their `held`
    /// to `held`.
    pub bars: Vec<BalanceBar>,
    /// The part of `available` that only some features may use, per scope (grants made with
    /// `features`); empty when every credit pays for any use.
    pub scoped: Vec<ScopedCredits>,
    /// Credits granted to start later (`effectiveAt`), per start, soonest first: not in
    /// `available` or `total` until then.
    pub upcoming: Vec<UpcomingCredits>,
    /// The account's external id, for `runway`, which reads more than the balance view holds.
    #[graphql(skip)]
    pub account_id: String,
}

#[ComplexObject]
impl Balance {
    /// How long these credits last at the account's burn rate, and how many expire before that
    /// rate reaches them (see `Runway`). Computed when asked for, at the time of the read (with
    /// `balanceChanged`, at each push), so a client that does not select it pays nothing.
    async fn runway(&self, ctx: &Context<'_>) -> ApiResult<Runway> {
        let app = app(ctx);
        let account = app.ledger.account(&self.account_id).await?;
        Ok(Runway(app.ledger.runway(&account, app.clock.now()).await?))
    }

    /// What a spend, reservation or settlement for `feature` may take now: `available` less
    /// the credits scoped to other features only.
    async fn available_for(&self, #[graphql(desc = "A feature name, as spends name it.")] feature: String) -> CreditAmount {
        let elsewhere: Credits = self.scoped.iter().filter(|s| !s.features.contains(&feature)).map(|s| s.available.0).sum();
        credits(self.available.0.checked_sub(elsewhere).expect("scoped credits are part of what is available"))
    }
}

/// Credits only some features may use.
#[derive(SimpleObject)]
pub struct ScopedCredits {
    /// The features these credits pay for, sorted.
    pub features: Vec<String>,
    /// What uses of those features may take of them now.
    pub available: CreditAmount,
}

/// Credits of future-effective grants that start at one instant.
#[derive(SimpleObject)]
pub struct UpcomingCredits {
    /// The instant they become spendable.
    pub effective_at: DateTime<Utc>,
    /// How many credits start then.
    pub amount: CreditAmount,
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

impl Balance {
    /// The balance `view` of the account `account_id` (its external id).
    pub fn of(view: BalanceView, account_id: String) -> Self {
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
        Balance {
            total: credits(total),
            held: credits(view.held),
            available: credits(view.available),
            bars,
            scoped: view
                .scoped
                .into_iter()
                .map(|(features, amount)| ScopedCredits { features: features.names().to_vec(), available: credits(amount) })
                .collect(),
            upcoming: view
                .upcoming
                .into_iter()
                .map(|(effective_at, amount)| UpcomingCredits { effective_at, amount: credits(amount) })
                .collect(),
            account_id,
        }
    }
}

/// One grant of credits: what it came with, what is left, and when it expires.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Lot {
    /// The lot's id, as named by journal lines and spend takes.
    pub id: ID,
    /// What the credits are worth to the holder (paid, promotional, free).
    pub class: LotClass,
    /// Where the credits came from.
    pub source: LotSource,
    /// The credits the lot was granted with.
    pub granted: CreditAmount,
    /// What is left of them, never below 0 (an expired lot keeps its remaining until the
    /// expiry job writes it off; `spendable` is then 0).
    pub remaining: CreditAmount,
    /// When the grant took effect.
    pub granted_at: DateTime<Utc>,
    /// The exclusive instant the lot stops counting; null: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// 0 to 100: within its tier of the order of consumption, lots of a lower priority are used
    /// first, before soonest expiry. 50 unless its grant set one.
    pub priority: i32,
    /// Past its expiry instant; its credits no longer count.
    pub expired: bool,
    /// A future-effective lot's start: before it the lot is upcoming. Null: spendable from
    /// `grantedAt`.
    pub effective_at: Option<DateTime<Utc>>,
    /// Before its `effectiveAt`: shown, not spendable, not in `available`.
    pub upcoming: bool,
    /// The features the lot may pay for, sorted; null: any use.
    pub features: Option<Vec<String>>,
    /// What the lot came from ("purchase", "grant", "account") and its id there.
    pub origin_kind: Option<String>,
    /// The id of that origin (a purchase's id, ...); null when the lot names none.
    pub origin_id: Option<String>,
}

#[ComplexObject]
impl Lot {
    /// Credits of this lot spendable now: none while it is upcoming or once it expired.
    async fn spendable(&self) -> CreditAmount {
        if self.expired || self.upcoming { CreditAmount(Credits::ZERO) } else { self.remaining }
    }
}

impl Lot {
    pub fn new(view: LotView, now: DateTime<Utc>) -> Lot {
        let LotView { lot, origin_kind, origin_id } = view;
        Lot {
            id: ID(lot.id.to_string()),
            class: lot.class.into(),
            source: lot.source.into(),
            granted: credits(lot.granted),
            remaining: credits(lot.remaining),
            granted_at: lot.granted_at,
            expires_at: lot.expires_at,
            priority: lot.priority.get().into(),
            expired: lot.is_expired(now),
            effective_at: lot.effective_at,
            upcoming: lot.is_upcoming(now),
            features: lot.features.map(|f| f.names().to_vec()),
            origin_kind,
            origin_id,
        }
    }
}

/// The low-credit warning: whether it applies to the account now, and why.
#[derive(SimpleObject)]
pub struct LowCredits {
    /// Whether this program warns of low credits at all.
    pub enabled: bool,
    /// True when the balance is low by the program's rule (under an hour of the current usage,
    /// or under `threshold`); always false when the program does not warn.
    pub applies: bool,
    /// Why it applies, in words ("4 credits is under 10"); null when it does not.
    pub reason: Option<String>,
    /// The balance the rule was checked against: the account's stored balance (the sum of its
    /// lots' remaining).
    pub balance: CreditAmount,
    /// What the account's running usage costs an hour now, in credits, exact, as a decimal
    /// string ("6.8"); null where the program does not meter usage.
    pub rate_per_hour: Option<DecimalValue>,
    /// The balance under which the nudge applies (threshold programs).
    pub threshold: Option<CreditAmount>,
    /// When this cycle's warning went out; null once a purchase (or, for a threshold, a
    /// recovery) re-armed it.
    pub notified_at: Option<DateTime<Utc>>,
    /// Whether the account receives credit mail.
    pub credit_mail: bool,
}
