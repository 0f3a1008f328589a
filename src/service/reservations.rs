//! Reservations (domain.md §4, *beyond*): hold credits for work whose cost is known only at its
//! end, then capture at most what was held, or release it all; a hold nobody settles expires at
//! its deadline. The hold takes the credits from the lots at once, so nobody else can spend them
//! and the lots' expiry cannot eat them; settling gives back to the same lots what was not
//! charged, and what lands on a lot that expired meanwhile is written off at once.

use crate::entity::reservation;
use crate::ledger::reservation::{self as rules, ReservationStatus};
use crate::ledger::{Credits, Lot, Purpose, Take, balance};
use crate::service::Refusal;
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey, label, reason};
use crate::service::metadata::Metadata;
use crate::service::posting::{self, EntryMeta};
use crate::service::spend_limits;
use crate::service::spending::{check_amount, debits_of, take_in_order};
use crate::service::{Engine, ServiceError, tx};
use crate::store::{self, idempotency::request_hash, journal::EntryKind, lots, reservations};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde::{Deserialize, Serialize};

/// The most reservations one expiry call settles; the worker calls again until one comes back short.
pub const MAX_RESERVATION_BATCH: u64 = 200;

#[derive(Debug, Clone)]
pub struct ReserveRequest {
    pub account: String,
    pub amount: Credits,
    pub idempotency_key: String,
    pub feature: String,
    pub model: Option<String>,
    pub reason: Option<String>,
    /// How long to hold; `rules::DEFAULT_HOLD` when none.
    pub hold_seconds: Option<i64>,
    /// Kept on the reservation and on its hold, capture and release entries.
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Clone, Serialize)]
struct ReserveFields {
    amount: Credits,
    feature: String,
    model: Option<String>,
    reason: Option<String>,
    hold_seconds: Option<i64>,
    /// Left out when none: a hold without metadata hashes as before metadata existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub reservation_id: i64,
    pub amount: Credits,
    pub takes: Vec<Take>,
    pub deadline: DateTime<Utc>,
    pub available_after: Credits,
    pub entry_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub reservation_id: i64,
    pub status: ReservationStatus,
    pub captured: Credits,
    pub released: Credits,
    /// The part of `released` that landed on lots past their expiry and was written off.
    pub expired: Credits,
    pub settled_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
struct SettleFields {
    reservation_id: i64,
    captured: Option<Credits>,
}

fn parse_id(id: &str) -> Result<i64, ServiceError> {
    id.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| ServiceError::NotFound(format!("no reservation {id:?}")))
}

/// What a hold takes and why.
pub(crate) struct HoldRequest<'a> {
    pub amount: Credits,
    pub feature: &'a str,
    pub model: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub key: &'a str,
    pub deadline: DateTime<Utc>,
    pub metadata: Option<&'a Metadata>,
}

/// Why a hold was not taken.
pub(crate) enum HoldRefused {
    /// The account's lots cannot pay it.
    Short(crate::ledger::Insufficient),
    /// A spend limit of the account's user (`Refusal::SpendLimitReached`).
    Limit(Refusal),
}

