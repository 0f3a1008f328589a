//! Purchases: the packages on sale, buying credits, confirming the payment, and refunds.

use crate::auth::Caller;
use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{app, caller, require_account, require_service};
use crate::graphql::error::{ApiError, ApiResult};
use crate::graphql::metadata::{Metadata, into_parsed};
use crate::graphql::types::*;
use crate::service::ServiceError;
use crate::service::purchases::PurchaseView;
use crate::service::refunds::Requester;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// An amount of money: an integer of the currency's minor unit, never floating point.
#[derive(SimpleObject)]
pub struct Money {
    /// An integer amount of the currency's minor unit (cents for USD).
    pub amount_minor: i64,
    /// The currency's ISO 4217 code ("USD").
    pub currency: String,
}

/// Where a purchase stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::ledger::money::PurchaseStatus")]
pub enum PurchaseStatus {
    /// Created, waiting for the payment to be confirmed.
    Pending,
    /// Paid: its credits were granted.
    Paid,
    /// Refunded, in full or in part.
    Refunded,
    /// Ended unpaid: called off by the product (`cancelPurchase`). Final: a later payment
    /// confirmation is refused (INVALID_STATE).
    Cancelled,
    /// Ended unpaid: its payment failed (`failPurchase`). Final: a later payment confirmation is
    /// refused (INVALID_STATE).
    Failed,
    /// Ended unpaid: not paid within the program's `pendingPurchaseLifetime`. A payment
    /// confirmed after that is still honoured (the money was taken): the purchase becomes PAID.
    Expired,
}

pub struct Purchase(pub PurchaseView);

/// A purchase of credits for money: pending until its payment is confirmed.
#[Object]
impl Purchase {
    /// The purchase's id (for `confirmPurchase` and `refundPurchase`).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// When it was created (`purchaseCredits`).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The package's code, or null for a custom amount.
    async fn package_code(&self) -> Option<&str> {
        self.0.package_code.as_deref()
    }
    /// The package's name, or null for a custom amount.
    async fn package(&self) -> Option<&str> {
        self.0.package_name.as_deref()
    }
    /// The credits bought.
    async fn credits(&self) -> CreditAmount {
        credits(self.0.credits)
    }
    /// The price, in the program's currency.
    async fn amount(&self) -> Money {
        Money { amount_minor: self.0.price_minor, currency: self.0.currency.clone() }
    }
    /// PENDING until the payment is confirmed, then PAID; REFUNDED after a refund. A purchase
    /// never paid ends CANCELLED, FAILED or EXPIRED (see `endedAt`, `endReason`).
    async fn status(&self) -> PurchaseStatus {
        self.0.status.into()
    }
    /// While PENDING: the instant it expires unless paid first (`createdAt` plus the program's
    /// `pendingPurchaseLifetime`; exclusive, and exact even before the expiry job has run).
    /// Null once it is not pending.
    async fn expires_at(&self, ctx: &Context<'_>) -> Option<DateTime<Utc>> {
        let lifetime = app(ctx).ledger.program.pending_lifetime;
        (self.0.status == crate::ledger::money::PurchaseStatus::Pending)
            .then(|| crate::ledger::purchase::pending_until(self.0.created_at, lifetime))
    }
    /// When it ended unpaid: when it was cancelled or failed, or the instant it expired. Null
    /// while PENDING and for a purchase paid before it ended; a purchase EXPIRED and then paid
    /// late (now PAID) keeps its expiry here.
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
    /// Why it ended unpaid: the reason given to `cancelPurchase` (null if none) or
    /// `failPurchase`, or the expiry's ("not paid within 1 day(s)"). Null while it has not ended.
    async fn end_reason(&self) -> Option<&str> {
        self.0.end_reason.as_deref()
    }
    /// The payment system's reference of the failed attempt given to `failPurchase`, if any;
    /// null otherwise. Not `paymentReference`, which names the payment that paid it.
    async fn failed_payment_reference(&self) -> Option<&str> {
        self.0.failure_reference.as_deref()
    }
    /// When the payment was confirmed; null while PENDING.
    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.0.paid_at
    }
    /// The payment system's reference given to `confirmPurchase`; null while PENDING.
    async fn payment_reference(&self) -> Option<&str> {
        self.0.payment_reference.as_deref()
    }
    /// What was paid back, once refunded.
    async fn refunded_amount(&self) -> Option<Money> {
        self.0.refunded_minor.map(|amount_minor| Money { amount_minor, currency: self.0.currency.clone() })
    }
    /// When it was refunded; null unless REFUNDED.
    async fn refunded_at(&self) -> Option<DateTime<Utc>> {
        self.0.refunded_at
    }
    /// The paid lot, once confirmed.
    async fn lot_id(&self) -> Option<ID> {
        self.0.lot_id.map(|id| ID(id.to_string()))
    }
    /// True when auto top-up made it (`setAutoTopUp`) rather than the user's `purchaseCredits`.
    async fn auto_top_up(&self) -> bool {
        self.0.auto_topup
    }
    /// The metadata the purchase was made with (`purchaseCredits`), or null.
    async fn metadata(&self) -> Option<Metadata> {
        Metadata::of(self.0.metadata.clone())
    }
    /// Where the user pays for it while it is PENDING: its Stripe Checkout Session's page, or
    /// the program's checkout page for it, where one is configured (`program.checkout` is
    /// EXTERNAL); else null.
    async fn checkout_url(&self, ctx: &Context<'_>) -> Option<String> {
        if self.0.status == crate::ledger::money::PurchaseStatus::Pending && self.0.checkout_url.is_some() {
            return self.0.checkout_url.clone();
        }
        let links = crate::graphql::portal::links(ctx)?;
        match (&links.checkout, self.0.status) {
            (crate::links::Checkout::External(template), crate::ledger::money::PurchaseStatus::Pending) => {
                Some(template.fill(self.0.id, &self.0.credits.to_string(), self.0.price_minor, &self.0.currency))
            }
            _ => None,
        }
    }
}

