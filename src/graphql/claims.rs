//! Free credits a user claims: the daily check-in, lucky credits, ad rewards and coupons.

use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{app, limit_claims, require_account, require_admin};
use crate::graphql::error::ApiResult;
use crate::graphql::types::*;
use crate::service::coupons::{CouponView, NewCoupon};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};

/// The daily check-in as it stands today (UTC).
#[derive(SimpleObject)]
pub struct CheckInStatus {
    /// Whether this program has a daily check-in.
    pub enabled: bool,
    /// Whether today's (UTC) check-in was claimed.
    pub claimed_today: bool,
    /// Now if today is not claimed yet, else the next 00:00 UTC.
    pub next_available_at: DateTime<Utc>,
    /// Consecutive UTC days checked in, up to today (or yesterday, while today is still open).
    pub streak: i32,
    /// What one check-in grants.
    pub credits: Option<CreditAmount>,
}

pub struct Coupon(pub CouponView);

/// A coupon: a code that grants credits once per account (admin reads; `redeemCoupon` uses it).
#[Object]
impl Coupon {
    /// The code users type, upper-cased (codes are case-insensitive).
    async fn code(&self) -> &str {
        &self.0.code
    }
    /// The credits one redemption grants.
    async fn credits(&self) -> CreditAmount {
        credits(self.0.credits)
    }
    /// A fixed instant the granted credits expire at (or `validFor`, or neither: they never do).
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// How long the granted credits last from redemption, such as "30 days" or "1 month".
    async fn valid_for(&self) -> Option<String> {
        // Shown as people write it ("1 month"), not in the stored canonical form ("1 months").
        self.0.valid_for.map(|v| v.to_string())
    }
    /// The coupon may be redeemed from this instant; null: from its creation.
    async fn starts_at(&self) -> Option<DateTime<Utc>> {
        self.0.starts_at
    }
    /// The coupon may be redeemed until this instant; null: with no end.
    async fn ends_at(&self) -> Option<DateTime<Utc>> {
        self.0.ends_at
    }
    /// The most redemptions over all accounts; null: no cap.
    async fn max_redemptions(&self) -> Option<i64> {
        self.0.max_redemptions
    }
    /// Redemptions so far (each account redeems a coupon once).
    async fn redemptions(&self) -> i64 {
        self.0.redemptions
    }
    /// Redemptions left under the cap; null where there is no cap.
    async fn remaining_redemptions(&self) -> Option<i64> {
        self.0.max_redemptions.map(|max| (max - self.0.redemptions).max(0))
    }
    /// When the operator created it.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Today's lucky credits (UTC day) for one account.
#[derive(SimpleObject)]
pub struct LuckyCredits {
    /// A paid subscriber, within the promotion's dates.
    pub eligible: bool,
    /// Why not, when not eligible.
    pub reason: Option<String>,
    /// Whether today's lucky credits were claimed (`claimed` says how many).
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
    /// The promotion's end (exclusive: the end of its last UTC day); null where the program has
    /// no lucky credits.
    pub promotion_ends_at: Option<DateTime<Utc>>,
}

/// A check-in (user, or on behalf).
#[derive(InputObject)]
pub struct CheckInInput {
    /// The account's external id; a user token may name only its own.
    pub account_id: ID,
    /// 1 to 128 printable ASCII characters. The same key replays the first claim's success;
    /// another key once the claim is made is ALREADY_CLAIMED.
    pub idempotency_key: String,
}

/// A check-in's grant.
#[derive(SimpleObject)]
pub struct CheckInPayload {
    /// The UTC day checked in.
    pub day: NaiveDate,
    /// The lot granted.
    pub lot_id: ID,
    /// The journal entry of the grant.
    pub sequence: ID,
    /// The credits granted.
    pub amount: CreditAmount,
    /// When they expire; null: never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A claim of today's lucky credits (user, or on behalf).
#[derive(InputObject)]
pub struct ClaimLuckyCreditsInput {
    /// The account's external id; a user token may name only its own.
    pub account_id: ID,
    /// 1 to 128 printable ASCII characters. The same key replays the first claim's success;
    /// another key once the claim is made is ALREADY_CLAIMED.
    pub idempotency_key: String,
}

/// A random amount of credits drawn server-side (lucky credits, ad rewards).
#[derive(SimpleObject)]
pub struct RandomCreditsPayload {
    /// The UTC day the claim counts for.
    pub day: NaiveDate,
    /// What was drawn.
    pub amount: CreditAmount,
    /// The lot granted.
    pub lot_id: ID,
    /// The journal entry of the grant.
    pub sequence: ID,
    /// When the credits expire; null: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// The distribution it was drawn from, as recorded in the journal.
    pub distribution: String,
}

/// Lucky credits and ad rewards are both a random grant, shown the same way.
impl From<crate::service::lucky::RandomGrant> for RandomCreditsPayload {
    fn from(grant: crate::service::lucky::RandomGrant) -> Self {
        RandomCreditsPayload {
            day: grant.day,
            amount: credits(grant.amount),
            lot_id: ID(grant.lot_id.to_string()),
            sequence: ID(grant.entry_id.to_string()),
            expires_at: grant.expires_at,
            distribution: grant.distribution,
        }
    }
}

/// A claim of an ad reward (user, or on behalf).
#[derive(InputObject)]
pub struct ClaimAdRewardInput {
    /// The account's external id; a user token may name only its own.
    pub account_id: ID,
    /// The verified ad (ad mode): the network's transaction id, or the id the app gave the ad
    /// as its `custom_data` before showing it (AdMob tells only the server the transaction id;
    /// use an id of your own per ad view). None in button mode.
    pub transaction_id: Option<String>,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome.
    pub idempotency_key: String,
}

/// A new coupon (admin).
#[derive(InputObject)]
pub struct CreateCouponInput {
    /// 3 to 64 letters, digits, - or _; case-insensitive.
    pub code: String,
    /// The credits each redemption grants: more than 0, at most 1000000000.
    pub credits: CreditAmount,
    /// The granted credits expire at this instant...
    pub expires_at: Option<DateTime<Utc>>,
    /// ...or this long after redemption ("30 days"). Neither: they never expire.
    pub valid_for: Option<String>,
    /// The redemption window: from `startsAt` (inclusive) to `endsAt` (exclusive).
    pub starts_at: Option<DateTime<Utc>>,
    /// The end of the redemption window (exclusive); null: no end.
    pub ends_at: Option<DateTime<Utc>>,
    /// How many accounts may redeem it in total.
    pub max_redemptions: Option<i64>,
    /// Free text recorded with the coupon's grants: up to 500 characters.
    pub reason: Option<String>,
}

/// A coupon redemption (user, or on behalf).
#[derive(InputObject)]
pub struct RedeemCouponInput {
    /// The account's external id; a user token may name only its own.
    pub account_id: ID,
    /// The coupon's code, in any case.
    pub code: String,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
}

/// A redemption's grant.
#[derive(SimpleObject)]
pub struct RedeemCouponPayload {
    /// The lot granted.
    pub lot_id: ID,
    /// The journal entry of the grant.
    pub sequence: ID,
    /// The credits granted.
    pub amount: CreditAmount,
    /// When they expire; null: never.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct ClaimsMutation;

#[Object]
impl ClaimsMutation {
    /// Claims today's check-in credits, once per UTC day (user, or on behalf).
    async fn check_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account and an idempotency key.")] input: CheckInInput,
    ) -> ApiResult<CheckInPayload> {
        require_account(ctx, &input.account_id)?;
        limit_claims(ctx, &input.account_id).await?;
        let app = app(ctx);
        let receipt = app.ledger.check_in(&input.account_id, &input.idempotency_key, app.clock.now()).await?;
        Ok(CheckInPayload {
            day: receipt.day,
            lot_id: ID(receipt.lot_id.to_string()),
            sequence: ID(receipt.entry_id.to_string()),
            amount: credits(receipt.amount),
            expires_at: receipt.expires_at,
        })
    }