/// Takes `amount` from a locked account's lots into a new reservation, or says why not: a spend
/// limit it would pass (checked first, `service::spend_limits`), or how short the lots are. The
/// hold counts against the limits when taken; settling it gives the room back (`settle_as`).
pub(crate) async fn hold(
    txn: &DatabaseTransaction,
    program: &crate::program::Program,
    locked: &crate::entity::account::Model,
    request: HoldRequest<'_>,
    now: DateTime<Utc>,
) -> Result<Result<Hold, HoldRefused>, ServiceError> {
    // Holds past their deadline are released first, their room under the limits with them: a
    // hold's deadline is exact, so a new hold is checked against what is still held, as a spend is.
    release_lapsed(txn, &[locked.id], now).await?;
    let counters = match spend_limits::check_hold(txn, locked.id, request.feature, request.amount, now).await? {
        Ok(counters) => counters,
        Err(refusal) => return Ok(Err(HoldRefused::Limit(refusal))),
    };
    let (lots, takes) = match take_in_order(txn, program, locked, request.amount, now, Purpose::Feature(request.feature)).await? {
        Ok(found) => found,
        Err(short) => return Ok(Err(HoldRefused::Short(short))),
    };
    let why = format!("held until {}", request.deadline.to_rfc3339());
    let meta = EntryMeta {
        idempotency_key: Some(request.key),
        feature: Some(request.feature),
        model: request.model,
        reason: Some(request.reason.unwrap_or(&why)),
        metadata: request.metadata.map(Metadata::as_json),
        ..EntryMeta::now("reserve", now)
    };
    let entry = posting::debit(txn, locked.id, EntryKind::Hold, &debits_of(&lots, &takes), meta).await?;
    crate::service::notices::check_low_credits(txn, program, locked, now).await?;
    let reservation = reservations::insert(
        txn,
        reservations::NewReservation {
            account_id: locked.id,
            idempotency_key: request.key,
            amount_micros: request.amount.micros(),
            feature: request.feature,
            model: request.model,
            reason: request.reason,
            hold_entry_id: entry.id,
            created_at: now,
            deadline: request.deadline,
            metadata: request.metadata.map(Metadata::as_json),
        },
    )
    .await?;
    spend_limits::count_hold(txn, locked.id, reservation.id, &counters, request.amount).await?;
    let available_after = balance(&lots, now).checked_sub(request.amount).expect("allocate checked the balance");
    Ok(Ok(Hold {
        reservation_id: reservation.id,
        amount: request.amount,
        takes,
        deadline: request.deadline,
        available_after,
        entry_id: entry.id,
    }))
}