/// A package of credits on sale.
#[derive(SimpleObject)]
pub struct CreditPackage {
    /// The code `purchaseCredits` takes.
    pub code: String,
    /// The name shown to users.
    pub name: String,
    /// The credits it grants.
    pub credits: CreditAmount,
    /// Its price, in the program's currency.
    pub price: Money,
}

/// A purchase to create (user, or on behalf): a package or a custom amount.
#[derive(InputObject)]
pub struct PurchaseCreditsInput {
    /// The account's external id; a user token may name only its own.
    pub account_id: ID,
    /// A package code from `creditPackages`...
    pub package: Option<String>,
    /// ...or a custom whole number of credits, at least the program's minimum.
    pub credits: Option<CreditAmount>,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
    /// Your own key-value pairs, kept on the purchase (`Purchase.metadata`) and on the grant entry
    /// of its payment, shown in history (bounds: the `Metadata` scalar). Part of the request the
    /// idempotency key stands for.
    pub metadata: Option<Metadata>,
}

/// A confirmed payment (service).
#[derive(InputObject)]
pub struct ConfirmPurchaseInput {
    /// The purchase paid (`purchaseCredits`' `id`).
    pub purchase_id: ID,
    /// The payment system's reference: confirming is idempotent on it.
    pub payment_reference: String,
    /// What was charged, in minor units; checked against the price when given.
    pub amount_minor: Option<i64>,
}

/// A pending purchase to call off (service): its checkout will not be paid.
#[derive(InputObject)]
pub struct CancelPurchaseInput {
    /// The purchase to cancel (`purchaseCredits`' `id`); it must be PENDING.
    pub purchase_id: ID,
    /// Why, kept as `Purchase.endReason` and sent in the `purchase.cancelled` event: up to 500
    /// characters.
    pub reason: Option<String>,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome
    /// (a refusal included); the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
}

/// A failed payment of a pending purchase (service).
#[derive(InputObject)]
pub struct FailPurchaseInput {
    /// The purchase whose payment failed (`purchaseCredits`' `id`); it must be PENDING.
    pub purchase_id: ID,
    /// Why the payment failed (the payment system's decline reason, say): 1 to 500 characters,
    /// kept as `Purchase.endReason` and sent in the `purchase.failed` event.
    pub reason: String,
    /// The payment system's reference of the failed attempt, if it has one: 1 to 128
    /// characters, kept as `Purchase.failedPaymentReference`.
    pub payment_reference: Option<String>,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome
    /// (a refusal included); the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
}

/// A refund of a purchase.
#[derive(InputObject)]
pub struct RefundPurchaseInput {
    /// The purchase to refund.
    pub purchase_id: ID,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
    /// Free text recorded with the refund: up to 500 characters.
    pub reason: Option<String>,
}

/// What a refund paid back and took back.
#[derive(SimpleObject)]
pub struct RefundPurchasePayload {
    /// The purchase, now REFUNDED.
    pub purchase: Purchase,
    /// The money paid back.
    pub refunded: Money,
    /// The purchase's unused credits taken back.
    pub credits: CreditAmount,
    /// Promotional credits tied to the purchase, forfeited.
    pub revoked: CreditAmount,
}

fn parse_purchase_id(id: &ID) -> Result<i64, ServiceError> {
    id.parse::<i64>().map_err(|_| ServiceError::NotFound(format!("no purchase {:?}", id.as_str())))
}

#[derive(Default)]
pub struct PurchasesQuery;

