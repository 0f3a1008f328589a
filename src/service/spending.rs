//! Spending and operator grants: the keyed, atomic moves of credits.

use crate::entity::account;
use crate::ledger::{Credits, Features, Insufficient, Lot, LotClass, LotSource, Priority, Purpose, Take, Validity, allocate};
use crate::program::Program;
use crate::service::daily_free;
use crate::service::executor::{Command, Dated, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey, label, reason};
use crate::service::metadata::Metadata;
use crate::service::posting::{self, EntryMeta};
use crate::service::prices::PriceRef;
use crate::service::{Engine, ServiceError};
use crate::store::{idempotency::request_hash, lots};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct SpendRequest {
    pub account: String,
    /// The amount, or none when `price` names what to charge.
    pub amount: Option<Credits>,
    /// Charge the catalog's price of this use instead of an amount (its feature is the spend's).
    pub price: Option<PriceRef>,
    pub idempotency_key: String,
    pub feature: String,
    pub model: Option<String>,
    pub reason: Option<String>,
    /// Kept on the entry and shown in history; part of the request the key stands for.
    pub metadata: Option<Metadata>,
}

/// The operation name spends are keyed under.
pub(crate) const SPEND: &str = "spend";

/// The part of a spend request that decides its outcome, hashed with its key.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SpendFields {
    pub(crate) amount: Credits,
    price: Option<PriceRef>,
    pub(crate) feature: String,
    pub(crate) model: Option<String>,
    pub(crate) reason: Option<String>,
    /// Left out when none, so a spend without metadata hashes as it did before metadata existed
    /// (keys stored then still replay): `tests/metadata.rs` pins that hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<Metadata>,
}

impl SpendFields {
    pub(crate) fn entry_meta<'a>(&'a self, key: &'a IdempotencyKey, now: DateTime<Utc>) -> EntryMeta<'a> {
        EntryMeta {
            idempotency_key: Some(key.as_str()),
            feature: Some(&self.feature),
            model: self.model.as_deref(),
            reason: self.reason.as_deref(),
            metadata: self.metadata.as_ref().map(Metadata::as_json),
            ..EntryMeta::now(SPEND, now)
        }
    }
}

/// A spend request that passed every input rule: what a batch carries.
#[derive(Debug, Clone)]
pub(crate) struct ParsedSpend {
    pub(crate) account: ExternalId,
    pub(crate) key: IdempotencyKey,
    pub(crate) fields: SpendFields,
    pub(crate) hash: String,
    pub(crate) now: DateTime<Utc>,
}