impl Engine {
    /// Holds credits of an account, taken in the program's order, until captured, released or
    /// past the deadline.
    pub async fn reserve(&self, request: ReserveRequest, now: DateTime<Utc>) -> Result<Hold, ServiceError> {
        let account = ExternalId::parse(&request.account)?;
        let key = IdempotencyKey::parse(&request.idempotency_key)?;
        let fields = ReserveFields {
            amount: check_amount(request.amount)?,
            feature: label("feature", &request.feature)?,
            model: request.model.as_deref().map(|m| label("model", m)).transpose()?,
            reason: request.reason.as_deref().map(reason).transpose()?,
            hold_seconds: request.hold_seconds,
            metadata: request.metadata,
        };
        let hold_for = match request.hold_seconds {
            Some(seconds) => Some(Duration::try_seconds(seconds).ok_or_else(|| ServiceError::bad_input("holdSeconds is out of range"))?),
            None => None,
        };
        let deadline = rules::deadline(now, hold_for).map_err(|e| ServiceError::bad_input(format!("holdSeconds: {e}")))?;
        self.require_identity_to_spend(&account, false).await?;
        let command = Command {
            operation: "reserve",
            account,
            key,
            request_hash: request_hash(&fields),
            permit: Permit::ChargeFor(fields.feature.clone()),
            fields,
        };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, ledger, account, command, now } = run;
                let fields = &command.fields;
                let request = HoldRequest {
                    amount: fields.amount,
                    feature: &fields.feature,
                    model: fields.model.as_deref(),
                    reason: fields.reason.as_deref(),
                    key: command.key.as_str(),
                    deadline,
                    metadata: fields.metadata.as_ref(),
                };
                let hold = match hold(txn, &ledger.program, account, request, now).await? {
                    Ok(hold) => hold,
                    Err(HoldRefused::Short(short)) => return Ok(Err(Refusal::short(short, Some(&fields.feature)))),
                    Err(HoldRefused::Limit(refusal)) => return Ok(Err(refusal)),
                };
                tracing::info!(account.id = account.id, reservation.id = hold.reservation_id, amount.credits = %fields.amount, "credits held");
                Ok(Ok(hold))
            })
        })
        .await
    }

    /// Charges `amount` (at most what is held) of a held reservation and gives back the rest.
    pub async fn capture(
        &self,
        reservation_id: &str,
        amount: Credits,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<Settlement, ServiceError> {
        let captured = if amount.is_zero() { Credits::ZERO } else { check_amount(amount)? };
        self.settle_keyed(reservation_id, Some(captured), idempotency_key, now).await
    }

    /// Gives a held reservation back in full.
    pub async fn release(&self, reservation_id: &str, idempotency_key: &str, now: DateTime<Utc>) -> Result<Settlement, ServiceError> {
        self.settle_keyed(reservation_id, None, idempotency_key, now).await
    }

    async fn settle_keyed(
        &self,
        reservation_id: &str,
        captured: Option<Credits>,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<Settlement, ServiceError> {
        let id = parse_id(reservation_id)?;
        let key = IdempotencyKey::parse(idempotency_key)?;
        let found = reservations::by_id(&self.db, id).await?.ok_or_else(|| ServiceError::NotFound(format!("no reservation {id}")))?;
        let held = Credits::from_micros(found.amount_micros);
        if let Some(captured) = captured
            && captured > held
        {
            return Err(ServiceError::bad_input(format!("cannot capture {captured}: the reservation holds {held}")));
        }
        let owner =
            store::accounts::by_id(&self.db, found.account_id).await?.ok_or_else(|| anyhow::anyhow!("reservation {id} has no account"))?;
        let command = Command {
            operation: if captured.is_some() { "capture_reservation" } else { "release_reservation" },
            account: ExternalId::parse(&owner.external_id)?,
            key,
            request_hash: request_hash(&SettleFields { reservation_id: id, captured }),
            // Settling gives credits back or charges what is already held: any status may.
            permit: Permit::Any,
            fields: (),
        };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, command, now, .. } = run;
                // A hold's deadline is exact: past it nothing is held, released by the worker yet
                // or not. The account's lapsed holds (this one included) are released first, as
                // every operation on the account's credits does.
                release_lapsed(txn, &[found.account_id], now).await?;
                let current = reservations::by_id(txn, id).await?.ok_or_else(|| anyhow::anyhow!("reservation {id} vanished"))?;
                if current.status != ReservationStatus::Held.as_str() {
                    return Ok(Err(Refusal::ReservationNotHeld { status: current.status }));
                }
                if let Some(captured) = captured
                    && captured.micros() > current.amount_micros
                {
                    // A refund shrank the hold since it was read above; an input error, not stored.
                    let held = Credits::from_micros(current.amount_micros);
                    return Err(ServiceError::bad_input(format!("cannot capture {captured}: the reservation holds {held}")));
                }
                let (status, captured) = match captured {
                    Some(amount) => (ReservationStatus::Captured, amount),
                    None => (ReservationStatus::Released, Credits::ZERO),
                };
                Ok(Ok(settle(txn, &current, status, captured, Some(command.key.as_str()), now).await?))
            })
        })
        .await
    }

    /// Releases held reservations past their deadline, at most `batch`; how many it settled.
    pub async fn expire_reservations(&self, now: DateTime<Utc>, batch: u64) -> Result<u64, ServiceError> {
        let due = reservations::due(&self.db, now, batch.clamp(1, MAX_RESERVATION_BATCH)).await?;
        let mut settled = 0;
        for found in due {
            let done = tx::write(&self.writer, |txn| {
                let found = found.clone();
                Box::pin(async move {
                    store::accounts::lock(txn, found.account_id).await?;
                    // Re-read under the lock: a capture or another worker may have settled it.
                    let Some(current) = reservations::by_id(txn, found.id).await?.filter(|r| r.status == ReservationStatus::Held.as_str())
                    else {
                        return Ok::<_, ServiceError>(false);
                    };
                    settle(txn, &current, ReservationStatus::Expired, Credits::ZERO, None, now).await?;
                    // A market job whose hold ran out failed by its deadline.
                    crate::service::market::on_hold_expired(txn, current.id, now).await?;
                    Ok(true)
                })
            })
            .await?;
            settled += u64::from(done);
        }
        if settled > 0 {
            tracing::info!(reservations = settled, "reservations past their deadline released");
        }
        Ok(settled)
    }
}

