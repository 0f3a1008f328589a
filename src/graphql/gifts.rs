//! Gifts between users: `giftCredits`.

use crate::auth::Caller;
use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{app, caller, require_account};
use crate::graphql::error::ApiResult;
use crate::graphql::types::*;
use crate::service::ServiceError;
use crate::service::gifts::GiftRequest;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// A gift of paid credits from one account to another (`giftCredits`).
#[derive(InputObject)]
pub struct GiftCreditsInput {
    /// The sender's external id. A user token gives from its own account and may leave it out;
    /// a service token must name it.
    pub from_account: Option<ID>,
    /// The recipient's external id: another existing account (NOT_FOUND otherwise).
    pub to_account: ID,
    /// The credits to give: more than 0, at most 1000000000, and within the program's
    /// `[gifts]` limits (`max_per_gift`: BAD_USER_INPUT; the day's `daily_limit` and
    /// `daily_count`: DAILY_LIMIT_REACHED). Only the sender's paid, unscoped credits spendable
    /// now can be gifted (INSUFFICIENT_CREDITS otherwise).
    pub amount: CreditAmount,
    /// Shown in both accounts' history as the entries' reason: up to 500 characters. Left out:
    /// "gift to <recipient>" and "gift from <sender>".
    pub note: Option<String>,
    /// 1 to 128 printable ASCII characters, scoped to the sender. A retry with the same key
    /// replays the first outcome; the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
}

/// One lot a gift made on the recipient.
#[derive(SimpleObject)]
pub struct GiftLot {
    /// The recipient's new lot (source GIFT, class PAID).
    pub lot_id: ID,
    /// The sender's lot its credits came from.
    pub from_lot_id: ID,
    /// The credits in it.
    pub amount: CreditAmount,
    /// Its expiry: the one the sender's credits had; null when they never expire.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A gift made: the same on every replay of its key.
#[derive(SimpleObject)]
pub struct GiftCreditsPayload {
    /// The sender's external id.
    pub from_account: ID,
    /// The recipient's external id.
    pub to_account: ID,
    /// The credits given.
    pub amount: CreditAmount,
    /// The sender's GIFT_SENT journal entry.
    pub sent_sequence: ID,
    /// The recipient's GIFT_RECEIVED journal entry.
    pub received_sequence: ID,
    /// The recipient's new lots, one per sender's lot the gift took from, in the program's
    /// order of consumption.
    pub lots: Vec<GiftLot>,
    /// The sender's credits right after the gift (held credits not included).
    pub balance_after: CreditAmount,
    /// When the gift took effect.
    pub effective_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct GiftsMutation;

#[Object]
impl GiftsMutation {
    /// Gives paid credits to another account, keeping their expiry (user for its own account,
    /// service for any). Off unless the program has a `[gifts]` section (FEATURE_DISABLED).
    /// Refused when either account is suspended or the sender's is not active
    /// (ACCOUNT_NOT_ACTIVE).
    async fn gift_credits(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The sender (a user's own account when left out), the recipient, the amount, a note and an idempotency key.")]
        input: GiftCreditsInput,
    ) -> ApiResult<GiftCreditsPayload> {
        let from = match (caller(ctx)?, input.from_account) {
            (_, Some(id)) => id.to_string(),
            (Caller::User { account }, None) => account.clone(),
            (_, None) => return Err(ServiceError::bad_input("fromAccount is required for a service token").into()),
        };
        // A gift gives away the sender's credits: a user acts for its own account only, and an
        // admin token is not a party to it (admins correct credits with adjustCredits).
        if matches!(caller(ctx)?, Caller::Admin { .. }) {
            return Err(crate::graphql::error::ApiError::Forbidden("giftCredits needs a user or service token".into()));
        }
        require_account(ctx, &from)?;
        let app = app(ctx);
        let request = GiftRequest {
            from,
            to: input.to_account.to_string(),
            amount: input.amount.0,
            note: input.note,
            idempotency_key: input.idempotency_key,
        };
        let receipt = app.ledger.gift(request, app.clock.now()).await?;
        Ok(GiftCreditsPayload {
            from_account: ID(receipt.from),
            to_account: ID(receipt.to),
            amount: credits(receipt.amount),
            sent_sequence: ID(receipt.sent_entry_id.to_string()),
            received_sequence: ID(receipt.received_entry_id.to_string()),
            lots: receipt
                .lots
                .iter()
                .map(|l| GiftLot {
                    lot_id: ID(l.lot_id.to_string()),
                    from_lot_id: ID(l.from_lot_id.to_string()),
                    amount: credits(l.amount),
                    expires_at: l.expires_at,
                })
                .collect(),
            balance_after: credits(receipt.balance_after),
            effective_at: receipt.effective_at,
        })
    }
}
