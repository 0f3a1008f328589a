use crate::auth::Caller;
use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{app, caller, limit_claims, require_account, require_admin, require_service};
use crate::graphql::error::ApiError;
use crate::graphql::error::ApiResult;
use crate::graphql::market::{EndJobInput, MarketJob, SetAskingPricesInput, SubmitJobInput, WorkloadAsk};
use crate::graphql::metering::{ContainerPayload, RecordUsageInput, RecordUsagePayload, StartContainerInput, StopContainerInput};
use crate::graphql::types::{
    Account, AccountStatus, Coupon, LotClass, LotSource, Money, PriceOptionsInput, Purchase, ReservationStatus, credits,
};
use crate::ledger::Validity;
use crate::service::ServiceError;
use crate::service::coupons::NewCoupon;
use crate::service::market::JobInput;
use crate::service::refunds::Requester;
use crate::service::reservations::ReserveRequest;
use crate::service::spending::{GrantRequest, SpendRequest};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};

pub struct MutationRoot;

#[derive(InputObject)]
pub struct CreateAccountInput {
    /// The product's own user id: 1 to 128 characters.
    pub external_id: ID,
    /// A plan code of the program; the program's default when omitted.
    pub plan: Option<String>,
    /// A friend's referral code, where the program has referrals.
    pub referral_code: Option<String>,
}

#[derive(SimpleObject)]
pub struct CreateAccountPayload {
    pub account: Account,
    /// False when the account already existed: the call is idempotent on the external id.
    pub created: bool,
    /// Whether a given referral code counted (false once the referrer has reached the cap).
    pub referral_accepted: Option<bool>,
}

#[derive(InputObject)]
pub struct PurchaseCreditsInput {
    pub account_id: ID,
    /// A package code from `creditPackages`...
    pub package: Option<String>,
    /// ...or a custom whole number of credits, at least the program's minimum.
    pub credits: Option<CreditAmount>,
    pub idempotency_key: String,
}

#[derive(InputObject)]
pub struct ConfirmPurchaseInput {
    pub purchase_id: ID,
    /// The payment system's reference: confirming is idempotent on it.
    pub payment_reference: String,
    /// What was charged, in minor units; checked against the price when given.
    pub amount_minor: Option<i64>,
}

#[derive(InputObject)]
pub struct SpendCreditsInput {
    pub account_id: ID,
    /// The credits to charge: more than 0, at most 1000000000. Give either this or `price`.
    pub amount: Option<CreditAmount>,
    /// Charge the price list's price of this use of `feature` instead of an amount (see
    /// `priceQuote`); the receipt's amount is what was charged.
    pub price: Option<PriceOptionsInput>,
    /// The same key with the same request replays the first outcome.
    pub idempotency_key: String,
    /// What the credits paid for (chat, image, container, ...).
    pub feature: String,
    pub model: Option<String>,
    pub reason: Option<String>,
}

#[derive(SimpleObject)]
pub struct SpendTake {
    pub lot_id: ID,
    pub amount: CreditAmount,
}

