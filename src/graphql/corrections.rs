//! Operators' corrections of a ledger (admin, with a named operator): `voidLot`, `adjustCredits`,
//! `changeLotExpiry`.

use crate::auth::Caller;
use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{app, caller};
use crate::graphql::error::{ApiError, ApiResult};
use crate::graphql::types::credits;
use crate::service::ServiceError;
use crate::service::corrections::{AdjustRequest, ExpiryRequest, VoidRequest};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

#[derive(Default)]
pub struct CorrectionsMutation;

/// What to void, and why.
#[derive(InputObject)]
pub struct VoidLotInput {
    /// The lot (`Lot.id`).
    pub lot_id: ID,
    /// Why, shown in the account's history with the operator's name: 1 to 500 characters.
    pub reason: String,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
}

/// A void, as recorded.
#[derive(SimpleObject)]
pub struct VoidLotPayload {
    /// The voided lot.
    pub lot_id: ID,
    /// The account the lot belongs to (its external id).
    pub account_id: ID,
    /// The credits voided: all that remained of the lot.
    pub voided: CreditAmount,
    /// The journal entry of the void (kind VOID).
    pub sequence: ID,
}

/// A manual debit: how much, from where, and why.
#[derive(InputObject)]
pub struct AdjustCreditsInput {
    /// The account's external id.
    pub account_id: ID,
    /// The credits to take: more than 0, at most 1000000000.
    pub amount: CreditAmount,
    /// The one lot to take them from (`Lot.id`, a lot of this account); when left out, the
    /// account's lots in the program's order of consumption (never the day's free credits).
    pub lot_id: Option<ID>,
    /// Why, shown in the account's history with the operator's name: 1 to 500 characters.
    pub reason: String,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
}

/// Credits taken from one lot.
#[derive(SimpleObject)]
pub struct LotDebit {
    /// The lot.
    pub lot_id: ID,
    /// The credits taken from it.
    pub amount: CreditAmount,
}

/// A manual debit, as recorded.
#[derive(SimpleObject)]
pub struct AdjustCreditsPayload {
    /// The credits taken.
    pub amount: CreditAmount,
    /// Where they were taken from, in the order taken.
    pub lots: Vec<LotDebit>,
    /// The journal entry of the debit (kind ADJUST).
    pub sequence: ID,
}

/// A lot's new expiry, and why.
#[derive(InputObject)]
pub struct ChangeLotExpiryInput {
    /// The lot (`Lot.id`).
    pub lot_id: ID,
    /// The new expiry (RFC 3339), later or earlier than the lot's. An instant not later than now
    /// expires the lot at once, dated now (never in the past).
    pub expires_at: DateTime<Utc>,
    /// Why, shown in the account's history with the operator's name: 1 to 500 characters.
    pub reason: String,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
}

/// An expiry change, as recorded.
#[derive(SimpleObject)]
pub struct ChangeLotExpiryPayload {
    /// The lot.
    pub lot_id: ID,
    /// The account the lot belongs to (its external id).
    pub account_id: ID,
    /// The lot's expiry before the change; null when it never expired.
    pub previous_expires_at: Option<DateTime<Utc>>,
    /// The lot's expiry now: the instant asked for, or the instant of the change when the one
    /// asked for was not later.
    pub expires_at: DateTime<Utc>,
    /// What the change wrote off at once (an EXPIRE entry): what remained of the lot when it was
    /// moved to now; 0 otherwise.
    pub expired: CreditAmount,
    /// The journal entry of the change (kind EXPIRY_CHANGE).
    pub sequence: ID,
}

/// A lot id as the API shows it; anything else names no lot.
fn parse_lot_id(id: &ID) -> Result<i64, ServiceError> {
    id.parse::<i64>().map_err(|_| ServiceError::NotFound(format!("no lot {:?}", id.as_str())))
}

/// The operator a correction is recorded under: corrections need a named admin token.
fn operator(ctx: &Context<'_>) -> Result<String, ApiError> {
    match caller(ctx)? {
        Caller::Admin { subject: Some(subject) } => Ok(subject.clone()),
        Caller::Admin { subject: None } => Err(ApiError::Forbidden(
            "corrections are recorded under the operator's name: use a token made with `credits token --role admin --subject NAME` or a console session"
                .into(),
        )),
        _ => Err(ApiError::Forbidden("this operation needs an admin token".into())),
    }
}

