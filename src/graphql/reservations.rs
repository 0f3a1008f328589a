//! Reservations: holding credits, then capturing or releasing the hold.

use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{app, require_service};
use crate::graphql::error::ApiResult;
use crate::graphql::metadata::{Metadata, into_parsed};
use crate::graphql::spending::SpendTake;
use crate::graphql::types::*;
use crate::service::reservations::ReserveRequest;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// A hold on an account's credits (service).
#[derive(InputObject)]
pub struct ReserveCreditsInput {
    /// The account's external id.
    pub account_id: ID,
    /// The credits to hold: more than 0, at most 1000000000.
    pub amount: CreditAmount,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
    /// What the held credits will pay for.
    pub feature: String,
    /// The model used, if any (letters, digits and `._:/-`, up to 64 characters).
    pub model: Option<String>,
    /// Free text shown in the history: up to 500 characters.
    pub reason: Option<String>,
    /// How long the hold lasts before it is released on its own: 1 second to 7 days; 1 hour
    /// when not given.
    pub hold_seconds: Option<i64>,
    /// Your own key-value pairs, kept on the reservation, its hold entry and the entries of its
    /// capture or release, shown in history (bounds: the `Metadata` scalar). Part of the request
    /// the idempotency key stands for.
    pub metadata: Option<Metadata>,
}

/// The hold: the same on every replay of its key.
#[derive(SimpleObject)]
pub struct ReserveCreditsPayload {
    /// The reservation, for `captureReservation` and `releaseReservation`.
    pub reservation_id: ID,
    /// The credits held.
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

/// A capture of a held reservation (service).
#[derive(InputObject)]
pub struct CaptureReservationInput {
    /// The reservation (`reserveCredits`' `reservationId`).
    pub reservation_id: ID,
    /// At most the held amount; 0 charges nothing (a release).
    pub amount: CreditAmount,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
}

/// A release of a held reservation (service).
#[derive(InputObject)]
pub struct ReleaseReservationInput {
    /// The reservation (`reserveCredits`' `reservationId`).
    pub reservation_id: ID,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
}

/// How a reservation was settled.
#[derive(SimpleObject)]
pub struct SettlementPayload {
    /// The reservation settled.
    pub reservation_id: ID,
    /// CAPTURED or RELEASED.
    pub status: ReservationStatus,
    /// The credits charged (0 for a release).
    pub captured: CreditAmount,
    /// Given back to the lots the credits came from.
    pub released: CreditAmount,
    /// The part of `released` that landed on lots past their expiry and was written off.
    pub expired: CreditAmount,
    /// When it was settled.
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

#[derive(Default)]
pub struct ReservationsMutation;

#[Object]
impl ReservationsMutation {
    /// Holds credits for work whose cost is known only at its end (service): taken from the lots
    /// at once in the program's order, so nobody else can spend them, until captured, released
    /// or past the deadline.
    async fn reserve_credits(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account, the amount, how long to hold, and an idempotency key.")] input: ReserveCreditsInput,
    ) -> ApiResult<ReserveCreditsPayload> {
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
            metadata: into_parsed(input.metadata),
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
    async fn capture_reservation(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The reservation, the amount to charge, and an idempotency key.")] input: CaptureReservationInput,
    ) -> ApiResult<SettlementPayload> {
        require_service(ctx)?;
        let app = app(ctx);
        let settlement = app.ledger.capture(&input.reservation_id, input.amount.0, &input.idempotency_key, app.clock.now()).await?;
        Ok(settlement.into())
    }

    /// Gives a reservation's held credits back in full (service).
    async fn release_reservation(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The reservation and an idempotency key.")] input: ReleaseReservationInput,
    ) -> ApiResult<SettlementPayload> {
        require_service(ctx)?;
        let app = app(ctx);
        Ok(app.ledger.release(&input.reservation_id, &input.idempotency_key, app.clock.now()).await?.into())
    }
}