/// Releases, in the caller's transaction and under the accounts' locks, every hold of these
/// accounts past its deadline: a spend, a new hold or a refund that runs before the worker has
/// released them sees the same credits a read shows (domain.md §8). A market job whose hold
/// lapsed failed by its deadline. Returns how many it released.
pub(crate) async fn release_lapsed(txn: &DatabaseTransaction, account_ids: &[i64], now: DateTime<Utc>) -> Result<usize, ServiceError> {
    let lapsed = reservations::lapsed(txn, account_ids, now).await?;
    release(txn, &lapsed, now).await
}

/// `release_lapsed` for holds already read (`store::spend_reads`).
pub(crate) async fn release(txn: &DatabaseTransaction, lapsed: &[reservation::Model], now: DateTime<Utc>) -> Result<usize, ServiceError> {
    for reservation in lapsed {
        settle(txn, reservation, ReservationStatus::Expired, Credits::ZERO, None, now).await?;
        crate::service::market::on_hold_expired(txn, reservation.id, now).await?;
    }
    Ok(lapsed.len())
}

/// For reads: gives the parts of this account's lapsed holds back to `rules` (fetching lots the
/// holds emptied), as their release will, so that a read counts them as available again before
/// the worker or a spend has released them. What lands on an expired lot stays out of reads.
pub(crate) async fn return_lapsed(
    conn: &impl ConnectionTrait,
    account_id: i64,
    rules: &mut Vec<Lot>,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let lapsed = reservations::lapsed(conn, &[account_id], now).await?;
    if lapsed.is_empty() {
        return Ok(());
    }
    let entries: Vec<i64> = lapsed.iter().map(|r| r.hold_entry_id).collect();
    let lines = store::journal::lines_of(conn, &entries).await?;
    let missing: Vec<i64> = lines.iter().map(|l| l.lot_id).filter(|id| !rules.iter().any(|lot| lot.id == *id)).collect();
    if !missing.is_empty() {
        for model in lots::by_ids(conn, &missing).await? {
            rules.push(lots::to_rule(&model)?);
        }
    }
    for line in &lines {
        let lot =
            rules.iter_mut().find(|lot| lot.id == line.lot_id).ok_or_else(|| anyhow::anyhow!("a hold's lot {} is gone", line.lot_id))?;
        lot.remaining = lot.remaining.checked_add(Credits::from_micros(-line.delta_micros)).expect("a lot's credits fit");
    }
    Ok(())
}