#[Object]
impl PurchasesQuery {
    /// The packages on sale, with their prices (any token).
    async fn credit_packages(&self, ctx: &Context<'_>) -> ApiResult<Vec<CreditPackage>> {
        caller(ctx)?;
        let program = &app(ctx).ledger.program;
        Ok(program
            .packages
            .iter()
            .map(|p| CreditPackage {
                code: p.code.clone(),
                name: p.name.clone(),
                credits: credits(p.credits),
                price: Money { amount_minor: p.price_minor, currency: program.currency.clone() },
            })
            .collect())
    }
}

#[derive(Default)]
pub struct PurchasesMutation;

#[Object]
impl PurchasesMutation {
    /// Creates a pending purchase priced in money; `confirmPurchase` pays it (user, or on
    /// behalf).
    async fn purchase_credits(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account, a package or custom credits, and an idempotency key.")] input: PurchaseCreditsInput,
    ) -> ApiResult<Purchase> {
        require_account(ctx, &input.account_id)?;
        let app = app(ctx);
        let purchase = app
            .ledger
            .purchase(
                &input.account_id,
                input.package.as_deref(),
                input.credits.map(|c| c.0),
                into_parsed(input.metadata),
                &input.idempotency_key,
                app.clock.now(),
            )
            .await?;
        Ok(Purchase(purchase))
    }

    /// The payment succeeded: the purchase becomes a paid lot (service). Honoured for an EXPIRED
    /// purchase too (the money was taken); refused with INVALID_STATE for a CANCELLED or FAILED
    /// one.
    async fn confirm_purchase(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The purchase, the payment reference, and optionally the amount charged.")] input: ConfirmPurchaseInput,
    ) -> ApiResult<Purchase> {
        require_service(ctx)?;
        let id = input
            .purchase_id
            .parse::<i64>()
            .map_err(|_| ServiceError::NotFound(format!("no purchase {:?}", input.purchase_id.as_str())))?;
        let app = app(ctx);
        let purchase = app.ledger.confirm_purchase(id, &input.payment_reference, input.amount_minor, app.clock.now()).await?;
        Ok(Purchase(purchase))
    }

    /// Calls off a PENDING purchase (service): it becomes CANCELLED, for good (a later
    /// `confirmPurchase` is refused), and `purchase.cancelled` goes to the webhook outbox. A
    /// purchase that is not pending (its lifetime over included) is INVALID_STATE; an unknown
    /// one NOT_FOUND.
    async fn cancel_purchase(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The purchase, an optional reason, and an idempotency key.")] input: CancelPurchaseInput,
    ) -> ApiResult<Purchase> {
        require_service(ctx)?;
        let id = parse_purchase_id(&input.purchase_id)?;
        let app = app(ctx);
        let purchase = app.ledger.cancel_purchase(id, input.reason.as_deref(), &input.idempotency_key, app.clock.now()).await?;
        Ok(Purchase(purchase))
    }

    /// Records that a PENDING purchase's payment failed (service): it becomes FAILED, for good
    /// (a later `confirmPurchase` is refused; the buyer starts a new purchase), and
    /// `purchase.failed` goes to the webhook outbox. A purchase that is not pending (its
    /// lifetime over included) is INVALID_STATE; an unknown one NOT_FOUND.
    async fn fail_purchase(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The purchase, why its payment failed, the attempt's reference, and an idempotency key.")]
        input: FailPurchaseInput,
    ) -> ApiResult<Purchase> {
        require_service(ctx)?;
        let id = parse_purchase_id(&input.purchase_id)?;
        let app = app(ctx);
        let purchase = app
            .ledger
            .fail_purchase(id, &input.reason, input.payment_reference.as_deref(), &input.idempotency_key, app.clock.now())
            .await?;
        Ok(Purchase(purchase))
    }

    /// Refunds a purchase under the program's terms: an admin within the operator's window, the
    /// account's user (or the service on the user's behalf) within the refund window.
    async fn refund_purchase(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The purchase, an idempotency key, and a reason.")] input: RefundPurchaseInput,
    ) -> ApiResult<RefundPurchasePayload> {
        let id = parse_purchase_id(&input.purchase_id)?;
        let app = app(ctx);
        let requester = match caller(ctx)? {
            Caller::Admin { .. } => Requester::Operator,
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
        let actor = caller(ctx)?.actor();
        let receipt =
            app.ledger.refund_purchase(requester, actor, id, &input.idempotency_key, input.reason.as_deref(), app.clock.now()).await?;
        let purchase = app.ledger.purchase_by_id(id).await?;
        Ok(RefundPurchasePayload {
            purchase: Purchase(purchase),
            refunded: Money { amount_minor: receipt.refunded_minor, currency: receipt.currency },
            credits: credits(receipt.credits),
            revoked: credits(receipt.revoked),
        })
    }
}
