//! Purchases: the packages on sale, buying credits, confirming the payment, and refunds.

use crate::auth::Caller;
use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{app, caller, require_account, require_service};
use crate::graphql::error::{ApiError, ApiResult};
use crate::graphql::types::*;
use crate::service::ServiceError;
use crate::service::purchases::PurchaseView;
use crate::service::refunds::Requester;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

#[derive(SimpleObject)]
pub struct Money {
    /// An integer amount of the currency's minor unit (cents for USD).
    pub amount_minor: i64,
    /// ISO 4217.
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
}

pub struct Purchase(pub PurchaseView);

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
    async fn credits(&self) -> CreditAmount {
        credits(self.0.credits)
    }
    async fn amount(&self) -> Money {
        Money { amount_minor: self.0.price_minor, currency: self.0.currency.clone() }
    }
    /// PENDING until the payment is confirmed, then PAID; REFUNDED after a refund.
    async fn status(&self) -> PurchaseStatus {
        self.0.status.into()
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
    /// Where the user pays for it: the program's checkout page for this purchase while it is
    /// PENDING, where one is configured (`program.checkout` is EXTERNAL); else null.
    async fn checkout_url(&self, ctx: &Context<'_>) -> Option<String> {
        let links = crate::graphql::portal::links(ctx)?;
        match (&links.checkout, self.0.status) {
            (crate::links::Checkout::External(template), crate::ledger::money::PurchaseStatus::Pending) => {
                Some(template.fill(self.0.id, &self.0.credits.to_string(), self.0.price_minor, &self.0.currency))
            }
            _ => None,
        }
    }
}

#[derive(SimpleObject)]
pub struct CreditPackage {
    pub code: String,
    pub name: String,
    pub credits: CreditAmount,
    pub price: Money,
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

fn parse_purchase_id(id: &ID) -> Result<i64, ServiceError> {
    id.parse::<i64>().map_err(|_| ServiceError::NotFound(format!("no purchase {:?}", id.as_str())))
}

#[derive(Default)]
pub struct PurchasesQuery;

#[Object]
impl PurchasesQuery {
    /// The packages on sale, with their prices.
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

    /// Refunds a purchase under the program's terms: an admin within the operator's window, the
    /// account's user (or the service on the user's behalf) within the refund window.
    async fn refund_purchase(&self, ctx: &Context<'_>, input: RefundPurchaseInput) -> ApiResult<RefundPurchasePayload> {
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
