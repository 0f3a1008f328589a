//! Spending and granting credits.

use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{app, caller, require_admin, require_service};
use crate::graphql::error::ApiResult;
use crate::graphql::metadata::{Metadata, into_parsed};
use crate::graphql::types::*;
use crate::service::spending::{GrantRequest, SpendReceipt, SpendRequest};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// A charge (service): an amount or a price-list use, with an idempotency key.
#[derive(InputObject)]
pub struct SpendCreditsInput {
    /// The account's external id.
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
    /// The model used, if any (letters, digits and `._:/-`, up to 64 characters).
    pub model: Option<String>,
    /// Free text shown in the history: up to 500 characters.
    pub reason: Option<String>,
    /// Your own key-value pairs, kept on the spend's journal entry and shown in history (bounds:
    /// the `Metadata` scalar). Part of the request the idempotency key stands for.
    pub metadata: Option<Metadata>,
}

impl SpendCreditsInput {
    /// The request the service takes.
    pub fn into_request(self) -> SpendRequest {
        SpendRequest {
            account: self.account_id.to_string(),
            amount: self.amount.map(|a| a.0),
            price: self.price.map(|p| p.into_ref(&self.feature)),
            idempotency_key: self.idempotency_key,
            feature: self.feature,
            model: self.model,
            reason: self.reason,
            metadata: into_parsed(self.metadata),
        }
    }
}

/// Credits taken from one lot.
#[derive(SimpleObject)]
pub struct SpendTake {
    /// The lot they came from.
    pub lot_id: ID,
    /// How many credits.
    pub amount: CreditAmount,
}

/// The receipt of a spend: the same on every replay of its key.
#[derive(SimpleObject)]
pub struct SpendCreditsPayload {
    /// The journal entry of this spend (the same on every replay).
    pub sequence: ID,
    /// The credits charged.
    pub amount: CreditAmount,
    /// The lots it came from, in the order they were used.
    pub takes: Vec<SpendTake>,
    /// What the account could still spend right after this spend.
    pub available_after: CreditAmount,
    /// When the spend took effect.
    pub effective_at: DateTime<Utc>,
}

impl From<SpendReceipt> for SpendCreditsPayload {
    fn from(receipt: SpendReceipt) -> Self {
        SpendCreditsPayload {
            sequence: ID(receipt.entry_id.to_string()),
            amount: credits(receipt.amount),
            takes: receipt.takes.iter().map(|t| SpendTake { lot_id: ID(t.lot_id.to_string()), amount: credits(t.amount) }).collect(),
            available_after: credits(receipt.available_after),
            effective_at: receipt.effective_at,
        }
    }
}

/// An operator's grant (admin).
#[derive(InputObject)]
pub struct GrantCreditsInput {
    /// The account's external id.
    pub account_id: ID,
    /// The credits to grant: more than 0, at most 1000000000.
    pub amount: CreditAmount,
    /// The new lot's class: decides refunds and the order of consumption.
    pub class: LotClass,
    /// The new lot's source; ADJUSTMENT when not given. PROVIDER_EARNINGS is refused (only
    /// completed market jobs earn it), and so are ROLLOVER (only a plan's rollover makes it)
    /// and GIFT (only `giftCredits` makes it).
    #[graphql(default_with = "LotSource::Adjustment")]
    pub source: LotSource,
    /// An exact expiry instant (exclusive), in the future; not with `validFor`...
    pub expires_at: Option<DateTime<Utc>>,
    /// ...or a validity from now (from `effectiveAt` when given): "168 hours", "30 days",
    /// "1 month". Neither: never expires.
    pub valid_for: Option<String>,
    /// A future instant from which the credits may be spent. Until then the lot is upcoming:
    /// listed with its start, shown in `Balance.upcoming`, not in `available`, and no spend,
    /// hold or settlement takes from it. Left out: spendable at once. Must be in the future,
    /// and before the expiry.
    pub effective_at: Option<DateTime<Utc>>,
    /// The features these credits may pay for: 1 to 16 names, as spends, reservations, metered
    /// usage and market jobs name their feature (docs/operations.md lists the ones the service
    /// itself charges under). Left out: any use. A use of another feature never takes from
    /// the lot; an operator's `adjustCredits` may.
    pub features: Option<Vec<String>>,
    /// The new lot's priority, 0 to 100: within its tier of the program's order of consumption,
    /// lots of a lower priority are used first, before soonest expiry (the tiers still come
    /// first). 50 when left out, the priority of every lot granted without one.
    pub priority: Option<i64>,
    /// Free text shown in the history: up to 500 characters.
    pub reason: Option<String>,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
    /// Your own key-value pairs, kept on the grant's journal entry and shown in history (bounds:
    /// the `Metadata` scalar). Part of the request the idempotency key stands for.
    pub metadata: Option<Metadata>,
}

/// The grant's lot and journal entry.
#[derive(SimpleObject)]
pub struct GrantCreditsPayload {
    /// The new lot.
    pub lot_id: ID,
    /// The journal entry of the grant.
    pub sequence: ID,
}

#[derive(Default)]
pub struct SpendingMutation;

#[Object]
impl SpendingMutation {
    /// Charges an account, all or nothing, in the program's order of consumption (service).
    async fn spend_credits(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account, the amount or price, and an idempotency key.")] input: SpendCreditsInput,
    ) -> ApiResult<SpendCreditsPayload> {
        require_service(ctx)?;
        let app = app(ctx);
        let receipt = app.ledger.spend(input.into_request(), app.clock.now()).await?;
        Ok(receipt.into())
    }

    /// Creates a lot of any source and class (admin).
    async fn grant_credits(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account, the amount, the lot's class, source and expiry, and an idempotency key.")] input: GrantCreditsInput,
    ) -> ApiResult<GrantCreditsPayload> {
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
            priority: input.priority,
            effective_at: input.effective_at,
            features: input.features,
            reason: input.reason,
            idempotency_key: input.idempotency_key,
            actor: caller(ctx)?.actor().map(str::to_string),
            metadata: into_parsed(input.metadata),
        };
        let receipt = app.ledger.grant(request, app.clock.now()).await?;
        Ok(GrantCreditsPayload { lot_id: ID(receipt.lot_id.to_string()), sequence: ID(receipt.entry_id.to_string()) })
    }
}