    /// Claims today's lucky credits: a random amount up to the plan's maximum (paid subscribers,
    /// once per UTC day, within the promotion's dates; user, or on behalf).
    async fn claim_lucky_credits(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account and an idempotency key.")] input: ClaimLuckyCreditsInput,
    ) -> ApiResult<RandomCreditsPayload> {
        require_account(ctx, &input.account_id)?;
        limit_claims(ctx, &input.account_id).await?;
        let app = app(ctx);
        let receipt = app.ledger.claim_lucky(&input.account_id, &input.idempotency_key, app.clock.now()).await?;
        Ok(receipt.into())
    }

    /// Redeems a verified ad view (or a button tap, where the program says so) for random
    /// credits: free-plan accounts whose free and other credits are used up, up to a daily cap
    /// (user, or on behalf).
    async fn claim_ad_reward(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account, the ad's transaction id (ad mode), and an idempotency key.")] input: ClaimAdRewardInput,
    ) -> ApiResult<RandomCreditsPayload> {
        require_account(ctx, &input.account_id)?;
        limit_claims(ctx, &input.account_id).await?;
        let app = app(ctx);
        let receipt =
            app.ledger.claim_ad_reward(&input.account_id, input.transaction_id.as_deref(), &input.idempotency_key, app.clock.now()).await?;
        Ok(receipt.into())
    }

    /// Creates a coupon (admin); idempotent on the code.
    async fn create_coupon(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The code, the credits it grants, their validity, and the redemption window and cap.")] input: CreateCouponInput,
    ) -> ApiResult<Coupon> {
        require_admin(ctx)?;
        let valid_for = parse_validity(input.valid_for.as_deref())?;
        let app = app(ctx);
        let new = NewCoupon {
            code: input.code,
            credits: input.credits.0,
            expires_at: input.expires_at,
            valid_for,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            max_redemptions: input.max_redemptions,
            reason: input.reason,
        };
        Ok(Coupon(app.ledger.create_coupon(new, app.clock.now()).await?))
    }

    /// Redeems a coupon, once per account (user, or on behalf).
    async fn redeem_coupon(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account, the coupon's code, and an idempotency key.")] input: RedeemCouponInput,
    ) -> ApiResult<RedeemCouponPayload> {
        require_account(ctx, &input.account_id)?;
        limit_claims(ctx, &input.account_id).await?;
        let app = app(ctx);
        let receipt = app.ledger.redeem_coupon(&input.account_id, &input.code, &input.idempotency_key, app.clock.now()).await?;
        Ok(RedeemCouponPayload {
            lot_id: ID(receipt.lot_id.to_string()),
            sequence: ID(receipt.entry_id.to_string()),
            amount: credits(receipt.amount),
            expires_at: receipt.expires_at,
        })
    }
}