impl ParsedSpend {
    /// The spend as a command for the executor (`Engine::execute_many`), with its instant.
    pub(crate) fn into_command(self) -> Dated<SpendFields> {
        let permit = Permit::ChargeFor(self.fields.feature.clone());
        (Command { operation: SPEND, account: self.account, key: self.key, request_hash: self.hash, permit, fields: self.fields }, self.now)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendReceipt {
    pub entry_id: i64,
    pub amount: Credits,
    pub takes: Vec<Take>,
    /// What the account could still spend right after this spend.
    pub available_after: Credits,
    pub effective_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct GrantRequest {
    pub account: String,
    pub amount: Credits,
    pub class: LotClass,
    pub source: LotSource,
    pub expires_at: Option<DateTime<Utc>>,
    pub valid_for: Option<Validity>,
    /// Within its tier, a lower priority is used first (0 to 100); none: `Priority::DEFAULT`.
    pub priority: Option<i64>,
    /// A future start: the credits are upcoming, not spendable, until then. `valid_for` counts
    /// from it. None: spendable at once.
    pub effective_at: Option<DateTime<Utc>>,
    /// The features the credits may pay for (`ledger::Features`); none: any use.
    pub features: Option<Vec<String>>,
    pub reason: Option<String>,
    pub idempotency_key: String,
    /// The operator granting (`Caller::actor`), kept on the entry. Not part of the request's
    /// hash: the same grant replayed by another operator is the same grant.
    pub actor: Option<String>,
    /// Kept on the entry and shown in history; part of the request the key stands for.
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Clone, Serialize)]
struct GrantFields {
    amount: Credits,
    class: LotClass,
    source: LotSource,
    expires_at: Option<DateTime<Utc>>,
    valid_for: Option<String>,
    reason: Option<String>,
    /// Left out of the hash when not given, so a grant without one hashes as grants always did
    /// and a key stored before priorities existed still replays.
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<Priority>,
    /// Left out when none: a grant without metadata hashes as before metadata existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
    /// Left out when none, as priority is.
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_at: Option<DateTime<Utc>>,
    /// Left out when none, as priority is; in its one sorted form, so the same scope given in
    /// another order is the same request.
    #[serde(skip_serializing_if = "Option::is_none")]
    features: Option<Features>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantReceipt {
    pub entry_id: i64,
    pub lot_id: i64,
}

/// An amount an operation moves: more than zero, at most one operation's maximum. The API's
/// scalar has already checked its text; callers in the process are held to the same rule.
pub fn check_amount(value: Credits) -> Result<Credits, ServiceError> {
    value.require_positive().map_err(|e| ServiceError::bad_input(format!("amount: {e}")))
}

/// Which of a locked account's lots pay for `amount` at `now` for `purpose`, in the program's order with the
/// day's free credits last (writing the day's lot if the takes need it): all or nothing. Holds
/// past their deadline are released first, so the spend sees what a read shows.
pub(crate) async fn take_in_order(
    txn: &DatabaseTransaction,
    program: &Program,
    locked: &account::Model,
    amount: Credits,
    now: DateTime<Utc>,
    purpose: Purpose<'_>,
) -> Result<Result<(Vec<Lot>, Vec<Take>), Insufficient>, ServiceError> {
    crate::service::reservations::release_lapsed(txn, &[locked.id], now).await?;
    let open = lots::open_for_account(txn, locked.id).await?;
    let mut rules: Vec<_> = open.iter().map(lots::to_rule).collect::<Result<_, _>>()?;
    rules.extend(daily_free::virtual_lot(txn, program, locked.id, &locked.plan, now).await?);
    let mut takes = match allocate(&rules, amount, &program.consumption_order, now, purpose) {
        Ok(takes) => takes,
        Err(short) => return Ok(Err(short)),
    };
    // An untaken virtual lot stays in `rules`: what the account may still spend counts it.
    daily_free::write_if_taken(txn, locked.id, &mut rules, &mut takes, now).await?;
    Ok(Ok((rules, takes)))
}

/// The takes paired with the lots they come from, for a posting.
pub(crate) fn debits_of<'a>(rules: &'a [Lot], takes: &[Take]) -> Vec<(&'a Lot, Credits)> {
    takes.iter().map(|t| (rules.iter().find(|l| l.id == t.lot_id).expect("takes come from these lots"), t.amount)).collect()
}

impl Engine {
    /// Charges an account, all or nothing, consuming lots in the program's order. Concurrent
    /// spends of this process are committed together (`service::batch`), each still all or
    /// nothing and keyed; a spend alone is a batch of one.
    pub async fn spend(&self, request: SpendRequest, now: DateTime<Utc>) -> Result<SpendReceipt, ServiceError> {
        let spend = self.parse_spend(request, now)?;
        self.require_identity_to_spend(&spend.account, false).await?;
        self.spends.submit(self, spend).await
    }

    pub(crate) fn parse_spend(&self, request: SpendRequest, now: DateTime<Utc>) -> Result<ParsedSpend, ServiceError> {
        let account = ExternalId::parse(&request.account)?;
        let key = IdempotencyKey::parse(&request.idempotency_key)?;
        let feature = label("feature", &request.feature)?;
        let (amount, price) = match (request.amount, request.price) {
            (Some(amount), None) => (check_amount(amount)?, None),
            (None, Some(price)) => {
                let price = PriceRef { feature: feature.clone(), ..price };
                if price.model.is_some() && request.model.is_some() && price.model != request.model {
                    return Err(ServiceError::bad_input("give the model once: in price or in the spend"));
                }
                let quote = self.price_quote(&PriceRef { model: price.model.clone().or(request.model.clone()), ..price.clone() })?;
                if quote.total.is_zero() {
                    return Err(ServiceError::bad_input("this use costs nothing: there is nothing to charge"));
                }
                (quote.total, Some(PriceRef { model: quote.model, ..price }))
            }
            _ => return Err(ServiceError::bad_input("give either amount or price, not both")),
        };
        let fields = SpendFields {
            amount,
            price: price.clone(),
            feature,
            model: price.and_then(|p| p.model).or(request.model).as_deref().map(|m| label("model", m)).transpose()?,
            reason: request.reason.as_deref().map(reason).transpose()?,
            metadata: request.metadata,
        };
        let hash = request_hash(&fields);
        Ok(ParsedSpend { account, key, fields, hash, now })
    }

    /// An operator's grant of any source and class, with an optional expiry.
    pub async fn grant(&self, request: GrantRequest, now: DateTime<Utc>) -> Result<GrantReceipt, ServiceError> {
        let account = ExternalId::parse(&request.account)?;
        let key = IdempotencyKey::parse(&request.idempotency_key)?;
        let amount = check_amount(request.amount)?;
        if request.source == LotSource::ProviderEarnings {
            // Earnings come only from completed jobs: the audit matches them to the transfers.
            return Err(ServiceError::bad_input("provider earnings come from completed market jobs, not grants"));
        }
        if request.source == LotSource::Rollover {
            // A rollover lot is made only by moving a plan lot's credits: the audit matches each
            // to the ROLLOVER line that made it.
            return Err(ServiceError::bad_input("rolled-over credits come from a plan's rollover at a period's end, not grants"));
        }
        if request.source == LotSource::Gift {
            // A gift lot is made only by a gift: the audit matches each to the sender's entry.
            return Err(ServiceError::bad_input("gifted credits come from another account's giftCredits, not grants"));
        }
        if request.expires_at.is_some() && request.valid_for.is_some() {
            return Err(ServiceError::bad_input("give either expiresAt or validFor, not both"));
        }
        let effective_at = request.effective_at.map(crate::ledger::time::truncate);
        if effective_at.is_some_and(|at| at <= now) {
            return Err(ServiceError::bad_input("effectiveAt must be in the future; leave it out for credits spendable at once"));
        }
        // A future grant's validity counts from its start, as the credits' life does.
        let starts_at = effective_at.unwrap_or(now);
        let expires_at = match (request.expires_at, request.valid_for) {
            (Some(at), None) => Some(crate::ledger::time::truncate(at)),
            (None, Some(validity)) => validity.expires_at(starts_at),
            _ => None,
        };
        if let Some(at) = expires_at
            && at <= starts_at
        {
            let what = if effective_at.is_some() { "expiresAt must be later than effectiveAt" } else { "expiresAt must be in the future" };
            return Err(ServiceError::bad_input(what));
        }
        let features = request.features.map(Features::new).transpose().map_err(|e| ServiceError::bad_input(format!("features: {e}")))?;
        let fields = GrantFields {
            amount,
            class: request.class,
            source: request.source,
            expires_at: request.expires_at.map(crate::ledger::time::truncate),
            valid_for: request.valid_for.map(|v| v.canonical()),
            reason: request.reason.as_deref().map(reason).transpose()?,
            priority: request.priority.map(Priority::new).transpose().map_err(ServiceError::bad_input)?,
            metadata: request.metadata,
            effective_at,
            features,
        };
        let request_hash = request_hash(&fields);
        let actor = request.actor;
        let command =
            Command { operation: "grant", account, key, request_hash, permit: Permit::ReceiveCredits, fields: (fields, expires_at, actor) };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, account, command, now, .. } = run;
                let (fields, expires_at, actor) = &command.fields;
                let lot = lots::NewLot {
                    account_id: account.id,
                    class: fields.class,
                    source: fields.source,
                    amount: fields.amount,
                    granted_at: now,
                    expires_at: *expires_at,
                    origin_kind: Some("grant"),
                    origin_id: Some(command.key.as_str().to_string()),
                    priority: fields.priority.unwrap_or_default(),
                    effective_at: fields.effective_at,
                    features: fields.features.clone(),
                };
                let meta = EntryMeta {
                    idempotency_key: Some(command.key.as_str()),
                    reason: fields.reason.as_deref(),
                    actor: actor.as_deref(),
                    metadata: fields.metadata.as_ref().map(Metadata::as_json),
                    ..EntryMeta::now("grant", now)
                };
                let (lot, entry) = posting::credit(txn, lot, meta).await?;
                tracing::info!(account.id = account.id, amount.credits = %fields.amount, lot.source = %fields.source, "granted");
                Ok(Ok(GrantReceipt { entry_id: entry.id, lot_id: lot.id }))
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grant's fields as they were hashed before priorities: a key stored then must replay
    /// now, so a grant that names no priority hashes exactly as it did.
    #[derive(Serialize)]
    struct GrantFieldsBefore {
        amount: Credits,
        class: LotClass,
        source: LotSource,
        expires_at: Option<DateTime<Utc>>,
        valid_for: Option<String>,
        reason: Option<String>,
    }

    #[test]
    fn a_grant_without_a_priority_hashes_as_before() {
        let (amount, class, source) = (Credits::from_whole(5), LotClass::Promotional, LotSource::Adjustment);
        let before = GrantFieldsBefore { amount, class, source, expires_at: None, valid_for: Some("30 days".into()), reason: None };
        let now = GrantFields {
            amount,
            class,
            source,
            expires_at: None,
            valid_for: Some("30 days".into()),
            reason: None,
            priority: None,
            metadata: None,
            effective_at: None,
            features: None,
        };
        assert_eq!(request_hash(&before), request_hash(&now));
        let named = GrantFields { priority: Some(Priority::DEFAULT), ..now };
        assert_ne!(request_hash(&before), request_hash(&named), "naming a priority is another request");
    }
}
