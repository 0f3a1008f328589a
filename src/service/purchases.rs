//! Buying credits: a pending purchase with its price, then the payment's confirmation turns it
//! into a paid lot, exactly once per payment reference.

use crate::entity::purchase;
use crate::ledger::money::PurchaseStatus;
use crate::ledger::purchase::{PurchaseEvent, transition};
use crate::ledger::{Credits, LotClass, LotSource, money::price_of};
use crate::program::Program;
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey};
use crate::service::metadata::Metadata;
use crate::service::posting::{self, EntryMeta};
use crate::service::{Engine, Refusal, ServiceError, tx};
use crate::store::purchases::NewPurchase;
use crate::store::{self, idempotency::request_hash, lots};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize)]
pub enum PurchaseChoice {
    Package(String),
    Credits(Credits),
}

/// What a purchase's key stands for. The choice is flattened into the object, so without
/// metadata this serializes exactly as the bare `PurchaseChoice` that was hashed before metadata
/// existed (`{"Credits":"100"}`): keys stored then still replay (`tests/metadata.rs`).
#[derive(Debug, Clone, Serialize)]
struct PurchaseFields<'a> {
    #[serde(flatten)]
    choice: &'a PurchaseChoice,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Metadata>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PurchaseReceipt {
    purchase_id: i64,
}

/// A purchase as the use cases answer it: typed, with nothing of how it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseView {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub package_code: Option<String>,
    /// The package's name; none for a custom amount.
    pub package_name: Option<String>,
    /// The credits bought.
    pub credits: Credits,
    /// The price, in the currency's minor unit.
    pub price_minor: i64,
    /// ISO 4217.
    pub currency: String,
    pub status: PurchaseStatus,
    pub paid_at: Option<DateTime<Utc>>,
    pub payment_reference: Option<String>,
    /// What was paid back, in the same minor unit, once refunded.
    pub refunded_minor: Option<i64>,
    pub refunded_at: Option<DateTime<Utc>>,
    /// The paid lot, once confirmed.
    pub lot_id: Option<i64>,
    /// What the purchase was made with; its paid lot's grant entry carries it too.
    pub metadata: Option<Metadata>,
    /// When it ended unpaid (cancelled, failed, or the expiry instant); kept by a purchase
    /// paid after it expired.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended unpaid: the caller's reason, or the expiry's.
    pub end_reason: Option<String>,
    /// A failed payment's reference (`fail_purchase`), if one was given.
    pub failure_reference: Option<String>,
    /// Made by auto top-up (`service::auto_topup`).
    pub auto_topup: bool,
    /// Its Stripe Checkout Session's page, if one was made (`Engine::purchase` with Stripe).
    pub checkout_url: Option<String>,
}

impl PurchaseView {
    /// The stored row, read back: an unknown status or negative credits is a corrupt row.
    pub(crate) fn of(row: purchase::Model) -> Result<PurchaseView, ServiceError> {
        let status = store::purchases::status_of(&row)?;
        if row.credits_micros < 0 {
            return Err(anyhow::anyhow!("purchase {}: negative credits {}", row.id, row.credits_micros).into());
        }
        Ok(PurchaseView {
            id: row.id,
            created_at: row.created_at,
            package_code: row.package_code,
            package_name: row.package_name,
            credits: Credits::from_micros(row.credits_micros),
            price_minor: row.price_minor,
            currency: row.currency,
            status,
            paid_at: row.paid_at,
            payment_reference: row.payment_reference,
            refunded_minor: row.refunded_minor,
            refunded_at: row.refunded_at,
            lot_id: row.lot_id,
            metadata: row.metadata.as_deref().map(Metadata::from_stored).transpose()?,
            ended_at: row.ended_at,
            end_reason: row.end_reason,
            failure_reference: row.failure_reference,
            auto_topup: row.auto_topup,
            checkout_url: row.checkout_url,
        })
    }
}

pub const MAX_PAYMENT_REFERENCE_CHARS: usize = 128;
/// The origin of promotional lots tied to a purchase: they go if the purchase is refunded.
pub const BONUS_ORIGIN: &str = "purchase_bonus";

