//! Spend limits (issue 26): `setSpendLimits` and `Account.spendLimits`, built from the service's
//! `SpendLimitsView`.

use crate::graphql::accounts::Account;
use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{app, require_account};
use crate::graphql::error::ApiResult;
use crate::ledger::spend_limits::Period;
use crate::service::spend_limits::{LimitInput, LimitView, SetSpendLimitsRequest, SpendLimitsView};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// The period a spend limit counts over, in UTC.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SpendLimitPeriod {
    /// A UTC day: the count starts again at 00:00 UTC.
    Day,
    /// A UTC calendar month: the count starts again on the 1st at 00:00 UTC.
    Month,
}

impl From<SpendLimitPeriod> for Period {
    fn from(p: SpendLimitPeriod) -> Period {
        match p {
            SpendLimitPeriod::Day => Period::Day,
            SpendLimitPeriod::Month => Period::Month,
        }
    }
}

impl From<Period> for SpendLimitPeriod {
    fn from(p: Period) -> SpendLimitPeriod {
        match p {
            Period::Day => SpendLimitPeriod::Day,
            Period::Month => SpendLimitPeriod::Month,
        }
    }
}

/// One cap on what the account may be charged per period.
#[derive(InputObject)]
pub struct SpendLimitInput {
    /// The feature it caps (letters, digits and `._:/-`, up to 64 characters); null caps every
    /// feature together.
    pub feature: Option<String>,
    /// DAY or MONTH (UTC).
    pub period: SpendLimitPeriod,
    /// The most credits charged in one period: more than 0.
    pub max: CreditAmount,
}

/// The account's whole set of spend limits: it replaces the set it had.
#[derive(InputObject)]
pub struct SetSpendLimitsInput {
    /// The account's external id; a user token may name only its own.
    pub account_id: ID,
    /// At most 32, no two for the same feature and period; an empty list (with no
    /// `maxPerCharge`) clears the limits.
    pub limits: Vec<SpendLimitInput>,
    /// The most credits one charge (a spend, a hold, a market job's price) may be; null: no such
    /// maximum. More than 0.
    pub max_per_charge: Option<CreditAmount>,
    /// Optional: setting the whole set is idempotent by itself; with a key, a retry replays the
    /// first outcome and the same key with another set is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: Option<String>,
}

/// A spend limit with its current period.
#[derive(SimpleObject)]
pub struct SpendLimit {
    /// The feature it caps; null for every feature together.
    pub feature: Option<String>,
    /// DAY or MONTH (UTC).
    pub period: SpendLimitPeriod,
    /// The most credits charged in one period.
    pub max: CreditAmount,
    /// What this period has counted: spends, holds still held or captured, market jobs' prices,
    /// and metered usage.
    pub used: CreditAmount,
    /// `max - used`, never below 0: what a charge may still be this period.
    pub remaining: CreditAmount,
    /// When the period ends and the count starts again (RFC 3339, UTC).
    pub resets_at: DateTime<Utc>,
    /// Whether `used` passed `max`: only metered usage, which already happened and is charged
    /// whatever the limit says, can do that.
    pub exceeded: bool,
}

impl From<LimitView> for SpendLimit {
    fn from(v: LimitView) -> SpendLimit {
        SpendLimit {
            feature: v.feature,
            period: v.period.into(),
            max: v.max.into(),
            used: v.used.into(),
            remaining: v.remaining.into(),
            resets_at: v.resets_at,
            exceeded: v.exceeded,
        }
    }
}

/// The spend limits the account's user set. A spend, a hold or a market job that would pass one
/// is refused with SPEND_LIMIT_REACHED (a market job is rejected with that code); metered usage
/// is charged anyway and counted.
#[derive(SimpleObject)]
pub struct SpendLimits {
    /// The caps per period, features first (by name), then every feature; DAY before MONTH.
    pub limits: Vec<SpendLimit>,
    /// The most one charge may be; null when there is no such maximum.
    pub max_per_charge: Option<CreditAmount>,
}

impl From<SpendLimitsView> for SpendLimits {
    fn from(v: SpendLimitsView) -> SpendLimits {
        SpendLimits { limits: v.limits.into_iter().map(Into::into).collect(), max_per_charge: v.max_per_charge.map(Into::into) }
    }
}

/// The `Account.spendLimits` field (resolved in `accounts.rs`).
pub(crate) async fn of_account(ctx: &Context<'_>, account: &Account) -> ApiResult<SpendLimits> {
    let app = app(ctx);
    Ok(app.ledger.spend_limits(account.0.id, app.clock.now()).await?.into())
}

#[derive(Default)]
pub struct SpendLimitsMutation;

#[Object]
impl SpendLimitsMutation {
    /// Replaces an account's spend limits (user for its own account, service, admin): caps per
    /// feature (or every feature) per UTC day or month, and a maximum per single charge. Usage
    /// already counted this period stays counted. Answers the limits as they now stand.
    async fn set_spend_limits(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account, its whole set of limits, and an optional idempotency key.")] input: SetSpendLimitsInput,
    ) -> ApiResult<SpendLimits> {
        require_account(ctx, &input.account_id)?;
        let app = app(ctx);
        let request = SetSpendLimitsRequest {
            account: input.account_id.0,
            limits: input.limits.into_iter().map(|l| LimitInput { feature: l.feature, period: l.period.into(), max: l.max.0 }).collect(),
            max_per_charge: input.max_per_charge.map(|m| m.0),
            idempotency_key: input.idempotency_key,
        };
        Ok(app.ledger.set_spend_limits(request, app.clock.now()).await?.into())
    }
}
