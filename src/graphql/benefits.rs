//! Benefits in use: the `Benefit` type of `Account.benefits`, built from the service's view.
//! Its shape is the portal's contract (issue 22): fields are only ever added.

use crate::graphql::amount::CreditAmount;
use crate::graphql::amount::DecimalValue;
use crate::graphql::types::{credits, mirror_enum};
use crate::service::benefits as view;
use async_graphql::SimpleObject;
use chrono::{DateTime, Utc};

mirror_enum!(
    /// What kind of promotion a benefit is.
    BenefitKind <=> crate::service::benefits::BenefitKind {
        /// The plan's credits of the current period, where the plan grants credits (monthly plan
        /// credits, a subscription's credits).
        PlanCredits,
        /// Free credits given each UTC day, where the plan has them; they do not carry over.
        DailyFreeCredits,
        /// The daily lucky-credit promotion, while it runs and the account may claim.
        LuckyCredits,
        /// A bonus the account's first paid purchase will bring, while it has none yet.
        FirstPurchaseBonus,
        /// A referral's purchase bonus on hold, granted when the hold ends.
        ReferralBonus,
        /// A redeemed coupon's lot with credits left.
        Coupon,
    }
);

/// A promotion applied to the account now. Which fields are set depends on `kind`.
#[derive(SimpleObject)]
pub struct Benefit {
    /// What kind of promotion this is.
    pub kind: BenefitKind,
    /// PLAN_CREDITS: this period's grant; DAILY_FREE_CREDITS: per day; LUCKY_CREDITS: today's
    /// claimed drop, else the plan's maximum; REFERRAL_BONUS: the credits on hold; COUPON: what
    /// remains in the coupon's lot; FIRST_PURCHASE_BONUS: null.
    pub credits: Option<CreditAmount>,
    /// FIRST_PURCHASE_BONUS: the bonus, in percent of the credits bought ("30"). Null otherwise.
    pub percent: Option<DecimalValue>,
    /// When the period or promotion started, where known: PLAN_CREDITS the period's start,
    /// DAILY_FREE_CREDITS today's 00:00 UTC, LUCKY_CREDITS the promotion's first instant (null
    /// when it has no start date), COUPON when the lot was granted.
    pub starts_at: Option<DateTime<Utc>>,
    /// When it ends: PLAN_CREDITS the period's end (the grant's expiry), DAILY_FREE_CREDITS the
    /// next 00:00 UTC, LUCKY_CREDITS the promotion's end, REFERRAL_BONUS the hold's release,
    /// COUPON the lot's expiry (null: never).
    pub ends_at: Option<DateTime<Utc>>,
    /// COUPON: the coupon's code; PLAN_CREDITS: the plan's code. Null otherwise.
    pub code: Option<String>,
    /// PLAN_CREDITS: the plan's name. Null otherwise.
    pub name: Option<String>,
}

impl From<view::Benefit> for Benefit {
    fn from(b: view::Benefit) -> Self {
        Benefit {
            kind: b.kind.into(),
            credits: b.credits.map(credits),
            percent: b.percent.map(DecimalValue),
            starts_at: b.starts_at,
            ends_at: b.ends_at,
            code: b.code,
            name: b.name,
        }
    }
}