/// Ends a held reservation under its account's lock: every held part goes back to its lot, the
/// captured part is spent from the first parts taken, and what went back to an expired lot is
/// written off, dated at that lot's expiry.
pub(crate) async fn settle(
    txn: &DatabaseTransaction,
    reservation: &reservation::Model,
    status: ReservationStatus,
    captured: Credits,
    key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Settlement, ServiceError> {
    settle_as(txn, reservation, status, captured, EntryKind::Spend, key, now).await
}

/// `settle`, charging the captured part as `charge` (a market job's capture is a TRANSFER to
/// its provider, not a spend).
pub(crate) async fn settle_as(
    txn: &DatabaseTransaction,
    reservation: &reservation::Model,
    status: ReservationStatus,
    captured: Credits,
    charge: EntryKind,
    key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Settlement, ServiceError> {
    let lines = store::journal::lines_of(txn, &[reservation.hold_entry_id]).await?;
    let parts: Vec<(i64, Credits)> = lines.iter().map(|l| (l.lot_id, Credits::from_micros(-l.delta_micros))).collect();
    let held = parts.iter().fold(Credits::ZERO, |sum, (_, a)| sum.checked_add(*a).expect("sums fit"));
    assert_eq!(held.micros(), reservation.amount_micros, "a hold's lines are what it holds");
    let ids: Vec<i64> = parts.iter().map(|(lot, _)| *lot).collect();
    let mut lots: Vec<Lot> = lots::by_ids(txn, &ids).await?.iter().map(lots::to_rule).collect::<Result<_, _>>()?;

    let operation = match status {
        ReservationStatus::Captured => "capture_reservation",
        ReservationStatus::Released => "release_reservation",
        _ => "expire_reservation",
    };
    let why = format!("reservation {} {}", reservation.id, status.as_str());
    let meta = EntryMeta {
        idempotency_key: key,
        feature: Some(&reservation.feature),
        model: reservation.model.as_deref(),
        reason: Some(&why),
        // What the reservation was made with goes on with its credits (a capture's spend, a
        // release); a write-off of what returned to an expired lot is the lot's, so none there.
        metadata: reservation.metadata.as_deref(),
        ..EntryMeta::now(operation, now)
    };
    let returns: Vec<(&Lot, Credits)> =
        parts.iter().map(|(id, amount)| (lots.iter().find(|l| l.id == *id).expect("a hold's lots exist"), *amount)).collect();
    posting::restore(txn, reservation.account_id, &returns, meta).await?;
    for lot in &mut lots {
        let back: Credits =
            parts.iter().filter(|(id, _)| *id == lot.id).fold(Credits::ZERO, |s, (_, a)| s.checked_add(*a).expect("sums fit"));
        lot.remaining = lot.remaining.checked_add(back).expect("restored above");
    }

    let (charged, returned) = rules::split(&parts, captured);
    if !charged.is_empty() {
        let charge_reason = reservation.reason.clone().unwrap_or_else(|| format!("reservation {} captured", reservation.id));
        let meta = EntryMeta { reason: Some(&charge_reason), ..meta };
        let debits: Vec<(&Lot, Credits)> =
            charged.iter().map(|(id, a)| (lots.iter().find(|l| l.id == *id).expect("restored"), *a)).collect();
        posting::debit(txn, reservation.account_id, charge, &debits, meta).await?;
        for (id, amount) in &charged {
            let lot = lots.iter_mut().find(|l| l.id == *id).expect("restored");
            lot.remaining = lot.remaining.checked_sub(*amount).expect("charged from what was restored");
        }
    }

    let mut expired = Credits::ZERO;
    for (id, amount) in &returned {
        let lot = lots.iter().find(|l| l.id == *id).expect("restored");
        let Some(expires_at) = lot.expires_at.filter(|_| lot.is_expired(now)) else { continue };
        let meta = EntryMeta {
            reason: Some("expired on its return from a reservation"),
            effective_at: expires_at,
            ..EntryMeta::now("expire", now)
        };
        posting::debit(txn, reservation.account_id, EntryKind::Expire, &[(lot, *amount)], meta).await?;
        let lot = lots.iter_mut().find(|l| l.id == *id).expect("restored");
        lot.remaining = lot.remaining.checked_sub(*amount).expect("written off what was returned");
        expired = expired.checked_add(*amount).expect("sums fit");
    }

    // The room the hold took under the account's spend limits comes back, less what was
    // captured, to the periods it was counted in.
    spend_limits::give_back(txn, reservation.id, captured).await?;
    let captured_micros = (status == ReservationStatus::Captured).then_some(captured.micros());
    assert!(reservations::settle(txn, reservation.id, status, captured_micros, now).await?, "settled under the account lock");
    let released = held.checked_sub(captured).expect("split checked the capture");
    tracing::info!(reservation.id = reservation.id, status = status.as_str(), captured.credits = %captured, released.credits = %released, "reservation settled");
    Ok(Settlement { reservation_id: reservation.id, status, captured, released, expired, settled_at: now })
}
