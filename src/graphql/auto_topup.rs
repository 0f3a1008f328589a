//! Auto top-up (`service::auto_topup`): the setting, what it did this month, and the mutation
//! that sets it.

use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{app, require_account, require_service};
use crate::graphql::error::{ApiError, ApiResult};
use crate::graphql::purchases::Purchase;
use crate::graphql::types::credits;
use crate::ledger::auto_topup::{Setting, TopUp};
use crate::service::ServiceError;
use crate::service::auto_topup::{AutoTopUpRequest, AutoTopUpView};
use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};

pub struct AutoTopUp(pub AutoTopUpView);

/// An account's auto top-up: when what it can spend falls under `threshold`, one pending
/// purchase (`Purchase.autoTopUp` true) is made and `purchase.auto_topup_requested` goes to the
/// webhook outbox; the product charges the saved card and calls `confirmPurchase` (or
/// `failPurchase`). No other is made while that one is pending.
#[Object]
impl AutoTopUp {
    /// Whether it is on. It turns itself off after `maxFailures` failed payments in a row
    /// (`disabledAt`, `disabledReason`, and the `auto_topup.disabled` event say so).
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// A top-up is asked for when the credits the account can spend now (lots not expired and
    /// not upcoming, scoped ones included, the day's free credits not) fall under this.
    async fn threshold(&self) -> CreditAmount {
        credits(self.0.setting.threshold)
    }
    /// A fixed number of credits bought each time; null when `targetBalance` is set.
    async fn amount(&self) -> Option<CreditAmount> {
        match self.0.setting.top_up {
            TopUp::Amount(amount) => Some(credits(amount)),
            TopUp::Target(_) => None,
        }
    }
    /// Buy enough to bring what can be spent back to this (whole credits, rounded up, at least
    /// the minimum purchase); null when `amount` is set.
    async fn target_balance(&self) -> Option<CreditAmount> {
        match self.0.setting.top_up {
            TopUp::Target(target) => Some(credits(target)),
            TopUp::Amount(_) => None,
        }
    }
    /// What auto top-ups may buy per calendar month (UTC), pending and paid together. A top-up
    /// that would pass it is cut to what is left; under the minimum purchase, none is made until
    /// the month turns (`auto_topup.cap_reached` says so once a month).
    async fn monthly_cap(&self) -> CreditAmount {
        credits(self.0.setting.monthly_cap)
    }
    /// What auto top-ups bought this calendar month, or are buying (pending).
    async fn bought_this_month(&self) -> CreditAmount {
        credits(self.0.bought_this_month)
    }
    /// When this month's cap stops counting: the next month's first instant (UTC).
    async fn month_ends_at(&self) -> DateTime<Utc> {
        self.0.month_ends_at
    }
    /// Failed top-up payments since the last one that went through, or since it was set.
    async fn failures_in_a_row(&self) -> u32 {
        self.0.failures_in_a_row
    }
    /// After this many failures in a row it turns itself off (the program's
    /// `auto_topup_max_failures`, 3 unless it says).
    async fn max_failures(&self) -> u32 {
        self.0.max_failures
    }
    /// When it turned itself off; null while on, or when it was turned off by `setAutoTopUp`.
    async fn disabled_at(&self) -> Option<DateTime<Utc>> {
        self.0.disabled_at
    }
    /// Why it turned itself off ("3 top-up payments failed in a row"); null otherwise.
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }
    /// The top-up purchase waiting for its payment, if one is PENDING.
    async fn pending_purchase(&self) -> Option<Purchase> {
        self.0.pending_purchase.clone().map(Purchase)
    }
    /// True when the product saved a card for Stripe to charge top-ups to
    /// (`stripePaymentMethod`); the ids stay with the product.
    async fn pays_with_stripe(&self) -> bool {
        self.0.pays_with_stripe
    }
    /// When the setting last changed (set, a top-up asked for, a failure counted).
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Turns an account's auto top-up on (with its setting) or off.
#[derive(InputObject)]
pub struct SetAutoTopUpInput {
    /// The account; a user token may name only its own.
    pub account_id: ID,
    /// On or off. Off keeps the last setting for later; the other fields are then ignored.
    pub enabled: bool,
    /// Top up when what can be spent falls under this (more than zero). Required when on.
    pub threshold: Option<CreditAmount>,
    /// Buy this many credits each time: whole credits, at least the program's minimum purchase.
    /// Give exactly one of `amount` and `targetBalance` when on.
    pub amount: Option<CreditAmount>,
    /// Or buy enough to reach this balance: whole credits, above the threshold.
    pub target_balance: Option<CreditAmount>,
    /// At most this many credits bought by auto top-up per calendar month (UTC): whole credits,
    /// at least one top-up. Required when on.
    pub monthly_cap: Option<CreditAmount>,
    /// The card to charge top-ups to through Stripe (service or admin only: the product's
    /// backend saved it with a SetupIntent). Kept until another is given; without it, or without
    /// Stripe configured, the product charges each top-up itself on
    /// `purchase.auto_topup_requested`.
    pub stripe_payment_method: Option<StripePaymentMethodInput>,
}

/// A saved Stripe payment method: its customer and its id.
#[derive(InputObject)]
pub struct StripePaymentMethodInput {
    /// The Stripe customer (`cus_...`).
    pub customer: String,
    /// One of its payment methods (`pm_...`), saved for off-session use.
    pub payment_method: String,
}

impl SetAutoTopUpInput {
    fn request(&self) -> Result<AutoTopUpRequest, ApiError> {
        if !self.enabled {
            return Ok(AutoTopUpRequest::Off);
        }
        let required = |field: &str| ApiError::from(ServiceError::bad_input(format!("{field} is required to turn auto top-up on")));
        let threshold = self.threshold.ok_or_else(|| required("threshold"))?.0;
        let monthly_cap = self.monthly_cap.ok_or_else(|| required("monthlyCap"))?.0;
        let top_up = match (self.amount, self.target_balance) {
            (Some(amount), None) => TopUp::Amount(amount.0),
            (None, Some(target)) => TopUp::Target(target.0),
            _ => return Err(ServiceError::bad_input("give exactly one of amount and targetBalance").into()),
        };
        Ok(AutoTopUpRequest::On(Setting { threshold, top_up, monthly_cap }))
    }
}

#[derive(Default)]
pub struct AutoTopUpMutation;

#[Object]
impl AutoTopUpMutation {
    /// Sets an account's auto top-up (the account's user, the service, or an admin), replacing
    /// the one before and starting a new count of failures. Idempotent by nature: the same
    /// input twice is the same state. Turning it on when the account is already under the
    /// threshold asks for a top-up at once. Bad settings are BAD_USER_INPUT and change nothing.
    /// Null only when it is turned off and was never set.
    async fn set_auto_top_up(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account, on or off, and the setting.")] input: SetAutoTopUpInput,
    ) -> ApiResult<Option<AutoTopUp>> {
        require_account(ctx, &input.account_id)?;
        if input.stripe_payment_method.is_some() {
            require_service(ctx)?;
        }
        let request = input.request()?;
        let app = app(ctx);
        let method = input.stripe_payment_method.map(|m| (m.customer, m.payment_method));
        Ok(app.ledger.set_auto_topup(&input.account_id, request, method, app.clock.now()).await?.map(AutoTopUp))
    }
}