#[Object]
impl CorrectionsMutation {
    /// Voids what remains of a lot (admin, named operator): its credits leave the account for
    /// good, in a VOID entry with the reason and the operator's name. What was spent of the lot
    /// stays spent. Refused with INVALID_STATE when nothing remains, when the lot has expired
    /// (its write-off owns it), or while a reservation holds credits drawn from it (capture or
    /// release it first); NOT_FOUND for an unknown lot. Works on an account of any status.
    async fn void_lot(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The lot, the reason, and an idempotency key.")] input: VoidLotInput,
    ) -> ApiResult<VoidLotPayload> {
        let actor = operator(ctx)?;
        let lot_id = parse_lot_id(&input.lot_id)?;
        let app = app(ctx);
        let request = VoidRequest { lot_id, reason: input.reason, idempotency_key: input.idempotency_key, actor: Some(actor) };
        let receipt = app.ledger.void_lot(request, app.clock.now()).await?;
        Ok(VoidLotPayload {
            lot_id: ID(receipt.lot_id.to_string()),
            account_id: ID(receipt.account),
            voided: credits(receipt.voided),
            sequence: ID(receipt.entry_id.to_string()),
        })
    }

    /// Debits an account by hand (admin, named operator), in an ADJUST entry with the reason and
    /// the operator's name: from the lot named, or from the account's lots in the program's
    /// order (never the day's free credits). All or nothing: INSUFFICIENT_CREDITS says what was
    /// available (of that lot, when one is named); NOT_FOUND for a lot that is not the
    /// account's. Works on an account of any status. To give credits, use `grantCredits`.
    async fn adjust_credits(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account, the amount, the lot if one, the reason, and an idempotency key.")] input: AdjustCreditsInput,
    ) -> ApiResult<AdjustCreditsPayload> {
        let actor = operator(ctx)?;
        let lot_id = input.lot_id.as_ref().map(parse_lot_id).transpose()?;
        let app = app(ctx);
        let request = AdjustRequest {
            account: input.account_id.to_string(),
            amount: input.amount.0,
            lot_id,
            reason: input.reason,
            idempotency_key: input.idempotency_key,
            actor: Some(actor),
        };
        let receipt = app.ledger.adjust_credits(request, app.clock.now()).await?;
        Ok(AdjustCreditsPayload {
            amount: credits(receipt.amount),
            lots: receipt
                .takes
                .into_iter()
                .map(|(lot, amount)| LotDebit { lot_id: ID(lot.to_string()), amount: credits(amount) })
                .collect(),
            sequence: ID(receipt.entry_id.to_string()),
        })
    }

    /// Moves a lot's expiry later or earlier (admin, named operator), in an EXPIRY_CHANGE entry
    /// with the reason and the operator's name. An instant not later than now expires the lot
    /// at once, dated now: what remains is written off in an EXPIRE entry, and what a
    /// reservation holds from it expires when released (as any hold's part of an expired lot).
    /// A later expiry makes the expiring-credits notice due again. Refused with INVALID_STATE
    /// for a lot already expired (written off or due to be: never reopened), one with nothing
    /// remaining nor held, the day's free credits, or the expiry it already has; NOT_FOUND for
    /// an unknown lot. Works on an account of any status.
    async fn change_lot_expiry(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The lot, its new expiry, the reason, and an idempotency key.")] input: ChangeLotExpiryInput,
    ) -> ApiResult<ChangeLotExpiryPayload> {
        let actor = operator(ctx)?;
        let lot_id = parse_lot_id(&input.lot_id)?;
        let app = app(ctx);
        let request = ExpiryRequest {
            lot_id,
            expires_at: input.expires_at,
            reason: input.reason,
            idempotency_key: input.idempotency_key,
            actor: Some(actor),
        };
        let receipt = app.ledger.change_lot_expiry(request, app.clock.now()).await?;
        Ok(ChangeLotExpiryPayload {
            lot_id: ID(receipt.lot_id.to_string()),
            account_id: ID(receipt.account),
            previous_expires_at: receipt.change.from,
            expires_at: receipt.change.to,
            expired: credits(receipt.written_off),
            sequence: ID(receipt.entry_id.to_string()),
        })
    }
}