#[derive(SimpleObject)]
pub struct SpendCreditsPayload {
    /// The journal entry of this spend (the same on every replay).
    pub sequence: ID,
    pub amount: CreditAmount,
    /// The lots it came from, in the order they were used.
    pub takes: Vec<SpendTake>,
    /// What the account could still spend right after this spend.
    pub available_after: CreditAmount,
    pub effective_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct ReserveCreditsInput {
    pub account_id: ID,
    /// The credits to hold: more than 0, at most 1000000000.
    pub amount: CreditAmount,
    pub idempotency_key: String,
    /// What the held credits will pay for.
    pub feature: String,
    pub model: Option<String>,
    pub reason: Option<String>,
    /// How long the hold lasts before it is released on its own: 1 second to 7 days; 1 hour
    /// when not given.
    pub hold_seconds: Option<i64>,
}

#[derive(SimpleObject)]
pub struct ReserveCreditsPayload {
    pub reservation_id: ID,
    pub amount: CreditAmount,
    /// The journal entry that took the credits from the lots.
    pub sequence: ID,
    /// The lots the held credits came from, in the order they were taken.
    pub takes: Vec<SpendTake>,
    /// When the hold is released if nobody captures or releases it first.
    pub deadline: DateTime<Utc>,
    /// What the account could still spend right after this hold.
    pub available_after: CreditAmount,
}

#[derive(InputObject)]
pub struct CaptureReservationInput {
    pub reservation_id: ID,
    /// At most the held amount; 0 charges nothing (a release).
    pub amount: CreditAmount,
    pub idempotency_key: String,
}

#[derive(InputObject)]
pub struct ReleaseReservationInput {
    pub reservation_id: ID,
    pub idempotency_key: String,
}

#[derive(SimpleObject)]
pub struct SettlementPayload {
    pub reservation_id: ID,
    pub status: ReservationStatus,
    pub captured: CreditAmount,
    /// Given back to the lots the credits came from.
    pub released: CreditAmount,
    /// The part of `released` that landed on lots past their expiry and was written off.
    pub expired: CreditAmount,
    pub settled_at: DateTime<Utc>,
}

impl From<crate::service::reservations::Settlement> for SettlementPayload {
    fn from(s: crate::service::reservations::Settlement) -> Self {
        SettlementPayload {
            reservation_id: ID(s.reservation_id.to_string()),
            status: s.status.into(),
            captured: credits(s.captured),
            released: credits(s.released),
            expired: credits(s.expired),
            settled_at: s.settled_at,
        }
    }
}

#[derive(InputObject)]
pub struct GrantCreditsInput {
    pub account_id: ID,
    /// The credits to grant: more than 0, at most 1000000000.
    pub amount: CreditAmount,
    pub class: LotClass,
    #[graphql(default_with = "LotSource::Adjustment")]
    pub source: LotSource,
    /// An exact expiry instant...
    pub expires_at: Option<DateTime<Utc>>,
    /// ...or a validity from now: "168 hours", "30 days", "1 month". Neither: never expires.
    pub valid_for: Option<String>,
    pub reason: Option<String>,
    pub idempotency_key: String,
}

#[derive(InputObject)]
pub struct CheckInInput {
    pub account_id: ID,
    pub idempotency_key: String,
}

#[derive(SimpleObject)]
pub struct CheckInPayload {
    /// The UTC day checked in.
    pub day: NaiveDate,
    pub lot_id: ID,
    pub sequence: ID,
    pub amount: CreditAmount,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct ClaimLuckyCreditsInput {
    pub account_id: ID,
    pub idempotency_key: String,
}

/// A random amount of credits drawn server-side (lucky credits, ad rewards).
#[derive(SimpleObject)]
pub struct RandomCreditsPayload {
    pub day: NaiveDate,
    /// What was drawn.
    pub amount: CreditAmount,
    pub lot_id: ID,
    pub sequence: ID,
    pub expires_at: Option<DateTime<Utc>>,
    /// The distribution it was drawn from, as recorded in the journal.
    pub distribution: String,
}

#[derive(InputObject)]
pub struct ClaimAdRewardInput {
    pub account_id: ID,
    /// The ad network's transaction id of the verified ad (ad mode); none in button mode.
    pub transaction_id: Option<String>,
    pub idempotency_key: String,
}

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
    pub ends_at: Option<DateTime<Utc>>,
    /// How many accounts may redeem it in total.
    pub max_redemptions: Option<i64>,
    pub reason: Option<String>,
}

#[derive(InputObject)]
pub struct RedeemCouponInput {
    pub account_id: ID,
    pub code: String,
    pub idempotency_key: String,
}

#[derive(SimpleObject)]
pub struct RedeemCouponPayload {
    pub lot_id: ID,
    pub sequence: ID,
    pub amount: CreditAmount,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct ChangePlanInput {
    pub account_id: ID,
    pub plan: String,
    pub idempotency_key: String,
}

#[derive(SimpleObject)]
pub struct ChangePlanPayload {
    pub account: Account,
    /// The new plan's credits for the current period, if they were granted now.
    pub granted_lot_id: Option<ID>,
    pub granted: Option<CreditAmount>,
}

#[derive(InputObject)]
pub struct RefundPurchaseInput {
    pub purchase_id: ID,
    pub idempotency_key: String,
    pub reason: Option<String>,
}

#[derive(SimpleObject)]
pub struct RefundPurchasePayload {
    pub purchase: Purchase,
    /// The money paid back.
    pub refunded: Money,
    /// The purchase's unused credits taken back.
    pub credits: CreditAmount,
    /// Promotional credits tied to the purchase, forfeited.
    pub revoked: CreditAmount,
}

#[derive(InputObject)]
pub struct SetAccountStatusInput {
    pub account_id: ID,
    pub status: AccountStatus,
}

#[derive(SimpleObject)]
pub struct GrantCreditsPayload {
    pub lot_id: ID,
    pub sequence: ID,
}

#[Object]
impl MutationRoot {
    /// Creates an account, or returns the existing one with the same external id (service).
    async fn create_account(&self, ctx: &Context<'_>, input: CreateAccountInput) -> ApiResult<CreateAccountPayload> {
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
    async fn change_plan(&self, ctx: &Context<'_>, input: ChangePlanInput) -> ApiResult<ChangePlanPayload> {
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

    /// Refunds a purchase under the program's terms: an admin within the operator's window, the
    /// account's user (or the service on the user's behalf) within the refund window.
    async fn refund_purchase(&self, ctx: &Context<'_>, input: RefundPurchaseInput) -> ApiResult<RefundPurchasePayload> {
        let id = parse_purchase_id(&input.purchase_id)?;
        let app = app(ctx);
        let requester = match caller(ctx)? {
            Caller::Admin => Requester::Operator,
            Caller::User { account } => {
                if app.ledger.purchase_owner(id).await.ok().as_deref() != Some(account.as_str()) {
                    return Err(ApiError::Forbidden("a user refunds its own purchases only".into()));
                }
                Requester::User
            }
            // The product's support desk works through its backend: on the user's behalf, so
            // within the user's window (the operator's longer one stays admin only).
            Caller::Service => Requester::User,
        };
        let receipt = app.ledger.refund_purchase(requester, id, &input.idempotency_key, input.reason.as_deref(), app.clock.now()).await?;
        let purchase = app.ledger.purchase_by_id(id).await?;
        Ok(RefundPurchasePayload {
            purchase: Purchase(purchase),
            refunded: Money { amount_minor: receipt.refunded_minor, currency: receipt.currency },
            credits: credits(receipt.credits),
            revoked: credits(receipt.revoked),
        })
    }

    /// Turns the account's credit mail on or off: the low-credit warning and the expiring-credits
    /// notice (user, or on behalf).
    async fn set_credit_mail(&self, ctx: &Context<'_>, account_id: ID, enabled: bool) -> ApiResult<Account> {
        require_account(ctx, &account_id)?;
        Ok(Account(app(ctx).ledger.set_credit_mail(&account_id, enabled).await?))
    }

    /// Marks an account's identity verified, or not (service, admin): the market needs it.
    async fn set_identity_verified(&self, ctx: &Context<'_>, account_id: ID, verified: bool) -> ApiResult<Account> {
        require_service(ctx)?;
        Ok(Account(app(ctx).ledger.set_identity_verified(&account_id, verified).await?))
    }

    /// Registers a verified account as a provider (hardware, capacity) and replaces its asks: a
    /// default and any per workload (the provider itself, or on behalf).
    async fn set_asking_prices(&self, ctx: &Context<'_>, input: SetAskingPricesInput) -> ApiResult<Vec<WorkloadAsk>> {
        require_account(ctx, &input.account_id)?;
        let app = app(ctx);
        let asks = input.prices.into_iter().map(|p| (p.workload, p.price.0)).collect();
        let set = app
            .ledger
            .set_asking_prices(&input.account_id, input.hardware_class.into(), input.capacity, input.default_price.0, asks, app.clock.now())
            .await?;
        Ok(set.into_iter().map(|(workload, price)| WorkloadAsk { workload, price: credits(price) }).collect())
    }

    /// Saves the consumer's budget for a workload, used when a job names no bid: `bidPrice`, the
    /// most one job may cost, in credits (more than 0). Returns the saved budget.
    async fn set_bid_preference(
        &self,
        ctx: &Context<'_>,
        account_id: ID,
        workload: String,
        bid_price: CreditAmount,
    ) -> ApiResult<CreditAmount> {
        require_account(ctx, &account_id)?;
        Ok(credits(app(ctx).ledger.set_bid_preference(&account_id, &workload, bid_price.0).await?))
    }

    /// Submits 1 to 100 jobs: each clears at the cheapest available provider whose final price
    /// is within its budget, with its price held until it completes or fails (user, or on behalf).
    async fn submit_job(&self, ctx: &Context<'_>, input: SubmitJobInput) -> ApiResult<Vec<MarketJob>> {
        require_account(ctx, &input.account_id)?;
        let app = app(ctx);
        let inputs = input.inputs.into_iter().map(|i| JobInput { input: i.input, bid: i.bid_price.map(|b| b.0) }).collect();
        let jobs = app
            .ledger
            .submit_jobs(&input.account_id, &input.workload, inputs, input.priority, &input.idempotency_key, app.clock.now())
            .await?;
        Ok(jobs.into_iter().map(Into::into).collect())
    }

    /// A job finished (service): its held price moves to the provider, less the platform's fee.
    async fn complete_job(&self, ctx: &Context<'_>, input: EndJobInput) -> ApiResult<MarketJob> {
        require_service(ctx)?;
        // A completion keeps no reason, but one that is sent is held to the same rules as a
        // failure's: a client must not learn that anything goes here.
        if let Some(reason) = &input.reason {
            crate::service::input::reason(reason)?;
        }
        let app = app(ctx);
        Ok(app.ledger.complete_job(&input.job_id, &input.idempotency_key, app.clock.now()).await?.into())
    }

    /// A job failed (service): its held price goes back to the consumer in full.
    async fn fail_job(&self, ctx: &Context<'_>, input: EndJobInput) -> ApiResult<MarketJob> {
        require_service(ctx)?;
        let app = app(ctx);
        let reason = input.reason.unwrap_or_else(|| "failed".into());
        Ok(app.ledger.fail_job(&input.job_id, &reason, &input.idempotency_key, app.clock.now()).await?.into())
    }

    /// Moves an account between ACTIVE, INACTIVE and SUSPENDED (service, admin).
    async fn set_account_status(&self, ctx: &Context<'_>, input: SetAccountStatusInput) -> ApiResult<Account> {
        require_service(ctx)?;
        Ok(Account(app(ctx).ledger.set_status(&input.account_id, input.status.into()).await?))
    }

    /// Creates a pending purchase priced in money; `confirmPurchase` pays it.
    async fn purchase_credits(&self, ctx: &Context<'_>, input: PurchaseCreditsInput) -> ApiResult<Purchase> {
        require_account(ctx, &input.account_id)?;
        let app = app(ctx);
        let purchase = app
            .ledger
            .purchase(&input.account_id, input.package.as_deref(), input.credits.map(|c| c.0), &input.idempotency_key, app.clock.now())
            .await?;
        Ok(Purchase(purchase))
    }

    /// The payment succeeded: the purchase becomes a paid lot (service).
    async fn confirm_purchase(&self, ctx: &Context<'_>, input: ConfirmPurchaseInput) -> ApiResult<Purchase> {
        require_service(ctx)?;
        let id = input
            .purchase_id
            .parse::<i64>()
            .map_err(|_| ServiceError::NotFound(format!("no purchase {:?}", input.purchase_id.as_str())))?;
        let app = app(ctx);
        let purchase = app.ledger.confirm_purchase(id, &input.payment_reference, input.amount_minor, app.clock.now()).await?;
        Ok(Purchase(purchase))
    }

    /// Charges an account, all or nothing, in the program's order of consumption (service).
    async fn spend_credits(&self, ctx: &Context<'_>, input: SpendCreditsInput) -> ApiResult<SpendCreditsPayload> {
        require_service(ctx)?;
        let app = app(ctx);
        let request = SpendRequest {
            account: input.account_id.to_string(),
            amount: input.amount.map(|a| a.0),
            price: input.price.map(|p| p.into_ref(&input.feature)),
            idempotency_key: input.idempotency_key,
            feature: input.feature,
            model: input.model,
            reason: input.reason,
        };
        let receipt = app.ledger.spend(request, app.clock.now()).await?;
        Ok(SpendCreditsPayload {
            sequence: ID(receipt.entry_id.to_string()),
            amount: credits(receipt.amount),
            takes: receipt.takes.iter().map(|t| SpendTake { lot_id: ID(t.lot_id.to_string()), amount: credits(t.amount) }).collect(),
            available_after: credits(receipt.available_after),
            effective_at: receipt.effective_at,
        })
    }

    /// Holds credits for work whose cost is known only at its end (service): taken from the lots
    /// at once in the program's order, so nobody else can spend them, until captured, released
    /// or past the deadline.
    async fn reserve_credits(&self, ctx: &Context<'_>, input: ReserveCreditsInput) -> ApiResult<ReserveCreditsPayload> {
        require_service(ctx)?;
        let app = app(ctx);
        let request = ReserveRequest {
            account: input.account_id.to_string(),
            amount: input.amount.0,
            idempotency_key: input.idempotency_key,
            feature: input.feature,
            model: input.model,
            reason: input.reason,
            hold_seconds: input.hold_seconds,
        };
        let hold = app.ledger.reserve(request, app.clock.now()).await?;
        Ok(ReserveCreditsPayload {
            reservation_id: ID(hold.reservation_id.to_string()),
            amount: credits(hold.amount),
            sequence: ID(hold.entry_id.to_string()),
            takes: hold.takes.iter().map(|t| SpendTake { lot_id: ID(t.lot_id.to_string()), amount: credits(t.amount) }).collect(),
            deadline: hold.deadline,
            available_after: credits(hold.available_after),
        })
    }

    /// Charges at most the held amount of a reservation and gives the rest back (service).
    async fn capture_reservation(&self, ctx: &Context<'_>, input: CaptureReservationInput) -> ApiResult<SettlementPayload> {
        require_service(ctx)?;
        let app = app(ctx);
        let settlement = app.ledger.capture(&input.reservation_id, input.amount.0, &input.idempotency_key, app.clock.now()).await?;
        Ok(settlement.into())
    }

    /// Gives a reservation's held credits back in full (service).
    async fn release_reservation(&self, ctx: &Context<'_>, input: ReleaseReservationInput) -> ApiResult<SettlementPayload> {
        require_service(ctx)?;
        let app = app(ctx);
        Ok(app.ledger.release(&input.reservation_id, &input.idempotency_key, app.clock.now()).await?.into())
    }

    /// Starts a metered container at a tier (service); a restart first charges the storage used
    /// while it was stopped.
    async fn start_container(&self, ctx: &Context<'_>, input: StartContainerInput) -> ApiResult<ContainerPayload> {
        require_service(ctx)?;
        let app = app(ctx);
        let receipt = app
            .ledger
            .start_container(
                &input.account_id,
                &input.container_id,
                &input.tier,
                input.code_supporter,
                &input.idempotency_key,
                app.clock.now(),
            )
            .await?;
        Ok(receipt.into())
    }

    /// Stops a container and charges its session in one deduction: time at its tier, add-on,
    /// traffic, and the account's storage so far (service).
    async fn stop_container(&self, ctx: &Context<'_>, input: StopContainerInput) -> ApiResult<ContainerPayload> {
        require_service(ctx)?;
        let app = app(ctx);
        Ok(app.ledger.stop_container(&input.account_id, &input.container_id, &input.idempotency_key, app.clock.now()).await?.into())
    }

    /// Records a usage sample (service): storage (GB now) and traffic (bytes) accrue until the next
    /// settlement; an AI use is charged at once.
    async fn record_usage(&self, ctx: &Context<'_>, input: RecordUsageInput) -> ApiResult<RecordUsagePayload> {
        require_service(ctx)?;
        let app = app(ctx);
        let (account, key) = (input.account_id.to_string(), input.idempotency_key.clone());
        let receipt = app.ledger.record_usage(&account, input.sample()?, &key, app.clock.now()).await?;
        Ok(RecordUsagePayload { settlement: receipt.settlement.map(Into::into) })
    }

    /// Claims today's check-in credits, once per UTC day (user, or on behalf).
    async fn check_in(&self, ctx: &Context<'_>, input: CheckInInput) -> ApiResult<CheckInPayload> {
        require_account(ctx, &input.account_id)?;
        limit_claims(ctx, &input.account_id)?;
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
    /// once per UTC day, within the promotion's dates).
    async fn claim_lucky_credits(&self, ctx: &Context<'_>, input: ClaimLuckyCreditsInput) -> ApiResult<RandomCreditsPayload> {
        require_account(ctx, &input.account_id)?;
        limit_claims(ctx, &input.account_id)?;
        let app = app(ctx);
        let receipt = app.ledger.claim_lucky(&input.account_id, &input.idempotency_key, app.clock.now()).await?;
        Ok(RandomCreditsPayload {
            day: receipt.day,
            amount: credits(receipt.amount),
            lot_id: ID(receipt.lot_id.to_string()),
            sequence: ID(receipt.entry_id.to_string()),
            expires_at: receipt.expires_at,
            distribution: receipt.distribution,
        })
    }

    /// Redeems a verified ad view (or a button tap, where the program says so) for random
    /// credits: free-plan accounts whose free and other credits are used up, up to a daily cap.
    async fn claim_ad_reward(&self, ctx: &Context<'_>, input: ClaimAdRewardInput) -> ApiResult<RandomCreditsPayload> {
        require_account(ctx, &input.account_id)?;
        limit_claims(ctx, &input.account_id)?;
        let app = app(ctx);
        let receipt =
            app.ledger.claim_ad_reward(&input.account_id, input.transaction_id.as_deref(), &input.idempotency_key, app.clock.now()).await?;
        Ok(RandomCreditsPayload {
            day: receipt.day,
            amount: credits(receipt.amount),
            lot_id: ID(receipt.lot_id.to_string()),
            sequence: ID(receipt.entry_id.to_string()),
            expires_at: receipt.expires_at,
            distribution: receipt.distribution,
        })
    }

    /// Creates a coupon (admin); idempotent on the code.
    async fn create_coupon(&self, ctx: &Context<'_>, input: CreateCouponInput) -> ApiResult<Coupon> {
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
    async fn redeem_coupon(&self, ctx: &Context<'_>, input: RedeemCouponInput) -> ApiResult<RedeemCouponPayload> {
        require_account(ctx, &input.account_id)?;
        limit_claims(ctx, &input.account_id)?;
        let app = app(ctx);
        let receipt = app.ledger.redeem_coupon(&input.account_id, &input.code, &input.idempotency_key, app.clock.now()).await?;
        Ok(RedeemCouponPayload {
            lot_id: ID(receipt.lot_id.to_string()),
            sequence: ID(receipt.entry_id.to_string()),
            amount: credits(receipt.amount),
            expires_at: receipt.expires_at,
        })
    }

    /// Creates a lot of any source and class (admin).
    async fn grant_credits(&self, ctx: &Context<'_>, input: GrantCreditsInput) -> ApiResult<GrantCreditsPayload> {
        require_admin(ctx)?;
        let valid_for = parse_validity(input.valid_for.as_deref())?;
        let app = app(ctx);
        let request = GrantRequest {
            account: input.account_id.to_string(),
            amount: input.amount.0,
            class: input.class.into(),
            source: input.source.into(),
            expires_at: input.expires_at,
            valid_for,
            reason: input.reason,
            idempotency_key: input.idempotency_key,
        };
        let receipt = app.ledger.grant(request, app.clock.now()).await?;
        Ok(GrantCreditsPayload { lot_id: ID(receipt.lot_id.to_string()), sequence: ID(receipt.entry_id.to_string()) })
    }
}

fn parse_validity(value: Option<&str>) -> Result<Option<Validity>, ServiceError> {
    value.map(|v| v.parse::<Validity>().map_err(|e| ServiceError::bad_input(format!("validFor: {e}")))).transpose()
}

fn parse_purchase_id(id: &ID) -> Result<i64, ServiceError> {
    id.parse::<i64>().map_err(|_| ServiceError::NotFound(format!("no purchase {:?}", id.as_str())))
}
