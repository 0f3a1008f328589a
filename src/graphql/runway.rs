//! Runway (`Balance.runway`, `service::runway`): how long an account's credits last at its
//! burn rate, and what expires before that rate reaches it.

use crate::graphql::amount::{CreditAmount, DecimalValue};
use crate::graphql::types::credits;
use crate::ledger::Credits;
use crate::service::runway::{BurnBasis, RunwayView};
use async_graphql::{Enum, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// Where a runway's burn rate comes from.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "BurnBasis")]
pub enum BurnBasisValue {
    /// What the account's running containers (and stored bytes over its plan's quota) cost an
    /// hour now: while something runs, metering knows the rate better than history does.
    RunningUsage,
    /// The credits spent over the last 7 days (spends, and holds net of what was released),
    /// averaged per hour.
    RecentSpending,
    /// Nothing runs and nothing was spent in the last 7 days: the rate is zero, so the credits
    /// never run out and every credit with an expiry expires unused.
    NoUse,
}

impl From<BurnBasis> for BurnBasisValue {
    fn from(basis: BurnBasis) -> Self {
        match basis {
            BurnBasis::RunningUsage => BurnBasisValue::RunningUsage,
            BurnBasis::RecentSpending => BurnBasisValue::RecentSpending,
            BurnBasis::NoUse => BurnBasisValue::NoUse,
        }
    }
}

/// Credits of one expiry instant that the burn rate does not reach before it.
#[derive(SimpleObject)]
pub struct UnusedExpiry {
    /// The instant they expire.
    pub expires_at: DateTime<Utc>,
    /// How many expire then, to the nearest micro-credit.
    pub amount: CreditAmount,
}

/// `Balance.runway` (the type's description is on its `#[Object]` impl).
pub struct Runway(pub RunwayView);

/// A projection of the account's credits at its burn rate, from now: credits leave the lots in
/// the program's order of consumption (the order every spend takes), credits granted to start
/// later join at their start, and what a lot holds when it expires is lost. The day's free
/// credits are left out (they renew daily). Credits scoped to some features are counted as if
/// any use could take them. A projection: it changes as the rate does, and moves nothing.
#[Object]
impl Runway {
    /// Where the burn rate comes from.
    async fn basis(&self) -> BurnBasisValue {
        self.0.basis.into()
    }
    /// The burn rate in credits an hour, to 6 places.
    async fn burn_per_hour(&self) -> DecimalValue {
        DecimalValue(self.0.per_hour.round_dp(6).normalize())
    }
    /// The burn rate in credits a day, rounded to the micro-credit.
    async fn burn_per_day(&self) -> CreditAmount {
        credits(Credits::charge(self.0.per_hour, rust_decimal::Decimal::from(24)).unwrap_or(Credits::ZERO))
    }
    /// With `RECENT_SPENDING` or `NO_USE`: the start of the 7-day window the rate averages
    /// (it ends now). Null with `RUNNING_USAGE`.
    async fn window_start(&self) -> Option<DateTime<Utc>> {
        self.0.window_start
    }
    /// With `RECENT_SPENDING` or `NO_USE`: the credits used in the window. Null with
    /// `RUNNING_USAGE`.
    async fn spent_in_window(&self) -> Option<CreditAmount> {
        self.0.spent_in_window.map(credits)
    }
    /// When nothing is left to spend at this rate, to the nearest second: now when
    /// nothing is spendable now. Credits that only start later do not fill a gap before their
    /// start. Null when the rate is zero or the instant is more than 5 years away.
    async fn runs_out_at(&self) -> Option<DateTime<Utc>> {
        self.0.projection.runs_out_at
    }
    /// The credits that expire before this rate spends them, up to `runsOutAt` (or over the next
    /// 5 years when that is null).
    async fn expiring_unused(&self) -> CreditAmount {
        credits(self.0.projection.expiring_unused_total())
    }
    /// `expiringUnused` per expiry instant, soonest first.
    async fn unused_expiries(&self) -> Vec<UnusedExpiry> {
        self.0
            .projection
            .expiring_unused
            .iter()
            .map(|(expires_at, amount)| UnusedExpiry { expires_at: *expires_at, amount: credits(*amount) })
            .collect()
    }
}