impl Engine {
    /// Prices a package or a custom amount (whole credits, at least the program's minimum) and
    /// records a pending purchase.
    pub async fn purchase(
        &self,
        account: &str,
        package: Option<&str>,
        credits: Option<Credits>,
        metadata: Option<Metadata>,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<PurchaseView, ServiceError> {
        let account = ExternalId::parse(account)?;
        let key = IdempotencyKey::parse(idempotency_key)?;
        let choice = match (package, credits) {
            (Some(code), None) => PurchaseChoice::Package(code.to_string()),
            (None, Some(amount)) => {
                if !amount.is_whole() {
                    return Err(ServiceError::bad_input("a custom purchase is a whole number of credits"));
                }
                let amount = crate::service::spending::check_amount(amount)?;
                if amount < self.program.minimum_purchase {
                    return Err(ServiceError::bad_input(format!("the minimum purchase is {} credits", self.program.minimum_purchase)));
                }
                PurchaseChoice::Credits(amount)
            }
            _ => {
                return Err(ServiceError::bad_input("give either a package or a number of credits"));
            }
        };
        let (package_code, package_name, credits, price_minor) = match &choice {
            PurchaseChoice::Package(code) => {
                let package = self.program.package(code).ok_or_else(|| ServiceError::bad_input(format!("unknown package {code:?}")))?;
                (Some(package.code.clone()), Some(package.name.clone()), package.credits, package.price_minor)
            }
            PurchaseChoice::Credits(amount) => {
                let price =
                    price_of(*amount, self.program.credit_price_minor).ok_or_else(|| ServiceError::bad_input("the price is too large"))?;
                (None, None, *amount, price)
            }
        };
        let command = Command {
            operation: "purchase",
            account,
            key,
            request_hash: request_hash(&PurchaseFields { choice: &choice, metadata: metadata.as_ref() }),
            permit: Permit::ReceiveCredits,
            fields: (package_code, package_name, metadata),
        };
        let receipt = self
            .execute(command, now, |run| {
                Box::pin(async move {
                    let Run { txn, ledger, account, command, now } = run;
                    let (package_code, package_name, metadata) = command.fields.clone();
                    let new = NewPurchase {
                        account_id: account.id,
                        package_code,
                        package_name,
                        credits_micros: credits.micros(),
                        price_minor,
                        currency: ledger.program.currency.clone(),
                        created_at: now,
                        metadata: metadata.map(|m| m.as_json().to_string()),
                        auto_topup: false,
                    };
                    let created = store::purchases::insert_pending(txn, new).await?;
                    Ok(Ok(PurchaseReceipt { purchase_id: created.id }))
                })
            })
            .await?;
        let created = store::purchases::by_id(&self.db, receipt.purchase_id).await?;
        let created = created.ok_or_else(|| anyhow::anyhow!("purchase {} vanished", receipt.purchase_id))?;
        PurchaseView::of(self.with_checkout(created, now).await?)
    }

    /// With Stripe, a pending purchase gets its Checkout Session: made after the purchase
    /// committed (no transaction waits on Stripe), under an idempotency key of the purchase's,
    /// so a replayed `purchaseCredits`, or two at once, hand out the same session. When Stripe
    /// cannot be reached the purchase stays recorded and the call answers `UNAVAILABLE`; the
    /// same call with the same key makes the session then.
    async fn with_checkout(&self, purchase: purchase::Model, now: DateTime<Utc>) -> Result<purchase::Model, ServiceError> {
        let Some(stripe) = &self.stripe.client else {
            return Ok(purchase);
        };
        if purchase.checkout_session_id.is_some() || store::purchases::status_of(&purchase)? != PurchaseStatus::Pending {
            return Ok(purchase);
        }
        let name = match &purchase.package_name {
            Some(name) => name.clone(),
            None => format!("{} credits", Credits::from_micros(purchase.credits_micros)),
        };
        let request = crate::stripe::client::CheckoutRequest {
            purchase_id: purchase.id,
            name: &name,
            amount_minor: purchase.price_minor,
            currency: &purchase.currency,
            pending_until: crate::ledger::purchase::pending_until(purchase.created_at, self.program.pending_lifetime),
            now,
        };
        let session = stripe.create_checkout_session(&request).await.map_err(|e| {
            tracing::warn!(purchase.id = purchase.id, error = %e, "no Checkout Session for the purchase");
            ServiceError::Unavailable(format!(
                "purchase {} is recorded, but its payment page could not be made ({e}); call again with the same idempotencyKey",
                purchase.id
            ))
        })?;
        let stored = store::purchases::set_checkout(&self.db, purchase.id, &session.id, &session.url).await?;
        Ok(stored.ok_or_else(|| anyhow::anyhow!("purchase {} vanished", purchase.id))?)
    }

    /// Pays a pending purchase with a fake payment, for trying the whole flow without a payment
    /// provider (the portal's "simulated payment", development mode only: the caller checks the
    /// mode). It is `confirm_purchase` with a reference made from the purchase id, so paying
    /// twice, or at once from two tabs, pays it once.
    ///
    /// It stands in for a checkout page, and a checkout closes when the purchase ends: an
    /// expired purchase (or one past its lifetime) is refused with `INVALID_STATE`, unlike a
    /// real payment's late confirmation, since no money was taken. Paying an already paid one
    /// still answers it.
    pub async fn simulate_payment(&self, purchase_id: i64, now: DateTime<Utc>) -> Result<PurchaseView, ServiceError> {
        let found = store::purchases::by_id(&self.db, purchase_id).await?;
        let found = found.ok_or_else(|| ServiceError::NotFound(format!("no purchase {purchase_id}")))?;
        let past = match store::purchases::status_of(&found)? {
            PurchaseStatus::Expired => true,
            PurchaseStatus::Pending => crate::ledger::purchase::is_past_lifetime(found.created_at, self.program.pending_lifetime, now),
            _ => false,
        };
        if past {
            return Err(Refusal::InvalidState { what: format!("purchase {purchase_id}: its checkout expired; make a new purchase") }.into());
        }
        self.confirm_purchase(purchase_id, &simulated_reference(purchase_id), None, now).await
    }

    /// The payment succeeded: grant the paid lot. A suspended account still gets what it paid
    /// for: the money was taken, and the books must say so. Idempotent on the payment reference; a
    /// reference already used for another purchase, or a purchase already paid under another
    /// reference, is a conflict. `amount_minor`, when given, must match the price.
    ///
    /// A payment that arrives after the purchase expired is honoured for the same reason (a
    /// reference is proof the money was taken; `ledger::purchase::transition`): the purchase
    /// becomes paid and keeps its `ended_at`. A cancelled or failed purchase refuses it with
    /// `INVALID_STATE`: the product said that payment would not happen, so a person must look
    /// (and refund through the payment system if it did).
    pub async fn confirm_purchase(
        &self,
        purchase_id: i64,
        payment_reference: &str,
        amount_minor: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<PurchaseView, ServiceError> {
        Ok(self.confirm(purchase_id, payment_reference, amount_minor, now).await?.0)
    }

    /// `confirm_purchase`, and whether this call paid it (false: it was paid by this reference
    /// before, by a repeat or a concurrent confirmation).
    pub(crate) async fn confirm(
        &self,
        purchase_id: i64,
        payment_reference: &str,
        amount_minor: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(PurchaseView, bool), ServiceError> {
        if payment_reference.is_empty()
            || payment_reference.chars().count() > MAX_PAYMENT_REFERENCE_CHARS
            || !payment_reference.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(ServiceError::bad_input(format!(
                "paymentReference must be 1 to {MAX_PAYMENT_REFERENCE_CHARS} printable ASCII characters"
            )));
        }

        let (validity, program) = (self.program.purchased_validity, self.program.clone());
        let reference = payment_reference.to_string();
        tx::write(&self.writer, |txn| {
            let (reference, program) = (reference.clone(), program.clone());
            Box::pin(async move {
                let not_found = || ServiceError::NotFound(format!("no purchase {purchase_id}"));
                let pending = store::purchases::by_id(txn, purchase_id).await?.ok_or_else(not_found)?;
                let account = store::accounts::lock(txn, pending.account_id).await?.ok_or_else(not_found)?;
                // Re-read under the lock: a concurrent confirmation may have just committed.
                let pending = store::purchases::by_id(txn, purchase_id).await?.ok_or_else(not_found)?;
                if let Some(used) = store::purchases::by_payment_reference(txn, &reference).await? {
                    if used.id == pending.id {
                        return Ok((PurchaseView::of(used)?, false));
                    }
                    return Err(ServiceError::IdempotencyConflict(format!(
                        "payment reference {reference:?} already confirmed another purchase"
                    )));
                }
                match store::purchases::status_of(&pending)? {
                    PurchaseStatus::Pending | PurchaseStatus::Expired => {}
                    PurchaseStatus::Paid | PurchaseStatus::Refunded => {
                        return Err(ServiceError::IdempotencyConflict(format!(
                            "purchase {purchase_id} was already confirmed with another payment reference"
                        )));
                    }
                    ended @ (PurchaseStatus::Cancelled | PurchaseStatus::Failed) => {
                        let refused = transition(ended, PurchaseEvent::Pay).expect_err("the rule refuses paying an ended purchase");
                        return Err(Refusal::InvalidState { what: format!("purchase {purchase_id}: {refused}") }.into());
                    }
                }
                if let Some(paid) = amount_minor
                    && paid != pending.price_minor
                {
                    return Err(ServiceError::bad_input(format!(
                        "amountMinor {paid} does not match the price {} {}",
                        pending.price_minor, pending.currency
                    )));
                }
                let credits = Credits::from_micros(pending.credits_micros);
                let lot = lots::NewLot {
                    account_id: account.id,
                    class: LotClass::Paid,
                    source: LotSource::Purchase,
                    amount: credits,
                    granted_at: now,
                    expires_at: validity.expires_at(now),
                    origin_kind: Some("purchase"),
                    origin_id: Some(pending.id.to_string()),
                    priority: crate::ledger::Priority::DEFAULT,
                    effective_at: None,
                    features: None,
                };
                let meta = EntryMeta {
                    idempotency_key: Some(&reference),
                    reason: Some("purchase"),
                    metadata: pending.metadata.as_deref(),
                    ..EntryMeta::now("confirm_purchase", now)
                };
                let (lot, _) = posting::credit(txn, lot, meta).await?;
                // A purchase starts a new cycle of the low-credit warning.
                crate::service::notices::rearm_low_credits(txn, account.id).await?;
                if store::purchases::count_paid(txn, account.id).await? == 0 {
                    crate::service::referrals::on_first_purchase(txn, &program, &pending, now).await?;
                    grant_first_purchase_bonus(txn, &program, &pending, credits, now).await?;
                }
                let paid = store::purchases::mark_paid(txn, pending, &reference, lot.id, now)
                    .await?
                    // Read under the account's lock as pending or expired, and nothing else ends a
                    // purchase but under that lock or from pending: this rolls the grant back.
                    .ok_or_else(|| anyhow::anyhow!("purchase {purchase_id} changed while it was being paid"))?;
                crate::service::auto_topup::on_paid(txn, &paid).await?;
                tracing::info!(account.id = account.id, purchase.id = paid.id, amount.credits = %credits, "purchase confirmed");
                Ok((PurchaseView::of(paid)?, true))
            })
        })
        .await
    }
}

/// The program's first-purchase bonus, if it has one: a promotional lot of its percent of the
/// credits bought, tied to the purchase (a refund takes it back whole).
async fn grant_first_purchase_bonus(
    txn: &DatabaseTransaction,
    program: &Program,
    purchase: &purchase::Model,
    credits: Credits,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let Some(bonus) = program.first_purchase_bonus else {
        return Ok(());
    };
    let percent = bonus.percent / rust_decimal::Decimal::ONE_HUNDRED;
    let amount = Credits::charge(credits.to_decimal(), percent).map_err(|e| anyhow::anyhow!("first-purchase bonus: {e}"))?;
    if amount.is_zero() {
        return Ok(());
    }
    let bonus_lot = lots::NewLot {
        account_id: purchase.account_id,
        class: LotClass::Promotional,
        source: LotSource::FirstPurchaseBonus,
        amount,
        granted_at: now,
        expires_at: bonus.validity.expires_at(now),
        origin_kind: Some(BONUS_ORIGIN),
        origin_id: Some(purchase.id.to_string()),
        priority: crate::ledger::Priority::DEFAULT,
        effective_at: None,
        features: None,
    };
    let meta = EntryMeta { reason: Some("first-purchase bonus"), ..EntryMeta::now("first_purchase_bonus", now) };
    posting::credit(txn, bonus_lot, meta).await?;
    Ok(())
}

/// The payment reference of a simulated payment: recognisable in the purchase history and the
/// journal, and one per purchase.
pub fn simulated_reference(purchase_id: i64) -> String {
    format!("simulated-{purchase_id}")
}
